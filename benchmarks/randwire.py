"""Benchmark: the exact engine on random-wired networks (RandWire, WS and ER stages).

Usage (from the repository root)::

    python benchmarks/randwire.py                     # the defaults below
    python benchmarks/randwire.py --nodes 16 32 --seeds 0 --limits 5 60 --ilp-nodes 16 \
        --long --stretch --jobs 1

Networks: the zoo's RandWire CIFAR-10 and CIFAR-100 (``serenity.zoo``), then
the CIFAR-10 layout (two random stages) with N nodes per stage from the WS
generator (K=4, P=0.75) and the ER generator (P=0.2), for every N and seed.
Seed 0 of N = 48 and 64 and the ``--long-networks`` (ER N=64 seeds 1 and 2, the
grid's graphs not proven at 60 s) are also run at the ``--long`` limits (300 s), the
graphs of ``--more-memory`` at the longest of them with a ``--search-memory``
of ``--more-memory-gib`` (4 GiB; the default cap is 512 MiB), the graphs of
``--threads-networks`` with ``--threads`` searchers (2) at the largest of ``--limits``
(those of them in ``--more-memory`` also at the longest ``--long`` limit with its cap),
one at a time after the others so that they have every core (with two threads or
more, a second cut bound lifts in a thread of its own and the rounds have one
fewer; with three or more, a round from above runs beside the cut bound's
max-flows), and the stretch graphs (WS, N = 128/256/352: 1,843, 3,680 and 5,052
ops) at the largest of ``--limits`` (those in ``--threads-networks`` also with
``--threads``), and the frontier graphs (ER, N = ``--frontier``: 40 and 44, every
seed) at the largest of ``--limits``. Each (network, time limit) is one run of ``exact`` in
a fresh process, so its max RSS is its own; ``--jobs`` of them run at a time
(2 by default, one per core), each with one searcher (``threads=1``) but the threads runs. Reported: the order's peak, the proven lower bound, the
bounds it started from (trivial per-op and width, :mod:`serenity.memory.bounds`; the
cut bound, :mod:`serenity.memory.cuts`, when the search handed over: "-" otherwise), the
gap ``peak / bound - 1`` (0 when proven), wall and CPU seconds of that
process, states expanded, max RSS (and the process's RSS before the run: imports,
the problem and its fusion), whether the
memory cap was hit, the decision rounds, the cut bound's witnesses followed (and
how many gave a better order); and the
CP-SAT ILP (``--method ilp``) under the same limit for ``--ilp-nodes``, seed 0.
The machine is shared (2 cores, other developers' jobs): time limits are wall
clock, so CPU seconds are the figure to compare; wall can be several times
higher. Writes ``benchmarks/RESULTS-randwire.md`` and ``results-randwire.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import serenity
from serenity.io.onnx_import import load_proto
from serenity.ir import Problem
from serenity.schedule import DEFAULT_SEARCH_MEMORY, ScheduleOptions, fuse
from serenity.schedule.exact import exact
from serenity.schedule.ilp import ilp
from serenity.zoo import RANDWIRE_CIFAR10, RANDWIRE_CIFAR100
from serenity.zoo.randwire import RandWireConfig, build_randwire

HERE = Path(__file__).resolve().parent


def _cut(row: dict[str, Any]) -> str:
    """The cut bound of a row, "-" when the run never computed it (proven early)."""
    return f"{row['cut_bound']:,}" if row.get("cut_bound") else "-"


def _problem(config: RandWireConfig, seed: int, name: str) -> Problem:
    return load_proto(build_randwire(config, seed), f"{name}.onnx").problem


#: A network to build: (config, seed, file name). Built in the child, so that the
#: parent stays small (Linux carries the max RSS of the forked parent across exec).
Spec = tuple[RandWireConfig, int, str]


def _child(spec: Spec, method: str, limit: float, memory: int, threads: int, queue: Any) -> None:
    problem = _problem(*spec)
    fused = fuse(problem).ops_after
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    engine = exact if method == "exact" else ilp
    r = engine(problem, ScheduleOptions(time_limit=limit, search_memory=memory, threads=threads))
    queue.put(
        {
            "peak": r.peak_bytes,
            "bound": r.lower_bound_bytes,
            "width_bound": r.stats.get("width_bound") or 0,
            "trivial_bound": r.stats.get("trivial_bound") or 0,
            "cut_bound": r.stats.get("cut_bound") or 0,  # computed at the hand-over only
            "optimal": r.optimal,
            "gap": r.gap,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "expanded": r.stats.get("expanded"),
            "memory_capped": bool(r.stats.get("memory_capped")),
            "local_beams": r.stats.get("local_beams"),
            "decision_rounds": r.stats.get("decision_rounds") or 0,
            "decision_visited": r.stats.get("decision_visited") or 0,
            "decision_below": r.stats.get("decision_below") or 0,
            "decision_evicted": r.stats.get("decision_evicted") or 0,
            "core": bool(r.stats.get("core")),
            "local_improved": r.stats.get("local_improved"),
            "local_witnesses": r.stats.get("local_witnesses") or 0,
            "local_followed": r.stats.get("local_followed") or 0,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": before,
            "ops": problem.num_ops,
            "fused_ops": fused,
            "search_memory": memory,
            "threads": threads,
        }
    )


def run_once(
    spec: Spec, method: str, limit: float, memory: int = DEFAULT_SEARCH_MEMORY, threads: int = 1
) -> dict[str, Any]:
    """One engine run in a fresh process (its own max RSS)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(spec, method, limit, memory, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return dict(result)


def grid_network(gen: str, n: int, seed: int) -> tuple[str, Spec]:
    """The name and spec of the CIFAR-10 layout with ``n`` nodes a stage from ``gen``
    (``ws`` or ``er``) and ``seed``."""
    config = replace(RANDWIRE_CIFAR10, nodes=n, generator=gen)
    return f"{gen.upper()} N={n} seed {seed}", (config, seed, f"rw_{gen}{n}_{seed}")


def networks(nodes: list[int], seeds: list[int]) -> list[tuple[str, str, int, int, Spec]]:
    """(name, generator, N, seed, spec): the zoo's two, then WS and ER per N and seed."""
    out = [
        ("RandWire CIFAR-10", "ws", 32, 0, (RANDWIRE_CIFAR10, 0, "randwire_cifar10")),
        ("RandWire CIFAR-100", "ws", 32, 0, (RANDWIRE_CIFAR100, 0, "randwire_cifar100")),
    ]
    for gen in ("ws", "er"):
        for n in nodes:
            for seed in seeds:
                name, spec = grid_network(gen, n, seed)
                out.append((name, gen, n, seed, spec))
    return out


def _mb(x: float) -> str:
    return f"{x:,.0f}"


def markdown(
    rows: list[dict[str, Any]], ilp_rows: list[dict[str, Any]], limits: list[float]
) -> str:
    head = (
        "| network | ops | fused | limit s | peak | bound | trivial / width / cut bound | gap | proven "
        "| CPU s | wall s | states | max RSS MB (before) | notes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        notes = []
        memory = r.get("search_memory", DEFAULT_SEARCH_MEMORY)
        if memory != DEFAULT_SEARCH_MEMORY:
            notes.append(f"--search-memory {memory / 2**30:g} GiB")
        if r.get("threads", 1) > 1:
            notes.append(f"--threads {r['threads']}")
        if r["memory_capped"]:
            notes.append("memory cap")
        if r.get("decision_rounds"):
            below = r.get("decision_below") or 0
            notes.append(
                f"decision {r['decision_rounds']} rounds"
                + (f" ({below} from below)" if below else "")
                + f", {r['decision_visited']:,} visited"
                + (
                    f", {r['decision_evicted']:,} dead sets forgotten"
                    if r.get("decision_evicted")
                    else ""
                )
            )
        if r.get("local_witnesses"):
            notes.append(f"{r['local_witnesses']} witnesses ({r['local_followed']} better)")
        lines.append(
            f"| {r['network']} | {r['ops']} | {r['fused_ops']} | {r['limit']:g} | "
            f"{r['peak']:,} | {r['bound']:,} | {r['trivial_bound']:,} / {r['width_bound']:,} / {_cut(r)} | "
            f"{100 * r['gap']:.1f}% | "
            f"{'yes' if r['optimal'] else 'no'} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | "
            f"{(r['expanded'] or 0):,} | {_mb(r['max_rss_mb'])} ({_mb(r['rss_before_mb'])}) | "
            f"{', '.join(notes)} |"
        )
    ilp_head = (
        "| network | limit s | exact peak | exact bound | ILP peak | ILP bound | ILP proven "
        "| ILP CPU s | ILP max RSS MB |\n|---|---:|---:|---:|---:|---:|:---:|---:|---:|\n"
    )
    ilp_lines = [
        f"| {r['network']} | {r['limit']:g} | {r['exact_peak']:,} | {r['exact_bound']:,} | "
        f"{r['peak']:,} | {r['bound']:,} | {'yes' if r['optimal'] else 'no'} | "
        f"{r['cpu_s']:.1f} | {_mb(r['max_rss_mb'])} |"
        for r in ilp_rows
    ]
    summary = _summary(rows, limits)
    return (
        "# RandWire benchmark: the exact engine on random-wired graphs\n\n"
        "Regenerate with `python benchmarks/randwire.py` (see its docstring). "
        f"serenity {serenity.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}. The machine is shared by several developers (2 cores): "
        "time limits are wall clock, **CPU s** is the figure to compare; gaps are "
        "`peak / proven bound - 1`.\n\n"
        + summary
        + "\n## Exact engine\n\n"
        + head
        + "\n".join(lines)
        + "\n\n## CP-SAT ILP under the same limit (seed 0)\n\n"
        + (ilp_head + "\n".join(ilp_lines) if ilp_lines else "(not run)")
        + "\n"
    )


def _summary(rows: list[dict[str, Any]], limits: list[float]) -> str:
    out = ["## Summary\n"]
    for limit in limits:
        sel = [
            r
            for r in rows
            if r["limit"] == limit and r["kind"] == "grid" and r["network"].startswith(("WS", "ER"))
        ]
        if not sel:
            continue
        proven = sum(r["optimal"] for r in sel)
        within = sum(r["gap"] <= 0.01 for r in sel)
        worst = max(r["gap"] for r in sel)
        rss = max(r["max_rss_mb"] for r in sel)
        out.append(
            f"- limit {limit:g} s: {proven}/{len(sel)} WS/ER graphs proven, {within}/{len(sel)} "
            f"within 1% of the proven bound, worst gap {100 * worst:.1f}%, "
            f"max RSS {rss:,.0f} MB."
        )
    kinds = (
        ("long", "longer limit"),
        ("memory", "more memory"),
        ("threads", "threads"),
        ("frontier", "frontier"),
        ("stretch", "stretch"),
    )
    for kind, what in kinds:
        for r in rows:
            if r["kind"] == kind:
                state = "proven" if r["optimal"] else f"gap {100 * r['gap']:.1f}%"
                cap = r.get("search_memory", DEFAULT_SEARCH_MEMORY) / 2**30
                with_cap = (
                    f" with a {cap:g} GiB cap" if cap != DEFAULT_SEARCH_MEMORY / 2**30 else ""
                )
                searchers = r.get("threads", 1)
                with_threads = f" with {searchers} threads" if searchers > 1 else ""
                out.append(
                    f"- {what}: {r['network']} ({r['ops']:,} ops), limit {r['limit']:g} s"
                    f"{with_cap}{with_threads}: {state}, {r['cpu_s']:.1f} CPU s, "
                    f"{r['wall_s']:.1f} s wall, max RSS {r['max_rss_mb']:,.0f} MB."
                )
    for r in rows:
        if r["network"].startswith("RandWire") and r["optimal"]:
            out.append(
                f"- {r['network']} (limit {r['limit']:g} s): proven optimal in "
                f"{r['cpu_s']:.1f} CPU s ({r['wall_s']:.1f} s wall)."
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, nargs="+", default=[16, 32, 48, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--limits", type=float, nargs="+", default=[5.0, 60.0])
    ap.add_argument("--ilp-nodes", type=int, nargs="*", default=[16, 32])
    ap.add_argument(
        "--long",
        type=float,
        nargs="*",
        default=[300.0],
        help="extra limits for seed 0 of --long-nodes",
    )
    ap.add_argument("--long-nodes", type=int, nargs="*", default=[48, 64])
    ap.add_argument(
        "--long-networks",
        nargs="*",
        default=["ER N=64 seed 1", "ER N=64 seed 2"],
        help="networks also run at the --long limits (besides seed 0 of --long-nodes)",
    )
    ap.add_argument(
        "--more-memory",
        nargs="*",
        default=["WS N=48 seed 2", "WS N=64 seed 1", "WS N=64 seed 2", "ER N=48 seed 0"],
        help="networks also run at the longest --long limit with --more-memory-gib",
    )
    ap.add_argument("--more-memory-gib", type=float, default=4.0)
    ap.add_argument(
        "--threads-networks",
        nargs="*",
        default=[
            "WS N=48 seed 1",
            "WS N=48 seed 2",
            "WS N=64 seed 0",
            "WS N=64 seed 1",
            "ER N=32 seed 2",
            "ER N=48 seed 1",
            "ER N=48 seed 2",
            "ER N=64 seed 0",
            "ER N=64 seed 1",
            "ER N=64 seed 2",
            "WS N=256 seed 0",
        ],
        help="networks also run with --threads searchers at the largest of --limits, alone "
        "(after the others), and those of --more-memory at the longest --long limit",
    )
    ap.add_argument("--threads", type=int, default=2, help="searchers of the threads runs")
    ap.add_argument(
        "--stretch",
        type=int,
        nargs="*",
        default=[128, 256, 352],
        help="WS N for the stretch graphs (seed 0, the largest of --limits)",
    )
    ap.add_argument(
        "--frontier",
        type=int,
        nargs="*",
        default=[40, 44],
        help="ER N between the grid's, every --seeds, at the largest of --limits",
    )
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (each in its own process)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-randwire.md")
    args = ap.parse_args(argv)

    # (kind, name, generator, N, seed, spec, limit, search memory); kind: grid, long,
    # memory or stretch; one searcher each (--jobs runs at a time). Then the threads
    # runs, one at a time: the same without the kind.
    plan: list[tuple[str, str, str, int, int, Spec, float, int]] = []
    threaded: list[tuple[str, str, int, int, Spec, float, int]] = []
    memory = DEFAULT_SEARCH_MEMORY
    more = int(args.more_memory_gib * 2**30)
    for name, gen, n, seed, spec in networks(args.nodes, args.seeds):
        for limit in args.limits:
            plan.append(("grid", name, gen, n, seed, spec, limit, memory))
        longer = seed == 0 and n in args.long_nodes or name in args.long_networks
        if longer and not name.startswith("RandWire"):
            for limit in args.long:
                plan.append(("long", name, gen, n, seed, spec, limit, memory))
        if name in args.more_memory and args.long:
            plan.append(("memory", name, gen, n, seed, spec, max(args.long), more))
        if name in args.threads_networks:
            threaded.append((name, gen, n, seed, spec, max(args.limits), memory))
        if name in args.threads_networks and name in args.more_memory and args.long:
            threaded.append((name, gen, n, seed, spec, max(args.long), more))
    for n in args.frontier:
        for seed in args.seeds:
            name, spec = grid_network("er", n, seed)
            plan.append(("frontier", name, "er", n, seed, spec, max(args.limits), memory))
    for n in args.stretch:
        name, spec = grid_network("ws", n, 0)
        limit = max(args.limits)
        plan.append(("stretch", name, "ws", n, 0, spec, limit, memory))
        if name in args.threads_networks:
            threaded.append((name, "ws", n, 0, spec, limit, memory))

    def one(
        item: tuple[str, str, str, int, int, Spec, float, int], threads: int = 1
    ) -> dict[str, Any]:
        kind, name, gen, n, seed, spec, limit, memory = item
        r = run_once(spec, "exact", limit, memory, threads)
        row = {"kind": kind, "network": name, "generator": gen, "nodes": n, "seed": seed}
        row["limit"] = limit
        print(
            f"{name}: limit {limit:g}s peak {r['peak']:,} bound {r['bound']:,} "
            f"gap {100 * r['gap']:.1f}% cpu {r['cpu_s']:.1f}s rss {r['max_rss_mb']:.0f}MB",
            flush=True,
        )
        return row | r

    # Each run is its own process: --jobs of them at a time (CPU seconds stay comparable).
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, plan))
    rows += [one(("threads", *item), args.threads) for item in threaded]  # alone: every core
    limit = max(args.limits)
    ilp_plan = []
    for name, *_, spec in networks(args.ilp_nodes, [0]):
        match = [x for x in rows if (x["network"], x["limit"], x["kind"]) == (name, limit, "grid")]
        if not name.startswith("RandWire") and match:
            ilp_plan.append((name, spec, match[0]))

    def one_ilp(item: tuple[str, Spec, dict[str, Any]]) -> dict[str, Any]:
        name, spec, r = item
        q = run_once(spec, "ilp", limit)
        print(f"{name}: ilp peak {q['peak']:,} bound {q['bound']:,}", flush=True)
        return {"network": name, "limit": limit, "exact_peak": r["peak"]} | {
            "exact_bound": r["bound"],
            **q,
        }

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        ilp_rows = list(pool.map(one_ilp, ilp_plan))
    text = markdown(rows, ilp_rows, args.limits)
    args.out.write_text(text)
    args.out.with_name("results-randwire.json").write_text(
        json.dumps({"exact": rows, "ilp": ilp_rows}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
