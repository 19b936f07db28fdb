"""Decision search: is there an order of a segment whose every step stays within a limit?

The best-first search of :mod:`serenity.schedule.exact` proves a lower bound level
by level; it keeps every state it reached (a closed-set slot and a heap entry
each). Once the lower bound is within reach of the best order known (its peak
``U``), the question left is a yes/no one: does an order peak at ``U - 1`` or
less? This module answers it with a depth-first search that keeps far less:

**Reachability within a limit.** Fix a limit ``L``. From a state (the downset
``S`` of ops executed; the memory ``M(S)`` held is a function of ``S``), a step
is allowed when its footprint is at most ``L``. An order within ``L`` exists iff
the goal set is reachable from the start through allowed steps. Whether the
goal is reachable from ``S`` depends on ``S`` alone, so a set found to reach
nothing is *dead* for good.

**Depth-first, dead sets only.** The search dives depth first, trying the
steps that leave the least memory first, and returns the path as soon as it
reaches the goal. A set is fully explored only when none of its successors
reached the goal, so every explored set that is not on the current path is
dead (sets only grow along a path, so a set on the path is never reached again
from below). Only dead sets are remembered, and only *branching* ones (two or
more allowed successors): a set with one successor leads to it alone, so
re-entering it costs a walk along the chain to the next remembered set, never
a new search. Free moves make most sets non-branching (81% of the expansions
on RandWire CIFAR-10 are free moves), so the memory is a fraction of the
best-first search's for the same sets, and there is no heap at all.

**The same reductions, within ``L``.** The delay blocks, free moves and free
pairs of :mod:`serenity.schedule.exact` keep some order within ``L`` whenever
one exists: their exchange arguments move ops of a feasible order without
raising any step, and a free move's own step is checked against ``L`` (the
best-first search checks it against its bound ``B``; here ``L`` plays that
role). So the answer "no order within ``L``" is a proof that the segment's
optimum is above ``L``.

**Free sets.** A free move is one op that leaves no more memory than it found;
a free set is a few ops that do so together. At a set ``S`` with no delay block
open and no free move or free pair, take an op ``v`` (no delay member) and ``X``,
``v`` with its ancestors not in ``S`` (2 to ``FREE_SET_OPS`` ops, 3 by default).
If (1) no downset ``S | Y`` with ``Y`` within ``X`` holds less memory than
``S | X`` (``Y`` empty included: ``M(S | X) <= M(S)``) and (2) some order of ``X``
that the rules allow runs from ``S`` with every step within ``L``, only that
order's first op is tried from ``S``. *Exchange.* ``M`` is submodular on downsets
(per tensor, ``[producer in S] - [every reader in S]``: a modular term less a
supermodular one), so for any downset ``R`` of a completion from ``S``,
``M(R | X) <= M(R) + M(S | X) - M(S | (R & X)) <= M(R)`` by (1), ``S | (R & X)``
being a downset. Run ``X`` first, in the order of (2), then the completion
without ``X``: every later op runs from ``R | X`` instead of ``R``, a step no
higher (its inputs that die there die no later; under the in-place model an op
that runs later only has more inputs no one else reads); ``X``'s own steps are
within ``L``. Blocks: a delay member's only successor is its consumer, so a
member in ``X`` brings its consumer and the block's other members (``X`` holds
``v``'s ancestors), the order of (2) keeps them contiguous, and other blocks'
runs hold no op of ``X``. So some completion within ``L`` (an optimal one, for
the next level below) starts with that first op, and the search stays exact.
The best-first search of :mod:`serenity.schedule.exact` takes the same first
op, with its key ``f`` for ``L``. Measured (compiled core, the hardest segment at
its optimum minus one, one searcher): WS N=48 seed 0 14.6M -> 3.1M visits, 821k
-> 69k dead sets, 3.3 -> 1.4 CPU s; WS N=48 seed 1 114M -> 29M visits, 5.9M ->
744k dead sets, 30 -> 16 s; ER N=32 seed 1 50M -> 17M visits, 1.06M -> 265k
dead sets, 12.3 -> 8.2 s (4 ops instead of 3: the same to 1.7x fewer visits, at
a higher cost per visit). Rounds from above alone on WS N=352 seed 0 (1,229 ops)
reach 9,105,408 bytes in 13 s, where without free sets they stop at 9,261,056
after 53 s.

**The next level.** When the answer is "none", every order has a first step
above ``L``. Take an optimal order that the reductions keep (their exchange
arguments never raise a step, and a free move's own step is at most
``L < OPT``, so from every set the search explores some optimal completion
stays among its moves): its steps up to that first one above ``L`` stay within
``L``, so the search explored the set it starts from and saw that step
rejected (or stepped past it: "Dead ends" below). Hence the optimum is at least
the smallest step the search rejected, which is returned as ``bound``: like the
best-first search, a "none" lifts the lower bound to the next footprint that
occurs, not merely to ``L + 1``.

**Dead ends.** Let ``r`` be the least any op of the segment adds on top of the
memory before its step (its outputs, less the largest input it may overwrite).
A set ``S`` other than the goal with ``M(S) + r > L`` has no step within ``L``:
it is a dead end, so the search does not step into it (no visit, no lookup, and
the set it leaves may stop branching, so fewer sets are remembered). Every step
from ``S`` is at least ``M(S) + r > L``, so that sum stands in for them in the
next level: it is above ``L`` and at most any step it stands for, and the
argument above holds with it. ``tests/test_decide.py`` checks the next level
against exhaustive optima at every limit below them. Measured (the compiled
core on the hardest segment, at the optimum minus one, two runs at a time):
WS N=48 seed 0 22.95M -> 14.60M visits, seed 1 170M -> 114M visits and 24.6 ->
21.8 CPU s, WS N=64 seed 0 347M -> 217M visits, 50.0 -> 45.1 CPU s and 13.7M ->
11.6M dead sets, ER N=32 seed 1 71M -> 50M visits, 8.6 -> 7.4 CPU s and 1.5M
-> 1.1M dead sets; the same answers and next levels at every limit tried.

**At the memory cap it forgets the lighter half, a few times.** A forgotten dead
set costs a re-search of its subtree, which reaches no goal, so the answer, the
first order found and the next level stay those of the search that keeps every
set; only the visits grow. Each set is weighed by the visits its subtree took
(their bit length); at the cap the search keeps the heavier half (ties: the
earlier inserted) and goes on, at most ``_MAX_EVICTIONS`` times per decision,
then returns "memory" and the caller spends the time left on the local search.
The limit is there because the re-searches explode when the table holds far
fewer sets than the search needs: on a 130-op random DAG the answer takes 0.09 s
with every dead set kept and was not reached in 30 s with a table holding an
eighth of them (360M visits, measured without the weights). On the test DAGs of
``tests/test_exact_core.py``, capped at 80% of the sets the search needs, the
answers cost 0-41% more visits; capped at 10%, the search stops after its four
evictions. RandWire WS N=64 seed 0 (926 ops), whose proof needs more dead sets
than the default 512 MiB cap holds, is proven under it (it stopped at the cap
with a 4.5% gap before; ``benchmarks/RESULTS-randwire.md``).

**Threads (compiled core).** With ``threads`` > 1 that many searchers run the same
search from the start and share one table of dead sets (lazy SMP): searcher ``i``
tries the steps of a branching set rotated by ``i``, so they begin in different
subtrees and skip the subtrees the others proved dead. Sharing is sound because a
set is inserted only once every step from it was searched (by this searcher, or
skipped as a set some searcher had proven dead): the first searcher whose start set
is exhausted answers "none", and the next level is the least step any searcher
rejected (each is above the limit, and together they hold the steps one searcher
would have rejected). Only searcher 0's goal answers "found" (a helper that reaches
the goal stops): it tries the steps in the one-searcher order and skips only sets
from which the goal cannot be reached, so it finds the order one searcher finds, on
every run and with any number of threads. The table is read without locks (a slot
is published after its mask); growth and eviction wait until every searcher is
parked at its next check. Searcher 0 makes the checks, so a helper waits for its
first (the memory cap is seen before any visit) and, when the table's room runs
low, for its next: on a busy machine, with searcher 0 waiting for a core, a helper
had run past the room (its dead sets dropped, searched again later) and even
answered a whole decision under a one-byte cap. Measured on the hardest segment (2 cores, at the optimum minus one): WS N=48
seed 1 24.6 -> 13.2 s wall (113.9M -> 116.1M visits in all), seed 0 2.4 -> 1.3 s;
the same dead sets and next level. ``tests/test_exact_core.py`` checks the answers
(orders included) against the one-searcher reference, under a cap and across slices.

Complexity: O(reachable sets x ready ops x degree) time, memory proportional to
the branching dead sets; exponential in the worst case (the problem is
NP-hard).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serenity.schedule.exact import _Search

#: Evictions of dead sets per decision at the memory cap (each keeps the heavier half);
#: at the next one the search stops instead (module docstring, "At the memory cap").
_MAX_EVICTIONS = 4


@dataclass
class Decision:
    """The answer of :func:`within`.

    Attributes:
        status: ``"found"`` (``order`` stays within the limit), ``"none"`` (no
            order does: proven), ``"timeout"``, ``"memory"`` or ``"paused"`` (no
            answer).
        order: The segment's ops in order when found, else None.
        peak: The memory before the segment or the largest step of ``order``,
            whichever is larger (0 when not found).
        visited: States entered (re-entries of non-branching states included).
        dead: The most dead branching states remembered at once.
        evicted: Dead states forgotten at the memory cap (module docstring).
        bound: When ``status`` is ``"none"``: a proven lower bound on the
            segment's optimum above the limit (module docstring, "The next
            level"); else 0.
    """

    status: str
    order: list[int] | None
    peak: int
    visited: int
    dead: int
    bound: int = 0
    evicted: int = 0


def within(
    search: _Search,
    limit: int,
    deadline: float | None = None,
    max_bytes: int | None = None,
    tick: Callable[[int, int], None] | None = None,
    max_dead: int | None = None,
    threads: int = 1,
    pause_at: float | None = None,
    stop: threading.Event | None = None,
    max_visits: int | None = None,
) -> Decision:
    """Decide whether the segment of ``search`` has an order with every step at most ``limit``.

    Uses the segment's start, goal, start memory and rules (delay blocks, free
    moves) of the given :class:`~serenity.schedule.exact._Search`; its heap and
    closed set are not used. ``max_bytes`` caps the memory of the dead-set
    table (estimated per entry); ``tick(visited, dead)`` is called about once
    per 1,024 states for progress output. ``threads`` searchers share the dead sets in
    the compiled core (module docstring, "Threads"); this reference runs one.

    At ``pause_at`` (``time.perf_counter()``) the answer is ``"paused"``: the compiled
    core keeps its path and dead sets, and the next call on the same search with the
    same limit and threads goes on from there (any other call starts afresh; so does
    this reference, which keeps nothing between calls).

    With ``max_visits`` (one searcher) the answer is ``"timeout"`` at the first check
    (one every 1,024 visits) past that many visits: a budget that, unlike the
    deadline, gives the same answer on any machine, compiled or not.

    Complexity: see the module docstring.
    """
    if search._core is not None:
        return _within_core(
            search, limit, deadline, max_bytes, tick, max_dead, threads, pause_at, stop, max_visits
        )
    goal = search.goal
    ops = search.ops
    inside = goal & ~search.start
    # The least any step adds on top of the memory before it (module docstring, "Dead
    # ends"): the compiled core's min_rise_. An input read after the goal is never
    # overwritten within the segment, so it saves nothing (as in the core's tables).
    rises = [
        ops.out_bytes[v] - max((size for size, c in ops.inplace[v] if not c & ~goal), default=0)
        for v in range(len(ops.out_bytes))
        if inside >> v & 1
    ]
    min_rise = min(rises, default=0)
    per_entry = sys.getsizeof(goal) + 48  # the int, its dict entry and weight (estimated)
    dead: dict[int, int] = {}  # dead set -> weight (_weight)
    visited = evicted = evictions = most = 0
    above = 1 << 62  # the smallest step seen above the limit: the next level

    def successors(done: int, mem: int, last: int, ready: int) -> list[tuple[int, int, int]]:
        nonlocal above
        moves, open_block = search._moves(done, mem, last, ready)
        steps = []
        for s in moves:
            if s[1] <= limit:
                steps.append(s)
            elif s[1] < above:
                above = s[1]
        free = search._forced(steps, limit, done, mem, open_block, ready)
        if free is not None:
            steps = [free]
        else:  # least memory left first: the dive finds an order quickly when one exists
            steps.sort(key=lambda s: (s[2], s[1], s[0]))
        kept = []
        for s in steps:  # no step into a dead end (module docstring, "Dead ends")
            if s[2] + min_rise > limit and done | 1 << s[0] != goal:
                above = min(above, s[2] + min_rise)
            else:
                kept.append(s)
        return kept

    def answer(
        status: str, order: list[int] | None = None, peak: int = 0, bound: int = 0
    ) -> Decision:
        return Decision(status, order, peak, visited, max(most, len(dead)), bound, evicted)

    if search.start_mem > limit:
        return answer("none", bound=search.start_mem)
    start = search.start
    ready0 = search._ready(start)
    # Frames: [done, mem, ready, successors, next index, visits before it was entered];
    # path and peaks run beside them.
    stack: list[list[Any]] = [
        [start, search.start_mem, ready0, successors(start, search.start_mem, -1, ready0), 0, 0]
    ]
    path: list[int] = []
    peaks: list[int] = [search.start_mem]
    while stack:
        frame = stack[-1]
        done, mem, ready, steps, i, before = frame
        if done == goal:
            return answer("found", list(path), max(peaks))
        if i == len(steps):
            if len(steps) > 1:
                dead[done] = _weight(visited - before)
            stack.pop()
            peaks.pop()
            if path:
                path.pop()
            continue
        frame[4] = i + 1
        v, during, after = steps[i]
        nxt = done | 1 << v
        if nxt in dead:
            continue
        if visited & 1023 == 0:  # before visits 1, 1025, ...: a spent budget stops at once
            if max_visits is not None and visited >= max_visits:
                return answer("timeout")
            if tick is not None:
                tick(visited, len(dead))
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                return answer("timeout")
            if (pause_at is not None and now > pause_at) or (stop is not None and stop.is_set()):
                return answer("paused")
            over = max_bytes is not None and len(dead) * per_entry >= max_bytes
            if over or (max_dead is not None and len(dead) >= max_dead):
                if evictions == _MAX_EVICTIONS:
                    return answer("memory")
                evictions += 1
                most = max(most, len(dead))
                evicted += _evict(dead)
                if max_bytes is not None and len(dead) * per_entry >= max_bytes:
                    return answer("memory")
        visited += 1
        nready = search._next_ready(ready, v, nxt)
        stack.append([nxt, after, nready, successors(nxt, after, v, nready), 0, visited])
        path.append(v)
        peaks.append(during)
    return answer("none", bound=above)


def _weight(work: int) -> int:
    """A dead set's weight: the bit length of the visits its subtree took (at most 63)."""
    return min(work.bit_length(), 63)


