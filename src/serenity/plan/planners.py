"""Arena planners: a byte offset for every buffer of a schedule.

Every planner takes the buffers of :func:`serenity.plan.lifetimes` and returns
an :class:`ArenaPlan`. Offsets and sizes are rounded up to the alignment. The
lower bound of every plan is the most aligned bytes live at one step (the
schedule's peak when the alignment is 1); a plan that reaches it is optimal.

Planners (:data:`PLANNERS`):

* ``greedy-size``: TensorFlow Lite Micro's ``GreedyMemoryPlanner``: buffers
  largest first, each at the lowest gap that fits among the already placed
  buffers that overlap it in time. A heuristic, not optimal.
* ``greedy-order``: TensorFlow Lite's arena planner: buffers in order of
  allocation (first step), each in the smallest gap that fits (best fit) or
  above the others. A heuristic, not optimal.
* ``best`` (default): the greedy placement under several orders (size,
  lifetime, area, conflicts, allocation), then an iterated-greedy local
  improvement of the best order (a heuristic), then, only if the arena is
  still above the lower bound, the exact CP-SAT model of
  :mod:`serenity.plan.exact` under a time limit, hinted with the heuristic's
  plan. Optimal whenever the bound is reached or CP-SAT proves it.
* ``cpsat``: the CP-SAT model alone (hinted with ``greedy-size``).

All planners are deterministic: the same buffers give the same offsets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from serenity.errors import UsageError
from serenity.plan.lifetimes import Buffer, align_up, max_live_bytes

DEFAULT_PLANNER = "best"
DEFAULT_ALIGNMENT = 16
DEFAULT_TIME_LIMIT = 10.0
#: Most moves of the local improvement in ``best`` (a move count, not a clock,
#: keeps the result deterministic) ...
IMPROVE_ITERATIONS = 300
#: ... fewer on large instances: moves x conflicting pairs stays below this.
IMPROVE_WORK = 5_000_000


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets for a list of buffers, and what is known about the arena.

    Attributes:
        offsets: Byte offset of each buffer (a multiple of ``alignment``).
        arena_bytes: Size of the arena: the end of the highest buffer.
        lower_bound_bytes: Most aligned bytes live at one step; no plan is smaller.
        alignment: Offsets and sizes are multiples of it.
        planner: The planner's name.
        optimal: The arena is proven minimal (it meets the lower bound, or the
            CP-SAT model proved it).
        seconds: Wall-clock time of the planner.
        stats: Planner details (JSON-serialisable).
        buffers: The buffers placed, for figures (set by :func:`plan`; not
            compared, not printed).
    """

    offsets: tuple[int, ...]
    arena_bytes: int
    lower_bound_bytes: int
    alignment: int
    planner: str
    optimal: bool
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    buffers: tuple[Buffer, ...] | None = field(default=None, compare=False, repr=False)

    def _repr_html_(self) -> str | None:
        """Notebook view: numbers and the arena map (``report`` extra; None without it)."""
        from serenity.report import plan_html

        return plan_html(self)

    @property
    def reaches_bound(self) -> bool:
        """Whether the arena equals the lower bound (hence is optimal)."""
        return self.arena_bytes == self.lower_bound_bytes


