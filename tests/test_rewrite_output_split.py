"""Splitting a conv by output channels, and the driver's split-then-rewrite sites."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass, signature

import serenity
from serenity import zoo
from serenity.rewrite import OutputSplitPass, rewrite_for_memory
from serenity.rewrite.output_split import part_sizes


def _load(tmp_path: Path, proto: onnx.ModelProto, name: str) -> serenity.io.OnnxModel:
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, str(path))
    return serenity.load_model(path)


def test_part_sizes_are_near_equal() -> None:
    assert part_sizes(24, 2) == [12, 12]
    assert part_sizes(7, 3) == [3, 2, 2]
    assert sum(part_sizes(5, 5)) == 5


@pytest.mark.parametrize("parts", [2, 3])
def test_splits_every_group1_conv(parts: int) -> None:
    original = onnx_models.conv_stem()
    new, changed, rewrites = run_pass(original, OutputSplitPass(parts))
    assert changed
    assert [(r.pass_name, r.nodes, r.parts) for r in rewrites] == [
        ("output_split", ("c1",), parts),
        ("output_split", ("c2",), parts),
    ]
    assert op_types(new).count("Conv") == 2 * parts
    assert op_types(new).count("Concat") == 2
    # The weight slices are weight-only Slice nodes, never sliced data.
    old = {t.name for t in original.graph.initializer}
    assert all(
        len(t.dims) == 1 and t.dims[0] == 1 for t in new.graph.initializer if t.name not in old
    )
    assert signature(new) == signature(original)
    assert_equivalent(original, new)


@pytest.mark.parametrize("variant", ["grouped", "depthwise", "graph_output"])
def test_near_misses_are_left_alone(variant: str) -> None:
    original = onnx_models.conv_stem(variant=variant)
    new, _, rewrites = run_pass(original, OutputSplitPass())
    # Only the plain group-1 conv "c2" after the ReLU qualifies.
    assert [r.nodes for r in rewrites] == [("c2",)]
    assert next(n for n in new.graph.node if n.name == "c1").op_type == "Conv"
    assert_equivalent(original, new)


def test_driver_splits_the_stem_conv(tmp_path: Path) -> None:
    model = _load(tmp_path, onnx_models.conv_stem(), "conv_stem")
    plain = rewrite_for_memory(model, split_outputs=False)
    assert plain.rewrites == []  # without splits nothing lowers it: BN and ReLU tie
    result = rewrite_for_memory(model)  # splits are on by default
    # Before: the BN step holds c1 and its output, 6 KiB each. Split, BN and
    # ReLU run per half and c2 is summed from two partial convs.
    assert result.before.optimal and result.after.optimal
    assert (result.before.peak_bytes, result.after.peak_bytes) == (12288, 7680)
    passes = [r.pass_name for r in result.rewrites]
    assert passes[:4] == ["output_split", "distribute", "distribute", "channel_partition"]
    assert result.rewrites[0].nodes == ("c1",)
    assert_equivalent(model.proto, result.proto)


@pytest.mark.parametrize("variant", ["grouped", "depthwise", "graph_output"])
def test_driver_leaves_near_misses_alone(tmp_path: Path, variant: str) -> None:
    model = _load(tmp_path, onnx_models.conv_stem(variant=variant), f"conv_stem_{variant}")
    result = rewrite_for_memory(model)
    assert result.rewrites == []


def test_driver_lowers_a_small_darts_stem(tmp_path: Path) -> None:
    # 48 channels at 32x32: the stem's BN / ReLU steps set the peak, as at full size
    # (channels=8 at 64x64 peaks elsewhere: the input is then the largest tensor).
    proto = zoo.build_darts_imagenet(channels=48, layers=3, resolution=32)
    model = _load(tmp_path, proto, "darts_small")
    result = rewrite_for_memory(model)
    assert result.before.optimal and result.after.optimal
    assert (result.before.peak_bytes, result.after.peak_bytes) == (49152, 36864)
    assert result.rewrites[0].nodes == ("stem0/conv1",)
    assert [r.pass_name for r in result.rewrites] == [
        "output_split",
        "distribute",
        "distribute",
        "channel_partition",
    ]
    assert_equivalent(model.proto, result.proto)
