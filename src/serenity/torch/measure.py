"""Eager CPU memory of an exported program, measured by PyTorch's profiler.

The profiler records every CPU allocation and free made while the program
runs (its ``[memory]`` events); their running sum in time order is the memory
the run itself holds, and its maximum is the peak. The caller's inputs and
the weights were allocated before, so they are not in it: the figure is the
activations (and any kernel scratch) only.
"""

from __future__ import annotations

import torch
from torch.export import ExportedProgram
from torch.profiler import ProfilerActivity, profile

from serenity.torch.export import seeded_inputs


def eager_peak_bytes(ep: ExportedProgram, seed: int = 0) -> int:
    """Peak of the running sum of CPU allocations while ``ep.module()`` runs once
    on :func:`~serenity.torch.export.seeded_inputs` (after one warm-up run).

    Deterministic for a given program and machine: the allocations are the
    program's, not timing-dependent.

    Complexity: one warm-up and one profiled run of the model.
    """
    args, kwargs = seeded_inputs(ep, seed)
    module = ep.module()
    with torch.no_grad():
        module(*args, **kwargs)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            module(*args, **kwargs)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak
