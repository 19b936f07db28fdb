"""Scheduling engines and their common result type."""

from serenity.schedule.engines import DEFAULT_METHOD, ENGINES, schedule
from serenity.schedule.heuristics import HEURISTICS
from serenity.schedule.result import ScheduleOptions, ScheduleResult, result_from_order

__all__ = [
    "DEFAULT_METHOD",
    "ENGINES",
    "HEURISTICS",
    "ScheduleOptions",
    "ScheduleResult",
    "result_from_order",
    "schedule",
]