class _Instance:
    """Aligned sizes and time conflicts of a list of buffers, computed once.

    ``conflicts[i]`` lists the buffers of non-zero size live at a step where
    ``i`` is live (interval overlap), ascending. Complexity: O(b log b + c) for
    ``c`` conflicting pairs.
    """

    def __init__(self, buffers: Sequence[Buffer], alignment: int) -> None:
        self.buffers = buffers
        self.sizes = [align_up(b.size, alignment) for b in buffers]
        n = len(buffers)
        conflicts: list[list[int]] = [[] for _ in range(n)]
        by_start = sorted(
            (i for i in range(n) if self.sizes[i]), key=lambda i: (buffers[i].first_step, i)
        )
        for k, i in enumerate(by_start):
            last = buffers[i].last_step
            for j in by_start[k + 1 :]:
                if buffers[j].first_step > last:
                    break
                conflicts[i].append(j)
                conflicts[j].append(i)
        self.conflicts = [sorted(c) for c in conflicts]

    def place(self, order: Sequence[int], best_fit: bool = False) -> tuple[list[int], int]:
        """Place buffers one by one in ``order`` (zero-size ones sit at offset 0).

        First fit takes the lowest gap between already placed, time-overlapping
        buffers that holds the buffer; best fit the smallest such gap; with no
        gap, the buffer goes above them all.

        Complexity: O(sum over buffers of k log k), ``k`` its conflicts.
        """
        sizes, conflicts = self.sizes, self.conflicts
        offsets = [-1] * len(sizes)
        arena = 0
        for i in order:
            s = sizes[i]
            if not s:
                offsets[i] = 0
                continue
            taken = sorted((offsets[j], sizes[j]) for j in conflicts[i] if offsets[j] >= 0)
            cursor, chosen, chosen_gap = 0, -1, -1
            for off, size in taken:
                gap = off - cursor
                if gap >= s:
                    if not best_fit:
                        chosen = cursor
                        break
                    if chosen < 0 or gap < chosen_gap:
                        chosen, chosen_gap = cursor, gap
                cursor = max(cursor, off + size)
            if chosen < 0:
                chosen = cursor
            offsets[i] = chosen
            arena = max(arena, chosen + s)
        return offsets, arena


def _result(
    name: str,
    offsets: Sequence[int],
    arena: int,
    bound: int,
    alignment: int,
    started: float,
    proven: bool = False,
    stats: dict[str, Any] | None = None,
) -> ArenaPlan:
    return ArenaPlan(
        offsets=tuple(offsets),
        arena_bytes=arena,
        lower_bound_bytes=bound,
        alignment=alignment,
        planner=name,
        optimal=proven or arena == bound,
        seconds=time.perf_counter() - started,
        stats=dict(stats or {}),
    )


def _by_size(inst: _Instance) -> list[int]:
    """Largest first; ties: longer lifetime, earlier start, smaller id."""
    b = inst.buffers
    return sorted(
        range(len(b)),
        key=lambda i: (-inst.sizes[i], b[i].first_step - b[i].last_step, b[i].first_step, i),
    )


def _by_allocation(inst: _Instance) -> list[int]:
    """In order of allocation (first step), ties by buffer id, as TFLite does."""
    b = inst.buffers
    return sorted(range(len(b)), key=lambda i: (b[i].first_step, i))


def _by_lifetime(inst: _Instance) -> list[int]:
    """Longest lifetime first; ties: larger, smaller id."""
    b = inst.buffers
    return sorted(
        range(len(b)), key=lambda i: (b[i].first_step - b[i].last_step, -inst.sizes[i], i)
    )


def _by_area(inst: _Instance) -> list[int]:
    """Largest size x lifetime first; ties: larger, smaller id."""
    b = inst.buffers
    return sorted(
        range(len(b)),
        key=lambda i: (-inst.sizes[i] * (b[i].last_step - b[i].first_step + 1), -inst.sizes[i], i),
    )


def _by_conflicts(inst: _Instance) -> list[int]:
    """Most bytes of time-overlapping buffers first; ties: larger, smaller id."""
    load = [sum(inst.sizes[j] for j in c) for c in inst.conflicts]
    return sorted(range(len(load)), key=lambda i: (-load[i] - inst.sizes[i], -inst.sizes[i], i))


ORDERS: dict[str, Callable[[_Instance], list[int]]] = {
    "size": _by_size,
    "lifetime": _by_lifetime,
    "area": _by_area,
    "conflicts": _by_conflicts,
    "allocation": _by_allocation,
}


