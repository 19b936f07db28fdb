"""Reports people would rather look at: memory timelines, the live set at the
peak and arena maps, as one self-contained HTML page or one PNG/SVG figure.

Layers: :mod:`~serenity.report.data` (plain records from the memory model and
the planners, no matplotlib), :mod:`~serenity.report.figures` (matplotlib),
:mod:`~serenity.report.build` (what a page shows), :mod:`~serenity.report.page`
(the page), :mod:`~serenity.report.command` (``serenity report``). The
functions below import matplotlib lazily, so ``import serenity.report`` works
without the ``report`` extra and the CLI can say which extra to install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING

from serenity.report.output import check_output, require_matplotlib, write_atomic

if TYPE_CHECKING:
    from serenity.api import PlanOutcome
    from serenity.bench import BenchReport
    from serenity.plan import ArenaPlan
    from serenity.report.build import LoadedModel, Report
    from serenity.rewrite.driver import RewriteResult
    from serenity.schedule import ScheduleResult

#: Puts bytes at a path: :func:`write_atomic`, or the CLI's staged transaction.
Writer = Callable[[str, bytes], None]

__all__ = [
    "bench_html",
    "check_output",
    "plan_html",
    "plot_bench",
    "plot_plan",
    "plot_schedule",
    "require_matplotlib",
    "schedule_html",
    "write_report",
]


def write_report(
    path: str,
    model: LoadedModel,
    base: ScheduleResult,
    result: ScheduleResult,
    *,
    rewritten: RewriteResult | None = None,
    command: str = "",
    plan_time_limit: float | None = None,
    write: Writer = write_atomic,
) -> Report:
    """Write the HTML report of ``model`` (see :func:`serenity.report.build.collect`).

    ``plan_time_limit`` bounds the arena planner's exact part (default
    :data:`serenity.report.build.PLAN_TIME_LIMIT`); ``write(path, data)``
    puts the bytes in place (default: atomically; the CLI stages them in its
    transaction). Returns the report's data. Raises
    :class:`~serenity.errors.UsageError` when matplotlib is missing or
    ``path`` cannot be written.
    """
    require_matplotlib()
    from serenity.report.build import PLAN_TIME_LIMIT, collect
    from serenity.report.page import render

    limit = PLAN_TIME_LIMIT if plan_time_limit is None else plan_time_limit
    report = collect(
        model, base, result, rewritten=rewritten, command=command, plan_time_limit=limit
    )
    write(path, render(report).encode())
    return report


def plot_schedule(
    path: str,
    model: LoadedModel,
    base: ScheduleResult,
    result: ScheduleResult,
    rewritten: RewriteResult | None = None,
    write: Writer = write_atomic,
) -> None:
    """Write the memory timeline (file order, best heuristic, the chosen order,
    the rewritten graph) as PNG or SVG, by ``path``'s suffix."""
    require_matplotlib()
    from serenity.report import figures
    from serenity.report.build import timelines

    series, _ = timelines(model, base, result, rewritten)
    bound = (rewritten.before if rewritten is not None else result).lower_bound_bytes
    label = "lower bound, original graph" if len(series) > 3 else "lower bound"
    chart = figures.timeline_figure(series, bound, bound_label=label)
    write(path, figures.image_bytes(chart, path))


def plot_plan(path: str, planned: PlanOutcome, write: Writer = write_atomic) -> None:
    """Write the arena map of a plan as PNG or SVG."""
    require_matplotlib()
    from serenity.report import figures
    from serenity.report.data import arena_map

    chart = figures.arena_figure([arena_map(planned.buffers, planned.plan)])
    write(path, figures.image_bytes(chart, path))


def plot_bench(path: str, report: BenchReport, write: Writer = write_atomic) -> None:
    """Write the bench bars (peak reduction per network against the paper) as PNG or SVG."""
    require_matplotlib()
    from serenity.report import figures

    write(path, figures.image_bytes(figures.bench_figure(report), path))


def schedule_html(result: ScheduleResult) -> str | None:
    """``ScheduleResult._repr_html_``: numbers, timeline, live set at the peak.

    ``None`` without matplotlib, so notebooks fall back to the plain repr.
    """
    if find_spec("matplotlib") is None:
        return None
    from serenity.report.page import schedule_fragment

    return schedule_fragment(result)


def plan_html(plan: ArenaPlan) -> str | None:
    """``ArenaPlan._repr_html_``: numbers and the arena map (``None`` without matplotlib)."""
    if find_spec("matplotlib") is None:
        return None
    from serenity.report.page import plan_fragment

    return plan_fragment(plan)


def bench_html(report: BenchReport) -> str | None:
    """``BenchReport._repr_html_``: the table and the bars (``None`` without matplotlib)."""
    if find_spec("matplotlib") is None:
        return None
    from serenity.report.page import bench_fragment

    return bench_fragment(report)
