"""Scheduling engines and their common result type."""

from serenity.schedule.engines import DEFAULT_METHOD, ENGINES, schedule
from serenity.schedule.fusion import Fusion, fuse
from serenity.schedule.heuristics import HEURISTICS
from serenity.schedule.ilp import ilp
from serenity.schedule.result import (
    DEFAULT_SEARCH_MEMORY,
    ScheduleOptions,
    ScheduleResult,
    default_threads,
    result_from_order,
)

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SEARCH_MEMORY",
    "ENGINES",
    "Fusion",
    "HEURISTICS",
    "ScheduleOptions",
    "ScheduleResult",
    "default_threads",
    "fuse",
    "ilp",
    "result_from_order",
    "schedule",
]
