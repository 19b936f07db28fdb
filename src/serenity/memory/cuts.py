"""A lower bound from minimum cuts: the least memory any order can hold at each op's step.

The memory held after the ops of a downset ``S`` ran is a function of ``S`` alone
(:mod:`serenity.memory.model`): ``M(S)`` counts the graph inputs still read or
returned and never read, the outputs of ``S`` that an op outside ``S`` still reads,
and the graph outputs ``S`` produced. In every order, op ``v`` runs from some
downset ``S`` that holds every ancestor of ``v`` and not ``v``, at a step of
``M(S) + out(v)`` (less the largest input ``v`` may overwrite, under the in-place
model). So every order peaks at or above

    ``max over v of  min over such S of  M(S) + out(v)``,

and each inner minimum is a minimum cut. Nodes: the ops (source side: in ``S``) and
one node ``y_t`` per tensor that some op reads (source side: every reader of ``t``
in ``S``). Arcs of infinite capacity keep ``S`` a downset (``w -> u`` for each
predecessor ``u`` of ``w``: ``w`` in ``S`` and ``u`` not would be cut) and ``y_t``
honest (``y_t -> c`` for each reader ``c``); ``t``'s bytes are the capacity of
``producer(t) -> y_t`` (cut when ``t`` was produced and a reader has not run; the
source's arc for a graph input), or of ``producer(t) -> sink`` for a graph output.
Forcing ``v``'s predecessors to the source and ``v`` to the sink (infinite arcs;
the closure arcs carry the rest), every finite cut is a downset ``S`` of the kind
above and costs exactly ``M(S)`` less the constant graph inputs, and the least
``y`` a cut can choose is the honest one. One max-flow per op (OR-Tools' push-relabel;
the graph is built once and only the forcing arcs change).

**Pairs.** Two ops ``v`` and ``w`` that neither precedes run in one of two orders;
if ``v`` runs first, ``w``'s step is at least its cut with ``v`` also forced into
``S``, and the other way round. The smaller of the two is a bound on every order.
Tried among the ``PAIR_CANDIDATES`` ops with the highest single cuts.

**Orders known to hold an optimum.** As for the width bound
(:mod:`serenity.memory.bounds`): with ``before`` (precedences some optimal order
keeps, the exact engine's delay blocks) the downsets are those of the closure, and
the bound is one on the optimum.

Measured on the fused RandWire stages (2 cores; singles and pairs): WS N=256 seed 0
(1,816 ops) 4,124,672 bytes where the width bound with its minors stops at
3,268,608; WS N=128 seed 0 2,801,664 against 2,256,896; WS N=352 seed 0 4,902,912
against 4,202,496. Below about 1,000 ops the width bound with its minors is as high
or higher (WS N=48 seed 0: 1,556,480 with pairs, the same as the minors; optimum
1,712,128): the two are complementary.

Complexity: one max-flow on O(n + m) nodes and O(e) arcs per op and two per pair
tried (push-relabel: O(V^2 sqrt(E)) worst case, near linear on these graphs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ortools.graph.python import max_flow

from serenity.ir import Problem
from serenity.memory.bounds import _closure

#: Ops (those with the highest single cuts) whose pairs are tried (module docstring).
PAIR_CANDIDATES = 64
#: Capacities are int64: graphs whose bytes add up to this or more get the bound 0.
_MAX_CAPACITY = 1 << 62


class StepCuts:
    """The least footprint of an op's step over the downsets it may run from.

    Args:
        problem: The graph.
        inplace: Subtract the largest input each op may overwrite.
        before: Per op, a bitmask of ops that run before it besides its
            ancestors (module docstring, "Orders known to hold an optimum").

    Raises:
        ValueError: ``before`` closes a cycle.
    """

    def __init__(
        self, problem: Problem, *, inplace: bool = False, before: Sequence[int] | None = None
    ) -> None:
        n, m = problem.num_ops, problem.num_tensors
        sizes = problem.tensor_sizes
        self.n = n
        self.ancestors = problem.ancestor_masks() if before is None else _closure(problem, before)
        direct = [set(problem.preds[v]) for v in range(n)]
        if before is not None:
            for v, mask in enumerate(before):
                direct[v].update(u for u in range(n) if mask >> u & 1)
        self.direct = [sorted(d) for d in direct]
        source, sink = n + m, n + m + 1
        infinite = sum(sizes) + 1
        self.infinite = infinite
        tails: list[int] = []
        heads: list[int] = []
        caps: list[int] = []

        def arc(tail: int, head: int, cap: int) -> None:
            tails.append(tail)
            heads.append(head)
            caps.append(cap)

        for w in range(n):
            for u in self.direct[w]:
                arc(w, u, infinite)
        outputs = set(problem.graph_outputs)
        constant = 0
        for t in range(m):
            p, readers = problem.producer[t], problem.consumers[t]
            if t in outputs:  # live from its producer's step to the end
                if p < 0:
                    constant += sizes[t]
                else:
                    arc(p, sink, sizes[t])
            elif readers:  # live until its last reader ran
                for c in readers:
                    arc(n + t, c, infinite)
                arc(source if p < 0 else p, n + t, sizes[t])
            elif p < 0:  # a graph input nobody reads stays for good
                constant += sizes[t]
        self.constant = constant
        first = len(tails)
        for v in range(n):  # the forcing arcs, closed (capacity 0) until used
            arc(source, v, 0)
            arc(v, sink, 0)
        self.flow = max_flow.SimpleMaxFlow()
        self.flow.add_arcs_with_capacity(
            np.array(tails, dtype=np.int32),
            np.array(heads, dtype=np.int32),
            np.array(caps, dtype=np.int64),
        )
        self.into = np.arange(first, first + 2 * n, 2, dtype=np.int32)  # source -> v
        self.out_of = self.into + 1  # v -> sink
        self.source, self.sink = source, sink
        saving = [0] * n
        if inplace:
            for v in range(n):
                saving[v] = max(
                    (sizes[t] for t in problem.inplace_inputs[v] if t not in outputs), default=0
                )
        self.own = [sum(sizes[t] for t in problem.op_outputs[v]) - saving[v] for v in range(n)]
        self.solves = 0

    def comparable(self, v: int, w: int) -> bool:
        return bool(self.ancestors[v] >> w & 1 or self.ancestors[w] >> v & 1)

    def step(self, v: int, first: int = -1) -> int:
        """The least step of ``v`` over the downsets holding its ancestors (and
        ``first`` with its ancestors, when given: not a descendant of ``v``)."""
        inside = list(self.direct[v]) if first < 0 else [*self.direct[v], first]
        opened = np.array(inside, dtype=np.int32)
        self.flow.set_arcs_capacity(self.into[opened], np.full(len(inside), self.infinite))
        self.flow.set_arc_capacity(int(self.out_of[v]), self.infinite)
        status = self.flow.solve(self.source, self.sink)
        self.flow.set_arcs_capacity(self.into[opened], np.zeros(len(inside), dtype=np.int64))
        self.flow.set_arc_capacity(int(self.out_of[v]), 0)
        self.solves += 1
        if status != self.flow.OPTIMAL:
            raise RuntimeError(f"max-flow failed ({status}) on the cut of op {v}")
        cut = self.flow.optimal_flow()
        if cut >= self.infinite:
            raise ValueError(f"op {first} cannot run before op {v}")
        return int(cut) + self.constant + self.own[v]


def cut_bound(
    problem: Problem,
    *,
    inplace: bool = False,
    before: Sequence[int] | None = None,
    pairs: int = PAIR_CANDIDATES,
) -> int:
    """The cut bound (module docstring): a lower bound on every order's peak (with
    ``before``: on the optimum), from every op's least step and from the pairs among
    the ``pairs`` ops whose least steps are highest.

    0 when the graph has no ops or its tensors add up to ``2**62`` bytes or more.

    Complexity: n + O(pairs^2) max-flows (module docstring).
    """
    if problem.num_ops == 0 or sum(problem.tensor_sizes) >= _MAX_CAPACITY:
        return 0  # a valid, if useless, bound (the capacities are 64-bit)
    cuts = StepCuts(problem, inplace=inplace, before=before)
    single = [cuts.step(v) for v in range(problem.num_ops)]
    best = max(single)
    chosen = sorted(range(problem.num_ops), key=lambda v: -single[v])[:pairs]
    for i, v in enumerate(chosen):
        for w in chosen[i + 1 :]:
            if cuts.comparable(v, w):
                continue
            later = cuts.step(w, first=v)  # v runs first
            if later <= best:
                continue
            best = max(best, min(later, cuts.step(v, first=w)))
    return best
