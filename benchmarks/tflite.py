"""Benchmark: .tflite models from the real TFLiteConverter, reordered, in LiteRT and TFLM.

Usage (from the repository root; needs ``pip install -e '.[bench-tflite]'``)::

    python benchmarks/tflite.py                      # the four Keras applications, 96x96
    python benchmarks/tflite.py --size 128 --models MobileNetV2 --time-limit 30

Each Keras application is built with ``weights=None`` (seeded random weights,
no download) and ``classifier_activation=None`` (TFLM aborts on the int8
SOFTMAX the converter emits) at a fixed input of ``SIZE x SIZE x 3``, batch 1, and converted
by TensorFlow's own ``TFLiteConverter`` twice: float32, and full-integer int8
(a seeded random representative data set). For each file it reports:

* the peak of the converter's operator order and the best order's peak
  (``auto``, proven optimal where marked), both under serenity's memory model;
* TFLM's arena (head = tensor section, as its recording allocator prints it)
  for the converter's file with TFLM's own planner, for the reordered file
  with TFLM's own planner, and for the reordered file with serenity's plan as
  ``OfflineMemoryAllocation`` metadata; TFLM's tail (its fixed overhead of
  structs and kernel data) is the same in all three and reported once;
* LiteRT's arena before and after: the address span of the non-constant
  tensors the interpreter exposes after ``allocate_tensors`` (activations, and
  kernel temporaries such as im2col where they have a shape), reference
  kernels without XNNPACK;
* verification: LiteRT outputs bitwise equal (reference kernels, one thread),
  and TFLM outputs bitwise equal with the embedded plan.

Writes ``benchmarks/RESULTS-tflite.md`` and ``benchmarks/results-tflite.json``.
Times are wall-clock on a shared machine (noisy); the byte counts are exact.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import serenity
from serenity.io.tflite import TfliteModel, _litert, offline_plan, run_tflm, seeded_inputs

HERE = Path(__file__).resolve().parent
APPS = ["MobileNetV2", "InceptionV3", "DenseNet121", "NASNetMobile"]
#: Zoo networks rebuilt in Keras (at their own CIFAR resolution, 32x32).
ZOO = ["RandWire-CIFAR10", "RandWire-CIFAR100"]
#: SERENITY's reported geometric-mean peak reduction (dynamic programming + rewriting).
PAPER_GEOMEAN = 1.68


def convert(app: str, size: int, int8: bool) -> bytes:
    """The Keras application ``app`` (``weights=None``, seeded) as .tflite bytes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    net = getattr(tf.keras.applications, app)(
        weights=None, input_shape=(size, size, 3), classes=1000, classifier_activation=None
    )

    x = tf.keras.Input((size, size, 3), batch_size=1)  # a fixed batch: static shapes
    return _tflite(tf, tf.keras.Model(x, net(x)), size, int8)


