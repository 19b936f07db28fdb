"""Whether the compiled extensions may run: ``SERENITY_PURE_PYTHON`` unset or ``0``
(``1`` forces every pure-Python reference: the search core, the pathwidth decision
and the minimum cuts)."""

from __future__ import annotations

import os


def native_wanted() -> bool:
    """False when ``SERENITY_PURE_PYTHON`` asks for the pure-Python references."""
    return os.environ.get("SERENITY_PURE_PYTHON", "") in ("", "0")
