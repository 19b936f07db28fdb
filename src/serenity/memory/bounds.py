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
computations II. Lower bounds", 2011), raised by the exact pathwidth of small
minors (below; pathwidth is minor-monotone too). With ``k`` its value the bound
is ``(k + 1) * sigma``, taken for the few largest output sizes.

In-place model: the op ``x`` running at the shared step may write its output
over one input that dies there, so one clique member may not count on top of
``x``'s output. If the overwritten input is a member's, the others hold
``(members - 2) * sigma`` and ``x`` writes at least ``sigma`` when it is a
member; otherwise at most ``x`` itself is lost. Either way the step holds
``(members - 1) * sigma``: the bound is ``k * sigma``.

Orders known to hold an optimum. If some optimal order runs ``x`` before
``y`` for given pairs (the exact engine's delay blocks: a single-consumer
producer waits until its consumer's other inputs are ready, see
:func:`serenity.schedule.exact.block_precedences`), the argument may be made
over such orders alone: ``E(u)`` then also takes, with each consumer ``c``,
the ops that run before ``c`` in all of them. The graph ``F`` only gains
edges, and the width it proves is a lower bound on the optimum (no longer on
every order). On the fused RandWire graphs it gains edges by a quarter to a
third (ER N=64 seed 0: 1,436 -> 1,871).

Measured: on RandWire stages it lifts the bound well above the per-op one
(ER N=64: 655,360 to 1,556,480 bytes, 20 tensors); on the timm graphs it does
not beat it.

MMD+ alone stays well below the pathwidth of ``F`` on random wiring: on ER
N=32 seed 0 (77,824-byte outputs, 185 vertices) it proves 9, and the optimum
holds 18 tensors. So, where a higher width could raise the bound,
:func:`minor_pathwidth` contracts ``F`` the same way down to minors of 16 to 80
vertices (three contraction orders) and decides their pathwidth exactly
(:func:`pathwidth_at_most`, a memoised search over vertex-order prefixes that
places for free every vertex that does not widen the prefix's boundary,
compiled in ``_width.cpp``; at most a given number of steps, shared by the output sizes).
A minor's pathwidth is a lower bound on ``F``'s. Measured on the fused graphs,
MMD+ alone -> 200,000 steps (the default, 0.4-1.2 s) -> at most 1,200,000 steps
(what :func:`~serenity.schedule.exact.exact` gives it under a 60 s limit; 1.5-13.4
CPU s, 70,000-180,000 steps/s on a slower machine, the searches of ER N=32 and 64
and WS N=48 ending early):

- ER N=32 seed 0: 778,240 -> 1,245,184 -> 1,323,008 B (optimum 1,400,832);
- ER N=48 seed 0: 1,245,184 -> 1,867,776 -> 2,023,424;
- ER N=64 seed 0: 1,556,480 -> 2,256,896 -> 2,334,720;
- WS N=48 seed 2: 856,064 -> 1,556,480 -> 1,556,480;
- WS N=64 seed 0: 933,888 -> 1,556,480 -> 1,634,304;
- WS N=128 seed 0: 1,400,832 -> 2,179,072 -> 2,256,896.

The cost grows about tenfold per eight more vertices (ER N=48 seed 0: "pw <=
24?" on a 72-vertex minor takes 537,000 steps, "pw <= 25?" on an 80-vertex one
2.8 million). The exact *treewidth* of minors (the previous step: a search over
elimination sets, in Python) reached only 1,089,536 on ER N=32 seed 0 and
1,556,480 on ER N=48 seed 0: deciding pathwidth is far cheaper (the free
placements), so larger minors fit, and pathwidth is the quantity the argument
needs. Measured and dropped: the same search on the forced order itself (prefixes
closed under ancestry, each output counted while a reader is still to come): on
ER N=32 seed 0 it did not decide 15 tensors in 100,000 steps, and on windows of
60 consecutive outputs it proved only 8. On the timm graphs the width bound
takes 1-2 ms and does not beat the per-op bound. Randomised MMD+ alone gained at
most one; a CP-SAT elimination-order model did not decide ``tw <= 12`` on ER
N=32 in 2 minutes.
``tests/test_bounds.py`` checks it against the exhaustive optimum on random
graphs in both models, MMD+ against the exact treewidth and the minor step
against the exact pathwidth.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence

import numpy as np

from serenity._native import native_wanted
from serenity.ir import Problem

