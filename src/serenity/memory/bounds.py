"""A structural lower bound on the peak of every order: the width bound.

:func:`~serenity.memory.model.lower_bound` looks at one op at a time (its
inputs and outputs are live together). On random-wired graphs that bound stays
far below the optimum: a RandWire node sums its inputs one ``Add`` at a time,
so no single op holds much, yet every order must keep many node outputs alive
at once. The width bound measures that from the graph's shape.

The argument, for a size ``sigma``. An op ``u`` with an output of ``sigma``
bytes or more holds one from its step to the last step that reads one (its
*interval*; only its own step when nothing reads it). In a given order these
intervals form an interval graph, and ops whose intervals share a step are
all live during that step (the outputs are distinct tensors; one read by
the running op is live while it runs). So the peak is at least ``sigma``
times the largest clique of that interval graph, which is its pathwidth plus
one. Some overlaps hold in *every* order: ``u``'s interval reaches at least
every consumer ``c`` of those outputs and every ancestor of ``c``; call that
set, with ``u`` and its ancestors, ``E(u)``. If ``w`` is in ``E(u)`` and ``u``
in ``E(w)``, each interval starts no later than the other ends. Those pairs form the *forced
overlap graph* ``F``, a subgraph of every order's interval graph, so every
order peaks at or above ``sigma * (pw(F) + 1)``.

``F`` holds every producer-consumer edge and joins the inputs of each op, and
more. Pathwidth is at least treewidth, and treewidth at least the minimum
degree of every minor (it is minor-monotone, and a graph of treewidth ``k`` has
a vertex of degree at most ``k``); :func:`minor_min_width` finds a minor of
high minimum degree by contracting edges (the MMD+ heuristic with
least-common-neighbour contraction, Bodlaender and Koster, "Treewidth
computations II. Lower bounds", 2011). With ``k`` its value the bound is
``(k + 1) * sigma``, taken for the few largest output sizes.

In-place model: the op ``x`` running at the shared step may write its output
over one input that dies there, so one clique member may not count on top of
``x``'s output. If the overwritten input is a member's, the others hold
``(members - 2) * sigma`` and ``x`` writes at least ``sigma`` when it is a
member; otherwise at most ``x`` itself is lost. Either way the step holds
``(members - 1) * sigma``: the bound is ``k * sigma``.

Measured: on RandWire stages it lifts the bound well above the per-op one
(ER N=64: 655,360 to 1,556,480 bytes, 20 tensors); on the timm graphs it does
not beat it. What limits it is the treewidth heuristic, not ``F``: on ER N=32
seed 0 (77,824-byte outputs, 185 vertices) MMD+ proves treewidth 9 (10
tensors) while a min-fill elimination shows at most 16, and the optimum holds
18; on WS N=128 seed 0 the range is 17 to 47. Randomised tie-breaking in
MMD+ gains at most one. On the 82-vertex graph left by the simplicial
reductions, a CP-SAT elimination-order model did not decide ``tw <= 12`` in
2 minutes, nor a memoised component recursion ``tw <= 9`` in 3. An exact treewidth solver (positive-instance driven, Tamaki
2019) on the reduced graph is the measured next step for this bound.
``tests/test_bounds.py`` checks it against the exhaustive optimum on random
graphs in both models and the treewidth bound against the exact treewidth.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from serenity.ir import Problem

#: Distinct output sizes (largest first) the width bound is computed for.
MAX_LEVELS = 6
#: Graphs with more ops get no width bound (its matrices take n^2 bytes).
MAX_OPS = 8192


def minor_min_width(adj: Sequence[set[int]]) -> int:
    """A lower bound on the treewidth of an undirected graph (MMD+, least-c).

    Repeatedly takes a vertex of minimum degree, records that degree, and
    contracts it into the neighbour with which it shares the fewest
    neighbours (ties: smaller degree, then smaller index). Every graph seen
    is a minor of the input, so the largest recorded degree is at most the
    treewidth.

    Args:
        adj: Neighbour sets, symmetric, no self-loops (not modified).

    Returns:
        The bound (0 for a graph without edges).

    Complexity: O(e x d + n log n) for maximum degree d.
    """
    g = [set(a) for a in adj]
    alive = [True] * len(g)
    heap = [(len(a), v) for v, a in enumerate(g)]
    heapq.heapify(heap)
    best, remaining = 0, len(g)
    while heap and remaining - 1 > best:
        d, v = heapq.heappop(heap)
        if not alive[v] or d != len(g[v]):
            continue  # a stale entry
        best = max(best, d)
        alive[v] = False
        remaining -= 1
        nb = g[v]
        g[v] = set()
        if not nb:
            continue
        u = min(nb, key=lambda w: (len(g[w] & nb), len(g[w]), w))
        for w in nb:
            g[w].discard(v)
            if w != u:
                g[u].add(w)
                g[w].add(u)
        for w in nb:
            heapq.heappush(heap, (len(g[w]), w))
    return best


def _reach(problem: Problem, sigma: int, anc: list[int]) -> np.ndarray:
    """The boolean matrix of ``E`` between the ops ``keep`` with an output of ``sigma``
    bytes or more: ``E[i, j]`` when op ``keep[j]`` runs no later than the last
    reader of op ``keep[i]``'s such outputs in every order (``anc``: the problem's
    ancestor masks).

    Complexity: O(n^2 / 8) bytes and time for n ops.
    """
    sizes = problem.tensor_sizes
    keep = [
        v for v in range(problem.num_ops) if any(sizes[t] >= sigma for t in problem.op_outputs[v])
    ]
    n = problem.num_ops
    nbytes = (n + 7) // 8
    rows = np.zeros((len(keep), nbytes), dtype=np.uint8)
    for i, u in enumerate(keep):
        reach = anc[u] | 1 << u  # its ancestors run before it in every order
        for t in problem.op_outputs[u]:
            if sizes[t] >= sigma:
                for c in problem.consumers[t]:
                    reach |= anc[c] | 1 << c
        rows[i] = np.frombuffer(reach.to_bytes(nbytes, "little"), dtype=np.uint8)
    full = np.unpackbits(rows, axis=1, count=n, bitorder="little").astype(bool)
    return full[:, keep]


def width_bound(problem: Problem, *, inplace: bool = False) -> int:
    """The width bound (module docstring): a lower bound on every order's peak.

    Computed for the ``MAX_LEVELS`` largest distinct output sizes; 0 for a
    graph without ops or with more than ``MAX_OPS`` (a valid, if useless, bound).

    Complexity: O(MAX_LEVELS x (n^2 / 8 + e_F x d + n log n)) for n ops and a
    forced overlap graph of e_F edges and maximum degree d.
    """
    if problem.num_ops > MAX_OPS:
        return 0
    sizes = problem.tensor_sizes
    produced = {sizes[t] for outs in problem.op_outputs for t in outs}
    anc = problem.ancestor_masks()
    best = 0
    for sigma in sorted((s for s in produced if s > 0), reverse=True)[:MAX_LEVELS]:
        reach = _reach(problem, sigma, anc)
        forced = reach & reach.T
        np.fill_diagonal(forced, False)
        adj = [set(np.flatnonzero(row).tolist()) for row in forced]
        k = minor_min_width(adj)
        best = max(best, (k if inplace else k + 1) * sigma)
    return best
