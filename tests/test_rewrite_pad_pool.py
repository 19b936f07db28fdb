"""Folding a constant Pad into the pool that reads it (NASNet / PNASNet stems)."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

import serenity
from serenity.rewrite import PadPoolPass
from serenity.rewrite.pad_pool import _subsample_plan


def test_folds_all_three_stem_pads() -> None:
    original = onnx_models.pad_pools()
    new, changed, rewrites = run_pass(original, PadPoolPass())
    assert changed
    assert [(r.pass_name, r.nodes[0]) for r in rewrites] == [
        ("pad_pool_fold", "pad_max"),
        ("pad_pool_fold", "pad_avg"),
        ("pad_pool_subsample", "pad_shift"),
    ]
    # The full-size padded copies are gone; the shift became a strided slice
    # and a pad of the one output row and column that fell into the padding.
    assert op_types(new).count("Pad") == 1 and "Slice" in op_types(new)
    avg = next(n for n in new.graph.node if n.op_type == "AveragePool" and "avgpool" in n.name)
    assert {a.name: onnx.helper.get_attribute_value(a) for a in avg.attribute}[
        "count_include_pad"
    ] == 1
    assert_equivalent(original, new)


def test_lowers_the_optimal_peak(tmp_path: Path) -> None:
    src = tmp_path / "pads.onnx"
    onnx.save(onnx_models.pad_pools(), str(src))
    model = serenity.load_model(src)
    result = serenity.rewrite_model(model)
    assert result.after.peak_bytes < result.before.peak_bytes
    assert result.after.optimal


def test_channel_padding_is_left_alone() -> None:
    original = onnx_models.pad_pools(crop_other_axis=True)
    new, _, rewrites = run_pass(original, PadPoolPass())
    assert "pad_shift" not in [r.nodes[0] for r in rewrites]
    assert "ps" in {o for n in new.graph.node for o in n.output}
    assert_equivalent(original, new)


@pytest.mark.parametrize(
    ("length", "begin", "end", "stride", "expected"),
    [
        (165, -1, 1, 2, (1, 164, 0, 1)),  # NASNet's shift: 82 inputs + 1 zero row
        (8, 0, 0, 2, (0, 7, 0, 0)),
        (8, 2, 2, 3, (1, 8, 1, 0)),  # padded 0,3,6,9 -> pad, inputs 1,4,7
    ],
)
def test_subsample_plan(length: int, begin: int, end: int, stride: int, expected: tuple) -> None:
    assert _subsample_plan(length, begin, end, stride) == expected
