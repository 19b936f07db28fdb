"""An FX graph as a scheduling problem, and the graph rebuilt in a new op order.

Works on any ``torch.fx.Graph`` whose nodes carry ``meta["val"]`` (what
``torch.export`` and ExecuTorch's edge dialect leave): the ATen graph of an
``ExportedProgram`` and ExecuTorch's edge graph alike. The caller says which
placeholders are activations (user inputs, per the graph signature) and which
ops only alias their input (views); everything else follows the memory model
of ``DESIGN.md``:

* **Activations** are the user-input placeholders and every tensor computed
  from one. Parameters, buffers, constants and nodes that read none of the
  activations (weight-only arithmetic) are not counted and not scheduled; in
  the rebuilt graph they are placed just before their first consumer.
* **Storage is counted once.** A view (an op whose schema says its output
  aliases an input, or one the caller names, such as ExecuTorch's
  ``view_copy``) and ``operator.getitem`` on a multi-output op are *attached*
  nodes: they are not ops of the problem, their value is the storage of their
  input, and every consumer of the view reads that storage, so it lives until
  the last use of any alias (what eager PyTorch's reference counting does and
  what ExecuTorch's planner does for views). Attached nodes are placed right
  after their inputs exist.
* A multi-output op produces one tensor per tensor it returns; outputs that no
  ``getitem`` reads die when the op ends.

Complexity: O(n + e) to build and to rebuild, for ``n`` nodes and ``e`` edges.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from serenity.errors import ModelError, UnknownShapeError, UnsupportedModelError
from serenity.ir import Problem
from serenity.plan import align_up

#: Ops whose output is a view of their input although their schema does not say so.
UNANNOTATED_VIEWS = ("aten::_unsafe_view",)


def schema_alias(node: fx.Node) -> bool:
    """Whether ``node``'s schema says its (first) output aliases an input without writing it.

    ``aten.view``, ``permute``, ``expand``, ``slice``, ``split`` (a list of views),
    ``detach``, ``alias``... and ``aten._unsafe_view``.
    """
    schema = getattr(node.target, "_schema", None)
    if schema is None or not schema.returns:
        return False
    if schema.name in UNANNOTATED_VIEWS:
        return True
    alias = schema.returns[0].alias_info
    return alias is not None and not alias.is_write


def is_mutating(node: fx.Node) -> bool:
    """Whether ``node`` calls an op that writes one of its inputs in place."""
    schema = getattr(node.target, "_schema", None)
    return node.op == "call_function" and schema is not None and schema.is_mutable


def _tensor_bytes(val: torch.Tensor, node: fx.Node, alignment: int = 1) -> int:
    numel = val.numel()
    if not isinstance(numel, int):
        raise UnknownShapeError(
            f"node '{node.name}' has a dynamic shape {tuple(val.shape)}: serenity needs "
            "static shapes (export without dynamic_shapes)"
        )
    return align_up(int(numel) * val.element_size(), alignment)


def _leaves(val: Any) -> list[Any]:
    """The top-level elements of a node's value (one for a tensor)."""
    return list(val) if isinstance(val, (tuple, list)) else [val]


@dataclass(frozen=True)
class GraphProblem:
    """A graph's scheduling problem and the way back to its nodes.

    Attributes:
        problem: Ops = the scheduled nodes, in graph order; tensors = storages.
        op_nodes: The FX node of each op id.
        graph: The graph it was built from (never modified).
        attached: Views and ``getitem``s of activations (not ops of the problem).
    """

    problem: Problem
    op_nodes: tuple[fx.Node, ...]
    graph: fx.Graph
    attached: frozenset[fx.Node]

    def node_order(self, order: Sequence[int]) -> list[fx.Node]:
        """Every node of the graph in a new sequence: placeholders, then the ops
        in ``order`` (op ids), each preceded by the weight-only nodes it reads
        and followed by the views and ``getitem``s of its outputs, then nodes
        nothing reads (asserts), then the output node.

        Raises:
            ValueError: ``order`` is not a topological order of the problem.

        Complexity: O(n + e).
        """
        if not self.problem.is_topological(order):
            raise ValueError("order is not a topological order of the graph's ops")
        nodes = list(self.graph.nodes)
        scheduled = set(self.op_nodes)
        emitted: set[fx.Node] = set()
        seq: list[fx.Node] = []

        def emit(node: fx.Node) -> None:
            stack = [(node, False)]
            while stack:
                n, ready = stack.pop()
                if n in emitted:
                    continue
                if not ready:
                    stack.append((n, True))
                    stack.extend(
                        (a, False) for a in reversed(n.all_input_nodes) if a not in emitted
                    )
                    continue
                if n in scheduled and n is not node:
                    raise ValueError(f"op '{n.name}' is needed before it is scheduled")
                emitted.add(n)
                seq.append(n)
                for user in n.users:  # attached nodes follow as soon as they can
                    if user in self.attached and all(a in emitted for a in user.all_input_nodes):
                        stack.append((user, True))

        for n in nodes:
            if n.op == "placeholder":
                emit(n)
        for v in order:
            emit(self.op_nodes[v])
        for n in nodes:
            if n.op != "output":
                emit(n)
        seq.extend(n for n in nodes if n.op == "output")
        return seq

    def rebuilt(self, order: Sequence[int]) -> fx.Graph:
        """A new graph, equal to :attr:`graph` but for its nodes in :meth:`node_order`.

        Node names and metadata are kept, so a graph signature that names nodes
        stays valid.
        """
        new = fx.Graph(owning_module=self.graph.owning_module, tracer_cls=self.graph._tracer_cls)
        new._codegen = self.graph._codegen
        env: dict[fx.Node, fx.Node] = {}
        for n in self.node_order(order):
            env[n] = new.node_copy(n, lambda a: env[a])
            if env[n].name != n.name:  # pragma: no cover - names are unique in the source
                raise ModelError(f"node '{n.name}' was renamed while rebuilding the graph")
        new.lint()
        return new