try:  # the compiled pathwidth decision (_width.cpp), built at install
    from serenity.memory import _width
except ImportError:  # pragma: no cover - a build without a compiler
    _width = None  # type: ignore[assignment]

#: Distinct output sizes (largest first) the width bound is computed for.
MAX_LEVELS = 6
#: Graphs with more ops get no width bound (its matrices take n^2 bytes).
MAX_OPS = 8192
#: Sizes (vertices) of the minors whose pathwidth is decided exactly, per contraction
#: order, and the number of contraction orders tried (:func:`minor_pathwidth`).
MINOR_SIZES = (16, 24, 32, 40, 48, 56, 64, 72, 80)
MINOR_TRIES = 3
#: Search steps one :func:`minor_pathwidth` call takes by default (a count, not a time:
#: the bound is deterministic), compiled and in the pure-Python fallback.
MINOR_VISITS = 200_000
MINOR_VISITS_PYTHON = 20_000
#: Search steps per second on RandWire minors, compiled and in Python, contractions
#: included (for :func:`minor_budget`; measured compiled: 84,000-109,000 on the
#: 232- and 434-vertex graphs of WS N=64 and ER N=48 seed 0). On the denser graphs of
#: the delay-block orders, two jobs on two cores, 33,000-127,000: a step's cost grows
#: with the minor, so the share can run up to twice its time (ER N=32 seed 2: 862,000
#: steps in 25.8 s, to a level that proves the graph). 60,000 was tried: that graph then
#: took 46.5 CPU s instead of 30.8 through the decision rounds, others gained nothing.
MINOR_RATE = (100_000, 8_000)


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
    best = 0
    for remaining, degree, _, _ in _contractions(adj, range(len(adj))):
        if remaining - 1 <= best:
            break
        best = max(best, degree)
    return best


def _contractions(
    adj: Sequence[set[int]], rank: Sequence[int]
) -> Iterator[tuple[int, int, list[set[int]], list[bool]]]:
    """Contracts the graph one vertex at a time, MMD+'s way: a vertex of minimum degree
    into the neighbour it shares the fewest neighbours with (an isolated one is
    deleted); ties by degree, then by ``rank``. Yields, before each step, the number
    of vertices left, the degree of the vertex about to go, and the graph (neighbour
    sets and which vertices are alive; not to be modified)."""
    g = [set(a) for a in adj]
    alive = [True] * len(g)
    heap = [(len(a), rank[v], v) for v, a in enumerate(g)]
    heapq.heapify(heap)
    remaining = len(g)
    while heap:
        d, _, v = heapq.heappop(heap)
        if not alive[v] or d != len(g[v]):
            continue  # a stale entry
        yield remaining, d, g, alive
        alive[v] = False
        remaining -= 1
        nb = g[v]
        g[v] = set()
        if not nb:
            continue
        u = min(nb, key=lambda w: (len(g[w] & nb), len(g[w]), rank[w]))
        for w in nb:
            g[w].discard(v)
            if w != u:
                g[u].add(w)
                g[w].add(u)
        for w in nb:
            heapq.heappush(heap, (len(g[w]), rank[w], w))


def _minors(adj: Sequence[set[int]], sizes: Sequence[int], seed: int) -> list[list[int]]:
    """Minors of the graph with ``sizes`` vertices (those it reaches), as neighbour bitmasks.

    Contracts as :func:`minor_min_width` does (:func:`_contractions`), ties broken
    by a random order drawn from ``seed``: different seeds give different minors
    of the same graph.

    Complexity: O(e x d + n log n), plus O(sum(sizes) x size) for the snapshots.
    """
    order = list(range(len(adj)))
    random.Random(seed).shuffle(order)
    rank = [0] * len(adj)
    for i, v in enumerate(order):
        rank[v] = i
    wanted = sorted((m for m in sizes if m < len(adj)), reverse=True)
    found: list[list[int]] = []
    for remaining, _, g, alive in _contractions(adj, rank):
        if not wanted:
            break
        if remaining == wanted[0]:
            wanted.pop(0)
            keep = [v for v in range(len(g)) if alive[v]]
            index = {v: i for i, v in enumerate(keep)}
            found.append([sum(1 << index[w] for w in g[v]) for v in keep])
    return found


def compiled() -> bool:
    """Whether :func:`pathwidth_at_most` runs compiled (``_width.cpp`` built, and
    ``SERENITY_PURE_PYTHON`` unset or ``0``)."""
    return _width is not None and native_wanted()


