"""The scheduling problem representation shared by every engine."""

from serenity.ir.problem import Problem

__all__ = ["Problem"]
