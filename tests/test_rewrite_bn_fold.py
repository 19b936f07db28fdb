"""Folding an inference BatchNormalization into the Conv / Gemm that feeds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

import serenity
from serenity.rewrite import BnFoldPass


@pytest.mark.parametrize("variant", ["plain", "relu", "gemm", "conv_transpose"])
def test_folds_into_the_producer(variant: str) -> None:
    original = onnx_models.conv_bn(variant=variant)
    new, changed, rewrites = run_pass(original, BnFoldPass())
    assert changed
    # Both BNs go: the first into "c", the second into the bias-free conv "d".
    assert [(r.pass_name, r.nodes) for r in rewrites] == [
        ("bn_fold", ("bn", "c")),
        ("bn_fold", ("bn2", "d")),
    ]
    assert "BatchNormalization" not in op_types(new)
    # The folded weights are weight-only nodes on the initializers, not data.
    assert {"Sqrt", "Div", "Unsqueeze" if variant != "gemm" else "Mul"} <= set(op_types(new))
    old = {t.name for t in original.graph.initializer}
    added = [t for t in new.graph.initializer if t.name not in old]
    assert all(int(np.prod(t.dims)) <= 3 for t in added)  # eps, axes: no folded data
    assert_equivalent(original, new)


@pytest.mark.parametrize("variant", ["second_consumer", "training", "not_conv", "graph_output"])
def test_near_misses_are_left_alone(variant: str) -> None:
    original = onnx_models.conv_bn(variant=variant)
    new, _, rewrites = run_pass(original, BnFoldPass())
    # Only the second BN (after the plain 1x1 conv "d") qualifies.
    assert [r.nodes for r in rewrites] == [("bn2", "d")]
    assert op_types(new).count("BatchNormalization") == 1
    kept = next(n for n in new.graph.node if n.op_type == "BatchNormalization")
    assert kept.name == "bn"
    if variant != "training":  # onnxruntime has no training-mode BN kernel to compare
        assert_equivalent(original, new)
    else:
        onnx.checker.check_model(new, full_check=True)


def _load(tmp_path: Path, proto: onnx.ModelProto) -> serenity.io.OnnxModel:
    path = tmp_path / "conv_bn.onnx"
    onnx.save(proto, str(path))
    return serenity.load_model(path)


def test_driver_lowers_the_default_peak(tmp_path: Path) -> None:
    model = _load(tmp_path, onnx_models.conv_bn())
    result = serenity.rewrite_model(model, split_outputs=False)
    # The BN step held conv output + BN output (4 KiB each) plus the input;
    # folded, the conv writes the normalised output directly.
    assert [r.pass_name for r in result.rewrites] == ["bn_fold"]
    assert result.after.peak_bytes < result.before.peak_bytes
    assert result.before.optimal and result.after.optimal
    assert_equivalent(model.proto, result.proto)
    # By default the folded conv is then split by output channels, which the
    # 1x1 conv after it takes as two partial products: lower still.
    split = serenity.rewrite_model(model)
    assert [r.pass_name for r in split.rewrites][:2] == ["bn_fold", "output_split"]
    assert split.after.peak_bytes < result.after.peak_bytes
    assert split.after.optimal
    assert_equivalent(model.proto, split.proto)


def test_driver_leaves_the_inplace_model_alone(tmp_path: Path) -> None:
    # Under --inplace the BN overwrites its input already: nothing to gain.
    model = _load(tmp_path, onnx_models.conv_bn())
    result = serenity.rewrite_model(model, inplace=True, split_outputs=False)
    assert result.rewrites == []
    assert result.after.peak_bytes == result.before.peak_bytes


def test_driver_keeps_a_fold_that_a_relu_ties(tmp_path: Path) -> None:
    # DARTS' stem: conv -> BN -> ReLU. The ReLU step holds the (folded) conv
    # output and its own output, as large as the two at the BN step: the
    # default peak does not drop, so a fold alone is not applied.
    model = _load(tmp_path, onnx_models.conv_bn(variant="relu"))
    result = serenity.rewrite_model(model, split_outputs=False)
    assert result.rewrites == []
    assert result.after.peak_bytes == result.before.peak_bytes
    # Splitting the conv by output channels lets each half run conv -> BN -> ReLU
    # -> partial 1x1 conv on its own, so the wide tensors never exist whole.
    split = serenity.rewrite_model(model)
    assert "output_split" in {r.pass_name for r in split.rewrites}
    assert split.after.peak_bytes < split.before.peak_bytes
    assert_equivalent(model.proto, split.proto)
