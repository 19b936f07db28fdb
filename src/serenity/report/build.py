"""Everything one report shows, gathered from a model and its schedules.

:func:`collect` turns the results the CLI already has (file order, the chosen
schedule, the rewriting result) into a :class:`Report` of plain data: the
timelines, live sets and arena maps of :mod:`serenity.report.data` plus the
tables. It computes only what the CLI has not: the best heuristic's order
(milliseconds) and two arena plans of the chosen order (our ``best`` planner
and a runtime's baseline, TFLite Micro's ``greedy-size`` by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from serenity import __version__
from serenity.ir import Problem
from serenity.plan import DEFAULT_ALIGNMENT, check_plan, lifetimes, plan
from serenity.report.data import (
    ArenaMap,
    LiveSet,
    Series,
    arena_map,
    fmt_bytes,
    live_set,
    timeline_series,
)
from serenity.schedule import ScheduleOptions, ScheduleResult, schedule

if TYPE_CHECKING:
    from serenity.rewrite.driver import RewriteResult

#: The runtime-like planner the arena map compares ours with (TFLite Micro's).
BASELINE_PLANNER = "greedy-size"
#: Seconds the ``best`` planner's exact part may search for a report (the
#: ``plan`` command's default is 10 s; a report stays within seconds).
PLAN_TIME_LIMIT = 2.0


class LoadedModel(Protocol):
    """What a report needs of a loaded model (any format)."""

    @property
    def problem(self) -> Problem: ...

    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class OrderRow:
    """One line of the orders table."""

    label: str
    peak_bytes: int
    note: str


@dataclass
class Report:
    """The contents of one report page (plain data; see :mod:`serenity.report.page`)."""

    title: str
    command: str
    model_stats: list[tuple[str, str]]
    orders: list[OrderRow]
    file_peak: int
    lower_bound: int
    bound_label: str
    series: list[Series]
    live_sets: list[LiveSet]
    arenas: list[ArenaMap]
    proof: str
    proven: bool
    search_stats: dict[str, Any]
    rewrites: list[dict[str, Any]] = field(default_factory=list)
    rewrite_peaks: dict[str, int] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    version: str = __version__


def _label(result: ScheduleResult) -> str:
    if result.optimal:
        return "optimum (proven)"
    return f"{result.engine} (not proven, {result.gap:.1%} above the bound)"


def timelines(
    model: LoadedModel,
    base: ScheduleResult,
    result: ScheduleResult,
    rewritten: RewriteResult | None = None,
) -> tuple[list[Series], ScheduleResult]:
    """The timelines of file order, the best heuristic (scheduled here), the
    chosen order of the original graph and, when rewrites were applied, of the
    rewritten graph; and the best heuristic's schedule.

    Complexity: the best heuristic plus one simulation per order.
    """
    problem, inplace = model.problem, result.inplace
    heur = schedule(problem, "best-heuristic", ScheduleOptions(inplace=inplace))
    unrewritten = rewritten.before if rewritten is not None else result
    series = [
        timeline_series(problem, base.op_order, "file order", "file", inplace=inplace),
        timeline_series(problem, heur.op_order, "best heuristic", "heuristic", inplace=inplace),
        timeline_series(
            problem, unrewritten.op_order, _label(unrewritten), "optimum", inplace=inplace
        ),
    ]
    if rewritten is not None and rewritten.rewrites:
        series.append(
            timeline_series(
                rewritten.model.problem,
                result.op_order,
                f"rewritten graph, {_label(result)}",
                "rewritten",
                inplace=inplace,
            )
        )
    return series, heur


def collect(
    model: LoadedModel,
    base: ScheduleResult,
    result: ScheduleResult,
    *,
    rewritten: RewriteResult | None = None,
    command: str = "",
    alignment: int = DEFAULT_ALIGNMENT,
    baseline_planner: str = BASELINE_PLANNER,
    plan_time_limit: float | None = PLAN_TIME_LIMIT,
) -> Report:
    """Gather one report.

    Args:
        model: The loaded model (``.problem``, ``.path``).
        base: Its file-order schedule.
        result: The chosen schedule: of ``model``, or of the rewritten graph
            (``rewritten.after``) when ``rewritten`` is given.
        rewritten: The rewriting result, if ``--rewrite`` ran.
        command: The command line that made the report.
        alignment: Arena alignment in bytes.
        baseline_planner: The planner drawn beside ``best``.
        plan_time_limit: Seconds for ``best``'s exact part.

    Complexity: two simulations per order, the best heuristic (every baseline
    list scheduler) and two arena plans.
    """
    problem = model.problem
    inplace = result.inplace
    started = time.perf_counter()
    series, heur = timelines(model, base, result, rewritten)
    unrewritten = rewritten.before if rewritten is not None else result
    final_problem = rewritten.model.problem if rewritten is not None else problem

    orders = [
        OrderRow("file order", base.peak_bytes, "the order the file lists"),
        OrderRow("best heuristic", heur.peak_bytes, f"{heur.stats.get('chosen', '')}"),
        OrderRow(
            _label(unrewritten),
            unrewritten.peak_bytes,
            f"{unrewritten.engine}, {unrewritten.seconds:.2f} s",
        ),
    ]
    sets = [
        live_set(problem, base.op_order, "file order", inplace=inplace),
        live_set(
            problem, unrewritten.op_order, _label(unrewritten).split(" (")[0], inplace=inplace
        ),
    ]
    if rewritten is not None and rewritten.rewrites:
        label = f"rewritten graph, {_label(result)}"
        orders.append(OrderRow(label, result.peak_bytes, f"{len(rewritten.rewrites)} rewrite(s)"))
        sets.append(live_set(final_problem, result.op_order, "rewritten", inplace=inplace))
    graph = "original graph" if rewritten is not None else "graph"
    orders.append(
        OrderRow(
            f"lower bound ({graph})",
            unrewritten.lower_bound_bytes,
            f"no order of the {graph} peaks lower",
        )
    )

    buffers = lifetimes(final_problem, result.op_order, inplace=inplace)
    arenas = []
    for name in ("best", baseline_planner):
        p = plan(buffers, name, alignment, plan_time_limit)
        check_plan(buffers, p)
        arenas.append(arena_map(buffers, p))
    ours, theirs = arenas[0], arenas[1]
    orders.append(
        OrderRow(f"arena, {ours.planner} planner", ours.arena_bytes, f"alignment {alignment}")
    )
    orders.append(
        OrderRow(
            f"arena, {theirs.planner} (TFLite Micro-like)",
            theirs.arena_bytes,
            f"alignment {alignment}",
        )
    )

    stats = [
        ("file", str(model.path)),
        ("operators scheduled", f"{problem.num_ops:,}"),
        ("activation tensors", f"{problem.num_tensors:,}"),
        ("graph inputs / outputs", f"{len(problem.graph_inputs)} / {len(problem.graph_outputs)}"),
    ]
    if problem.num_tensors:
        big = max(range(problem.num_tensors), key=lambda t: (problem.tensor_sizes[t], -t))
        stats.append(
            (
                "largest tensor",
                f"{problem.tensor_names[big]} ({fmt_bytes(problem.tensor_sizes[big])})",
            )
        )
    stats.append(("memory model", "in-place" if inplace else "default"))
    if rewritten is not None:
        stats.append(
            (
                "after rewriting",
                f"{final_problem.num_ops:,} operators, {final_problem.num_tensors:,} tensors",
            )
        )

    graph = "the rewritten graph" if rewritten is not None and rewritten.rewrites else "the graph"
    if result.optimal:
        proof = (
            f"Proven optimal: the {result.engine} engine's order peaks at "
            f"{result.peak_bytes:,} bytes and no order of {graph} peaks lower."
        )
    else:
        proof = (
            f"Not proven: the best order found peaks at {result.peak_bytes:,} bytes; "
            f"no order of {graph} peaks below {result.lower_bound_bytes:,} bytes "
            f"(gap {result.gap:.1%})."
        )
    rewrites: list[dict[str, Any]] = []
    peaks: dict[str, int] = {}
    if rewritten is not None:
        rewrites = [r.as_dict() for r in rewritten.rewrites]
        peaks = rewritten.peaks()
    report = Report(
        title=Path(model.path).name,
        command=command,
        model_stats=stats,
        orders=orders,
        file_peak=base.peak_bytes,
        lower_bound=unrewritten.lower_bound_bytes,
        bound_label="lower bound, original graph" if len(series) > 3 else "lower bound",
        series=series,
        live_sets=sets,
        arenas=arenas,
        proof=proof,
        proven=result.optimal,
        search_stats={"engine": result.engine, "seconds": round(result.seconds, 3), **result.stats},
        rewrites=rewrites,
        rewrite_peaks=peaks,
    )
    report.timings.append(("scheduling", unrewritten.seconds))
    if rewritten is not None:
        report.timings.append(("rewriting search", rewritten.seconds))
    report.timings.append(("report data (heuristic, plans)", time.perf_counter() - started))
    return report
