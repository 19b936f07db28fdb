"""Benchmark: arena planners on the memory-optimal schedule of real graphs.

Usage (from the repository root)::

    python benchmarks/plan.py                        # ../shared/models/onnx
    python benchmarks/plan.py DIR_OR_MODEL ... --runs 3 --time-limit 60

For every model: the exact engine's optimal schedule
(``serenity.schedule_model(model, "exact")``), its peak, the lower bound with
the alignment (most aligned bytes live at one step), and the arena of
``greedy-size`` (TFLite Micro), ``greedy-order`` (TFLite) and ``best`` (ours),
each plan checked by ``check_plan``. Both memory models (default, in-place).
Writes ``benchmarks/RESULTS-plan.md``. Byte counts are exact; times are
medians of ``--runs`` runs (noisy on shared machines). Zoo networks
(``serenity.zoo.BENCHMARKS``) are added when they exist.
"""

from __future__ import annotations

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
from serenity.io.onnx_import import OnnxModel
from serenity.plan import ArenaPlan, Buffer, check_plan, lifetimes, plan

HERE = Path(__file__).resolve().parent
PLANNERS = ("greedy-size", "greedy-order", "best")


def _median_plan(
    buffers: list[Buffer], planner: str, alignment: int, time_limit: float, runs: int
) -> tuple[ArenaPlan, float]:
    plans, seconds = [], []
    for _ in range(runs):
        t = time.perf_counter()
        plans.append(plan(buffers, planner, alignment, time_limit))
        seconds.append(time.perf_counter() - t)
    first = plans[0]
    assert all(p.offsets == first.offsets for p in plans), f"{planner} is not deterministic"
    check_plan(buffers, first)
    return first, statistics.median(seconds)


def bench_model(
    name: str, model: OnnxModel, inplace: bool, alignment: int, time_limit: float, runs: int
) -> dict[str, Any]:
    result = serenity.schedule_model(model, "exact", inplace=inplace)
    buffers = lifetimes(model.problem, result.op_order, inplace=inplace)
    row: dict[str, Any] = {
        "model": name,
        "ops": model.problem.num_ops,
        "buffers": len(buffers),
        "peak": result.peak_bytes,
        "schedule_optimal": result.optimal,
    }
    for planner in PLANNERS:
        p, seconds = _median_plan(buffers, planner, alignment, time_limit, runs)
        row[planner] = p.arena_bytes
        row[f"{planner} s"] = seconds
        row["bound"] = p.lower_bound_bytes
        if planner == "best":
            row["reached"] = p.reaches_bound
            row["optimal"] = p.optimal
            row["how"] = _how(p)
    exact_bytes, _ = _median_plan(buffers, "best", 1, time_limit, 1)
    row["best@1"] = exact_bytes.arena_bytes
    return row


def _how(p: ArenaPlan) -> str:
    if "cpsat" in p.stats:
        return f"CP-SAT ({p.stats['cpsat']['status'].lower()})"
    if "improved_arena" in p.stats:
        return f"local search from {p.stats['improved_from']}"
    return p.stats.get("greedy", "")


def _table(rows: list[dict[str, Any]], alignment: int) -> str:
    head = (
        f"| model | ops | buffers | peak | lower bound (align {alignment}) | greedy-size "
        "| greedy-order | best | best = bound | found by | best s (median) "
        "| best, align 1 = peak |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|---|---:|:---:|\n"
    )

    def cell(r: dict[str, Any], planner: str) -> str:
        ratio = r[planner] / r["bound"] if r["bound"] else 1.0
        return f"{r[planner]:,} ({ratio:.3f}x)"

    body = "".join(
        f"| {r['model']} | {r['ops']} | {r['buffers']} | {r['peak']:,} | {r['bound']:,} "
        f"| {cell(r, 'greedy-size')} | {cell(r, 'greedy-order')} | {cell(r, 'best')} "
        f"| {'yes' if r['reached'] else 'no'} | {r['how']} | {r['best s']:.3f} "
        f"| {'yes' if r['best@1'] == r['peak'] else 'no (' + format(r['best@1'], ',') + ')'} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=3, help="runs per planner for the median time")
    ap.add_argument("--alignment", type=int, default=16)
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per planner run")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-plan.md")
    args = ap.parse_args(argv)

    jobs: list[tuple[str, OnnxModel]] = []
    for path in model_paths(args.paths):
        jobs.append((path.stem, load_onnx(path)))
    for name, build in getattr(serenity.zoo, "BENCHMARKS", {}).items():
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / f"{name}.onnx"
            onnx.save(build(), str(f))
            jobs.append((name, load_onnx(f)))
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for name, model in jobs:
        for inplace in (False, True):
            row = bench_model(name, model, inplace, args.alignment, args.time_limit, args.runs)
            rows[inplace].append(row)
            print(
                f"{name:24s} inplace={inplace!s:5s} peak {row['peak']:>12,}  bound "
                f"{row['bound']:>12,}  greedy-size {row['greedy-size']:>12,}  greedy-order "
                f"{row['greedy-order']:>12,}  best {row['best']:>12,} "
                f"{'= bound' if row['reached'] else 'ABOVE bound'}  {row['best s']:.3f}s",
                flush=True,
            )

    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    every = rows[False] + rows[True]
    missed = [f"{r['model']}" for r in every if not r["reached"]]
    verdict = (
        "`best` equals the aligned lower bound on every graph, in both memory models, "
        "so the arena is optimal everywhere; with alignment 1 it equals the schedule's peak. "
        "Choosing among equally optimal orders one that packs better was not needed."
        if not missed
        else f"`best` stays above the aligned lower bound on: {', '.join(missed)}."
    )
    text = (
        "# Arena planning benchmark\n\n"
        f"Made by `{' '.join(['python benchmarks/plan.py', *map(str, args.paths)])}`"
        f" (--runs {args.runs}, --alignment {args.alignment}, --time-limit {args.time_limit:g})"
        f" with serenity {serenity.__version__} on {machine}.\n\n"
        "Schedule: the exact engine's optimal order. Bytes are exact; the lower bound is the "
        f"most bytes live at one step with every size rounded up to {args.alignment} (no plan "
        "can be smaller); ratios are arena / lower bound. `greedy-size` is TFLite Micro's "
        "greedy planner (largest first, first fit), `greedy-order` TFLite's arena planner "
        "(allocation order, best fit), `best` ours (several greedy orders, local search, "
        "CP-SAT when those miss the bound). Times are medians of "
        f"{args.runs} runs of the planner alone. The last column plans with alignment 1.\n\n"
        f"{verdict}\n\n"
        "## Default memory model\n\n" + _table(rows[False], args.alignment) + "\n"
        "## In-place memory model (`--inplace`)\n\n" + _table(rows[True], args.alignment)
    )
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
