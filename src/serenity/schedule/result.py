"""The one result type every scheduling engine returns."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serenity.errors import UsageError
from serenity.ir import Problem
from serenity.memory import lower_bound, simulate

#: Bytes the exact engine's searches may hold by default (``ScheduleOptions.search_memory``,
#: ``--search-memory``): the process stays under 1 GB with onnx and OR-Tools loaded.
DEFAULT_SEARCH_MEMORY = 1 << 29


#: Most searchers :func:`default_threads` gives: they share one table and one memory
#: cap, and more than 2 were never measured (the machines here have 2 cores).
MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """Searchers the exact engine's decision search runs when ``ScheduleOptions.threads``
    is None: the CPUs this process may run on, at most :data:`MAX_DEFAULT_THREADS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_THREADS))


@dataclass(frozen=True)
class ScheduleOptions:
    """Settings shared by all engines.

    Attributes:
        inplace: Use the in-place memory model (see :mod:`serenity.memory`).
        time_limit: Seconds an engine may search before it returns its best
            result so far (``None``: no limit). Heuristics ignore it.
        progress: Print progress of long searches to stderr.
        give_up_at: The caller wants only an order peaking strictly below
            this: the exact engine stops as soon as it proves that none
            exists, and returns its best order so far (``None``: search on).
            The rewriting driver sets it to the peak a candidate must beat.
        hint: A known order of the problem's op ids (say, the schedule of the
            graph before a rewrite, carried over): ``exact`` and ``auto``
            return nothing worse than it. Ignored unless topological.
        search_memory: Bytes the exact engine's searches may hold: the
            best-first search's states, then the decision search's dead sets
            (:data:`DEFAULT_SEARCH_MEMORY`, 512 MiB, by default; ``None``: no
            cap). At the cap the best-first search keeps its proven bound and
            hands over to the decision search, which forgets its lighter dead
            sets a few times and then stops; the time left goes to the
            memory-bounded local search (``stats["memory_capped"]``).
        threads: Searchers of the exact engine's decision search (the compiled
            core; they share its dead sets, :mod:`serenity.schedule.decide`);
            with two or more, a round from above runs with one fewer in a thread
            of its own beside the cut bound's sequences (:mod:`serenity.schedule.exact`,
            "Anytime lower bound"). ``None``: :func:`default_threads`. The answers do not depend on it
            (the same orders and bounds as one searcher, given the time), only
            how soon they come.
    """

    inplace: bool = False
    time_limit: float | None = None
    progress: bool = False
    give_up_at: int | None = None
    hint: tuple[int, ...] | None = None
    search_memory: int | None = DEFAULT_SEARCH_MEMORY
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class ScheduleResult:
    """An operator order and what is known about it.

    Attributes:
        order: Op names in execution order.
        op_order: The same order as op ids of the :class:`~serenity.ir.Problem`.
        peak_bytes: Peak activation memory of the order (simulated, exact).
        lower_bound_bytes: A proven lower bound on the peak of *every* order.
        optimal: True only when optimality is proven (the engine proved it, or
            the peak equals the lower bound).
        engine: Name of the engine that produced the order.
        seconds: Wall-clock time the engine took.
        inplace: Whether the in-place memory model was used.
        stats: Engine-specific statistics (JSON-serialisable).
        problem: The graph the order is of, for figures (set by
            :func:`result_from_order`; not compared, not printed).
    """

    order: tuple[str, ...]
    op_order: tuple[int, ...]
    peak_bytes: int
    lower_bound_bytes: int
    optimal: bool
    engine: str
    seconds: float
    inplace: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = field(default=None, compare=False, repr=False)

    def _repr_html_(self) -> str | None:
        """Notebook view: numbers, memory timeline, live set at the peak (``report``
        extra; ``None``, the plain repr, without it)."""
        from serenity.report import schedule_html

        return schedule_html(self)

    @property
    def gap(self) -> float:
        """Relative distance to the lower bound, ``peak / bound - 1`` (0 when proven)."""
        if self.optimal or self.lower_bound_bytes <= 0:
            return 0.0
        return self.peak_bytes / self.lower_bound_bytes - 1.0


def result_from_order(
    problem: Problem,
    order: Sequence[int],
    engine: str,
    options: ScheduleOptions,
    *,
    started: float,
    bound: int | None = None,
    proven: bool = False,
    stats: dict[str, Any] | None = None,
) -> ScheduleResult:
    """Build a :class:`ScheduleResult` by simulating ``order``.

    Args:
        problem: The graph.
        order: A topological order of all ops.
        engine: The engine's name.
        options: The options the engine ran with.
        started: ``time.perf_counter()`` when the engine started.
        bound: A lower bound the engine proved; the trivial bound is used when
            it is larger (or when none is given).
        proven: The engine proved ``order`` optimal.
        stats: Engine statistics.
    """
    peak = simulate(problem, order, inplace=options.inplace).peak_bytes
    lb = peak if proven else max(lower_bound(problem, inplace=options.inplace), bound or 0)
    if lb > peak:  # a bound above a feasible peak means an engine is wrong
        raise RuntimeError(f"{engine}: lower bound {lb} exceeds the peak {peak} of its own order")
    return ScheduleResult(
        order=tuple(problem.op_names[v] for v in order),
        op_order=tuple(order),
        peak_bytes=peak,
        lower_bound_bytes=lb,
        optimal=peak == lb,
        engine=engine,
        seconds=time.perf_counter() - started,
        inplace=options.inplace,
        stats=dict(stats or {}),
        problem=problem,
    )
