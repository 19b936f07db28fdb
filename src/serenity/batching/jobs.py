"""What one model of a batch is, and the function a worker runs on it.

A :class:`Job` is everything a worker needs, picklable and small: the model's
name (its path, or a label for an in-memory model), its content hash, and the
model itself as a path to read (a shared file system), serialized ONNX bytes
(in-memory models; small files sent to Ray workers) or a
:class:`~serenity.ir.Problem`. :class:`Settings` are the options common to
every model of a run; they are written into every result line, so a results
file always says how it was made and a resumed run cannot mix settings.

:func:`process_job` is the default per-model work: load, schedule (and
optionally rewrite, write, plan), and return the ``schedule --json`` report
plus ``status``, ``error``, ``sha256``, ``index``, ``timings`` and
``settings``. It never raises for a bad model: errors become
``status: "error"`` with the one-line message. Crashes and hard timeouts are
the engine's business (:mod:`serenity.batching.local`, :mod:`serenity.batching.ray_engine`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import onnx

from serenity.api import (
    load_model,
    plan_dict,
    plan_schedule,
    report_dict,
    save_model,
    save_rewritten,
    schedule_model,
    schedule_or_rewrite,
)
from serenity.errors import ModelError, SerenityError, UsageError
from serenity.io.format import Model
from serenity.io.onnx_import import load_proto
from serenity.ir import Problem
from serenity.schedule import DEFAULT_METHOD, DEFAULT_SEARCH_MEMORY

#: Result statuses: the model was scheduled; it failed (bad model, crash) with
#: a one-line ``error``; the engine killed it after ``Settings.timeout`` seconds.
STATUSES = ("ok", "error", "timeout")

#: A model of a batch as the Python API accepts it.
BatchInput = str | os.PathLike[str] | onnx.ModelProto | Problem


@dataclass(frozen=True)
class Settings:
    """Options shared by every model of a batch (see ``serenity batch --help``).

    Attributes:
        method: Scheduling method (:data:`serenity.schedule.ENGINES`).
        time_limit: Seconds for each model's search (the engine's anytime
            limit; with ``rewrite``, for each trial schedule). ``None``: the
            method's default (``auto``: 60 s).
        search_memory: Bytes each model's exact search may hold (``None``: no
            cap).
        timeout: Hard wall-clock seconds per model, after which its worker is
            killed and the result is ``status: "timeout"``; ``None``: no limit.
        inplace: The in-place memory model.
        rewrite: Also apply identity rewrites where they lower the peak.
        split_outputs: With ``rewrite``, allow output-channel splits.
        plan: Also plan the arena of the chosen schedule.
        outdir: Write each scheduled model (and plan) into this directory.
        verify: With ``outdir``, run original and written model in onnxruntime.
        input_shapes: Dims for symbolic graph inputs, for every model.
    """

    method: str = DEFAULT_METHOD
    time_limit: float | None = None
    search_memory: int | None = DEFAULT_SEARCH_MEMORY
    timeout: float | None = None
    inplace: bool = False
    rewrite: bool = False
    split_outputs: bool = True
    plan: bool = False
    outdir: str | None = None
    verify: bool = False
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The settings that decide a model's result, as stored in every line.

        ``timeout`` and ``search_memory`` are left out: resource limits, which a
        rerun may raise and resume the file.
        """
        d = asdict(self)
        del d["timeout"], d["search_memory"]
        d["input_shapes"] = {k: list(v) for k, v in sorted(self.input_shapes.items())}
        return d


@dataclass(frozen=True)
class Job:
    """One model to process.

    Exactly one of ``path`` (read by the worker), ``data`` (serialized ONNX)
    and ``problem`` carries the model; ``path`` may accompany ``data`` to say
    where the bytes came from (external weights are looked up beside it).

    Attributes:
        index: Position in the batch's inputs.
        name: The result's ``model`` field: the path as given, or
            ``<graph name>-<hash prefix>`` for an in-memory model.
        sha256: Hex SHA-256 of the file's bytes, of the serialized model, or
            of the problem's canonical JSON.
        path: The model file.
        data: The serialized ONNX model.
        problem: A scheduling problem (no model to rewrite or write).
    """

    index: int
    name: str
    sha256: str
    path: str | None = None
    data: bytes | None = None
    problem: Problem | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What a resumed run matches a stored line on: ``(model, sha256)``."""
        return (self.name, self.sha256)


#: The per-model function a worker runs: ``(job, settings) -> result dict``.
#: Engines import it by name in each worker, so it must be a module-level function.
Worker = Callable[[Job, Settings], dict[str, Any]]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks). O(file size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def problem_sha256(p: Problem) -> str:
    """Hex SHA-256 of a problem's defining fields as canonical JSON. O(n + m)."""
    fields = (
        p.name,
        p.op_names,
        p.tensor_sizes,
        p.op_inputs,
        p.op_outputs,
        p.graph_inputs,
        p.graph_outputs,
        p.tensor_names,
        p.op_types,
        p.inplace_inputs,
    )
    return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()


