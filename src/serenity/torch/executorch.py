"""ExecuTorch: a reorder pass and a ``memory_planning_algo`` backed by :mod:`serenity.plan`.

``EdgeProgramManager.to_executorch(config)`` runs ``config.passes`` on the edge
graph before memory planning, then plans one arena from the node order: every
tensor lives from the first to the last node that names it, and the planner
places them. So:

* :class:`ReorderPass` schedules the edge graph with serenity and permutes its
  nodes (the order survives into the ``.pte``);
* :class:`SerenityPlanner` is a ``memory_planning_algo`` that places ExecuTorch's
  own tensor specs with :func:`serenity.plan.plan` (greedy orders, local search,
  CP-SAT when the bound is missed) and records the plan;
* :func:`serenity_config` puts both in an ``ExecutorchBackendConfig``;
  :func:`to_executorch` runs the whole lowering and :func:`arena_bytes` reads the
  planned arena back from the program.

The edge graph's memory model is ExecuTorch's: ``view_copy`` nodes that no
output reads become views of their base (``ReplaceViewCopyWithViewPass``), so
they are counted once; sizes are rounded up to the arena alignment (16 bytes).
Weight-only nodes (``linear``'s ``permute_copy`` of its weight) would take arena
space, so :func:`to_executorch` propagates constants first.

Example:
    >>> import torch
    >>> from serenity.torch.executorch import arena_bytes, to_executorch
    >>> class Net(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x.exp().sum() + x.sin().sum()
    >>> ep = torch.export.export(Net(), (torch.ones(1024),))
    >>> et, report = to_executorch(ep)
    >>> arena_bytes(et) == report.plan.arena_bytes, report.schedule.optimal
    (True, True)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx
from torch.export import ExportedProgram

from serenity.plan import DEFAULT_PLANNER, ArenaPlan, Buffer, plan
from serenity.schedule import DEFAULT_METHOD, ScheduleOptions, ScheduleResult, schedule
from serenity.torch.export import functional, user_input_names
from serenity.torch.graph import GraphProblem, problem_from_graph

#: ExecuTorch's default arena alignment (``executorch.exir.tensor.ALIGNMENT``).
ALIGNMENT = 16


def _is_edge_view(node: fx.Node) -> bool:
    """A ``view_copy`` that ExecuTorch turns into a view of its base (no output reads it)."""
    from executorch.exir.dialects._ops import ops

    return node.target in (
        torch.ops.aten.view_copy.default,
        ops.edge.aten.view_copy.default,
    ) and all(u.op != "output" for u in node.users)


def edge_problem(
    graph: fx.Graph, user_inputs: Collection[str], alignment: int = ALIGNMENT
) -> GraphProblem:
    """The scheduling problem of an edge graph under ExecuTorch's memory model."""
    return problem_from_graph(graph, user_inputs, is_alias=_is_edge_view, alignment=alignment)


class ReorderPass:
    """An edge-graph pass: schedule with serenity, permute the nodes into the order.

    Args:
        user_inputs: Placeholder names of the user inputs (the activations):
            ``user_input_names(edge.exported_program())``.
        method: Scheduling method (``auto`` proves optimality when it finishes).
        time_limit: Seconds for the search.
        alignment: Arena alignment the sizes are rounded to.

    Attributes:
        result: The last schedule (``None`` before the pass ran).
    """

    def __init__(
        self,
        user_inputs: Collection[str],
        method: str = DEFAULT_METHOD,
        time_limit: float | None = 60.0,
        alignment: int = ALIGNMENT,
    ) -> None:
        self.user_inputs = frozenset(user_inputs)
        self.method = method
        self.time_limit = time_limit
        self.alignment = alignment
        self.result: ScheduleResult | None = None

    def __call__(self, graph_module: fx.GraphModule) -> Any:
        from torch.fx.passes.infra.pass_base import PassResult

        gp = edge_problem(graph_module.graph, self.user_inputs, self.alignment)
        self.result = schedule(gp.problem, self.method, ScheduleOptions(time_limit=self.time_limit))
        changed = list(self.result.op_order) != list(range(gp.problem.num_ops))
        if changed:
            graph_module.graph = gp.rebuilt(self.result.op_order)
            graph_module.recompile()
        return PassResult(graph_module, changed)