def greedy_size(buffers: Sequence[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> ArenaPlan:
    """TensorFlow Lite Micro's greedy planner: largest first, lowest gap that fits.

    A heuristic: it can leave holes no later buffer fills, so its arena may
    exceed the lower bound even when a tighter plan exists.

    Complexity: O(b log b + sum of k log k) for ``k`` conflicts per buffer.
    """
    started = time.perf_counter()
    inst = _Instance(buffers, alignment)
    offsets, arena = inst.place(_by_size(inst))
    bound = max_live_bytes(buffers, alignment)
    return _result("greedy-size", offsets, arena, bound, alignment, started)


def greedy_order(buffers: Sequence[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> ArenaPlan:
    """TensorFlow Lite's arena planner: in order of allocation, best fit.

    A heuristic (the order a runtime allocates in, blind to what comes later).

    Complexity: O(b log b + sum of k log k) for ``k`` conflicts per buffer.
    """
    started = time.perf_counter()
    inst = _Instance(buffers, alignment)
    offsets, arena = inst.place(_by_allocation(inst), best_fit=True)
    bound = max_live_bytes(buffers, alignment)
    return _result("greedy-order", offsets, arena, bound, alignment, started)


def _improve(
    inst: _Instance, order: list[int], arena: int, bound: int, iterations: int
) -> tuple[list[int], int, int]:
    """Iterated greedy: move a buffer that touches the arena's top earlier in the
    order, or one it sits on later, and keep the move unless the arena grows.

    A heuristic local search. Its generator is seeded and it stops after a
    number of moves, never on a clock, so the result is deterministic. Stops at
    the bound or after ``iterations`` moves. Returns the order, its arena and
    the moves made.

    Complexity: O(iterations x placement).
    """
    rng = random.Random(0)
    offsets, _ = inst.place(order)
    moves = 0
    for moves in range(1, iterations + 1):  # noqa: B007 - the count is reported
        if arena <= bound:
            break
        top = [i for i in order if inst.sizes[i] and offsets[i] + inst.sizes[i] == arena]
        c = top[rng.randrange(len(top))]
        trial = list(order)
        pos = trial.index(c)
        below = [j for j in inst.conflicts[c] if offsets[j] < offsets[c]]
        if below and (pos == 0 or rng.random() < 0.5):
            j = below[rng.randrange(len(below))]
            trial.remove(j)
            trial.insert(rng.randrange(trial.index(c) + 1, len(trial) + 1), j)
        elif pos > 0:
            trial.insert(rng.randrange(pos), trial.pop(pos))
        else:
            continue
        new_offsets, new_arena = inst.place(trial)
        if new_arena <= arena:
            order, offsets, arena = trial, new_offsets, new_arena
    return order, arena, moves


def best(
    buffers: Sequence[Buffer],
    alignment: int = DEFAULT_ALIGNMENT,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    *,
    exact: bool = True,
) -> ArenaPlan:
    """The strong planner: several greedy orders, local improvement, then CP-SAT.

    The greedy part and the local improvement are heuristics. CP-SAT runs only
    when they miss the lower bound; it is exact but time-limited, and the plan
    is ``optimal`` only when the bound is reached or CP-SAT proves the arena.

    Args:
        buffers: The buffers.
        alignment: Offsets and sizes are multiples of it.
        time_limit: Seconds from the start after which CP-SAT stops
            (``None``: no limit). The heuristic part is bounded by a move
            count, not a clock.
        exact: Run CP-SAT when the heuristics miss the bound.

    Complexity: O(orders x placement + iterations x placement) plus CP-SAT's
    search, which is exponential in the worst case.
    """
    started = time.perf_counter()
    deadline = started + (time_limit if time_limit is not None else float("inf"))
    inst = _Instance(buffers, alignment)
    bound = max_live_bytes(buffers, alignment)
    tried: list[tuple[int, int, str, list[int], bool]] = []
    for k, (name, make) in enumerate(ORDERS.items()):
        order = make(inst)
        for best_fit in (False, True):
            _, arena = inst.place(order, best_fit)
            tried.append((arena, 2 * k + best_fit, name, order, best_fit))
    arena, _, chosen, order, best_fit = min(tried, key=lambda r: r[:2])
    stats: dict[str, Any] = {
        "greedy": chosen + ("/best-fit" if best_fit else "/first-fit"),
        "greedy_arena": arena,
    }
    if arena > bound:
        first_fit = min((r for r in tried if not r[4]), key=lambda r: r[:2])
        pairs = max(1, sum(len(c) for c in inst.conflicts))
        iterations = max(20, min(IMPROVE_ITERATIONS, IMPROVE_WORK // pairs))
        new_order, new_arena, moves = _improve(
            inst, list(first_fit[3]), first_fit[0], bound, iterations
        )
        stats["improve_moves"] = moves
        if new_arena < arena:
            arena, order, best_fit = new_arena, new_order, False
            stats["improved_from"] = f"{first_fit[2]}/first-fit"
            stats["improved_arena"] = arena
    offsets, arena = inst.place(order, best_fit)
    proven = False
    if arena > bound and exact:
        from serenity.plan.exact import solve_cpsat

        remaining = None if time_limit is None else max(0.0, deadline - time.perf_counter())
        solved = solve_cpsat(inst.buffers, inst.sizes, alignment, bound, offsets, remaining)
        stats["cpsat"] = solved.stats
        if solved.arena < arena:
            offsets, arena = list(solved.offsets), solved.arena
        proven = solved.proven and solved.arena == arena
    return _result("best", offsets, arena, bound, alignment, started, proven, stats)


def cpsat(
    buffers: Sequence[Buffer],
    alignment: int = DEFAULT_ALIGNMENT,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
) -> ArenaPlan:
    """The exact CP-SAT model alone, hinted with the ``greedy-size`` plan.

    Exact when it finishes within ``time_limit``; otherwise the best plan found.

    Complexity: exponential in the worst case (CP-SAT search).
    """
    from serenity.plan.exact import solve_cpsat

    started = time.perf_counter()
    inst = _Instance(buffers, alignment)
    bound = max_live_bytes(buffers, alignment)
    offsets, arena = inst.place(_by_size(inst))
    solved = solve_cpsat(buffers, inst.sizes, alignment, bound, offsets, time_limit)
    if solved.arena <= arena:
        offsets, arena = list(solved.offsets), solved.arena
    return _result(
        "cpsat", offsets, arena, bound, alignment, started, solved.proven, {"cpsat": solved.stats}
    )


PLANNERS: dict[str, Callable[..., ArenaPlan]] = {
    "greedy-size": lambda b, alignment, time_limit: greedy_size(b, alignment),
    "greedy-order": lambda b, alignment, time_limit: greedy_order(b, alignment),
    "best": best,
    "cpsat": cpsat,
}


def plan(
    buffers: Sequence[Buffer],
    planner: str = DEFAULT_PLANNER,
    alignment: int = DEFAULT_ALIGNMENT,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
) -> ArenaPlan:
    """Place ``buffers`` in one arena with ``planner`` (see :data:`PLANNERS`).

    Args:
        buffers: From :func:`serenity.plan.lifetimes`.
        planner: ``best`` (default), ``greedy-size``, ``greedy-order`` or ``cpsat``.
        alignment: Bytes; every offset and size is rounded up to a multiple.
        time_limit: Seconds the exact part may search (``None``: no limit).

    Raises:
        UsageError: unknown planner, alignment below 1 or negative time limit.

    Example:
        >>> from serenity.plan import Buffer
        >>> bufs = [Buffer(32, 0, 1), Buffer(16, 1, 2), Buffer(32, 2, 3)]
        >>> p = plan(bufs, alignment=16)
        >>> p.offsets, p.arena_bytes, p.optimal
        ((0, 32, 0), 48, True)
    """
    if planner not in PLANNERS:
        raise UsageError(f"unknown planner '{planner}'; choose one of {', '.join(PLANNERS)}")
    if alignment < 1:
        raise UsageError(f"alignment must be >= 1 byte, got {alignment}")
    if time_limit is not None and time_limit < 0:
        raise UsageError("time limit must be >= 0 seconds")
    result = PLANNERS[planner](buffers, alignment=alignment, time_limit=time_limit)
    return replace(result, buffers=tuple(buffers))
