"""Channel-wise partitioning: a contraction over a concat becomes a sum of partial ones.

SERENITY (Ahn et al., MLSys 2020), "identity graph rewriting": a convolution
reading ``Concat(x1..xk)`` along its input channels is linear in the channels,
so ::

    Conv(Concat(x1..xk), W, b) = Conv(x1, W[:, c1], b) + Conv(x2, W[:, c2]) + ...

where ``W[:, ci]`` are the input channels of ``W`` that meet ``xi``. The big
concatenated tensor never exists and each ``xi`` may die right after its
partial convolution; the partial results are summed by a chain of ``Add``
nodes (the accumulator, see :mod:`serenity.rewrite`), the bias added once, by
the first partial convolution. Any kernel size, stride, padding and dilation
works; the convolution must not be grouped (``group == 1``).

The same holds for ``MatMul(Concat(a1..ak), B)`` with the concat on the last
axis of ``A`` (rows of ``B`` sliced) and for ``Gemm`` with the concat on the
contracted axis of ``A`` (``C`` added once, ``alpha`` and ``beta`` kept).

The weight operand must be a weight (see :class:`~serenity.rewrite._graph.Editor`):
its slices are ``Slice`` nodes on it, so the pass never reads weight data.
"""

from __future__ import annotations

import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    SitePass,
    concat_consumer_sites,
    concat_parts,
    copy_attributes,
    dim,
    int_attr,
    like,
    remove_if_dead,
    replace_output,
)


def _contraction(editor: Editor, concat: ir.Node, node: ir.Node) -> tuple[int, int] | None:
    """``(axis of the weight to slice, how many channels it must have)`` or ``None``."""
    found = concat_parts(concat)
    if found is None or node.domain != "" or len(node.outputs) != 1:
        return None
    axis, parts = found
    cat = concat.outputs[0]
    if cat.is_graph_output() or not node.inputs or node.inputs[0] is not cat:
        return None
    if any(x is cat for x in node.inputs[1:]):
        return None
    total = parts[-1][1] + parts[-1][2]
    rank = len(cat.shape) if cat.shape is not None else None
    if rank is None:
        return None
    if not all(editor.is_weight(x) for x in node.inputs[1:]):
        return None
    if node.op_type == "Conv":
        if axis != 1 or int_attr(node, "group", 1) != 1 or len(node.inputs) < 2:
            return None
        w = node.inputs[1]
        return (1, total) if dim(w, 1) == total else None
    if node.op_type == "MatMul":
        w = node.inputs[1]
        if rank < 2 or axis != rank - 1 or w is None or w.shape is None or len(w.shape) < 2:
            return None
        return (len(w.shape) - 2, total) if dim(w, -2) == total else None
    if node.op_type == "Gemm":
        trans_a, trans_b = int_attr(node, "transA", 0), int_attr(node, "transB", 0)
        if rank != 2 or axis != (0 if trans_a else 1):
            return None
        waxis = 1 if trans_b else 0
        return (waxis, total) if dim(node.inputs[1], waxis) == total else None
    return None


def partitionable(editor: Editor, concat: ir.Node, node: ir.Node) -> bool:
    """Can ``node``, a consumer of ``concat``, be split into partial contractions?"""
    return _contraction(editor, concat, node) is not None


def partition_channels(editor: Editor, concat: ir.Node, node: ir.Node) -> Rewrite | None:
    """Replace ``node`` by partial contractions over ``concat``'s parts and an Add chain.

    Returns ``None`` (graph unchanged) when ``node`` does not qualify. The
    concat is removed when no other node reads it.

    Complexity: O(parts).
    """
    found = _contraction(editor, concat, node)
    if found is None:
        return None
    waxis, _ = found
    parts = concat_parts(concat)
    assert parts is not None
    graph = editor.graph
    out = node.outputs[0]
    base = node.name or node.op_type
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    new_nodes: list[ir.Node] = []
    acc: ir.Value | None = None
    for k, (x, start, size) in enumerate(parts[1]):
        w = editor.slice(node.inputs[1], waxis, start, start + size, new_nodes)  # type: ignore[arg-type]
        inputs: list[ir.Value | None] = [x, w]
        if bias is not None and k == 0:
            inputs.append(bias)
        overrides: dict[str, object] = {}
        if node.op_type == "Gemm" and k > 0:
            overrides["beta"] = None  # C is added by the first partial product only
        partial = ir.Node(
            "",
            node.op_type,
            inputs,
            copy_attributes(node, **overrides),
            num_outputs=1,
            name=editor.fresh(f"{base}.partial{k}"),
        )
        partial.outputs[0].name = editor.fresh(f"{out.name}.partial{k}")
        like(partial.outputs[0], out, 0, None)
        new_nodes.append(partial)
        if acc is None:
            acc = partial.outputs[0]
            continue
        add = ir.Node(
            "", "Add", [acc, partial.outputs[0]], num_outputs=1, name=editor.fresh(f"{base}.acc{k}")
        )
        add.outputs[0].name = editor.fresh(f"{out.name}.acc{k}")
        like(add.outputs[0], out, 0, None)
        new_nodes.append(add)
        acc = add.outputs[0]
    assert acc is not None
    record = Rewrite("channel_partition", (concat.name or "", node.name or ""), len(parts[1]))
    replace_output(graph, node, new_nodes, acc)
    remove_if_dead(graph, concat)
    return record


class ChannelPartitionPass(SitePass):
    """Partition every qualifying Conv / MatMul / Gemm that reads a concat."""

    sites = staticmethod(concat_consumer_sites)

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        return partition_channels(editor, *site)