def pathwidth_at_most(nb: Sequence[int], k: int, max_visits: int) -> tuple[bool | None, int]:
    """Whether the graph (neighbour bitmasks) has pathwidth at most ``k`` (None when
    ``max_visits`` search steps did not settle it), and the steps taken.

    Runs compiled when :func:`compiled` (the same answer and steps: ``_width.cpp``
    is a port of :func:`_pathwidth_at_most_python`, the reference), for graphs of
    up to ``_width.MAX_VERTICES`` vertices.
    """
    if compiled() and len(nb) <= _width.MAX_VERTICES:
        lists = [[w for w in range(len(nb)) if mask >> w & 1] for mask in nb]
        fits, visits = _width.pathwidth_at_most(lists, k, max_visits)
        return (None if fits < 0 else bool(fits)), visits
    return _pathwidth_at_most_python(nb, k, max_visits)


def _pathwidth_at_most_python(
    nb: Sequence[int], k: int, max_visits: int
) -> tuple[bool | None, int]:
    """:func:`pathwidth_at_most` in Python, the reference.

    Pathwidth is the vertex separation number: the least, over vertex orders, of
    the largest number of vertices not yet placed that are adjacent to ones
    placed, ``|N(S) - S|`` over the order's prefixes ``S``. A depth-first search
    over prefixes takes steps that keep that number at most ``k`` (the smallest
    first) and remembers the prefixes from which the rest cannot be placed.
    Before branching it places every vertex whose step does not raise the
    number: ``S -> |N(S) - S|`` is submodular (the size of a closed
    neighbourhood, a coverage function, less ``|S|``), so if ``f(S + v) <= f(S)``
    then adding ``v`` to every later prefix of an order from ``S`` raises none of
    them, and some best order from ``S`` places ``v`` next. Once ``k`` or fewer
    vertices remain, no prefix can exceed ``k``.

    Complexity: O(2^n x n^2 / 64) in the worst case, cut off by ``max_visits``.
    """
    n = len(nb)
    full = (1 << n) - 1
    dead: set[int] = set()
    visits = 0

    def close(done: int, reach: int) -> tuple[int, int]:
        # Placing v changes the number by its new neighbours, less one if v was counted.
        moved = True
        while moved:
            moved = False
            rest = full & ~done
            while rest:
                low = rest & -rest
                rest ^= low
                v = low.bit_length() - 1
                if (nb[v] & ~(done | reach)).bit_count() <= (1 if reach & low else 0):
                    done, reach, moved = done | low, reach | nb[v], True
        return done, reach

    def search(start: int, reach: int) -> bool:
        nonlocal visits
        if start in dead:
            return False
        done, reach = close(start, reach)
        if n - done.bit_count() <= k:
            return True
        if done not in dead:
            visits += 1
            if visits > max_visits:
                raise _OutOfVisits
            cost = (reach & ~done).bit_count()
            steps = []
            rest = full & ~done
            while rest:
                low = rest & -rest
                rest ^= low
                v = low.bit_length() - 1
                after = cost + (nb[v] & ~(done | reach)).bit_count() - (1 if reach & low else 0)
                if after <= k:
                    steps.append((after, v))
            for _, v in sorted(steps):
                if search(done | 1 << v, reach | nb[v]):
                    return True
            dead.add(done)
        dead.add(start)  # the same answer before the free placements
        return False

    try:
        return search(0, 0), visits
    except _OutOfVisits:
        return None, visits


class _OutOfVisits(Exception):
    pass


def minor_budget(seconds: float | None = None) -> int:
    """The search steps of a minor step of about ``seconds`` (at ``MINOR_RATE``) on the
    engine :func:`pathwidth_at_most` uses, or its default budget when None."""
    if seconds is None:
        return MINOR_VISITS if compiled() else MINOR_VISITS_PYTHON
    return int(seconds * MINOR_RATE[0 if compiled() else 1])


