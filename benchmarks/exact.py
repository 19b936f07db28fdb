"""Benchmark: file order vs best heuristic vs the exact engine on real graphs.

Usage (from the repository root)::

    python benchmarks/exact.py                       # ../shared/models/onnx
    python benchmarks/exact.py DIR_OR_MODEL ... --runs 5 --time-limit 120

Writes ``benchmarks/RESULTS-exact.md`` and ``benchmarks/results-exact.json``.
Peaks are exact byte counts; times are medians of ``--runs`` runs on this
machine (noisy on shared 2-core machines: compare ratios, not absolutes).
Zoo networks (``serenity.zoo``) are added automatically once they exist.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from _common import model_paths, parser

import serenity
import serenity.zoo
from serenity.io import load_onnx
from serenity.ir import Problem
from serenity.schedule import ScheduleOptions, schedule

HERE = Path(__file__).resolve().parent


def _median_run(
    problem: Problem, method: str, options: ScheduleOptions, runs: int
) -> tuple[Any, float]:
    results, seconds = [], []
    for _ in range(runs):
        t = time.perf_counter()
        results.append(schedule(problem, method, options))
        seconds.append(time.perf_counter() - t)
    first = results[0]
    assert all(r.order == first.order for r in results), "engine is not deterministic"
    return first, statistics.median(seconds)


def bench_problem(
    name: str, nodes: int, problem: Problem, runs: int, time_limit: float, inplace: bool
) -> dict[str, Any]:
    options = ScheduleOptions(inplace=inplace, time_limit=time_limit)
    file_r, _ = _median_run(problem, "file", options, 1)
    heur, heur_s = _median_run(problem, "best-heuristic", options, runs)
    ex, ex_s = _median_run(problem, "exact", options, runs)
    return {
        "model": name,
        "nodes": nodes,
        "inplace": inplace,
        "file_peak": file_r.peak_bytes,
        "heuristic_peak": heur.peak_bytes,
        "heuristic": heur.stats["chosen"],
        "heuristic_seconds": heur_s,
        "exact_peak": ex.peak_bytes,
        "optimal": ex.optimal,
        "lower_bound": ex.lower_bound_bytes,
        "ratio_file_exact": file_r.peak_bytes / ex.peak_bytes,
        "exact_seconds": ex_s,
        "expanded": ex.stats.get("expanded", 0),
        "free_moves": ex.stats.get("free_moves", 0),
        "segments": ex.stats.get("segments", 0),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | nodes | file order | best heuristic | exact | proven | lower bound "
        "| file/exact | exact s (median) | states expanded |\n"
        "|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['model']} | {r['nodes']} | {r['file_peak']:,} | {r['heuristic_peak']:,} ({r['heuristic']}) "
        f"| {r['exact_peak']:,} | {'yes' if r['optimal'] else 'no'} | {r['lower_bound']:,} "
        f"| {r['ratio_file_exact']:.3f}x | {r['exact_seconds']:.3f} | {r['expanded']:,} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=5, help="runs per engine for the median time")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per exact search")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-exact.md")
    args = ap.parse_args(argv)

    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    jobs: list[tuple[str, int, Problem]] = []
    for path in model_paths(args.paths):
        model = load_onnx(path)
        jobs.append((path.stem, model.num_nodes, model.problem))
    # The benchmark zoo (serenity.zoo.BENCHMARKS: name -> builder) joins once it exists.
    for name, build in getattr(serenity.zoo, "BENCHMARKS", {}).items():
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / f"{name}.onnx"
            onnx.save(build(), str(f))
            model = load_onnx(f)
        jobs.append((name, model.num_nodes, model.problem))
    for name, nodes, problem in jobs:
        for inplace in (False, True):
            row = bench_problem(name, nodes, problem, args.runs, args.time_limit, inplace)
            rows[inplace].append(row)
            print(
                f"{row['model']:24s} inplace={inplace!s:5s} file {row['file_peak']:>12,}  "
                f"heur {row['heuristic_peak']:>12,}  exact {row['exact_peak']:>12,} "
                f"{'proven' if row['optimal'] else 'NOT proven'}  {row['exact_seconds']:.3f}s",
                flush=True,
            )

    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    text = (
        "# Exact engine benchmark\n\n"
        f"Made by `python benchmarks/exact.py {' '.join(str(p) for p in args.paths)}`"
        f" (--runs {args.runs}, --time-limit {args.time_limit:g}) with serenity {serenity.__version__}"
        f" on {machine}. Peaks in bytes; times are medians of {args.runs} runs of the whole engine "
        "(heuristic seed, decomposition, search), model loading excluded.\n\n"
        "## Default memory model\n\n" + _table(rows[False]) + "\n"
        "## In-place memory model (`--inplace`)\n\n" + _table(rows[True])
    )
    args.out.write_text(text)
    args.out.with_name("results-exact.json").write_text(
        json.dumps(rows[False] + rows[True], indent=2) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
