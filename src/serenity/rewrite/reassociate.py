"""Re-associate a sum so that each term is added as soon as it is produced.

A plain export of ``w1*x1 + w2*x2 + ... + wk*xk`` (RandWire's weighted
aggregation, a residual sum, a multi-branch cell) is a chain of binary
``Add`` nodes in the order of the source expression, or one ``Sum`` node.
The order fixes the memory: every term must stay live until its turn in the
chain, although a schedule may produce the terms in any order. Addition is
associative and commutative, so the chain can be rebuilt in the order the
terms become available; a term added as soon as it exists can die at once.

A **sum** is found from its root: an ``Add`` (or a ``Sum`` with ≥ 3 inputs)
whose output is not itself the sole input of another Add of the sum. Its
*terms* are its inputs, except that an input produced by an ``Add`` whose
output has exactly one use (this node), is not a graph output and has the
same static shape, is expanded into that Add's inputs in turn (trees, not
only left-deep chains, are flattened). An intermediate sum used elsewhere
(or a graph output) is a term of the sum above it and the root of its own
sum: the chain is **split at that point**, never duplicated. Every term
must have the output's static shape (no broadcasting), so each partial sum
has it too.

The pass takes the wanted order as a *rank* per term name (lower first;
terms without a rank keep their place after the ranked ones, ties keep the
original order); :mod:`~serenity.rewrite.driver` computes it from the
schedule of the current graph. The terms are then summed left-deep in that
order: ``s2 = Add(t1, t2)``, ``s3 = Add(s2, t3)``, ..., the last Add taking
the root's output name. A sum already in that shape is left unchanged.

Floating-point addition is not associative: results equal the original
within rounding (a few ulps per term), not bitwise.

Under the default memory model each ``Add`` holds the accumulator, the term
and the new sum; under the in-place model (``--inplace``) the new sum
overwrites the accumulator. Either way a term that arrives early no longer
waits for the terms listed before it, so the re-association helps under
both models wherever terms are live at the peak while waiting their turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import onnx_ir as ir

from serenity.rewrite._graph import Editor, Rewrite, SitePass, consumers, static_shape
from serenity.rewrite.registry import DriverRule, PeakView, Tried, one


def _is_add(node: ir.Node | None) -> bool:
    return (
        node is not None
        and node.op_type == "Add"
        and node.domain in ("", "ai.onnx")
        and len(node.inputs) == 2
        and len(node.outputs) == 1
    )


def _is_sum(node: ir.Node | None) -> bool:
    return (
        node is not None
        and node.op_type == "Sum"
        and node.domain in ("", "ai.onnx")
        and len(node.outputs) == 1
        and len(node.inputs) >= 2
    )


def _inner(value: ir.Value | None, parent: ir.Node, shape: tuple[int, ...]) -> ir.Node | None:
    """The Add producing ``value`` when it is an intermediate of ``parent``'s sum."""
    if value is None:
        return None
    node = value.producer()
    if not _is_add(node) and not _is_sum(node):
        return None
    assert node is not None
    if value.is_graph_output() or len(value.uses()) != 1 or consumers(value) != [parent]:
        return None
    if static_shape(value) != shape:
        return None
    return node


def is_root(node: ir.Node) -> bool:
    """True when ``node`` is an Add / Sum that is not an intermediate of a larger sum."""
    if not (_is_add(node) or _is_sum(node)):
        return False
    out = node.outputs[0]
    shape = static_shape(out)
    if shape is None:
        return False
    users = consumers(out)
    return not (
        len(users) == 1
        and (_is_add(users[0]) or _is_sum(users[0]))
        and _inner(out, users[0], shape) is node
    )


