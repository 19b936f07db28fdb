"""Models serenity builds itself: the bundled example (benchmark networks later)."""

from serenity.zoo.example import build_example

__all__ = ["build_example"]
