"""The Ray engine: one Ray task per model, on a local or remote Ray cluster.

The driver keeps at most ``jobs`` tasks in flight (default: the cluster's
CPUs), so a task's time since submission is close to its running time and
the hard ``timeout`` can be enforced: an overdue task is cancelled with
``force=True``, which kills its worker process. Tasks never retry
(``max_retries=0``): a model that crashes its worker gives
``status: "error"`` with Ray's one-line reason, and the run goes on.

Models travel as follows: a file of at most ``inline_bytes`` is read by the
driver and sent as bytes (through Ray's object store), so the cluster's
nodes need not see the driver's files; a larger file, or any file when the
run writes models (``outdir``), is read by the worker from its path, which
must then be on a file system every node shares, as must ``outdir``.
In-memory models and problems are always sent. Every node needs serenity
installed (the worker function is imported by name, not shipped).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from serenity.batching.jobs import Job, Settings, Worker, failure, first_line
from serenity.errors import SerenityError, UsageError
from serenity.io.format import format_of

#: The extra that brings Ray for ``--engine ray``.
RAY_EXTRA = "serenity[ray]"

#: Files up to this size are sent to the workers as bytes (see the module docstring).
INLINE_BYTES = 4 << 20


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: pip install '{RAY_EXTRA}'") from None
    return ray


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reason(e: BaseException) -> str:
    """One line on why a Ray task failed: the last ``Error: ...`` line of its cause
    (Ray's own first line names only the task, its pid and node), with a hint when
    the node cannot import serenity."""
    text = _ANSI.sub("", str(getattr(e, "cause", None) or e))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]
    reason = errors[-1] if errors else lines[0] if lines else type(e).__name__
    if "No module named 'serenity" in reason:
        reason += "; every node needs serenity installed"
    return reason


def _run_task(worker: Worker, job: Job, settings: Settings) -> dict[str, Any]:
    return worker(job, settings)


def _inline(job: Job, settings: Settings, limit: int) -> Job:
    """``job`` with its file's bytes attached when it is small enough to send."""
    if job.path is None or job.data is not None or settings.outdir is not None:
        return job
    try:
        if os.path.getsize(job.path) > limit or format_of(job.path).name != "onnx":
            return job  # other formats are read by the worker from the shared path
        with open(job.path, "rb") as f:
            return replace(job, data=f.read())
    except (OSError, SerenityError):  # the worker reports it
        return job


class RayPool:
    """Run a worker function on jobs as Ray tasks (see the module docstring).

    Args:
        worker: A module-level function ``(job, settings) -> dict``, importable
            on every node.
        settings: Passed to every call; ``settings.timeout`` is the hard limit.
        jobs: Tasks in flight at once; ``None``: the cluster's CPUs. For a
            cluster this run starts, also its number of CPUs.
        address: A running cluster (``ray://host:10001``, ``host:6379`` or
            ``auto``); ``None`` starts a local one for the run. If Ray is
            already initialised in this process, that cluster is used.
        inline_bytes: Send files up to this size as bytes.

    Raises:
        UsageError: Ray is not installed (names the extra).
    """

    def __init__(
        self,
        worker: Worker,
        settings: Settings,
        jobs: int | None = None,
        address: str | None = None,
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self.ray = _import_ray()
        self.worker = worker
        self.settings = settings
        self.jobs = jobs
        self.address = address
        self.inline_bytes = inline_bytes

    def run(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        """Yield one result per job, in completion order, with ``timings.wall`` set."""
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            local = self.address is None
            try:
                ray.init(
                    address=self.address,
                    num_cpus=self.jobs if local else None,
                    include_dashboard=False if local else None,
                    log_to_driver=False,
                    logging_level="ERROR",
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = (
                    f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
                )
                hint = ""
                if not local and os.environ.get("RAY_AUTH_MODE") != "token":
                    hint = (
                        " (a cluster with token authentication needs RAY_AUTH_MODE=token"
                        " and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
                    )
                raise UsageError(f"cannot start or reach {where}: {first_line(e)}{hint}") from None
        task = ray.remote(num_cpus=1, max_retries=0)(_run_task)
        width = self.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        worker_ref = ray.put(self.worker)
        settings_ref = ray.put(self.settings)
        pending = list(reversed(jobs))
        flight: dict[Any, tuple[Job, float]] = {}
        timeout = self.settings.timeout
        try:
            while pending or flight:
                while pending and len(flight) < width:
                    job = pending.pop()
                    ref = task.remote(
                        worker_ref, _inline(job, self.settings, self.inline_bytes), settings_ref
                    )
                    flight[ref] = (job, time.perf_counter())
                wait_for = None
                if timeout is not None:
                    first = min(t for _, t in flight.values()) + timeout
                    wait_for = max(0.0, first - time.perf_counter())
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=wait_for)
                now = time.perf_counter()
                for ref in list(flight):
                    job, started = flight[ref]
                    wall = round(now - started, 6)
                    if ref in ready:
                        try:
                            result = ray.get(ref)
                        except ray.exceptions.RayError as e:
                            message = f"worker failed ({_reason(e)})"
                            result = failure(job, self.settings, "error", message)
                    elif timeout is not None and wall >= timeout:
                        ray.cancel(ref, force=True)
                        result = failure(
                            job, self.settings, "timeout", f"killed after {timeout:g} s"
                        )
                    else:
                        continue
                    del flight[ref]
                    result.setdefault("timings", {})["wall"] = wall
                    yield result
        finally:
            for ref in flight:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()