class SerenityPlanner:
    """A ``memory_planning_algo`` for ``MemoryPlanningPass``: ExecuTorch's tensor
    specs placed by :func:`serenity.plan.plan`.

    Each spec without a storage base is a :class:`~serenity.plan.Buffer` over
    its lifetime (node indices, inclusive); specs backed by another's storage
    get its offset plus theirs. Every spec goes to arena 1 (``mem_id`` 1), and
    the call returns ``[0, arena_bytes]`` as ExecuTorch expects.

    Args:
        planner: A planner of :data:`serenity.plan.PLANNERS` (``best``: at the
            lower bound on every graph measured).
        time_limit: Seconds for the planner's exact part.

    Attributes:
        plans: Every plan made, in call order (one per planned graph).
    """

    __name__ = "serenity"

    def __init__(self, planner: str = DEFAULT_PLANNER, time_limit: float | None = 30.0) -> None:
        self.planner = planner
        self.time_limit = time_limit
        self.plans: list[ArenaPlan] = []

    def __call__(
        self,
        alignment: int,
        specs: Sequence[Any],
        graph_module: fx.GraphModule,
        graph_signature: Any,
        extra_padding: int = 0,
    ) -> list[int]:
        own = [s for s in specs if s.storage_base is None]
        for s in own:
            s.realign(alignment)
        buffers = [
            Buffer(s.allocated_memory, int(s.lifetime[0]), int(s.lifetime[1]), (k,), f"spec{k}")
            for k, s in enumerate(own)
        ]
        made = plan(buffers, self.planner, alignment, self.time_limit)
        self.plans.append(made)
        reserved = list(getattr(graph_module, "input_mem_buffer_sizes", None) or [])
        base = reserved[1] if len(reserved) > 1 else 0  # space for control-flow submodules
        for k, (s, offset) in enumerate(zip(own, made.offsets, strict=True)):
            s.mem_id, s.mem_offset, s.mem_obj_id = 1, base + offset, k
        pending = [s for s in specs if s.storage_base is not None]
        while pending:  # aliases: their base's offset plus theirs (bases may be aliases)
            left = [s for s in pending if s.storage_base.mem_offset is None]
            for s in pending:
                if s.storage_base.mem_offset is not None:
                    s.mem_id = s.storage_base.mem_id
                    s.mem_offset = s.storage_base.mem_offset + s.storage_base_offset
                    s.mem_obj_id = s.storage_base.mem_obj_id
            if len(left) == len(pending):
                raise ValueError("unresolvable storage_base chain in the tensor specs")
            pending = left
        return [0, base + made.arena_bytes + extra_padding]


def serenity_config(
    user_inputs: Collection[str],
    *,
    reorder: bool = True,
    plan_with_serenity: bool = True,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = 60.0,
    planner: str = DEFAULT_PLANNER,
) -> tuple[Any, ReorderPass | None, SerenityPlanner | None]:
    """An ``ExecutorchBackendConfig`` with serenity's pass and/or planner.

    Returns:
        The config, the pass (``None`` unless ``reorder``) and the planner
        (``None`` unless ``plan_with_serenity``: ExecuTorch's default greedy).
    """
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass

    reorder_pass = ReorderPass(user_inputs, method, time_limit) if reorder else None
    planner_algo = SerenityPlanner(planner, time_limit) if plan_with_serenity else None
    config = ExecutorchBackendConfig(
        passes=[reorder_pass] if reorder_pass is not None else [],
        memory_planning_pass=MemoryPlanningPass(memory_planning_algo=planner_algo),
    )
    return config, reorder_pass, planner_algo


