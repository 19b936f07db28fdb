"""Baseline schedulers: fast, deterministic, and not optimal in general.

Each takes a :class:`~serenity.ir.Problem` and returns a topological order of
op ids. They are the baselines the exact engines are measured against and the
upper bounds that seed them. Ties always break on the smallest op id, so the
same graph gives the same order every run.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from serenity.ir import Problem
from serenity.memory import inplace_saving, simulate

Heuristic = Callable[[Problem, bool], list[int]]


def file_order(problem: Problem, inplace: bool = False) -> list[int]:
    """The order the model file lists its ops (made topological if it is not)."""
    return problem.topological_order()


def reverse_postorder(problem: Problem, inplace: bool = False) -> list[int]:
    """Reverse post-order of a depth-first walk along the edges from the sources.

    The classic compiler order: it keeps a chain together but starts every
    branch of a fork before finishing any. Complexity: O(n + e).
    """
    n = problem.num_ops
    seen = [False] * n
    post: list[int] = []
    for root in range(n):
        if seen[root] or problem.preds[root]:
            continue
        seen[root] = True
        stack = [(root, 0)]
        while stack:
            v, i = stack[-1]
            succs = problem.succs[v]
            if i < len(succs):
                stack[-1] = (v, i + 1)
                w = succs[i]
                if not seen[w]:
                    seen[w] = True
                    stack.append((w, 0))
            else:
                stack.pop()
                post.append(v)
    return post[::-1]


def dfs_from_outputs(problem: Problem, inplace: bool = False) -> list[int]:
    """Post-order over operands, from the graph outputs back (XLA's DFS scheduler).

    Each op is emitted as soon as all of its operands are, so a branch is
    finished before the next one starts. Operands with more ancestors are
    visited first: the heavier sub-computation runs while little else is live.
    Complexity: O(n^2 / 64 + e log e) for the ancestor counts.
    """
    n = problem.num_ops
    weight = [a.bit_count() for a in problem.ancestor_masks()]
    roots = [problem.producer[t] for t in problem.graph_outputs if problem.producer[t] >= 0]
    roots += [v for v in range(n) if not problem.succs[v]]
    seen = [False] * n
    order: list[int] = []
    for root in dict.fromkeys(roots):
        if seen[root]:
            continue
        seen[root] = True
        stack = [(root, sorted(problem.preds[root], key=lambda u: (-weight[u], u)), 0)]
        while stack:
            v, operands, i = stack[-1]
            if i < len(operands):
                stack[-1] = (v, operands, i + 1)
                u = operands[i]
                if not seen[u]:
                    seen[u] = True
                    stack.append((u, sorted(problem.preds[u], key=lambda w: (-weight[w], w)), 0))
            else:
                stack.pop()
                order.append(v)
    return order


def _list_schedule(problem: Problem, inplace: bool, peak_first: bool) -> list[int]:
    """Greedy list scheduling over the ready ops, one op per step.

    With ``peak_first`` false the key is XLA's list scheduler's: most bytes
    freed minus bytes allocated. With it true the key is PyTorch Inductor's
    least-peak-memory-first: the smallest footprint while the op runs, then
    most bytes freed minus allocated; ties on the smallest op id.

    The ready ops wait in a heap. An op's key changes only when a tensor it reads
    loses a reader (what it frees, and overwrites in place, depends on the readers
    left; the memory before the step is the same for every ready op, so it is left
    out), so only the ready readers of the step's inputs are keyed again, instead of
    every ready op at every step (ER N=64, 2,133 ops: some 900,000 keys a run
    before). Complexity: O(e * c * log n) for c readers per tensor.
    """
    sizes = problem.tensor_sizes
    is_out = problem.is_graph_output
    remaining = [len(c) for c in problem.consumers]
    indeg = [len(p) for p in problem.preds]
    order: list[int] = []

    def key(v: int) -> tuple[int, int, int]:
        outs = problem.op_outputs[v]
        alloc = sum(sizes[t] for t in outs)
        freed = sum(sizes[t] for t in problem.op_inputs[v] if remaining[t] == 1 and not is_out[t])
        freed += sum(sizes[t] for t in outs if not problem.consumers[t] and not is_out[t])
        saved = inplace_saving(problem, v, remaining)[0] if inplace else 0
        return (alloc - saved if peak_first else 0, alloc - freed, v)

    keyed = {v: key(v) for v in range(problem.num_ops) if indeg[v] == 0}  # the ready ops
    heap = list(keyed.values())
    heapq.heapify(heap)
    while heap:
        k = heapq.heappop(heap)
        v = k[2]
        if keyed.get(v) != k:
            continue  # keyed again since
        del keyed[v]
        order.append(v)
        touched: set[int] = set()
        for t in problem.op_inputs[v]:
            remaining[t] -= 1
            touched.update(c for c in problem.consumers[t] if c in keyed)
        for w in problem.succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                touched.add(w)
        for w in touched:
            k = key(w)
            if keyed.get(w) != k:
                keyed[w] = k
                heapq.heappush(heap, k)
    return order


def xla_list(problem: Problem, inplace: bool = False) -> list[int]:
    """Greedy: the ready op that frees the most bytes net of what it allocates."""
    return _list_schedule(problem, inplace, peak_first=False)


def lpmf(problem: Problem, inplace: bool = False) -> list[int]:
    """Greedy: the ready op whose step has the lowest footprint (Inductor's LPMF)."""
    return _list_schedule(problem, inplace, peak_first=True)


#: The baseline heuristics by method name, in the order best-heuristic tries them.
HEURISTICS: dict[str, Heuristic] = {
    "file": file_order,
    "rpo": reverse_postorder,
    "dfs": dfs_from_outputs,
    "xla-list": xla_list,
    "lpmf": lpmf,
}


def best_heuristic_order(
    problem: Problem, inplace: bool = False
) -> tuple[list[int], str, dict[str, int]]:
    """Run every heuristic; return the lowest-peak order, its name and all peaks.

    The first heuristic in :data:`HEURISTICS` order wins ties.
    """
    peaks: dict[str, int] = {}
    best: tuple[int, str, list[int]] | None = None
    for name, heuristic in HEURISTICS.items():
        order = heuristic(problem, inplace)
        peaks[name] = simulate(problem, order, inplace=inplace).peak_bytes
        if best is None or peaks[name] < best[0]:
            best = (peaks[name], name, order)
    assert best is not None  # HEURISTICS is never empty
    return best[2], best[1], peaks
