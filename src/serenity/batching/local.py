"""The local engine: one model at a time in each of N worker processes.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: one worker that dies
(a segfault in a native library, the OOM killer) breaks the whole pool, and a
running task cannot be stopped. Here every worker is a process with its own
pipe: the parent sends it one job, waits on all pipes and process sentinels at
once, and

- a result that arrives is yielded and the worker gets the next job;
- a worker that dies without answering gives ``status: "error"`` (with its
  exit code or signal) and is replaced;
- a worker still busy ``timeout`` seconds after it got its job is killed,
  gives ``status: "timeout"`` and is replaced.

Workers start by ``forkserver`` on Linux (serenity imported once in the fork
server, so a replacement starts in milliseconds), else by ``spawn``; never by
plain ``fork`` from a parent that may hold threads. Workers ignore SIGINT: on
Ctrl-C the parent alone decides, kills them and keeps every finished result.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from serenity.batching.jobs import Job, Settings, Worker, failure


def _serve(conn: Connection, worker: Worker, settings: Settings) -> None:
    """A worker process: run each job it is sent until it gets ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent went away
            return
        if job is None:
            return
        try:
            result = worker(job, settings)
        except BaseException as e:  # a worker function that raises: report, keep serving
            result = failure(job, settings, "error", f"internal error: {type(e).__name__}: {e}")
        conn.send(result)


def _context() -> Any:
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["serenity.batching.jobs"])
        return ctx
    return mp.get_context("spawn")


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGSEGV`` for a process's exit code."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Slot:
    """A worker process, its pipe, and the job it is running (if any)."""

    process: BaseProcess
    conn: Connection
    job: Job | None = None
    started: float = 0.0


class LocalPool:
    """N worker processes running a worker function on jobs (see the module docstring).

    Args:
        worker: A module-level function ``(job, settings) -> dict``.
        settings: Passed to every call; ``settings.timeout`` is the hard limit.
        jobs: Number of worker processes (at least 1).
    """

    def __init__(self, worker: Worker, settings: Settings, jobs: int) -> None:
        self.worker = worker
        self.settings = settings
        self.size = max(1, jobs)
        self._ctx = _context()
        self._slots: list[_Slot] = []

    def _start(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_serve, args=(child, self.worker, self.settings), daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _stop(self, slot: _Slot, *, kill: bool) -> None:
        if kill:
            slot.process.kill()
        else:
            try:
                slot.conn.send(None)
            except OSError:
                slot.process.kill()
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        slot.conn.close()

    def _replace(self, slot: _Slot, *, kill: bool) -> _Slot:
        self._stop(slot, kill=kill)
        fresh = self._start()
        self._slots[self._slots.index(slot)] = fresh
        return fresh

    def _send(self, slot: _Slot, job: Job) -> None:
        try:
            slot.conn.send(job)
        except OSError:  # the idle worker died: a fresh one takes the job
            slot = self._replace(slot, kill=True)
            slot.conn.send(job)
        slot.job, slot.started = job, time.perf_counter()

    def run(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        """Yield one result per job, in completion order, with ``timings.wall`` set.

        Closing the iterator early (or an exception in the caller, such as
        KeyboardInterrupt while it waits) kills the workers; results already
        yielded are the caller's.
        """
        pending = deque(jobs)
        timeout = self.settings.timeout
        try:
            self._slots = [self._start() for _ in range(min(self.size, len(pending)))]
            while pending or any(s.job is not None for s in self._slots):
                for slot in self._slots:
                    if slot.job is None and pending:
                        self._send(slot, pending.popleft())
                busy = [s for s in self._slots if s.job is not None]
                wait_for = None
                if timeout is not None:
                    first = min(s.started for s in busy) + timeout
                    wait_for = max(0.0, first - time.perf_counter())
                ready = set(wait([x for s in busy for x in (s.conn, s.process.sentinel)], wait_for))
                results = []
                for slot in busy:
                    results.extend(self._collect(slot, ready, timeout))
                yield from results
        finally:
            for slot in self._slots:
                self._stop(slot, kill=slot.job is not None)
            self._slots = []

    def _collect(self, slot: _Slot, ready: set[Any], timeout: float | None) -> list[dict[str, Any]]:
        """The result ``slot`` has to give now, if any; replace its worker if it died or ran over."""
        job = slot.job
        assert job is not None
        wall = round(time.perf_counter() - slot.started, 6)
        if slot.conn in ready or slot.process.sentinel in ready:
            try:
                result: dict[str, Any] = slot.conn.recv()
            except (EOFError, OSError):
                slot.process.join(timeout=5)
                message = f"worker process died ({describe_exit(slot.process.exitcode)})"
                result = failure(job, self.settings, "error", message)
                self._replace(slot, kill=True)
            else:
                slot.job = None
                if not slot.process.is_alive():  # answered, then died: start afresh
                    self._replace(slot, kill=True)
        elif timeout is not None and wall >= timeout:
            result = failure(job, self.settings, "timeout", f"killed after {timeout:g} s")
            self._replace(slot, kill=True)
        else:
            return []
        result.setdefault("timings", {})["wall"] = wall
        return [result]
