"""Benchmark: the cut bound alone on random-wired graphs, by max-flows (no clock).

Usage (from the repository root)::

    python benchmarks/cut_bound.py                    # the defaults below
    python benchmarks/cut_bound.py --graphs er:64:1 ws:256:0 --budget 600000

The exact engine's proofs on the largest RandWire graphs wait for the cut bound's
last level (:mod:`serenity.memory.cuts`; ``RESULTS-randwire.md``), and the engine
lifts it against the clock, so a run's levels depend on the machine and its load.
This benchmark lifts the bound of each graph alone, as the engine does (on the
fused graph, over the delay blocks' orders, guided by the best heuristic order, in
pieces of the engine's ``_CUT_PIECE`` seconds' worth of max-flows), but up to a
count of max-flows (``--budget``) instead of a time: the levels and the max-flows
at which each is reached are the same on any machine, and a change to the cut
bound shows here as levels gained or lost at the same count. Wall seconds are
reported beside them for scale (shared machine: they vary).

Graphs (``--graphs``, ``generator:N:seed`` of the CIFAR-10 layout, as in
``benchmarks/randwire.py``): ER N=56 and N=64, seeds 0-2, and WS N=256 seed 0,
the graphs whose proofs the cut bound decides. The optimum, where a run of
``benchmarks/randwire.py`` proved it, is read from ``results-randwire.json``, and
the bound stops there (the engine stops at its best order's peak).
Each graph runs in its own process, ``--jobs`` at a time (2). Writes
``benchmarks/RESULTS-cutbound.md`` (``--out``) and ``results-cutbound.json`` beside it.

The levels are chaotic in the choices of ops (``docs/randwire.md``, "Measured and
not kept, twenty-first session"): compare a change over all the graphs, not one.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from randwire import Spec, _problem, grid_network  # benchmarks/ is the script's directory

import serenity
from serenity.memory.cuts import CutBound
from serenity.schedule import fuse
from serenity.schedule.exact import _CUT_PIECE, block_precedences
from serenity.schedule.heuristics import best_heuristic_order

HERE = Path(__file__).resolve().parent
GRAPHS = ["er:56:0", "er:56:1", "er:56:2", "er:64:0", "er:64:1", "er:64:2", "ws:256:0"]
#: The unit the levels are counted in on these graphs: a RandWire node's output.
UNIT = 77_824


def _network(graph: str) -> tuple[str, Spec]:
    """The name and spec of ``graph`` (``generator:N:seed``)."""
    gen, n, seed = graph.split(":")
    return grid_network(gen, int(n), int(seed))


def run(graph: str, budget: int, upper: int | None = None) -> dict[str, Any]:
    """The cut bound of ``graph`` lifted up to ``budget`` max-flows after its single cuts,
    and no higher than ``upper`` (the optimum, where known: the engine stops at its
    best order's peak)."""
    name, spec = _network(graph)
    problem = fuse(_problem(*spec)).problem
    start = time.perf_counter()
    bound = CutBound(problem, before=block_precedences(problem))
    assert bound.cuts is not None
    bound.guide(best_heuristic_order(problem)[0])
    single, first = bound.bound, bound.cuts.solves
    piece = max(1, int(_CUT_PIECE * bound.cuts.rate) // bound.cuts.arcs)
    levels = []  # (level, max-flows, seconds) at each rise
    while bound.cuts.solves - first < budget and not bound.spent:
        old = bound.bound
        if upper is not None and old >= upper:
            break
        bound.lift(upper, max_solves=min(piece, budget - (bound.cuts.solves - first)))
        if bound.bound > old:
            levels.append((bound.bound, bound.cuts.solves - first, time.perf_counter() - start))
    return {
        "graph": graph,
        "network": name,
        "fused_ops": problem.num_ops,
        "single": single,
        "levels": levels,
        "bound": bound.bound,
        "solves": bound.cuts.solves - first,
        "seconds": time.perf_counter() - start,
        "chosen": [len(line.chosen) for line in bound.lines],
    }


def _optima() -> dict[str, int]:
    """Per network, the optimum a run of ``benchmarks/randwire.py`` proved."""
    path = HERE / "results-randwire.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["exact"]
    return {r["network"]: r["peak"] for r in rows if r["optimal"]}


def markdown(rows: list[dict[str, Any]], budget: int, optima: dict[str, int]) -> str:
    out = [
        "# Cut bound benchmark: levels by max-flows",
        "",
        "Regenerate with `python benchmarks/cut_bound.py` (see its docstring). serenity "
        f"{serenity.__version__}, Python {platform.python_version()}, {platform.machine()}. "
        f"Each graph's cut bound alone, lifted up to {budget:,} max-flows after its single "
        f"cuts; levels in units of {UNIT:,} bytes, each with the max-flows it took (the same "
        "on any machine) and the wall seconds (not: a shared machine).",
        "",
        "| network | fused ops | single cuts | levels: units @ max-flows (s) | final | optimum "
        "| max-flows | s | chosen (highest / refined / from the end) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rises = ", ".join(f"{lv / UNIT:.0f} @ {s:,} ({t:.1f})" for lv, s, t in r["levels"][-4:])
        optimum = optima.get(r["network"])
        best = f"{optimum / UNIT:.0f}" if optimum else "-"
        out.append(
            f"| {r['network']} | {r['fused_ops']:,} | {r['single'] / UNIT:.0f} | {rises} "
            f"| {r['bound'] / UNIT:.0f} | {best} | {r['solves']:,} | {r['seconds']:.1f} "
            f"| {' / '.join(map(str, r['chosen']))} |"
        )
    proven = [r for r in rows if optima.get(r["network"]) == r["bound"]]
    out += [
        "",
        f"{len(proven)} of {len(rows)} graphs reach their proven optimum within the budget "
        "(and stop there); "
        f"sum of the final levels {sum(r['bound'] for r in rows) / UNIT:.0f} units (the figure "
        "to compare between two versions of the cut bound). Only the last four rises are shown.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--graphs", nargs="+", default=GRAPHS, help="generator:N:seed each")
    ap.add_argument("--budget", type=int, default=1_200_000, help="max-flows per graph")
    ap.add_argument("--jobs", type=int, default=2, help="graphs at a time (a process each)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-cutbound.md")
    args = ap.parse_args(argv)
    for graph in args.graphs:
        parts = graph.split(":")
        if len(parts) != 3 or parts[0] not in ("ws", "er") or not all(map(str.isdigit, parts[1:])):
            ap.error(f"graph {graph!r} is not generator:N:seed (ws or er)")
    optima = _optima()
    uppers = [optima.get(_network(graph)[0]) for graph in args.graphs]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, args.graphs, [args.budget] * len(args.graphs), uppers))
    for r in rows:
        print(f"{r['network']}: {r['bound'] / UNIT:.0f} units in {r['solves']:,} max-flows")
    args.out.write_text(markdown(rows, args.budget, optima))
    args.out.with_name("results-cutbound.json").write_text(
        json.dumps({"budget": args.budget, "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
