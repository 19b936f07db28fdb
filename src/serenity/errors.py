"""The exceptions serenity raises for bad input.

Every error a user can cause derives from :class:`SerenityError`; the CLI turns
one into a one-line message and exit status 2, never a traceback. Messages name
the object at fault (file, node, tensor) and, where there is one, the fix.
"""

from __future__ import annotations


class SerenityError(Exception):
    """Base class of every error caused by the caller's input."""


class ModelError(SerenityError):
    """The model file is missing, unreadable, truncated or malformed."""


class CycleError(ModelError):
    """The graph has a cycle, so no operator order exists."""


class UnknownShapeError(ModelError):
    """Some activation tensor has no static size after shape inference."""


class UnsupportedModelError(ModelError):
    """The model uses a feature serenity cannot schedule (e.g. a non-tensor value)."""


class UsageError(SerenityError):
    """The arguments are inconsistent (e.g. the output path equals the input path)."""


class VerificationError(SerenityError):
    """The rewritten model does not compute the same outputs as the original."""
