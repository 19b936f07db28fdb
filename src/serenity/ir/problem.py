"""The scheduling problem: ops and tensors as dense integer ids.

A :class:`Problem` is what every scheduling engine consumes. It is built once
(from ONNX by :mod:`serenity.io`, or directly by tests and benchmarks), checked,
and read-only afterwards. Ops are numbered ``0..n-1`` in the order the source
file lists them ("file order"); tensors ``0..m-1``. Names are kept only so that
results can be mapped back to the model.

Only *activation* tensors appear here (see the memory model in
``docs/memory-model.md``): weights, constants and anything computed from
weights alone are not counted and not scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence

from serenity.errors import CycleError, ModelError


def ops_of(mask: int) -> list[int]:
    """The ops of a set of ops given as a bitmask (bit ``v``: op ``v``), ascending."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class Problem:
    """A DAG of ops over sized tensors, with graph inputs and outputs.

    Args:
        op_names: One unique name per op, in file order.
        tensor_sizes: Byte size of every tensor (``>= 0``).
        op_inputs: Per op, the tensor ids it reads. Duplicates are removed: a
            tensor read twice counts once.
        op_outputs: Per op, the tensor ids it writes. Each tensor has at most
            one producer.
        graph_inputs: Tensors supplied by the caller (live from the start).
            Every tensor without a producer must be listed here.
        graph_outputs: Tensors returned to the caller (live until the end).
        tensor_names: Optional names, default ``t0, t1, ...``.
        op_types: Optional operator types (``"Conv"``), default ``"Op"``.
        inplace_inputs: Optional, per op: input tensor ids the op may overwrite
            with its (single) output when the in-place option is on and the
            input dies at this op. Only used by the in-place memory model.
        name: A label for reports.

    Raises:
        ModelError: a tensor has two producers, an unproduced tensor is not a
            graph input, or an id is out of range.
        CycleError: the ops do not form a DAG.

    Example:
        >>> p = Problem(["a", "b"], [4, 8, 2], [[0], [1]], [[1], [2]], [0], [2])
        >>> p.num_ops, p.num_tensors, p.topological_order()
        (2, 3, [0, 1])
    """

    op_names: tuple[str, ...]
    tensor_sizes: tuple[int, ...]
    op_inputs: tuple[tuple[int, ...], ...]
    op_outputs: tuple[tuple[int, ...], ...]
    graph_inputs: tuple[int, ...]
    graph_outputs: tuple[int, ...]
    tensor_names: tuple[str, ...]
    op_types: tuple[str, ...]
    inplace_inputs: tuple[tuple[int, ...], ...]
    name: str
    # Derived in __init__.
    producer: tuple[int, ...]
    consumers: tuple[tuple[int, ...], ...]
    preds: tuple[tuple[int, ...], ...]
    succs: tuple[tuple[int, ...], ...]
    is_graph_output: tuple[bool, ...]

    def __init__(
        self,
        op_names: Sequence[str],
        tensor_sizes: Sequence[int],
        op_inputs: Sequence[Sequence[int]],
        op_outputs: Sequence[Sequence[int]],
        graph_inputs: Sequence[int],
        graph_outputs: Sequence[int],
        tensor_names: Sequence[str] | None = None,
        op_types: Sequence[str] | None = None,
        inplace_inputs: Sequence[Sequence[int]] | None = None,
        name: str = "problem",
    ) -> None:
        n, m = len(op_names), len(tensor_sizes)
        s = object.__setattr__  # attributes are set once here, read-only afterwards
        s(self, "op_names", tuple(op_names))
        s(self, "tensor_sizes", tuple(int(x) for x in tensor_sizes))
        # dict.fromkeys de-duplicates while keeping the first-seen order.
        s(self, "op_inputs", tuple(tuple(dict.fromkeys(ins)) for ins in op_inputs))
        s(self, "op_outputs", tuple(tuple(dict.fromkeys(outs)) for outs in op_outputs))
        s(self, "graph_inputs", tuple(dict.fromkeys(graph_inputs)))
        s(self, "graph_outputs", tuple(dict.fromkeys(graph_outputs)))
        s(
            self,
            "tensor_names",
            tuple(tensor_names) if tensor_names else tuple(f"t{i}" for i in range(m)),
        )
        s(self, "op_types", tuple(op_types) if op_types else ("Op",) * n)
        s(
            self,
            "inplace_inputs",
            tuple(tuple(x) for x in inplace_inputs) if inplace_inputs else ((),) * n,
        )
        s(self, "name", name)
        self._check_shapes(n, m)

        producer = [-1] * m
        consumers: list[list[int]] = [[] for _ in range(m)]
        for v in range(n):
            for t in self.op_outputs[v]:
                if producer[t] != -1:
                    raise ModelError(
                        f"tensor '{self.tensor_names[t]}' is produced by both "
                        f"'{op_names[producer[t]]}' and '{op_names[v]}'"
                    )
                producer[t] = v
            for t in self.op_inputs[v]:
                consumers[t].append(v)
        inputs = set(self.graph_inputs)
        for t in range(m):
            if producer[t] == -1 and t not in inputs:
                raise ModelError(
                    f"tensor '{self.tensor_names[t]}' has no producer and is not a graph input"
                )
            if producer[t] != -1 and t in inputs:
                raise ModelError(
                    f"graph input '{self.tensor_names[t]}' is also produced by "
                    f"'{op_names[producer[t]]}'"
                )
        preds = [
            tuple(sorted({producer[t] for t in self.op_inputs[v] if producer[t] != -1}))
            for v in range(n)
        ]
        succs: list[list[int]] = [[] for _ in range(n)]
        for v in range(n):
            for u in preds[v]:
                succs[u].append(v)
        is_out = [False] * m
        for t in self.graph_outputs:
            is_out[t] = True
        s(self, "producer", tuple(producer))
        s(self, "consumers", tuple(tuple(c) for c in consumers))
        s(self, "preds", tuple(preds))
        s(self, "succs", tuple(tuple(x) for x in succs))
        s(self, "is_graph_output", tuple(is_out))
        self.topological_order()  # raises CycleError on a cycle

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Problem is read-only")

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, ops={self.num_ops}, tensors={self.num_tensors})"

    def _check_shapes(self, n: int, m: int) -> None:
        lists = (self.op_inputs, self.op_outputs, self.op_types, self.inplace_inputs)
        if any(len(x) != n for x in lists):
            raise ModelError(
                "op_inputs, op_outputs, op_types and inplace_inputs need one entry per op"
            )
        if len(self.tensor_names) != m:
            raise ModelError("tensor_names needs one entry per tensor")
        if len(set(self.op_names)) != n:
            raise ModelError("op names must be unique")
        if any(x < 0 for x in self.tensor_sizes):
            raise ModelError("tensor sizes must be non-negative")
        ids = [t for group in (*self.op_inputs, *self.op_outputs) for t in group]
        ids += [*self.graph_inputs, *self.graph_outputs]
        if any(not 0 <= t < m for t in ids):
            raise ModelError("tensor id out of range")

    @property
    def num_ops(self) -> int:
        return len(self.op_names)

    @property
    def num_tensors(self) -> int:
        return len(self.tensor_sizes)

    def topological_order(self) -> list[int]:
        """File order if it is topological, else the stable Kahn order.

        Kahn's algorithm always takes the ready op with the smallest id, so the
        result is deterministic and equals file order whenever that is valid.

        Raises:
            CycleError: naming the ops that lie on or behind a cycle.

        Complexity: O((n + e) log n).
        """
        import heapq

        indeg = [len(p) for p in self.preds]
        heap = [v for v in range(self.num_ops) if indeg[v] == 0]
        heapq.heapify(heap)
        order: list[int] = []
        while heap:
            v = heapq.heappop(heap)
            order.append(v)
            for w in self.succs[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    heapq.heappush(heap, w)
        if len(order) != self.num_ops:
            stuck = [self.op_names[v] for v in range(self.num_ops) if indeg[v] > 0]
            shown = ", ".join(f"'{x}'" for x in stuck[:5])
            more = f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""
            raise CycleError(f"the graph has a cycle through or behind nodes {shown}{more}")
        return order

    def is_topological(self, order: Sequence[int]) -> bool:
        """True when ``order`` is a permutation of all ops respecting every edge."""
        if len(order) != self.num_ops or sorted(order) != list(range(self.num_ops)):
            return False
        pos = [0] * self.num_ops
        for i, v in enumerate(order):
            pos[v] = i
        return all(pos[u] < pos[v] for v in range(self.num_ops) for u in self.preds[v])

    def ancestor_masks(self) -> list[int]:
        """Per op, the bitset of its ancestors (bit ``u`` set when ``u`` must run first).

        Complexity: O(n^2 / w) with w-bit words.
        """
        masks = [0] * self.num_ops
        for v in self.topological_order():
            acc = 0
            for u in self.preds[v]:
                acc |= masks[u] | (1 << u)
            masks[v] = acc
        return masks

    def descendant_masks(self) -> list[int]:
        """Per op, the bitset of its descendants. Complexity: O(n^2 / w)."""
        masks = [0] * self.num_ops
        for v in reversed(self.topological_order()):
            acc = 0
            for w in self.succs[v]:
                acc |= masks[w] | (1 << w)
            masks[v] = acc
        return masks

    def op_index(self) -> dict[str, int]:
        """Map from op name to op id."""
        return {name: i for i, name in enumerate(self.op_names)}
