"""Exact engine: a memory-optimal order, proven, by best-first search over downsets.

The search follows SERENITY (Ahn et al., MLSys 2020): the set of executed ops
``S`` (a downset of the DAG) fixes which tensors are live, so one best partial
schedule per set is all that must be kept. On top of that:

**Bottleneck best-first (A*).** A partial schedule is scored by the maximum
footprint along it, ``g``; states are expanded in order of
``f = max(g, h(S), L)`` where ``h(S)`` is the footprint of the cheapest next
step (no completion can avoid taking some next step) and ``L`` is a proven
global lower bound: the larger of the per-op bound and the width bound
(:mod:`serenity.memory.bounds`: outputs whose lifetimes overlap in every
order form a graph, and some step holds as many of them as its pathwidth
plus one; on random-wired graphs it is the stronger one; its minor step waits
for the hand-over below). ``f`` never
decreases along a path and ``h`` is consistent, so the first time the full
set is taken from the queue its ``f`` is the optimum: nothing above the
optimum is ever expanded.

**Clamping at the lower bound.** Every order peaks at ``L`` or more, so two
partial schedules whose peaks are both at most ``L`` are equally good. Ties in
``f`` are broken by depth (most ops executed first), which turns the search
into a depth-first dive as long as the budget holds: a schedule that meets the
lower bound is found without a wide search.

**Free moves (an exchange argument).** Let ``B`` be ``max(g, f)`` of the state
being expanded (``f <= OPT``, so ``B`` never exceeds what the best completion
through this state will peak at). If a ready op ``v`` runs within ``B`` and does
not raise the memory afterwards (``out(v) <= freed(v)``), some optimal
completion starts with ``v``: moving ``v`` from wherever it is in an optimal
completion to the front changes every step in between by
``out(v) - freed_now(v) <= 0`` bytes (its inputs that die now die no later
there, its outputs replace them), the step of ``v`` itself is within ``B``, and
from ``v``'s old position on the executed sets are the same. So only that one
successor is generated. This collapses chains of element-wise and shrinking
ops, which is most of a CNN.

**Delaying single-consumer producers (default model).** Notation of
:mod:`serenity.schedule.fusion`: ``M(S)`` is the memory held after the ops of
the downset ``S`` ran; op ``x`` run from ``S`` steps at ``M(S) + out(x)``.
Call ``u`` a *delayable producer* of ``v`` when ``v`` is ``u``'s only successor
and, with ``a`` the bytes of ``u``'s outputs, ``a_live`` those read (by ``v``)
or graph outputs, ``F_max`` the bytes of ``u``'s inputs that are neither graph
outputs nor read by ``v``, and ``b = out(v)``:

    (1) ``a_live >= F_max``   and   (2) ``a - a_live + F_max <= b``.

*Exchange.* In any order, move ``u`` from its place to right before ``v``. The
ops ``X`` it passes are not descendants of ``u`` (those are ``v`` and later),
so the order stays topological. For a set ``R`` with ``u, v`` not in it,
``M(R + u) - M(R) = a_live - F(R)``, where ``F(R) <= F_max`` are the inputs
``u`` frees from ``R`` (an input ``v`` reads is not freed before ``v``). So at
every step in ``X`` the memory changes by ``F(R) - a_live <= 0`` by (1); ``u``'s
new step, from the set ``T`` that precedes ``v``, is
``M(T) + a = M(T + u) - a_live + F(T) + a <= M(T + u) + b`` by (2), which is
``v``'s own step (the same set ``T + u`` precedes ``v`` in both orders); all
other steps see the same executed sets. The peak does not rise.

*Blocks.* Let ``E(v)`` be the delayable producers of ``v``, leaving out every op
that is itself a consumer with a non-empty ``E`` (so blocks do not nest: the
exchange never moves a consumer). Claim: some optimal order runs, for every
``v``, the ops of ``E(v)`` as one contiguous block right before ``v``. Take an
optimal order and, for one ``v`` at a time, move each member not yet in the
run of ``E(v)`` ops right before ``v`` to right before ``v``: the run grows by
one per move; a moved op lands inside ``v``'s own run only, and leaves no other
run (it belongs to none), so runs already built stay contiguous; each move is
the exchange above. So the search may require: a member ``u`` of ``E(v)`` opens
``v``'s block only once every predecessor of ``v`` outside ``E(v)`` and every
predecessor of the members has run (they precede the block in such an order),
and while a block is open (its member ran, ``v`` did not: a function of the set,
so one best path per downset is still enough) only members of that block and
``v`` may run. The search thus keeps at least one of the optimal orders of the
claim, and expands no more states than without the rule. Free moves are taken
only where they keep such an order: inside an open block, or outside blocks
with an op that is no member (moving a non-member forward out of the gaps
between blocks keeps every block contiguous). A rule "``u`` waits until ``v``'s
other inputs are ready" without blocks is wrong twice: with two members neither
may run, and with a member whose input another op also reads, delaying keeps
that input alive (``tests/test_exact_rules.py`` has both counterexamples; the
second is why (1) is needed). Measured on RandWire CIFAR-10 (233 fused ops):
514,281 states and 19 s with the waiting condition alone, 24,204 states and about 0.3 s with
them (previously 150 s).

**Free pairs.** A block of one member ``u`` (``E(v) = {u}``) and its consumer
may be a free move as a whole. With ``out_v`` the bytes of ``v``'s outputs that
are read or graph outputs, ``a_live`` as above, ``P_uv`` the bytes of the inputs
of ``u`` or ``v`` (not ``u``'s outputs, not graph outputs) that nobody but ``u``
and ``v`` reads, and ``P_v`` those of them ``v`` reads, require statically

    (A) ``out_v <= P_uv``   and   (B) ``out_v <= a_live + P_v``.

Then for any set ``R`` holding neither op, ``M(R + u + v) <= M(R)`` (``u``'s
outputs die at ``v``; ``P_uv`` is freed), and for any ``R`` holding ``u`` only,
``M(R + v) <= M(R)`` (``v`` frees ``u``'s outputs and ``P_v``). If at the
expanded state no block is open, ``u`` may open ``v``'s block (it is not
delayed), and both steps ``u`` then ``v`` stay within ``B`` and end no higher
than ``mem``, move the run ``u v`` (contiguous in the orders of the block claim)
to the front of such an optimal completion: every later step sees ``R + u + v``
or ``R + v`` instead of ``R``, so none rises; the two new steps are within
``B``; no other run is split (``v`` is no member, ``u`` belongs to ``v``'s run
only). So ``u`` alone is generated, and ``v`` follows (the open block allows
nothing else). RandWire's ``Mul -> Add`` accumulation steps are such pairs:
CIFAR-10 24,204 -> 17,692 states.

**Free sets.** Where no free move or free pair applies and no block is open, an
op with its few ancestors not yet run (``FREE_SET_OPS``) that together leave no
more memory than they found, and no less at any downset on the way, may run
first as a whole: only the first op of such a set is generated (the exchange,
and why blocks stay contiguous: :mod:`serenity.schedule.decide`, "Free sets";
the decision search uses the same rule). WS N=32 seed 2 is proven in the first
slice (0.7 -> 0.2 CPU s).

**In place.** Under the in-place model a step is ``M(S) + out(x) - s_S(x)``,
``s_S(x)`` the largest input ``x`` may overwrite that no other op still reads
(``M`` is unchanged). Free moves, free pairs and free sets stand as they are: they move
ops earlier, which never makes another op lose its last read of an input, and
their own steps are checked at the state. The delay exchange moves ``u``
later, so two steps need a second look. ``v``'s step may be lower by up to
``s_v``, the largest input ``v`` may overwrite, so (2) becomes
``a - a_live + F_max + s_v <= b`` (``u``'s own saving only grows when it runs
later). An op ``x`` of ``X`` may lose a saving ``s``: an input ``t`` of ``u``
that ``x`` read last before the move. ``t`` is then counted in ``F_max`` but
not freed by ``u`` at ``R`` (``x`` still reads it), so ``F(R) <= F_max - s`` and
``x``'s step changes by ``F(R) - a_live + s <= F_max - a_live <= 0`` by (1):
nothing more is needed. Counterexample to (2) without ``s_v`` in
``tests/test_exact_rules.py``.

**Anytime upper bound.** When the best-first search has not finished after a
first slice (``FIRST_SLICE`` seconds, at most a tenth of the time limit), the
decision search below takes over; its dives lower the upper bound (WS N=48
seed 0, 700 ops: 2,023,424 -> 1,712,128 bytes in well under a second). Before
its rounds, beam searches of widths 64 and 512 over the segment get
``BEAM_SLICE`` seconds' worth of generated successors (at most a tenth of the
limit; a count, not wall clock, so the result does not depend on the
machine's speed): on ER N=48 seed 0 (1,184 ops) the dives stop at 2,334,720
for the whole minute, a width-512 beam finds 2,256,896 in 1.6-2.7 s. A local
search lowers it further with whatever time the decision rounds leave (or,
with the decision search switched off, for up to ``LOCAL_SEARCH_SHARE`` of the
limit before the best-first search resumes): a beam search over the same
moves (widths ``_BEAM_WIDTHS``), then windows of the best order re-solved
exactly (large-neighbourhood search: the memory after a window is a function
of the set executed, so the steps outside it do not change). Each of the cut
bound's turns (below) ends with the same windows, within the turn's seconds,
first on the order through the cut bound's witness when it is new
(:mod:`serenity.memory.cuts`, "Witness"; its gaps searched within the turn's
worth of states, ``WITNESS_RATE`` a second, a gap past the best-first search's
share probed by decision dives, :func:`_through`; adopted when it peaks lower), else
on the best order when it changed: WS N=128 seed 0 (894 fused ops),
3,579,904 -> 3,268,608 bytes at 60 s (the optimum), the witness's order found
in 9 s; WS N=64 seed 1 is proven by the witness's order (8.3 CPU s). With the
dives (by hand, 60 s, one searcher) WS N=256 seed 0's witnesses gave 6,303,744
bytes where the narrowest beam had failed every gap of 300-700 ops after the
first (6,692,864, the best order then). A gap of more than ``SPLIT_GAP_OPS`` ops
is split at least cuts first (:func:`_through`, "Split gaps"): WS N=352 seed 0
at 60 s 16.1% apart instead of 37.1%.
The order
returned is the best one found; the bound is the highest proven: the gap
reported is the one proven. Handing over at the first slice rather than after
a local search and 40% of the limit (the previous policy) proved WS N=48 seed
1 in 46 CPU s instead of not at all in 60 s, and ER N=32 seed 1 in 17 instead
of 23 s, with the same orders and bounds elsewhere (6 graphs, 60 s).

**Memory cap.** The best-first search counts its memory (the compiled core: the
bytes of its closed table and heap; the Python search estimates it from its
state count, a heap entry and a closed-set slot per state); at ``ScheduleOptions.search_memory``
(512 MiB by default) it stops, keeps its proven bound and reports
``stats["memory_capped"]`` (and a progress line).

**Anytime lower bound.** The search starts from the width bound without its
minor step (milliseconds). At the first hand-over below, after the beams (so that
it aims at a good order), the cut bound (:mod:`serenity.memory.cuts`: each op's
least step over the downsets it may run from, one max-flow per op, raised by
sequences of chosen ops; over the block orders) gets ``CUT_SHARE`` of the limit's
worth of max-flows (at most ``CUT_SECONDS``; counted, not timed, and never past
the deadline) and stops at the best order's peak, which it then proves optimal.
Then it takes turns with the rounds from above (below): a round runs for its
turn, is paused (the compiled core keeps its path and dead sets:
``within(pause_at=...)``) while the sequences get their turn, and resumes; each
pair of turns (the sequences', then the rounds') is twice as long as the last, and
the sequences' turn ``CUT_TURNS`` (7) times as long as the rounds' before it.
Before each piece the refined line's sequences are guided by the best order when
it changed (:mod:`serenity.memory.cuts`, "Guide": a set's next op that runs first in
it is tried first). A turn of the sequences runs in pieces of ``_CUT_PIECE`` seconds' worth; after
each, a witness that is new is followed, with the turn's seconds (before, once
at the end of the turn): the order through an early level's witness is often the
optimum, and the bound then stops there instead of working on at a worse order's
peak. By hand at 60 s, one searcher, against whole turns: WS N=64 seeds 0-2
proven in 3.5, 3.5 and 4.4 CPU s (6.5, 9.3, 5.5), WS N=48 seeds 0-2 in 3.0, 4.5
and 3.1 s (2.9, 5.3, 5.8), ER N=32 seeds 1-2 in 5.0 and 7.9 s (5.4, 11.1), WS
N=128 seed 0 in 2.8 s (9.2); gaps ER N=48 seed 2 3.3% (6.9%), ER N=64 seed 2
18.4% (21.1%, a better order), WS N=256 16.7% (22.2%, a better order); ER N=48
seeds 0-1, ER N=64 seed 0 and WS N=352 as before.
With two threads or more left for the rounds (``ScheduleOptions.threads``, the
CPUs by default, less the one the second cut bound below takes: three or more)
and the compiled core, no turns are taken: each round from above runs in a
thread of its own with one searcher fewer (the core runs without the GIL) while
the sequences lift in the engine's thread, ``_CUT_PIECE`` seconds' worth at a
time (a new witness followed for as long as the round has run), until the round
answers (the first turn alone is one piece: the rounds start at once); a
``stop`` event pauses the round when the sequences reach the best peak or a
witness gives an order within its limit. So both get the whole minute on two
cores instead of about half of it each: at 60 s (by hand, 2 cores, pieces in
both; in brackets one searcher) ER N=64 seed 0 16.2% (19.4%), ER N=32 seed 2
proven in 6.6 s wall (7.9), WS N=64 seed 1 in 3.3 s (3.5), WS N=128 seed 0 in
2.6 s (2.8); ER N=48 seeds 0-2 and ER N=64 seed 2 the same gaps, the other WS
graphs of N <= 64 within 0.3 s; against whole turns with two searchers (the
benchmark's threads rows): WS N=64 seed 1 3.3 s wall (9.8), WS N=48 seed 2 3.3
(5.0), ER N=32 seed 2 6.6 (9.8).

**Two cut bounds.** The cut bound's last levels depend on which ops its refined
line chooses, and that depends on which sequence within a level its search meets
first, which the guide decides (:mod:`serenity.memory.cuts`, "Guide"): a draw, not
a rule, and no guide wins everywhere. On ER N=64 (1,977-2,133 ops) guided by the
best order (as above) seed 0 reaches its optimum, 43 units of 77,824 bytes, in
about 40 s of max-flows, and seed 1 stalls at 42 units through 3M max-flows;
guided by the order the engine started from (the heuristic's, as in
``benchmarks/cut_bound.py``) seed 1 reaches 43 in 480,000 max-flows and seed 0
stalls at 42. So with two threads or more (``TWO_CUTS``; and the compiled cuts:
the Python ones would only share the engine's core) a second cut bound,
guided by the order the engine started from (none when that is the best order,
whose guide the first has), lifts in a thread of its own from the hand-over on
(its sequences and their max-flows run without the GIL; its single cuts, at
the start, hold it), ``_CUT_PIECE`` seconds' worth
at a time up to the best peak: the bound proven is the higher of the two, and a
round in turns is paused when the second reaches the best peak (a ``stop``
event). The rounds get one thread fewer: on two cores they take turns with the
first in the engine's thread. By hand at 60 s on 2 cores, two threads, against
the rounds beside the first alone (the benchmark's threads rows before): ER N=64
seed 1 proven in 12.7 s wall (2.4% apart at 60 s), seed 0 in 42.2 s (37.5), seed 2
2.3% as before; WS N=48 seed 2, WS N=64 seeds 0-1, ER N=32 seed 2, ER N=48 seeds
1-2 proven in 2.1-3.9 s (1.9-4.1), WS N=256 seed 0 2.6% as before; max RSS 394-740
MB (400-729). The benchmark's run: ER N=64 seeds 0 and 1 in 41.2 and 11.2 s wall.
With one thread (or the Python cuts) the second is the first's twin
(:meth:`CutBound.twin`: the same cuts and single cuts, refined lines of its own and
no line of highest cuts, which no guide changes), guided by the same order as the
second in a thread, and the two take turns in the engine's thread, ``_CUT_PIECE``
seconds' worth at a time: evenly until one raises the bound, then ``LEAD_TURNS``
(3) pieces to the one that raised it last for each of the other's; the witness
followed is the one of the bound lifted last (the progress says "(the twin)" when
the twin raised the bound; its bound is the stat ``cut_bound_twin``). The max-flows a last level takes are
heavy-tailed draws (guided by the best order ER N=64 seed 1 reached its optimum in
3.5M max-flows, guided by the heuristic's in 0.45M; seed 2 in 3.5M by the
heuristic's and not in 6M by the best), and two draws at about half the rate each
cut the tail: by hand, one thread, limit 150 s, twin against the first alone (CPU
s): ER N=56 seeds 0-2 proven in 22.9, 17.7 and 77.1 (8.4, 10.9 and 146.6), ER N=64
seeds 0-2 in 65.4, 23.3 and not (one unit apart; 49.4, 81.5 and not, two units
apart); WS N=256 seed 0 at 60 s 79 units against a bound of 76 (77). Where it
loses: the graphs the first guide proves soon take 1.3-2.7 times as long.
Before, the sequences' turn doubled only when it raised the bound (a
bound that stalls cost less and less of the time); doubling both proved WS N=64
seed 2 in 24.3 against 43.9 CPU s and WS N=48 seed 1 in 29.6 against 38.1 s,
lowered ER N=48 seed 1's gap from 10.7 to 6.9%, and cost 0-1 s elsewhere (by
hand, 60 s; the same proofs at 5 s).
Before the turns the bounds had fixed shares (10% of the limit each for the cut
bound and the width bound's minor step) and the rounds from above stopped at 60%
of it; graphs the rounds prove paid for both. Measured at 60 s, one searcher
(the benchmark of the session that made them so, with the cuts solved in groups
and the sequences' turns ``CUT_TURNS`` times the rounds'; in brackets the run
before, turns of equal length; ``benchmarks/RESULTS-randwire.md`` holds the latest
run): 19 of 24 WS and ER graphs proven (18; 18 at 5 s, 17; 13
before the dead sets), every WS graph of N <= 64 among them: WS N=64 seeds 0-2
in 2.9, 2.8 and 3.1 CPU s (3.2, 2.9, 4.0 s), WS N=48 seeds 0-2 in 2.0, 3.1 and
4.5 s (2.6, 3.8, 2.8 s), ER N=32 in 2.2, 3.9 and 3.5 s (2.5, 4.9, 7.2 s), ER N=48
seed 2 in 56.5 s (6.9%); WS N=128 seed 0 (1,843 ops) proven in 2.2 s (3.2 s);
ER N=40 seeds 0-2 in 6.1, 2.8 and 3.1 s, ER N=44 seeds 0-1 in 27.7 and 20.1 s;
gaps ER N=44 seed 2 3.6%, ER N=48 seeds 0-1 3.6 and 6.9% (the same), ER N=64
16.2, 16.2 and 18.4% (19.4, 16.2, 18.4%), WS N=256 16.2% (19.4%), WS N=352
34.1% (37.1%); at 5 s ER N=32 seed 2 proven too. With two searchers (rounds
beside the sequences) ER N=48 seed 2 proven in 38.8 s wall. Where it loses: WS
N=48 seed 2 4.5 CPU s against 2.8. The
width bound's minor step runs at the hand-over only when the cut bound does not
(``CUT_SECONDS`` 0, or capacities past 64 bits), with ``MINOR_SHARE`` of the
limit's worth of steps (at most ``MINOR_SECONDS``): the cut bound was the higher
on every RandWire graph measured. Run up front, the minor step cost every search
that proves in milliseconds a second (RandWire CIFAR-10: 0.05 -> 0.4 s); the cut
bound would cost them its max-flows (0.01-0.2 s on the timm graphs, where the
single cuts alone are the optimum on three of the eight).

**Decision search.** At the memory cap, or after the first slice, the
segment is handed to :mod:`serenity.schedule.decide`: rounds of "is there an
order below the best peak known?", each a depth-first search that remembers
only dead branching sets (no heap, no path per set: several times fewer bytes
per state, and several times faster per state in Python). An order found
becomes the best; "none" proves it optimal. WS N=48 seed 0 (700 ops): proven
in 5.4-5.6 CPU s and at most 403 MB max RSS with the compiled core at 60 and
300 s (105 CPU s and 538 MB in pure Python, measured two sessions earlier),
where the best-first search alone needed 14.0M states, about 280 s and 5 GB. When a round from above reaches the
memory cap or runs past ``FROM_BELOW_SHARE`` of the limit, the cut bound resumes
(above), then the rounds ask from below: "is there an order within the proven bound?" lifts the bound
a footprint level per "none" and proves an order found optimal. They hold
fewer dead sets than the best-first search held states at the same level,
so they lift the bound past where it stopped: WS N=64 seed 0 (926 ops) from
1,167,360 to 1,556,480 in 22 s when started at once (by hand). At the cap a
round forgets the lighter half of its dead sets, a few times, before it stops
(:mod:`serenity.schedule.decide`): WS N=64 seed 0 is proven under the default
cap at 300 s (``benchmarks/RESULTS-randwire.md``). The proof when the best order is
optimal is the same search from either side (the last round from below asks
for the level under it), so asking from above first loses nothing there and
keeps the cheap dives that lower the best order. If the rounds from below
stop too, the local search gets what is left.

**Compiled core.** ``_Search.run`` hands the loop to ``serenity.schedule._core``
(C++, built at install) when it is importable, the segment has at most 8,192
ops and ``SERENITY_PURE_PYTHON`` is unset or ``0``; it is a port of
``_Search._run_python`` (same keys, tie-breaks, counters and stops, so the
same order, peak and bound; ``tests/test_exact_core.py`` compares them) on a
local re-indexing of the segment's ops, and returns to Python every
``_CORE_SLICE`` seconds for progress and signals.

**Decomposition at cut ops.** An op that every other op either precedes or
follows splits every order into independent segments (SERENITY's
divide-and-conquer). Segments are solved one at a time, the one whose
best-heuristic peak is highest first; the optimum is the largest segment
optimum, so a segment whose heuristic order already stays within the bound
proven so far needs no search at all.

**Graph fusion first.** Under the default model the search runs on the
fused graph (:mod:`serenity.schedule.fusion`: chains some optimal order runs
back to back become one op, optimum unchanged) and the order is expanded.
Measured (``benchmarks/RESULTS-ilp.md``): 40-70% fewer ops on every real
graph; states expanded on nasnetalarge 5,307 -> 2,598, its time 0.69 s ->
0.24 s, pnasnet5large 0.057 s -> 0.037 s; graphs solved in milliseconds pay
up to about 20 ms for the pass and a second heuristic run. The in-place model
searches the graph as it is.

Reported statistics: states expanded, free moves, segments searched, ops
after fusion, the local search's beams, windows, improvements and states,
``memory_capped``, the second cut bound's level (``cut_bound_second``), the
decision rounds, orders found, states visited, the most dead sets held and the
dead sets forgotten at the cap.

Complexity: exponential in the width of the graph in the worst case (the
problem is NP-hard); each expansion costs O(ready ops x degree).
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from serenity._native import native_wanted
from serenity.ir import Problem, ops_of
from serenity.memory import Timeline, lower_bound, simulate
from serenity.memory.bounds import minor_budget, width_bound
from serenity.memory.cuts import CutBound, StepCuts
from serenity.memory.cuts import compiled as cuts_compiled
from serenity.schedule.decide import Decision, within
from serenity.schedule.fusion import fuse
from serenity.schedule.heuristics import best_heuristic_order
from serenity.schedule.result import (
    ScheduleOptions,
    ScheduleResult,
    default_threads,
    result_from_order,
)

try:
    from serenity.schedule import _core
except ImportError:  # not built: the pure-Python engine serves
    _core = None  # type: ignore[assignment]


@dataclass
class _Ops:
    """Per-op data for the search, flattened for speed."""

    out_bytes: list[int]
    dead_bytes: list[int]  # outputs nobody reads: freed right after the op
    pred_mask: list[int]
    # Per op: (size, consumer mask, is graph output) for every input tensor.
    ins: list[list[tuple[int, int, bool]]]
    # Per op: (size, consumer mask) of the inputs it may overwrite in place.
    inplace: list[list[tuple[int, int]]]
    succs: list[tuple[int, ...]]
    # Per op u in some E(v) (module docstring, "Delaying single-consumer
    # producers"): (v, mask of E(v), mask of v's predecessors outside E(v) and of
    # the predecessors of E(v)'s members); None for every other op.
    delay: list[tuple[int, int, int] | None]
    # Per op u: v when u alone makes up E(v) and the pair u, v may be a free move
    # (module docstring, "Free pairs"); -1 otherwise.
    pair: list[int]


def _compile(
    problem: Problem,
    inplace: bool,
    delay_rule: bool = True,
    delays: list[tuple[int, int, int] | None] | None = None,
) -> _Ops:
    """The search's per-op data; ``delays``: the delay blocks when the caller already
    computed them (:func:`_delayable`), else they are computed here (with ``delay_rule``)."""
    sizes = problem.tensor_sizes
    cmask = [sum(1 << c for c in cons) for cons in problem.consumers]
    out_bytes, dead_bytes, pred_mask, ins, inp = [], [], [], [], []
    for v in range(problem.num_ops):
        outs = problem.op_outputs[v]
        out_bytes.append(sum(sizes[t] for t in outs))
        dead_bytes.append(
            sum(
                sizes[t]
                for t in outs
                if not problem.consumers[t] and not problem.is_graph_output[t]
            )
        )
        pred_mask.append(sum(1 << u for u in problem.preds[v]))
        ins.append([(sizes[t], cmask[t], problem.is_graph_output[t]) for t in problem.op_inputs[v]])
        inp.append(
            [
                (sizes[t], cmask[t])
                for t in problem.inplace_inputs[v]
                if not problem.is_graph_output[t]
            ]
            if inplace
            else []
        )
    if delays is None:
        delays = _delayable(problem, inplace) if delay_rule else [None] * problem.num_ops
    pair = _free_pairs(problem, delays)
    return _Ops(out_bytes, dead_bytes, pred_mask, ins, inp, list(problem.succs), delays, pair)


def _free_pairs(problem: Problem, delay: list[tuple[int, int, int] | None]) -> list[int]:
    """Per op ``u``: ``v`` when ``E(v) = {u}`` and conditions (A) and (B) hold, else -1."""
    sizes, go = problem.tensor_sizes, set(problem.graph_outputs)
    pair = [-1] * problem.num_ops
    for u, d in enumerate(delay):
        if d is None or d[1] != 1 << u:
            continue
        v = d[0]
        u_outs = set(problem.op_outputs[u])

        def private(inputs: list[int], u: int = u, v: int = v, skip: set[int] = u_outs) -> int:
            return sum(
                sizes[t]
                for t in dict.fromkeys(inputs)
                if t not in skip and t not in go and set(problem.consumers[t]) <= {u, v}
            )

        out_v = sum(sizes[t] for t in problem.op_outputs[v] if problem.consumers[t] or t in go)
        a_live = sum(sizes[t] for t in u_outs if problem.consumers[t] or t in go)
        both = private([*problem.op_inputs[u], *problem.op_inputs[v]])
        if out_v <= both and out_v <= a_live + private(list(problem.op_inputs[v])):
            pair[u] = v
    return pair


def delayable_producers(problem: Problem, inplace: bool = False) -> list[int | None]:
    """Per op ``u``: its consumer ``v`` when ``u`` is in ``E(v)`` (module docstring), else None.

    ``u`` qualifies when ``v`` is its only successor and, with ``a`` the bytes of
    its outputs, ``a_live`` those read (by ``v``) or graph outputs, and
    ``F_max`` its inputs that are neither graph outputs nor read by ``v``:
    ``a_live >= F_max`` and ``a - a_live + F_max <= out(v)``. Under the
    in-place model (module docstring, "In place") ``s_v``, the largest input
    ``v`` may overwrite, joins the left side of the second condition.

    Complexity: O(n + e) set work.
    """
    sizes, go = problem.tensor_sizes, set(problem.graph_outputs)
    result: list[int | None] = []
    for u in range(problem.num_ops):
        if len(problem.succs[u]) != 1:
            result.append(None)
            continue
        (v,) = problem.succs[u]
        outs = problem.op_outputs[u]
        a = sum(sizes[t] for t in outs)
        a_live = sum(sizes[t] for t in outs if problem.consumers[t] or t in go)
        f_max = sum(
            sizes[t] for t in problem.op_inputs[u] if t not in go and v not in problem.consumers[t]
        )
        b = sum(sizes[t] for t in problem.op_outputs[v])
        s_v = 0
        if inplace:
            s_v = max((sizes[t] for t in problem.inplace_inputs[v] if t not in go), default=0)
        result.append(v if a_live >= f_max and a - a_live + f_max + s_v <= b else None)
    return result


def _delayable(problem: Problem, inplace: bool) -> list[tuple[int, int, int] | None]:
    consumer = delayable_producers(problem, inplace)
    heads = {v for v in consumer if v is not None}
    # A consumer stays where it is: it is never itself delayed (blocks do not nest).
    consumer = [None if u in heads else v for u, v in enumerate(consumer)]
    members: dict[int, int] = {}
    for u, v in enumerate(consumer):
        if v is not None:
            members[v] = members.get(v, 0) | 1 << u
    before: dict[int, int] = {}
    for v, m in members.items():
        need = sum(1 << p for p in problem.preds[v]) & ~m
        for u in range(problem.num_ops):
            if m >> u & 1:
                need |= sum(1 << p for p in problem.preds[u])
        before[v] = need
    return [None if v is None else (v, members[v], before[v]) for v in consumer]


def block_precedences(problem: Problem, inplace: bool = False) -> list[int]:
    """Per op, a bitmask of ops that run before it in some optimal order, besides its
    ancestors: for a member of ``E(v)``, the ops the block waits for (``v``'s other
    predecessors and the members' predecessors; module docstring, "Blocks").

    The block claim gives an optimal order that runs every block right before
    its consumer, and those ops, being outside the block and needed before
    ``v`` or a member, run before the whole block. The width bound over such
    orders (:func:`serenity.memory.bounds.width_bound`, ``before``) is a bound
    on the optimum.

    Complexity: O(n + e) set work.
    """
    return _precedences(_delayable(problem, inplace))


def _precedences(delay: list[tuple[int, int, int] | None]) -> list[int]:
    """:func:`block_precedences` from the delay blocks already computed."""
    return [0 if d is None else d[2] for d in delay]


def cut_ops(problem: Problem) -> list[int]:
    """Ops that every other op precedes or follows, in topological order.

    Complexity: O(n^2 / w) with w-bit words, for the ancestor and descendant sets.
    """
    anc, desc = problem.ancestor_masks(), problem.descendant_masks()
    last = problem.num_ops - 1
    return [
        v for v in problem.topological_order() if anc[v].bit_count() + desc[v].bit_count() == last
    ]


class _Timeout(Exception):
    pass


class _GiveUp(_Timeout):
    """The proven bound reached ``ScheduleOptions.give_up_at``."""


class _MemoryCap(_Timeout):
    """The search's states reached ``ScheduleOptions.search_memory``."""


class _Exhausted(Exception):
    """No order of the segment stays within the search's upper bound."""


def _step(ops: _Ops, done: int, mem: int, v: int) -> tuple[int, int]:
    """(footprint while ``v`` runs, memory after it) from state ``done`` holding ``mem``."""
    after = done | (1 << v)
    freed = ops.dead_bytes[v]
    for size, cmask, is_out in ops.ins[v]:
        if not is_out and cmask & ~after == 0:
            freed += size
    saved = 0
    for size, cmask in ops.inplace[v]:
        if cmask & ~after == 0 and size > saved:
            saved = size
    return mem + ops.out_bytes[v] - saved, mem + ops.out_bytes[v] - freed


def _trace(ops: _Ops, start: int, mem: int, order: list[int]) -> tuple[list[int], list[int]]:
    """Per step of ``order`` from ``start``: the footprint, and the memory before it."""
    during, before, done = [], [], start
    for v in order:
        before.append(mem)
        d, mem = _step(ops, done, mem, v)
        during.append(d)
        done |= 1 << v
    return during, before


def _pending(pred_mask: list[int], done: int, v: int, most: int) -> int | None:
    """``v`` with its ancestors not in ``done``, as a mask, or None past ``most`` ops."""
    x, todo, count = 1 << v, [v], 1
    while todo:
        u = todo.pop()
        for p in ops_of(pred_mask[u] & ~done & ~x):
            x |= 1 << p
            count += 1
            if count > most:
                return None
            todo.append(p)
    return x


class _Search:
    """Best-first search of one segment: from downset ``start`` to ``goal``.

    :meth:`run` uses the compiled core (``_core``, a port of :meth:`_run_python`
    that returns the same order, peak, level and counters) when it is built, the
    segment fits its masks and ``SERENITY_PURE_PYTHON`` is not set, or ``core``
    forces the choice (``core=False``: the Python reference).
    """

    def __init__(
        self,
        ops: _Ops,
        start: int,
        goal: int,
        start_mem: int,
        bound: int,
        upper: int,
        deadline: float | None,
        tick: Callable[[], None],
        free_moves: bool = True,
        give_up_at: int | None = None,
        max_expanded: int | None = None,
        max_bytes: int | None = None,
        core: bool | None = None,
    ) -> None:
        self.ops, self.start, self.goal, self.start_mem = ops, start, goal, start_mem
        self.max_expanded, self.max_bytes = max_expanded, max_bytes
        self.bound, self.upper, self.deadline, self.tick = bound, upper, deadline, tick
        self.give_up_at = give_up_at
        self.expanded = 0
        self.free_moves = 0
        self.generated = 0  # successors generated by beam searches
        self.level = bound  # the f of the last state expanded: a proven bound
        self.use_free_moves = free_moves
        # Ops a free set may hold (decide.py, "Free sets"; 0 or 1: none).
        self.free_set_ops = max(0, min(FREE_SET_OPS, _FREE_SET_MOST))

        # Per delayable producer u of a consumer v inside this segment: ``wait[u]``,
        # the ops that must have run before v's block may open, and ``block[u]``,
        # the ops allowed while it is open (E(v) and v); 0 for every other op.
        inside = goal & ~start
        self.wait = [0] * len(ops.out_bytes)
        self.block = [0] * len(ops.out_bytes)
        for u, d in enumerate(ops.delay):
            if d is not None and inside >> u & 1 and inside >> d[0] & 1:
                self.wait[u] = d[2] & inside
                self.block[u] = (d[1] | 1 << d[0]) & inside

        self.came: dict[int, int] = {}
        # Entries: (f, -depth, tie, g, done, mem, last op, ready mask).
        self.heap: list[tuple[int, int, int, int, int, int, int, int]] = []
        self._core: _core.Core | None = None
        self._local: list[int] = []
        if _core is not None and (core if core is not None else native_wanted()):
            self._core, self._local = _make_core(self) or (None, [])
        if self._core is None:
            self.heap.append(
                (max(bound, start_mem), 0, 0, start_mem, start, start_mem, -1, self._ready(start))
            )

    def _check(self, states: int, goal: int) -> None:
        """Progress, then stop at the deadline, the expansion budget or the memory cap."""
        self.tick()
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _Timeout
        if self.max_expanded is not None and self.expanded >= self.max_expanded:
            raise _Timeout
        # A heap entry and a closed-set slot per state, masks of up to n bits.
        per_state = 300 + 3 * (goal.bit_length() // 8)
        if self.max_bytes is not None and states * per_state > self.max_bytes:
            raise _MemoryCap

    def _free(
        self, steps: list[tuple[int, int, int]], limit: int, done: int, mem: int, open_block: int
    ) -> tuple[int, int, int] | None:
        """The free move among ``steps`` (module docstring), if any: a single op, else a pair."""
        block = self.block
        for s in steps:
            if s[1] <= limit and s[2] <= mem and (open_block or not block[s[0]]):
                return s
        if open_block:
            return None
        pair, goal = self.ops.pair, self.goal
        for s in steps:
            v = pair[s[0]]
            if v >= 0 and block[s[0]] and s[1] <= limit and goal >> v & 1:
                during, after = _step(self.ops, done | 1 << s[0], s[2], v)
                if during <= limit and after <= mem:
                    return s
        return None

    def _forced(
        self,
        steps: list[tuple[int, int, int]],
        limit: int,
        done: int,
        mem: int,
        open_block: int,
        ready: int,
    ) -> tuple[int, int, int] | None:
        """The one step the reductions leave at ``done`` in the best-first and decision
        searches, if any: the free move or pair, else (no block open) a free set's first
        step. The beams take free moves alone (:meth:`_free`)."""
        if not self.use_free_moves:
            return None
        free = self._free(steps, limit, done, mem, open_block)
        if free is None and not open_block:
            free = self._free_set(steps, limit, done, mem, ready)
        return free

    def _free_set(
        self, steps: list[tuple[int, int, int]], limit: int, done: int, mem: int, ready: int
    ) -> tuple[int, int, int] | None:
        """The first step of a free set at ``done`` (no block open; ``ready``: its ready
        mask), if any (:mod:`serenity.schedule.decide`, "Free sets"): for each op ``v``,
        ascending, that is no delay member, ``X``: ``v`` with its ancestors not yet run,
        of 2 to ``free_set_ops`` ops (so ``v`` lies fewer steps than that past a ready
        op); no downset between ``done`` and ``done | X`` holds less memory than
        ``done | X``; an order of ``X`` that the rules allow runs within ``limit``.
        Returns that order's first step (one of ``steps``: the steps within ``limit``)."""
        most = self.free_set_ops
        if most < 2 or not steps:
            return None
        ops, block, goal = self.ops, self.block, self.goal
        found, layer = 0, ops_of(ready)
        for _ in range(most - 1):
            grown = []
            for u in layer:
                for x in ops.succs[u]:
                    bit = 1 << x
                    if goal & bit and not (done | ready | found) & bit:
                        found |= bit
                        grown.append(x)
            layer = grown
        for v in ops_of(found):
            if block[v]:
                continue
            members = _pending(ops.pred_mask, done, v, most)
            if members is None:
                continue
            first = self._set_order(members, limit, done, mem)
            if first is not None:
                return next(s for s in steps if s[0] == first)
        return None

    def _set_order(self, x: int, limit: int, done: int, mem: int) -> int | None:
        """The first op of an order of ``x`` from ``done`` within ``limit`` that the
        rules allow (depth first, ascending ops), provided no downset between ``done``
        and ``done | x`` holds less memory than ``done | x`` (else None)."""
        ops, pred_mask = self.ops, self.ops.pred_mask
        held: dict[int, int] = {}  # downset within x -> memory after it

        def downsets(d: int, m: int) -> None:
            if d in held:
                return
            held[d] = m
            for u in ops_of(x & ~d):
                if pred_mask[u] & ~(done | d) == 0:
                    downsets(d | 1 << u, _step(ops, done | d, m, u)[1])

        downsets(0, mem)
        if held[x] > min(held.values()):
            return None

        def order(d: int, m: int, last: int) -> bool:
            if d == x:
                return True
            ready = sum(1 << u for u in ops_of(x & ~d) if pred_mask[u] & ~(done | d) == 0)
            for u, during, after in self._moves(done | d, m, last, ready)[0]:
                if during <= limit and order(d | 1 << u, after, u):
                    first.append(u)
                    return True
            return False

        first: list[int] = []
        return first[-1] if order(0, mem, -1) else None

    def _ready(self, done: int) -> int:
        """The mask of ops of the segment whose predecessors all ran."""
        pred_mask = self.ops.pred_mask
        rest = self.goal & ~done
        ready = 0
        while rest:
            low = rest & -rest
            rest ^= low
            if pred_mask[low.bit_length() - 1] & ~done == 0:
                ready |= low
        return ready

    def run(self) -> tuple[list[int], int]:
        """Return the segment's order and its peak.

        The peak is the segment's optimum, or any value up to ``bound`` when the
        segment can stay within it. Raises :class:`_Timeout` (resumable: call
        again, with a new ``upper`` or ``deadline`` if wanted), :class:`_GiveUp`,
        :class:`_MemoryCap` or :class:`_Exhausted`.
        """
        core = self._core
        if core is None:
            return self._run_python()
        core.begin()  # the tie counter restarts as in _run_python
        while True:
            remaining = 1e30 if self.deadline is None else self.deadline - time.perf_counter()
            status = core.run(
                _clamp(self.upper),
                -1 if self.max_expanded is None else max(0, self.max_expanded),
                remaining,
                -1 if self.give_up_at is None else max(0, _clamp(self.give_up_at)),
                -1 if self.max_bytes is None else max(0, _clamp(self.max_bytes)),
                _CORE_SLICE,
            )
            self.expanded, self.free_moves, self.level = core.expanded, core.free_moves, core.level
            self.tick()  # progress; KeyboardInterrupt is seen here too
            if status == _core.DONE:
                return [self._local[v] for v in core.order], core.peak
            if status != _core.SLICE:
                raise _CORE_STOPS[status]

    def clear(self) -> None:
        """Free the states (the search is not resumed) and a paused decision's sets."""
        self.heap.clear()
        self.came.clear()
        if self._core is not None:
            self._core.clear()
            self._core.decide_reset()

    @property
    def memory_bytes(self) -> int | None:
        """Bytes held by the compiled core's heap and closed set (None in Python)."""
        return None if self._core is None else self._core.bytes

    def _moves(
        self, done: int, mem: int, last: int, ready: int
    ) -> tuple[list[tuple[int, int, int]], int]:
        """The steps ``(v, footprint, memory after)`` allowed from a state, in
        ascending ``v`` (delay blocks applied), and the mask of the block ``last``
        left open (0 if none)."""
        ops, wait = self.ops, self.wait
        open_block = self.block[last] if last >= 0 else 0
        rest = ready & open_block if open_block else ready
        steps = []
        while rest:
            low = rest & -rest
            rest ^= low
            v = low.bit_length() - 1
            w = wait[v]
            if w and w & ~done:
                continue  # delayed: some optimal order runs it later
            steps.append((v, *_step(ops, done, mem, v)))
        return steps, open_block

    def _next_ready(self, ready: int, v: int, nxt: int) -> int:
        """The ready mask after ``v`` ran (``nxt``: the executed set with ``v``)."""
        pred_mask, goal = self.ops.pred_mask, self.goal
        ready ^= 1 << v
        for s in self.ops.succs[v]:
            if goal >> s & 1 and pred_mask[s] & ~nxt == 0:
                ready |= 1 << s
        return ready

    def _run_python(self) -> tuple[list[int], int]:
        """The reference implementation of :meth:`run` (the core is a port of it)."""
        goal, came, heap = self.goal, self.came, self.heap
        counter = len(heap) + self.expanded  # any fresh tie-breaker keeps it deterministic
        while heap:
            entry = heapq.heappop(heap)
            f, negdepth, _, g, done, mem, last, ready = entry
            if done in came:
                continue
            if self.expanded & 1023 == 0 or (
                self.max_expanded is not None and self.expanded >= self.max_expanded
            ):
                try:
                    self._check(len(came) + len(heap), goal)
                except _Timeout:
                    heapq.heappush(heap, entry)  # resumable: nothing is lost
                    raise
            if done == goal:
                came[done] = last
                self.level = max(self.level, f)
                return self._path(came, done), g
            steps, open_block = self._moves(done, mem, last, ready)
            h = min(during for _, during, _ in steps)
            if h > f:  # lazy heuristic: re-queue with the sharper key
                counter += 1
                heapq.heappush(heap, (h, negdepth, counter, g, done, mem, last, ready))
                continue
            came[done] = last
            self.level = max(self.level, f)
            if self.give_up_at is not None and f >= self.give_up_at:
                raise _GiveUp  # every order of the segment peaks at f or more
            self.expanded += 1
            free = self._forced(steps, f, done, mem, open_block, ready)
            if free is not None:
                self.free_moves += 1
                steps = [free]
            for v, during, after in steps:
                nxt = done | (1 << v)
                if during > self.upper or nxt in came:
                    continue
                nready = self._next_ready(ready, v, nxt)
                counter += 1
                heapq.heappush(
                    heap,
                    (max(f, during), negdepth - 1, counter, max(g, during), nxt, after, v, nready),
                )
        raise _Exhausted

    def beam(
        self, width: int, deadline: float | None, max_generated: int | None = None
    ) -> tuple[list[int], int] | None:
        """Beam search: an order of the segment (no proof), or None at the deadline or
        once it generated more than ``max_generated`` successors (counted in
        ``self.generated``: a budget that does not depend on the machine's speed).

        Layer by layer (ops executed), keep the ``width`` states of lowest
        (peak so far, memory held), one per downset; successors follow the
        same rules as :meth:`run` (delay blocks, free moves within the bound).
        The compiled core's beam (``_core.cpp``) when :meth:`run` would use it:
        the same order, peak and count (:meth:`_beam_python` is the reference).

        Complexity: O(segment ops x width x ready ops x degree).
        """
        core = self._core
        if core is None:
            return self._beam_python(width, deadline, max_generated)
        remaining = 1e30 if deadline is None else deadline - time.perf_counter()
        most = -1 if max_generated is None else max(0, max_generated)
        status = core.beam(width, _clamp(self.bound), remaining, most)
        self.generated = core.generated
        if status != _core.DONE:
            return None
        return [self._local[v] for v in core.order], core.peak

    def _beam_python(
        self, width: int, deadline: float | None, max_generated: int | None
    ) -> tuple[list[int], int] | None:
        """The reference implementation of :meth:`beam` (the core's is a port of it)."""
        goal = self.goal
        layer = {self.start: (self.start_mem, self.start_mem, -1, self._ready(self.start))}
        parents: list[dict[int, tuple[int, int]]] = []
        while self.start.bit_count() + len(parents) < goal.bit_count():
            if deadline is not None and time.perf_counter() > deadline:
                return None
            nxt: dict[int, tuple[int, int, int, int]] = {}
            back: dict[int, tuple[int, int]] = {}
            for done, (g, mem, last, ready) in layer.items():
                steps, open_block = self._moves(done, mem, last, ready)
                free = self._free(steps, max(g, self.bound), done, mem, open_block)
                chosen = [free] if free is not None else steps
                self.generated += len(chosen)
                if max_generated is not None and self.generated > max_generated:
                    return None
                for v, during, after in chosen:
                    nd = done | 1 << v
                    key = (max(g, during), after)
                    old = nxt.get(nd)
                    if old is not None and (old[0], old[1]) <= key:
                        continue
                    nxt[nd] = (*key, v, ready)  # the ready mask before v: kept states get theirs
                    back[nd] = (done, v)
            if not nxt:
                return None
            kept = sorted(nxt.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))[:width]
            layer = {
                d: (g, mem, v, self._next_ready(ready, v, d)) for d, (g, mem, v, ready) in kept
            }
            parents.append({d: back[d] for d in layer})  # back-pointers of kept states only
        done, (peak, *_) = min(layer.items(), key=lambda kv: (kv[1][0], kv[0]))
        path = []
        for back in reversed(parents):
            done, v = back[done]
            path.append(v)
        return path[::-1], peak

    def _path(self, came: dict[int, int], done: int) -> list[int]:
        path = []
        while came[done] != -1:
            v = came[done]
            path.append(v)
            done ^= 1 << v
        return path[::-1]


#: Seconds the compiled core runs before it returns to Python (progress, signals).
_CORE_SLICE = 0.2
#: Seconds' worth of max-flows the cut bound's sequences take at a time (module
#: docstring, "Anytime lower bound"): between two, a new witness is followed and, beside
#: a round in its thread, the round's answer looked at.
_CUT_PIECE = 0.2
#: Values are clamped to this before they reach the core (its integers are 64-bit).
_CORE_MAX = 1 << 62


def _clamp(x: int) -> int:
    return max(-_CORE_MAX, min(x, _CORE_MAX))


def _make_core(search: _Search) -> tuple[_core.Core, list[int]] | None:
    """The compiled core for ``search`` and its ops in local order, or None when it
    does not apply (segment too large for the masks, values beyond 64 bits, or a
    start/goal that are not nested downsets).

    Local index ``i`` is the ``i``-th op of ``goal & ~start`` in increasing global
    order, so masks compare as the Python integers do. A tensor's consumers
    inside the segment are listed; one read after the goal is never freed, one
    read in ``start`` already was.

    Complexity: O(segment ops x (degree + n / 64)).
    """
    ops, start, goal = search.ops, search.start, search.goal
    if start & ~goal:
        return None
    inside = goal & ~start
    local: list[int] = []
    rest = inside
    while rest:
        low = rest & -rest
        rest ^= low
        local.append(low.bit_length() - 1)
    words = 1
    while words * 64 < len(local):
        words *= 2
    if words > _core.MAX_WORDS:
        return None
    index = {v: i for i, v in enumerate(local)}
    total = search.start_mem + sum(ops.out_bytes[v] for v in local)
    if max(total, search.bound) >= _CORE_MAX // 4 or search.start_mem < 0:
        return None

    def bits(mask: int) -> list[int]:
        found = []
        mask &= inside
        while mask:
            low = mask & -mask
            mask ^= low
            found.append(index[low.bit_length() - 1])
        return found

    preds, succs, ins, inplace, wait, block, pair = [], [], [], [], [], [], []
    for v in local:
        if ops.pred_mask[v] & ~goal:
            return None  # an op that can never run: the Python engine handles it
        preds.append(bits(ops.pred_mask[v]))
        succs.append([index[s] for s in ops.succs[v] if inside >> s & 1])
        ins.append(
            [(size, bits(c)) for size, c, is_out in ops.ins[v] if not is_out and not c & ~goal]
        )
        inplace.append([(size, bits(c)) for size, c in ops.inplace[v] if not c & ~goal])
        wait.append(bits(search.wait[v]))
        block.append(bits(search.block[v]))
        u = ops.pair[v]
        pair.append(index[u] if u >= 0 and inside >> u & 1 else -1)
    core = _core.make_core(
        words,
        [ops.out_bytes[v] for v in local],
        [ops.dead_bytes[v] for v in local],
        preds,
        succs,
        ins,
        inplace,
        wait,
        block,
        pair,
        search.start_mem,
        search.bound,
        search.use_free_moves,
        search.free_set_ops,
    )
    return core, local


_CORE_STOPS: dict[int, type[Exception]] = (
    {}
    if _core is None
    else {
        _core.TIMEOUT: _Timeout,
        _core.GIVE_UP: _GiveUp,
        _core.MEMORY_CAP: _MemoryCap,
        _core.EXHAUSTED: _Exhausted,
    }
)


#: Widths of the beam searches tried in turn (each about 8x the previous one's time).
_BEAM_WIDTHS = (64, 512, 4096)
#: Widths (ops) of the windows the local search re-solves around a peak step.
_WINDOWS = (12, 24, 48, 96, 192, 384)
#: States one window search may expand before the next window is tried.
_WINDOW_EXPANSIONS = 20_000
#: Visits of one decision probe in a gap of the witness's order (:func:`_dives`;
#: four times as many for the probe below the best order's peak), and the probes that
#: bisect the gap's level after it.
_GAP_VISITS = 50_000
_GAP_PROBES = 4
#: A gap of the witness's order with more ops than ``SPLIT_GAP_OPS`` is split at a
#: least cut (:func:`_through`), and its pieces again down to ``_SPLIT_PIECE_OPS``.
SPLIT_GAP_OPS = 512
_SPLIT_PIECE_OPS = 64
#: Ops a free set may hold (:mod:`serenity.schedule.decide`, "Free sets"; the decision
#: and best-first searches); 0 or 1: none; at most ``_FREE_SET_MOST`` (the core's arrays).
FREE_SET_OPS = 3
_FREE_SET_MOST = 8
#: Share of the time limit the local search may take before the best-first search
#: resumes (without the decision search; with it, the local search runs last).
LOCAL_SEARCH_SHARE = 0.25
#: Seconds (at most a tenth of the time limit) the best-first search runs alone before
#: the decision search (or, without it, the local search) takes over.
FIRST_SLICE = 2.0
#: Seconds' worth (at most ``BEAM_SHARE`` of the time limit) of beam searches (widths 64
#: and 512) between the first slice and the decision rounds: on ER N=48 seed 0 (1,184
#: ops) the width-512 beam finds 2,256,896 bytes in 1.6-2.7 s, where the rounds' dives
#: stop at 2,334,720 for the whole minute. The widest beam is left out: it would take the
#: whole slice on graphs the rounds prove in seconds (WS N=48 seed 0: 5.7 -> 8.1 CPU s
#: with it). Counted in successors generated (``BEAM_RATE`` per second), not wall clock,
#: so the orders found do not depend on the machine's speed or load (a wall-clock slice
#: cut the width-512 beam short on a slower machine); the wider beam starts only when 8x
#: the narrower one's count fits in what is left. It was 3 s, 5% of the limit: on ER N=64
#: (1,977-2,133 ops; the width-64 beam generates 84,000-88,000 successors) the width-512
#: beam did not fit. With it, by hand at 60 s (one searcher), seed 2 finds 3,424,256
#: bytes (against 3,502,080 from the witnesses all minute; the sequences, guided by the
#: better order, also reach a level higher: 10.0% apart against 15.4%); seeds 0 and 1,
#: ER N=48 seed 0, WS N=48 seed 0 and WS N=256 seed 0 end the same.
BEAM_SLICE = 5.0
BEAM_SHARE = 0.1
#: Successors generated by beam searches counted as one second of ``BEAM_SLICE``
#: (measured in Python: 110,000-220,000 per second; widths 64 + 512 generate 288,301 on
#: WS N=64 seed 0, 438,113 on ER N=48 seed 0, where the width-512 beam finds its better
#: order, and 711,297 on ER N=64 seed 0). The compiled core's beams (``_core.cpp``, the
#: same orders and counts) generate 2.0-2.6 million a second on ER N=64 and WS N=352:
#: the slice's million successors take about 0.4 s there, and a proof that runs the
#: width-512 beam is that much sooner (ER N=48 seed 0 at 60 s: 16.9 against 20.3 CPU s).
BEAM_RATE = 200_000
#: The width bound's minor step at the hand-over when the cut bound does not run (it is
#: the higher on every RandWire graph measured): steps for about this share of the
#: time limit, at most ``MINOR_SECONDS`` worth (:func:`serenity.memory.bounds.minor_budget`).
MINOR_SHARE = 0.1
MINOR_SECONDS = 7.5
#: The cut bound's sequences and the rounds from above take turns: first the sequences
#: (from the hand-over, after the beams) for this share of the limit's worth of
#: max-flows (at most ``CUT_SECONDS``; counted, not timed), then the rounds for as
#: long in wall time (paused, not restarted); each pair of turns doubles, until the
#: sequences are spent or reach the best peak (which proves it). Measured against
#: 1 s turns: WS N=48 seed 0 proven in 4.2 against 5.2 s wall (by hand).
CUT_SHARE = 0.04
CUT_SECONDS = 2.0
#: A turn of the sequences (after the first) is this many times as long as the rounds'
#: turn before it. It was 1: the rounds from above had half the time and answered on
#: no RandWire graph of the benchmark at 60 s (every proof there is the cut bound's).
#: By hand at 60 s, one searcher, 7 against 1: ER N=48 seed 2 proven in 52.7 CPU s
#: (3.3% gap), ER N=44 seed 2 a 3.6% gap (7.4%); WS N=48/64 and ER N=32/40 proven
#: as fast, ER N=64 seed 0 and WS N=256 the same bounds; 3: ER N=48 seed 2 3.3%.
CUT_TURNS = 7.0
#: When the rounds from above stop, the cut bound's sequences go on with the time left,
#: at most this many seconds' worth; the rounds from below get the rest.
CUT_LATER_SECONDS = 60.0
#: States expanded (or successors a beam generated) counted as one second of a cut
#: turn's seconds for the order through the cut bound's witness, at least
#: ``_WINDOW_EXPANSIONS`` (measured: 0.7-1.7M a second by the compiled core on
#: 100-op windows of WS and ER N=64; a beam in Python generates about ``BEAM_RATE``).
WITNESS_RATE = 1_000_000
_SLICE_WIDTHS = _BEAM_WIDTHS[:2]
#: With two threads or more and the compiled cuts (their max-flows run without the
#: GIL), a second cut bound lifts in a thread of its own, guided by the order the
#: engine started from (none when that is the best order); the rounds get one thread
#: fewer. Otherwise the first's twin, so guided, takes turns with it in the engine's
#: thread (module docstring, "Two cut bounds").
TWO_CUTS = True
#: The two cut bounds that take turns in one thread: the one that raised the bound
#: last gets this many pieces for each of the other's.
LEAD_TURNS = 3
#: Share of the time limit after which the rounds from above stop: the cut bound's
#: sequences, then the decision rounds from below, lift the bound with the rest. It was
#: 0.6 while the sequences had fixed shares (at 0.9 ER N=64 seed 0 had reached 2,723,840
#: instead of 2,801,664 at 60 s); with the turns the sequences run all along, and at
#: 0.6 WS N=48 seed 1's proof from above (about 25 s of rounds) missed the minute.
FROM_BELOW_SHARE = 0.9


def _next_turn(
    cutter: list[CutBound], turns: dict[CutBound, int], lead: CutBound | None
) -> CutBound:
    """The cut bound of the engine's thread to lift next (module docstring, \"Two cut
    bounds\"): of those not spent, the one with the fewest pieces for its weight,
    ``LEAD_TURNS`` for the one that raised the bound last; the first on ties."""
    live = [c for c in cutter if not c.spent] or cutter[:1]
    return min(live, key=lambda c: turns.get(c, 0) / (LEAD_TURNS if c is lead else 1))


def _share_seconds(share: float, most: float, limit: float | None, deadline: float | None) -> float:
    """Seconds' worth of work for a bound at the hand-over: ``share`` of the limit, at
    most ``most``, never past the deadline (none at it)."""
    seconds = most if limit is None else min(most, share * limit)
    return seconds if deadline is None else min(seconds, deadline - time.perf_counter())


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class _SecondCuts:
    """A second cut bound, guided by another order, lifted in a thread of its own
    (module docstring, "Two cut bounds"): ``_CUT_PIECE`` seconds' worth of max-flows
    at a time until :meth:`close`, the deadline, ``upper`` (updated by the engine when
    a better order is found) or no line is left. ``reached`` is set when its bound
    reaches ``upper``, which proves the order at that peak optimal."""

    def __init__(
        self,
        problem: Problem,
        *,
        inplace: bool,
        before: list[int] | None,
        order: list[int],
        upper: int,
        deadline: float | None,
    ) -> None:
        self._make = lambda: CutBound(problem, inplace=inplace, before=before)
        self._order = order
        self.bound = 0
        self.upper = upper
        self.deadline = deadline
        self.reached = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serenity-cuts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            cut = self._make()  # in the thread: its single cuts take time
            if self._order:
                cut.guide(self._order)
            self.bound = cut.bound
            while self.bound < self.upper and not (self._stop.is_set() or cut.spent):
                if self.deadline is not None and time.perf_counter() >= self.deadline:
                    return
                self.bound = cut.lift(upper=self.upper, seconds=_CUT_PIECE, deadline=self.deadline)
            if self.bound >= self.upper:
                self.reached.set()
        except BaseException as error:  # noqa: BLE001 - raised again by close()
            self.error = error

    def lower(self, upper: int) -> None:
        """A better order peaks at ``upper``: nothing above it is worth proving."""
        self.upper = min(self.upper, upper)
        if self.bound >= self.upper:
            self.reached.set()

    def halt(self) -> None:
        """Stops the thread (within a piece)."""
        self._stop.set()
        self._thread.join()

    def close(self) -> int:
        """Stops the thread and returns the bound proven (raises what the thread raised)."""
        self.halt()
        if self.error is not None:
            raise self.error
        return self.bound


@dataclass
class _Local:
    """Counters of the local search (reported in the stats)."""

    beams: int = 0
    generated: int = 0
    windows: int = 0
    improved: int = 0
    expanded: int = 0
    witnesses: int = 0  # the cut bound's witnesses followed
    followed: int = 0  # ... that gave a better order


def _improve(
    ops: _Ops,
    start: int,
    mem: int,
    order: list[int],
    bound: int,
    deadline: float | None,
    free_moves: bool,
    counters: _Local,
    windows: bool = True,
    widths: tuple[int, ...] = _BEAM_WIDTHS,
    beam_budget: int | None = None,
) -> tuple[list[int], int]:
    """Large-neighbourhood search: lower a segment's peak by re-solving windows exactly.

    Around the first step at the peak, a window of consecutive ops is
    re-ordered by the best-first search from the set executed before it (the
    memory after the window is a function of that set, so the steps outside
    are unchanged), asking for every step below the peak; widths grow while
    windows fail (each window search expands at most ``_WINDOW_EXPANSIONS``
    states). Stops at ``bound`` (nothing lower exists), at the deadline, or when
    no window improves. The beam searches over the whole segment (widths
    ``widths``) run first, within ``beam_budget`` successors generated in all
    (None: no such budget; a beam past it returns nothing, and a wider one
    starts only if its predicted count, width / previous width times the
    previous beam's, fits in what is left); ``windows=False`` runs them alone.
    Returns the order and its peak (an upper bound only).

    Complexity: O(windows x _WINDOW_EXPANSIONS x expansion cost).
    """
    order = list(order)
    during, before = _trace(ops, start, mem, order)
    peak = max(during)
    n = len(order)
    goal = start | sum(1 << v for v in order)
    cost = 0  # successors the last beam generated; the next one costs about width/last x that
    for i, width in enumerate(widths):
        if peak <= bound:
            break
        if beam_budget is not None and i and cost * width // widths[i - 1] > beam_budget:
            break  # it would not finish: leave the time to the caller
        beam = _Search(ops, start, goal, mem, bound, peak, deadline, lambda: None, free_moves)
        found = beam.beam(width, deadline, beam_budget)
        cost = beam.generated
        counters.generated += cost
        if beam_budget is not None:
            beam_budget -= cost
        if found is None:
            break
        counters.beams += 1
        trial = _trace(ops, start, mem, found[0])
        if max(trial[0]) < peak:
            order, (during, before) = found[0], trial
            peak = max(during)
    while windows and peak > bound and (deadline is None or time.perf_counter() < deadline):
        p = during.index(peak)
        window: tuple[int, int, list[int]] | None = None
        for width in _WINDOWS:
            width = min(width, n)
            for i in dict.fromkeys((p - width // 2, p - width + 1, p)):
                i = max(0, min(i, n - width))
                j = i + width
                counters.windows += 1
                done = start | sum(1 << v for v in order[:i])
                goal = done | sum(1 << v for v in order[i:j])
                outside = max([*during[:i], *during[j:]], default=0)
                search = _Search(
                    ops,
                    done,
                    goal,
                    before[i],
                    min(max(bound, outside), peak - 1),
                    peak - 1,
                    deadline,
                    lambda: None,
                    free_moves,
                    max_expanded=_WINDOW_EXPANSIONS,
                )
                try:
                    window = (i, j, search.run()[0])
                except (_Timeout, _Exhausted):
                    continue
                finally:
                    counters.expanded += search.expanded
                break
            if window is not None or width == n:
                break
        if window is None:
            break
        i, j, sub = window
        order[i:j] = sub
        counters.improved += 1
        during, before = _trace(ops, start, mem, order)
        peak = max(during)
    return order, peak


def _through(
    ops: _Ops,
    start: int,
    mem: int,
    goal: int,
    chain: list[int],
    bound: int,
    upper: int,
    deadline: float | None,
    free_moves: bool,
    budget: int,
    cuts: StepCuts | None = None,
) -> list[int] | None:
    """An order of the segment from ``start`` to ``goal`` through the downsets of
    ``chain`` (the cut bound's witness, each taken within the segment); None when a
    gap has no order found with every step below ``upper``, past ``budget`` states
    expanded, successors generated and decision visits in all (a count: the same
    orders on any machine), or past the deadline.

    Each gap between two downsets is searched best-first (``_WINDOW_EXPANSIONS``
    states at most). Past them, the gap is probed by decision dives
    (:func:`_dives`): the memory at each downset of the chain is a function of the
    set, so the gaps are independent and the walk peaks at its highest gap; a gap is
    asked first for an order within the walk's highest step so far (or ``bound``),
    which costs the walk nothing, then for one below ``upper``, then the least level
    between is bisected. When they leave the gap above the walk's height, a beam of
    the narrowest width tries it too and the lower order is kept (on ER N=64 seed 2
    at 5 s the beam's gap order was the lower one: 3,502,080 bytes against
    3,735,552 with the dives alone). By hand (60 s, one searcher) the dives made WS
    N=256 seed 0's witnesses worth 6,303,744 bytes against 6,692,864 with the beam
    alone, whose gaps of 300-700 ops found no order below the best one's peak.

    **Split gaps.** With ``cuts`` (the cut bound's, on the same ops), a gap of more
    than ``SPLIT_GAP_OPS`` ops is split at its op ``v`` with the most balanced
    ancestors in it: the least cut of ``v`` with the gap's first set run and nothing
    past its last gives a downset ``S`` between them (its source side) from which
    ``v`` runs at its least step there; the pieces before ``S`` and after ``S + v``
    are walked the same way, down to ``_SPLIT_PIECE_OPS`` ops, each then searched
    as above. On the largest RandWire graphs the witness holds 12-24 sets and leaves
    one gap of some 900-1,000 ops, a stage the chosen ops do not reach: on WS N=352
    seed 0 (2,507 fused ops) the dives and beam took 5 s over it for 9,572,352 bytes
    against a bound of 6,381,568; split, the walk takes 0.2 s and gives 8,871,936,
    and at 60 s (one searcher, by hand) the gap closed from 37.1% to 16.1% (the cut
    bound, with the seconds back, a level higher), WS N=256 seed 0 from 8.0% to 6.7%
    (in the benchmark run from 9.5% to 8.0%: the same order, the bound higher).
    Gaps of 368 ops on ER N=64 seed 2, split, gave 3,579,904 against the beam's
    3,502,080: the smaller gaps are searched whole.

    Complexity: O(budget x expansion cost), and per split one max-flow and
    O(gap ops x predecessors) bitmask operations.
    """
    order: list[int] = []
    done = start
    height = 0  # the walk's highest step so far
    for target in [*(start | t & goal for t in chain), goal]:
        if target & ~done == 0:
            continue
        for piece, split in _split_gap(ops, done, target, cuts):
            steps = [split]  # an op the split runs from the set before it
            if split < 0:
                if budget <= 0:
                    return None
                args = (mem, bound, height, upper, deadline, free_moves, budget)
                gap, spent = _gap(ops, done, piece, *args)
                budget -= spent
                if gap is None:
                    return None
                steps = gap
            for v in steps:
                during, mem = _step(ops, done, mem, v)
                if during >= upper:
                    return None  # a split op's least step there (a gap's are below)
                height = max(height, during)
                done |= 1 << v
            order += steps
    return order


def _split_gap(ops: _Ops, done: int, target: int, cuts: StepCuts | None) -> list[tuple[int, int]]:
    """The gap from ``done`` to ``target`` in pieces, in order (:func:`_through`,
    "Split gaps"): ``(set, -1)`` a gap to search up to that set, ``(set, v)`` op
    ``v`` to run from the set before it (``set`` holds it). One piece when the gap
    has ``SPLIT_GAP_OPS`` ops or fewer, or no ``cuts``."""
    pieces: list[tuple[int, int]] = []
    full = (1 << len(ops.out_bytes)) - 1
    # (low, high, most): the gap from low to high, split while it has more than `most`
    # ops; most -1: the one op a split runs from low.
    stack: list[tuple[int, int, int]] = [(done, target, SPLIT_GAP_OPS)]
    while stack:
        low, high, most = stack.pop()
        if most < 0:
            pieces.append((high, (high & ~low).bit_length() - 1))
            continue
        v, step, side = -1, None, 0
        if cuts is not None and (high & ~low).bit_count() > most:
            v = _balanced_op(ops, low, high)
            if v >= 0:
                step, side = cuts.solve_masks(v, low, full & ~high)
        if step is None:
            pieces.append((high, -1))
            continue
        side = (side | low) & high & ~(1 << v)
        after = side | 1 << v
        # The last piece pushed first: they pop in order.
        stack += [(after, high, _SPLIT_PIECE_OPS), (side, after, -1), (low, side, _SPLIT_PIECE_OPS)]
    return pieces


def _balanced_op(ops: _Ops, low: int, high: int) -> int:
    """The op of the gap from ``low`` to ``high`` with nearest half of the gap's ops
    among its ancestors (ties: the lowest index); -1 when the gap is not closed
    under predecessors (no split)."""
    gap = high & ~low
    members = ops_of(gap)
    ancestors: dict[int, int] = {}
    placed, left = low, members
    while left:
        ready = [v for v in left if ops.pred_mask[v] & ~placed == 0]
        if not ready:
            return -1
        for v in ready:
            mask = 0
            for u in ops_of(ops.pred_mask[v] & gap):
                mask |= ancestors[u] | 1 << u
            ancestors[v] = mask
            placed |= 1 << v
        left = [v for v in left if not placed >> v & 1]
    half = len(members) // 2
    return min(members, key=lambda v: (abs(ancestors[v].bit_count() - half), v))


def _gap(
    ops: _Ops,
    done: int,
    target: int,
    mem: int,
    bound: int,
    height: int,
    upper: int,
    deadline: float | None,
    free_moves: bool,
    budget: int,
) -> tuple[list[int] | None, int]:
    """One gap of :func:`_through` searched whole (best-first, then the dives, then
    the narrowest beam): its order (None: none found below ``upper``) and the states,
    successors and visits spent."""
    args = (ops, done, target, mem, bound, upper - 1, deadline, lambda: None, free_moves)
    search = _Search(*args, max_expanded=min(_WINDOW_EXPANSIONS, budget))
    gap: list[int] | None = None
    try:
        gap = search.run()[0]
    except _Exhausted:
        return None, search.expanded
    except _Timeout:
        search.clear()  # the same search answers the dives and runs the beam
    spent = search.expanded
    if gap is None:
        target_peak = max(bound, height)  # within it, the gap costs the walk nothing
        gap, peak, dived = _dives(search, target_peak, upper - 1, budget - spent)
        spent += dived
        if gap is None or peak > target_peak:  # the beam may do better than the dives
            result = search.beam(_BEAM_WIDTHS[0], deadline, max(0, budget - spent))
            spent += search.generated
            if result is not None and result[1] < min(peak, upper):
                gap = result[0]
    return gap, spent


def _dives(search: _Search, low: int, high: int, budget: int) -> tuple[list[int] | None, int, int]:
    """An order of ``search``'s segment with every step within ``high``, as low as
    decision dives find (:func:`_through`): first within ``low``, then within
    ``high``, then bisected between (``_GAP_PROBES`` probes of ``_GAP_VISITS``
    visits each, four times that for ``high``), within ``budget`` visits in all.
    Returns the order (None when none was found), its peak (the memory before the
    segment or its largest step; ``high + 1`` when none was found) and the visits
    spent."""
    spent = 0
    low = min(low, high)

    def probe(limit: int, visits: int) -> Decision | None:
        nonlocal spent
        if budget - spent <= 0:
            return None
        answer = within(search, limit, search.deadline, max_visits=min(visits, budget - spent))
        spent += answer.visited
        return answer

    try:
        first = probe(low, _GAP_VISITS)
        if first is not None and first.status == "found":
            return first.order, first.peak, spent
        best = probe(high, 4 * _GAP_VISITS) if low < high else None
        if best is None or best.status != "found":
            return None, high + 1, spent
        floor = first.bound if first is not None and first.status == "none" else low + 1
        for _ in range(_GAP_PROBES):
            if floor >= best.peak:
                break
            middle = (floor + best.peak - 1) // 2
            answer = probe(middle, _GAP_VISITS)
            if answer is None:
                break
            if answer.status == "found":
                best = answer
            else:
                floor = answer.bound if answer.status == "none" else middle + 1
        return best.order, best.peak, spent
    finally:
        search.clear()


def _seed_order(problem: Problem, options: ScheduleOptions) -> list[int]:
    """The best heuristic order, or ``options.hint`` when that is a valid order with a
    lower peak."""
    order, chosen, peaks = best_heuristic_order(problem, options.inplace)
    hint = options.hint
    if hint is None or len(hint) != problem.num_ops or not problem.is_topological(hint):
        return order
    better = simulate(problem, hint, inplace=options.inplace).peak_bytes < peaks[chosen]
    return list(hint) if better else order


def _segments(problem: Problem, order: list[int]) -> list[list[int]]:
    """Split a topological order at the cut ops (each cut ends its segment)."""
    cuts = set(cut_ops(problem))
    segments: list[list[int]] = [[]]
    for v in order:
        segments[-1].append(v)
        if v in cuts:
            segments.append([])
    return [s for s in segments if s]


def exact(
    problem: Problem,
    options: ScheduleOptions,
    *,
    decompose: bool = True,
    free_moves: bool = True,
    fusion: bool = True,
    delay: bool = True,
    local_search: bool = True,
    decision: bool = True,
) -> ScheduleResult:
    """The memory-optimal order, proven; anytime under ``options.time_limit``.

    Starts from the best heuristic order or ``options.hint``, whichever peaks
    lower (an upper bound), and the trivial lower
    bound; searches only the segments whose heuristic peak exceeds the bound
    proven so far. When the time limit runs out, the best order found so far
    is returned with ``optimal=False`` and the bound proven so far; likewise
    as soon as that bound reaches ``options.give_up_at`` (no order peaks
    below it, which is all such a caller wants to know).

    Args:
        problem: The graph.
        options: Memory model, time limit, progress output.
        decompose: Split at cut ops (switch off only to test that it is exact).
        free_moves: Apply the free-move reduction (likewise).
        fusion: Search the fused graph (default model only; likewise).
        delay: Delay single-consumer producers (default model only; likewise).
        local_search: Lower the upper bound by re-solving windows (likewise).
        decision: Hand over to the decision search at the memory cap or after
            the first slice (likewise).
    """
    if fusion and not options.inplace:
        return _exact_fused(problem, options, decompose, free_moves, delay, local_search, decision)
    started = time.perf_counter()
    order = _seed_order(problem, options)
    timeline = simulate(problem, order, inplace=options.inplace)
    trivial = lower_bound(problem, inplace=options.inplace)
    delays = _delayable(problem, options.inplace) if delay else None
    # The minor step waits for the hand-over: most proofs finish before it would pay.
    # Over the orders that keep the delay blocks (one of them is optimal).
    before = None if delays is None else _precedences(delays)
    width = width_bound(problem, inplace=options.inplace, minor_visits=0, before=before)
    bound = max(trivial, width)
    threads = default_threads() if options.threads is None else options.threads
    stats: dict[str, object] = {
        "heuristic_peak": timeline.peak_bytes,
        "trivial_bound": trivial,
        "width_bound": width,
        "search_memory": options.search_memory,  # the cap (bytes; None: none)
        "threads": threads,  # searchers of the decision search
    }
    if timeline.peak_bytes <= bound:
        stats.update(segments=0, searched=0, expanded=0, free_moves=0)
        return result_from_order(
            problem, order, "exact", options, started=started, bound=bound, stats=stats
        )
    return _Exact(
        problem,
        options,
        started,
        order,
        timeline,
        bound,
        stats,
        threads,
        delays,
        before,
        decompose=decompose,
        free_moves=free_moves,
        delay=delay,
        local_search=local_search,
        decision=decision,
    ).run()


class _Exact:
    """One run of :func:`exact` on a graph whose heuristic order is not proven by the
    bounds at hand: the segments, their best orders and the bound, and the parts that
    lower the one and raise the other (module docstring, "Anytime lower bound").

    :meth:`run` searches the segments from the highest peak down: the best-first
    search first (:class:`_Search`), then at the memory cap or after the first slice
    the beams, the cut bound (:meth:`lift`, :meth:`more_cuts`, each new witness
    followed by :meth:`follow`) and the decision rounds (:meth:`settle`), which take
    turns in this thread or run beside each other (:meth:`beside`).
    """

    def __init__(
        self,
        problem: Problem,
        options: ScheduleOptions,
        started: float,
        order: list[int],
        timeline: Timeline,
        bound: int,
        stats: dict[str, object],
        threads: int,
        delays: list[tuple[int, int, int] | None] | None,
        before: list[int] | None,
        *,
        decompose: bool,
        free_moves: bool,
        delay: bool,
        local_search: bool,
        decision: bool,
    ) -> None:
        self.problem, self.options, self.started, self.order = problem, options, started, order
        self.deadline = None if options.time_limit is None else started + options.time_limit
        self.bound, self.stats, self.threads, self.before = bound, stats, threads, before
        self.free_moves, self.local_search, self.decision = free_moves, local_search, decision
        self.ops = _compile(problem, options.inplace, delay, delays)
        self.segments = _segments(problem, order) if decompose else [order]
        # Per segment: executed set and memory before it, the heuristic's peak inside it.
        self.done_before: list[int] = []
        self.mem_before: list[int] = []
        self.seg_peak: list[int] = []
        done, pos = 0, 0
        for seg in self.segments:
            self.done_before.append(done)
            self.mem_before.append(timeline.after_bytes[pos - 1] if pos else timeline.initial_bytes)
            self.seg_peak.append(max(timeline.step_bytes[pos : pos + len(seg)]))
            done |= sum(1 << v for v in seg)
            pos += len(seg)

        self.expanded = self.moves = self.searched = 0
        self.proven = True
        self.last_report = started
        self.local = _Local()
        self.decided = {"rounds": 0, "below": 0, "found": 0, "visited": 0, "dead": 0, "evicted": 0}
        self.search: _Search | None = None  # the segment's best-first search under way

        self.cutter: list[CutBound] = []  # built at the first hand-over, resumed later
        self.second: list[_SecondCuts] = []  # likewise, with two threads or more
        self.turn = 0.0  # seconds' worth of the cut bound's turn, then the rounds' as long
        self.guided: list[int] = []  # the order the cut bound's sequences were guided by
        self.turns: dict[CutBound, int] = {}  # pieces each cut bound of this thread was lifted
        self.lead: CutBound | None = None  # the one that raised the bound last
        self.lifted: CutBound | None = None  # the one lifted last (its witness is followed)
        self.followed: dict[CutBound, list[int]] = {}  # per cut bound, the last witness followed
        self.polished: list[int] | None = None  # the last order no window improved

        limit = options.time_limit
        # The best-first search alone first (most graphs are proven in well under a second).
        self.first_slice = FIRST_SLICE if limit is None else min(FIRST_SLICE, 0.1 * limit)
        # Then the decision search takes over (or at the memory cap): its dives lower the
        # upper bound faster than the local search, which runs first only without it.
        self.switch_at = started + self.first_slice if decision else None
        # And asks from below from this share on (or from the memory cap on).
        self.below_at = None if limit is None else started + FROM_BELOW_SHARE * limit

    def say(self, message: str) -> None:
        if self.options.progress:
            now = time.perf_counter()
            self.last_report = now
            print(f"exact: {now - self.started:6.1f}s  {message}", file=sys.stderr, flush=True)

    def tick(self) -> None:
        search = self.search
        if search is not None and time.perf_counter() - self.last_report >= 1.0:
            self.say(
                f"segment {self.searched}/{len(self.segments)}  "
                f"expanded {self.expanded + search.expanded:,}  "
                f"bound {max(self.bound, search.level):,}  best {max(self.seg_peak):,}"
            )

    def improve(
        self,
        until: float | None,
        only: int | None = None,
        windows: bool = True,
        widths: tuple[int, ...] = _BEAM_WIDTHS,
        beam_budget: int | None = None,
    ) -> None:
        """The local search on every segment (or segment ``only``) that peaks above the
        proven bound: beams of ``widths`` (within ``beam_budget`` per segment), then
        (``windows``) window re-solving."""
        seg_peak = self.seg_peak
        chosen = sorted(range(len(self.segments)), key=lambda k: -seg_peak[k])
        for k in chosen if only is None else [only]:
            if seg_peak[k] <= self.bound or (until is not None and time.perf_counter() >= until):
                break
            self.segments[k], seg_peak[k] = _improve(
                self.ops,
                self.done_before[k],
                self.mem_before[k],
                self.segments[k],
                self.bound,
                until,
                self.free_moves,
                self.local,
                windows,
                widths,
                beam_budget,
            )
        self.say(
            f"local search{'' if windows else ' (beams)'}: best {max(seg_peak):,}  "
            f"bound {self.bound:,}"
        )

    def joined(self) -> list[int]:
        """The best order: the segments' orders one after the other."""
        return [v for segment in self.segments for v in segment]

    def lift(self, bound: int, k: int, handing: bool, search: _Search) -> int:
        """Once, at the first hand-over (segment ``k``): the cut bound's first turn, up
        to the best order's peak (none at the deadline or with ``CUT_SECONDS`` 0; one
        piece when the rounds run beside it), and with two threads or more the second
        cut bound in its thread; without them, the width bound's minor step. Returns
        the bound raised."""
        options, problem = self.options, self.problem
        self.stats["cut_bound"] = 0
        self.turn = _share_seconds(CUT_SHARE, CUT_SECONDS, options.time_limit, self.deadline)
        if self.turn > 0:
            cutter = self.cutter
            cutter.append(CutBound(problem, inplace=options.inplace, before=self.before))
            joined = self.joined()
            other = self.order if self.order != joined else []  # the second's guide
            if TWO_CUTS and self.threads > 1 and cuts_compiled():
                self.second.append(
                    _SecondCuts(
                        problem,
                        inplace=options.inplace,
                        before=self.before,
                        order=other,
                        upper=max(self.seg_peak),
                        deadline=self.deadline,
                    )
                )
            elif TWO_CUTS:  # in turns with the first, in this thread
                cutter.append(cutter[0].twin())
                if other:
                    cutter[1].guide(other)
            beside_ok = handing and self.rounds_beside(search)
            # Beside the rounds: one piece at most, and they start.
            first = min(_CUT_PIECE, self.turn) if beside_ok else self.turn
            return max(bound, self.more_cuts(first, k, bound, first=True))
        seconds = _share_seconds(MINOR_SHARE, MINOR_SECONDS, options.time_limit, self.deadline)
        if seconds > 0 and bound < max(self.seg_peak):
            width = width_bound(
                problem,
                inplace=options.inplace,
                minor_visits=minor_budget(seconds),
                before=self.before,
            )
            self.stats.update(width_bound=width, width_minors=True)
            bound = max(bound, width)
            self.say(f"width bound with minors: {width:,}")
        return bound

    def more_cuts(
        self,
        seconds: float,
        k: int,
        low: int,
        first: bool = False,
        follow_seconds: float | None = None,
    ) -> int:
        """The cut bound raised further with ``seconds``' worth of max-flows (never past
        the deadline), up to the best peak, ``_CUT_PIECE`` seconds' worth at a time;
        reported when ``first`` or raised. After each piece segment ``k`` (proven bound
        ``low``) follows the witness when it is new, within ``follow_seconds`` (default
        ``seconds``)."""
        cutter, seg_peak, deadline = self.cutter, self.seg_peak, self.deadline
        if not cutter:
            return 0
        left = max(0.0, seconds)
        while True:
            piece = min(left, _CUT_PIECE)
            best = self.joined()
            if best != self.guided:  # the sequences try the best order's next op first
                self.guided = best
                cutter[0].guide(best)
            old = max([c.bound for c in cutter] + [other.bound for other in self.second])
            lifter = _next_turn(cutter, self.turns, self.lead)
            lifter.lift(upper=max(seg_peak), seconds=piece, deadline=deadline)
            self.turns[lifter] = self.turns.get(lifter, 0) + 1
            self.lifted = lifter
            cut = own = max(c.bound for c in cutter)
            if own > old:
                self.lead = lifter
            for other in self.second:  # its thread lifts it meanwhile
                other.lower(max(seg_peak))
                cut = max(cut, other.bound)
            if first or cut > old:
                twin = own > old and lifter is not cutter[0]  # it raised the bound
                which = " (the second)" if cut > own else " (the twin)" if twin else ""
                self.say(f"cut bound: {cut:,}{which}")
            first = False
            self.stats["cut_bound"] = cut
            if self.local_search and max(cut, low) < seg_peak[k]:
                self.follow(k, max(cut, low), seconds if follow_seconds is None else follow_seconds)
            left -= piece
            over = deadline is not None and time.perf_counter() >= deadline
            if left <= 0 or cut >= max(seg_peak) or self.cuts_spent() or over:
                return cut

    def cuts_spent(self) -> bool:
        """Whether no cut bound of this thread can rise any more."""
        return all(c.spent for c in self.cutter)

    def follow(self, k: int, low: int, seconds: float) -> None:
        """Segment ``k``'s order through the cut bound's witness when it is new
        (:mod:`serenity.memory.cuts`, "Witness"; its gaps' searches within
        ``seconds``' worth of states, ``WITNESS_RATE`` a second), then windows of it,
        or of the best order unless they were already, within ``seconds`` (wall
        clock); the best order is the lowest."""
        ops, local, segments, seg_peak = self.ops, self.local, self.segments, self.seg_peak
        until = _earliest(self.deadline, time.perf_counter() + seconds)
        start, mem = self.done_before[k], self.mem_before[k]
        witness = self.lifted
        chain = witness.witness() if witness is not None else []
        if witness is not None and chain and chain != self.followed.get(witness):
            self.followed[witness] = chain
            local.witnesses += 1
            goal = start | sum(1 << v for v in segments[k])
            # As high as the best order at most: windows may lower it where they did not the best.
            top = seg_peak[k] + 1
            budget = max(_WINDOW_EXPANSIONS, int(seconds * WITNESS_RATE))
            args = (chain, low, top, self.deadline, self.free_moves, budget, self.cutter[0].cuts)
            walk = _through(ops, start, mem, goal, *args)
            if walk is not None:
                walk, height = _improve(
                    ops, start, mem, walk, low, until, self.free_moves, local, widths=()
                )
                if height < seg_peak[k]:
                    segments[k], seg_peak[k] = walk, height
                    self.polished = walk  # its windows ran
                    local.followed += 1
                    self.say(f"cut bound's witness: order at {height:,}")
        if self.polished is not segments[k] and seg_peak[k] > low:
            old = seg_peak[k]
            segments[k], seg_peak[k] = _improve(
                ops, start, mem, segments[k], low, until, self.free_moves, local, widths=()
            )
            if seg_peak[k] < old:
                self.say(f"local search (windows): best {seg_peak[k]:,}")
            else:
                self.polished = segments[k]

    def rounds_beside(self, search: _Search) -> bool:
        """Whether the rounds from above on ``search`` run beside the cut bound's
        sequences (two threads or more left for them, the compiled core) rather than
        taking turns."""
        return self.searchers() > 1 and search._core is not None

    def searchers(self) -> int:
        """Threads for the rounds: one fewer while the second cut bound runs."""
        return self.threads - len(self.second)

    def beside(
        self,
        k: int,
        search: _Search,
        limit: int,
        until: float | None,
        low: int,
        progress: Callable[[int, int], None],
    ) -> tuple[Decision, int]:
        """A round from above (segment ``k``, every step within ``limit``) in a thread
        with one searcher fewer (the compiled core runs without the GIL) while the cut
        bound's sequences lift here, ``_CUT_PIECE`` seconds' worth at a time (a
        witness followed for as long as the round has run), until the round answers
        (or ``until``). The round is paused when the sequences reach
        the best peak (proven) or a witness gives an order within ``limit``. Returns
        the round's answer and the bound ``low`` raised."""
        stop = threading.Event()
        box: list[Decision | BaseException] = []

        def run() -> None:
            try:
                box.append(
                    within(
                        search,
                        limit,
                        until,
                        self.options.search_memory,
                        progress,
                        threads=self.searchers() - 1,
                        stop=stop,
                    )
                )
            except BaseException as error:  # noqa: BLE001 - raised again in this thread
                box.append(error)

        worker = threading.Thread(target=run, name="serenity-round", daemon=True)
        began = time.perf_counter()
        worker.start()
        try:
            while worker.is_alive() and not self.cuts_spent():
                now = time.perf_counter()
                if until is not None and now >= until:
                    break  # the round stops at until too
                piece = _CUT_PIECE if until is None else min(_CUT_PIECE, until - now)
                # A witness is followed for as long as the round has run (at least a piece).
                cut = self.more_cuts(piece, k, low, follow_seconds=max(piece, now - began))
                low = max(low, cut)
                if low >= self.seg_peak[k] or self.seg_peak[k] <= limit:
                    stop.set()
                    break
        except BaseException:
            stop.set()
            raise
        finally:
            worker.join()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0], low

    def settle(self, k: int, search: _Search) -> tuple[bool, int]:
        """Close segment ``k``'s gap by decision searches (:mod:`serenity.schedule.decide`).

        From above first: each round asks for an order below the best one
        known; one found becomes the best (found orders are cheap: the dive
        meets one early), and "none" proves the best optimal. Asking below the
        best rather than bisecting: the proof at the optimum is needed anyway,
        and a "none" lower down costs a large share of it again (measured on WS
        N=48 seed 0: 149 against 105 CPU s).

        The rounds from above take turns with the cut bound's sequences (module
        docstring, "Anytime lower bound"): a paused round resumes where it stopped,
        and its visits are counted once, when it answers (or when the rounds end).

        From below once a round from above stops at the memory cap or runs past
        ``FROM_BELOW_SHARE`` of the time limit, after the cut bound's sequences had
        the time left (they lift faster; at most ``CUT_LATER_SECONDS`` worth): each
        round asks for an order
        within the proven lower bound ``low``. "None" lifts ``low`` to the
        next footprint level; an order found proves itself optimal (its peak
        is at most ``low``). Those rounds hold fewer dead
        sets (the limit is tighter), so they lift the bound past the level
        where the best-first search stopped at the same cap. Returns (proven,
        the segment's proven lower bound); a spent budget, a round from below
        at the cap or ``give_up_at`` ends the rounds unproven.
        """
        options, stats, decided, seg_peak = self.options, self.stats, self.decided, self.seg_peak
        give_up_at, deadline = options.give_up_at, self.deadline
        low = max(self.bound, search.level)
        from_below = False
        alongside = self.rounds_beside(search)
        yield_at = time.perf_counter() + self.turn  # the rounds' first turn
        paused = 0  # visits of a round paused, until it answers
        try:
            while seg_peak[k] > low:
                if give_up_at is not None and low >= give_up_at:
                    stats["gave_up"] = True
                    return False, low
                limit = low if from_below else seg_peak[k] - 1

                def progress(visited: int, dead: int, limit: int = limit, low: int = low) -> None:
                    if time.perf_counter() - self.last_report >= 1.0:
                        self.say(
                            f"decision: any order within {limit:,}?  visited {visited:,}  "
                            f"dead {dead:,}  bound {low:,}  best {seg_peak[k]:,}"
                        )

                until = deadline if from_below else _earliest(deadline, self.below_at)
                cutting = bool(self.cutter) and not self.cuts_spent()  # sequences left to try
                pause = yield_at if cutting and not from_below else None
                if pause is not None and alongside:
                    answer, low = self.beside(k, search, limit, until, low, progress)
                else:
                    answer = within(
                        search,
                        limit,
                        until,
                        options.search_memory,
                        progress,
                        threads=self.searchers(),
                        pause_at=pause,
                        stop=self.second[0].reached if self.second else None,
                    )
                if answer.status == "paused":  # the cut bound's turn, then the round's again
                    paused = answer.visited  # the core's count so far (it goes on from it)
                    if not alongside:
                        low = max(low, self.more_cuts(CUT_TURNS * self.turn, k, low))
                    if seg_peak[k] <= limit:  # a better order: the round asked above it
                        decided["visited"] += paused
                        paused = 0
                    self.turn *= 2  # the next turns, the round's first
                    yield_at = time.perf_counter() + self.turn
                    continue
                paused = 0
                decided["rounds"] += 1
                decided["below"] += from_below
                decided["visited"] += answer.visited
                decided["dead"] = max(decided["dead"], answer.dead)
                decided["evicted"] += answer.evicted
                if answer.evicted:
                    stats["memory_capped"] = True
                    self.say(
                        f"decision: at the memory cap, forgot {answer.evicted:,} lighter dead sets"
                    )
                if answer.status == "none":
                    low = max(low, answer.bound)
                    self.say(f"decision: none within {limit:,}: bound {low:,}")
                elif answer.status == "found" and answer.order is not None:
                    decided["found"] += 1
                    if answer.peak < seg_peak[k]:  # beside, a witness may have gone lower
                        self.segments[k], seg_peak[k] = answer.order, answer.peak
                    self.say(f"decision: order found at {answer.peak:,}")
                else:
                    self.say(f"decision: stopped ({answer.status}) within {limit:,}")
                    if answer.status == "memory":
                        stats["memory_capped"] = True
                    time_left = deadline is None or time.perf_counter() < deadline
                    if not from_below and low < limit and time_left:
                        # The cut bound's sequences lift faster than the rounds from
                        # below: they go on with the time left, the rounds take the rest.
                        seconds = _share_seconds(
                            1.0, CUT_LATER_SECONDS, options.time_limit, deadline
                        )
                        low = max(low, self.more_cuts(seconds, k, low))
                        from_below = True
                        self.say(f"decision: from below now, from bound {low:,}")
                        continue
                    return False, low
            return True, low
        finally:
            decided["visited"] += paused  # a round the cut bound's last turn ended

    def run(self) -> ScheduleResult:
        """Search every segment that peaks above the bound, highest first; the result."""
        options, stats, deadline = self.options, self.stats, self.deadline
        segments, seg_peak = self.segments, self.seg_peak
        limit = options.time_limit
        local_pending = self.local_search and not self.decision
        give_up_at = options.give_up_at
        try:
            for k in sorted(range(len(segments)), key=lambda k: -seg_peak[k]):
                if seg_peak[k] <= self.bound:
                    continue  # fits within the proven bound (the local search may have reordered)
                if give_up_at is not None and self.bound >= give_up_at:
                    self.proven = False
                    stats["gave_up"] = True
                    break
                self.searched += 1
                goal = self.done_before[k] | sum(1 << v for v in segments[k])
                search = self.search = _Search(
                    self.ops,
                    self.done_before[k],
                    goal,
                    self.mem_before[k],
                    self.bound,
                    seg_peak[k],
                    _earliest(deadline, self.switch_at),
                    self.tick,
                    self.free_moves,
                    give_up_at,
                    max_bytes=options.search_memory,
                )
                try:
                    if local_pending:
                        search.deadline = _earliest(
                            deadline, time.perf_counter() + self.first_slice
                        )
                        try:
                            seg_order, peak = search.run()
                        except _Timeout as stop:
                            if isinstance(stop, (_GiveUp, _MemoryCap)):
                                raise
                            local_pending = False
                            share = None if limit is None else LOCAL_SEARCH_SHARE * limit
                            until = None if share is None else self.started + share
                            self.improve(_earliest(deadline, until))
                            search.upper = seg_peak[k]
                            search.deadline = _earliest(deadline, self.switch_at)
                            seg_order, peak = search.run()  # resumed where it stopped
                    else:
                        seg_order, peak = search.run()
                except _Timeout as stop:
                    if not self._handed_over(k, search, stop):
                        break
                    continue  # the segment is proven; the next ones are searched as usual
                self.expanded += search.expanded
                self.moves += search.free_moves
                segments[k] = seg_order
                seg_peak[k] = peak
                self.bound = max(self.bound, peak)
        finally:  # the second cut bound stops with the search, whatever ends it
            for other in self.second:
                other.halt()
        return self._result()

    def _handed_over(self, k: int, search: _Search, stop: _Timeout) -> bool:
        """Segment ``k``'s best-first search stopped (``stop``): the hand-over to the
        beams, the cut bound and the decision rounds, or the memory-bounded local
        search. Returns whether the segment was proven (the search goes on)."""
        options, stats, deadline = self.options, self.stats, self.deadline
        limit = options.time_limit
        self.bound = max(self.bound, search.level)
        self.expanded += search.expanded
        self.moves += search.free_moves
        capped = isinstance(stop, _MemoryCap)
        stats["memory_capped"] = stats.get("memory_capped", False) or capped
        time_left = deadline is None or time.perf_counter() < deadline
        handing = self.decision and not isinstance(stop, _GiveUp) and (capped or time_left)
        if handing:
            search.clear()  # the search is not resumed: free its states
            why = "memory cap reached" if capped else "best-first share spent"
            self.say(f"{why}: bound {self.bound:,}; decision search from here on")
            if self.local_search:  # a cheap better start for the rounds from above
                beams = BEAM_SLICE if limit is None else min(BEAM_SLICE, BEAM_SHARE * limit)
                self.improve(
                    deadline,
                    k,
                    windows=False,
                    widths=_SLICE_WIDTHS,
                    beam_budget=int(beams * BEAM_RATE),
                )
        if not isinstance(stop, _GiveUp) and "cut_bound" not in stats:
            # After the beams: the best order is what it aims at.
            self.bound = self.lift(self.bound, k, handing, search)
        if handing:
            settled, low = self.settle(k, search)
            search.clear()  # frees a round the cut bound's last turn ended
            self.bound = max(self.bound, low)
            if settled:
                return True
        self.proven = False
        stats["gave_up"] = stats.get("gave_up", False) or isinstance(stop, _GiveUp)
        if stats["memory_capped"] and self.local_search:
            self.improve(deadline)  # the memory-bounded local search for the time left
        return False

    def _result(self) -> ScheduleResult:
        """The best order with the bound proven and the counters."""
        stats, local, decided = self.stats, self.local, self.decided
        for other in self.second:  # its last piece may have lifted it further
            self.bound = max(self.bound, other.close())
            stats["cut_bound_second"] = other.bound
        if len(self.cutter) > 1:  # the twin in this thread (module docstring, "Two cut bounds")
            stats["cut_bound_twin"] = self.cutter[1].bound
        # Every segment searched or within the bound: nothing is claimed that is not proven
        # (the second cut bound's last piece may prove the order the rounds left unproven).
        proven = (self.proven or bool(self.second)) and max(self.seg_peak) <= self.bound
        stats.update(
            local_beams=local.beams,
            local_beam_generated=local.generated,
            local_windows=local.windows,
            local_improved=local.improved,
            local_expanded=local.expanded,
            local_witnesses=local.witnesses,
            local_followed=local.followed,
            decision_rounds=decided["rounds"],
            decision_found=decided["found"],
            decision_below=decided["below"],
            decision_visited=decided["visited"],
            decision_dead=decided["dead"],
            decision_evicted=decided["evicted"],
        )
        stats.update(
            segments=len(self.segments),
            searched=self.searched,
            expanded=self.expanded,
            free_moves=self.moves,
        )
        return result_from_order(
            self.problem,
            self.joined(),
            "exact",
            self.options,
            started=self.started,
            bound=self.bound,
            proven=proven,
            stats=stats,
        )


def _exact_fused(
    problem: Problem,
    options: ScheduleOptions,
    decompose: bool,
    free_moves: bool,
    delay: bool,
    local_search: bool,
    decision: bool,
) -> ScheduleResult:
    """:func:`exact` on the fused graph, expanded; the original's heuristic order if better.

    The fused graph's heuristics may miss an order the original's find, and
    under a time limit the search returns its seed: so the better of the two
    is kept. The bound is the fused search's (fusion keeps the optimum).
    """
    started = time.perf_counter()
    fz = fuse(problem)
    if fz.ops_after == fz.ops_before:
        return exact(
            problem,
            options,
            decompose=decompose,
            free_moves=free_moves,
            fusion=False,
            delay=delay,
            local_search=local_search,
            decision=decision,
        )
    inner = exact(  # the hint names the original's ops: it is compared after expansion
        fz.problem,
        replace(options, hint=None),
        decompose=decompose,
        free_moves=free_moves,
        fusion=False,
        delay=delay,
        local_search=local_search,
        decision=decision,
    )
    order = fz.expand(inner.op_order)
    base = _seed_order(problem, options)
    if simulate(problem, base).peak_bytes < inner.peak_bytes:
        order = base
    stats = {**inner.stats, "ops": fz.ops_before, "ops_fused": fz.ops_after}
    return result_from_order(
        problem,
        order,
        "exact",
        options,
        started=started,
        bound=inner.lower_bound_bytes,
        stats=stats,
    )
