"""SERENITY's rewrite of a concatenation, as one site: distribute, then partition.

A concat is rewritten as a whole, following it down (Ahn et al., MLSys 2020,
"identity graph rewriting"): each distributable consumer (element-wise and
channel-wise ops, :mod:`~serenity.rewrite.distribute`) is moved onto the
parts, and its result, a new concat, followed in turn; each Conv / MatMul /
Gemm over the concatenated channels becomes partial products summed by an
Add chain (:mod:`~serenity.rewrite.channel_partition`); each depthwise conv
is split per part (:mod:`~serenity.rewrite.kernel_partition`). The concat
stays only if some consumer still needs it.

The driver tries a concat where its inputs, its output or the output of a
distributable op below it is live at the peak.
"""

from __future__ import annotations

import onnx_ir as ir

from serenity.rewrite._graph import Editor, Rewrite, consumers, local_consumers
from serenity.rewrite.channel_partition import partition_channels
from serenity.rewrite.distribute import distributable, distribute
from serenity.rewrite.kernel_partition import partition_kernels
from serenity.rewrite.registry import DriverRule, PeakView, Tried


def rewrite_concat(editor: Editor, concat: ir.Node) -> list[Rewrite]:
    """Rewrite around one concat: distribute ops over it, then partition convs.

    Complexity: O(rewritten nodes x parts).
    """
    done: list[Rewrite] = []
    work = [concat]
    while work:
        cat = work.pop(0)
        for node in local_consumers(cat):
            if cat.graph is None:
                break
            if distributable(editor, cat, node):
                moved = distribute(editor, cat, node)
                if moved is not None:
                    done.append(moved[0])
                    work.append(moved[1])
                continue
            partial = partition_channels(editor, cat, node)
            if partial is not None:
                done.append(partial)
                continue
            split = partition_kernels(editor, cat, node)
            if split is not None:
                done.append(split[0])
                work.append(split[1])
    return done


def downstream_names(node: ir.Node, editor: Editor, depth: int = 4) -> set[str]:
    """Output names of a concat and of the distributable / partitionable ops below it."""
    names: set[str] = set()
    frontier = [node]
    for _ in range(depth):
        nxt = []
        for cat in frontier:
            names.add(cat.outputs[0].name or "")
            for user in consumers(cat.outputs[0]):
                names.update(v.name or "" for v in user.outputs)
                if user.op_type != "Concat" and distributable(editor, cat, user):
                    nxt.append(user)
        frontier = nxt
    return names


def _driver_match(editor: Editor, concat: ir.Node, peak: PeakView) -> Tried | None:
    touched = {x.name for x in concat.inputs if x is not None} | downstream_names(concat, editor)
    return "solo" if touched & peak.live else None


#: The driver's view of this rewrite (:mod:`serenity.rewrite.registry`).
DRIVER = DriverRule(
    name="concat",
    ops=frozenset({"Concat"}),
    match=_driver_match,
    apply=lambda editor, concat, peak: rewrite_concat(editor, concat),
)
