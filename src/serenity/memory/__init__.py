"""The memory model: simulate an order, lower bounds."""

from serenity.memory.model import Timeline, inplace_saving, lower_bound, peak_bytes, simulate

__all__ = ["Timeline", "inplace_saving", "lower_bound", "peak_bytes", "simulate"]