def make_jobs(inputs: Iterable[BatchInput]) -> list[Job]:
    """One :class:`Job` per input, in order; a repeated input (same name and hash) once.

    Paths are hashed here, so a resumed run can skip them before any worker
    starts; a path that cannot be read becomes a job the worker reports as an
    error (its hash is empty and never matches a stored line).

    Complexity: O(total bytes of the inputs).

    Raises:
        UsageError: an input is neither a path, an ``onnx.ModelProto`` nor a ``Problem``.
    """
    jobs: dict[tuple[str, str], Job] = {}
    for x in inputs:
        index = len(jobs)
        if isinstance(x, Problem):
            digest = problem_sha256(x)
            job = Job(index, f"{x.name}-{digest[:12]}", digest, problem=x)
        elif isinstance(x, onnx.ModelProto):
            data = x.SerializeToString()
            digest = hashlib.sha256(data).hexdigest()
            job = Job(index, f"{x.graph.name or 'model'}-{digest[:12]}", digest, data=data)
        elif isinstance(x, str | os.PathLike):
            try:
                digest = file_sha256(x)
            except OSError:
                digest = ""
            job = Job(index, str(x), digest, path=str(x))
        else:
            raise UsageError(
                f"batch input {index} is a {type(x).__name__}; give a path, an "
                "onnx.ModelProto or a serenity.Problem"
            )
        jobs.setdefault(job.key, job)
    return list(jobs.values())


