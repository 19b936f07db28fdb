"""Benchmark: identity graph rewriting, optimal peak before and after, both memory models.

Usage (from the repository root)::

    python benchmarks/rewrite.py                        # nasnetalarge, pnasnet5large + zoo
    python benchmarks/rewrite.py DIR_OR_MODEL ... --time-limit 10

For each model and each memory model the driver optimises for (default, then
in-place), it reports the best peak before and after rewriting under *both*
memory models, the rewrites applied, the candidate graphs scheduled, the time,
and whether onnxruntime gives the same outputs (rtol 1e-4, atol 1e-5; missing
weights filled with the same seeded random values in both models). Writes
``benchmarks/RESULTS-rewrite.md`` and ``benchmarks/results-rewrite.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from _common import DEFAULT_DIR, model_paths, parser

import serenity
import serenity.zoo
from serenity.bench import rewrite_then_reschedule
from serenity.io import load_onnx
from serenity.io.onnx_import import OnnxModel
from serenity.io.verify import verify_same_outputs
from serenity.rewrite import count_passes
from serenity.schedule import ScheduleOptions, schedule

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = [DEFAULT_DIR / "nasnetalarge.onnx", DEFAULT_DIR / "pnasnet5large.onnx"]


def bench(
    name: str, model: OnnxModel, inplace: bool, time_limit: float, baseline_limit: float
) -> dict[str, Any]:
    options = ScheduleOptions(inplace=inplace, time_limit=baseline_limit)
    baseline = schedule(model.problem, "auto", options)
    t = time.perf_counter()
    r, after = rewrite_then_reschedule(model, "auto", options, time_limit, baseline)
    seconds = time.perf_counter() - t
    verified: str = "no rewrite"
    max_diff = 0.0
    if r.rewrites:
        try:
            v = verify_same_outputs(
                model.proto, r.proto, model.path.parent, model.input_shapes, exact=False
            )
            verified, max_diff = "yes", v.max_abs_diff
            if v.noise_floor is not None:
                verified = f"yes, by the noise floor ({v.noise_floor:.1g})"
        except serenity.SerenityError as e:
            verified = f"FAILED: {e}"
    peaks = r.peaks()
    chosen = "inplace" if inplace else "default"
    peaks[f"{chosen}_after"] = after.peak_bytes
    return {
        "model": name,
        "optimised_for": chosen,
        **peaks,
        "optimal_before": baseline.optimal,
        "optimal_after": after.optimal,
        "baseline_seconds": baseline.seconds,
        "ratio": peaks[f"{chosen}_before"] / max(peaks[f"{chosen}_after"], 1),
        "rewrites": len(r.rewrites),
        "passes": count_passes(r.rewrites),
        "applied": [x.as_dict() for x in r.rewrites],
        "trials": r.trials,
        "driver_seconds": r.seconds,
        "seconds": seconds,
        "verified": verified,
        "max_abs_diff": max_diff,
        "ops_before": model.problem.num_ops,
        "ops_after": r.model.problem.num_ops,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | default before | default after | in-place before | in-place after "
        "| gain (optimised model) | proven before/after | rewrites | trials | s | verified |\n"
        "|---|---:|---:|---:|---:|---:|:---:|---|---:|---:|---|\n"
    )
    body = ""
    for r in rows:
        passes = ", ".join(f"{k} {v}" for k, v in r["passes"].items()) or "none"
        proof = f"{'yes' if r['optimal_before'] else 'no'}/{'yes' if r['optimal_after'] else 'no'}"
        body += (
            f"| {r['model']} | {r['default_before']:,} | {r['default_after']:,} "
            f"| {r['inplace_before']:,} | {r['inplace_after']:,} | {r['ratio']:.3f}x | {proof} "
            f"| {r['rewrites']} ({passes}) | {r['trials']} | {r['seconds']:.1f} | {r['verified']} |\n"
        )
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per trial schedule")
    ap.add_argument(
        "--baseline-limit",
        type=float,
        default=300.0,
        help="seconds for the unchanged graph's schedule and the rewritten graph's final one",
    )
    ap.add_argument("--no-zoo", action="store_true", help="skip serenity.zoo.BENCHMARKS")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-rewrite.md")
    args = ap.parse_args(argv)

    jobs: list[tuple[str, OnnxModel]] = []
    for path in model_paths(args.paths or [p for p in DEFAULT_MODELS if p.exists()]):
        jobs.append((path.stem, load_onnx(path)))
    tmp = tempfile.TemporaryDirectory()
    if not args.no_zoo:
        # The benchmark zoo (serenity.zoo.BENCHMARKS: name -> builder), when it exists.
        for name, build in getattr(serenity.zoo, "BENCHMARKS", {}).items():
            f = Path(tmp.name) / f"{name}.onnx"
            onnx.save(build(), str(f))
            jobs.append((name, load_onnx(f)))
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for name, model in jobs:
        for inplace in (False, True):
            row = bench(name, model, inplace, args.time_limit, args.baseline_limit)
            rows[inplace].append(row)
            print(
                f"{name:22s} for {row['optimised_for']:8s} default {row['default_before']:>11,} -> "
                f"{row['default_after']:>11,}  in-place {row['inplace_before']:>11,} -> "
                f"{row['inplace_after']:>11,}  {row['rewrites']} rewrites  {row['seconds']:.1f}s  "
                f"verified {row['verified']}",
                flush=True,
            )
    tmp.cleanup()

    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    text = (
        "# Identity graph rewriting benchmark\n\n"
        f"Made by `python benchmarks/rewrite.py {' '.join(str(p) for p in args.paths)}`"
        f" (--time-limit {args.time_limit:g} per trial schedule, --baseline-limit "
        f"{args.baseline_limit:g}) with serenity "
        f"{serenity.__version__} on {machine}. Peaks in bytes: the best order the `auto` engine "
        "finds (proven optimal where marked) for the graph before and after rewriting, under the "
        "default memory model and the in-place one (`--inplace`). Under the model the driver "
        "optimises, before is the unchanged graph scheduled with the baseline limit (a rewrite "
        "must beat it, so no gain comes from a longer search alone), and after is the rewritten "
        "graph scheduled once more with that limit from the driver's order; the other model's "
        "peaks come from the per-trial limit and need not be optimal (the other table has them "
        "under the baseline limit). Gain = before / after under the optimised model. "
        "Time = the driver (every trial import and schedule) plus the final schedule; the "
        "baseline schedule and verification excluded. Verified = onnxruntime outputs of the "
        "original and the rewritten model equal within rtol 1e-4, atol 1e-5 on seeded random "
        "inputs (missing weights filled with the same seeded random values); `by the noise "
        "floor` marks a network where the original alone, run without onnxruntime's graph "
        "optimizations, already differs from itself by more than that (the number), and the "
        "rewritten model differs at most 2x as much (`serenity.io.verify`), else FAILED.\n\n"
        "## Driver optimising the default memory model\n\n" + _table(rows[False]) + "\n"
        "## Driver optimising the in-place memory model\n\n" + _table(rows[True]) + "\n"
        "Rewrites: `pad_pool_*` folds a constant Pad into its pool, `bn_fold` folds an inference "
        "BatchNormalization into the Conv feeding it, `reassociate` rebuilds a sum of >= 3 terms "
        "in the order the schedule produces them, `scale_fold` folds a Mul by a scalar weight "
        "into the Conv or BN producing its input (these four are not in the SERENITY paper); "
        "`output_split` splits a conv by output channels so that the conv after it takes the "
        "halves as partial products (nor is this); "
        "`distribute`, `kernel_partition`, `channel_partition` are SERENITY's concat rewrites. "
        "The full list per run is in `results-rewrite.json`. Where proven is `no`, the peak is the "
        "best order found in the limit, not an optimum.\n"
    )
    args.out.write_text(text)
    args.out.with_name("results-rewrite.json").write_text(
        json.dumps(rows[False] + rows[True], indent=2) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
