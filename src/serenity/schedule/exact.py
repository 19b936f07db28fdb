"""Exact engine: a memory-optimal order, proven, by best-first search over downsets.

The search follows SERENITY (Ahn et al., MLSys 2020): the set of executed ops
``S`` (a downset of the DAG) fixes which tensors are live, so one best partial
schedule per set is all that must be kept. On top of that:

**Bottleneck best-first (A*).** A partial schedule is scored by the maximum
footprint along it, ``g``; states are expanded in order of
``f = max(g, h(S), L)`` where ``h(S)`` is the footprint of the cheapest next
step (no completion can avoid taking some next step) and ``L`` is a proven
global lower bound. ``f`` never decreases along a path and ``h`` is
consistent, so the first time the full set is taken from the queue its ``f`` is
the optimum: nothing above the optimum is ever expanded.

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
after fusion.

Complexity: exponential in the width of the graph in the worst case (the
problem is NP-hard); each expansion costs O(ready ops x degree).
"""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from serenity.ir import Problem
from serenity.memory import lower_bound, simulate
from serenity.schedule.fusion import fuse
from serenity.schedule.heuristics import best_heuristic_order
from serenity.schedule.result import ScheduleOptions, ScheduleResult, result_from_order


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


def _compile(problem: Problem, inplace: bool) -> _Ops:
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
    return _Ops(out_bytes, dead_bytes, pred_mask, ins, inp)


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


