"""Benchmark: the exact engine's compiled search core against the pure-Python search.

Usage (from the repository root)::

    python benchmarks/core.py                  # the defaults below (about 10 min)
    python benchmarks/core.py --limit 10 --no-models

Part 1, random wiring: the zoo's RandWire CIFAR-10 (WS N=32, seed 0), the
CIFAR-10 layout with WS stages of N=32 (seeds 1, 2) and N=48 (seed 0). Each
(graph, engine) runs in a fresh process twice under ``--limit`` seconds:

* *search only* (``exact(..., local_search=False, decision=False)``): the best-first search
  alone, so states/s is the search's rate (CPU seconds, including the
  engine's setup: fusion, heuristics, cut ops). Bytes/state: the process's
  max RSS growth over the run divided by the states held at the end (closed
  set + heap) of the largest segment search; for the core also its own count
  of bytes (table and heap capacity).
* *default* (``exact`` as the CLI calls it: local search, decision search,
  memory cap 512 MiB):
  peak, proven bound, proof, CPU seconds.

The engine is chosen by the ``SERENITY_PURE_PYTHON`` environment variable.
The machine is shared (2 cores, other developers' jobs): CPU seconds are the
figure to compare; the limits are wall clock.

Part 2, the timm graphs: ``serenity schedule --method exact`` (the console script beside this Python) on every
``*.onnx`` of ``--models`` with each engine; peaks, bounds and ``optimal`` must
agree (the script exits non-zero otherwise).

Writes ``benchmarks/RESULTS-core.md`` and ``benchmarks/results-core.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from serenity.io.onnx_import import load_proto
from serenity.ir import Problem
from serenity.zoo import RANDWIRE_CIFAR10
from serenity.zoo.randwire import build_randwire

HERE = Path(__file__).resolve().parent
ENGINES = ("python", "core")


def graphs() -> list[tuple[str, Problem]]:
    """(name, problem) of the random-wired graphs measured."""
    out = []
    for label, nodes, seed in (
        ("RandWire CIFAR-10", 32, 0),
        ("WS N=32 seed 1", 32, 1),
        ("WS N=32 seed 2", 32, 2),
        ("WS N=48 seed 0", 48, 0),
    ):
        config = replace(RANDWIRE_CIFAR10, nodes=nodes, generator="ws")
        out.append((label, load_proto(build_randwire(config, seed), "rw.onnx").problem))
    return out


def _hwm() -> int:
    """Bytes of this process's peak RSS (VmHWM: per address space, so reset by exec,
    unlike ru_maxrss, which a spawned child inherits from its parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(problem: Problem, engine: str, limit: float, search_only: bool, queue: Any) -> None:
    if engine == "python":
        os.environ["SERENITY_PURE_PYTHON"] = "1"
    from serenity.schedule import ScheduleOptions
    from serenity.schedule import exact as exact_module

    searches: list[Any] = []

    def states(s: Any) -> int:
        held = s._core.states if s._core is not None else len(s.came) + len(s.heap)
        return max(held, getattr(s, "held", (0, None))[0])

    def counted(s: Any) -> int | None:
        held = getattr(s, "held", (0, None))
        return held[1] if held[0] else s.memory_bytes

    class Recorded(exact_module._Search):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.held = (0, None)  # states and counted bytes when the memory cap cleared it
            searches.append(self)

        def clear(self) -> None:
            self.held = (states(self), self.memory_bytes)
            super().clear()

    exact_module._Search = Recorded
    if search_only:  # the search alone: no minor step for the width bound at its stop
        exact_module.MINOR_SECONDS = 0.0
    before = _hwm()
    cpu = time.process_time()
    r = exact_module.exact(
        problem,
        ScheduleOptions(time_limit=limit),
        local_search=not search_only,
        decision=not search_only,
    )
    cpu = time.process_time() - cpu
    rss = _hwm() - before

    big = max(searches, key=states, default=None)
    queue.put(
        {
            "peak": r.peak_bytes,
            "bound": r.lower_bound_bytes,
            "optimal": r.optimal,
            "cpu_s": cpu,
            "expanded": r.stats.get("expanded"),
            "memory_capped": bool(r.stats.get("memory_capped")),
            "states": 0 if big is None else states(big),
            "rss_growth": rss,
            "core_bytes": None if big is None else counted(big),
            "engine_used": "none" if big is None else "core" if big._core else "python",
        }
    )


