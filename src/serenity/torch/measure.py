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


def eager_live_peak_bytes(ep: ExportedProgram, seed: int = 0) -> int:
    """Peak bytes of the storages that op outputs hold alive while ``ep.module()`` runs.

    A ``TorchDispatchMode`` sees every op's outputs; each new storage counts
    from then until CPython frees the last tensor on it (a weakref finalizer),
    so views share their base's bytes and a value counts until the generated
    code drops it. Sampled after each op returns (its outputs and its inputs
    live together). Unlike :func:`eager_peak_bytes` it leaves out what kernels
    allocate and free inside one call (oneDNN's weight reorders, im2col
    buffers), which no order changes, and the caller's inputs.

    Complexity: one run of the model, O(1) extra work per op output.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive on it]
    state = {"current": 0, "peak": 0}
    known: set[int] = set()  # storages that exist before the run: inputs, weights

    def release(ptr: int) -> None:
        entry = live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            state["current"] -= entry[0]
            del live[ptr]

    class Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for t in torch.utils._pytree.tree_leaves(out):
                if not isinstance(t, torch.Tensor):
                    continue
                storage = t.untyped_storage()
                ptr = storage.data_ptr()
                if ptr in live:
                    live[ptr][1] += 1
                elif ptr not in known:
                    live[ptr] = [storage.nbytes(), 1]
                    state["current"] += storage.nbytes()
                else:
                    continue
                weakref.finalize(t, release, ptr)
            state["peak"] = max(state["peak"], state["current"])
            return out

    args, kwargs = seeded_inputs(ep, seed)
    module = ep.module()
    with torch.no_grad():
        known.update(
            t.untyped_storage().data_ptr()
            for t in [
                *torch.utils._pytree.tree_leaves((args, kwargs)),
                *module.state_dict().values(),
            ]
            if isinstance(t, torch.Tensor)
        )
        with Track():
            out = module(*args, **kwargs)
        del out
    return int(state["peak"])
