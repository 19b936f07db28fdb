"""serenity as one more method of Inductor's ``reorder_for_peak_memory``.

Inductor (``torch.compile``) orders its fused kernels with
``torch._inductor.memory.reorder_for_peak_memory`` (``config.reorder_for_peak_memory``,
on by default): it runs three greedy topological sorts (``lpmf``, ``bfs``,
``dfs``), estimates each order's peak with ``estimate_peak_memory`` and keeps
the lowest, the original order included. :func:`serenity_reordering` adds
serenity's schedule to that list, so Inductor keeps it whenever its estimate
is lower, and records every method's estimate::

    with serenity_reordering(time_limit=30) as records:
        compiled = torch.compile(model)
        compiled(x)
    records[0]  # {"nodes": 412, "baseline": ..., "topological_sort_lpmf": ..., "serenity": ...}

The problem given to serenity is Inductor's own memory model
(:func:`problem_from_scheduler_nodes`): the graph inputs Inductor may free
are live from the start until their last reader (inputs named ``arg*`` or
``primals_*``, the user's inputs and the weights, are not counted at all),
each buffer from its node to its last reader, graph outputs to the end; a
multi-output kernel allocates all its outputs at once and each is freed after
its own readers. So serenity's peak of an order equals Inductor's estimate
(checked against ``estimate_peak_memory`` in the tests).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from serenity.ir import Problem
from serenity.memory import simulate
from serenity.schedule import DEFAULT_METHOD, ScheduleOptions, ScheduleResult, schedule

_LOGGER = "torch._inductor.memory"


def problem_from_scheduler_nodes(nodes: list[Any], graph_outputs: set[str]) -> Problem:
    """Inductor's scheduler nodes (with ``mpi_node`` / ``mpi_buffer`` set by
    ``prepare_planning_info``) as a :class:`Problem`; op ``i`` is ``nodes[i]``.

    Tensors: each freeable graph input, each buffer (a multi-output kernel's
    outputs belong to it; the ``MultiOutput`` nodes that name them read it),
    and a zero-byte token per node for ordering-only edges.

    Complexity: O(n + e).
    """
    from torch._inductor.memory import FreeableInputBuffer

    index = {node: i for i, node in enumerate(nodes)}
    sizes: list[int] = []
    names: list[str] = []
    producer_of: dict[str, int] = {}  # buffer name -> tensor id
    op_inputs: list[list[int]] = [[] for _ in nodes]
    op_outputs: list[list[int]] = [[] for _ in nodes]
    graph_inputs: list[int] = []
    outputs: list[int] = []

    def tensor(size: int, name: str) -> int:
        sizes.append(size)
        names.append(name)
        return len(sizes) - 1

    def read_by(t: int, readers: Any) -> None:
        for r in readers:
            if r in index:
                op_inputs[index[r]].append(t)

    for node in nodes:  # freeable inputs, in first-read order
        for buf in node.mpi_node.pred_buffers:
            if isinstance(buf, FreeableInputBuffer) and buf.name not in producer_of:
                t = producer_of[buf.name] = tensor(buf.mpi_buffer.size_free, buf.name)
                graph_inputs.append(t)
                read_by(t, buf.mpi_buffer.succ_nodes)
                if buf.name in graph_outputs:
                    outputs.append(t)
    # A multi-output kernel's parent buffer allocates its children (alloc a, free 0);
    # each child (alloc 0, free f) is the storage, freed after the child's readers.
    child_storage: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for buf in node.get_outputs():
            mb = buf.mpi_buffer
            if mb.size_alloc > 0 and mb.size_free == 0:
                for user in buf.users:
                    for child in getattr(user.node, "get_outputs", list)():
                        cm = getattr(child, "mpi_buffer", None)
                        if cm is not None and cm.size_alloc == 0 and cm.size_free > 0:
                            t = tensor(cm.size_free, child.get_name())
                            child_storage[child.get_name()] = t
                            op_outputs[i].append(t)
    for i, node in enumerate(nodes):
        for buf in node.get_outputs():
            name, mb = buf.get_name(), buf.mpi_buffer
            if name in child_storage:
                t = child_storage[name]
                op_inputs[i].append(t)  # the MultiOutput node reads its storage
                read_by(t, mb.succ_nodes)
                token = tensor(0, f"{name}.ref")
                op_outputs[i].append(token)
                read_by(token, mb.succ_nodes_for_ordering)
            else:
                size = mb.size_alloc if mb.size_alloc == mb.size_free else 0
                t = tensor(size, name)
                op_outputs[i].append(t)
                read_by(t, mb.succ_nodes)
            if name in graph_outputs:
                outputs.append(child_storage.get(name, len(sizes) - 1))
        token = tensor(0, f"{node.get_name()}.order")  # ordering-only edges
        op_outputs[i].append(token)
        read_by(token, node.mpi_node.succ_nodes)
    return Problem(
        op_names=[f"{i}:{n.get_name()}" for i, n in enumerate(nodes)],
        tensor_sizes=sizes,
        op_inputs=op_inputs,
        op_outputs=op_outputs,
        graph_inputs=graph_inputs,
        graph_outputs=outputs,
        tensor_names=names,
        name="inductor",
    )


def serenity_method(
    method: str = DEFAULT_METHOD,
    time_limit: float | None = 60.0,
    on_result: Callable[[Problem, ScheduleResult], None] | None = None,
) -> Callable[[list[Any]], list[Any]]:
    """A method for ``reorder_for_peak_memory(..., methods=[...])``: ``f(nodes) -> nodes``
    in serenity's order (graph outputs read from ``V.graph`` while Inductor compiles)."""

    def serenity(nodes: list[Any]) -> list[Any]:
        from torch._inductor.memory import topological_sort_bfs, topological_sort_dfs
        from torch._inductor.virtualized import V

        problem = problem_from_scheduler_nodes(nodes, set(V.graph.get_output_names()))
        # Start from the best of Inductor's own orders, so serenity is never worse.
        index = {node: i for i, node in enumerate(nodes)}
        starts = [tuple(range(len(nodes)))] + [
            tuple(index[n] for n in sort(nodes))
            for sort in (topological_sort_dfs, topological_sort_bfs)
        ]
        hint = min(starts, key=lambda o: simulate(problem, o).peak_bytes)
        options = ScheduleOptions(time_limit=time_limit, hint=hint)
        result = schedule(problem, method, options)
        if on_result is not None:
            on_result(problem, result)
        return [nodes[v] for v in result.op_order]

    return serenity