def _tflite(tf: Any, model: Any, size: int, int8: bool) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def samples() -> Any:
            for _ in range(8):
                yield [rng.standard_normal((1, size, size, 3)).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = samples
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def convert_randwire(name: str, int8: bool) -> bytes:
    """A zoo RandWire network (``serenity.zoo.randwire``: same config, same seeded
    WS graphs) rebuilt in Keras, converted like the applications."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from serenity.zoo.randwire import RANDWIRE_CIFAR10, RANDWIRE_CIFAR100, randwire_graphs

    config = {"RandWire-CIFAR10": RANDWIRE_CIFAR10, "RandWire-CIFAR100": RANDWIRE_CIFAR100}[name]
    tf.keras.utils.set_random_seed(0)
    L = tf.keras.layers
    c = config.channels
    x = tf.keras.Input((config.resolution, config.resolution, 3), batch_size=1)
    y = L.Conv2D(c // 2, 3, config.stem_strides[0], "same", use_bias=False)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    y = L.Conv2D(c, 3, config.stem_strides[1], "same", use_bias=False)(y)
    y = L.BatchNormalization()(y)
    for s, (graph, stride) in enumerate(
        zip(randwire_graphs(config, 0), config.stage_strides, strict=True)
    ):
        rng = np.random.default_rng(graph.seed)
        outs: list[Any] = []
        for v in range(graph.nodes):
            preds = graph.predecessors(v)
            if preds:
                weights = 1.0 / (1.0 + np.exp(-rng.standard_normal(len(preds))))
                parts = [
                    L.Rescaling(float(w))(outs[u]) for u, w in zip(preds, weights, strict=True)
                ]
                z, node_stride = (L.Add()(parts) if len(parts) > 1 else parts[0]), 1
            else:
                z, node_stride = y, stride
            z = L.ReLU()(z)
            z = L.DepthwiseConv2D(3, node_stride, "same", use_bias=False)(z)
            z = L.Conv2D(c * 2**s, 1, use_bias=False)(z)
            outs.append(L.BatchNormalization()(z))
        sinks = [outs[v] for v in graph.sinks()]
        y = L.Average()(sinks) if len(sinks) > 1 else sinks[0]
    y = L.ReLU()(y)
    y = L.Conv2D(config.head_channels, 1, use_bias=False)(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    y = L.GlobalAveragePooling2D()(y)
    return _tflite(tf, tf.keras.Model(x, L.Dense(config.classes)(y)), config.resolution, int8)


def litert_arena(model: TfliteModel, data: bytes) -> int:
    """Address span of the non-constant tensors LiteRT exposes (its arena: activations,
    and the kernel temporaries that have a shape)."""
    interp = _litert(data)
    interp.allocate_tensors()
    base = np.frombuffer(data, dtype=np.uint8).ctypes.data
    spans = []
    constant = set(range(len(model.fbmodel.subgraphs[0].tensors or []))) - set(model.tensor_index)
    for i in range(interp._interpreter.NumTensors(0)):
        if i in constant:
            continue
        try:
            interp._get_tensor_details(i, 0)  # tensor() crashes on tensors without a shape
            view = interp.tensor(i)()
        except (ValueError, RuntimeError):
            continue
        if view.nbytes == 0:
            continue
        start = view.ctypes.data
        if base <= start < base + len(data):
            continue
        spans.append((start, start + view.nbytes))
        del view
    return max(e for _, e in spans) - min(s for s, _ in spans)


def bench(name: str, data: bytes, workdir: Path, time_limit: float) -> dict[str, Any]:
    src = workdir / f"{name}.tflite"
    src.write_bytes(data)
    model = serenity.load_model(src)
    assert isinstance(model, TfliteModel)
    base = serenity.schedule_model(model, "file")
    t = time.perf_counter()
    best = serenity.schedule_model(model, "auto", time_limit=time_limit)
    seconds = time.perf_counter() - t
    planned = serenity.plan_schedule(model, best)
    out = workdir / f"{name}.serenity.tflite"
    row: dict[str, Any] = {
        "model": name,
        "bytes": len(data),
        "ops": model.problem.num_ops,
        "activations": model.problem.num_tensors,
        "converter_peak": base.peak_bytes,
        "optimal_peak": best.peak_bytes,
        "proven": best.optimal,
        "lower_bound": best.lower_bound_bytes,
        "schedule_seconds": round(seconds, 2),
        "plan_arena": planned.plan.arena_bytes,
    }
    try:
        saved = serenity.save_model(model, best, out, verify=True, plan=planned)
        row["litert_verified"] = "yes"
        row["notes"] = saved.verify.notes if saved.verify else []
    except serenity.SerenityError as e:
        row["litert_verified"] = f"FAILED: {e}"
        return row
    with_plan = out.read_bytes()
    no_plan = model.reordered(best.op_order, None)
    assert offline_plan(with_plan) is not None
    row["litert_arena_before"] = litert_arena(model, data)
    row["litert_arena_after"] = litert_arena(model, no_plan)
    inputs = seeded_inputs(data, 0)
    arena = model.arena_hint()
    try:
        want, own = run_tflm(data, inputs, arena)
        _, own_after = run_tflm(no_plan, inputs, arena)
        got, ours = run_tflm(with_plan, inputs, arena)
        same = all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
        row.update(
            tflm_head_before=own["head"],
            tflm_head_reordered=own_after["head"],
            tflm_head_offline=ours["head"],
            tflm_tail=ours["tail"],
            tflm_total_before=own["total"],
            tflm_total_offline=ours["total"],
            tflm_verified="yes" if same else "FAILED",
        )
    except Exception as e:  # noqa: BLE001 - TFLM's refusal is a result
        row["tflm_verified"] = f"cannot run: {e}"
    return row


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def n(x: Any) -> str:
        return f"{x:,}" if isinstance(x, int) else "-"

    lines = [
        "# TFLite / LiteRT / TFLite Micro benchmark",
        "",
        f"Made by `python benchmarks/tflite.py --size {args.size} --time-limit {args.time_limit:g}` "
        f"with serenity {serenity.__version__}, {_versions()} on {platform.machine()}, "
        f"CPython {platform.python_version()}. Keras applications built with `weights=None` "
        f"(seeded) at a fixed input of 1x{args.size}x{args.size}x3, converted by the real "
        "`TFLiteConverter` (float32, and full-integer int8 with a seeded random representative "
        "set). Bytes are exact; the schedule time is wall-clock on a shared 2-core machine.",
        "",
        "Columns: *converter* = peak of the converter's operator order, *optimal* = the `auto` "
        "engine's order (proven where marked) under serenity's memory model; *TFLM head* = the "
        "tensor section of TFLM's arena as its recording allocator prints it: the converter's "
        "file with TFLM's own planner (*own*), the reordered file with TFLM's own planner "
        "(*own, reordered*), and the reordered file with serenity's plan embedded as "
        "`OfflineMemoryAllocation` (*offline*); *plan* = serenity's arena for that plan "
        "(16-byte aligned); *tail* = TFLM's fixed overhead (structs, kernel data; the same for "
        "all three files), so TFLM's whole arena = head + tail; *LiteRT* = address span of "
        "the non-constant tensors LiteRT exposes (its arena) before/after reordering; "
        "*verified* = LiteRT outputs bitwise equal / TFLM outputs bitwise equal with the plan.",
        "",
        "| model | ops | converter | optimal | proven | gain | TFLM head own | own, reordered "
        "| offline | plan | tail | TFLM gain | LiteRT before | LiteRT after | verified | s |",
        "|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        gain = r["converter_peak"] / max(r["optimal_peak"], 1)
        tg = (
            f"{r['tflm_head_before'] / r['tflm_head_offline']:.3f}x"
            if "tflm_head_offline" in r
            else "-"
        )
        tflm = r.get("tflm_verified", "-")
        lines.append(
            f"| {r['model']} | {r['ops']} | {n(r['converter_peak'])} | {n(r['optimal_peak'])} | "
            f"{'yes' if r['proven'] else 'no'} | {gain:.3f}x | {n(r.get('tflm_head_before'))} | "
            f"{n(r.get('tflm_head_reordered'))} | {n(r.get('tflm_head_offline'))} | "
            f"{n(r['plan_arena'])} | {n(r.get('tflm_tail'))} | {tg} | "
            f"{n(r.get('litert_arena_before'))} | {n(r.get('litert_arena_after'))} | "
            f"{r['litert_verified']} / {tflm} | {r['schedule_seconds']:.1f} |"
        )
    peaks = [r["converter_peak"] / max(r["optimal_peak"], 1) for r in rows]
    heads = [
        r["tflm_head_before"] / r["tflm_head_offline"] for r in rows if "tflm_head_offline" in r
    ]
    totals = [
        r["tflm_total_before"] / r["tflm_total_offline"] for r in rows if "tflm_total_offline" in r
    ]
    lit = [
        r["litert_arena_before"] / r["litert_arena_after"]
        for r in rows
        if "litert_arena_after" in r
    ]
    lines += [
        "",
        f"Geometric means over {len(rows)} files, the converter's order as the baseline "
        f"(SERENITY reports {PAPER_GEOMEAN}x with rewriting, against TFLite's order):",
        f"- peak, converter / optimal order: {geomean(peaks):.3f}x",
        f"- TFLM head, own planner on the converter's file / serenity's offline plan: "
        f"{geomean(heads):.3f}x ({len(heads)} files); whole arena (head + tail): "
        f"{geomean(totals):.3f}x",
        f"- LiteRT arena span, before / after reordering: {geomean(lit):.3f}x",
    ]
    same = [r["model"] for r in rows if r["converter_peak"] == r["optimal_peak"]]
    exact = [r["model"] for r in rows if r.get("tflm_head_offline") == r["plan_arena"]]
    unproven = [r["model"] for r in rows if not r["proven"]]
    lines += [
        "",
        f"TFLM's head with the offline plan equals serenity's plan for {len(exact)} of "
        f"{len(rows)} files (TFLM used the offsets as they are; no scratch buffer needed room "
        "outside them).",
        "",
        "Where we do not win: the converter's order is already optimal for "
        + (", ".join(same) if same else "no file")
        + " (their peak lies where no order helps, e.g. the stem at full resolution); "
        "there any TFLM gain comes from the placement alone (TFLM's largest-first planner "
        "fragments; the offline plan reaches the schedule's peak). Not proven optimal within "
        "the limit: "
        + (", ".join(unproven) if unproven else "none")
        + " (the order shown is the best found; see *lower bound* in the JSON).",
    ]
    return "\n".join(lines) + "\n"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for pkg in ("tensorflow-cpu", "ai-edge-litert", "tflite-micro"):
        try:
            found.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=APPS + ZOO, help="Keras application or zoo names")
    p.add_argument("--size", type=int, default=96, help="input height and width (default 96)")
    p.add_argument("--time-limit", type=float, default=60.0, help="auto engine limit per model")
    p.add_argument("--cache", type=Path, help="keep converted .tflite files here")
    p.add_argument(
        "--convert", nargs=4, metavar=("APP", "SIZE", "INT8", "OUT"), help=argparse.SUPPRESS
    )
    args = p.parse_args()
    if args.convert:
        app, size, int8, out = args.convert
        q = bool(int(int8))
        data = convert_randwire(app, q) if app in ZOO else convert(app, int(size), q)
        Path(out).write_bytes(data)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for app in args.models:
            for int8 in (False, True):
                size = 32 if app in ZOO else args.size
                name = f"{app}_{size}_{'int8' if int8 else 'float'}"
                path = cache / f"{name}.src.tflite"
                if not path.exists():  # TensorFlow in a child: it crashes CP-SAT in-process
                    cmd = [sys.executable, __file__, "--convert", app, str(size), str(int(int8))]
                    subprocess.run([*cmd, str(path)], check=True)
                row = bench(name, path.read_bytes(), Path(tmp), args.time_limit)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    (HERE / "results-tflite.json").write_text(json.dumps(rows, indent=1) + "\n")
    (HERE / "RESULTS-tflite.md").write_text(markdown(rows, args))
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
