"""The Python API, mirroring the CLI: load, schedule, inspect the result, save.

Example:
    >>> import os, tempfile, onnx, serenity
    >>> d = tempfile.mkdtemp()
    >>> src, dst = os.path.join(d, "m.onnx"), os.path.join(d, "m.opt.onnx")
    >>> onnx.save(serenity.build_example(), src)
    >>> model = serenity.load_model(src)
    >>> result = serenity.schedule_model(model)
    >>> before = serenity.schedule_model(model, "file").peak_bytes
    >>> before, result.peak_bytes
    (172032, 86016)
    >>> saved = serenity.save_model(model, result, dst, verify=True)
    >>> saved.verify.outputs
    ('y',)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serenity import __version__
from serenity.io.onnx_export import check_output_path, reordered_proto, write_model
from serenity.io.onnx_import import OnnxModel, load_onnx
from serenity.io.verify import VerifyReport, verify_same_outputs
from serenity.schedule import DEFAULT_METHOD, ScheduleOptions, ScheduleResult, schedule


def load_model(
    path: str | os.PathLike[str], input_shapes: Mapping[str, Sequence[int]] | None = None
) -> OnnxModel:
    """Load an ONNX model for scheduling (see :func:`serenity.io.load_onnx`)."""
    return load_onnx(path, input_shapes)


def schedule_model(
    model: OnnxModel,
    method: str = DEFAULT_METHOD,
    *,
    inplace: bool = False,
    time_limit: float | None = None,
    progress: bool = False,
) -> ScheduleResult:
    """Schedule a loaded model with ``method`` (see :data:`serenity.schedule.ENGINES`)."""
    options = ScheduleOptions(inplace=inplace, time_limit=time_limit, progress=progress)
    return schedule(model.problem, method, options)


@dataclass(frozen=True)
class SaveOutcome:
    """What :func:`save_model` wrote and checked."""

    paths: tuple[Path, ...]
    verify: VerifyReport | None


def save_model(
    model: OnnxModel,
    result: ScheduleResult,
    out: str | os.PathLike[str],
    *,
    verify: bool = False,
    seed: int = 0,
) -> SaveOutcome:
    """Write ``model`` with its nodes in ``result``'s order.

    With ``verify``, both models first run in onnxruntime on seeded random
    inputs and every output must be bitwise equal; nothing is written if not.

    Raises:
        UsageError: ``out`` would overwrite the input model or its weights.
        VerificationError: the outputs differ.
    """
    check_output_path(model, out)
    proto = reordered_proto(model, result.op_order)
    report = None
    if verify:
        report = verify_same_outputs(
            model.proto, proto, model.path.parent, model.input_shapes, seed=seed
        )
    return SaveOutcome(tuple(write_model(model, proto, out)), report)


def report_dict(
    model: OnnxModel,
    baseline: ScheduleResult,
    result: ScheduleResult,
    method: str,
    output: str | os.PathLike[str] | None = None,
    verify: VerifyReport | None = None,
) -> dict[str, Any]:
    """The JSON report (a contract later tools read; keys are only ever added)."""
    report: dict[str, Any] = {
        "model": str(model.path),
        "nodes": model.num_nodes,
        "scheduled_ops": model.problem.num_ops,
        "activation_tensors": model.problem.num_tensors,
        "baseline_peak_bytes": baseline.peak_bytes,
        "peak_bytes": result.peak_bytes,
        "lower_bound_bytes": result.lower_bound_bytes,
        "optimal": result.optimal,
        "method": method,
        "engine": result.engine,
        "inplace": result.inplace,
        "schedule": list(result.order),
        "seconds": round(result.seconds, 6),
        "stats": result.stats,
        "output": str(output) if output is not None else None,
        "verified": None,
        "serenity_version": __version__,
    }
    if verify is not None:
        report["verified"] = {
            "outputs": list(verify.outputs),
            "bitwise_equal": verify.exact,
            "seed": verify.seed,
            "random_weights": verify.filled_weights,
        }
    return report
