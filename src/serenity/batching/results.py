"""The results file of a batch: JSON lines appended as models finish, and resumed.

The JSON-lines file is the journal: one line per finished model, written and
flushed the moment the result arrives, so a crash of the whole run (or
SIGINT) loses at most the models still running. Reading it back gives the
models a rerun can skip. Parquet is a conversion of the journal at the end
of a run (one row per model, the last line of a model winning).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from serenity.errors import UsageError

#: The extra that brings pyarrow for ``--format parquet``.
PARQUET_EXTRA = "serenity[parquet]"


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete result line of a journal, in file order.

    A line that does not parse (the tail of a run killed mid-write) is
    skipped. A missing file has no results.

    Raises:
        UsageError: the file exists but cannot be read.
    """
    p = Path(path)
    if not p.exists():
        return []
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read results file {p}: {e}") from None
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "model" in row and "sha256" in row:
            rows.append(row)
    return rows


def finished(
    path: str | os.PathLike[str], settings: dict[str, Any], *, retry: bool = False
) -> dict[tuple[str, str], dict[str, Any]]:
    """The results a rerun keeps, by ``(model, sha256)``: the last line of each.

    With ``retry``, lines whose status is not ``ok`` are not kept (those
    models run again).

    Raises:
        UsageError: a line was made with other settings (method, time limit,
            memory model...): one results file holds one kind of run.
    """
    done: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_results(path):
        if row.get("settings") != settings:
            theirs, ours = row.get("settings") or {}, settings
            diff = [k for k in ours if theirs.get(k) != ours[k]] or ["settings"]
            raise UsageError(
                f"{path} holds results made with other settings ({', '.join(diff)} differ: "
                f"{', '.join(f'{k}={theirs.get(k)!r}' for k in diff)}); choose another --out"
            )
        if row.get("sha256") and (not retry or row.get("status") == "ok"):
            done[(row["model"], row["sha256"])] = row
    return done


class Journal:
    """Append result lines to a JSON-lines file, one flushed line per result.

    Opening it drops a partial last line (left by a run killed mid-write), so
    every line stays whole. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def __enter__(self) -> Journal:
        try:
            if self.path.exists():
                data = self.path.read_bytes()
                if data and not data.endswith(b"\n"):
                    with open(self.path, "r+b") as f:
                        f.truncate(data.rfind(b"\n") + 1)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        except OSError as e:
            raise UsageError(f"cannot write results file {self.path}: {e.strerror}") from None
        return self

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one JSON line and flush it to the OS."""
        assert self._file is not None, "use Journal as a context manager"
        self._file.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._file.flush()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def check_parquet() -> None:
    """Raise a one-line :class:`UsageError` naming the extra when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(f"--format parquet needs pyarrow: pip install '{PARQUET_EXTRA}'") from None


def write_parquet(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write result rows as a Parquet table (temp file + rename); the row count.

    The last row of each ``(model, sha256)`` wins. Nested fields (``stats``,
    ``timings``, ``settings``, ``rewrite``, ``plan``, ``verified``) are JSON
    strings, so rows from different engines share one schema; ``schedule``
    is a list of strings.
    """
    check_parquet()
    import pyarrow as pa
    import pyarrow.parquet as pq

    last: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        last[(row["model"], row["sha256"])] = row
    flat = [
        {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
        for row in last.values()
    ]
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        columns = dict.fromkeys(k for row in flat for k in row)  # every row's keys, in order
        table = pa.Table.from_pydict({k: [row.get(k) for row in flat] for k in columns})
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {e.strerror}") from None
    return len(flat)
