"""End-to-end check on real graphs: schedule, write, verify, reload, re-simulate.

Usage (from the repository root)::

    python benchmarks/roundtrip.py [DIR_OR_MODEL ...]   # default ../shared/models/onnx

For every model: ``serenity schedule`` (default method) writes the reordered
model with ``--verify`` (onnxruntime, bitwise-equal outputs; missing external
weights are filled with seeded random values); the written file is checked with
``onnx.checker`` (full check, with the same random weights in memory), reloaded,
and the peak of its file order must equal the reported peak. Writes
``benchmarks/RESULTS-roundtrip.md``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import onnx
from _common import model_paths, parser

import serenity
from serenity.cli import main as cli_main
from serenity.io.verify import _with_weights, materialize_weights

HERE = Path(__file__).resolve().parent


def check(model: Path, work: Path) -> dict[str, object]:
    out, report = work / f"{model.stem}.opt.onnx", work / f"{model.stem}.json"
    started = time.perf_counter()
    code = cli_main(["schedule", str(model), "-o", str(out), "--json", str(report), "--verify"])
    wall = time.perf_counter() - started
    if code != 0:
        return {"model": model.stem, "ok": False, "why": f"exit {code}"}
    r = json.loads(report.read_text())
    proto = onnx.load(str(out), load_external_data=False)
    weights, _ = materialize_weights(proto, model.parent)
    onnx.checker.check_model(onnx.load_from_string(_with_weights(proto, weights)), full_check=True)
    again = serenity.schedule_model(serenity.load_model(out), "file")
    ok = again.peak_bytes == r["peak_bytes"] and list(again.order) == r["schedule"]
    return {
        "model": model.stem,
        "ok": ok,
        "baseline": r["baseline_peak_bytes"],
        "peak": r["peak_bytes"],
        "optimal": r["optimal"],
        "reloaded": again.peak_bytes,
        "schedule_s": r["seconds"],
        "wall_s": wall,
        "random_weights": r["verified"]["random_weights"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-roundtrip.md")
    args = ap.parse_args(argv)
    models = model_paths(args.paths)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            rows.append(check(m, Path(tmp)))
    lines = [
        "# Round trip on real graphs\n",
        "Made by `python benchmarks/roundtrip.py`: schedule (default method `auto`), write, verify in "
        "onnxruntime (bitwise), onnx.checker full check, reload, re-simulate the written file order.\n",
        "| model | file-order peak | scheduled peak | optimal | reloaded file-order peak | ok "
        "| schedule s | wall s (with verify) | random-filled weights |",
        "|---|---:|---:|:---:|---:|:---:|---:|---:|---:|",
    ]
    for r in rows:
        if "peak" not in r:
            lines.append(f"| {r['model']} | | | | | FAILED: {r['why']} | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['baseline']:,} | {r['peak']:,} | {'yes' if r['optimal'] else 'no'} "
            f"| {r['reloaded']:,} | {'yes' if r['ok'] else 'NO'} | {r['schedule_s']:.3f} "
            f"| {r['wall_s']:.2f} | {r['random_weights']} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