def run_once(problem: Problem, engine: str, limit: float, search_only: bool) -> dict[str, Any]:
    """One engine run in a fresh process (its own max RSS)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(problem, engine, limit, search_only, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def timm(models: Path) -> list[dict[str, Any]]:
    """``serenity schedule --method exact`` on each model with each engine."""
    rows = []
    for model in sorted(models.glob("*.onnx")):
        row: dict[str, Any] = {"model": model.stem}
        for engine in ENGINES:
            env = dict(os.environ, SERENITY_PURE_PYTHON="1" if engine == "python" else "0")
            with tempfile.TemporaryDirectory() as tmp:
                report = Path(tmp) / "r.json"
                cli = str(Path(sys.executable).parent / "serenity")
                cmd = [cli, "schedule", str(model), "--method"]
                cmd += ["exact", "-o", str(Path(tmp) / "o.onnx"), "--json", str(report)]
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                data = json.loads(report.read_text())
            row[engine] = {
                k: data[k] for k in ("peak_bytes", "lower_bound_bytes", "optimal", "seconds")
            }
            row[engine]["expanded"] = data["stats"].get("expanded")
        row["same"] = all(
            row["python"][k] == row["core"][k]
            for k in ("peak_bytes", "lower_bound_bytes", "optimal", "expanded")
        )
        rows.append(row)
    return rows


def _rate(r: dict[str, Any]) -> str:
    return f"{r['expanded'] / r['cpu_s']:,.0f}" if r["cpu_s"] > 0 else "-"


def _per_state(x: float | None, states: int) -> str:
    return "-" if x is None or not states else f"{x / states:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    limit = results["limit"]
    lines = [
        "# The compiled search core (C++) against the pure-Python search",
        "",
        "Regenerate with `python benchmarks/core.py` (see its docstring). Machine: "
        f"{results['machine']}; shared with other jobs, so CPU seconds are the figure to "
        f"compare. Limit {limit:g} s wall per run, one fresh process per run.",
        "",
        "## Search only (`local_search=False, decision=False`): rate and memory per state",
        "",
        "| graph | engine | peak | bound | proven | CPU s | expanded | states/s | "
        "states held | RSS growth B/state | counted B/state | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_engine in results["search_only"].items():
        py = by_engine["python"]
        for engine in ENGINES:
            r = by_engine[engine]
            speed = "-"
            if engine == "core" and py["cpu_s"] > 0 and r["cpu_s"] > 0 and py["expanded"]:
                speed = f"{(r['expanded'] / r['cpu_s']) / (py['expanded'] / py['cpu_s']):.1f}x"
            lines.append(
                f"| {name} | {engine} | {r['peak']:,} | {r['bound']:,} | "
                f"{'yes' if r['optimal'] else 'no'} | {r['cpu_s']:.2f} | {r['expanded']:,} | "
                f"{_rate(r)} | {r['states']:,} | {_per_state(r['rss_growth'], r['states'])} | "
                f"{_per_state(r['core_bytes'], r['states'])} | {speed} |"
            )
    lines += [
        "",
        "States/s: states expanded per CPU second of the whole `exact` call. "
        "RSS growth: max RSS at the end minus before the call, over the states the largest "
        "segment search holds (closed set + heap). Counted: the core's own bytes "
        "(closed table and heap capacity, what `search_memory` is checked against).",
        "",
        "Caveats: states/s includes the engine's setup (fusion, heuristics, the width "
        "bound without its minor step, and the core's tables), so short proofs "
        "understate the core's rate; the search-only runs leave the minor step out, the "
        "default runs include it (at the hand-over to the decision search). The core "
        "checks the memory cap every 1,024 expansions against its capacity bytes plus "
        "what a rehash or a vector doubling within the next 1,024 expansions could "
        "allocate, so it stops before passing the cap; the Python search checks an "
        "estimate (about 300 "
        "bytes per state), so capped runs of the two engines stop at different states and "
        "their bounds differ. Uncapped runs expand the same states in the same order "
        "(`tests/test_exact_core.py`).",
        "",
        "## Default `exact` (local and decision searches on, memory cap 512 MiB)",
        "",
        "| graph | engine | peak | bound | proven | CPU s | expanded | memory capped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, by_engine in results["default"].items():
        for engine in ENGINES:
            r = by_engine[engine]
            lines.append(
                f"| {name} | {engine} | {r['peak']:,} | {r['bound']:,} | "
                f"{'yes' if r['optimal'] else 'no'} | {r['cpu_s']:.2f} | {r['expanded']:,} | "
                f"{'yes' if r['memory_capped'] else 'no'} |"
            )
    if results.get("timm"):
        lines += [
            "",
            "## timm graphs: `serenity schedule --method exact`, both engines",
            "",
            "| model | peak | bound | optimal | expanded | seconds python | seconds core | same |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["timm"]:
            c, p = row["core"], row["python"]
            lines.append(
                f"| {row['model']} | {c['peak_bytes']:,} | {c['lower_bound_bytes']:,} | "
                f"{c['optimal']} | {c['expanded']:,} | {p['seconds']:.3f} | "
                f"{c['seconds']:.3f} | {'yes' if row['same'] else 'NO'} |"
            )
        lines += [
            "",
            "Seconds: the report's wall time of the scheduling (shared machine). "
            "`same`: peak, bound, `optimal` and states expanded are equal.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=30.0, help="seconds per run (wall)")
    parser.add_argument("--models", type=Path, default=Path("/work/shared/models/onnx"))
    parser.add_argument("--no-models", action="store_true", help="skip the timm check")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "limit": args.limit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "search_only": {},
        "default": {},
    }
    for name, problem in graphs():
        for mode, search_only in (("search_only", True), ("default", False)):
            results[mode][name] = {}
            for engine in ENGINES:
                r = run_once(problem, engine, args.limit, search_only)
                results[mode][name][engine] = r
                print(f"{name:18s} {mode:11s} {engine:6s} {r}", file=sys.stderr, flush=True)
    results["timm"] = []
    (HERE / "RESULTS-core.md").write_text(markdown(results))  # kept if the timm part fails
    if not args.no_models:
        results["timm"] = timm(args.models)
    (HERE / "results-core.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "RESULTS-core.md").write_text(markdown(results))
    return 0 if all(row["same"] for row in results["timm"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
