"""The scheduling problem representation shared by every engine."""

from serenity.ir.problem import Problem, ops_of

__all__ = ["Problem", "ops_of"]
