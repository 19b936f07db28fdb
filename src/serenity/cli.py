"""The ``serenity`` command line: inspect, schedule, plan, bench, example.

Exit status: 0 on success, 2 on bad input or usage (one line on stderr, no
traceback, nothing written), 1 on an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from serenity import __version__
from serenity.api import (
    PlanOutcome,
    load_model,
    plan_dict,
    plan_schedule,
    read_schedule,
    report_dict,
    save_model,
    save_rewritten,
    schedule_model,
    schedule_or_rewrite,
)
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
from serenity.errors import SerenityError, UsageError, one_line
from serenity.io.format import Model, check_output_path, parse_input_shapes
from serenity.io.outputs import check_new_file, os_error_message, transaction, write_bytes
from serenity.memory.bounds import width_bound
from serenity.memory.cuts import cut_bound
from serenity.memory.offchip import format_size, parse_sizes
from serenity.offchip import bench_reduction
from serenity.plan import (
    DEFAULT_ALIGNMENT,
    DEFAULT_PLANNER,
    DEFAULT_TIME_LIMIT,
    PLANNERS,
    ascii_chart,
)
from serenity.report import command as report_cli
from serenity.schedule import DEFAULT_METHOD, ScheduleResult

#: Commands that live in their own module (one registration line each). A module
#: defines ``add_parser(sub)``, which adds its subparser to ``sub`` (an argparse
#: subparsers object) and sets ``run`` with ``set_defaults(run=fn)``, where
#: ``fn(args, out: rich.console.Console) -> int`` is the exit status; a user error
#: is raised as a :class:`~serenity.errors.SerenityError` (exit 2, one line).
COMMAND_MODULES: tuple[str, ...] = (
    "serenity.report.command",
    "serenity.cli_offchip",
    "serenity.batching.command",
)

#: Console width when stdout is not a terminal (no wrapping in logs).
PIPED_WIDTH = 1000


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        help="the model file (ONNX, .tflite or .pt2), format chosen by its content "
        "(ONNX external weight files may be missing)",
    )
    add_input_shape(p)
    add_inplace(p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serenity",
        description="Find the operator order with the lowest peak activation memory.",
    )
    parser.add_argument("--version", action="version", version=f"serenity {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="show the model's memory profile")
    p.set_defaults(run=_cmd_inspect)
    _add_model_args(p)
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")

    p = sub.add_parser("schedule", help="reorder a model for the lowest peak memory")
    p.set_defaults(run=_cmd_schedule)
    _add_model_args(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="where to write the model (in the input's format)",
    )
    add_method(p)
    p.add_argument("--json", metavar="REPORT.json", help="write the report as JSON")
    add_time_limit(
        p,
        "stop the exact search after this long and keep the best order found, with its "
        "proven lower bound (auto: 60 s by default)",
    )
    add_search_memory(p)
    add_threads(p)
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the original and the new model in the format's runtime (onnxruntime for ONNX) on seeded random inputs "
        "and fail unless every output is bitwise equal",
    )
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="also apply identity graph rewrites (concat partitioning, pad and BN folding, "
        "output-channel splits) where they lower the peak; with --verify, outputs must match "
        "within rtol 1e-4 / atol 1e-5 (or within 2x the original's own float noise, reported)",
    )
    p.add_argument(
        "--no-output-split",
        dest="split_outputs",
        action="store_false",
        help="with --rewrite: never split a convolution by output channels",
    )
    p.add_argument(
        "--plan",
        metavar="PLAN.json",
        help=f"also plan the arena of the chosen schedule ({DEFAULT_PLANNER} planner, "
        f"alignment {DEFAULT_ALIGNMENT}) and write it as JSON",
    )
    p.add_argument(
        "--no-offline-plan",
        dest="offline_plan",
        action="store_false",
        help="for formats whose file can carry an arena plan (a model that holds one), do not "
        "embed the plan of the chosen schedule in the written model",
    )
    p.add_argument("--html", metavar="REPORT.html", help="also write the HTML report (see report)")
    report_cli.add_plot_option(p, "memory over time: file order, best heuristic, the schedule")

    p = sub.add_parser("plan", help="byte offsets of every activation in one arena")
    p.set_defaults(run=_cmd_plan)
    _add_model_args(p)
    p.add_argument(
        "--schedule",
        metavar="REPORT.json",
        help="use the order of a 'serenity schedule --json' report (default: schedule the "
        f"model with the {DEFAULT_METHOD} method first)",
    )
    p.add_argument(
        "--planner",
        default=DEFAULT_PLANNER,
        choices=list(PLANNERS),
        help=f"placement method (default: {DEFAULT_PLANNER})",
    )
    p.add_argument(
        "--alignment",
        type=int,
        default=None,
        metavar="BYTES",
        help="round every offset and size up to a multiple (default: what the model's "
        f"runtime needs, else {DEFAULT_ALIGNMENT})",
    )
    add_time_limit(
        p,
        f"seconds for the planner's exact search (default: {DEFAULT_TIME_LIMIT:g}) and, "
        "without --schedule, for the scheduling search",
    )
    add_search_memory(p, " without --schedule")
    add_threads(p)
    p.add_argument("--json", metavar="PLAN.json", help="write the plan as JSON")
    p.add_argument("--chart", action="store_true", help="print a time x address chart")
    report_cli.add_plot_option(p, "the arena map: time x address rectangles")

    p = sub.add_parser(
        "bench",
        help="the SERENITY evaluation: file order vs heuristics vs optimal, per network",
    )
    p.set_defaults(run=_cmd_bench)
    p.add_argument(
        "paths",
        nargs="*",
        metavar="MODEL_OR_DIR",
        help=".onnx files or directories of them (default: the zoo networks)",
    )
    p.add_argument("--zoo", action="store_true", help="also benchmark the zoo networks")
    p.add_argument("--out", metavar="RESULTS.md", help="write the table as markdown")
    p.add_argument("--json", metavar="RESULTS.json", help="write the numbers as JSON")
    p.add_argument("--notes", metavar="NOTES.md", help="append this markdown file's text to --out")
    add_method(p, "scheduling method compared with file order")
    add_time_limit(
        p,
        "seconds per network for the method (auto: 60 s by default)",
    )
    add_search_memory(p, " per network")
    add_inplace(p)
    p.add_argument(
        "--no-rewrite",
        dest="rewrite",
        action="store_false",
        help="skip the identity-rewriting columns (faster)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="run every rewritten model against the original in onnxruntime (rtol 1e-4, atol 1e-5)",
    )
    p.add_argument(
        "--trial-time-limit",
        type=float,
        metavar="SECONDS",
        help="seconds per trial schedule of the rewriting search (default 10); the rewritten "
        "graph is then scheduled once with --time-limit",
    )
    report_cli.add_plot_option(p, "the peak reduction per network against the paper")
    p.add_argument(
        "--offchip",
        metavar="SIZES",
        help="also give off-chip traffic (Belady, whole tensors; docs/offchip.md) of file, "
        "heuristic and scheduled order on these on-chip sizes, e.g. 32KiB,64KiB,128KiB,256KiB",
    )

    p = sub.add_parser("example", help="write the bundled example model")
    p.set_defaults(run=_cmd_example)
    p.add_argument("output", metavar="OUT.onnx", help="where to write it")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def _write_json(args: argparse.Namespace, path: str, data: dict[str, Any]) -> None:
    _write_text(args, path, json.dumps(data, indent=2) + "\n")


def _write_text(args: argparse.Namespace, path: str, text: str) -> None:
    """Stage ``text`` for ``path`` in the command's transaction (see :func:`main`)."""
    write_bytes(args.tx, path, text.encode())
    _wrote(args, str(path))


