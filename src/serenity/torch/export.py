"""``torch.export`` programs: their scheduling problem, reordering, and a seeded check.

An ``ExportedProgram``'s graph lists parameters, buffers and constants as
placeholders; its graph signature says which placeholders are user inputs.
Those are the activations (``DESIGN.md``); everything else is a weight. The
code PyTorch generates for a graph frees each value after its last use, so
eager memory follows the order of the graph's nodes: reordering them is all it
takes to run in the proven order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from serenity.errors import UnsupportedModelError, VerificationError
from serenity.ir import Problem
from serenity.schedule import DEFAULT_METHOD, ScheduleOptions, ScheduleResult, schedule
from serenity.torch.graph import GraphProblem, is_mutating, problem_from_graph


def user_input_names(ep: ExportedProgram) -> list[str]:
    """Placeholder names of the user inputs, per the graph signature."""
    return [
        s.arg.name
        for s in ep.graph_signature.input_specs
        if s.kind == InputKind.USER_INPUT and hasattr(s.arg, "name")
    ]


def functional(ep: ExportedProgram) -> ExportedProgram:
    """``ep`` itself if no op writes its input in place, else ``ep.run_decompositions({})``
    (functionalised: ``relu_`` becomes ``relu``; nothing else is decomposed)."""
    if any(is_mutating(n) for n in ep.graph.nodes):
        return ep.run_decompositions({})
    return ep


def graph_problem(ep: ExportedProgram, name: str = "exported") -> GraphProblem:
    """:func:`serenity.torch.graph.problem_from_graph` of ``ep``'s graph, user inputs
    as activations."""
    return problem_from_graph(ep.graph, user_input_names(ep), name=name)


def problem_from_exported(ep: ExportedProgram, name: str = "exported") -> Problem:
    """The :class:`~serenity.ir.Problem` of an exported program (ops in graph order).

    Views and ``getitem`` count their storage once; parameters, buffers and
    constants are weights. Run ``ep.run_decompositions({})`` (or
    :func:`functional`) first if the graph holds in-place ops.

    Raises:
        ModelError: an in-place op or a dynamic shape.

    Complexity: O(n + e).
    """
    return graph_problem(ep, name).problem


def reordered_module(gp: GraphProblem, gm: fx.GraphModule, order: Sequence[int]) -> fx.GraphModule:
    new = fx.GraphModule(gm, gp.rebuilt(order), class_name=type(gm).__name__)
    new.meta.update(gm.meta)
    return new


def reorder(ep_or_gm: ExportedProgram | fx.GraphModule, order: Sequence[int]) -> Any:
    """A copy of an exported program (or a graph module) with its ops in ``order``.

    Args:
        ep_or_gm: The program or graph module; never modified. A graph module's
            placeholders are all taken as activations.
        order: Op ids of :func:`problem_from_exported` (or, for a graph module,
            of ``problem_from_graph(gm.graph, placeholders)``).

    Returns:
        The same type; weights and state are shared with the input, not copied.

    Raises:
        ValueError: ``order`` is not a topological order of the ops.

    Complexity: O(n + e).
    """
    if isinstance(ep_or_gm, ExportedProgram):
        gp = graph_problem(ep_or_gm)
        return ep_or_gm._update(
            reordered_module(gp, ep_or_gm.graph_module, order), ep_or_gm.graph_signature
        )
    placeholders = [n.name for n in ep_or_gm.graph.nodes if n.op == "placeholder"]
    return reordered_module(problem_from_graph(ep_or_gm.graph, placeholders), ep_or_gm, order)


def optimize(
    ep: ExportedProgram,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = 60.0,
) -> tuple[ExportedProgram, ScheduleResult]:
    """Schedule an exported program for minimum peak activation memory.

    Args:
        ep: The program (in-place ops are functionalised first, see :func:`functional`).
        method: A scheduling method (:data:`serenity.schedule.ENGINES`); ``auto``
            proves optimality when it finishes.
        time_limit: Seconds for the search (``None``: no limit).

    Returns:
        The program with its ops in the chosen order (same outputs), and the
        schedule (peak, lower bound, ``optimal``).

    Example:
        >>> import torch
        >>> from serenity.torch import optimize
        >>> class Net(torch.nn.Module):
        ...     def forward(self, x):
        ...         a, b = x.exp(), x.sin()
        ...         return a.sum() + b.sum()
        >>> ep = torch.export.export(Net(), (torch.ones(256),))
        >>> new_ep, result = optimize(ep)
        >>> result.optimal, result.peak_bytes <= result.lower_bound_bytes
        (True, True)
    """
    ep = functional(ep)
    gp = graph_problem(ep)
    result = schedule(gp.problem, method, ScheduleOptions(time_limit=time_limit))
    new = ep._update(reordered_module(gp, ep.graph_module, result.op_order), ep.graph_signature)
    return new, result


def seeded_inputs(ep: ExportedProgram, seed: int = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Random ``(args, kwargs)`` for ``ep.module()``, from the user inputs' shapes and dtypes.

    Floats are standard normal, integers in ``[0, 8)``, booleans fair coins,
    all from one generator seeded with ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    by_name = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    flat: list[Any] = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        val = by_name[spec.arg.name].meta.get("val") if hasattr(spec.arg, "name") else None
        if not isinstance(val, torch.Tensor):
            flat.append(getattr(spec.arg, "value", val))
            continue
        shape = tuple(int(d) for d in val.shape)
        if val.dtype.is_floating_point:
            x = torch.randn(shape, generator=gen).to(val.dtype)
        elif val.dtype == torch.bool:
            x = torch.rand(shape, generator=gen) < 0.5
        else:
            x = torch.randint(0, 8, shape, generator=gen).to(val.dtype)
        flat.append(x)
    args, kwargs = torch.utils._pytree.tree_unflatten(flat, ep.call_spec.in_spec)
    return tuple(args), dict(kwargs)


def run(ep: ExportedProgram, seed: int = 0) -> list[Any]:
    """``ep`` run eagerly on :func:`seeded_inputs`; the outputs, flattened.

    Raises:
        VerificationError: the program fails to run.
    """
    args, kwargs = seeded_inputs(ep, seed)
    try:
        with torch.no_grad():
            out = ep.module()(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure of the model is reported
        raise VerificationError(f"the program failed to run: {type(e).__name__}: {e}") from None
    return torch.utils._pytree.tree_leaves(out)


def same_outputs(a: ExportedProgram, b: ExportedProgram, seed: int = 0) -> tuple[int, float]:
    """Run both programs on the same seeded inputs; every output must be ``torch.equal``.

    Returns:
        The number of outputs and the largest absolute difference (0.0).

    Raises:
        VerificationError: an output differs, or a program fails to run.
    """
    want, got = run(a, seed), run(b, seed)
    if len(want) != len(got):
        raise VerificationError(f"{len(want)} outputs vs {len(got)}")
    for i, (x, y) in enumerate(zip(want, got, strict=True)):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or not torch.equal(x, y):
                diff = (
                    float((x.double() - y.double()).abs().max())
                    if isinstance(y, torch.Tensor) and x.shape == y.shape
                    else float("inf")
                )
                raise VerificationError(f"output {i} differs (max abs diff {diff:g})")
        elif x != y:
            raise VerificationError(f"output {i} differs: {x!r} vs {y!r}")
    return len(want), 0.0


def export_model(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> ExportedProgram:
    """``torch.export.export(module, args, kwargs)``, functionalised (:func:`functional`),
    with static shapes: what :func:`optimize` and the ``.pt2`` format take.

    Raises:
        UnsupportedModelError: ``torch.export`` refuses the module (data-dependent
            control flow, unsupported Python); one line naming the reason.
    """
    try:
        ep = torch.export.export(module, args, kwargs)
    except Exception as e:  # noqa: BLE001 - every export failure is the model's
        text = str(e).strip()
        first = text.splitlines()[0] if text else "no reason given"
        raise UnsupportedModelError(
            f"torch.export cannot export {type(module).__name__}: {type(e).__name__}: {first}"
        ) from None
    return functional(ep)
