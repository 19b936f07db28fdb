"""Folding a scalar Mul into the Conv / BatchNormalization producing its input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

import serenity
from serenity.rewrite import ScaleFoldPass, rewrite_for_memory
from serenity.zoo.randwire import RandWireConfig, build_randwire


def mul_inputs(proto: onnx.ModelProto) -> list[list[str]]:
    return [list(n.input) for n in proto.graph.node if n.op_type == "Mul"]


@pytest.mark.parametrize("variant", ["plain", "conv", "single"])
def test_folds_the_scale_into_the_producer(variant: str) -> None:
    original = onnx_models.scaled_fanout(variant=variant)
    new, changed, rewrites = run_pass(original, ScaleFoldPass())
    assert changed
    producer = "c" if variant == "conv" else "bn"
    # m1 is folded; m2 (when present) now reads the scaled producer, by 0.4 / 0.7.
    assert [(r.pass_name, r.nodes) for r in rewrites] == [("scale_fold", ("m1", producer))]
    data_muls = [m for m in mul_inputs(new) if "m1" not in m[0] and m[0] != "x"]
    activations = {"x", *(o for n in new.graph.node for o in n.output)} - {
        o for n in new.graph.node if n.op_type in ("Mul", "Div") for o in n.output
    }
    scheduled_muls = [m for m in data_muls if set(m) & activations]
    assert len(scheduled_muls) == (0 if variant == "single" else 1)
    # m1's output name is kept: the Add reads "m1", now written by the scaled producer.
    writer = next(n for n in new.graph.node if "m1" in n.output)
    assert writer.op_type == ("Conv" if variant == "conv" else "BatchNormalization")
    assert_equivalent(original, new)


@pytest.mark.parametrize(
    "variant",
    ["relu_consumer", "per_channel", "input_scale", "graph_output", "zero", "relu_producer"],
)
def test_near_misses_are_left_alone(variant: str) -> None:
    original = onnx_models.scaled_fanout(variant=variant)
    new, changed, rewrites = run_pass(original, ScaleFoldPass())
    assert not changed and rewrites == []
    assert op_types(new) == op_types(original)


def test_folded_factors_are_weight_only_nodes(tmp_path: Path) -> None:
    original = onnx_models.scaled_fanout()
    new, _, _ = run_pass(original, ScaleFoldPass())
    path = tmp_path / "folded.onnx"
    onnx.save(new, str(path))
    model = serenity.load_model(path)
    # Scheduled: both convs, the BN and m2, the two Adds, the Identity (m1 is gone).
    assert sorted(model.problem.op_types) == sorted(
        ["Conv", "Conv", "BatchNormalization", "Mul", "Add", "Add", "Identity"]
    )
    old = {t.name for t in original.graph.initializer}
    assert all(int(np.prod(t.dims)) <= 1 for t in new.graph.initializer if t.name not in old)


def test_driver_lowers_a_small_randwire(tmp_path: Path) -> None:
    config = RandWireConfig(
        channels=8, nodes=8, stage_strides=(1,), head_channels=8, classes=5, resolution=16
    )
    proto = build_randwire(config, seed=0)
    path = tmp_path / "randwire.onnx"
    onnx.save(proto, str(path))
    model = serenity.load_model(path)
    result = rewrite_for_memory(model, split_outputs=False)
    assert result.before.optimal and result.after.optimal
    # 7 tensors of 2 KiB at the peak; one scaled copy fewer with the fold.
    assert (result.before.peak_bytes, result.after.peak_bytes) == (14336, 12288)
    assert [r.pass_name for r in result.rewrites] == ["scale_fold"]
    assert_equivalent(model.proto, result.proto)
