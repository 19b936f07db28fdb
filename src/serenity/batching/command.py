"""``serenity batch``: schedule many models with worker processes or on Ray.

Registered in :data:`serenity.cli.COMMAND_MODULES`. Exit status: 0 when every
model is ``ok``, 3 when the run finished but some model ended in ``error``
or ``timeout`` (their lines say why), 2 for bad arguments (nothing run),
130 on Ctrl-C (every finished result kept; rerun to finish).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from serenity.batching import BATCH_ENGINES, TIMEOUT_GRACE, batch
from serenity.batching.jobs import expand_paths
from serenity.batching.results import check_parquet, read_results, write_parquet
from serenity.cli_options import (
    add_inplace,
    add_input_shape,
    add_method,
    add_search_memory,
    add_time_limit,
    search_memory_bytes,
)
from serenity.errors import UsageError
from serenity.io.onnx_import import parse_input_shapes

#: Exit status of a run that finished with some models in error or timeout.
EXIT_SOME_FAILED = 3


def add_parser(sub: Any) -> None:
    """Add the ``batch`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "batch",
        help="schedule many models (files, folders, lists of paths) in parallel, resumably",
        description="Schedule every model, one JSON line per model in --out as it finishes. "
        "A rerun with the same --out skips the models already there (same file hash).",
    )
    p.set_defaults(run=run)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="an .onnx model, a folder (every .onnx below it) or a text file of paths, one a line",
    )
    p.add_argument(
        "--out", required=True, metavar="RESULTS", help="results file (JSON lines, or Parquet)"
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        help="results format (default: parquet for a .parquet --out, else jsonl); parquet "
        "keeps its journal in RESULTS.jsonl for resuming and needs pyarrow",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes (default: CPU count; Ray: the cluster's CPUs)",
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=BATCH_ENGINES,
        help="local worker processes (default) or Ray tasks",
    )
    p.add_argument(
        "--address", metavar="ADDR", help="with --engine ray: the cluster (default: start one here)"
    )
    add_method(p)
    add_time_limit(
        p,
        "each model's search limit: the best order found and its proven bound are kept "
        "(auto: 60 s by default; with --rewrite, per trial)",
    )
    add_search_memory(p, " per model (per worker)")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=-1.0,
        help=f"kill a model's worker after this long: status timeout (default: 2 x time limit "
        f"+ {TIMEOUT_GRACE:g} s; none with --rewrite; 0: never)",
    )
    p.add_argument("--retry", action="store_true", help="rerun models stored as error or timeout")
    p.add_argument(
        "-o",
        "--output-dir",
        metavar="OUTDIR",
        help="write each scheduled model here as <stem>.onnx (and its plan with --plan)",
    )
    p.add_argument("--rewrite", action="store_true", help="also apply identity rewrites")
    p.add_argument(
        "--no-output-split",
        dest="split_outputs",
        action="store_false",
        help="with --rewrite: never split a convolution by output channels",
    )
    p.add_argument("--plan", action="store_true", help="also plan each schedule's arena")
    p.add_argument(
        "--verify", action="store_true", help="with -o: check each written model in onnxruntime"
    )
    add_inplace(p)
    add_input_shape(p, ", in every model")


def _journal_path(out: Path, fmt: str) -> Path:
    return out.with_name(out.name + ".jsonl") if fmt == "parquet" else out


def run(args: argparse.Namespace, out: Console) -> int:
    """Run ``serenity batch``; the exit status (see the module docstring)."""
    target = Path(args.out)
    fmt = args.format or ("parquet" if target.suffix == ".parquet" else "jsonl")
    if fmt == "parquet":
        check_parquet()
    journal = _journal_path(target, fmt)
    for path in (target, journal):
        if path.is_dir():
            raise UsageError(f"--out {path} is a directory; give a file name")
        if not path.parent.exists():
            raise UsageError(f"--out {path}: directory {path.parent} does not exist")
    paths = expand_paths(args.inputs)
    if not paths:
        raise UsageError("no models found in the inputs")
    taken = {p.resolve() for p in paths}
    if target.resolve() in taken or journal.resolve() in taken:
        raise UsageError(f"--out {target} would overwrite an input model; choose another path")
    batch_run = batch(
        paths,
        jobs=args.jobs,
        engine=args.engine,
        address=args.address,
        out=journal,
        retry=args.retry,
        method=args.method,
        time_limit=args.time_limit,
        search_memory=search_memory_bytes(args),
        timeout=args.timeout,
        inplace=args.inplace,
        rewrite=args.rewrite,
        split_outputs=args.split_outputs,
        plan=args.plan,
        outdir=args.output_dir,
        verify=args.verify,
        input_shapes=parse_input_shapes(args.input_shape),
    )
    counts: Counter[str] = Counter()
    err = Console(stderr=True, highlight=False)
    start = time.perf_counter()
    skipped = len(batch_run.done)
    if skipped:
        out.print(f"{skipped} of {skipped + len(batch_run.todo)} models already in {journal}")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    interrupted = False
    failed: list[dict[str, Any]] = []
    with progress, closing(batch_run) as results:
        bar = progress.add_task("batch", total=len(batch_run.todo))
        try:
            for i, row in enumerate(results):
                counts[row["status"]] += 1
                if row["status"] != "ok":
                    failed.append(row)
                if i >= skipped:
                    progress.update(bar, advance=1, description=_tally(counts))
        except KeyboardInterrupt:
            interrupted = True
    seconds = time.perf_counter() - start
    ran = sum(counts.values()) - skipped
    rate = f", {ran / seconds:.2f} models/s" if ran and seconds > 0 else ""
    out.print(f"{_tally(counts)} in {seconds:.1f} s ({ran} run, {skipped} resumed{rate})")
    for row in failed:
        out.print(f"  {row['status']}: {row['model']}: {row['error']}", markup=False)
    if fmt == "parquet" and not interrupted:
        n = write_parquet(read_results(journal), target)
        out.print(f"wrote {target} ({n} rows; journal {journal})")
    else:
        out.print(f"wrote {journal}")
    if interrupted:
        err.print("serenity: interrupted; rerun the same command to finish")
        return 130
    return 0 if counts["ok"] == sum(counts.values()) else EXIT_SOME_FAILED


def _tally(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in ("ok", "error", "timeout") if counts[s]) or "0"
