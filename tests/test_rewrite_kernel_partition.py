"""Kernel-wise partitioning (SERENITY): a depthwise conv over a concat."""

from __future__ import annotations

import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

from serenity.rewrite import KernelPartitionPass


@pytest.mark.parametrize("multiplier", [1, 2])
def test_splits_depthwise_conv_per_part(multiplier: int) -> None:
    original = onnx_models.concat_depthwise(multiplier=multiplier)
    new, changed, rewrites = run_pass(original, KernelPartitionPass())
    assert changed
    assert [(r.pass_name, r.nodes, r.parts) for r in rewrites] == [
        ("kernel_partition", ("cat", "dw"), 2)
    ]
    convs = [n for n in new.graph.node if n.op_type == "Conv" and "kernels" in n.name]
    groups = [next(a.i for a in n.attribute if a.name == "group") for n in convs]
    assert groups == [4, 2]
    # The concat moved below the depthwise convs.
    last_concat = [n for n in new.graph.node if n.op_type == "Concat"][-1]
    assert list(last_concat.input) == [n.output[0] for n in convs]
    assert_equivalent(original, new)


@pytest.mark.parametrize(
    "build",
    [lambda: onnx_models.concat_depthwise(group=2), lambda: onnx_models.concat_conv()],
    ids=["grouped-not-depthwise", "dense-conv"],
)
def test_leaves_near_misses_alone(build) -> None:  # type: ignore[no-untyped-def]
    original = build()
    new, changed, rewrites = run_pass(original, KernelPartitionPass())
    assert not changed and rewrites == []
    assert op_types(new) == op_types(original)