def _evict(dead: dict[int, int]) -> int:
    """Forget all but the heavier half of ``dead`` (ties: the earlier inserted); returns
    the number forgotten. The compiled core's ``DeadSet::evict`` is the same rule."""
    keep = len(dead) // 2
    count = [0] * 64
    for w in dead.values():
        count[w] += 1
    t, above = 63, 0  # sets heavier than t are all kept
    while t > 0 and above + count[t] < keep:
        above += count[t]
        t -= 1
    ties = keep - above  # and the first `ties` sets of weight t
    kept = {}
    for m, w in dead.items():
        if w > t or (w == t and ties > 0):
            ties -= w == t
            kept[m] = w
    forgotten = len(dead) - len(kept)
    dead.clear()
    dead.update(kept)
    return forgotten


def _within_core(
    search: _Search,
    limit: int,
    deadline: float | None,
    max_bytes: int | None,
    tick: Callable[[int, int], None] | None,
    max_dead: int | None,
    threads: int = 1,
    pause_at: float | None = None,
    stop: threading.Event | None = None,
    max_visits: int | None = None,
) -> Decision:
    """:func:`within` in the compiled core (a port: same visits, order and next level;
    its memory cap counts the real bytes of its tables), in slices for progress and
    signals; a pause keeps the core's search (the core resumes it when asked the same
    limit with the same threads)."""
    from serenity.schedule import _core
    from serenity.schedule.exact import _CORE_SLICE, _clamp

    core = search._core
    assert core is not None
    dead_cap = -1 if max_dead is None else max_dead

    def answer(
        status: str, order: list[int] | None = None, peak: int = 0, bound: int = 0
    ) -> Decision:
        return Decision(status, order, peak, core.visited, core.dead_most, bound, core.evicted)

    paused = False
    try:
        while True:
            if stop is not None and stop.is_set():
                paused = True
                return answer("paused")
            now = time.perf_counter()
            remaining = 1e30 if deadline is None else deadline - now
            cap = -1 if max_bytes is None else max(0, _clamp(max_bytes))
            piece = _CORE_SLICE if pause_at is None else max(0.0, min(_CORE_SLICE, pause_at - now))
            status = core.decide(
                _clamp(limit),
                remaining,
                cap,
                piece,
                dead_cap,
                threads,
                -1 if max_visits is None else max(0, max_visits),
            )
            if tick is not None:
                tick(core.visited, core.dead_most)  # progress; KeyboardInterrupt is seen here
            if status == _core.SLICE and pause_at is not None and time.perf_counter() >= pause_at:
                paused = True
                return answer("paused")
            if status == _core.FOUND:
                order = [search._local[v] for v in core.order]
                return answer("found", order, core.peak)
            if status == _core.NONE:
                return answer("none", bound=core.next_level)
            if status != _core.SLICE:
                return answer("timeout" if status == _core.TIMEOUT else "memory")
    finally:
        if not paused:
            core.decide_reset()  # answered, stopped or interrupted: free the sets