def problem_from_graph(
    graph: fx.Graph,
    activation_inputs: Collection[str],
    *,
    is_alias: Callable[[fx.Node], bool] = schema_alias,
    alignment: int = 1,
    name: str = "graph",
) -> GraphProblem:
    """The scheduling problem of an FX graph (see the module docstring).

    Args:
        graph: Nodes with ``meta["val"]``.
        activation_inputs: Names of the placeholders that are activations.
        is_alias: True for a node whose outputs are views of its first input.
        alignment: Tensor sizes are rounded up to a multiple of it (an arena's
            alignment, so that the problem's peak bounds the arena).
        name: Label of the problem.

    Raises:
        ModelError: an in-place op (run ``run_decompositions({})`` first), a
            dynamic shape, or a node without ``meta["val"]``.

    Complexity: O(n + e).
    """
    sizes: list[int] = []
    tnames: list[str] = []
    storage: dict[fx.Node, list[int | None]] = {}  # activation node -> tensor id per element
    op_nodes: list[fx.Node] = []
    op_inputs: list[list[int]] = []
    op_outputs: list[list[int]] = []
    graph_inputs: list[int] = []
    graph_outputs: list[int] = []
    attached: set[fx.Node] = set()

    def new_tensor(size: int, label: str) -> int:
        sizes.append(size)
        tnames.append(label)
        return len(sizes) - 1

    def reads(node: fx.Node) -> list[int]:
        return [t for a in node.all_input_nodes for t in storage.get(a, ()) if t is not None]

    for node in graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if node.name in activation_inputs and isinstance(val, torch.Tensor):
                t = new_tensor(_tensor_bytes(val, node, alignment), node.name)
                storage[node] = [t]
                graph_inputs.append(t)
            continue
        if node.op == "output":
            graph_outputs.extend(reads(node))
            continue
        if node.op != "call_function" or not any(a in storage for a in node.all_input_nodes):
            continue  # weights, constants, get_attr: not activations
        if is_mutating(node):
            raise UnsupportedModelError(
                f"node '{node.name}' ({node.target}) writes its input in place: "
                "run ep.run_decompositions({}) first"
            )
        if node.target is operator.getitem:
            parent, index = node.args[0], node.args[1]
            assert isinstance(parent, fx.Node) and isinstance(index, int)
            storage[node] = [storage[parent][index]]
            attached.add(node)
            continue
        if "val" not in node.meta:
            raise ModelError(f"node '{node.name}' has no meta['val'] (not an exported graph?)")
        leaves = _leaves(node.meta["val"])
        if is_alias(node):
            base = next(a for a in node.all_input_nodes if a in storage)
            root = storage[base][0]
            storage[node] = [root] * len(leaves)
            attached.add(node)
            continue
        outs: list[int | None] = [
            new_tensor(
                _tensor_bytes(v, node, alignment),
                node.name if len(leaves) == 1 else f"{node.name}.{i}",
            )
            if isinstance(v, torch.Tensor)
            else None
            for i, v in enumerate(leaves)
        ]
        storage[node] = outs
        op_nodes.append(node)
        op_inputs.append(reads(node))
        op_outputs.append([t for t in outs if t is not None])

    problem = Problem(
        op_names=[n.name for n in op_nodes],
        tensor_sizes=sizes,
        op_inputs=op_inputs,
        op_outputs=op_outputs,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        tensor_names=tnames,
        op_types=[_op_type(n) for n in op_nodes],
        name=name,
    )
    return GraphProblem(problem, tuple(op_nodes), graph, frozenset(attached))


def _op_type(node: fx.Node) -> str:
    schema = getattr(node.target, "_schema", None)
    if schema is not None:
        return str(schema.name).split("::")[-1]
    return getattr(node.target, "__name__", str(node.target))
