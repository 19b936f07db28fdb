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
``y`` a cut can choose is the honest one. One max-flow per op, compiled (``_flow.cpp``: the graph
kept across solves, the forced ops merged into the source or sink with every node
their infinite arcs force, ORed from each op's closures kept as bitsets, then
Dinic's algorithm on the nodes left free; the sets of ops go to it as bitmasks),
or by OR-Tools' push-relabel (the graph built once, only the forcing arcs
changing), the reference the tests compare it with and the fallback without a
compiler. By hand (max-flows alone, both lines, 2 cores): WS N=48 seed 1 took the
same 82,256 max-flows to its optimum in 1.5 s against 8.4 s with OR-Tools; on ER
N=48 seed 0 a minute held 1.68M max-flows against 219,000. The closures and
bitmasks then made a query 1.6-1.7x faster (replayed queries: 24.6 against 40.2
us on ER N=48 seed 2, 10.5 against 18.1 on WS N=64 seed 1); ER N=48 seed 2's
refined line alone reaches 2,334,720 in 15.6 s instead of 26.2 s. The sequences
ask for the cuts of every op ready at a set run at once: the same ops forced to
either side but each op's predecessors, so the max-flow of the shared sides is
solved once and each op's grown from its flow (:meth:`StepCuts.solve_group`; the
least source side of the shared one joins the source, as every larger query's holds
it). Both lines, max-flows alone, lifted in pieces of 1 s's worth (at the previous
``COMPILED_SOLVE_RATE``, so the same pieces): ER N=48 seed 2 reached 2,334,720 in
9.8 s instead of 22.4 and 2,412,544, its best order's peak, in 36.6 s (not in 40 s
before); WS N=64 seed 1 its optimum in 0.3 s instead of 0.8; WS N=256 seed 0
5,758,976 in 29 s where 40 s had stopped at 5,603,328. With the lookups and the
room made once per set, 1M max-flows of ER N=48 seed 2 took 9.5 s instead of 12.0.
Which of the lines gets which budget depends on the pieces, so the levels reached in
a time do too (at today's rate the same run reaches 2,334,720 in 11.1 s and not
2,412,544 in 40 s); the engine's proofs are in ``benchmarks/RESULTS-randwire.md``.

**One reader.** A tensor that one op reads needs no node ``y_t``: the arc
``producer(t) -> reader`` with its bytes is cut exactly when ``t`` was produced and
its reader has not run. Nor does a tensor whose readers all run before one of them
(its other readers are that one's ancestors, with ``before`` included): that reader
is the last in every order. Most fused RandWire tensors have one reader (1,505 of
1,816 on WS N=256 seed 0, 1,371 of 1,483 on ER N=64 seed 0), so this lean graph has
some 40% fewer nodes, its paths cross a tensor in one arc instead of two, and each
such arc is paired with the reader's infinite arc back to the producer (one pair of
residual arcs, ``_flow.cpp``). 8 s's worth of both lines (the same max-flows), by
hand, side by side: ER N=64 seed 0 in 6.6 s instead of 13.5, ER N=48 seed 2 6.7
instead of 9.7, WS N=128 seed 0 7.3 instead of 10.7, WS N=64 seed 1 6.6 instead of
7.6-8.0; but WS N=256 seed 0 37.8 instead of 33.2 (before the pairing 47 against
34, its max-flows taking 4.2 phases instead of 2.0). Which graph serves best is
measured, not guessed: the compiled cuts solve up to ``PROBE_OPS`` single cuts on
each and keep the one whose max-flows scanned fewer arcs (a count, so the choice
does not depend on the machine; WS N=32-128 and every ER graph measured take the
lean one, WS N=256 and N=352 the other). The reference keeps a node per tensor
read, so the compiled-against-reference tests compare the graphs too. In the exact
engine at 60 s (one searcher, side by side) ER N=48 seed 0 was proven in 28.4 CPU s
instead of 36.4 and ER N=44 seed 1 in 19.9 instead of 23.3 (before the pairing).

**Compiled sequences.** With the cuts compiled (and their closures kept), the
sequences' search below runs compiled too (:class:`_CompiledSequences`; the Python
one, :class:`_Sequences`, is the reference the tests compare it with: the same
levels, sequences, caches, dead sets and counts of max-flows), each group's first
max-flow starts from the flow of the nearest set run before it on the search's path,
and the refined line's cuts between two sets run grow from one max-flow of the two
sets (``_flow.cpp``). Max-flows alone, both lines, 8 s's worth at
``COMPILED_SOLVE_RATE`` (the same max-flows either way), by hand on one day: WS N=48
seed 0 in 7.3 s against 14.6 with the Python sequences, WS N=64 seed 1 6.9 against
10.8-12.7, WS N=128 seed 0 7.4 against 15.6, ER N=32 seed 1 6.4 against 11.9, ER N=48
seed 2 6.6 against 9.6-12.8, ER N=64 seed 0 10.5 against 16.1-17.6, WS N=256 seed 0
25.8 against 31.3-33.4 (the wide ranges: the same runs repeated on a shared machine).
In the engine at 60 s ER N=48 seed 2 was proven (41 CPU s; the cut bound reaches its
best order's peak) where it had stopped at 3.3%.

Two more things the compiled search does that the reference does not. From the end
(below) a group's first max-flow starts warm too, from the flow of the set placed
before it. And an op's max-flow stops at the end of the phase that takes its cut
past the level searched (``STOP_PAST_LEVEL``; most cuts asked are, and the search
only prunes them): the value reached, a lower bound, stands for the cut. It prunes
the op as the cut would, and enters the least level above ``L`` like a cut: that
level stays one every sequence reaches, so dead sets and lifts stay sound, only
sometimes lower. Kept as a lower bound, it is solved again when a search at a level
it does not exceed asks for it. Without a budget the same sequence is found at each level (the
ops within the level have their exact cuts and are tried in the same order, and a
dead set only cuts off sets from which nothing fits the level), so the bound is the
same; the max-flows counted differ, and the tests compare it with the reference
with the stop off. The cut bound alone at 50 s (``_flow.cpp`` has the figures):
ER N=64 seed 2 reaches its optimum, 44 units, in 43 s (43 units without the stop),
WS N=352 98 units (96), WS N=256 76 (75).

**Sequences.** Take ``k`` ops ``X``. In every order they run in some sequence
``x_1, ..., x_k``, and at ``x_i``'s step the set run holds ``x_1..x_{i-1}`` (and
their ancestors) and none of ``x_{i+1}..x_k`` (nor their descendants): its step is
at least the cut with those ops forced to either side. So the least, over the
sequences of ``X``, of the largest such cut bounds every order. It is found like
the decision search of :mod:`serenity.schedule.decide`, on the sets of ``X`` run:
"is there a sequence whose every cut is within ``L``?", depth first with dead sets,
from the single-cut bound up; a "none" lifts ``L`` to the least cut it rejected
(every sequence has a first cut above ``L``, seen from a set the search explored).
The cuts are cached per set, each with a downset that reaches it (the source side
of its minimum cut). A set is dead with a level that every sequence of the rest
reaches from it (the least cut above ``L`` its search saw, below it included), and
stays dead at every level beneath that one, across levels and across the calls that
resume the search. A grown choice's cuts are at least the smaller one's at the same
ops run (more ops forced, fewer downsets), so a set whose ops of a smaller choice
make a dead set of that choice is dead at its level too: each line's last
``DEAD_CHOICES`` choices prune the next. Both are caches: past its part of
``CUT_MEMORY`` (an estimate from their counts) a line forgets its cuts first, which
are solved again when asked (few are asked twice: each set is searched once), then
its smaller choices' dead sets, then its own; the bounds are the same, only the
max-flows to them are more. A search that must forget its own dead sets explores
its sets again and again: on ER N=48 seed 2 the refined line, with a quarter of the
cap for its dead sets, forgot them at 198,000 and stayed at 2,334,720 for two
minutes; with the cuts forgotten first it keeps 248,000 and reaches 2,412,544, the
best order's peak, in about 70 s of max-flows alone; both lines in 104 s (3.9M
max-flows, 414 MB of max RSS). By hand (max-flows alone, both lines, 2
cores) WS N=48 seed 1 reached its optimum in 9.3 s instead of 23.6, WS N=64 seed 2
in 7.2 s instead of 12.7, WS N=128 seed 0 in 4.6 s instead of 6.0; ER N=48 seed 1
reached 2,256,896 in 94 s instead of 437 s. A dead set is counted at its own size
(``DEAD_BYTES``: a few bytes of chosen ops' bits, no downset), a cut at ``ENTRY_BYTES``
and a quarter byte per op; until the eighteenth session both were counted as a cut,
and ER N=44 seed 2's refined line, at 33 ops, forgot its dead sets 188 times in a
minute: its refutation of 2,179,072 needs 579,000 of them (4.98M max-flows, 24 s
alone, with three times the room). With ``X`` all ops each cut is the step itself and the bound is
the optimum (the tests check it); with fewer it is a relaxation that costs
max-flows instead of search states, valid for any ``X`` (so the level proven with
one choice is where the next one starts). A budget of max-flows bounds it.

**Which ops.** Three lines of choices share each budget (the third: "From the end",
below): evenly until one of them raises the bound, then the one that raised it last
gets ``LEAD_WEIGHT`` (3) times each other line's share (with the first two lines
alone, three quarters against half each: in the exact engine at 60 s WS N=64 seed 2
was proven in 43.9 CPU s against 54.9 s, the same bounds elsewhere but at 5 s, where
ER N=48 seed 2 stopped a level lower; 6 instead of 3 with three lines left ER N=64
seed 0 and WS N=256 at the same bounds at 60 s). The first two lines:

