"""Plain data behind every figure: memory timelines, live sets, arena rectangles.

Nothing here imports matplotlib: the figures (:mod:`serenity.report.figures`)
draw these records, and the tests check them directly. Every function is
deterministic (ties break on ids, names, then position).

How large graphs stay small and readable:

* a timeline keeps only the steps where the footprint changes, and above
  :data:`MAX_TIMELINE_POINTS` points the minimum and the maximum of each bucket
  of consecutive steps (the peak is always kept exactly);
* a live set lists its :data:`MAX_LIVE_SEGMENTS` largest tensors and one
  "others" segment for the rest;
* an arena map (in :mod:`serenity.report.figures`) draws the largest
  rectangles as vector shapes with a hover title and the rest as one
  rasterised layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from serenity.ir import Problem
from serenity.memory import simulate
from serenity.plan import ArenaPlan, Buffer, align_up

#: Most points one timeline keeps (min and max per bucket above this).
MAX_TIMELINE_POINTS = 1200
#: Most tensors a live-set bar names; the rest form one "others" segment.
MAX_LIVE_SEGMENTS = 12


@dataclass(frozen=True)
class Series:
    """The footprint of one order over time, ready to draw as a step line.

    Attributes:
        label: Legend text (``"file order"``, ``"optimum (proven)"``...).
        role: ``file``, ``heuristic``, ``optimum`` or ``rewritten``: picks the colour.
        steps: x values: step ``-1`` is the state before the first op, step
            ``i`` the ``i``-th op of the order.
        values: Footprint in bytes at each of ``steps`` (held until the next).
        peak_bytes: The order's peak.
        peak_step: The first step at the peak.
        peak_op: Name of the op running at the peak (``""``: the initial state).
        num_steps: Ops in the order (before simplification).
    """

    label: str
    role: str
    steps: tuple[int, ...]
    values: tuple[int, ...]
    peak_bytes: int
    peak_step: int
    peak_op: str
    num_steps: int


def simplify_steps(
    values: Sequence[int], first_step: int = -1, max_points: int = MAX_TIMELINE_POINTS
) -> tuple[list[int], list[int]]:
    """Points of a step function (value ``values[k]`` from step ``first_step + k``)
    that draw the same picture with at most about ``max_points`` points.

    Keeps the first step of every run of equal values and the last step; if
    that is still above ``max_points``, the steps are cut into
    ``max_points // 2`` buckets and each keeps its lowest and highest point
    (in step order), besides the first and the last point: at most
    ``max_points + 2`` points, and the peak and the lowest value survive
    exactly.

    Complexity: O(len(values)).

    Example:
        >>> simplify_steps([1, 1, 3, 3, 2])
        ([-1, 1, 3], [1, 3, 2])
    """
    xs: list[int] = []
    ys: list[int] = []
    for k, v in enumerate(values):
        if not ys or v != ys[-1] or k == len(values) - 1:
            xs.append(first_step + k)
            ys.append(v)
    if len(xs) <= max_points:
        return xs, ys
    buckets = max(1, max_points // 2)
    size = -(-len(xs) // buckets)
    keep = {0, len(xs) - 1}  # the first and the last point fix the picture's ends
    for start in range(0, len(xs), size):
        idx = range(start, min(start + size, len(xs)))
        keep.add(min(idx, key=lambda i: (ys[i], i)))
        keep.add(max(idx, key=lambda i: (ys[i], -i)))
    out_x = [xs[i] for i in sorted(keep)]
    out_y = [ys[i] for i in sorted(keep)]
    return out_x, out_y


def timeline_series(
    problem: Problem,
    order: Sequence[int],
    label: str,
    role: str,
    *,
    inplace: bool = False,
    max_points: int = MAX_TIMELINE_POINTS,
) -> Series:
    """Simulate ``order`` and keep the points that draw its footprint over time.

    Complexity: O(n + e) (one :func:`serenity.memory.simulate`).
    """
    tl = simulate(problem, order, inplace=inplace)
    xs, ys = simplify_steps((tl.initial_bytes, *tl.step_bytes), -1, max_points)
    op = problem.op_names[order[tl.peak_step]] if tl.peak_step >= 0 else ""
    return Series(label, role, tuple(xs), tuple(ys), tl.peak_bytes, tl.peak_step, op, len(order))


@dataclass(frozen=True)
class LiveTensor:
    """One tensor held at the peak."""

    name: str
    size: int
    producer: str
    op_type: str

    def describe(self) -> str:
        """``name: size, made by producer (type)`` or ``..., a graph input``."""
        made = (
            "a graph input"
            if self.op_type == "input"
            else (f"made by {self.producer} ({self.op_type})")
        )
        return f"{self.name}: {fmt_bytes(self.size)}, {made}"


@dataclass(frozen=True)
class LiveSet:
    """The tensors live at an order's (first) peak step, largest first.

    Attributes:
        label: Which order (``"file order"``, ``"optimum"``...).
        peak_bytes: Their total (the order's peak).
        step: The peak step (``-1``: before the first op).
        op: The op running at the peak (``""``: none).
        tensors: Every live tensor, largest first (ties: name).
    """

    label: str
    peak_bytes: int
    step: int
    op: str
    tensors: tuple[LiveTensor, ...]

    def segments(self, limit: int = MAX_LIVE_SEGMENTS) -> list[tuple[str, int, str]]:
        """``(label, bytes, hover text)`` of the ``limit`` largest tensors, then one
        ``others`` segment for the rest (absent when nothing is left)."""
        out = [(t.name, t.size, t.describe()) for t in self.tensors[:limit]]
        rest = self.tensors[limit:]
        if rest:
            total = sum(t.size for t in rest)
            out.append(
                (f"{len(rest)} others", total, f"{len(rest)} smaller tensors: {fmt_bytes(total)}")
            )
        return out


def live_set(
    problem: Problem, order: Sequence[int], label: str, *, inplace: bool = False
) -> LiveSet:
    """The live set at the first peak step of ``order``.

    Complexity: O(n + e + k log k) for ``k`` live tensors.
    """
    tl = simulate(problem, order, inplace=inplace)
    tensors = []
    for t in tl.live_at_peak:
        prod = problem.producer[t]
        tensors.append(
            LiveTensor(
                problem.tensor_names[t],
                problem.tensor_sizes[t],
                problem.op_names[prod] if prod >= 0 else "graph input",
                problem.op_types[prod] if prod >= 0 else "input",
            )
        )
    tensors.sort(key=lambda x: (-x.size, x.name))
    op = problem.op_names[order[tl.peak_step]] if tl.peak_step >= 0 else ""
    return LiveSet(label, tl.peak_bytes, tl.peak_step, op, tuple(tensors))


@dataclass(frozen=True)
class Rect:
    """One buffer in the arena map: steps ``x0 .. x1 - 1`` at ``offset .. offset + size``."""

    x0: int
    x1: int
    offset: int
    size: int
    label: str

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * self.size


@dataclass(frozen=True)
class ArenaMap:
    """A plan as time x address rectangles.

    Attributes:
        title: Panel title (the planner and what it achieves).
        planner: The planner's name.
        rects: One per buffer of non-zero size, largest area first.
        arena_bytes: The plan's arena.
        lower_bound_bytes: The most aligned bytes live at one step.
        first_step: Leftmost step (``-1``: graph inputs).
        last_step: Rightmost step.
        optimal: The plan is proven minimal.
    """

    title: str
    planner: str
    rects: tuple[Rect, ...]
    arena_bytes: int
    lower_bound_bytes: int
    first_step: int
    last_step: int
    optimal: bool


def arena_map(buffers: Sequence[Buffer], plan: ArenaPlan, title: str = "") -> ArenaMap:
    """The rectangles of ``plan`` (sizes aligned, as placed), largest area first.

    Complexity: O(b log b).
    """
    rects = []
    for b, off in zip(buffers, plan.offsets, strict=True):
        size = align_up(b.size, plan.alignment)
        if not size:
            continue
        steps = (
            f"step {b.first_step}"
            if b.first_step == b.last_step
            else (f"steps {b.first_step}..{b.last_step}")
        )
        label = f"{b.name or 'buffer'}: {fmt_bytes(b.size)} at offset {off:,}, {steps}"
        rects.append(Rect(b.first_step, b.last_step + 1, off, size, label))
    rects.sort(key=lambda r: (-r.area, r.x0, r.offset))
    first = min((b.first_step for b in buffers), default=0)
    last = max((b.last_step for b in buffers), default=0)
    verdict = (
        "optimal"
        if plan.optimal
        else (f"{plan.arena_bytes / max(plan.lower_bound_bytes, 1) - 1:.1%} above the bound")
    )
    title = title or f"{plan.planner}: {fmt_bytes(plan.arena_bytes)} ({verdict})"
    return ArenaMap(
        title,
        plan.planner,
        tuple(rects),
        plan.arena_bytes,
        plan.lower_bound_bytes,
        first,
        last,
        plan.optimal,
    )


def fmt_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (one decimal).

    Example:
        >>> fmt_bytes(512), fmt_bytes(1536), fmt_bytes(23_554_176)
        ('512 B', '1.5 KiB', '22.5 MiB')
    """
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"