def check_seconds(args: argparse.Namespace, *flags: str) -> None:
    """Refuse a negative, infinite or NaN number of seconds given to ``--flags``."""
    for flag in flags:
        value = getattr(args, flag, None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(
                f"--{flag.replace('_', '-')} must be a finite number of seconds >= 0, got "
                f"{value} (omit it for the default)"
            )


def _progress(text: str) -> None:
    """A line on stderr (progress, warnings): stdout stays the report."""
    print(f"serenity: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _said_if_slow(text: str, after: float = 1.0) -> Iterator[None]:
    """Print ``text`` on stderr if the block is still running ``after`` seconds in."""
    timer = threading.Timer(after, _progress, (text,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _wrote(args: argparse.Namespace, text: str) -> None:
    """Say ``wrote TEXT`` once every output of the command is in place."""
    args.wrote.append(f"wrote {text}")


def _model_files(args: argparse.Namespace, model: Model) -> list[Path]:
    """Every file the model reads (weights included) and, for ``schedule``, every
    file its ``-o`` writes: no side output (``--json``, ``--plan``) may be one."""
    output = getattr(args, "output", None)
    return [*model.input_files(), *(model.output_files(Path(output)) if output else [])]


def _check_json_path(args: argparse.Namespace, model: Model) -> None:
    check_new_file("--json", args.json, _model_files(args, model))


def _check_plan_path(args: argparse.Namespace, model: Model) -> None:
    check_new_file(
        "--plan", args.plan, [*_model_files(args, model), *([args.json] if args.json else [])]
    )


def _load(args: argparse.Namespace) -> Model:
    return load_model(args.model, parse_input_shapes(args.input_shape))


def _cmd_inspect(args: argparse.Namespace, out: Console) -> int:
    model = _load(args)
    _check_json_path(args, model)
    p = model.problem
    base = schedule_model(model, "file", inplace=args.inplace)
    best = schedule_model(model, "best-heuristic", inplace=args.inplace)
    largest = max(range(p.num_tensors), key=lambda t: (p.tensor_sizes[t], -t), default=None)
    table = Table(title=f"{model.path.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("nodes", f"{model.num_nodes:,}", f"{p.num_ops:,} scheduled")
    table.add_row("activation tensors", f"{p.num_tensors:,}", "")
    if largest is not None:
        table.add_row("largest tensor", f"{p.tensor_sizes[largest]:,} B", p.tensor_names[largest])
    table.add_row("file-order peak", f"{base.peak_bytes:,} B", f"{_kib(base.peak_bytes)} KiB")
    table.add_row(
        "trivial lower bound",
        f"{best.lower_bound_bytes:,} B",
        f"{_kib(best.lower_bound_bytes)} KiB, no search (schedule proves a stronger one)",
    )
    width = width_bound(p, inplace=args.inplace)
    table.add_row(
        "width bound",
        f"{width:,} B",
        f"{_kib(width)} KiB, outputs alive together in every order (docs/memory-model.md)",
    )
    cut = cut_bound(p, inplace=args.inplace)
    table.add_row(
        "cut bound",
        f"{cut:,} B",
        f"{_kib(cut)} KiB, least memory around each node's step (docs/memory-model.md)",
    )
    table.add_row(
        "best heuristic peak",
        f"{best.peak_bytes:,} B",
        f"{_kib(best.peak_bytes)} KiB, {best.stats['chosen']}"
        + (", optimal" if best.optimal else ""),
    )
    if model.missing_weights:
        table.add_row("weights", "missing", f"{len(model.missing_weights)} external initializers")
    out.print(table)
    if args.json:
        _write_json(
            args,
            args.json,
            {
                "model": str(model.path),
                "nodes": model.num_nodes,
                "scheduled_ops": p.num_ops,
                "activation_tensors": p.num_tensors,
                "largest_tensor": p.tensor_names[largest] if largest is not None else None,
                "largest_tensor_bytes": p.tensor_sizes[largest] if largest is not None else 0,
                "baseline_peak_bytes": base.peak_bytes,
                "lower_bound_bytes": best.lower_bound_bytes,
                "lower_bound_kind": "trivial",
                "width_bound_bytes": width,
                "cut_bound_bytes": cut,
                "best_heuristic_peak_bytes": best.peak_bytes,
                "best_heuristic": best.stats["chosen"],
                "inplace": args.inplace,
            },
        )
    return 0


def _cmd_schedule(args: argparse.Namespace, out: Console) -> int:
    check_seconds(args, "time_limit")
    search_memory, threads = search_memory_bytes(args), threads_count(args)
    model = _load(args)
    _check_json_path(args, model)
    _check_plan_path(args, model)
    taken = [*_model_files(args, model), *filter(None, (args.json, args.plan))]
    report_cli.check_paths(args, taken)
    base = schedule_model(model, "file", inplace=args.inplace)
    result, rewritten = schedule_or_rewrite(
        model,
        args.method,
        rewrite=args.rewrite,
        inplace=args.inplace,
        time_limit=args.time_limit,
        split_outputs=args.split_outputs,
        progress=True,
        search_memory=search_memory,
        threads=threads,
    )
    written = rewritten.model if rewritten is not None else model
    embed = written.holds_plan and args.offline_plan
    planned = plan_schedule(written, result) if args.plan or embed else None
    check_output_path(model, args.output)
    target = args.tx.stage(args.output)
    what = f"verifying: running both models in {model.runtime} on seeded inputs"
    with _said_if_slow(what if args.verify else "writing the model"):
        if rewritten is not None:
            saved = save_rewritten(
                model, rewritten, target, verify=args.verify, plan=planned if embed else None
            )
        else:
            saved = save_model(
                model, result, target, verify=args.verify, plan=planned if embed else None
            )

    table = Table(
        title=f"{model.path.name}: {model.num_nodes} nodes, {model.problem.num_ops} scheduled"
    )
    table.add_column("order")
    table.add_column("peak bytes", justify="right")
    table.add_column("KiB", justify="right")
    table.add_column("vs file order", justify="right")
    table.add_row("file order", f"{base.peak_bytes:,}", _kib(base.peak_bytes), "1.00x")
    rows = [(result.engine, result.peak_bytes)]
    if "heuristic_peak" in result.stats:
        rows.insert(0, ("best heuristic", int(result.stats["heuristic_peak"])))
    if rewritten is not None:
        before = rewritten.before  # the baseline a rewrite is credited against: proven?
        proof = "proven" if before.optimal else f"not proven, gap {before.gap:.1%}"
        rows = [
            (f"{before.engine}, no rewrite ({proof})", before.peak_bytes),
            (f"{result.engine}, {len(rewritten.rewrites)} rewrite(s)", result.peak_bytes),
        ]
    for label, peak in rows:
        ratio = base.peak_bytes / peak if peak else 1.0
        shown = f"{ratio:.2f}x lower" if ratio > 1 else f"{ratio:.2f}x"
        table.add_row(label, f"{peak:,}", _kib(peak), shown)
    table.add_row(
        "proven lower bound",
        f"{result.lower_bound_bytes:,}",
        _kib(result.lower_bound_bytes),
        "= peak: optimal" if result.optimal else "",
    )
    out.print(table)
    proof = "yes (proven)" if result.optimal else f"not proven (gap to bound {result.gap:.1%})"
    out.print(
        f"optimal: {proof}   time: {result.seconds:.3f} s search, "
        f"{time.perf_counter() - args.started:.1f} s in all   memory model: "
        + ("in-place" if args.inplace else "default")
    )
    if result.stats.get("memory_capped") and not result.optimal:
        out.print(
            f"note: the search reached its memory cap (--search-memory {args.search_memory}); "
            "a larger one may prove more"
        )
    if saved.warning and not args.verify:
        _progress(f"warning: {saved.warning}")
    _wrote(args, ", ".join(str(args.tx.staged_name(p)) for p in saved.paths))
    if saved.verify is not None:
        v = saved.verify
        note = (
            f", {v.filled_weights} missing weights filled with seeded random values"
            if v.filled_weights
            else ""
        )
        how = "bitwise equal" if v.exact else "equal within rtol 1e-4, atol 1e-5"
        out.print(
            f"verified: {len(v.outputs)} output(s) {how} in {v.runtime} (seed {v.seed}{note})"
        )
        for line in v.notes:
            out.print(f"note: {line}")
    if model.missing_weights and not args.verify:
        out.print(
            f"note: {len(model.missing_weights)} initializers point at external files that do not exist; "
            "the output keeps the same references"
        )
    if rewritten is not None:
        peaks = rewritten.peaks()
        out.print(
            f"rewrites: {len(rewritten.rewrites)} applied ({rewritten.trials} tried, "
            f"{rewritten.seconds:.1f} s); peak before -> after: default model "
            f"{peaks['default_before']:,} -> {peaks['default_after']:,}, in-place model "
            f"{peaks['inplace_before']:,} -> {peaks['inplace_after']:,}"
        )
    if args.json:
        _write_json(
            args,
            args.json,
            report_dict(
                model,
                base,
                result,
                args.method,
                args.output,
                saved.verify,
                rewrite=rewritten,
                plan=planned,
            ),
        )
    if planned is not None:
        _print_plan_summary(planned, out)
        if embed:
            out.print(f"arena plan embedded in {args.output}")
    if args.plan and planned is not None:
        _write_json(args, args.plan, plan_dict(written, planned))
    report_cli.after_schedule(args, out, model, base, result, rewritten)
    return 0


def _print_plan_summary(planned: PlanOutcome, out: Console) -> None:
    p = planned.plan
    if p.reaches_bound:
        verdict = "equals the lower bound: optimal"
    elif p.optimal:
        verdict = "proven optimal by CP-SAT, above the lower bound"
    else:
        verdict = f"{p.arena_bytes / max(p.lower_bound_bytes, 1) - 1:.1%} above the lower bound"
    out.print(f"arena: {p.arena_bytes:,} bytes ({verdict})")


def _cmd_plan(args: argparse.Namespace, out: Console) -> int:
    if args.alignment is not None and args.alignment < 1:
        raise UsageError(f"--alignment must be >= 1 byte, got {args.alignment}")
    check_seconds(args, "time_limit")
    search_memory, threads = search_memory_bytes(args), threads_count(args)
    model = _load(args)
    _check_json_path(args, model)
    report_cli.check_paths(args, [*_model_files(args, model), *filter(None, (args.json,))])
    result: ScheduleResult
    if args.schedule:
        result = read_schedule(model, args.schedule, inplace=args.inplace)
    else:
        result = schedule_model(
            model,
            DEFAULT_METHOD,
            inplace=args.inplace,
            time_limit=args.time_limit,
            progress=True,
            search_memory=search_memory,
            threads=threads,
        )
    limit = DEFAULT_TIME_LIMIT if args.time_limit is None else args.time_limit
    planned = plan_schedule(model, result, args.planner, alignment=args.alignment, time_limit=limit)
    p = planned.plan
    source = f"from {args.schedule}" if args.schedule else f"by {result.engine}"
    table = Table(
        title=f"{model.path.name}: {model.problem.num_ops} ops scheduled ({source}), "
        f"{len(planned.buffers)} buffers"
    )
    table.add_column("")
    table.add_column("bytes", justify="right")
    table.add_column("KiB", justify="right")
    table.add_column("vs peak", justify="right")
    peak = max(result.peak_bytes, 1)
    rows = [
        ("schedule peak", result.peak_bytes),
        (f"lower bound (alignment {p.alignment})", p.lower_bound_bytes),
        (f"arena ({p.planner})", p.arena_bytes),
    ]
    for label, n in rows:
        table.add_row(label, f"{n:,}", _kib(n), f"{n / peak:.3f}x")
    out.print(table)
    _print_plan_summary(planned, out)
    out.print(
        f"time: {p.seconds:.3f} s   memory model: " + ("in-place" if args.inplace else "default")
    )
    if args.chart:
        out.print(ascii_chart(planned.buffers, p), markup=False, highlight=False, soft_wrap=True)
    if args.json:
        _write_json(args, args.json, plan_dict(model, planned))
    report_cli.after_plan(args, out, planned)
    return 0


def _cmd_example(args: argparse.Namespace, out: Console) -> int:
    import onnx

    from serenity.zoo import build_example

    target = Path(args.output)
    if not target.parent.exists():
        raise UsageError(f"output directory {target.parent} does not exist")
    onnx.save(build_example(), str(args.tx.stage(target)))
    _wrote(args, f"{target} (the bundled example: 4 branches, 15 nodes, with weights)")
    return 0


def _cmd_bench(args: argparse.Namespace, out: Console) -> int:
    from serenity import bench

    check_seconds(args, "time_limit", "trial_time_limit")
    search_memory = search_memory_bytes(args)
    inputs = [*args.paths, *([args.notes] if args.notes else [])]
    check_new_file("--out", args.out, inputs)
    check_new_file("--json", args.json, [*inputs, *([args.out] if args.out else [])])
    report_cli.check_paths(args, [*inputs, *filter(None, (args.out, args.json))])
    for flag, path in (("--out", args.out), ("--json", args.json)):
        if path and Path(path).suffix == ".onnx":
            raise UsageError(f"{flag} {path} looks like a model; give a .md/.json file name")
    notes = ""
    if args.notes:
        try:
            notes = Path(args.notes).read_text()
        except OSError as e:
            raise UsageError(f"cannot read --notes {args.notes}: {e.strerror}") from None
    sources: list[tuple[str, Any]] = list(bench.path_sources(args.paths))
    if args.zoo or not args.paths:
        sources = bench.zoo_sources() + sources
    if not sources:
        raise UsageError("nothing to benchmark: name models or directories, or use --zoo")
    offchip_sizes = parse_sizes([args.offchip]) if args.offchip else []
    report = bench.run_bench(
        sources,
        method=args.method,
        time_limit=args.time_limit,
        inplace=args.inplace,
        rewrite=args.rewrite,
        verify=args.verify,
        trial_time_limit=args.trial_time_limit,
        offchip=offchip_sizes,
        search_memory=search_memory,
    )
    table = Table(title=f"serenity bench ({report.method}, peaks in KiB)")
    for col in ("network", "ops", "file order", "best heuristic", "scheduled", "proven", "s", "x"):
        table.add_column(col, justify="left" if col == "network" else "right")
    has_rewrite = any(r.rewritten_peak is not None for r in report.rows)
    if has_rewrite:
        table.add_column("rewritten", justify="right")
        table.add_column("x", justify="right")
    for size in map(format_size, offchip_sizes):
        table.add_column(f"traffic {size} x", justify="right")
    for r in report.rows:
        cells = [
            r.name,
            f"{r.ops:,}",
            _kib(r.file_peak),
            _kib(r.heuristic_peak),
            _kib(r.peak),
            "yes" if r.optimal else "no",
            f"{r.seconds:.2f}",
            f"{r.reduction('scheduled') or 0:.2f}x",
        ]
        if has_rewrite:
            rw = r.rewritten_peak
            cells += ["-" if rw is None else _kib(rw), f"{r.reduction('rewritten') or 0:.2f}x"]
        for size in map(format_size, offchip_sizes):  # file-order / scheduled traffic
            ratio = bench_reduction((r.offchip or {})[size])
            cells.append("zero" if ratio == float("inf") else f"{ratio:.2f}x")
        table.add_row(*cells)
    for failed in report.errors:
        table.add_row(failed.name, "failed", *["-"] * (len(table.columns) - 2))
    out.print(table)
    means = ", ".join(
        f"{label} {g:.2f}x"
        for label, g in (
            ("heuristic", report.geomean("heuristic")),
            ("scheduling", report.geomean("scheduled")),
            ("rewriting", report.geomean("rewritten")),
        )
        if g
    )
    out.print(
        f"geometric mean reduction vs file order: {means} "
        f"(paper: {bench.PAPER['geomean_scheduling']:.2f}x scheduling, "
        f"{bench.PAPER['geomean_rewriting']:.2f}x with rewriting)"
    )
    command = "serenity " + shlex.join(args.argv)
    if args.out:
        _write_text(args, args.out, bench.markdown(report, command, notes))
    if args.json:
        _write_json(args, args.json, report.to_json())
    report_cli.after_bench(args, out, report)
    for failed in report.errors:
        _progress(f"{failed.name}: failed: {failed.error}")
    if report.errors:
        _progress(f"{len(report.errors)} network(s) failed, {len(report.rows)} measured")
    return 2 if report.errors and not report.rows else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serenity`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    args.started = time.perf_counter()
    # Piped to a file or a CI log, nothing wraps at 80 columns: tables keep
    # their natural width (a terminal keeps its own width).
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    out = Console(highlight=False, width=PIPED_WIDTH if piped else None)
    err = Console(stderr=True, highlight=False)
    # Every file the command writes is staged and appears only if all succeed.
    args.wrote = []
    try:
        with transaction() as args.tx:
            code = int(args.run(args, out))
        for line in args.wrote:
            out.print(line, markup=False)
        return code
    except SerenityError as e:
        err.print(f"serenity: error: {one_line(str(e))}", markup=False, soft_wrap=True)
        return 2
    except OSError as e:
        message = one_line(os_error_message(e, "complete"))
        err.print(f"serenity: error: {message}", markup=False, soft_wrap=True)
        return 2
    except MemoryError:
        err.print(
            "serenity: error: out of memory (the model or its search is too large for this "
            "machine; try --time-limit, or a smaller --input-shape)",
            markup=False,
            soft_wrap=True,
        )
        return 2
    except KeyboardInterrupt:
        err.print("serenity: interrupted; nothing was written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