- the ``k`` ops whose single cuts are highest, ``k`` = 8, 16, ... 128 in turn;
- *refined*: from the 8 highest, grown ``ADD_OPS`` (1) at a time by what the
  sequence found within the level gets wrong. Its cuts' downsets ``S_1, S_2, ...``
  would be the sets run at those steps of one order only if they were nested: an
  op in some ``S_i`` and not in a later ``S_j`` is chosen first (those missed
  most often). When they nest, their unions ``T_1 <= T_2 <= ...`` (each with the
  chosen op that ran) cut the ops into gaps; an op between ``T_g`` and
  ``T_{g+1}`` gets its least step with ``T_g`` run and nothing past ``T_{g+1}``
  (one max-flow each), and the ops whose steps are highest are chosen: the
  sequence left them room that their own steps may not have. A grown choice
  keeps every cut of the smaller one whose downset already puts each op added
  on the side now forced (its least step is unchanged: that downset is still
  allowed, and forcing only removes downsets); only the others are solved. So
  does the line of highest cuts from one size to the next.

The steps between two sets that a refinement asks are kept, per pair of sets
(``BETWEEN_ENTRIES`` of them; past that the other pairs' go): the sequences of
successive choices, and the two refined lines, share many sets, and an op asked
again between the same two costs no max-flow (ER N=64 seed 2, the cut bound's first
300,000 max-flows: 24,899 of the 48,386 asked had been asked before, over 473 pairs
of sets). A refinement the budget stops is resumed by the next call where it
stopped, its sequence not searched again (a search that costs time, and max-flows
where its cuts were forgotten; with them kept, none: on a summed stage of 20 ops the
search again asked no max-flow). Both together, on ``benchmarks/cut_bound.py``'s 1.2M
max-flows: every level reached at fewer max-flows (ER N=56 seed 0 37 units at
561,075 instead of 1,189,479, ER N=64 seed 0 41 at 268,592 instead of 302,166, WS
N=256 76 at 486,098 instead of 514,692), and ER N=64 seed 2 a level higher, 43
units at 1,068,550: 314 units over the seven graphs against 313.

The line of highest cuts starts each search at the bound proven so far (its choices
do not depend on what it finds); the refined line at the level its own sequences
proved, even when the other line proved a higher one: a sequence found within a
level above its least one is a loose one, and what it gets wrong says less. By hand
(both lines, max-flows alone, 2 cores): WS N=128 seed 0 reached its optimum
3,268,608 in 4.9 s against 47 s when the refined line started at the bound; ER N=48
seed 1 stopped a level lower at 60 s (2,179,072 against 2,256,896 from the bound).

Refined, by hand (2 cores, one line alone, up to the optimum): WS N=64 seed 1
reaches 2,023,424 in 0.3 s (the lines of highest cuts: 1,945,600 after 300,000
max-flows and 39 s), ER N=32 seed 2 1,478,656 in 0.1 s, ER N=32 seed 1 in 4.7 s,
WS N=48 seed 1 1,634,304 in 7.6 s, WS N=64 seed 2 1,945,600 in 24 s (the engine
with the highest cuts' line alone proved it in 14.0 CPU s), ER N=48 seed 0
2,179,072 (the highest cuts' line stopped at 2,101,248). Neither line dominates (WS N=48 seed 0: 33 s refined, where the engine
with the highest cuts' line alone proved it in 3.4 CPU s), hence both.

**From the end.** The same sequences can be built from the last op back: a set of
chosen ops "run" is then the set placed last, an op may be placed when its chosen
descendants all are, and its cut puts the chosen ops not in the set before it and
those in it after: the cut the same sequence has built from the front, so the least
level over the sequences is the same (the tests check it, in both implementations,
and against every sequence for the dead sets). Dead sets and the cuts a smaller
choice leaves serve as from the front, with the sides swapped. What differs is
which partial sequences the search goes through before it refutes a level, and the
difference is large either way. By hand, one choice of the refined line searched
both ways (Python's search, one max-flow per cut):

- ER N=48 seed 1, 20 ops, from 27 units (77,824 bytes) to 29: 8,459 sets and
  27,102 max-flows from the front, 797 and 3,403 from the end;
- ER N=64 seed 2, 25 ops, from 38 to 39 units: 60,234 sets and 439,102 max-flows
  from the front, 1,210 and 11,197 from the end; its 32-op choice proves 41 units
  from the end in 95,658 max-flows (4.5 s);
- WS N=352 seed 0, 20 ops, from 86 to 91 units: 1,449 sets and 3,774 max-flows
  from the front, 60,330 and 105,925 from the end.

So the refined line from the end is a third line (``REVERSE_LINE``), sharing the
budget with the other two (the one that raised the bound last gets
``LEAD_WEIGHT`` times the others' share). It is not guided: the best order run
backwards made it a level lower on ER N=64 seeds 0 and 2 at 60 s than the least
cut first. A set's cuts put the other ops asked before each op, so they do not
share one source side as from the front; the max-flow of the ops before all of
them and the set after is solved once, and each op's is grown from its flow with
its own sink side (as :meth:`StepCuts.steps_between`): the lines alone on ER N=64
seed 2 reached 43 units in 34.9 s instead of 56.1 (the same 1.91M max-flows), 41
units in 7.5 s where the two lines from the front took about 235 s. Every query
also holds each asked op's predecessors (the ops ready from the end are none's
ancestors among them: an op's chosen descendants are all placed), so they join the
shared max-flow and each query adds the other ops alone: the same cuts, in less
time. That line takes 86-87% of the max-flows on ER N=64 seeds 1-2, each 3.4 times
one from the front before (28.1 against 8.3 us on seed 1, 10.4 of the 14.4 s to its
optimum); the bound alone (``benchmarks/RESULTS-cutbound.md``) now reaches the same
levels at the same counts in 0.83-0.96 of the seconds.

The two refined lines share one choice (``SHARED_CHOICE``): the first of them to find
a sequence within its level grows the choice by it, and the other takes the grown
choice (its search of the smaller one dropped, its dead sets kept as a smaller
choice's, its level the one proved for the smaller choice), so the directions race
on each choice instead of refining two; the one that grew it last gets
``WINNER_WEIGHT`` (3) times more of the budget. In the exact engine at 60 s, side by side:
ER N=64 seed 0 proven in 41.6 CPU s (one unit apart, 2.4%, with a choice each; 59.6
s with the line from the front dropped); WS N=256 seed 0 2.6% apart (3.9%: the same
bound sooner, the order a level lower); ER N=64 seed 1 and WS N=352 ended the same;
**where it loses:** ER N=64 seed 2 42 units against 43 (2.3%, reached at 59.1 s).

**Witness.** The sequence found within a level is the outline of an order: its
chosen ops in that sequence, each run from the downset its cut was reached from.
Those downsets need not nest, but their running unions, each with the chosen op
that ran, do (:meth:`CutBound.witness`); an order through them is a real order
(the exact engine searches each gap between two, and re-solves windows of what it
gets: :func:`serenity.schedule.exact._through`). When the downsets nest, its steps
at the chosen ops are within the bound; the steps between are what the gaps'
searches make of them. Where the bound is near the optimum the witness points at
a near-optimal order: on WS N=128 seed 0
(894 fused ops) at 60 s it gave 3,268,608 bytes in 9 s where the decision
rounds' dives had stopped at 3,579,904 for the minute.

**Guide.** Which of a set's next ops the search tries first decides how soon it
finds a sequence within a level when there is one; the levels proven do not
depend on it (a dead set is a fact of the choice, whatever the order that found
it). The line of highest cuts tries the least cut first; the refined line, given a
known order (:meth:`CutBound.guide`: the exact engine passes its best order
whenever it changes), the op that runs first in it, ties by the least cut. On ER
N=44 seed 2 the refined line stalls at 38 chosen ops on a level it can hold: their
sequence within 2,179,072 exists, the least cut first does not find it in 3 s's
worth, the best order's first finds it at once (234 dead sets). In the exact
engine at 60 s (one searcher, by hand, side by side with the previous order of
the next ops): ER N=48 seed 0 proven in 32.4 CPU s (3.6% apart before, also at
300 s), ER N=44 seed 0 in 8.9 s (20.3), ER N=64 seed 0 13.2% apart (16.2%: the
bound a level higher), ER N=44 seed 1 in 23.5 s (15.3: slower). Guiding both
lines proved ER N=44 seed 1 not at all (3.7%) and made WS N=256 11.0% against 9.5%;
guiding the line of highest cuts alone left ER N=48 seed 0 at 3.6% and ER N=64
seed 0 at 16.2%. No guide wins everywhere (the levels' draws), so the
exact engine lifts two cut bounds guided by different orders: in two threads, or in
turns in one, the second the first's twin (:meth:`CutBound.twin`;
:mod:`serenity.schedule.exact`, "Two cut bounds").

**Orders known to hold an optimum.** As for the width bound
(:mod:`serenity.memory.bounds`): with ``before`` (precedences some optimal order
keeps, the exact engine's delay blocks) the downsets are those of the closure, and
the bound is one on the optimum.

Measured (the previous session, the highest cuts' line alone) on the fused RandWire
graphs with the delay blocks' precedences (2 cores, 20,000 max-flows at most): the
single cuts, then the sequences, against the best bound the exact engine proved at
60 s before it (the width bound with its minors, or rounds from below) and the
optimum where known:

- WS N=48 seed 2: 1,167,360 -> 1,712,128 in 1.6 s, the optimum (was 1,556,480;
  the proof had taken 92 s and a 4 GiB cap);
- WS N=64 seed 1: 1,556,480 -> 1,867,776 in 2.1 s (was 1,712,128; optimum 2,023,424);
- ER N=48 seed 0: 1,789,952 -> 2,101,248 in 4.7 s (was 1,945,600; best 2,256,896);
- ER N=64 seed 0: 2,412,544 -> 2,723,840 in 9.7 s (was 2,412,544; best 3,346,432);
- WS N=256 seed 0: 4,124,672 -> 5,292,032 in 15 s (was 3,268,608; best 7,004,160).

On the timm graphs the single cuts alone are the optimum on densenet121,
dla60_res2net and xception41 (milliseconds); they add nothing on NASNet-A Large.

**Measured and not kept** (by hand, ER N=44 seed 2, where the bound stops two
levels under the best order, 2,101,248-2,179,072 against 2,256,896, and a width-4,096
beam finds no better order, so the bound is the weak side):

- *Look-ahead in the sequences*: a set dead when a chosen op not yet run has its
  least step above the level with the set forced inside (valid: more ops run only
  raise it; its downset reused while it holds the op added). It killed 3.4% of the
  sets it was asked at for a third of the max-flows, and the refined line stayed a
  level lower in the same count (k = 32 against 36).
- *Cuts in the decision search*: with the set forced inside, some op's least step
  above the limit proves the set dead. On WS N=48 seed 0 at its optimum minus one
  it held for 105 of 200 random dead sets (weights 4-5: subtrees of 8-31 visits)
  and 4 of the 200 heaviest: it finds what the search finds a few steps later, at
  a max-flow (about 60 visits' worth) per op asked.
- *The sequences' dead sets in the decision search*: a set whose chosen ops run
  make a dead set of a level above the limit is dead (valid: every completion's
  steps at the chosen ops are at least their cuts). 0.2% of the visits pruned
  (1,824 of a million), the same dead sets.
- *Subgraphs*: the optimum of the ops of a window of the best order (their
  producers outside it as ops without inputs) bounds every order's peak, but drops
  the memory held across the window: 1,011,712 (120 ops) and 1,867,776 (300 ops)
  against the cut bound's 2,179,072.
- *Other choices of ops* (a later session; its hard segment, stage 1, has 44
  RandWire nodes, 367 ops, and only 12,772 downsets of whole nodes): the 45 ops
  that make a node's output give a sequence within 2,179,072 in 990 max-flows
  (too loose), and the refined line grown from them stalls lower, at 2,023,424
  with 55 ops (15M max-flows); all the ops of 8 consecutive nodes (78-104 ops) do
  not finish even the single cuts' level in 4M max-flows; 30-60 random choices of 24-40 ops among the 80-200 of
  highest single cuts each find a sequence within 2,179,072 at once. The
  refined line alone stays at 2,179,072 with 38 ops through 77M max-flows (470 s).
- *Other orders of a set's next ops* (same graph, same session): the stall at 38
  ops is partly one of finding. Their sequence within 2,179,072 exists (checked cut
  by cut): taking the ready ops in the order they were chosen finds it in 3.2 s,
  where the least cut first (this search's order), the highest first and three
  random orders do not in 3 s's worth. But the refined line in that order from
  the start stalls at 34 ops; alternating the two orders between calls (the dead
  sets are facts of the choice and stay) stalls at 38 ops on another choice, for
  which none of six orders finds a sequence in 3 s's worth; and going on in the
  other order after the stall reaches 40 ops and stays there for 150 s, in one
  order or cycling three.

Complexity: one max-flow on O(n + m) nodes and O(e) arcs per op, then the budget's
(Dinic: O(V^2 E), push-relabel: O(V^2 sqrt(E)) worst case; near linear on these
graphs); the
sequences are exponential in ``k`` in the worst case.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import numpy as np
from ortools.graph.python import max_flow

from serenity._native import native_wanted
from serenity.ir import Problem, ops_of
from serenity.memory.bounds import _closure

try:  # the compiled minimum cuts (_flow.cpp), built at install
    from serenity.memory import _flow
except ImportError:  # pragma: no cover - a build without a compiler
    _flow = None  # type: ignore[assignment]

#: The line of highest cuts: sequences of this many ops, in turn (module docstring,
#: "Which ops").
SEQUENCE_OPS = (8, 16, 24, 32, 40, 48, 64, 80, 96, 128)
#: The refined line starts from this many ops (those with the highest single cuts) ...
START_OPS = 8
#: ... and each refinement adds this many. 1 since the seventeenth session: in the
#: exact engine at 60 s (one searcher, by hand, side by side with 2) ER N=48 seed 1
#: proven in 15.2 CPU s (6.9% apart with 2), seeds 2 and 0 in 11.9 and 19.4 s (25.3,
#: 30.3), ER N=44 seed 1 in 8.1 s (16.7), WS N=256 seed 0 1.3% apart (8.0%), WS
#: N=352 15.1% (16.1%); 8 made WS N=256 17.1%. (2 had been chosen before the cuts of
#: a smaller choice were reused, when 1 made WS N=64 seed 2 93 s against 31; and
#: again in the twentieth session, two lines: WS N=352 93 units against 96, ER N=64
#: seed 0 38 against 40.)
ADD_OPS = 1
#: The line that raised the bound last gets this many times each other line's share of a
#: call's budget (module docstring, "Which ops").
LEAD_WEIGHT = 3
#: Whether a third line, the refined one from the end, shares the budget (module
#: docstring, "From the end"). In the exact engine at 60 s (one searcher, the
#: benchmark's runs): ER N=64 2.3-2.4% apart (7.5-10.0% without), ER N=48 proven in
#: 2.2-5.9 CPU s (9.9-16.3), ER N=44 seed 2 in 2.4 (38.6); but WS N=256 3.9% (1.3%).
REVERSE_LINE = True
#: Whether the two refined lines share one choice: when one of them finds a sequence
#: within its level and grows its choice, the other takes the grown choice too
#: (module docstring, "From the end").
SHARED_CHOICE = True
#: The refined line that grew the shared choice last gets this many times more of a
#: call's budget (on top of ``LEAD_WEIGHT``): the direction that is faster on the
#: graph. By hand at 60 s, side by side with 1: ER N=64 seed 2 43 units against 42,
#: WS N=352 95 against 89, WS N=256 76 units at 25.4 s against 51.5, ER N=64 seed 0
#: proven either way.
WINNER_WEIGHT = 3
#: Max-flows the sequences may take by default (after the one per op).
SEQUENCE_SOLVES = 2_000
#: Arcs of max-flow graphs solved per second, to turn seconds into a count of solves
#: (measured on the fused RandWire graphs, 2,191-11,191 arcs: 15-27 million).
SOLVE_RATE = 20_000_000
#: The same for the compiled cuts (``_flow.cpp``, solved in groups, the sequences'
#: search compiled around them; module docstring, "Compiled sequences"). Measured, 8 s
#: of both lines on the fused RandWire graphs of 2,122-15,429 arcs (counted on the
#: reference's graph, whatever graph the compiled cuts chose: module docstring, "One
#: reader"): 660-880 million on WS N=64/128 and ER N=44/48/64, 145 and 71 on WS
#: N=256/352 (whose max-flows take more phases). Before the lean graph the first
#: measured 430-500 million (305 on ER N=64) and the rate was 600 million; at 800
#: million the exact engine proved ER N=44 seeds 0 and 1 in 5.8 and 16.3 CPU s
#: instead of 7.8 and 21.1 (60 s, side by side), the other graphs it proves alike.
COMPILED_SOLVE_RATE = 800_000_000
#: Bytes the compiled cuts may keep each op's closures in, as bitsets of the nodes
#: (ancestors forced inside, descendants and what they read outside): a query ORs
#: those of its forced ops instead of following the arcs. 2 bits per op and node:
#: 0.3 MB on ER N=48 (820-873 fused ops), 3.2 MB on WS N=352 (2,507 fused ops,
#: 5,074 nodes); past it (some 11,000 ops), the arcs.
CLOSURE_BYTES = 64 << 20
#: The sets found dead with this many smaller choices of a line prune its sequences
#: (module docstring, "Sequences").
DEAD_CHOICES = 4
#: Whether the compiled sequences stop an op's max-flow once a phase takes its cut
#: past the level searched, keeping a lower bound (module docstring, "Compiled
#: sequences"). Off, they take the same max-flows as the reference (the tests compare
#: them that way).
STOP_PAST_LEVEL = True
#: Bytes the sequences' cuts and dead sets may take, the lines together (an equal part
#: each; module docstring, "Sequences"). A cut kept is counted ``ENTRY_BYTES`` plus a
#: quarter byte per op (its downset; as Python ints in the reference). Measured on ER
#: N=48 seed 0 (820 fused ops): 246 bytes an entry over 3.7M entries, counted 325; at
#: this cap two minutes of max-flows alone took 313 MB of RSS instead of 1,119 MB,
#: with the same bound and the same number of max-flows within 0.2%.
CUT_MEMORY = 256 << 20
ENTRY_BYTES = 120
#: A dead set is counted this many bytes: its key is the chosen ops' bits, a few
#: bytes, and no downset (compiled: a hash map's node and bucket, 72-80 bytes).
DEAD_BYTES = 80
#: Single cuts solved on each graph to choose the one the compiled cuts use (module
#: docstring, "One reader").
PROBE_OPS = 64
#: Steps between two sets kept (:meth:`StepCuts.steps_between`); past this many those
#: of the other pairs of sets are dropped. An entry is an op and its step, some 100
#: bytes with its share of the two sets' key.
BETWEEN_ENTRIES = 100_000
#: A level no cut reaches (the capacities are below it).
NEVER = 1 << 63
#: Capacities are int64: graphs whose bytes add up to this or more get the bound 0.
_MAX_CAPACITY = 1 << 62


def compiled() -> bool:
    """Whether the cuts are solved compiled (``_flow.cpp`` built, and
    ``SERENITY_PURE_PYTHON`` unset or ``0``)."""
    return _flow is not None and native_wanted()


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
        for v, mask in enumerate(before or ()):
            direct[v].update(ops_of(mask))
        self.direct = [sorted(d) for d in direct]
        self.direct_masks = [sum(1 << u for u in d) for d in direct]
        self.width = (n + 7) // 8  # bytes of a bitmask of ops
        self.direct_bytes = [mask.to_bytes(self.width, "little") for mask in self.direct_masks]
        self.infinite = sum(sizes) + 1
        outputs = set(problem.graph_outputs)
        # Graph inputs returned or never read stay for good.
        self.constant = sum(
            sizes[t]
            for t in range(m)
            if problem.producer[t] < 0 and (t in outputs or not problem.consumers[t])
        )
        graph = self._network(problem, lean=False)
        # The compiled cuts keep the graph across solves and force the sides
        # themselves (no forcing arcs); OR-Tools' push-relabel is the reference.
        self.compiled = self._compiled(problem, graph) if compiled() else None
        _, tails, heads, caps, source, sink = graph
        first = len(tails)
        for v in range(n):  # the forcing arcs, closed (capacity 0) until used
            tails += [source, v]
            heads += [v, sink]
            caps += [0, 0]
        self.arcs = len(tails)
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
        self.rate = SOLVE_RATE if self.compiled is None else COMPILED_SOLVE_RATE
        # steps_between's answers, per pair of sets, and how many are kept.
        self._between: dict[tuple[int, int], dict[int, int | None]] = {}
        self._between_kept = 0

    def _network(
        self, problem: Problem, *, lean: bool
    ) -> tuple[int, list[int], list[int], list[int], int, int]:
        """The graph of the module docstring, ``lean``: without the node ``y_t`` of a
        tensor whose readers have all run once one of them has (module docstring, "One
        reader"). Its number of nodes, arcs (tails, heads, capacities; no forcing
        arcs), source and sink."""
        n, ancestors, infinite = self.n, self.ancestors, self.infinite
        sizes, outputs = problem.tensor_sizes, set(problem.graph_outputs)
        tails = [w for w in range(n) for _ in self.direct[w]]
        heads = [u for w in range(n) for u in self.direct[w]]
        caps = [infinite] * len(tails)
        ends: list[tuple[int, int, int]] = []  # (producer, head: -1 the sink, bytes)
        shared: list[tuple[int, list[int]]] = []  # (tensor, its readers): a node y_t
        for t in range(problem.num_tensors):
            p, readers = problem.producer[t], list(problem.consumers[t])
            if t in outputs:  # live from its producer's step to the end
                if p >= 0:
                    ends.append((p, -1, sizes[t]))
            elif readers:  # live until its last reader ran
                if lean:  # a reader that another one descends from has run by then
                    readers = [
                        c for c in readers if not any(ancestors[d] >> c & 1 for d in readers)
                    ]
                    if len(readers) == 1:
                        ends.append((p, readers[0], sizes[t]))
                        continue
                shared.append((t, readers))
        source, sink = n + len(shared), n + len(shared) + 1
        for j, (t, readers) in enumerate(shared):
            tails += [n + j] * len(readers)
            heads += readers
            caps += [infinite] * len(readers)
            ends.append((problem.producer[t], n + j, sizes[t]))
        for p, head, size in ends:
            tails.append(source if p < 0 else p)
            heads.append(sink if head < 0 else head)
            caps.append(size)
        return n + len(shared) + 2, tails, heads, caps, source, sink

    def _compiled(
        self, problem: Problem, graph: tuple[int, list[int], list[int], list[int], int, int]
    ) -> _flow.Cuts:
        """The compiled cuts on ``graph`` (the reference's, :meth:`_network`), or on the
        lean one when its max-flows scan fewer arcs: solved both ways for up to
        ``PROBE_OPS`` ops' single cuts, spread over the ops (module docstring, "One
        reader")."""
        found = []
        for lean, network in ((False, graph), (True, self._network(problem, lean=True))):
            cuts = _flow.Cuts(*network, self.infinite, self.n, CLOSURE_BYTES)
            for v in range(0, self.n, max(1, self.n // PROBE_OPS)):
                cuts.solve(self.direct[v], [v], False)
            found.append((cuts.work(), lean, cuts))
        return min(found, key=lambda probe: probe[:2])[2]

    def step(self, v: int, inside: Sequence[int] = (), outside: Sequence[int] = ()) -> int | None:
        """The least step of ``v`` over the downsets that hold its ancestors and the ops
        ``inside`` (with theirs) and none of ``outside`` (nor their descendants);
        None when there is no such downset."""
        return self.solve(v, inside, outside, side=False)[0]

    def steps_between(self, xs: Sequence[int], inside: int, outside: int) -> list[int | None]:
        """:meth:`step` of each op of ``xs`` with the ops ``inside`` run and none of
        ``outside`` (bitmasks of ops, holding no op of ``xs``). Compiled with the
        closures kept, the max-flow of ``inside`` and ``outside`` alone is solved once
        and each op's grown from it (``_flow.cpp``, ``solve_between``; counted as a
        solve per op). The answers are kept (``BETWEEN_ENTRIES``): an op asked again
        between the same sets costs no max-flow. The refined lines ask the same ones
        often: their sequences from one choice to the next, and the two directions,
        share many sets (ER N=64 seed 2, 300,000 max-flows of the cut bound: 24,899
        of 48,386 asked before, over 473 pairs of sets in 618 calls)."""
        key = (inside, outside)
        known = self._between.get(key, {})
        ask = [x for x in dict.fromkeys(xs) if x not in known]
        if ask:  # a pair is kept only once something was solved for it
            if self._between_kept + len(ask) > BETWEEN_ENTRIES:  # the other pairs go
                self._between, self._between_kept = {}, len(known)
            self._between[key] = known
            known.update(zip(ask, self._steps_between(ask, inside, outside), strict=True))
            self._between_kept += len(ask)
        return [known[x] for x in xs]

    def affordable_between(self, xs: Sequence[int], inside: int, outside: int, room: int) -> int:
        """How many of the first ops of ``xs`` :meth:`steps_between` answers within
        ``room`` max-flows (those kept cost none)."""
        known = self._between.get((inside, outside), {})
        for i, x in enumerate(xs):
            if x not in known:
                if room == 0:
                    return i
                room -= 1
        return len(xs)

    def _steps_between(self, xs: list[int], inside: int, outside: int) -> list[int | None]:
        """:meth:`steps_between` solved, every op of ``xs``."""
        compiled = self.compiled
        if compiled is None or not compiled.has_closures():
            return [self.step(x, ops_of(inside), ops_of(outside)) for x in xs]
        width = self.width
        found = compiled.solve_between(
            inside.to_bytes(width, "little"),
            outside.to_bytes(width, "little"),
            [self.direct_bytes[x] for x in xs],
            [(1 << x).to_bytes(width, "little") for x in xs],
        )
        self.solves += len(xs)
        return [
            None if c < 0 else c + self.constant + self.own[x]
            for x, c in zip(xs, found, strict=True)
        ]

    def solve_masks(self, v: int, inside: int, outside: int) -> tuple[int | None, int]:
        """:meth:`solve` with ``side``, the ops ``inside`` and ``outside`` given as
        bitmasks (the compiled cuts take them as they are)."""
        if self.compiled is None:
            return self.solve(v, ops_of(inside), ops_of(outside))
        width = self.width
        answer = self.compiled.solve_bits(
            (inside | self.direct_masks[v]).to_bytes(width, "little"),
            (outside | 1 << v).to_bytes(width, "little"),
            True,
        )
        return self._step_of(v, *answer)

    def solve_group(
        self, xs: Sequence[int], inside: int, outside: int
    ) -> list[tuple[int | None, int]]:
        """:meth:`solve_masks` of each op of ``xs`` with the same ``inside`` and
        ``outside`` (bitmasks of ops; ``outside`` holds every op of ``xs``), as
        :meth:`solve_masks` would answer them. Compiled, the max-flow of ``inside``
        and ``outside`` alone is solved once and each op's starts from its flow
        (``_flow.cpp``, ``solve_group``; counted as a solve per op of ``xs`` only, so
        that both count the same)."""
        if self.compiled is None:
            return [self.solve_masks(x, inside, outside) for x in xs]
        width = self.width
        answers = self.compiled.solve_group(
            inside.to_bytes(width, "little"),
            outside.to_bytes(width, "little"),
            [self.direct_bytes[x] for x in xs],
            True,
        )
        self.solves += len(xs)
        constant, own, number = self.constant, self.own, int.from_bytes
        return [
            (None, 0) if cut < 0 else (cut + constant + own[x], number(bits, "little"))
            for x, (cut, bits) in zip(xs, answers, strict=True)
        ]

    def _step_of(self, v: int, cut: int, bits: bytes) -> tuple[int | None, int]:
        """``v``'s step and downset from a compiled answer (counted as a solve)."""
        self.solves += 1
        if cut < 0:
            return None, 0
        return cut + self.constant + self.own[v], int.from_bytes(bits, "little")

    def solve(
        self, v: int, inside: Sequence[int], outside: Sequence[int], side: bool = True
    ) -> tuple[int | None, int]:
        """:meth:`step`, and with ``side`` a downset it is reached from (a bitmask of
        ops: the source side of a minimum cut, the least one; 0 when there is none)."""
        if self.compiled is not None:
            answer = self.compiled.solve([*self.direct[v], *inside], [v, *outside], side)
            return self._step_of(v, *answer)
        opened = np.array([*self.direct[v], *inside], dtype=np.int32)
        closed = np.array([v, *outside], dtype=np.int32)
        self.flow.set_arcs_capacity(self.into[opened], np.full(len(opened), self.infinite))
        self.flow.set_arcs_capacity(self.out_of[closed], np.full(len(closed), self.infinite))
        status = self.flow.solve(self.source, self.sink)
        self.solves += 1
        if status != self.flow.OPTIMAL:
            raise RuntimeError(f"max-flow failed ({status}) on the cut of op {v}")
        cut = self.flow.optimal_flow()
        found = 0
        if side and cut < self.infinite:
            nodes = np.asarray(self.flow.get_source_side_min_cut())
            bits = np.zeros(self.n, dtype=bool)
            bits[nodes[nodes < self.n]] = True
            found = int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")
        self.flow.set_arcs_capacity(self.into[opened], np.zeros(len(opened), dtype=np.int64))
        self.flow.set_arcs_capacity(self.out_of[closed], np.zeros(len(closed), dtype=np.int64))
        if cut >= self.infinite:
            return None, 0
        return int(cut) + self.constant + self.own[v], found


class _OutOfSolves(Exception):
    pass


class _SequencesBase:
    """What both implementations of the sequences share (:class:`_Sequences`, the
    reference, and :class:`_CompiledSequences`): the chosen ops, the direction
    (``reverse``: from the end, module docstring "From the end"), the last sequence
    found within a level (``path``: the chosen ops' indices in the order they run,
    either way; ``sides``: per op of it, the downset its cut is reached from), the
    budget. From the end, the sets of chosen ops "run" are those placed last and
    ``ancestors`` holds each op's chosen descendants."""

    ancestor_lists: list[list[int]]
    ancestors: list[int]

    def __init__(
        self,
        cuts: StepCuts,
        chosen: list[int],
        reverse: bool = False,
        previous: _SequencesBase | None = None,
    ) -> None:
        self.cuts, self.chosen, self.k = cuts, chosen, len(chosen)
        self.reverse = reverse  # the sequences built from the last op back (module docstring)
        self.cut_bytes = ENTRY_BYTES + cuts.n // 4  # a cut kept, counted (``CUT_MEMORY``)
        self.mask = sum(1 << x for x in chosen)
        # Per chosen op: the chosen ops that must be placed before it, as indices
        # (ascending, ``ancestor_lists``) and as a bitmask of them: its ancestors, or
        # from the end its descendants. The refined lines build a choice of up to
        # hundreds of ops at each op they add, so a choice that extends ``previous``'s
        # takes its pairs and adds those of the new ops (ER N=32 seed 0: 284 choices
        # took 3.3 s of a 5 s limit, pair by pair).
        k, old = self.k, 0
        lists: list[list[int]] = [[] for _ in chosen]
        masks = [0] * k
        if (
            previous is not None
            and previous.reverse == reverse
            and previous.chosen == chosen[: previous.k]
        ):
            old = previous.k
            lists[:old] = [list(before) for before in previous.ancestor_lists]
            masks[:old] = previous.ancestors
        index = {x: j for j, x in enumerate(chosen)}
        added = sum(1 << x for x in chosen[old:])
        touched = set()
        for j, x in enumerate(chosen):  # each pair "i before j" with a new op in it
            for y in ops_of(cuts.ancestors[x] & (self.mask if j >= old else added)):
                i = index[y]
                a, b = (i, j) if reverse else (j, i)  # b is placed before a
                lists[a].append(b)
                masks[a] |= 1 << b
                touched.add(a)
        for a in touched:
            lists[a].sort()
        self.ancestor_lists = lists
        self.ancestors = masks
        self.path: list[int] | None = None
        self.sides: list[int] = []
        self.stop_at = 0  # cuts.solves at which the budget is spent
        self.deadline: float | None = None  # time.perf_counter() at which it is, too
        # Per chosen op, its place in a known order (module docstring, "Guide"); [] none.
        self.places: list[int] = []

    def guide(self, place: Sequence[int]) -> None:
        """Try a set's next ops in the order of ``place`` (per op: its place in a
        known order; [] for the least cut first), ties by the least cut. Any order
        gives the same levels; the dead sets found stay."""
        self.places = [place[x] for x in self.chosen] if place else []

    def runs(self) -> list[int]:
        """Per chosen op of ``path``: the union of ``sides`` so far with the chosen ops
        run (through it), as nested downsets."""
        assert self.path is not None
        runs, run = [], 0
        for i, side in zip(self.path, self.sides, strict=True):
            run |= side | 1 << self.chosen[i]
            runs.append(run)
        return runs

    def spend(self) -> None:
        """Before a max-flow: raises _OutOfSolves when the budget is spent."""
        if self.cuts.solves >= self.stop_at or (
            self.deadline is not None and time.perf_counter() >= self.deadline
        ):
            raise _OutOfSolves

    def bound(
        self, level: int, upper: int | None, stop_at: int, deadline: float | None
    ) -> tuple[int, bool]:
        """As :meth:`_Sequences.bound` (each implementation has its own)."""
        raise NotImplementedError


class _Sequences(_SequencesBase):
    """The orders of the ``chosen`` ops, as a decision search over the sets of them
    done (module docstring, "Sequences"). The cuts are kept across levels, with the
    downsets they were reached from; a cut of the ``previous`` choice (whose chosen ops
    are the first of these) serves when its downset already puts each op chosen since
    on the side now asked, and its dead sets and those of the smaller choices before it
    (``DEAD_CHOICES`` in all) prune these. The reference of :class:`_CompiledSequences`."""

    def __init__(
        self,
        cuts: StepCuts,
        chosen: list[int],
        previous: _Sequences | None = None,
        most: int = 1 << 62,
        reverse: bool = False,
    ) -> None:
        super().__init__(cuts, chosen, reverse, previous)
        assert previous is None or previous.reverse == reverse
        self.most = most  # bytes the cuts and dead sets kept may take (the prior ones too)
        self.forgotten = 0  # times they were forgotten at that count
        # (op, the chosen ops run before it, as a bitmask of ops) -> (its cut, a downset)
        self.known: dict[tuple[int, int], tuple[int | None, int]] = {}
        self.prior = previous.known if previous else {}
        self.prior_chosen = previous.mask if previous else 0
        self.fresh = self.mask & ~self.prior_chosen  # the ops chosen since
        # The sets of chosen ops run (bitmasks of ops) from which every sequence has a
        # cut at or above a level: set -> that level. Each smaller choice's, with its
        # chosen ops, prune this one's too (module docstring, "Sequences").
        self.dead: dict[int, int] = {}
        self.prior_dead = previous.dead_sets()[:DEAD_CHOICES] if previous else []
        # Their entries (they are only read here): counted once, not at every cut.
        self.prior_dead_count = sum(len(dead) for _, dead in self.prior_dead)

    def dead_sets(self) -> list[tuple[int, dict[int, int]]]:
        """This choice's dead sets, then the smaller choices' that prune them: (the
        chosen ops, {set run: level}), as bitmasks of ops."""
        return [(self.mask, self.dead), *self.prior_dead]

    def cuts_of(self, ready: list[int], inside: int) -> list[tuple[int | None, int]]:
        """Per chosen op of ``ready`` (indices): its least step with the chosen ops
        ``inside`` (a bitmask of ops) run before it and the others after it, and a
        downset it is reached from. Known ones are kept, a cut of the previous choice
        serves when its downset already puts each op chosen since on the side now
        asked (the same least step), and the others are solved together
        (:meth:`StepCuts.solve_group`)."""
        self.make_room(cuts=len(ready))
        known, prior, chosen = self.known, self.prior, self.chosen
        since, fresh = self.prior_chosen, self.fresh
        found: list[tuple[int | None, int] | None] = []
        xs = []
        # The chosen ops each cut puts before its op (bar the op itself, never fresh).
        before = self.mask & ~inside if self.reverse else inside
        for i in ready:
            x = chosen[i]
            answer = known.get((x, inside))
            if answer is None:
                old = prior.get((x, inside & since))
                if old is not None and (old[0] is None or not (old[1] ^ before) & fresh):
                    known[(x, inside)] = answer = old
                else:
                    xs.append(x)
            found.append(answer)
        if xs:
            self.spend()
            room = self.stop_at - self.cuts.solves  # as many as one at a time would
            outside = self.mask & ~inside
            if self.reverse:  # each op's own sides: one max-flow each
                solved = [self.cuts.solve_masks(x, before & ~(1 << x), inside) for x in xs[:room]]
            elif len(xs) == 1:
                solved = [self.cuts.solve_masks(xs[0], inside, outside)]
            else:
                solved = self.cuts.solve_group(xs[:room], inside, outside)
            for x, answer in zip(xs, solved, strict=False):
                known[(x, inside)] = answer
            if len(xs) > room:
                raise _OutOfSolves  # the budget spent on the first of them
            answers = iter(solved)
            found = [next(answers) if answer is None else answer for answer in found]
        return found  # type: ignore[return-value]

    def kept(self) -> int:
        """The cuts and dead sets kept, the smaller choices' included."""
        return len(self.known) + len(self.prior) + len(self.dead) + self.prior_dead_count

    def held(self) -> int:
        """The bytes counted for the cuts and dead sets kept: ``cut_bytes`` a cut,
        ``DEAD_BYTES`` a dead set."""
        cuts = len(self.known) + len(self.prior)
        return cuts * self.cut_bytes + (len(self.dead) + self.prior_dead_count) * DEAD_BYTES

    def kill(self, inside: int, least: int) -> None:
        """Keeps ``inside`` dead below ``least`` (:meth:`make_room` first)."""
        self.make_room(dead=1)
        self.dead[inside] = least

    def make_room(self, cuts: int = 0, dead: int = 0) -> None:
        """When ``cuts`` more cuts and ``dead`` more dead sets would hold ``most``
        bytes (:meth:`held`), forgets the cuts first (solved again when asked; the
        dead sets are what spares a search its states), then the smaller choices'
        dead sets, then this one's, until they would hold less."""
        most = self.most - cuts * self.cut_bytes - dead * DEAD_BYTES
        if self.held() < most:
            return
        self.forgotten += 1
        self.known, self.prior = {}, {}
        if self.held() >= most:
            self.prior_dead, self.prior_dead_count = [], 0
            if self.held() >= most:
                self.dead = {}

    def fits(self, done: int, inside: int, level: int, path: list[tuple[int, int]]) -> int:
        """0 when the chosen ops not in ``done`` (``inside``: those in it, as a bitmask
        of ops) can follow with every cut within ``level`` (then ``path`` ends with them
        in order, each with the downset its cut is reached from); else a level above
        ``level`` that every such sequence reaches (the least cut above ``level`` seen;
        ``NEVER`` when there is no sequence at all)."""
        if done == (1 << self.k) - 1:
            return 0
        least = self.dead.get(inside, 0)
        if level < least:
            return least
        for mask, smaller in self.prior_dead:
            least = smaller.get(inside & mask, 0)
            if level < least:  # every sequence of fewer ops from there reaches it
                self.kill(inside, least)
                return least
        least, steps = NEVER, []
        ready = [i for i in range(self.k) if not (done >> i & 1 or self.ancestors[i] & ~done)]
        for i, (c, side) in zip(ready, self.cuts_of(ready, inside), strict=True):
            if c is None:
                continue
            if c > level:
                least = min(least, c)
            else:
                steps.append((c, i, side))
        places = self.places  # the guide's order first (module docstring, "Guide")
        steps.sort(key=(lambda step: (places[step[1]], step)) if places else None)
        for _, i, side in steps:
            path.append((i, side))
            found = self.fits(done | 1 << i, inside | 1 << self.chosen[i], level, path)
            if not found:
                return 0
            least = min(least, found)
            path.pop()
        self.kill(inside, least)
        return least

    def bound(
        self, level: int, upper: int | None, stop_at: int, deadline: float | None
    ) -> tuple[int, bool]:
        """The least ``L >= level`` such that some order of the chosen ops keeps every
        cut within ``L`` (``level`` must be proven already), and True; or the highest
        level proven when the budget (``cuts.solves`` reaching ``stop_at``, or
        ``deadline``) runs out first, and False. Stops at ``upper`` (True)."""
        self.stop_at, self.deadline = stop_at, deadline
        while upper is None or level < upper:
            path: list[tuple[int, int]] = []
            try:
                found = self.fits(0, 0, level, path)
            except _OutOfSolves:
                return level, False
            if not found:
                if self.reverse:
                    path.reverse()
                self.path, self.sides = [i for i, _ in path], [side for _, side in path]
                return level, True
            if found == NEVER:  # no order of them at all: cannot happen with a DAG
                return level, True
            level = found  # every order of them reaches it
        return level, True


class _CompiledSequences(_SequencesBase):
    """:class:`_Sequences` compiled (``_flow.cpp``, ``Sequences``): the same search,
    caches, budget and forgetting, so the same levels, sequences and counts of
    max-flows (the tests compare them), without the interpreter between the max-flows
    and with each group's first max-flow warm (module docstring, "Compiled
    sequences"). Its sets of chosen ops are kept as bits of the ops' indices in the
    choice (a smaller choice's ops are the first of a larger one's)."""

    def __init__(
        self,
        cuts: StepCuts,
        chosen: list[int],
        previous: _CompiledSequences | None = None,
        most: int = 1 << 62,
        reverse: bool = False,
    ) -> None:
        super().__init__(cuts, chosen, reverse, previous)
        assert cuts.compiled is not None
        assert previous is None or previous.reverse == reverse
        self.native: _flow.Sequences = _flow.Sequences(
            cuts.compiled,
            chosen,
            [cuts.direct_bytes[x] for x in chosen],
            [cuts.constant + cuts.own[x] for x in chosen],
            self.ancestor_lists,
            most,
            self.cut_bytes,
            DEAD_BYTES,
            previous.native if previous else None,
            DEAD_CHOICES,
            reverse,
            STOP_PAST_LEVEL,
        )

    def guide(self, place: Sequence[int]) -> None:
        """As :meth:`_Sequences.guide`."""
        super().guide(place)
        self.native.set_guide(self.places)

    @property
    def forgotten(self) -> int:
        """Times the cuts and dead sets were forgotten at the cap."""
        return self.native.forgotten()

    def kept(self) -> int:
        """The cuts and dead sets kept, the smaller choices' included."""
        return self.native.kept()

    def held(self) -> int:
        """As :meth:`_Sequences.held`."""
        return self.native.held()

    def dead_sets(self) -> list[tuple[int, dict[int, int]]]:
        """As :meth:`_Sequences.dead_sets` (converted from the chosen ops' indices)."""
        found = []
        for k, entries in self.native.dead_sets():
            chosen = self.chosen[:k]
            sets = {}
            for bits, level in entries:
                number = int.from_bytes(bits, "little")
                sets[sum(1 << x for j, x in enumerate(chosen) if number >> j & 1)] = (
                    NEVER if level == _NATIVE_NEVER else level
                )
            found.append((sum(1 << x for x in chosen), sets))
        return found

    def bound(
        self, level: int, upper: int | None, stop_at: int, deadline: float | None
    ) -> tuple[int, bool]:
        """As :meth:`_Sequences.bound`."""
        self.stop_at, self.deadline = stop_at, deadline
        seconds = -1.0 if deadline is None else max(0.0, deadline - time.perf_counter())
        level, finished, self.cuts.solves = self.native.bound(
            level, -1 if upper is None else upper, stop_at, self.cuts.solves, seconds
        )
        found = self.native.path() if finished else None  # unchanged when unfinished
        if found is not None:
            self.path = found[0]
            self.sides = [int.from_bytes(side, "little") for side in found[1]]
        return level, finished


#: The compiled sequences' level for "no sequence at all" (``NEVER`` here).
_NATIVE_NEVER = (1 << 63) - 1


def _sequences(
    cuts: StepCuts,
    chosen: list[int],
    previous: _SequencesBase | None,
    most: int,
    reverse: bool = False,
) -> _SequencesBase:
    """The sequences of ``chosen`` (after ``previous``; from the end with ``reverse``),
    compiled when the cuts are and keep their closures."""
    if cuts.compiled is not None and cuts.compiled.has_closures():
        assert previous is None or isinstance(previous, _CompiledSequences)
        return _CompiledSequences(cuts, chosen, previous, most, reverse)
    assert previous is None or isinstance(previous, _Sequences)
    return _Sequences(cuts, chosen, previous, most, reverse)


class _Line:
    """One way of choosing the sequences' ops (module docstring, "Which ops"): the
    ``SEQUENCE_OPS`` ops with the highest single cuts in turn, or (``refine``) the
    ``START_OPS`` highest grown ``ADD_OPS`` at a time by refinement, its sequences
    built from the end with ``reverse`` ("From the end")."""

    def __init__(self, ranked: list[int], refine: bool, level: int, reverse: bool = False) -> None:
        self.ranked, self.refine, self.reverse = ranked, refine, reverse
        self.sizes = sorted({min(k, len(ranked)) for k in SEQUENCE_OPS})
        self.chosen = ranked[: START_OPS if refine else self.sizes[0]]
        self.sequences: _SequencesBase | None = None  # the one under way
        self.spent = False  # every op it would choose chosen, and their sequences done
        self.gaps: dict[int, int | None] = {}  # the refinement under way: op -> its cut
        # A refinement stopped by the budget: the next call resumes it, without
        # searching the sequences again (their last one is the one it refines).
        self.refining = False
        # The level its own sequences proved, the single cuts' at first (module
        # docstring, "Which ops": the refined line's levels are its own).
        self.level = level


class CutBound:
    """The cut bound (module docstring), raised as far as each call's budget goes and
    resumed by the next call: the single cuts at construction, then the sequences of
    three lines of chosen ops (module docstring, "Which ops", "From the end"), sharing
    each call's budget (``LEAD_WEIGHT`` times each other line's share to the line that
    raised the bound last); the sets run that the last sequence found points at
    (:meth:`witness`).

    Args:
        problem: The graph.
        inplace: Under the in-place model.
        before: Precedences some optimal order keeps (the bound is then one on the
            optimum only).
        memory: Bytes its cuts and dead sets may take (an estimate: module docstring,
            "Sequences").
    """

    lines: list[_Line]
    lead: _Line | None  # the line that raised the bound last
    winner: _Line | None  # the refined line that grew the choice last
    # The sets run that the last sequence found within a level points at (its search's
    # caches are not kept for it).
    chain: list[int]
    deadline: float | None  # the one of the call under way
    place: list[int]  # per op, its place in the guide's order ([]: none)

    def __init__(
        self,
        problem: Problem,
        *,
        inplace: bool = False,
        before: Sequence[int] | None = None,
        memory: int = CUT_MEMORY,
    ) -> None:
        n = problem.num_ops
        self.n = n
        self.memory = memory  # bytes the lines' cuts and dead sets may take (:attr:`most`)
        self.cuts: StepCuts | None = None
        self._fresh()
        if n == 0 or sum(problem.tensor_sizes) >= _MAX_CAPACITY:
            return  # a valid, if useless, bound (the capacities are 64-bit)
        self.cuts = StepCuts(problem, inplace=inplace, before=before)
        single = [self.cuts.step(v) or 0 for v in range(n)]
        self._ranked = sorted(range(n), key=lambda v: (-single[v], v))
        self._top = max(single)
        self.lines = [_Line(self._ranked, False, self._top), *self._refined()]

    def _fresh(self) -> None:
        """The state a cut bound starts with and keeps its own (a twin's too)."""
        self.lines = []
        self.lead = None
        self.winner = None
        self.chain = []
        self.deadline = None
        self.place = []

    def _refined(self) -> list[_Line]:
        """Fresh refined lines: from the front, and from the end (``REVERSE_LINE``)."""
        lines = [_Line(self._ranked, True, self._top)]
        if REVERSE_LINE:
            lines.append(_Line(self._ranked, True, self._top, reverse=True))
        return lines

    def twin(self) -> CutBound:
        """A second cut bound over the same cuts, to be guided by another order (the
        exact engine's \"Two cut bounds\" in one thread): its own refined lines from the
        single cuts up (their levels, choices and dead sets its own), without the line of
        highest cuts, which no guide changes (this one has it). The single cuts are not
        solved again and the max-flows are counted once (``cuts.solves``); the two must
        not be lifted at once (the compiled cuts hold one flow at a time)."""
        other = copy.copy(self)  # n, memory, cuts, the ranking
        other._fresh()
        if self.cuts is not None:
            other.lines = other._refined()
        return other

    @property
    def most(self) -> int:
        """Bytes each line may keep, cuts and dead sets together, its previous choices'
        included: an equal part of ``memory``."""
        return max(1, self.memory // max(1, len(self.lines)))

    @property
    def bound(self) -> int:
        """The bound proven: the highest level a line proved (0 without cuts)."""
        return max((line.level for line in self.lines), default=0)

    @property
    def spent(self) -> bool:
        """Whether no call can raise the bound any more."""
        return all(line.spent for line in self.lines)

    def lift(
        self,
        upper: int | None = None,
        max_solves: int | None = SEQUENCE_SOLVES,
        seconds: float | None = None,
        deadline: float | None = None,
    ) -> int:
        """Raise the bound within ``max_solves`` more max-flows (None: no limit), or
        ``seconds``' worth of them when given (counted, not timed: ``SOLVE_RATE`` arcs a
        second, ``COMPILED_SOLVE_RATE`` compiled, so the bound does not depend on the
        machine), never past ``deadline``
        (``time.perf_counter()``; the one place the clock decides), up to ``upper`` (an
        order's peak: nothing above it is worth proving). Returns the bound."""
        cuts = self.cuts
        if cuts is None:
            return self.bound
        if seconds is not None:
            max_solves = int(seconds * cuts.rate) // cuts.arcs
        stop_at = 1 << 62 if max_solves is None else cuts.solves + max_solves
        self.deadline = deadline
        lines = [line for line in self.lines if not line.spent]
        weights = [self._weight(line) for line in lines]
        for i, line in enumerate(lines):  # the budget left shared by the lines left
            share = (stop_at - cuts.solves) * weights[i] // sum(weights[i:])
            self._lift(line, upper, cuts.solves + share)
        return self.bound

    def _weight(self, line: _Line) -> int:
        """``line``'s weight in a call's budget: ``LEAD_WEIGHT`` times more when it
        raised the bound last, ``WINNER_WEIGHT`` times more when it grew the shared
        choice last (module docstring, "Which ops", "From the end")."""
        lead = LEAD_WEIGHT if line is self.lead else 1
        return lead * (WINNER_WEIGHT if line is self.winner else 1)

    def guide(self, order: Sequence[int]) -> None:
        """Let the refined line's sequences try a set's next ops in the order they run
        in ``order`` (a known order, say the best one found; module docstring, "Guide"),
        from now on and in the search under way. The levels proven do not depend on it,
        only the max-flows they take."""
        place = [0] * self.n
        for i, v in enumerate(order):
            place[v] = i
        self.place = place
        for line in self.lines:
            if line.sequences is not None:
                line.sequences.guide(self._place(line))

    def _place(self, line: _Line) -> list[int]:
        """The guide's places for ``line``: the refined line's only (module docstring,
        "Guide")."""
        if not line.refine or line.reverse:
            return []
        return self.place

    def witness(self) -> list[int]:
        """The sets run that the last sequence found within a level points at (module
        docstring, "Witness"): after each of its chosen ops, the union of the downsets
        its cuts were reached from so far with the ops it ran, as bitmasks of ops
        (nested downsets); [] before any was found."""
        return self.chain

    def _lift(self, line: _Line, upper: int | None, stop_at: int) -> None:
        """Raise the bound by ``line``'s sequences until ``cuts.solves`` reaches
        ``stop_at`` (or ``self.deadline`` passes)."""
        cuts = self.cuts
        assert cuts is not None
        while cuts.solves < stop_at and (upper is None or self.bound < upper):
            if line.sequences is None:
                line.sequences = _sequences(cuts, line.chosen, None, self.most, line.reverse)
                line.sequences.guide(self._place(line))
            sequences = line.sequences
            if not line.refining:
                old = self.bound
                start = line.level if line.refine else max(line.level, old)
                line.level, finished = sequences.bound(start, upper, stop_at, self.deadline)
                if line.level > old:
                    self.lead = line
                if finished and sequences.path is not None:
                    self.chain = sequences.runs()
                if not finished or (upper is not None and self.bound >= upper):
                    return  # resumed here by the next call (the cuts found are kept)
                line.sizes = [k for k in line.sizes if k > len(line.chosen)]
                if len(line.chosen) == self.n or not (line.refine or line.sizes):
                    line.spent = True  # every op, or the largest sequences, done
                    return
            if line.refine:
                line.refining = True
                sequences.stop_at, sequences.deadline = stop_at, self.deadline  # when resumed
                try:
                    added = self._refine(line, sequences)
                except _OutOfSolves:
                    return  # resumed here by the next call
                line.refining = False
                line.gaps = {}
            else:
                added = line.ranked[len(line.chosen) : line.sizes[0]]
            line.chosen = line.chosen + added
            line.sequences = _sequences(cuts, line.chosen, sequences, self.most, line.reverse)
            line.sequences.guide(self._place(line))
            if line.refine and SHARED_CHOICE:
                self.winner = line
                self._share(line)

    def _share(self, line: _Line) -> None:
        """The other refined line takes ``line``'s new choice, and the level ``line``
        proved for the smaller one (module docstring, "From the end": the two
        directions race on one choice)."""
        for other in self.lines:
            if other is line or not other.refine or other.spent:
                continue
            other.level = max(other.level, line.level)
            other.gaps = {}
            other.refining = False
            other.chosen = line.chosen
            if other.sequences is not None:
                assert self.cuts is not None
                other.sequences = _sequences(
                    self.cuts, other.chosen, other.sequences, self.most, other.reverse
                )
                other.sequences.guide(self._place(other))

    def _refine(self, line: _Line, sequences: _SequencesBase) -> list[int]:
        """The ``ADD_OPS`` ops to choose next, from the sequence found within the
        level (module docstring, "Which ops"); raises _OutOfSolves with the budget of
        ``sequences`` spent (the cuts found so far are kept in ``line.gaps``)."""
        cuts = self.cuts
        assert cuts is not None and sequences.path is not None
        sides = sequences.sides
        # Ops a downset holds at one chosen op's step and not at a later one's.
        missed: dict[int, int] = {}
        held = 0
        for side in sides:
            for u in ops_of(held & ~side & ~sequences.mask):
                missed[u] = missed.get(u, 0) + 1
            held |= side
        if missed:
            return sorted(missed, key=lambda u: (-missed[u], u))[:ADD_OPS]
        # The sets run grow consistently: the least step of each op between two of
        # them, with the earlier run and nothing past the later.
        gaps, every, runs = line.gaps, (1 << self.n) - 1, sequences.runs()
        for g in range(len(sides) + 1):
            run = runs[g - 1] if g else 0
            ahead = (run | sides[g]) if g < len(sides) else every
            between = [u for u in ops_of(ahead & ~run & ~sequences.mask) if u not in gaps]
            if between:
                sequences.spend()
                outside = every & ~ahead
                room = cuts.affordable_between(
                    between, run, outside, sequences.stop_at - cuts.solves
                )
                steps = cuts.steps_between(between[:room], run, outside)
                gaps.update(zip(between, steps, strict=False))
                if len(between) > room:
                    raise _OutOfSolves
        never = cuts.infinite  # an op with no such step at all: first
        return sorted(gaps, key=lambda u: (-(gaps[u] or never), u))[:ADD_OPS]


def cut_bound(
    problem: Problem,
    *,
    inplace: bool = False,
    before: Sequence[int] | None = None,
    upper: int | None = None,
    max_solves: int | None = SEQUENCE_SOLVES,
    seconds: float | None = None,
) -> int:
    """The cut bound (module docstring): a lower bound on every order's peak (with
    ``before``: on the optimum), from every op's least step, raised by sequences
    within a budget of max-flows and up to ``upper`` (:meth:`CutBound.lift`).

    0 when the graph has no ops or its tensors add up to ``2**62`` bytes or more.

    Complexity: n max-flows, then at most the budget's (module docstring).
    """
    return CutBound(problem, inplace=inplace, before=before).lift(upper, max_solves, seconds)
