"""Channel-wise partitioning (SERENITY): Conv / MatMul / Gemm over a concat."""

from __future__ import annotations

import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

from serenity.rewrite import ChannelPartitionPass


@pytest.mark.parametrize(
    "build",
    [
        lambda: onnx_models.concat_conv(),
        lambda: onnx_models.concat_conv(stride=1, dilation=2),
        lambda: onnx_models.concat_matmul(),
        lambda: onnx_models.concat_matmul(gemm=True),
        lambda: onnx_models.concat_matmul(gemm=True, trans_b=1),
    ],
    ids=["conv", "conv-dilated", "matmul", "gemm", "gemm-transB"],
)
def test_partitions_and_computes_the_same(build) -> None:  # type: ignore[no-untyped-def]
    original = build()
    parts = len(next(n for n in original.graph.node if n.op_type == "Concat").input)
    new, changed, rewrites = run_pass(original, ChannelPartitionPass())
    assert changed
    assert [r.pass_name for r in rewrites] == ["channel_partition"]
    assert rewrites[0].nodes == ("cat", "y") and rewrites[0].parts == parts
    assert "Concat" not in op_types(new)  # the big tensor never exists
    assert op_types(new).count("Add") == parts - 1  # the accumulator chain
    node = next(n for n in original.graph.node if n.name == "y")
    partials = [n for n in new.graph.node if n.op_type == node.op_type and "partial" in n.name]
    assert len(partials) == parts
    # The bias (C) is added once, by the first partial product.
    assert [len(p.input) for p in partials] == [len(node.input)] + [2] * (parts - 1)
    assert_equivalent(original, new)


@pytest.mark.parametrize(
    "build",
    [
        lambda: onnx_models.concat_conv(group=2),  # grouped conv
        lambda: onnx_models.concat_conv(axis=2),  # concat along height
        lambda: onnx_models.concat_elementwise(),  # the conv does not read the concat itself
        lambda: onnx_models.concat_depthwise(),  # depthwise: kernel_partition's job
    ],
    ids=["grouped", "wrong-axis", "not-a-consumer", "depthwise"],
)
def test_leaves_near_misses_alone(build) -> None:  # type: ignore[no-untyped-def]
    original = build()
    new, changed, rewrites = run_pass(original, ChannelPartitionPass())
    assert not changed and rewrites == []
    assert op_types(new) == op_types(original)


def test_concat_kept_for_its_other_consumers() -> None:
    # The concat is also read by a LeakyRelu (a graph output): the conv is
    # partitioned once distribution has brought the concat next to it, and the
    # concat itself stays for the LeakyRelu.
    from serenity.rewrite import DistributePass

    original = onnx_models.concat_elementwise()
    step, _, _ = run_pass(original, DistributePass())
    new, changed, _ = run_pass(step, ChannelPartitionPass())
    assert changed
    assert op_types(new).count("Concat") == 1  # the original, for the LeakyRelu
    assert_equivalent(original, new)
