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

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serenity import __version__
from serenity.errors import UsageError
from serenity.io.format import Model, VerifyReport, check_output_path
from serenity.io.format import load as load_any
from serenity.io.outputs import transaction
from serenity.plan import (
    DEFAULT_ALIGNMENT,
    DEFAULT_PLANNER,
    DEFAULT_TIME_LIMIT,
    ArenaPlan,
    Buffer,
    check_plan,
    lifetimes,
    plan,
    tensor_lifetimes,
)
from serenity.rewrite.driver import RewriteResult, rewrite_for_memory
from serenity.schedule import (
    DEFAULT_METHOD,
    DEFAULT_SEARCH_MEMORY,
    ScheduleOptions,
    ScheduleResult,
    result_from_order,
    schedule,
)


def load_model(
    path: str | os.PathLike[str], input_shapes: Mapping[str, Sequence[int]] | None = None
) -> Model:
    """Load a model for scheduling, in whatever format its content is (see
    :mod:`serenity.io.format`; ONNX: :func:`serenity.io.load_onnx`)."""
    return load_any(path, input_shapes)


def schedule_model(
    model: Model,
    method: str = DEFAULT_METHOD,
    *,
    inplace: bool = False,
    time_limit: float | None = None,
    progress: bool = False,
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
    threads: int | None = None,
) -> ScheduleResult:
    """Schedule a loaded model with ``method`` (see :data:`serenity.schedule.ENGINES`;
    ``search_memory``, ``threads``: :class:`ScheduleOptions`)."""
    options = ScheduleOptions(
        inplace=inplace,
        time_limit=time_limit,
        progress=progress,
        search_memory=search_memory,
        threads=threads,
    )
    return schedule(model.problem, method, options)


@dataclass(frozen=True)
class SaveOutcome:
    """What :func:`save_model` wrote and checked."""

    paths: tuple[Path, ...]
    verify: VerifyReport | None
    warning: str | None = None


def save_model(
    model: Model,
    result: ScheduleResult,
    out: str | os.PathLike[str],
    *,
    verify: bool = False,
    seed: int = 0,
    plan: PlanOutcome | None = None,
) -> SaveOutcome:
    """Write ``model`` with its ops in ``result``'s order, in its own format.

    With ``verify``, both models first run in the format's runtime
    (onnxruntime for ONNX) on seeded random inputs and every output must be
    bitwise equal; nothing is written if not. With ``plan`` (of this
    schedule), a format that can carry an arena plan (``model.holds_plan``)
    embeds its offsets; other formats ignore it.

    Raises:
        UsageError: ``out`` would overwrite the input model or its weights.
        VerificationError: the outputs differ.
    """
    check_output_path(model, out)
    encoded, report = checked_model(model, model, result, verify=verify, seed=seed, plan=plan)
    return SaveOutcome(_write_staged(model, encoded, out), report, model.runtime_warning(encoded))