@dataclass(frozen=True)
class ExecutorchReport:
    """What :func:`to_executorch` did.

    Attributes:
        arena_bytes: The planned arena, read back from the program.
        schedule: serenity's schedule of the edge graph (``None``: export order kept).
        plan: serenity's arena plan (``None``: ExecuTorch's greedy planner).
    """

    arena_bytes: int
    schedule: ScheduleResult | None
    plan: ArenaPlan | None


def to_edge(ep: ExportedProgram, *, constant_prop: bool = True) -> Any:
    """``executorch.exir.to_edge`` of ``ep`` (functionalised), constants propagated
    so that weight-only nodes take no arena space."""
    from executorch.exir import EdgeCompileConfig
    from executorch.exir import to_edge as et_to_edge

    edge = et_to_edge(functional(ep), compile_config=EdgeCompileConfig(_check_ir_validity=True))
    if constant_prop:
        from executorch.exir.passes.constant_prop_pass import constant_prop_pass

        edge._edge_programs["forward"] = constant_prop_pass(edge.exported_program())
    return edge


def to_executorch(
    ep: ExportedProgram,
    *,
    reorder: bool = True,
    plan_with_serenity: bool = True,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = 60.0,
    constant_prop: bool = True,
) -> tuple[Any, ExecutorchReport]:
    """Lower ``ep`` to an ExecuTorch program with serenity's order and/or arena plan.

    Args:
        ep: The program.
        reorder: Run :class:`ReorderPass` (else the export order is kept).
        plan_with_serenity: Plan with :class:`SerenityPlanner` (else ExecuTorch's
            default greedy planner).
        method: Scheduling method.
        time_limit: Seconds for the search and for the planner's exact part.
        constant_prop: Propagate constants first (see :func:`to_edge`).

    Returns:
        The ``ExecutorchProgramManager`` (``.buffer`` is the ``.pte``) and a report.

    Raises:
        ValueError: the arena read back from the program is not the planned one.
    """
    return lower(
        to_edge(ep, constant_prop=constant_prop),
        reorder=reorder,
        plan_with_serenity=plan_with_serenity,
        method=method,
        time_limit=time_limit,
    )


def lower(
    edge: Any,
    *,
    reorder: bool = True,
    plan_with_serenity: bool = True,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = 60.0,
) -> tuple[Any, ExecutorchReport]:
    """:func:`to_executorch` from an ``EdgeProgramManager`` (:func:`to_edge`'s);
    ``edge`` is left as it was (the lowering runs on a deep copy)."""
    import copy

    edge = copy.deepcopy(edge)
    config, reorder_pass, planner = serenity_config(
        user_input_names(edge.exported_program()),
        reorder=reorder,
        plan_with_serenity=plan_with_serenity,
        method=method,
        time_limit=time_limit,
    )
    et = edge.to_executorch(config)
    arena = arena_bytes(et)
    made = planner.plans[-1] if planner is not None and planner.plans else None
    if made is not None and arena != made.arena_bytes:
        raise ValueError(f"the program's arena {arena} B is not the planned {made.arena_bytes} B")
    return et, ExecutorchReport(arena, reorder_pass.result if reorder_pass else None, made)


def arena_bytes(et: Any) -> int:
    """The planned activation arena of an ``ExecutorchProgramManager`` (buffer 1 of
    ``execution_plan[0].non_const_buffer_sizes``; buffer 0 is reserved)."""
    sizes = et.executorch_program.execution_plan[0].non_const_buffer_sizes
    return int(sum(sizes[1:]))


def run_pte(pte: bytes, inputs: Sequence[torch.Tensor]) -> list[Any]:
    """Run a ``.pte`` in ``executorch.runtime`` (portable CPU kernels); the outputs."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(pte)
    return list(program.load_method("forward").execute(list(inputs)))
