"""Per-model worker functions for tests/test_batch.py that misbehave on purpose.

In a module of their own so that batch worker processes import only this (and
serenity), not the test module. A job whose model name contains ``crash``
(its file name, not its folder) exits its process, ``segv`` dereferences NULL, ``slow`` sleeps far past any
test's timeout; every other job runs the real :func:`process_job`.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path
from typing import Any

from serenity.batching.jobs import Job, Settings, process_job


def misbehaving(job: Job, settings: Settings) -> dict[str, Any]:
    """Crash, segfault or hang on jobs named so; otherwise schedule normally."""
    name = Path(job.name).name
    if "crash" in name:
        os._exit(7)
    if "segv" in name:
        ctypes.string_at(0)
    if "slow" in name:
        time.sleep(600)
    return process_job(job, settings)
