"""Benchmark: many NAS candidates at once (``serenity batch``, local and Ray).

Usage (from the repository root)::

    python benchmarks/batch.py                 # 1,000 candidates, writes RESULTS-batch.md
    python benchmarks/batch.py --count 100 --out /tmp/r.md   # a quick look

Generates ``--count`` candidates with the zoo's builders, half RandWire
(``build_randwire``: 2 random stages of 8-16 nodes, 8/12/16 channels, WS
seed per candidate) and half DARTS-like (``build_darts_imagenet`` at 32x32,
3-5 cells, 8/12/16 channels, a random genotype of DARTS primitives per
candidate), all from one seeded generator, and writes them as ``.onnx``
files (cached in ``--dir``; the same files every run). Then schedules all of
them (``auto``, ``--time-limit`` per model) in five ways:

- bare: ``load_model`` + ``schedule_model`` in this process, one after the
  other (no isolation, no results file): the floor;
- ``serenity.batch(paths, jobs=1)``, ``jobs=2`` (local worker processes,
  JSON-lines journal);
- the same candidates as in-memory ``onnx.ModelProto`` objects, ``jobs=2``
  (the NAS-loop use: nothing read from disk);
- ``engine="ray"`` on a local Ray cluster with 2 CPUs (when Ray is installed),
  its start-up included.

Reports models/s, the overhead per model against the bare loop, CPU time
(this process plus what the workers report per model), and checks that
every configuration gives the same result per model as the first batch run
(``serenity.batching.same_result``) on every model proven optimal: a search
stopped by its time limit keeps the best order and bound found by then,
which depends on the machine's load, so those are counted, not compared. The machine is shared:
the load average is recorded before and after every configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import serenity
from serenity.batching import read_results, same_result
from serenity.zoo import Genotype, RandWireConfig, build_darts_imagenet, build_randwire

HERE = Path(__file__).resolve().parent
PRIMITIVES = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
)


def random_genotype(rng: np.random.Generator) -> Genotype:
    """A DARTS genotype: per cell, 4 nodes of 2 (primitive, earlier state) ops."""

    def cell() -> tuple[tuple[str, int], ...]:
        return tuple(
            (str(rng.choice(PRIMITIVES)), int(rng.integers(0, node + 2)))
            for node in range(4)
            for _ in range(2)
        )

    return Genotype(cell(), (2, 3, 4, 5), cell(), (2, 3, 4, 5))


def candidates(count: int, seed: int = 0) -> Iterable[tuple[str, Callable[[], onnx.ModelProto]]]:
    """``(file name, builder)`` of each candidate; every parameter drawn here, in order."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        channels = int(rng.choice([8, 12, 16]))
        if i % 2 == 0:
            config = RandWireConfig(
                channels=channels,
                nodes=int(rng.integers(8, 17)),
                stage_strides=(1, 2),
                head_channels=64,
            )
            yield f"randwire_{i:04d}.onnx", lambda c=config, s=i: build_randwire(c, seed=s)
        else:
            layers, genotype = int(rng.integers(3, 6)), random_genotype(rng)
            yield (
                f"darts_{i:04d}.onnx",
                lambda c=channels, n=layers, g=genotype, s=i: build_darts_imagenet(
                    c, n, resolution=32, classes=10, seed=s, genotype=g, name="darts_candidate"
                ),
            )


def _build(count: int, k: int, directory: Path) -> None:
    name, build = list(candidates(count))[k]
    path = directory / name
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        onnx.save(build(), str(tmp))
        os.replace(tmp, path)