def minor_pathwidth(adj: Sequence[set[int]], low: int, max_visits: int | None = None) -> int:
    """A pathwidth lower bound of at least ``low`` (itself a pathwidth lower bound, e.g.
    MMD+'s): the exact pathwidth of small minors.

    Pathwidth never grows under contraction, so the pathwidth of any minor
    bounds the graph's. For each size in ``MINOR_SIZES`` and each of
    ``MINOR_TRIES`` contraction orders (:func:`_minors`), asks
    :func:`pathwidth_at_most` whether the minor fits within the bound so far,
    and raises the bound while it does not. ``max_visits`` caps the search
    steps of the whole call (:func:`minor_budget` by default; a question cut off
    proves nothing): the result is deterministic.

    Complexity: O(max_visits x m^2 / 64) for minors of m vertices.
    """
    budget = minor_budget() if max_visits is None else max_visits
    return _minor_pathwidth(adj, low, budget)[0]


def _minor_pathwidth(adj: Sequence[set[int]], low: int, budget: int) -> tuple[int, int]:
    """:func:`minor_pathwidth` with the steps ``budget`` given; also returns the steps left."""
    best = low
    if len(adj) <= MINOR_SIZES[-1]:  # small enough to decide as it is
        tries = iter([[[sum(1 << w for w in a) for a in adj]]])
    else:
        # Built one contraction order at a time: none once the budget is spent.
        tries = (_minors(adj, MINOR_SIZES, seed)[::-1] for seed in range(MINOR_TRIES))
    for minors in tries:
        if budget <= 0:
            break
        for nb in minors:  # the smallest first
            while budget > 0 and len(nb) > best + 1:
                fits, used = pathwidth_at_most(nb, best, budget)
                budget -= used
                if fits is not False:
                    break
                best += 1
    return best, budget


def _closure(problem: Problem, before: Sequence[int]) -> list[int]:
    """Per op, the ops that run before it: its predecessors and ``before``, transitively.

    Raises:
        ValueError: ``before`` closes a cycle (no order keeps those precedences).

    Complexity: O(n^2 / w) with w-bit words, plus the bits of ``before``.
    """
    n = problem.num_ops
    direct = [sum(1 << u for u in problem.preds[v]) | before[v] for v in range(n)]
    later: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for v, mask in enumerate(direct):
        while mask:
            low = mask & -mask
            mask ^= low
            later[low.bit_length() - 1].append(v)
            waiting[v] += 1
    ready = [v for v in range(n) if not waiting[v]]
    masks = [0] * n
    for u in ready:  # grows while it is walked: Kahn's order
        for v in later[u]:
            masks[v] |= masks[u] | 1 << u
            waiting[v] -= 1
            if not waiting[v]:
                ready.append(v)
    if len(ready) < n:
        raise ValueError("the precedences given close a cycle")
    return masks


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


def width_bound(
    problem: Problem,
    *,
    inplace: bool = False,
    minor_visits: int | None = None,
    before: Sequence[int] | None = None,
) -> int:
    """The width bound (module docstring): a lower bound on every order's peak.

    Computed for the ``MAX_LEVELS`` largest distinct output sizes; 0 for a
    graph without ops or with more than ``MAX_OPS`` (a valid, if useless, bound).
    ``minor_visits`` is the minor step's budget of search steps, shared by the sizes
    in turn, largest first (:func:`minor_budget` when None; 0 leaves it out: MMD+
    alone, milliseconds). ``before`` (per op, a bitmask of ops that run before it
    besides its ancestors) restricts the orders considered: the bound is then one
    on the optimum only, valid when some optimal order keeps every such
    precedence (module docstring, "Orders known to hold an optimum").

    Complexity: O(MAX_LEVELS x (n^2 / 8 + e_F x d + n log n)) for n ops and a
    forced overlap graph of e_F edges and maximum degree d, plus
    :func:`minor_pathwidth` (``minor_visits`` steps in all) on the sizes where a
    higher width could raise the bound.
    """
    if problem.num_ops > MAX_OPS:
        return 0
    sizes = problem.tensor_sizes
    produced = {sizes[t] for outs in problem.op_outputs for t in outs}
    anc = problem.ancestor_masks() if before is None else _closure(problem, before)
    budget = minor_budget() if minor_visits is None else minor_visits
    best = 0
    for sigma in sorted((s for s in produced if s > 0), reverse=True)[:MAX_LEVELS]:
        reach = _reach(problem, sigma, anc)
        forced = reach & reach.T
        np.fill_diagonal(forced, False)
        adj = [set(np.flatnonzero(row).tolist()) for row in forced]
        k = minor_min_width(adj)
        if budget > 0 and (k + 2) * sigma > best:  # if a higher width could raise it
            k, budget = _minor_pathwidth(adj, k, budget)
        best = max(best, (k if inplace else k + 1) * sigma)
    return best
