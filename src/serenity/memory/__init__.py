"""The memory model: simulate an order, lower bounds."""

from serenity.memory.bounds import width_bound
from serenity.memory.model import (
    Timeline,
    inplace_saving,
    live_at_peak_steps,
    lower_bound,
    peak_bytes,
    peak_step_live_sets,
    simulate,
)

__all__ = [
    "Timeline",
    "inplace_saving",
    "live_at_peak_steps",
    "lower_bound",
    "peak_bytes",
    "peak_step_live_sets",
    "simulate",
    "width_bound",
]
