"""A rewrite for the tests: one module, registered with one line.

It shows what a rewrite must declare for the driver (:mod:`serenity.rewrite.registry`):
an ``Identity`` whose input or output is live at the peak is dropped, its
consumers reading its input instead (under the default memory model the
Identity step holds both copies).
"""

from __future__ import annotations

import onnx_ir as ir

from serenity.rewrite._graph import Editor, Rewrite
from serenity.rewrite.registry import DriverRule, PeakView, Tried


def drop_identity(editor: Editor, node: ir.Node) -> Rewrite | None:
    x, y = node.inputs[0], node.outputs[0]
    if x is None or y.is_graph_output() or x.is_graph_input():
        return None
    y.replace_all_uses_with(x)
    editor.graph.remove(node, safe=True)
    return Rewrite("drop_identity", (node.name or "",))


def _match(editor: Editor, node: ir.Node, peak: PeakView) -> Tried | None:
    touched = {node.outputs[0].name, *(x.name for x in node.inputs if x is not None)}
    return "solo" if touched & peak.live else None


DRIVER = DriverRule(
    name="drop_identity",
    ops=frozenset({"Identity"}),
    match=_match,
    apply=lambda editor, node, peak: [] if (d := drop_identity(editor, node)) is None else [d],
)
