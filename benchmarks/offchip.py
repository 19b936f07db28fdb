"""Benchmark: off-chip traffic under a small on-chip memory (SERENITY's second result).

Usage (from the repository root)::

    python benchmarks/offchip.py               # zoo + ../shared/models/onnx, writes
                                               # benchmarks/RESULTS-offchip.md and .json
    python benchmarks/offchip.py DIR_OR_MODEL ... --sizes 32KiB,64KiB --evaluations 500
    python benchmarks/offchip.py --render benchmarks/results-offchip.json   # markdown only

For every network (``serenity.zoo.BENCHMARKS``, then the ``.onnx`` files) and
on-chip size: the Belady traffic (``serenity.memory.offchip``, whole tensors)
of file order, the best heuristic, the memory-optimal order (``auto`` with
``--schedule-limit`` seconds: RandWire needs about 150 s to be proven) and the
traffic search (``serenity.schedule.traffic``, ``--evaluations`` orders per
size, seeded, so reproducible unless ``--search-limit`` stops it first); the
reduction against file order; the smallest size with zero traffic (the
peak); LRU's traffic of file and memory-optimal order; and, on seeded random
small graphs, Belady's and LRU's gap to the least traffic any policy reaches
(``min_traffic``, exact). Traffic bytes are exact; times are wall-clock on a
shared machine (noisy).
"""

from __future__ import annotations

import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from _common import model_paths, parser

import serenity
import serenity.zoo
from serenity.bench import PAPER
from serenity.ir import Problem
from serenity.memory import simulate
from serenity.memory.offchip import (
    format_size,
    min_traffic,
    parse_sizes,
    simulate_traffic,
)
from serenity.offchip import (
    ORDER_NAMES,
    PAPER_REDUCTION,
    compare_offchip,
    orders_to_compare,
    size_json,
)
from serenity.schedule.traffic import topological_orders

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = "32KiB,64KiB,128KiB,256KiB,512KiB,1MiB"
PAPER_SIZES = (32768, 65536, 131072, 262144)


def bench_network(
    name: str,
    source: str,
    problem: Problem,
    sizes: list[int],
    schedule_limit: float,
    evaluations: int,
    search_limit: float | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    orders = orders_to_compare(problem, schedule_limit, progress=True)
    schedule_seconds = time.perf_counter() - started
    started = time.perf_counter()
    comparison = compare_offchip(
        problem, sizes, orders, max_evaluations=evaluations, time_limit=search_limit
    )
    search_seconds = time.perf_counter() - started
    optimal = orders["memory-optimal"]
    lru = {
        format_size(s): {
            name: simulate_traffic(problem, orders[name].op_order, s, "lru").total_bytes
            for name in ("file", "memory-optimal")
        }
        for s in sizes
    }
    return {
        "network": name,
        "source": source,
        "ops": problem.num_ops,
        "tensors": problem.num_tensors,
        "largest_tensor_bytes": max(problem.tensor_sizes, default=0),
        "peaks": {n: r.peak_bytes for n, r in orders.items()},
        "memory_optimal_proven": optimal.optimal,
        "memory_optimal_lower_bound": optimal.lower_bound_bytes,
        "schedule_seconds": schedule_seconds,
        "search_seconds": search_seconds,
        "sizes": [_slim(size_json(problem, s)) for s in comparison.sizes],
        "lru": lru,
    }


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    """A size's JSON without the search's full order, and only its ten most-moved
    tensors (``serenity offchip --json`` gives both in full)."""
    search = entry["traffic_search"]
    if search is not None:
        search.pop("schedule", None)
        search["tensors"] = search["tensors"][:10]
    return entry


def random_problem(rng: random.Random, n_ops: int) -> Problem:
    """A random DAG: 1-2 graph inputs, ops reading 1-3 earlier tensors, sizes 1-64."""
    sizes = [rng.randint(1, 64) for _ in range(rng.randint(1, 2))]
    inputs = list(range(len(sizes)))
    op_inputs, op_outputs = [], []
    for _ in range(n_ops):
        k = min(len(sizes), rng.randint(1, 3))
        op_inputs.append(rng.sample(range(len(sizes)), k))
        op_outputs.append([len(sizes)])
        sizes.append(rng.randint(1, 64))
    return Problem(
        [f"op{i}" for i in range(n_ops)], sizes, op_inputs, op_outputs, inputs, [len(sizes) - 1]
    )


def policy_gaps(samples: int, seed: int = 0) -> dict[str, Any]:
    """Belady's and LRU's traffic against the least any policy reaches (``min_traffic``)
    on seeded random graphs of 5-7 ops, one random order, a size below the peak."""
    rng = random.Random(seed)
    gaps: dict[str, list[float]] = {"belady": [], "lru": []}
    cases = 0
    while cases < samples:
        p = random_problem(rng, rng.randint(5, 7))
        orders = list(topological_orders(p))
        order = orders[rng.randrange(len(orders))]
        peak = simulate(p, order).peak_bytes
        size = rng.randint(peak // 3, peak - 1)
        best = min_traffic(p, order, size)
        if best == 0:
            continue
        cases += 1
        for policy in gaps:
            gaps[policy].append(simulate_traffic(p, order, size, policy).total_bytes / best)
    return {
        "samples": samples,
        "seed": seed,
        **{
            policy: {
                "optimal_fraction": sum(g == 1.0 for g in v) / len(v),
                "mean_ratio": sum(v) / len(v),
                "max_ratio": max(v),
            }
            for policy, v in gaps.items()
        },
    }


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v != math.inf]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _ratio(x: float | str | None) -> float | None:
    return math.inf if x == "inf" else (float(x) if x is not None else None)


def _ceiling(s: dict[str, Any]) -> float:
    """File-order traffic / the lower bound: the most any order could gain."""
    base, bound = s["traffic"]["file"]["traffic_bytes"], s["lower_bound_bytes"]
    return base / bound if bound else (1.0 if base == 0 else math.inf)


def _at_most(x: float) -> str:
    return "> 100x" if 100 < x < math.inf else _x(x)


def _x(x: float | None) -> str:
    return "-" if x is None else ("zero" if x == math.inf else f"{x:.2f}x")


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f}"