def _write_staged(model: Model, encoded: Any, out: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Write through a transaction: the model and every file beside it (ONNX's
    ``<out>.data``) appear together, or none does and existing files stay."""
    with transaction() as tx:
        written = tuple(tx.staged_name(p) for p in model.write(encoded, tx.stage(out)))
    return written


def checked_model(
    original: Model,
    model: Model,
    result: ScheduleResult,
    *,
    verify: bool,
    seed: int = 0,
    exact: bool = True,
    plan: PlanOutcome | None = None,
) -> tuple[Any, VerifyReport | None]:
    """``model`` in memory with its ops in ``result``'s order (and ``plan``'s
    offsets where the format holds a plan) and, with ``verify``, the report of
    running it against ``original`` in the format's runtime (bitwise when
    ``exact``, else within the format's tolerances).

    Raises:
        VerificationError: the outputs differ.
    """
    offsets = tensor_offsets(plan) if plan is not None and model.holds_plan else None
    encoded = model.reordered(result.op_order, offsets)
    if not verify:
        return encoded, None
    return encoded, original.verify(encoded, exact=exact, seed=seed)


def tensor_offsets(planned: PlanOutcome) -> dict[int, int]:
    """The arena offset of every activation tensor id of a plan."""
    return {t: planned.plan.offsets[k] for k, b in enumerate(planned.buffers) for t in b.tensors}


def rewrite_model(
    model: Model,
    method: str = DEFAULT_METHOD,
    *,
    inplace: bool = False,
    time_limit: float | None = None,
    max_rounds: int = 100,
    split_outputs: bool = True,
    progress: bool = False,
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
    threads: int | None = None,
) -> RewriteResult:
    """Rewrite ``model`` where an identity rewrite lowers the peak ``method`` finds.

    See :mod:`serenity.rewrite`. The result holds the rewritten model, its
    schedule (``after``), the rewrites applied and the peaks before and after
    under both memory models. ``time_limit`` bounds each schedule of the
    search (default 10 s); ``split_outputs=False`` leaves convolutions
    unsplit by output channels; ``progress`` prints a line per trial on
    stderr once the search has run for a second; ``search_memory`` caps each
    schedule's search and ``threads`` sets its searchers (:class:`ScheduleOptions`).
    """
    return rewrite_for_memory(
        model,
        method,
        inplace=inplace,
        time_limit=time_limit,
        max_rounds=max_rounds,
        split_outputs=split_outputs,
        progress=progress,
        search_memory=search_memory,
        threads=threads,
    )


def schedule_or_rewrite(
    model: Model,
    method: str = DEFAULT_METHOD,
    *,
    rewrite: bool = False,
    inplace: bool = False,
    time_limit: float | None = None,
    split_outputs: bool = True,
    progress: bool = False,
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
    threads: int | None = None,
) -> tuple[ScheduleResult, RewriteResult | None]:
    """The schedule to write, and the rewriting that made it when ``rewrite``.

    Without ``rewrite``: :func:`schedule_model` and ``None``. With it:
    :func:`rewrite_model`'s schedule of the rewritten graph (``after``) and the
    :class:`RewriteResult`, whose ``model`` is the graph to write.
    """
    options: dict[str, Any] = {
        "inplace": inplace,
        "time_limit": time_limit,
        "progress": progress,
        "search_memory": search_memory,
        "threads": threads,
    }
    if not rewrite:
        return schedule_model(model, method, **options), None
    rewritten = rewrite_model(model, method, split_outputs=split_outputs, **options)
    return rewritten.after, rewritten


def save_rewritten(
    model: Model,
    rewritten: RewriteResult,
    out: str | os.PathLike[str],
    *,
    verify: bool = False,
    seed: int = 0,
    plan: PlanOutcome | None = None,
) -> SaveOutcome:
    """Write the rewritten model of :func:`rewrite_model`, nodes in its schedule's order.

    With ``verify``, the original and the rewritten model run in onnxruntime
    on seeded random inputs (missing weights filled with the same seeded
    values) and every output must match within rtol 1e-4 / atol 1e-5: the
    partial sums change the floating-point summation order, so bitwise
    equality is not expected. Nothing is written if they differ.

    Raises:
        UsageError: ``out`` would overwrite the input model or its weights.
        VerificationError: the outputs differ.
    """
    check_output_path(model, out)
    encoded, report = checked_model(
        model,
        rewritten.model,
        rewritten.after,
        verify=verify,
        seed=seed,
        exact=not rewritten.rewrites,
        plan=plan,
    )
    return SaveOutcome(
        _write_staged(rewritten.model, encoded, out),
        report,
        rewritten.model.runtime_warning(encoded),
    )


def rewrite_dict(rewritten: RewriteResult) -> dict[str, Any]:
    """The ``rewrite`` block of the JSON report: peaks under both models, rewrites applied."""
    models = {}
    for key, inplace in (("default_model", False), ("inplace_model", True)):
        before, after = rewritten.schedules(inplace)
        models[key] = {
            "peak_bytes_before": before.peak_bytes,
            "peak_bytes_after": after.peak_bytes,
            "optimal_before": before.optimal,
            "optimal_after": after.optimal,
        }
    return {
        "inplace": rewritten.inplace,
        **models,
        "rewrites": [r.as_dict() for r in rewritten.rewrites],
        "trials": rewritten.trials,
        "seconds": round(rewritten.seconds, 6),
    }


def report_dict(
    model: Model,
    baseline: ScheduleResult,
    result: ScheduleResult,
    method: str,
    output: str | os.PathLike[str] | None = None,
    verify: VerifyReport | None = None,
    rewrite: RewriteResult | None = None,
    plan: PlanOutcome | None = None,
) -> dict[str, Any]:
    """The JSON report (a contract later tools read; keys are only ever added).

    With ``plan`` (the arena plan of ``result``, when one was made), the
    report adds ``arena_bytes``.

    With ``rewrite``, ``result`` is the rewritten model's schedule (``schedule``
    names its nodes, ``peak_bytes`` is its peak, both as written) and the
    report adds ``unrewritten_peak_bytes`` (the best peak without rewriting, the
    baseline the rewrites are credited against) and ``unrewritten_optimal`` (that
    peak proven optimal),
    ``rewritten_peak_bytes``, ``rewritten_peak_bytes_default`` and
    ``rewritten_peak_bytes_inplace`` (both memory models), and ``rewrite``
    (see :func:`rewrite_dict`).
    """
    report: dict[str, Any] = {
        "model": str(model.path),
        "format": model.format_name,
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
            "runtime": verify.runtime,
        }
        if not verify.exact:
            report["verified"]["max_abs_diff"] = verify.max_abs_diff
    if plan is not None:
        report["arena_bytes"] = plan.plan.arena_bytes
    if rewrite is not None:
        peaks = rewrite.peaks()
        report["scheduled_ops"] = rewrite.model.problem.num_ops
        report["activation_tensors"] = rewrite.model.problem.num_tensors
        report["unrewritten_peak_bytes"] = rewrite.before.peak_bytes
        report["unrewritten_optimal"] = rewrite.before.optimal
        report["rewritten_peak_bytes"] = rewrite.after.peak_bytes
        report["rewritten_peak_bytes_default"] = peaks["default_after"]
        report["rewritten_peak_bytes_inplace"] = peaks["inplace_after"]
        report["rewrite"] = rewrite_dict(rewrite)
    return report


def read_schedule(
    model: Model, report: str | os.PathLike[str], *, inplace: bool = False
) -> ScheduleResult:
    """The schedule of a ``serenity schedule --json`` report, checked against ``model``.

    The report's ``schedule`` (node names in order) must name every scheduled
    node of ``model`` exactly once, in an order that respects the graph. The
    peak is recomputed under the chosen memory model.

    Raises:
        UsageError: the report is missing, not JSON, has no ``schedule`` list,
            or its names or order do not match the model.

    Complexity: O(n + e).
    """
    started = time.perf_counter()
    path = Path(report)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"cannot read schedule report {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"schedule report {path} is not JSON: {e}") from None
    names = data.get("schedule") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise UsageError(
            f"schedule report {path} has no 'schedule' list of node names "
            "(write one with: serenity schedule MODEL -o OUT.onnx --json REPORT.json)"
        )
    problem = model.problem
    ids = {name: v for v, name in enumerate(problem.op_names)}
    unknown = [x for x in dict.fromkeys(names) if x not in ids]
    if unknown:
        shown = ", ".join(f"'{x}'" for x in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UsageError(
            f"schedule report {path} does not match {model.path.name}: "
            f"{len(unknown)} node(s) not scheduled in the model: {shown}"
        )
    order = [ids[x] for x in names]
    if len(set(order)) != len(order) or len(order) != problem.num_ops:
        listed = set(order)
        missing = [problem.op_names[v] for v in range(problem.num_ops) if v not in listed]
        repeated = sorted({x for x in names if names.count(x) > 1})
        what = (
            f"{len(missing)} node(s) missing, e.g. '{missing[0]}'"
            if missing
            else f"node '{repeated[0]}' listed twice"
        )
        raise UsageError(f"schedule report {path} does not match {model.path.name}: {what}")
    if not problem.is_topological(order):
        pos = {v: i for i, v in enumerate(order)}
        v = next(v for v in order if any(pos[u] > pos[v] for u in problem.preds[v]))
        u = next(u for u in problem.preds[v] if pos[u] > pos[v])
        raise UsageError(
            f"schedule report {path} does not match {model.path.name}: node "
            f"'{problem.op_names[v]}' comes before its input's producer '{problem.op_names[u]}'"
        )
    options = ScheduleOptions(inplace=inplace)
    return result_from_order(problem, order, "report", options, started=started)


@dataclass(frozen=True)
class PlanOutcome:
    """The arena plan of one schedule: its buffers and their offsets."""

    buffers: tuple[Buffer, ...]
    plan: ArenaPlan
    schedule: ScheduleResult


def plan_schedule(
    model: Model,
    result: ScheduleResult,
    planner: str = DEFAULT_PLANNER,
    *,
    alignment: int | None = None,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
) -> PlanOutcome:
    """Place the activations of ``result``'s order in one arena (see :mod:`serenity.plan`).

    The buffers follow the memory model the schedule was made with (in-place
    or not). ``alignment`` defaults to what the model's runtime needs
    (``model.plan_alignment``, else :data:`serenity.plan.DEFAULT_ALIGNMENT`).
    The plan is checked before it is returned.

    Raises:
        UsageError: unknown planner, alignment below 1, negative time limit.
    """
    if alignment is None:
        alignment = model.plan_alignment or DEFAULT_ALIGNMENT
    buffers = tuple(lifetimes(model.problem, result.op_order, inplace=result.inplace))
    arena = plan(buffers, planner, alignment, time_limit)
    check_plan(buffers, arena)
    return PlanOutcome(buffers, arena, result)


def plan_dict(model: Model, outcome: PlanOutcome) -> dict[str, Any]:
    """The plan as JSON (a contract; keys are only ever added).

    ``tensors`` lists every activation tensor by id: its ``offset``, ``size``
    (bytes before alignment), ``first_step`` and ``last_step`` (``-1`` is the
    state before the first op; step ``i`` runs ``schedule[i]``), and its
    ``buffer``: tensors share one only with the in-place model, where an
    output overwrites its input.
    """
    p, result, problem = outcome.plan, outcome.schedule, model.problem
    spans = tensor_lifetimes(problem, result.op_order)
    rows: list[dict[str, Any]] = []
    for k, b in enumerate(outcome.buffers):
        for t in b.tensors:
            rows.append(
                {
                    "id": t,
                    "name": problem.tensor_names[t],
                    "offset": p.offsets[k],
                    "size": problem.tensor_sizes[t],
                    "first_step": spans[t][0],
                    "last_step": spans[t][1],
                    "buffer": k,
                }
            )
    rows.sort(key=lambda r: r["id"])
    for r in rows:
        del r["id"]
    return {
        "model": str(model.path),
        "arena_bytes": p.arena_bytes,
        "peak_bytes": result.peak_bytes,
        "lower_bound_bytes": p.lower_bound_bytes,
        "alignment": p.alignment,
        "planner": p.planner,
        "optimal": p.optimal,
        "inplace": result.inplace,
        "schedule_engine": result.engine,
        "schedule": list(result.order),
        "seconds": round(p.seconds, 6),
        "stats": p.stats,
        "tensors": rows,
        "serenity_version": __version__,
    }