def generate(directory: Path, count: int, jobs: int) -> list[Path]:
    """Write the candidates that are not in ``directory`` yet (``jobs`` processes); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in candidates(count)]
    missing = [k for k, name in enumerate(names) if not (directory / name).exists()]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(partial(_build, count, directory=directory), missing))
    return [directory / name for name in names]


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def bare(paths: list[Path], time_limit: float) -> dict[str, Any]:
    """Load and schedule each model in this process: the floor a batch is compared with."""
    started, cpu, load_before = time.perf_counter(), _cpu(), _load()
    per_model, peaks = [], {}
    for p in paths:
        t = time.perf_counter()
        result = serenity.schedule_model(serenity.load_model(p), time_limit=time_limit)
        per_model.append(time.perf_counter() - t)
        peaks[str(p)] = (result.peak_bytes, result.optimal)
    return {
        "config": "bare loop (1 process, no isolation)",
        "seconds": time.perf_counter() - started,
        "cpu": _cpu() - cpu,
        "load": (load_before, _load()),
        "median_model_seconds": statistics.median(per_model),
        "peaks": peaks,
        "proven": sum(optimal for _, optimal in peaks.values()),
    }


def run_batch(label: str, inputs: list[Any], out: Path, **kw: Any) -> dict[str, Any]:
    started, cpu, load_before = time.perf_counter(), _cpu(), _load()
    rows = list(serenity.batch(inputs, out=out, **kw))
    seconds = time.perf_counter() - started
    assert len(rows) == len(inputs) == len(read_results(out)), label
    dispatch = [
        r["timings"]["wall"] - r["timings"]["worker"] for r in rows if "worker" in r["timings"]
    ]
    return {
        "config": label,
        "seconds": seconds,
        "cpu": _cpu() - cpu + sum(r["timings"].get("cpu", 0.0) for r in rows),
        "load": (load_before, _load()),
        "rows": rows,
        "statuses": {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "timeout")},
        "median_dispatch": statistics.median(dispatch) if dispatch else float("nan"),
        "median_worker": statistics.median(r["timings"]["worker"] for r in rows),
    }


def markdown(runs: list[dict[str, Any]], n: int, meta: dict[str, Any], notes: str) -> str:
    floor = runs[0]
    lines = [
        "# Batch scheduling: NAS candidates per second",
        "",
        f"Regenerate: `{meta['command']}` ({meta['python']}, serenity {serenity.__version__}, "
        f"ray {meta['ray']}, {meta['cpus']} CPUs, {meta['date']}).",
        "",
        f"{n:,} candidates ({meta['randwire']} RandWire, {meta['darts']} DARTS-like; "
        f"{meta['ops_min']}-{meta['ops_max']} ops, median {meta['ops_median']}; "
        f"{meta['bytes_median'] / 1024:.0f} KiB median file), method `auto`, "
        f"--time-limit {meta['time_limit']:g} s per model. Times are wall-clock of one run on a "
        "shared 2-core machine (other developers' jobs running: see the load averages, "
        "1/5/15 min, before and after each run); CPU is this process's plus the CPU time "
        "each worker reports for its models (worker start-up and Ray's raylet and GCS are "
        "not counted).",
        "",
        "| configuration | models/s | wall s | overhead / model vs bare (ms) | CPU s | median dispatch (ms) | statuses | proven optimal | same results | load before -> after |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in runs:
        over = (r["seconds"] - floor["seconds"]) / n * 1000
        same = r.get("same", "-")
        statuses = ", ".join(f"{v} {k}" for k, v in r.get("statuses", {}).items() if v) or "-"
        dispatch = f"{r['median_dispatch'] * 1000:.1f}" if "median_dispatch" in r else "-"
        lines.append(
            f"| {r['config']} | {n / r['seconds']:.2f} | {r['seconds']:.1f} | "
            f"{'-' if r is floor else f'{over:+.1f}'} | {r['cpu']:.1f} | {dispatch} | "
            f"{statuses} | {r['proven']} | {same} | {r['load'][0]} -> {r['load'][1]} |"
        )
    lines += [
        "",
        f"Start-up: the first batch of a process took {floor['startup']:.1f} s for one model "
        "(the fork server starts and imports serenity once; every later pool forks from it), "
        "not counted in the local rows; the Ray row includes its cluster's start.",
        "",
        f"Bare loop: median {floor['median_model_seconds'] * 1000:.1f} ms per model "
        "(load + shape inference + schedule). Dispatch = a result's wall time in the "
        "parent minus the worker's own time (pickling, pipe or object store, queueing "
        "behind the parent).",
        "",
        "Same results: `--jobs 1` against the bare loop (the peak of every model proven "
        "optimal in both), every other row against `--jobs 1` (the whole result line but "
        "timings, `seconds`, `stats` and `index`, and for in-memory inputs the name and "
        "hash, on every model proven optimal in both). A search stopped by its time limit "
        "keeps the best order and bound found by then, which depends on the machine's load, "
        "so those models are counted (proven column), not compared.",
        "",
        notes.strip(),
        "",
    ]
    return "\n".join(lines)


NOTES = """
## Reading the numbers

