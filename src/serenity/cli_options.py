"""Command-line options that several commands share, each defined once.

``cli.py`` and the command modules it registers (``COMMAND_MODULES``) import
these; this module imports neither, so there is no import cycle.
"""

from __future__ import annotations

import argparse

from serenity.errors import UsageError
from serenity.memory.offchip import format_size, parse_size
from serenity.schedule import DEFAULT_METHOD, DEFAULT_SEARCH_MEMORY, ENGINES
from serenity.schedule.result import MAX_DEFAULT_THREADS


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


def add_search_memory(p: argparse.ArgumentParser, scope: str = "") -> None:
    """``--search-memory SIZE``: the exact engine's memory cap, in bytes
    (``args.search_memory``; :func:`search_memory_bytes` reads it)."""
    p.add_argument(
        "--search-memory",
        metavar="SIZE",
        default=format_size(DEFAULT_SEARCH_MEMORY),
        help="memory the exact search may hold (states, dead sets)"
        f"{scope}: bytes, or 512MiB, 4GiB (1024-based), 4GB (1000-based); at the cap it "
        "forgets, then stops and keeps its best order and bound "
        f"(default: {format_size(DEFAULT_SEARCH_MEMORY)})",
    )


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: searchers of the exact decision search (``args.threads``;
    :func:`threads_count` reads it)."""
    p.add_argument(
        "--threads",
        metavar="N",
        help="threads of the exact search's proofs: from two on, one lifts a second lower "
        "bound and the rest search, sharing its memory; the same peak as one when proven, "
        f"sooner (default: the CPUs this process may use, at most {MAX_DEFAULT_THREADS})",
    )


def threads_count(args: argparse.Namespace) -> int | None:
    """The searchers ``--threads`` gives (None: not given, the default).

    Raises:
        UsageError: not a whole number of at least 1.
    """
    if args.threads is None:
        return None
    try:
        threads = int(args.threads)
    except ValueError:
        threads = 0
    if threads < 1:
        raise UsageError(f"--threads must be a whole number >= 1, got {args.threads}")
    return threads


def search_memory_bytes(args: argparse.Namespace) -> int:
    """The bytes ``--search-memory`` gives (a positive size).

    Raises:
        UsageError: not a size, or zero.
    """
    try:
        size = parse_size(args.search_memory)
    except UsageError as error:
        raise UsageError(f"--search-memory: {error}") from None
    if size <= 0:
        raise UsageError(f"--search-memory must be a positive size, got {args.search_memory}")
    return size
