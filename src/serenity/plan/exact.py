"""The exact arena planner: a CP-SAT model over time x address rectangles.

Every buffer is a rectangle: a fixed time interval (its steps) and an address
interval of fixed length (its aligned size) whose start is a variable. No two
rectangles may overlap (``AddNoOverlap2D``); the objective is the arena, the
highest end. This is the dynamic storage allocation problem (NP-hard), so the
solver runs under a time limit, starts from a heuristic plan (a hint and an
upper bound), and reports whether it proved the arena optimal.

Offsets are searched in units of ``g``, the gcd of the aligned sizes: pushing
every buffer down until it rests on another (or on 0) never raises the arena,
so some optimal plan has every offset a sum of sizes, a multiple of ``g``.
That keeps the domains small without losing optimality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serenity._cpsat import roomy
from serenity.plan.lifetimes import Buffer


@dataclass(frozen=True)
class CpSatSolution:
    """What the CP-SAT planner found.

    Attributes:
        offsets: Byte offsets (the hint's when the solver found nothing better).
        arena: End of the highest buffer.
        proven: The solver proved ``arena`` minimal.
        stats: Status, proven bound (bytes), wall time, conflicts.
    """

    offsets: tuple[int, ...]
    arena: int
    proven: bool
    stats: dict[str, Any] = field(default_factory=dict)


def solve_cpsat(
    buffers: Sequence[Buffer],
    sizes: Sequence[int],
    alignment: int,
    lower_bound: int,
    hint: Sequence[int],
    time_limit: float | None,
    *,
    workers: int = 1,
) -> CpSatSolution:
    """Minimise the arena of ``buffers`` exactly with CP-SAT.

    Args:
        buffers: The buffers (their steps).
        sizes: Their sizes, already rounded up to ``alignment``.
        alignment: Offsets are multiples of it.
        lower_bound: A proven lower bound (most aligned bytes live at a step).
        hint: A valid plan (byte offsets); its arena is the upper bound.
        time_limit: Seconds (``None``: until proven).
        workers: Search workers; 1 (default) keeps runs reproducible.

    Returns:
        The best plan, never worse than ``hint``.

    Raises:
        RuntimeError: the solver calls the model invalid or infeasible (a bug:
            the hint is a solution).

    Complexity: exponential in the worst case; the model has ``b`` rectangles.
    """
    from ortools.sat.python import cp_model

    live = [i for i in range(len(buffers)) if sizes[i]]
    hint_arena = max((hint[i] + sizes[i] for i in live), default=0)
    if not live or hint_arena <= lower_bound:
        return CpSatSolution(tuple(hint), hint_arena, True, {"status": "bound reached"})
    g = math.gcd(alignment, *(sizes[i] for i in live))
    ub = -(-hint_arena // g)
    # A warm start only with time to use it (serenity._cpsat); the arena stays
    # bounded by the hint's, and the hint is returned when the solver finds worse.
    warm = roomy(time_limit)
    lb = -(-lower_bound // g)
    model = cp_model.CpModel()
    arena = model.new_int_var(lb, ub, "arena")
    starts: dict[int, Any] = {}
    times, spaces = [], []
    for i in live:
        b, s = buffers[i], sizes[i] // g
        x = model.new_int_var(0, ub - s, f"offset_{i}")
        starts[i] = x
        spaces.append(model.new_fixed_size_interval_var(x, s, f"bytes_{i}"))
        times.append(
            model.new_fixed_size_interval_var(
                b.first_step, b.last_step - b.first_step + 1, f"steps_{i}"
            )
        )
        model.add(x + s <= arena)
        if hint[i] % g == 0 and warm:
            model.add_hint(x, hint[i] // g)
    model.add_no_overlap_2d(times, spaces)
    if warm:
        model.add_hint(arena, ub)
    model.minimize(arena)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = max(time_limit, 0.01)
    status = solver.solve(model)
    stats: dict[str, Any] = {
        "status": solver.status_name(status),
        "seconds": round(solver.wall_time, 3),
        "conflicts": solver.num_conflicts,
    }
    if status in (cp_model.MODEL_INVALID, cp_model.INFEASIBLE):
        raise RuntimeError(
            f"CP-SAT arena model is {solver.status_name(status)}; the hint was valid"
        )
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):  # UNKNOWN: time ran out first
        stats["bound_bytes"] = lower_bound
        return CpSatSolution(tuple(hint), hint_arena, False, stats)
    stats["bound_bytes"] = max(lower_bound, int(solver.best_objective_bound) * g)
    found = solver.value(arena) * g
    if found >= hint_arena:
        return CpSatSolution(tuple(hint), hint_arena, status == cp_model.OPTIMAL, stats)
    offsets = [0] * len(buffers)
    for i in live:
        offsets[i] = solver.value(starts[i]) * g
    return CpSatSolution(tuple(offsets), found, status == cp_model.OPTIMAL, stats)
