"""Output splitting: a convolution becomes k convolutions on output-channel slices.

Not one of SERENITY's rewrites, but its enabler in reverse: the paper's
passes need a concat to take apart, and a stem has none. Output channel
``j`` of a convolution reads the whole input and kernel ``W[j]`` only, so ::

    Conv(x, W, b) = Concat(Conv(x, W[o1], b[o1]), ..., Conv(x, W[ok], b[ok]))

on axis 1, with ``W[oi]``, ``b[oi]`` the output channels of part ``i``
(near-equal parts). The split alone never lowers the peak: the parts are as
large as the output, and the concat joins them again. It is the first half
of a rewrite whose second half is the driver's per-concat rewrite
(:func:`~serenity.rewrite.driver.rewrite_concat`): the channel-wise ops
after the conv (BN, ReLU, ...) are distributed over the new concat and the
next conv is channel-partitioned, so only one part of the wide tensor and
its chain is live at a time. DARTS' ImageNet stem (``conv 3x3/2 -> BN ->
ReLU -> conv 3x3/2``, 1.2 MB per step) is the case: its default-model peak
drops by a quarter.

The conv must not be grouped (``group == 1``): a depthwise or grouped conv's
output slice reads only an input slice, which would be an activation
``Slice``, a new tensor. Its weight and bias must be weights (their slices
are ``Slice`` nodes, never read data), its output must not be a graph
output, and it must have at least ``parts`` output channels.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    SitePass,
    copy_attributes,
    dim,
    int_attr,
    like,
    replace_output,
)

#: Parts a conv is split into by default (DARTS' stem gains nothing from 4).
DEFAULT_PARTS = 2


def part_sizes(channels: int, parts: int) -> list[int]:
    """``channels`` split into ``parts`` near-equal sizes, the larger ones first."""
    base, extra = divmod(channels, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def splittable(editor: Editor, conv: ir.Node, parts: int = DEFAULT_PARTS) -> bool:
    """Can ``conv`` be split into ``parts`` output-channel slices (module docstring)?"""
    if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx") or len(conv.outputs) != 1:
        return False
    if parts < 2 or len(conv.inputs) < 2 or int_attr(conv, "group", 1) != 1:
        return False
    out = conv.outputs[0]
    if out.is_graph_output() or out.shape is None or len(out.shape) < 3:
        return False
    w = conv.inputs[1]
    channels = dim(w, 0)
    if w is None or channels is None or channels < parts:
        return False
    if conv.inputs[0] is None or any(x is conv.inputs[0] for x in conv.inputs[1:]):
        return False
    return all(editor.is_weight(x) for x in conv.inputs[1:])


def split_output(
    editor: Editor, conv: ir.Node, parts: int = DEFAULT_PARTS
) -> tuple[Rewrite, ir.Node] | None:
    """Replace ``conv`` by ``parts`` convs on output-channel slices and their Concat.

    Returns the record and the new concat (which takes the conv output's
    name), or ``None`` (graph unchanged) when ``conv`` does not qualify.

    Complexity: O(parts).
    """
    if not splittable(editor, conv, parts):
        return None
    w = conv.inputs[1]
    assert w is not None
    channels = dim(w, 0)
    assert channels is not None
    bias = conv.inputs[2] if len(conv.inputs) > 2 else None
    out = conv.outputs[0]
    base = conv.name or "Conv"
    new_nodes: list[ir.Node] = []
    results: list[ir.Value] = []
    start = 0
    for k, size in enumerate(part_sizes(channels, parts)):
        inputs: list[ir.Value | None] = [
            conv.inputs[0],
            editor.slice(w, 0, start, start + size, new_nodes),
        ]
        if bias is not None:
            inputs.append(editor.slice(bias, 0, start, start + size, new_nodes))
        part = ir.Node(
            "",
            "Conv",
            inputs,
            copy_attributes(conv),
            num_outputs=1,
            name=editor.fresh(f"{base}.out{k}"),
        )
        part.outputs[0].name = editor.fresh(f"{out.name}.out{k}")
        like(part.outputs[0], out, 1, size)
        new_nodes.append(part)
        results.append(part.outputs[0])
        start += size
    cat = editor.concat(results, 1, out, f"{base}.concat", new_nodes)
    record = Rewrite("output_split", (conv.name or "",), parts)
    replace_output(editor.graph, conv, new_nodes, cat.outputs[0])
    return record, cat


class OutputSplitPass(SitePass):
    """Split every qualifying Conv into ``parts`` output-channel slices.

    On its own this never lowers the peak; it is here for tests and for
    composing with :class:`~serenity.rewrite.DistributePass` and
    :class:`~serenity.rewrite.ChannelPartitionPass`.
    """

    def __init__(self, parts: int = DEFAULT_PARTS) -> None:
        super().__init__()
        self.parts = parts

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        return ((n,) for n in list(graph) if n.op_type == "Conv")

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        (conv,) = site
        done = split_output(editor, conv, self.parts)
        return None if done is None else done[0]
