"""Output splitting: a convolution becomes k convolutions on output-channel slices.

Not one of SERENITY's rewrites, but its enabler in reverse: the paper's
passes need a concat to take apart, and a stem has none. Output channel
``j`` of a convolution reads the whole input and kernel ``W[j]`` only, so ::

    Conv(x, W, b) = Concat(Conv(x, W[o1], b[o1]), ..., Conv(x, W[ok], b[ok]))

on axis 1, with ``W[oi]``, ``b[oi]`` the output channels of part ``i``
(near-equal parts). The split alone never lowers the peak: the parts are as
large as the output, and the concat joins them again. It is the first half
of a rewrite whose second half is the driver's per-concat rewrite
(:func:`~serenity.rewrite.concat.rewrite_concat`): the channel-wise ops
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
    consumers,
    copy_attributes,
    dim,
    int_attr,
    like,
    replace_output,
)
from serenity.rewrite.concat import rewrite_concat
from serenity.rewrite.distribute import BINARY_OPS, CHANNELWISE_OPS, UNARY_OPS
from serenity.rewrite.registry import DriverRule, PeakView, Tried

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


#: Ops a split conv's chain may pass through on its way to the next conv
#: (a first filter; the trial rewrite on a scratch copy decides).
_CHAIN_OPS = UNARY_OPS | BINARY_OPS | CHANNELWISE_OPS


def _chain_names(conv: ir.Node, depth: int = 4) -> set[str]:
    """Output names of ``conv`` and of the channel-wise ops right below it."""
    names = {conv.outputs[0].name or ""}
    frontier = [conv.outputs[0]]
    for _ in range(depth):
        nxt = []
        for value in frontier:
            for user in consumers(value):
                if user.op_type in _CHAIN_OPS and user.domain == "" and user.outputs:
                    names.add(user.outputs[0].name or "")
                    nxt.append(user.outputs[0])
        frontier = nxt
    return names


def split_and_rewrite(editor: Editor, conv: ir.Node) -> list[Rewrite]:
    """Split ``conv`` in two, then rewrite the new concat as a whole
    (:func:`~serenity.rewrite.concat.rewrite_concat`)."""
    done = split_output(editor, conv)
    if done is None:
        return []
    return [done[0], *rewrite_concat(editor, done[1])]


def _driver_match(editor: Editor, conv: ir.Node, peak: PeakView) -> Tried | None:
    """A group-1 conv whose output, or a channel-wise op's output right below it,
    is read or written by an op at a peak step (:attr:`PeakView.touched`): a conv
    output merely waiting at the peak is no site (on NASNet such trials cost the
    full time limit each and never gain)."""
    return "solo" if splittable(editor, conv) and _chain_names(conv) & peak.touched else None


#: The driver's view of this pass (:mod:`serenity.rewrite.registry`): a split is
#: worth a trial only if, followed by the concat rewrite, it channel-partitions
#: some conv (only then is the wide tensor never whole); tried one conv at a
#: time, after every other candidate of the round.
DRIVER = DriverRule(
    name="output_split",
    ops=frozenset({"Conv"}),
    match=_driver_match,
    apply=lambda editor, conv, peak: split_and_rewrite(editor, conv),
    fallback=True,
    confirm=lambda rewrites: any(r.pass_name == "channel_partition" for r in rewrites),
)
