"""The non-exact comparison of ``serenity.io.verify``: tolerances and the noise-floor clause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx_models import make_model, tensor

from serenity.errors import VerificationError
from serenity.io.verify import verify_same_outputs
from serenity.rewrite import OutputSplitPass, to_ir, to_proto


def cancelling_conv_bn(channels: int = 16) -> onnx.ModelProto:
    """Conv with bias 1e4 -> BN with mean 1e4: outputs O(10) left after cancelling 1e4.

    onnxruntime folds the BN into the conv when it optimises the graph, which
    rounds differently at that scale: the model differs from itself, run
    without graph optimizations, by ~5e-4, far above atol 1e-5.
    """
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((channels, 8, 3, 3)),
        "b": np.full(channels, 1e4),
        "s": np.ones(channels),
        "bb": np.zeros(channels),
        "m": np.full(channels, 1e4),
        "v": np.ones(channels),
    }
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="c", pads=[1] * 4),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], name="bn"),
    ]
    return make_model(nodes, [tensor("x", [1, 8, 8, 8])], [tensor("y", [1, channels, 8, 8])], inits)


def split(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The conv split by output channels: the BN can no longer be folded into it."""
    result = OutputSplitPass()(to_ir(proto))
    assert result.modified
    return to_proto(result.model)


def test_noise_floor_clause_accepts_a_rewrite_that_rounds_like_the_unoptimized_original() -> None:
    original = cancelling_conv_bn()
    rewritten = split(original)
    with pytest.raises(VerificationError, match="not equal within rtol"):
        verify_same_outputs(original, rewritten, Path("."), exact=False, noise_factor=0)
    report = verify_same_outputs(original, rewritten, Path("."), exact=False)
    assert report.noise_floor is not None and report.noise_floor > 1e-5
    assert report.max_abs_diff <= 2 * report.noise_floor
    assert any("graph optimizations" in note for note in report.notes)


def test_noise_floor_clause_rejects_a_wrong_rewrite() -> None:
    original = cancelling_conv_bn()
    wrong = split(original)
    for t in wrong.graph.initializer:
        if t.name == "bb":  # shift one channel's BN bias by 1e-2
            values = numpy_helper.to_array(t).copy()
            values[3] += 1e-2
            t.CopyFrom(numpy_helper.from_array(values, t.name))
    with pytest.raises(VerificationError, match="nor within 2x the original's own float noise"):
        verify_same_outputs(original, wrong, Path("."), exact=False)


def test_a_close_rewrite_needs_no_noise_floor() -> None:
    original = cancelling_conv_bn()
    for t in original.graph.initializer:  # no cancellation: exact enough for the tolerances
        if t.name in ("b", "m"):
            t.CopyFrom(numpy_helper.from_array(np.zeros(t.dims, np.float32), t.name))
    report = verify_same_outputs(original, split(original), Path("."), exact=False)
    assert report.noise_floor is None and not report.notes


def test_exact_mode_has_no_noise_floor() -> None:
    original = cancelling_conv_bn()
    with pytest.raises(VerificationError, match="bitwise"):
        verify_same_outputs(original, split(original), Path("."), exact=True)
