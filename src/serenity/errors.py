"""The exceptions serenity raises for bad input.

Every error a user can cause derives from :class:`SerenityError`; the CLI turns
one into a one-line message and exit status 2, never a traceback. Messages name
the object at fault (file, node, tensor) and, where there is one, the fix.
"""

from __future__ import annotations

import re

#: Characters that would break a one-line message (newlines, tabs, escapes).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def one_line(message: str) -> str:
    """``message`` with every control character written as its escape (``\\n``).

    User-controlled text (file names, tensor names) can hold newlines; the CLI
    prints an error as exactly one line.

    Example:
        >>> one_line("model file not found: a\\nb.onnx")
        'model file not found: a\\\\nb.onnx'
    """
    return CONTROL_CHARACTERS.sub(lambda m: repr(m.group())[1:-1], message)


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
