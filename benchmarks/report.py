"""Benchmark: what an HTML report costs beyond scheduling, and how large it is.

Usage (from the repository root)::

    python benchmarks/report.py                  # NASNet-A Large, zoo networks, a 5,000-tensor graph
    python benchmarks/report.py MODEL ... --runs 3

For every model, ``serenity report MODEL -o REPORT.html`` runs in a fresh
process (so matplotlib's import is counted) ``--runs`` times; the command
prints the scheduling time and the time it took to write the report after
scheduling (the best heuristic, two arena plans, three figures, the page).
The table gives medians of both (CPU contention from other processes makes
them noisy), the file size, and the number of hover titles and of
rasterised layers. Sources: ``nasnetalarge.onnx`` from
``../shared/models/onnx`` (when present, with and without ``--rewrite``),
the zoo's ``darts_imagenet`` and ``randwire_cifar10`` (scheduling limited to
10 s: RandWire is not proven within it), and a generated graph of 2,200
operators and 5,501 tensors (220 blocks of Split into 16, 8 Relu, Concat) to
check large graphs. Writes ``benchmarks/RESULTS-report.md``.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from _common import DEFAULT_DIR, parser
from onnx import TensorProto, helper

import serenity.zoo

OUT = Path(__file__).resolve().parent / "RESULTS-report.md"
LINE = re.compile(r"scheduling ([\d.]+) s, report ([\d.]+) s more \(([\d.]+) s CPU\)")


def split_blocks(blocks: int = 220, parts: int = 16) -> onnx.ModelProto:
    """A chain of ``blocks`` cells: Split into ``parts`` channel groups, Relu on
    half of them, Concat all back: ``blocks * (parts // 2 + 2)`` operators and
    ``1 + blocks * (parts + parts // 2 + 1)`` activation tensors."""
    c, hw = 2 * parts, 16
    nodes, x = [], "x"
    for b in range(blocks):
        outs = [f"b{b}_s{i}" for i in range(parts)]
        nodes.append(helper.make_node("Split", [x], outs, axis=1, num_outputs=parts))
        cat = []
        for i, t in enumerate(outs):
            if i % 2 == 0:
                nodes.append(helper.make_node("Relu", [t], [f"b{b}_r{i}"]))
                cat.append(f"b{b}_r{i}")
            else:
                cat.append(t)
        x = f"b{b}_cat"
        nodes.append(helper.make_node("Concat", cat, [x], axis=1))
    graph = helper.make_graph(
        nodes,
        "split_blocks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, c, hw, hw])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run(model: Path, extra: list[str], runs: int) -> dict[str, float | int]:
    sched, more, cpu, size, titles, rasters = [], [], [], 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        for _ in range(runs):
            cmd = [sys.executable, "-m", "serenity.cli", "report", str(model), "-o", str(html)]
            done = subprocess.run(cmd + extra, capture_output=True, text=True, check=True)
            m = LINE.search(done.stdout.replace("\n", " "))
            if m is None:
                raise RuntimeError(f"unexpected output: {done.stdout}")
            sched.append(float(m.group(1)))
            more.append(float(m.group(2)))
            cpu.append(float(m.group(3)))
            text = html.read_text()
            size, titles = len(text.encode()), text.count("<title>") - 1
            rasters = text.count("data:image/png")
    p = serenity.load_model(model).problem
    return {
        "ops": p.num_ops,
        "tensors": p.num_tensors,
        "sched": statistics.median(sched),
        "more": statistics.median(more),
        "cpu": statistics.median(cpu),
        "bytes": size,
        "titles": titles,
        "rasters": rasters,
    }


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--runs", type=int, default=3, help="runs per model (medians reported)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources: list[tuple[str, Path, list[str]]] = []
        for path in args.paths or [DEFAULT_DIR / "nasnetalarge.onnx"]:
            if not path.is_file():
                print(f"skipping {path}: not found", file=sys.stderr)
                continue
            sources.append((path.stem, path, []))
            sources.append((f"{path.stem} --rewrite", path, ["--rewrite"]))
        for name in ("darts_imagenet", "randwire_cifar10"):
            f = Path(tmp) / f"{name}.onnx"
            onnx.save(serenity.zoo.BENCHMARKS[name](), str(f))
            sources.append((f"zoo {name}", f, ["--time-limit", "10"]))
        f = Path(tmp) / "split_blocks.onnx"
        onnx.save(split_blocks(), str(f))
        sources.append(("generated split_blocks", f, ["--time-limit", "10"]))
        for name, path, extra in sources:
            row = run(path, extra, args.runs)
            print(name, row, file=sys.stderr)
            rows.append((name, row))
    lines = [
        "# HTML report: cost beyond scheduling and file size",
        "",
        "Regenerate with `python benchmarks/report.py` (needs the `report` extra). "
        f"serenity {serenity.__version__}, Python {platform.python_version()}, "
        f"matplotlib {__import__('matplotlib').__version__}; medians of {args.runs} runs of "
        "`serenity report MODEL -o REPORT.html` in a fresh process each (matplotlib's import "
        "included), on a shared 2-core machine (load average "
        f"{load:.1f} at the start): wall times are noisy, CPU times less so.",
        "",
        "| network | ops | tensors | scheduling s | report s beyond scheduling | of which CPU s "
        "| HTML bytes | hover titles | rasterised layers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['ops']:,} | {r['tensors']:,} | {r['sched']:.2f} | {r['more']:.2f} "
            f"| {r['cpu']:.2f} "
            f"| {r['bytes']:,} | {r['titles']:,} | {r['rasters']} |"
        )
    lines += [
        "",
        "Scheduling is `auto` (with `--rewrite`: the whole rewriting search); "
        '"report s" is everything after it: matplotlib\'s import, the best heuristic, the '
        "`best` and `greedy-size` arena plans (`best`'s CP-SAT part limited to 2 s), three "
        "figures and the page. Arena maps draw up to 1,200 rectangles per panel as vector "
        "shapes with a hover title and the rest as one rasterised layer.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
