"""Command-line options that several commands share, each defined once.

``cli.py`` and the command modules it registers (``COMMAND_MODULES``) import
these; this module imports neither, so there is no import cycle.
"""

from __future__ import annotations

import argparse

from serenity.schedule import DEFAULT_METHOD, ENGINES


def add_input_shape(p: argparse.ArgumentParser, scope: str = "") -> None:
    """``--input-shape NAME=D0,D1,...`` (repeatable); ``scope`` ends the help text."""
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help=f"fix the dims of a graph input with symbolic dims{scope} (repeatable)",
    )


def add_inplace(p: argparse.ArgumentParser) -> None:
    """``--inplace``: the in-place memory model."""
    p.add_argument(
        "--inplace",
        action="store_true",
        help="memory model with in-place reuse: element-wise and reshape-like ops write "
        "over an input that dies there (not the default)",
    )


def add_method(p: argparse.ArgumentParser, what: str = "scheduling method") -> None:
    """``--method NAME``, one of :data:`serenity.schedule.ENGINES`."""
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=list(ENGINES),
        help=f"{what} (default: {DEFAULT_METHOD})",
    )


def add_time_limit(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--time-limit SECONDS`` (checked by :func:`serenity.cli.check_seconds`)."""
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help=help_text)
