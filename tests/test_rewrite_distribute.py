"""Distribution of element-wise and channel-wise ops over a concat."""

from __future__ import annotations

import onnx_models
from test_rewrite_common import assert_equivalent, op_types, run_pass

from serenity.rewrite import DistributePass


def test_distributes_the_whole_chain() -> None:
    original = onnx_models.concat_elementwise()
    new, changed, rewrites = run_pass(original, DistributePass())
    assert changed
    moved = sorted(r.nodes[1] for r in rewrites)
    assert moved == ["bn", "clip", "leaky", "mul", "relu"]
    assert all(r.parts == 3 for r in rewrites)
    types = op_types(new)
    for op in ("BatchNormalization", "Relu", "Mul", "Clip", "LeakyRelu"):
        assert types.count(op) == 3, op
    # The per-channel scale and the BN parameters are sliced, as weights.
    assert types.count("Slice") == 4 * 3 + 3
    assert_equivalent(original, new)


def test_concat_that_is_a_graph_output_is_left_alone() -> None:
    original = onnx_models.concat_elementwise(cat_is_output=True)
    new, changed, rewrites = run_pass(original, DistributePass())
    assert not changed and rewrites == []
    assert op_types(new) == op_types(original)


def test_non_channelwise_consumers_are_left_alone() -> None:
    # A conv mixes channels; a pool over a height-wise concat mixes parts.
    for original in (onnx_models.concat_conv(), onnx_models.concat_conv(axis=2)):
        new, changed, _ = run_pass(original, DistributePass())
        assert not changed
        assert op_types(new) == op_types(original)
