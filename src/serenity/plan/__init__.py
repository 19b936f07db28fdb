"""Arena planning: a byte offset for every activation buffer of a schedule.

``lifetimes(problem, order)`` gives the buffers and their live steps,
``plan(buffers, planner=...)`` places them in one arena, ``check_plan`` proves
a plan valid, ``ascii_chart`` draws it.
"""

from serenity.plan.chart import ascii_chart
from serenity.plan.check import InvalidPlanError, check_plan
from serenity.plan.lifetimes import (
    Buffer,
    align_up,
    lifetimes,
    live_bytes,
    max_live_bytes,
    tensor_lifetimes,
)
from serenity.plan.planners import (
    DEFAULT_ALIGNMENT,
    DEFAULT_PLANNER,
    DEFAULT_TIME_LIMIT,
    PLANNERS,
    ArenaPlan,
    best,
    cpsat,
    greedy_order,
    greedy_size,
    plan,
)

__all__ = [
    "DEFAULT_ALIGNMENT",
    "DEFAULT_PLANNER",
    "DEFAULT_TIME_LIMIT",
    "PLANNERS",
    "ArenaPlan",
    "Buffer",
    "InvalidPlanError",
    "align_up",
    "best",
    "ascii_chart",
    "check_plan",
    "cpsat",
    "greedy_order",
    "greedy_size",
    "lifetimes",
    "live_bytes",
    "max_live_bytes",
    "plan",
    "tensor_lifetimes",
]
