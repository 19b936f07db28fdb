"""Output paths of reports and plots: checked before any work, written atomically.

Nothing here imports matplotlib, so the CLI can refuse a bad path or a missing
extra before it schedules anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from serenity.errors import UsageError
from serenity.io.outputs import check_new_file, write_bytes

#: The one-line message when the ``report`` extra is not installed.
MISSING_EXTRA = (
    "reports and plots need matplotlib, which is not installed: pip install 'serenity[report]'"
)


def require_matplotlib() -> None:
    """Raise :class:`UsageError` naming the extra to install when matplotlib is missing."""
    if find_spec("matplotlib") is None:
        raise UsageError(MISSING_EXTRA)


def plot_format(path: str) -> str:
    """``png`` or ``svg`` from ``path``'s suffix.

    Raises:
        UsageError: any other suffix.

    Example:
        >>> plot_format("timeline.SVG")
        'svg'
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise UsageError(f"--plot {path}: give a .png or .svg file name")
    return suffix


def check_output(
    flag: str, path: str | None, taken: Sequence[str | os.PathLike[str]] = (), *, plot: bool = False
) -> None:
    """Refuse ``path`` (given to ``flag``) before anything is computed: matplotlib
    missing, a ``--plot`` suffix other than .png/.svg, a path equal to one of
    ``taken`` (the model, other outputs), a directory, or a missing parent.

    Does nothing when ``path`` is ``None``.

    Raises:
        UsageError: one line naming the flag and the fix.
    """
    if path is None:
        return
    require_matplotlib()
    if plot:
        plot_format(path)
    check_new_file(flag, path, taken)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a
    failure leaves no half-written file.

    Raises:
        UsageError: the file cannot be written.
    """
    write_bytes(None, path, data)
