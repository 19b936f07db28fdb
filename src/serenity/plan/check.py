"""Prove an arena plan valid, independently of the planners.

A plan is valid when every offset is a non-negative multiple of the alignment,
every buffer (its size rounded up to the alignment) ends within the arena, the
arena is exactly the end of the highest buffer, and no two buffers live at the
same step share a byte. The check sweeps the steps and shares no code with the
planners, so a planner bug cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from serenity.plan.lifetimes import Buffer, align_up

if TYPE_CHECKING:
    from serenity.plan.planners import ArenaPlan


class InvalidPlanError(ValueError):
    """An arena plan breaks an invariant (a planner bug, not a user error)."""


def check_plan(buffers: Sequence[Buffer], plan: ArenaPlan) -> None:
    """Raise :class:`InvalidPlanError` unless ``plan`` is a valid placement of ``buffers``.

    Args:
        buffers: The buffers, in the order the plan's offsets refer to.
        plan: The plan to check.

    Raises:
        InvalidPlanError: naming the buffer(s) at fault, the step and the byte
            ranges.

    Complexity: O(T + L log L) per step, O(T L log L) overall, for ``T`` steps
    and at most ``L`` buffers live at once.
    """
    a = plan.alignment
    if a < 1:
        raise InvalidPlanError(f"alignment {a} must be >= 1")
    if len(plan.offsets) != len(buffers):
        raise InvalidPlanError(f"{len(plan.offsets)} offsets for {len(buffers)} buffers")
    top = 0
    for b, off in zip(buffers, plan.offsets, strict=True):
        if off < 0 or off % a:
            raise InvalidPlanError(
                f"buffer '{b.name}' has offset {off}, not a non-negative multiple of {a}"
            )
        if b.first_step > b.last_step:
            raise InvalidPlanError(
                f"buffer '{b.name}' has an empty lifetime {b.first_step}..{b.last_step}"
            )
        size = align_up(b.size, a)
        if size:
            top = max(top, off + size)
    if top != plan.arena_bytes:
        raise InvalidPlanError(
            f"arena_bytes is {plan.arena_bytes} but the highest buffer ends at byte {top}"
        )
    if not buffers:
        return
    start = min(b.first_step for b in buffers)
    end = max(b.last_step for b in buffers)
    starting: dict[int, list[int]] = {}
    for k, b in enumerate(buffers):
        if align_up(b.size, a):
            starting.setdefault(b.first_step, []).append(k)
    live: list[int] = []
    for step in range(start, end + 1):
        live = [k for k in live if buffers[k].last_step >= step] + starting.get(step, [])
        ranges = sorted(
            (plan.offsets[k], plan.offsets[k] + align_up(buffers[k].size, a), k) for k in live
        )
        reach, holder = -1, -1
        for lo, hi, k in ranges:
            if lo < reach:
                p, q = buffers[holder], buffers[k]
                raise InvalidPlanError(
                    f"buffers '{p.name}' (bytes {plan.offsets[holder]}..{reach - 1}) and "
                    f"'{q.name}' (bytes {lo}..{hi - 1}) overlap while both live at step {step}"
                )
            if hi > reach:
                reach, holder = hi, k