- **Overhead per model** is (batch wall - bare wall) / models: forking the pool's
  workers from the fork server, hashing each file in the parent, pickling each job and
  result over a pipe, and one flushed JSON line per model. A negative value for 2 jobs
  is what the second core gives back.
- **2 jobs on 2 shared cores** cannot reach 2x: the parent, the other developers'
  processes and the workers share the same two cores (see the load averages).
- **CPU** differs between rows mostly through the models whose search stops at the
  1 s limit: a search stopped by wall-clock gets less CPU when workers compete for the
  cores, so fewer models are proven with 2 jobs (proven column) and less CPU is spent.
- **Ray local** pays the cluster start (GCS, raylet, dashboard agent: several seconds
  on this machine, counted in its wall time) and a first import of serenity in each
  Ray worker; per task, a round trip through the object store (the file's bytes in,
  the result dict out).

## Past one machine

`serenity batch --engine ray --address HOST:6379` (or `ray://HOST:10001`) runs the
same tasks on a Ray cluster; every node needs serenity installed. The driver keeps
one task in flight per cluster CPU (or `--jobs`), so the hard `--timeout` is measured
from submission, which is close to the start. What limits it:

- **Serialisation and the driver.** Every model passes through the driver twice: it
  hashes the file (for resuming) and, up to 4 MiB, sends the bytes through the object
  store; every result (the full schedule, a list of node names: a 6 KB line here,
  11 KB at most) comes back to the driver, which writes one JSON line. The driver is
  one Python thread, so its CPU per model (hashing, unpickling, the JSON line: about
  0.4 ms for these candidates, measured apart; plus Ray's own per-task bookkeeping)
  caps the cluster's rate at roughly 1 / that cost, whatever the node count: with
  candidates of ~90 ms each, about a hundred CPUs before the driver saturates. Larger
  sweeps would shard the inputs over several drivers (one results file each).
- **Model size.** Files above 4 MiB, and every file when models are written (`-o`),
  are read by the workers from their path: a file system all nodes share. The object
  store holds in-flight inputs only (one per CPU), so memory is not the limit; the
  workers' own memory is (a large model's shape inference and search state, per CPU).
- **Per-model work dominates for real models.** These candidates take tens of
  milliseconds each; a registry of full-size networks takes seconds to a minute per
  model (`benchmarks/RESULTS.md`), where per-task overhead (milliseconds) is noise and
  throughput scales with the number of CPUs until the driver's limits above.