def _at(row: dict[str, Any], size: int) -> dict[str, Any]:
    return next(x for x in row["sizes"] if x["onchip_bytes"] == size)


def markdown(data: dict[str, Any], command: str, notes: str) -> str:
    rows = data["rows"]
    sizes = [s["onchip_bytes"] for s in rows[0]["sizes"]] if rows else []
    lines = ["# Off-chip traffic under a small on-chip memory", ""]
    lines += [f"Regenerate with `{command}`.", ""]
    lines += [
        f"Belady policy, whole tensors (`docs/offchip.md`); traffic = bytes written off chip + "
        f"bytes read back, in KiB (exact). Memory-optimal order: `auto` with "
        f"{data['schedule_limit']:g} s; traffic search: {data['evaluations']} evaluations per "
        f"size (seeded local search, or exhaustive / proven where marked). serenity "
        f"{data['serenity_version']}, Python {data['python']}. x = file-order traffic / traffic.",
        "",
    ]
    for size in sizes:
        label = format_size(size)
        paper = PAPER_REDUCTION.get(size)
        lines += [f"## {label} on chip" + (f" (paper: {paper:.2f}x)" if paper else ""), ""]
        lines += [
            "| network | ops streamed | file | best heuristic | memory-optimal | traffic search "
            "| lower bound | heuristic x | memory-optimal x | search x | search proven "
            "| at most x |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            s = _at(r, size)
            t = s["traffic"]
            search = s["traffic_search"]
            proven = "-"
            if search is not None:
                proven = f"yes ({search['method']})" if search["optimal"] else "no"
            red = s["reduction_vs_file"]
            lines.append(
                f"| {r['network']} | {t['file']['streamed_ops']}/{r['ops']} | "
                + " | ".join(_kib(t[n]["traffic_bytes"]) for n in ORDER_NAMES if n in t)
                + f" | {_kib(s['lower_bound_bytes'])} | {_x(_ratio(red['best-heuristic']))} | "
                f"{_x(_ratio(red['memory-optimal']))} | {_x(_ratio(red.get('traffic-search')))} "
                f"| {proven} | {_at_most(_ceiling(s))} |"
            )
        lines.append("")
    lines += ["## Geometric means of the reduction against file order", ""]
    lines += [
        "| on-chip | memory-optimal, paper's networks | memory-optimal, all | traffic search, "
        "paper's networks | traffic search, all | at most (file / bound), all | SERENITY paper |",
        "|---|---|---|---|---|---|---|",
    ]
    paper_nets = set(PAPER["networks"])
    for size in sizes:

        def gm(name: str, only_paper: bool, size: int = size) -> str:
            vals = []
            for r in rows:
                if only_paper and r["network"] not in paper_nets:
                    continue
                s = _at(r, size)
                vals.append(_ratio(s["reduction_vs_file"].get(name)))
            return _x(_geomean([v for v in vals if v is not None]))

        paper = PAPER_REDUCTION.get(size)
        lines.append(
            f"| {format_size(size)} | {gm('memory-optimal', True)} | {gm('memory-optimal', False)} "
            f"| {gm('traffic-search', True)} | {gm('traffic-search', False)} | "
            f"{_x(_geomean([_ceiling(_at(r, size)) for r in rows]))} | "
            f"{'-' if paper is None else f'{paper:.2f}x'} |"
        )
    lines += ["", "## Where traffic reaches zero", ""]
    lines += [
        "Traffic is zero exactly when the order's peak fits, so the smallest on-chip size "
        "with zero traffic is the order's peak; for the memory-optimal order it is the least "
        "any order needs (when proven).",
        "",
        "| network | largest tensor KiB | file order KiB | memory-optimal KiB | proven | smaller by |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, o = r["peaks"]["file"], r["peaks"]["memory-optimal"]
        proven = (
            "yes"
            if r["memory_optimal_proven"]
            else f"no (>= {_kib(r['memory_optimal_lower_bound'])})"
        )
        lines.append(
            f"| {r['network']} | {_kib(r['largest_tensor_bytes'])} | {_kib(f)} | {_kib(o)} | "
            f"{proven} | {f / o:.2f}x |"
        )
    lines += ["", "## LRU instead of Belady (file order and memory-optimal order)", ""]
    lines += [
        "| network | " + " | ".join(format_size(s) for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for r in rows:
        cells = []
        for s in sizes:
            v = r["lru"][format_size(s)]
            ratio = v["file"] / v["memory-optimal"] if v["memory-optimal"] else math.inf
            cells.append(f"{_kib(v['file'])} / {_kib(v['memory-optimal'])} ({_x(ratio)})")
        lines.append(f"| {r['network']} | " + " | ".join(cells) + " |")
    g = data["policy_gaps"]
    lines += ["", "## Belady and LRU against the best eviction choices", ""]
    lines += [
        f"On {g['samples']} seeded random graphs of 5-7 ops (one random order each, an on-chip "
        "size between a third of the peak and the peak), traffic divided by the least traffic "
        "any policy reaches on that order (`min_traffic`: every eviction choice, exact):",
        "",
        "| policy | optimal on | mean ratio | worst ratio |",
        "|---|---|---|---|",
    ]
    for policy in ("belady", "lru"):
        q = g[policy]
        lines.append(
            f"| {policy} | {q['optimal_fraction']:.0%} | {q['mean_ratio']:.3f} | "
            f"{q['max_ratio']:.3f} |"
        )
    lines += ["", "## Time", ""]
    lines += [
        "| network | ops | memory-optimal schedule s | traffic search s (all sizes) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['ops']} | {r['schedule_seconds']:.1f} | "
            f"{r['search_seconds']:.1f} |"
        )
    if notes:
        lines += ["", notes.rstrip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"on-chip sizes (default {DEFAULT_SIZES})"
    )
    ap.add_argument("--schedule-limit", type=float, default=180.0, help="seconds for auto")
    ap.add_argument("--evaluations", type=int, default=3000, help="traffic-search budget per size")
    ap.add_argument(
        "--search-limit", type=float, default=60.0, help="traffic-search seconds per size"
    )
    ap.add_argument("--gap-samples", type=int, default=300)
    ap.add_argument("--no-zoo", action="store_true", help="only the .onnx files")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-offchip.md")
    ap.add_argument("--json", type=Path, default=HERE / "results-offchip.json")
    ap.add_argument("--notes", type=Path, default=HERE / "RESULTS-offchip-notes.md")
    ap.add_argument("--render", type=Path, help="re-render the markdown from this JSON only")
    args = ap.parse_args()
    notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
    if args.render:
        data = json.loads(args.render.read_text())
        args.out.write_text(markdown(data, data["command"], notes))
        return
    sizes = parse_sizes([args.sizes])
    sources: list[tuple[str, Any]] = []
    if not args.no_zoo:
        sources += list(serenity.zoo.BENCHMARKS.items())
    sources += [(p.stem, p) for p in model_paths(args.paths)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, src) in enumerate(sources, 1):
            print(f"[{k}/{len(sources)}] {name} ...", file=sys.stderr, flush=True)
            if isinstance(src, Path):
                path, label = src, src.name
            else:
                path, label = Path(tmp) / f"{name}.onnx", "serenity.zoo"
                onnx.save(src(), str(path))
            problem = serenity.load_model(path).problem
            row = bench_network(
                name,
                label,
                problem,
                sizes,
                args.schedule_limit,
                args.evaluations,
                args.search_limit,
            )
            print(
                f"    schedule {row['schedule_seconds']:.1f} s, search {row['search_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    command = "python benchmarks/offchip.py" + "".join(f" {a}" for a in sys.argv[1:])
    data = {
        "command": command,
        "serenity_version": serenity.__version__,
        "python": platform.python_version(),
        "policy": "belady",
        "schedule_limit": args.schedule_limit,
        "evaluations": args.evaluations,
        "search_limit": args.search_limit,
        "paper_reduction": {format_size(k): v for k, v in PAPER_REDUCTION.items()},
        "policy_gaps": policy_gaps(args.gap_samples),
        "rows": rows,
    }
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    args.out.write_text(markdown(data, command, notes))
    print(f"wrote {args.out} and {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
