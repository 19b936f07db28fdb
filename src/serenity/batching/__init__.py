"""Many models at once: schedule a batch of models in worker processes or on Ray.

For architecture search (the true peak of every candidate) and model-zoo
checks (every model of a registry on every commit). :func:`batch` takes
paths, ``onnx.ModelProto`` objects or :class:`~serenity.ir.Problem` objects
and yields one result per model as it finishes: the ``schedule --json``
report plus ``status`` (``ok``, ``error`` with its one-line message, or
``timeout``), ``sha256``, ``index``, ``timings`` and ``settings`` (see
:func:`serenity.batching.jobs.process_job`).

Each model runs in a worker process of its own engine:

- ``engine="local"`` (:mod:`serenity.batching.local`): ``jobs`` processes on
  this machine; a crash or a hard timeout kills only that model's worker.
- ``engine="ray"`` (:mod:`serenity.batching.ray_engine`): one Ray task per
  model on a local or remote cluster (the ``ray`` extra).

The package is ``serenity.batching`` (not ``batch``) so that
``serenity.batch`` is the function and ``import serenity.batching.jobs``
still finds the submodules.

With ``out``, every result is appended to a JSON-lines file and flushed as
it arrives, and a rerun skips the models whose line is there with the same
content hash (the stored line is yielded again instead).

Example:
    >>> import serenity
    >>> from serenity.zoo import build_example
    >>> [r["peak_bytes"] for r in serenity.batch([build_example()], jobs=1)]
    [86016]
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serenity.batching.jobs import (
    STATUSES,
    BatchInput,
    Job,
    Settings,
    Worker,
    expand_paths,
    make_jobs,
    output_names,
    process_job,
    same_result,
)
from serenity.batching.results import Journal, finished, read_results, write_parquet
from serenity.errors import UsageError
from serenity.schedule import DEFAULT_METHOD, DEFAULT_SEARCH_MEMORY, ENGINES

#: Engines :func:`batch` can run on.
BATCH_ENGINES = ("local", "ray")

#: Seconds a model may run past its search time limit before it is killed
#: (loading, the file-order baseline, writing, planning); see :func:`default_timeout`.
TIMEOUT_GRACE = 10.0


def default_timeout(time_limit: float | None, rewrite: bool) -> float | None:
    """The hard per-model limit when none is given: twice the search limit
    (60 s when unset) plus :data:`TIMEOUT_GRACE`; none with ``rewrite``,
    whose search schedules many candidates under ``time_limit`` each."""
    if rewrite:
        return None
    return 2 * (60.0 if time_limit is None else time_limit) + TIMEOUT_GRACE


@dataclass
class BatchRun:
    """A batch in progress, as :func:`batch` returns it: an iterator of results.

    Iterating yields the stored results (``done``), then each new one as it
    finishes, appended to ``out`` first. :meth:`close` (or leaving the loop
    through an exception such as KeyboardInterrupt) stops the workers;
    every result yielded so far is already in ``out``.

    Attributes:
        todo: The jobs still to run, in input order.
        done: Stored results of inputs a previous run finished (``index`` updated).
        settings: The run's settings.
    """

    todo: list[Job]
    done: list[dict[str, Any]]
    settings: Settings
    engine: str = "local"
    jobs: int | None = None
    address: str | None = None
    out: Path | None = None
    worker: Worker = process_job
    _results: Generator[dict[str, Any], None, None] | None = field(default=None, repr=False)

    def __iter__(self) -> BatchRun:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._results is None:
            self._results = self._run()
        return next(self._results)

    def close(self) -> None:
        """Stop the workers; results not yet yielded are lost (a rerun redoes them)."""
        if self._results is not None:
            self._results.close()

    def _run(self) -> Generator[dict[str, Any], None, None]:
        yield from self.done
        if not self.todo:
            return
        if self.engine == "ray":
            from serenity.batching.ray_engine import RayPool

            pool: Any = RayPool(self.worker, self.settings, self.jobs, self.address)
        else:
            from serenity.batching.local import LocalPool

            pool = LocalPool(self.worker, self.settings, self.jobs or os.cpu_count() or 1)
        if self.out is None:
            yield from pool.run(self.todo)
            return
        with Journal(self.out) as journal:
            for row in pool.run(self.todo):
                journal.write(row)
                yield row


def batch(
    inputs: Iterable[BatchInput],
    *,
    jobs: int | None = None,
    engine: str = "local",
    address: str | None = None,
    out: str | os.PathLike[str] | None = None,
    retry: bool = False,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = None,
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
    timeout: float | None = -1.0,
    inplace: bool = False,
    rewrite: bool = False,
    split_outputs: bool = True,
    plan: bool = False,
    outdir: str | os.PathLike[str] | None = None,
    verify: bool = False,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    worker: Worker = process_job,
) -> BatchRun:
    """Schedule many models in worker processes; iterate the results as they finish.

    Checks the arguments, hashes the inputs and reads ``out`` at once (so a
    bad argument raises here, before any model runs); the models run as the
    returned :class:`BatchRun` is iterated.

    Args:
        inputs: Model files (``.onnx``; a directory stands for every model
            below it), ``onnx.ModelProto`` objects (never written to disk
            unless ``outdir``) and :class:`~serenity.ir.Problem` objects.
            The same input twice runs once.
        jobs: Worker processes (local; default: the CPU count) or tasks in
            flight (Ray; default: the cluster's CPUs).
        engine: ``"local"`` or ``"ray"``.
        address: Ray cluster address; ``None`` starts a local cluster.
        out: JSON-lines results file: appended and flushed per result;
            inputs with a stored line of the same content hash are skipped
            and their stored line yielded first.
        retry: With ``out``, run again the inputs whose stored status is
            ``error`` or ``timeout``.
        method: Scheduling method (see :data:`serenity.schedule.ENGINES`).
        time_limit: Each model's search time limit (the method's default if None).
        search_memory: Bytes each model's exact search may hold (``None``: no
            cap; :attr:`~serenity.schedule.ScheduleOptions.search_memory`).
        timeout: Hard seconds per model before its worker is killed
            (``status: "timeout"``); 0 or ``None`` for none; the default is
            :func:`default_timeout`.
        inplace: The in-place memory model.
        rewrite: Also apply identity rewrites that lower the peak.
        split_outputs: With ``rewrite``, allow output-channel splits.
        plan: Also plan each schedule's arena (summary in the result).
        outdir: Write each scheduled model (``<stem>.onnx``) and, with
            ``plan``, its plan (``<stem>.plan.json``) here.
        verify: With ``outdir``, check each written model in onnxruntime.
        input_shapes: Dims for symbolic graph inputs, for every model.
        worker: The per-model function, ``(Job, Settings) -> dict``, defined
            at module level (workers import it by name).

    Returns:
        A :class:`BatchRun`: an iterator of one dict per input (see
        :func:`serenity.batching.jobs.process_job`), stored results first, then
        in completion order; ``index`` is the input's position.

    Raises:
        UsageError: bad arguments, Ray missing for ``engine="ray"``, or
            ``out`` made with other settings.
    """
    if engine not in BATCH_ENGINES:
        raise UsageError(f"unknown engine '{engine}'; choose one of {', '.join(BATCH_ENGINES)}")
    if address is not None and engine != "ray":
        raise UsageError("a cluster address needs the Ray engine (--engine ray)")
    if method not in ENGINES:
        raise UsageError(f"unknown method '{method}'; choose one of {', '.join(ENGINES)}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")
    if time_limit is not None and time_limit < 0:
        raise UsageError("the time limit must be >= 0 seconds")
    if search_memory is not None and search_memory <= 0:
        raise UsageError(f"search_memory must be a positive number of bytes, got {search_memory}")
    if timeout is not None and timeout < 0:
        timeout = default_timeout(time_limit, rewrite)
    elif timeout == 0:
        timeout = None
    if engine == "ray":
        from serenity.batching.ray_engine import _import_ray

        _import_ray()
    if outdir is not None and not Path(outdir).is_dir():
        raise UsageError(f"output directory {outdir} does not exist")
    if verify and outdir is None:
        raise UsageError("verify checks the written models: give an output directory too")
    settings = Settings(
        method=method,
        time_limit=time_limit,
        search_memory=search_memory,
        timeout=timeout,
        inplace=inplace,
        rewrite=rewrite,
        split_outputs=split_outputs,
        plan=plan,
        outdir=None if outdir is None else str(outdir),
        verify=verify,
        input_shapes={k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()},
    )
    all_jobs = make_jobs(inputs)
    if outdir is not None:
        targets = output_names(all_jobs)
        inputs_at = {Path(j.path).resolve() for j in all_jobs if j.path is not None}
        for name in targets.values():
            if Path(outdir, name).resolve() in inputs_at:
                raise UsageError(f"-o {outdir} would overwrite the input {Path(outdir, name)}")
    stored = finished(out, settings.as_dict(), retry=retry) if out is not None else {}
    done = [{**stored[j.key], "index": j.index} for j in all_jobs if j.key in stored]
    todo = [j for j in all_jobs if j.key not in stored]
    return BatchRun(
        todo, done, settings, engine, jobs, address, None if out is None else Path(out), worker
    )


__all__ = [
    "BATCH_ENGINES",
    "STATUSES",
    "BatchInput",
    "BatchRun",
    "Job",
    "Settings",
    "batch",
    "default_timeout",
    "expand_paths",
    "process_job",
    "read_results",
    "same_result",
    "write_parquet",
]
