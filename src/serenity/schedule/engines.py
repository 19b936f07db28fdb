"""Engine registry: method name -> engine, and the one entry point :func:`schedule`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from serenity.errors import UsageError
from serenity.ir import Problem
from serenity.schedule.exact import exact
from serenity.schedule.heuristics import HEURISTICS, best_heuristic_order
from serenity.schedule.ilp import ilp
from serenity.schedule.result import ScheduleOptions, ScheduleResult, result_from_order

Engine = Callable[[Problem, ScheduleOptions], ScheduleResult]


def _heuristic_engine(name: str) -> Engine:
    def run(problem: Problem, options: ScheduleOptions) -> ScheduleResult:
        started = time.perf_counter()
        order = HEURISTICS[name](problem, options.inplace)
        return result_from_order(problem, order, name, options, started=started)

    run.__doc__ = HEURISTICS[name].__doc__
    return run


def best_heuristic(problem: Problem, options: ScheduleOptions) -> ScheduleResult:
    """Run every baseline heuristic and keep the lowest peak (first wins ties)."""
    started = time.perf_counter()
    order, chosen, peaks = best_heuristic_order(problem, options.inplace)
    return result_from_order(
        problem,
        order,
        "best-heuristic",
        options,
        started=started,
        stats={"chosen": chosen, "peaks": peaks},
    )


def auto(problem: Problem, options: ScheduleOptions) -> ScheduleResult:
    """The exact engine under a time limit (default 60 s): optimal where it finishes.

    The ILP engine (``ilp``) is not used: measured side by side
    (``benchmarks/RESULTS-ilp.md``) the exact engine proves every graph of
    ``../shared/models/onnx`` in under a second where the ILP needs up to about
    a minute (nasnetalarge), and on the zoo's RandWire graphs, where neither
    finishes in 60 s, the exact engine's proven bound is the higher one. So
    the ILP adds neither an order nor a bound that ``auto`` lacks; it stays
    an independent cross-check (``--method ilp``).
    """
    if options.time_limit is None:
        options = replace(options, time_limit=AUTO_TIME_LIMIT)
    return exact(problem, options)


#: Every scheduling method the CLI and the API accept.
ENGINES: dict[str, Engine] = {name: _heuristic_engine(name) for name in HEURISTICS}
ENGINES["best-heuristic"] = best_heuristic
ENGINES["exact"] = exact
ENGINES["ilp"] = ilp
ENGINES["auto"] = auto

DEFAULT_METHOD = "auto"
#: Seconds ``auto`` searches when no time limit is given.
AUTO_TIME_LIMIT = 60.0


def schedule(
    problem: Problem,
    method: str = DEFAULT_METHOD,
    options: ScheduleOptions | None = None,
) -> ScheduleResult:
    """Find an operator order for ``problem`` with ``method``.

    Args:
        problem: The graph to schedule.
        method: One of :data:`ENGINES` (``"auto"`` by default).
        options: In-place model, time limit, progress output.

    Raises:
        UsageError: ``method`` is unknown.

    Example:
        >>> from serenity.ir import Problem
        >>> p = Problem(["a", "b"], [4, 8, 2], [[0], [1]], [[1], [2]], [0], [2])
        >>> schedule(p).peak_bytes
        12
    """
    try:
        engine = ENGINES[method]
    except KeyError:
        known = ", ".join(ENGINES)
        raise UsageError(f"unknown method '{method}' (choose from: {known})") from None
    return engine(problem, options or ScheduleOptions())
