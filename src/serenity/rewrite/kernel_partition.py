"""Kernel-wise partitioning: a depthwise conv over a concat becomes one per part.

SERENITY (Ahn et al., MLSys 2020), "identity graph rewriting": in a depthwise
convolution (``group`` = input channels, ``multiplier`` = output / input
channels) output channel ``j`` reads input channel ``j // multiplier`` only, so ::

    DWConv(Concat(x1..xk), W, b) = Concat(DWConv(x1, W[o1], b[o1]), ..., DWConv(xk, W[ok], b[ok]))

with ``W[oi]``, ``b[oi]`` the output channels (kernels) of part ``i`` and
``group`` = the part's channels. The concat moves below the convolution,
where it can meet the next rewrite (in a separable conv, the pointwise conv
after it is channel-partitioned). Weights are sliced by ``Slice`` nodes.
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


def _multiplier(editor: Editor, concat: ir.Node, node: ir.Node) -> int | None:
    found = concat_parts(concat)
    if found is None or node.op_type != "Conv" or node.domain != "" or len(node.outputs) != 1:
        return None
    axis, parts = found
    cat = concat.outputs[0]
    if axis != 1 or cat.is_graph_output() or not node.inputs or node.inputs[0] is not cat:
        return None
    if any(x is cat for x in node.inputs[1:]) or not all(
        editor.is_weight(x) for x in node.inputs[1:]
    ):
        return None
    total = parts[-1][1] + parts[-1][2]
    w = node.inputs[1] if len(node.inputs) > 1 else None
    out_channels = dim(w, 0)
    if int_attr(node, "group", 1) != total or dim(w, 1) != 1 or out_channels is None:
        return None
    if out_channels % total:
        return None
    return out_channels // total


def partition_kernels(
    editor: Editor, concat: ir.Node, node: ir.Node
) -> tuple[Rewrite, ir.Node] | None:
    """Split depthwise ``node`` over ``concat``'s parts; return the record and the new concat.

    Returns ``None`` (graph unchanged) when ``node`` is not a depthwise conv
    over a channel concat. The old concat is removed when nothing else reads it.

    Complexity: O(parts).
    """
    m = _multiplier(editor, concat, node)
    if m is None:
        return None
    found = concat_parts(concat)
    assert found is not None
    _, parts = found
    graph = editor.graph
    out = node.outputs[0]
    base = node.name or "Conv"
    w = node.inputs[1]
    assert w is not None
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    new_nodes: list[ir.Node] = []
    results: list[ir.Value] = []
    for k, (x, start, size) in enumerate(parts):
        inputs: list[ir.Value | None] = [
            x,
            editor.slice(w, 0, start * m, (start + size) * m, new_nodes),
        ]
        if bias is not None:
            inputs.append(editor.slice(bias, 0, start * m, (start + size) * m, new_nodes))
        part = ir.Node(
            "",
            "Conv",
            inputs,
            copy_attributes(node, group=size),
            num_outputs=1,
            name=editor.fresh(f"{base}.kernels{k}"),
        )
        part.outputs[0].name = editor.fresh(f"{out.name}.kernels{k}")
        like(part.outputs[0], out, 1, size * m)
        new_nodes.append(part)
        results.append(part.outputs[0])
    new_cat = editor.concat(results, 1, out, f"{concat.name or 'concat'}.dwconv", new_nodes)
    record = Rewrite("kernel_partition", (concat.name or "", node.name or ""), len(parts))
    replace_output(graph, node, new_nodes, new_cat.outputs[0])
    remove_if_dead(graph, concat)
    return record, new_cat


class KernelPartitionPass(SitePass):
    """Partition every depthwise conv that reads a channel concat."""

    sites = staticmethod(concat_consumer_sites)

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        done = partition_kernels(editor, *site)
        return None if done is None else done[0]