"""


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=1000, help="candidates (default 1000)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "serenity-batch-bench",
        help="where the candidate files are cached",
    )
    ap.add_argument("--time-limit", type=float, default=1.0, help="search seconds per model")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-batch.md")
    ap.add_argument("--json", type=Path, default=HERE / "results-batch.json")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    args = ap.parse_args()

    t = time.perf_counter()
    paths = generate(args.dir / "candidates", args.count, jobs=2)
    print(
        f"{len(paths)} candidates in {args.dir} ({time.perf_counter() - t:.0f} s)", file=sys.stderr
    )
    sizes = [p.stat().st_size for p in paths]
    ops = []
    protos = []
    for p in paths:
        proto = onnx.load(str(p))
        protos.append(proto)
        ops.append(len(proto.graph.node))

    work = Path(tempfile.mkdtemp(prefix="serenity-batch-bench-"))
    tl = args.time_limit
    runs = [bare(paths, tl)]
    print(f"bare: {runs[-1]['seconds']:.1f} s", file=sys.stderr)
    configs: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("local, --jobs 1", list(paths), {"jobs": 1}),
        ("local, --jobs 2", list(paths), {"jobs": 2}),
    ]
    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = "not installed"
    if not args.no_ray and ray_version != "not installed":
        configs.append(
            (
                "Ray local cluster, 2 CPUs (start-up included)",
                list(paths),
                {"engine": "ray", "jobs": 2},
            )
        )
    configs.append(("local, --jobs 2, in-memory ModelProto (API)", protos, {"jobs": 2}))
    # The first batch of a process starts the fork server (importing serenity once);
    # timed apart so that the rows compare steady-state throughput.
    warm = run_batch("warm-up", [paths[0]], work / "warm.jsonl", time_limit=tl, jobs=1)
    runs[0]["startup"] = warm["seconds"]
    reference: dict[int, dict[str, Any]] = {}
    for k, (label, inputs, kw) in enumerate(configs):
        run = run_batch(label, inputs, work / f"run{k}.jsonl", time_limit=tl, **kw)
        by_index = {r["index"]: r for r in run["rows"]}
        if not reference:
            reference = by_index
            floor = runs[0]["peaks"]
            both = [i for i, p in enumerate(paths) if floor[str(p)][1] and by_index[i]["optimal"]]
            same = all(by_index[i]["peak_bytes"] == floor[str(paths[i])][0] for i in both)
        else:
            # In-memory inputs are named by graph name + hash, not path: compare the rest.
            both = [i for i in reference if reference[i]["optimal"] and by_index[i]["optimal"]]
            same = all(
                same_result(
                    {**by_index[i], "model": "", "sha256": ""},
                    {**reference[i], "model": "", "sha256": ""},
                )
                for i in both
            )
        run["proven"] = sum(bool(r.get("optimal")) for r in by_index.values())
        run["same"] = f"{'yes' if same else 'NO'} ({len(both)} proven in both)"
        runs.append(run)
        print(f"{label}: {run['seconds']:.1f} s {run['statuses']} {run['same']}", file=sys.stderr)
        write(args, paths, ops, sizes, runs, reference, ray_version)  # after each: partial results

    return 0


def write(
    args: argparse.Namespace,
    paths: list[Path],
    ops: list[int],
    sizes: list[int],
    runs: list[dict[str, Any]],
    reference: dict[int, dict[str, Any]],
    ray_version: str,
) -> None:
    """Write the markdown and JSON results of the runs made so far."""
    optimal = sum(bool(r.get("optimal")) for r in reference.values())
    meta = {
        "command": "python benchmarks/batch.py " + shlex.join(sys.argv[1:]),
        "python": f"Python {platform.python_version()}",
        "ray": ray_version,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "randwire": sum("randwire" in p.name for p in paths),
        "darts": sum("darts" in p.name for p in paths),
        "ops_min": min(ops),
        "ops_max": max(ops),
        "ops_median": int(statistics.median(ops)),
        "bytes_median": statistics.median(sizes),
        "time_limit": args.time_limit,
    }
    notes = NOTES + (
        f"\n{optimal} of {len(paths)} schedules proven optimal within the time limit. "
        f"Largest run made: these {len(paths):,} candidates, in each configuration above.\n"
    )
    args.out.write_text(markdown(runs, len(paths), meta, notes))
    slim = [{k: v for k, v in r.items() if k not in ("rows", "peaks")} for r in runs]
    args.json.write_text(json.dumps({"meta": meta, "runs": slim}, indent=2) + "\n")
    print(f"wrote {args.out} and {args.json}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