class _Estimates(logging.Handler):
    """Collects the per-method estimates ``reorder_for_peak_memory`` logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.values: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Baseline peak memory: %d":
            self.values["baseline"] = int(record.args[0])  # type: ignore[index, arg-type]
        elif record.msg == "%s peak memory: %d":
            self.values[str(record.args[0])] = int(record.args[1])  # type: ignore[index, arg-type]


@contextlib.contextmanager
def serenity_reordering(
    method: str = DEFAULT_METHOD, time_limit: float | None = 60.0
) -> Iterator[list[dict[str, Any]]]:
    """While open, every Inductor compilation also tries serenity's order.

    Inductor's FX-graph caches are disabled meanwhile (a cache hit would skip
    the scheduler). Yields a list that receives one record per compiled graph:
    ``nodes``, Inductor's estimate for ``baseline`` (its order before
    reordering) and each method (``topological_sort_lpmf``, ``..._bfs``,
    ``..._dfs``, ``serenity``), serenity's ``lower_bound`` and ``optimal``, and
    ``chosen`` (the method Inductor kept; ties go to the earlier one).
    """
    import torch._inductor.config as config
    import torch._inductor.memory as memory

    original = memory.reorder_for_peak_memory
    defaults = list(original.__defaults__[0])  # type: ignore[index]
    records: list[dict[str, Any]] = []

    def patched(nodes: list[Any], *args: Any, methods: list[Any] | None = None) -> list[Any]:
        found: dict[str, Any] = {}

        def keep(problem: Problem, result: ScheduleResult) -> None:
            found.update(
                lower_bound=result.lower_bound_bytes,
                optimal=result.optimal,
                serenity_own_peak=result.peak_bytes,  # equals Inductor's estimate of it
            )

        handler, logger = _Estimates(), logging.getLogger(_LOGGER)
        level, propagate = logger.level, logger.propagate
        if not logger.isEnabledFor(logging.INFO):  # read the estimates, print nothing new
            logger.setLevel(logging.INFO)
            logger.propagate = False
        logger.addHandler(handler)
        try:
            chosen = original(  # type: ignore[misc]  # torch's signature names the rest
                nodes,
                *args,
                methods=[*(methods or defaults), serenity_method(method, time_limit, keep)],
            )
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        est = handler.values
        best = min(est.values()) if est else None
        winner = next((k for k, v in est.items() if v == best), None)
        records.append({"nodes": len(nodes), **est, **found, "chosen": winner})
        return chosen

    memory.reorder_for_peak_memory = patched  # type: ignore[assignment]
    try:
        with config.patch(force_disable_caches=True, reorder_for_peak_memory=True):
            yield records
    finally:
        memory.reorder_for_peak_memory = original