def sum_terms(node: ir.Node) -> tuple[list[ir.Value], list[ir.Node]] | None:
    """The terms of the sum rooted at ``node`` and its Add / Sum nodes (root first).

    ``None`` when ``node`` is not a root, a term's shape differs from the
    output's, or the sum has fewer than three terms.
    """
    if not is_root(node):
        return None
    shape = static_shape(node.outputs[0])
    assert shape is not None
    terms: list[ir.Value] = []
    nodes: list[ir.Node] = []

    def walk(n: ir.Node) -> bool:
        nodes.append(n)
        for x in n.inputs:
            inner = _inner(x, n, shape)
            if inner is not None:
                if not walk(inner):
                    return False
            elif x is None or static_shape(x) != shape:
                return False
            else:
                terms.append(x)
        return True

    if not walk(node) or len(terms) < 3:
        return None
    return terms, nodes


def _is_left_deep(root: ir.Node, order: list[ir.Value]) -> bool:
    """True when ``root``'s sum is already the chain ``((t1 + t2) + t3) + ...`` in ``order``."""
    node: ir.Node | None = root
    k = len(order) - 1
    while k >= 1 and node is not None:
        if not _is_add(node) or node.inputs[1] is not order[k]:
            return False
        first = node.inputs[0]
        if k == 1:
            return first is order[0]
        node = first.producer() if first is not None else None
        k -= 1
    return False


def reassociate(
    editor: Editor, root: ir.Node, rank: Mapping[str, float] | None = None
) -> Rewrite | None:
    """Rebuild the sum rooted at ``root`` as a left-deep chain in ``rank`` order.

    Args:
        editor: Names and constants of the graph being edited.
        root: An Add or Sum (see :func:`sum_terms`).
        rank: Term name -> rank, lower summed first (``None``: keep the
            current order, which still turns a ``Sum`` or a tree into a chain).

    Returns:
        The rewrite, or ``None`` (graph unchanged) when ``root`` does not
        qualify or the sum is already a chain in that order.

    Complexity: O(k log k) for k terms.
    """
    found = sum_terms(root)
    if found is None:
        return None
    terms, nodes = found
    rank = rank or {}
    inf = float("inf")
    order = [
        t
        for _, _, t in sorted(
            ((rank.get(t.name or "", inf), i, t) for i, t in enumerate(terms)),
            key=lambda r: (r[0], r[1]),
        )
    ]
    if _is_left_deep(root, order):
        return None
    out = root.outputs[0]
    base = root.name or "sum"
    new_nodes: list[ir.Node] = []
    acc = order[0]
    for k, term in enumerate(order[1:], start=2):
        node = ir.Node(
            "", "Add", [acc, term], num_outputs=1, name=editor.fresh(f"{base}.reassoc{k}")
        )
        acc = node.outputs[0]
        acc.name = editor.fresh(f"{base}.partial{k}")
        acc.type = out.type
        acc.shape = ir.Shape(list(static_shape(out) or ()))
        new_nodes.append(node)
    record = Rewrite("reassociate", tuple(n.name or "" for n in nodes), len(terms))
    ir.convenience.replace_nodes_and_values(editor.graph, root, [root], new_nodes, [out], [acc])
    for node in nodes[1:]:
        editor.graph.remove(node, safe=True)
    return record


class ReassociatePass(SitePass):
    """Re-associate every sum of ≥ 3 terms in ``rank`` order (see the module docstring)."""

    def __init__(self, rank: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.rank = dict(rank or {})

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        return ((n,) for n in list(graph) if is_root(n))

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        (node,) = site
        return reassociate(editor, node, self.rank)


def _driver_match(editor: Editor, node: ir.Node, peak: PeakView) -> Tried | None:
    """The root of a sum of >= 3 terms with a term or partial sum live at the peak."""
    terms = sum_terms(node) if is_root(node) else None
    if terms is None:
        return None
    touched = {t.name for t in terms[0]} | {n.outputs[0].name for n in terms[1]}
    return "solo" if touched & peak.live else None


#: The driver's view of this pass (:mod:`serenity.rewrite.registry`): terms are
#: added in the order the current schedule makes them available.
DRIVER = DriverRule(
    name="reassociate",
    ops=frozenset({"Add", "Sum"}),
    match=_driver_match,
    apply=lambda editor, node, peak: one(reassociate(editor, node, peak.rank)),
)
