"""``serenity report MODEL -o report.html``: schedule a model and write the HTML report.

Registered in ``serenity.cli.COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from serenity.api import load_model, schedule_model, schedule_or_rewrite
from serenity.cli_options import (
    add_inplace,
    add_input_shape,
    add_method,
    add_search_memory,
    add_threads,
    add_time_limit,
    search_memory_bytes,
    threads_count,
)
from serenity.errors import UsageError
from serenity.io.format import parse_input_shapes
from serenity.io.outputs import write_bytes
from serenity.report import (
    Writer,
    check_output,
    plot_bench,
    plot_plan,
    plot_schedule,
    require_matplotlib,
    write_report,
)
from serenity.report.build import PLAN_TIME_LIMIT
from serenity.schedule import ScheduleResult

if TYPE_CHECKING:
    from serenity.api import PlanOutcome
    from serenity.bench import BenchReport
    from serenity.report.build import LoadedModel
    from serenity.rewrite.driver import RewriteResult


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``report`` subcommand to ``sub``."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: memory over time, live set at the peak, arena map",
    )
    p.set_defaults(run=run)
    p.add_argument("model", help="the model (external weight files may be missing)")
    p.add_argument(
        "-o", "--output", required=True, metavar="REPORT.html", help="where to write the page"
    )
    add_input_shape(p)
    add_inplace(p)
    add_method(p)
    add_time_limit(
        p,
        "seconds for the scheduling search (auto: 60 s by default; with --rewrite, "
        "per candidate, 10 s by default)",
    )
    add_search_memory(p)
    add_threads(p)
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="also apply the identity rewrites that lower the peak, and show them",
    )
    p.add_argument(
        "--plan-time-limit",
        type=float,
        default=PLAN_TIME_LIMIT,
        metavar="SECONDS",
        help="seconds for the exact part of the arena planner when its heuristics miss the "
        f"lower bound (default: {PLAN_TIME_LIMIT:g}; the plan command's default is 10)",
    )


def run(args: argparse.Namespace, out: Console) -> int:
    """Schedule (and rewrite) the model, then write the report."""
    require_matplotlib()
    for flag in ("time_limit", "plan_time_limit"):
        if (getattr(args, flag) or 0) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0 seconds")
    search_memory, threads = search_memory_bytes(args), threads_count(args)
    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"-o {args.output}: give an .html file name")
    model = load_model(args.model, parse_input_shapes(args.input_shape))
    check_output("-o", args.output, [args.model, *model.input_files()])
    base = schedule_model(model, "file", inplace=args.inplace)
    result, rewritten = schedule_or_rewrite(
        model,
        args.method,
        rewrite=args.rewrite,
        inplace=args.inplace,
        time_limit=args.time_limit,
        progress=True,
        search_memory=search_memory,
        threads=threads,
    )
    started, cpu = time.perf_counter(), time.process_time()
    command = "serenity " + shlex.join(getattr(args, "argv", ["report", args.model]))
    write_report(
        args.output,
        model,
        base,
        result,
        rewritten=rewritten,
        command=command,
        plan_time_limit=args.plan_time_limit,
        write=_writer(args),
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = result.peak_bytes
    proof = "proven optimal" if result.optimal else f"not proven, gap {result.gap:.1%}"
    scheduling = rewritten.seconds if rewritten is not None else result.seconds
    out.print(
        f"{model.path.name}: peak {base.peak_bytes:,} -> {peak:,} bytes ({proof}); "
        f"scheduling {scheduling:.2f} s, report {seconds:.2f} s more ({cpu:.2f} s CPU)"
    )
    _wrote(args, out, args.output)
    return 0


def _writer(args: argparse.Namespace) -> Writer:
    """Stage outputs in the command's transaction (``args.tx``, set by
    :func:`serenity.cli.main`: every file appears only if all succeed), or
    write each atomically when there is none."""
    return functools.partial(write_bytes, getattr(args, "tx", None))


def _wrote(args: argparse.Namespace, out: Console, path: str) -> None:
    """Say ``wrote PATH``: after the commit when the CLI collects such lines."""
    lines = getattr(args, "wrote", None)
    if lines is None:
        out.print(f"wrote {path}")
    else:
        lines.append(f"wrote {path}")


# Hooks for the options other commands carry (--html, --plot): one call each in cli.py.


def add_plot_option(p: argparse.ArgumentParser, what: str) -> None:
    """Add ``--plot FILE.png|svg`` to a command's parser; ``what`` says what is drawn."""
    p.add_argument(
        "--plot",
        metavar="FILE.png|svg",
        help=f"also draw {what} (needs the report extra)",
    )


def check_paths(args: argparse.Namespace, taken: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse a bad ``--html`` or ``--plot`` path before any work (see
    :func:`serenity.report.check_output`); options a command lacks are skipped."""
    check_output("--html", getattr(args, "html", None), taken)
    check_output("--plot", getattr(args, "plot", None), taken, plot=True)


def after_schedule(
    args: argparse.Namespace,
    out: Console,
    model: LoadedModel,
    base: ScheduleResult,
    result: ScheduleResult,
    rewritten: RewriteResult | None,
) -> None:
    """``schedule --html / --plot``: write the report and the timeline."""
    if getattr(args, "html", None):
        command = "serenity " + shlex.join(getattr(args, "argv", []))
        write_report(
            args.html,
            model,
            base,
            result,
            rewritten=rewritten,
            command=command,
            write=_writer(args),
        )
        _wrote(args, out, args.html)
    if getattr(args, "plot", None):
        plot_schedule(args.plot, model, base, result, rewritten, write=_writer(args))
        _wrote(args, out, args.plot)


def after_plan(args: argparse.Namespace, out: Console, planned: PlanOutcome) -> None:
    """``plan --plot``: draw the arena map."""
    if getattr(args, "plot", None):
        plot_plan(args.plot, planned, write=_writer(args))
        _wrote(args, out, args.plot)


def after_bench(args: argparse.Namespace, out: Console, report: BenchReport) -> None:
    """``bench --plot``: draw the reduction bars against the paper."""
    if getattr(args, "plot", None):
        plot_bench(args.plot, report, write=_writer(args))
        _wrote(args, out, args.plot)