class _Search:
    """Best-first search of one segment: from downset ``start`` to ``goal``."""

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
    ) -> None:
        self.ops, self.start, self.goal, self.start_mem = ops, start, goal, start_mem
        self.bound, self.upper, self.deadline, self.tick = bound, upper, deadline, tick
        self.give_up_at = give_up_at
        self.expanded = 0
        self.free_moves = 0
        self.level = bound  # the f of the last state expanded: a proven bound
        self.use_free_moves = free_moves

    def _ready(self, done: int) -> list[int]:
        ops = self.ops
        rest = self.goal & ~done
        ready = []
        while rest:
            low = rest & -rest
            v = low.bit_length() - 1
            rest ^= low
            if ops.pred_mask[v] & ~done == 0:
                ready.append(v)
        return ready

    def _step(self, done: int, mem: int, v: int) -> tuple[int, int]:
        """(footprint while ``v`` runs, memory after it) from state ``done``."""
        ops = self.ops
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

    def run(self) -> tuple[list[int], int]:
        """Return the segment's order and its peak.

        The peak is the segment's optimum, or any value up to ``bound`` when the
        segment can stay within it.
        """
        start, goal = self.start, self.goal
        came: dict[int, int] = {}
        counter = 0
        # Entries: (f, -depth, tie, g, done, mem, last op).
        heap = [(max(self.bound, self.start_mem), 0, 0, self.start_mem, start, self.start_mem, -1)]
        while heap:
            f, negdepth, _, g, done, mem, last = heapq.heappop(heap)
            if done in came:
                continue
            if done == goal:
                came[done] = last
                self.level = max(self.level, f)
                return self._path(came, done), g
            steps = [(v, *self._step(done, mem, v)) for v in self._ready(done)]
            h = min(during for _, during, _ in steps)
            if h > f:  # lazy heuristic: re-queue with the sharper key
                counter += 1
                heapq.heappush(heap, (h, negdepth, counter, g, done, mem, last))
                continue
            came[done] = last
            self.level = max(self.level, f)
            if self.give_up_at is not None and f >= self.give_up_at:
                raise _GiveUp  # every order of the segment peaks at f or more
            self.expanded += 1
            if self.expanded & 1023 == 1:
                self.tick()
                if self.deadline is not None and time.perf_counter() > self.deadline:
                    raise _Timeout
            free = None
            if self.use_free_moves:
                free = next((s for s in steps if s[1] <= f and s[2] <= mem), None)
            if free is not None:
                self.free_moves += 1
                steps = [free]
            for v, during, after in steps:
                nxt = done | (1 << v)
                if during > self.upper or nxt in came:
                    continue
                counter += 1
                heapq.heappush(
                    heap, (max(f, during), negdepth - 1, counter, max(g, during), nxt, after, v)
                )
        raise RuntimeError("exact search exhausted its queue below the upper bound")

    def _path(self, came: dict[int, int], done: int) -> list[int]:
        path = []
        while came[done] != -1:
            v = came[done]
            path.append(v)
            done ^= 1 << v
        return path[::-1]


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
    """
    if fusion and not options.inplace:
        return _exact_fused(problem, options, decompose, free_moves)
    started = time.perf_counter()
    deadline = None if options.time_limit is None else started + options.time_limit
    order = _seed_order(problem, options)
    timeline = simulate(problem, order, inplace=options.inplace)
    bound = lower_bound(problem, inplace=options.inplace)
    stats: dict[str, object] = {"heuristic_peak": timeline.peak_bytes, "trivial_bound": bound}
    if timeline.peak_bytes <= bound:
        stats.update(segments=0, searched=0, expanded=0, free_moves=0)
        return result_from_order(problem, order, "exact", options, started=started, stats=stats)

    ops = _compile(problem, options.inplace)
    segments = _segments(problem, order) if decompose else [order]
    # Per segment: executed set and memory before it, the heuristic's peak inside it.
    done_before, mem_before, seg_peak = [], [], []
    done, pos = 0, 0
    for seg in segments:
        done_before.append(done)
        mem_before.append(timeline.after_bytes[pos - 1] if pos else timeline.initial_bytes)
        seg_peak.append(max(timeline.step_bytes[pos : pos + len(seg)]))
        done |= sum(1 << v for v in seg)
        pos += len(seg)

    expanded = moves = searched = 0
    proven = True
    last_report = [started]

    def tick() -> None:
        now = time.perf_counter()
        if options.progress and now - last_report[0] >= 1.0:
            last_report[0] = now
            print(
                f"exact: {now - started:6.1f}s  segment {searched}/{len(segments)}  "
                f"expanded {expanded + search.expanded:,}  bound {max(bound, search.level):,}",
                file=sys.stderr,
                flush=True,
            )

    give_up_at = options.give_up_at
    for k in sorted(range(len(segments)), key=lambda k: -seg_peak[k]):
        if seg_peak[k] <= bound:
            break  # this and every later segment already fit within the proven bound
        if give_up_at is not None and bound >= give_up_at:
            proven = False
            stats["gave_up"] = True
            break
        searched += 1
        goal = done_before[k] | sum(1 << v for v in segments[k])
        search = _Search(
            ops,
            done_before[k],
            goal,
            mem_before[k],
            bound,
            seg_peak[k],
            deadline,
            tick,
            free_moves,
            give_up_at,
        )
        try:
            seg_order, peak = search.run()
        except _Timeout as stop:
            bound = max(bound, search.level)
            proven = False
            stats["gave_up"] = isinstance(stop, _GiveUp)
            expanded += search.expanded
            moves += search.free_moves
            break
        expanded += search.expanded
        moves += search.free_moves
        segments[k] = seg_order
        bound = max(bound, peak)
    stats.update(segments=len(segments), searched=searched, expanded=expanded, free_moves=moves)
    final = [v for seg in segments for v in seg]
    return result_from_order(
        problem, final, "exact", options, started=started, bound=bound, proven=proven, stats=stats
    )


def _exact_fused(
    problem: Problem, options: ScheduleOptions, decompose: bool, free_moves: bool
) -> ScheduleResult:
    """:func:`exact` on the fused graph, expanded; the original's heuristic order if better.

    The fused graph's heuristics may miss an order the original's find, and
    under a time limit the search returns its seed: so the better of the two
    is kept. The bound is the fused search's (fusion keeps the optimum).
    """
    started = time.perf_counter()
    fz = fuse(problem)
    if fz.ops_after == fz.ops_before:
        return exact(problem, options, decompose=decompose, free_moves=free_moves, fusion=False)
    inner = exact(  # the hint names the original's ops: it is compared after expansion
        fz.problem,
        replace(options, hint=None),
        decompose=decompose,
        free_moves=free_moves,
        fusion=False,
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