def expand_paths(items: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The model files named by command-line inputs, in order, each once.

    An ``.onnx`` file is a model; a directory stands for every ``*.onnx``
    below it (sorted); any other file is a list of paths, one per line
    (blank lines and lines starting with ``#`` skipped; relative paths are
    taken from the current directory, like ``xargs``). Paths listed in a list
    file need not exist: a missing one becomes an error line of the run.

    Raises:
        UsageError: a path named directly does not exist, or a list file is
            not UTF-8 text.
    """
    out: dict[Path, None] = {}
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.update(dict.fromkeys(sorted(p.rglob("*.onnx"))))
        elif p.suffix == ".onnx":
            if not p.exists():
                raise UsageError(f"model file not found: {p}")
            out[p] = None
        elif p.is_file():
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"cannot read list of models {p}: {e}") from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    out[Path(line)] = None
        else:
            raise UsageError(f"no such model, directory or list file: {p}")
    return list(out)


def output_names(jobs: Iterable[Job]) -> dict[int, str]:
    """Per job index, the file name its written model gets in ``outdir``.

    ``<stem>.onnx`` of the model's file (in-memory models: their name); a
    problem has no model to write and gets none.

    Raises:
        UsageError: two models would be written to the same file name.
    """
    names: dict[str, str] = {}
    out: dict[int, str] = {}
    for job in jobs:
        if job.problem is not None:
            continue
        target = f"{Path(job.name).stem}.onnx"
        if target in names:
            raise UsageError(
                f"{names[target]} and {job.name} would both be written to {target}; "
                "give models with distinct file names or leave out -o"
            )
        names[target] = job.name
        out[job.index] = target
    return out


class _ProblemModel:
    """A bare :class:`Problem` dressed as a loaded model for :func:`report_dict`."""

    format_name = "problem"

    def __init__(self, name: str, problem: Problem) -> None:
        self.path = Path(name)
        self.problem = problem
        self.num_nodes = problem.num_ops


def _proto_from_bytes(data: bytes, name: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError, ValueError or RuntimeError
        raise ModelError(f"{name} is not a valid ONNX model (protobuf parse failed: {e})") from None
    return proto


def _load(job: Job, settings: Settings) -> Model:
    if job.problem is not None:
        return cast(Model, _ProblemModel(job.name, job.problem))
    if job.data is not None:
        proto = _proto_from_bytes(job.data, job.name)
        where = job.path if job.path is not None else f"{job.name}.onnx"
        return load_proto(proto, where, settings.input_shapes)
    assert job.path is not None  # make_jobs gives every job one of the three
    return load_model(job.path, settings.input_shapes)


def _seconds(start: float) -> float:
    return round(time.perf_counter() - start, 6)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name if it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def failure(job: Job, settings: Settings, status: str, message: str) -> dict[str, Any]:
    """The result line of a model that did not finish: ``status`` and ``error``
    (``message`` on one line)."""
    return {
        "model": job.name,
        "status": status,
        "error": " ".join(message.split()),
        "sha256": job.sha256,
        "index": job.index,
        "timings": {},
        "settings": settings.as_dict(),
    }


def process_job(job: Job, settings: Settings) -> dict[str, Any]:
    """Schedule one model as ``serenity schedule`` would and return its result line.

    The line is :func:`serenity.api.report_dict`'s report with ``model`` set
    to the job's name, plus ``status`` (``"ok"``), ``error`` (``None``),
    ``sha256``, ``index``, ``settings`` and ``timings`` (seconds: ``load``,
    ``schedule`` (file order, the method and any rewriting), ``write``,
    ``plan``, ``worker``: the whole call; ``cpu``: the worker's CPU seconds
    for it; the engine adds ``wall``: from dispatch to the result's arrival). With ``settings.plan`` it adds
    ``plan``: the arena's ``arena_bytes``, ``lower_bound_bytes``,
    ``alignment``, ``planner``, ``optimal``, ``seconds`` (the full plan is
    written beside the model when there is an ``outdir``).

    A bad model gives ``status: "error"`` and its one-line message; an
    unexpected exception the same, prefixed ``internal error``. Never raises.

    Complexity: that of the scheduling method on the model.
    """
    start, cpu = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    try:
        model = _load(job, settings)
        timings["load"] = _seconds(start)
        t = time.perf_counter()
        base = schedule_model(model, "file", inplace=settings.inplace)
        if settings.rewrite and job.problem is not None:
            raise UsageError(f"{job.name}: rewriting needs an ONNX model, not a Problem")
        result, rewritten = schedule_or_rewrite(
            model,
            settings.method,
            rewrite=settings.rewrite,
            inplace=settings.inplace,
            time_limit=settings.time_limit,
            split_outputs=settings.split_outputs,
            search_memory=settings.search_memory,
            threads=1,  # the models run side by side: one searcher each
        )
        timings["schedule"] = _seconds(t)
        output, verified = None, None
        if settings.outdir is not None and job.problem is None:
            t = time.perf_counter()
            output = Path(settings.outdir, output_names([job])[job.index])
            if rewritten is not None:
                saved = save_rewritten(model, rewritten, output, verify=settings.verify)
            else:
                saved = save_model(model, result, output, verify=settings.verify)
            verified = saved.verify
            timings["write"] = _seconds(t)
        report = report_dict(
            model, base, result, settings.method, output, verified, rewrite=rewritten
        )
        if settings.plan:
            t = time.perf_counter()
            written = rewritten.model if rewritten is not None else model
            planned = plan_schedule(written, result)
            full = plan_dict(written, planned)
            report["plan"] = {
                k: full[k]
                for k in ("arena_bytes", "lower_bound_bytes", "alignment", "planner", "optimal")
            }
            report["plan"]["seconds"] = full["seconds"]
            if output is not None:
                plan_path = output.with_suffix(".plan.json")
                plan_path.write_text(json.dumps(full, indent=2) + "\n")
                report["plan"]["output"] = str(plan_path)
            timings["plan"] = _seconds(t)
        report["model"] = job.name
        report.update(status="ok", error=None)
    except SerenityError as e:
        report = failure(job, settings, "error", str(e))
    except Exception as e:  # a bug or a library failure: keep the run going, say what
        report = failure(job, settings, "error", f"internal error: {type(e).__name__}: {e}")
    timings["worker"] = _seconds(start)
    timings["cpu"] = round(time.process_time() - cpu, 6)
    report.update(sha256=job.sha256, index=job.index, timings=timings)
    report["settings"] = settings.as_dict()
    return report


def same_result(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two result lines agree on everything but timing and position.

    Compares every field, at any depth, except ``timings``, ``seconds``,
    ``index`` and ``stats`` (the engines' statistics hold times). Used to
    check that two engines give the same results file.
    """
    return _timeless(a) == _timeless(b)


def _timeless(x: Any) -> Any:
    if isinstance(x, Mapping):
        skip = ("timings", "seconds", "index", "stats")
        return {k: _timeless(v) for k, v in x.items() if k not in skip}
    if isinstance(x, list):
        return [_timeless(v) for v in x]
    return x
