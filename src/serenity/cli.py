"""The ``serenity`` command line: inspect, schedule, plan, bench, example.

Exit status: 0 on success, 2 on bad input or usage (one line on stderr, no
traceback, nothing written), 1 on an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
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
    rewrite_model,
    save_model,
    save_rewritten,
    schedule_model,
)
from serenity.errors import SerenityError, UsageError
from serenity.io.onnx_import import OnnxModel, parse_input_shapes
from serenity.plan import (
    DEFAULT_ALIGNMENT,
    DEFAULT_PLANNER,
    DEFAULT_TIME_LIMIT,
    PLANNERS,
    ascii_chart,
)
from serenity.schedule import DEFAULT_METHOD, ENGINES, ScheduleResult

#: Commands that live in their own module (one registration line each). A module
#: defines ``add_parser(sub)``, which adds its subparser to ``sub`` (an argparse
#: subparsers object) and sets ``run`` with ``set_defaults(run=fn)``, where
#: ``fn(args, out: rich.console.Console) -> int`` is the exit status; a user error
#: is raised as a :class:`~serenity.errors.SerenityError` (exit 2, one line).
COMMAND_MODULES: tuple[str, ...] = ("serenity.batching.command",)


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the ONNX model (external weight files may be missing)")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="fix the dims of a graph input with symbolic dims (repeatable)",
    )
    p.add_argument(
        "--inplace",
        action="store_true",
        help="memory model with in-place reuse: element-wise and reshape-like ops write "
        "over an input that dies there (not the default)",
    )


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
        "-o", "--output", required=True, metavar="OUT.onnx", help="where to write the model"
    )
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=list(ENGINES),
        help=f"scheduling method (default: {DEFAULT_METHOD})",
    )
    p.add_argument("--json", metavar="REPORT.json", help="write the report as JSON")
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop the exact search after this long and keep the best order found, with its "
        "proven lower bound (auto: 60 s by default)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the original and the new model in onnxruntime on seeded random inputs "
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
        default=DEFAULT_ALIGNMENT,
        metavar="BYTES",
        help=f"round every offset and size up to a multiple (default: {DEFAULT_ALIGNMENT})",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help=f"seconds for the planner's exact search (default: {DEFAULT_TIME_LIMIT:g}) and, "
        "without --schedule, for the scheduling search",
    )
    p.add_argument("--json", metavar="PLAN.json", help="write the plan as JSON")
    p.add_argument("--chart", action="store_true", help="print a time x address chart")

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
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=list(ENGINES),
        help=f"scheduling method compared with file order (default: {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="seconds per network for the method (auto: 60 s by default)",
    )
    p.add_argument("--inplace", action="store_true", help="use the in-place memory model")
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

    p = sub.add_parser("example", help="write the bundled example model")
    p.set_defaults(run=_cmd_example)
    p.add_argument("output", metavar="OUT.onnx", help="where to write it")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def _write_json(path: str, data: dict[str, Any]) -> None:
    _write_text(path, json.dumps(data, indent=2) + "\n")


def _write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


def _check_new_file(flag: str, path: str | None, taken: Sequence[str | Path]) -> None:
    """Refuse a path given to ``flag`` that would overwrite one of ``taken`` (the
    model, other outputs) or cannot be created.

    Checked before anything is written, so a bad path leaves no files behind.
    """
    if not path:
        return
    target = Path(path)
    for other in taken:
        if target.resolve() == Path(other).resolve():
            raise UsageError(f"{flag} {target} would overwrite {other}; choose another path")
    if target.is_dir():
        raise UsageError(f"{flag} {target} is a directory; give a file name")
    if not target.parent.exists():
        raise UsageError(f"{flag} {target}: directory {target.parent} does not exist")


def _model_outputs(args: argparse.Namespace) -> list[str]:
    """The model and, for ``schedule``, the model it writes and its weight file."""
    output = getattr(args, "output", None)
    return [args.model, *([output, output + ".data"] if output else [])]


def _check_json_path(args: argparse.Namespace) -> None:
    _check_new_file("--json", args.json, _model_outputs(args))


def _check_plan_path(args: argparse.Namespace) -> None:
    _check_new_file(
        "--plan", args.plan, [*_model_outputs(args), *([args.json] if args.json else [])]
    )


def _load(args: argparse.Namespace) -> OnnxModel:
    return load_model(args.model, parse_input_shapes(args.input_shape))


def _cmd_inspect(args: argparse.Namespace, out: Console) -> int:
    _check_json_path(args)
    model = _load(args)
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
        "lower bound", f"{best.lower_bound_bytes:,} B", f"{_kib(best.lower_bound_bytes)} KiB"
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
                "best_heuristic_peak_bytes": best.peak_bytes,
                "best_heuristic": best.stats["chosen"],
                "inplace": args.inplace,
            },
        )
    return 0


def _cmd_schedule(args: argparse.Namespace, out: Console) -> int:
    _check_json_path(args)
    _check_plan_path(args)
    model = _load(args)
    base = schedule_model(model, "file", inplace=args.inplace)
    if args.time_limit is not None and args.time_limit < 0:
        raise UsageError("--time-limit must be >= 0 seconds")
    rewritten = None
    if args.rewrite:
        rewritten = rewrite_model(
            model,
            args.method,
            inplace=args.inplace,
            time_limit=args.time_limit,
            split_outputs=args.split_outputs,
            progress=True,
        )
        result = rewritten.after
        saved = save_rewritten(model, rewritten, args.output, verify=args.verify)
    else:
        result = schedule_model(
            model, args.method, inplace=args.inplace, time_limit=args.time_limit, progress=True
        )
        saved = save_model(model, result, args.output, verify=args.verify)

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
        rows = [
            (f"{rewritten.before.engine}, no rewrite", rewritten.before.peak_bytes),
            (f"{result.engine}, {len(rewritten.rewrites)} rewrite(s)", result.peak_bytes),
        ]
    for label, peak in rows:
        ratio = base.peak_bytes / peak if peak else 1.0
        shown = f"{ratio:.2f}x lower" if ratio > 1 else f"{ratio:.2f}x"
        table.add_row(label, f"{peak:,}", _kib(peak), shown)
    table.add_row(
        "lower bound", f"{result.lower_bound_bytes:,}", _kib(result.lower_bound_bytes), ""
    )
    out.print(table)
    proof = "yes (proven)" if result.optimal else f"not proven (gap to bound {result.gap:.1%})"
    out.print(
        f"optimal: {proof}   time: {result.seconds:.3f} s   memory model: "
        + ("in-place" if args.inplace else "default")
    )
    out.print(f"wrote {', '.join(str(p) for p in saved.paths)}")
    if saved.verify is not None:
        v = saved.verify
        note = (
            f", {v.filled_weights} missing weights filled with seeded random values"
            if v.filled_weights
            else ""
        )
        how = "bitwise equal" if v.exact else "equal within rtol 1e-4, atol 1e-5"
        out.print(
            f"verified: {len(v.outputs)} output(s) {how} in onnxruntime (seed {v.seed}{note})"
        )
        for line in v.notes:
            out.print(f"warning: {line}")
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
            args.json,
            report_dict(
                model, base, result, args.method, args.output, saved.verify, rewrite=rewritten
            ),
        )
    if args.plan:
        written = rewritten.model if rewritten is not None else model
        planned = plan_schedule(written, result)
        _print_plan_summary(planned, out)
        _write_json(args.plan, plan_dict(written, planned))
        out.print(f"wrote {args.plan}")
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
    _check_json_path(args)
    if args.alignment < 1:
        raise UsageError(f"--alignment must be >= 1 byte, got {args.alignment}")
    if args.time_limit is not None and args.time_limit < 0:
        raise UsageError("--time-limit must be >= 0 seconds")
    model = _load(args)
    result: ScheduleResult
    if args.schedule:
        result = read_schedule(model, args.schedule, inplace=args.inplace)
    else:
        result = schedule_model(
            model, DEFAULT_METHOD, inplace=args.inplace, time_limit=args.time_limit, progress=True
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
        _write_json(args.json, plan_dict(model, planned))
        out.print(f"wrote {args.json}")
    return 0


def _cmd_example(args: argparse.Namespace, out: Console) -> int:
    import onnx

    from serenity.zoo import build_example

    target = Path(args.output)
    if not target.parent.exists():
        raise UsageError(f"output directory {target.parent} does not exist")
    onnx.save(build_example(), str(target))
    out.print(f"wrote {target} (the bundled example: 4 branches, 15 nodes, with weights)")
    return 0


def _cmd_bench(args: argparse.Namespace, out: Console) -> int:
    from serenity import bench

    for flag in ("time_limit", "trial_time_limit"):
        if (getattr(args, flag) or 0) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0 seconds")
    inputs = [*args.paths, *([args.notes] if args.notes else [])]
    _check_new_file("--out", args.out, inputs)
    _check_new_file("--json", args.json, [*inputs, *([args.out] if args.out else [])])
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
    report = bench.run_bench(
        sources,
        method=args.method,
        time_limit=args.time_limit,
        inplace=args.inplace,
        rewrite=args.rewrite,
        verify=args.verify,
        trial_time_limit=args.trial_time_limit,
    )
    table = Table(title=f"serenity bench ({report.method}, peaks in KiB)")
    for col in ("network", "ops", "file order", "best heuristic", "scheduled", "proven", "s", "x"):
        table.add_column(col, justify="left" if col == "network" else "right")
    has_rewrite = any(r.rewritten_peak is not None for r in report.rows)
    if has_rewrite:
        table.add_column("rewritten", justify="right")
        table.add_column("x", justify="right")
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
        table.add_row(*cells)
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
        _write_text(args.out, bench.markdown(report, command, notes))
        out.print(f"wrote {args.out}")
    if args.json:
        _write_json(args.json, report.to_json())
        out.print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serenity`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        return int(args.run(args, out))
    except SerenityError as e:
        err.print(f"serenity: error: {e}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("serenity: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
