"""Every file a command writes, written as one transaction.

A command stages each output (the model, its weights, the JSON report, the
plan, markdown) in a hidden staging folder beside its target; only when all
of them are written are they renamed into place. On any failure, or an
interrupt, the staging folders are removed: no output appears, and files that
existed before are untouched (a rename replaces a file only at commit).

A staged output keeps its own file name, so files a writer puts beside it
(ONNX's ``<out>.data``, referred to by that name from inside the model) are
staged and committed with it.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with transaction() as tx:
    ...     _ = tx.stage(d / "a.json").write_text("{}")
    ...     _ = tx.stage(d / "b.md").write_text("# b")
    >>> sorted(p.name for p in d.iterdir())
    ['a.json', 'b.md']
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from serenity.errors import UsageError


def os_error_message(e: OSError, what: str) -> str:
    """A one-line message for an OS error met while doing ``what`` (a full disk,
    a read-only or missing folder, a permission), naming the file."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EISDIR: "it is a directory",
        errno.ENOENT: "no such file or directory",
        errno.EDQUOT: "disk quota exceeded",
    }.get(e.errno or 0, e.strerror or type(e).__name__)
    where = f" ({e.filename})" if e.filename else ""
    return f"cannot {what}: {reason}{where}"


def check_new_file(
    flag: str, path: str | os.PathLike[str] | None, taken: Sequence[str | os.PathLike[str]]
) -> None:
    """Refuse a path given to ``flag`` that would overwrite one of ``taken`` (the
    model, other outputs) or cannot be created; nothing when ``path`` is empty.

    Checked before anything is written, so a bad path leaves no files behind.

    Raises:
        UsageError: one line naming the flag and the clash.
    """
    if not path:
        return
    target = Path(path)
    for other in taken:
        if target.resolve() == Path(other).resolve():
            raise UsageError(f"{flag} {target} would overwrite {other}; choose another path")
    if target.is_dir():
        raise UsageError(f"{flag} {target} is a directory; give a file name")
    if not target.parent.exists():
        raise UsageError(f"{flag} {target}: directory {target.parent} does not exist")


def write_bytes(tx: Outputs | None, path: str | os.PathLike[str], data: bytes) -> None:
    """Put ``data`` at ``path``: staged in ``tx``, or alone in a transaction of its
    own (a temporary file and a rename) when there is none.

    Raises:
        UsageError: the file cannot be written (the message names why).
    """
    try:
        if tx is not None:
            tx.stage(path).write_bytes(data)
            return
        with transaction() as own:
            own.stage(path).write_bytes(data)
    except OSError as e:
        raise UsageError(os_error_message(e, f"write {path}")) from None


class Outputs:
    """The files of one transaction (see :func:`transaction`)."""

    def __init__(self) -> None:
        self._staging: dict[Path, Path] = {}  # target folder -> its staging folder
        self._given: dict[Path, Path] = {}  # staging folder -> the folder as the caller wrote it

    def stage(self, target: str | os.PathLike[str]) -> Path:
        """Where to write ``target`` now; it appears at ``target`` on commit.

        Raises:
            UsageError: the staging folder cannot be made (the message names why).
        """
        final = Path(target)
        folder = final.parent.resolve()
        staging = self._staging.get(folder)
        if staging is None:
            staging = folder / f".serenity-{os.getpid()}-{len(self._staging)}.tmp"
            try:
                staging.mkdir()
            except FileExistsError:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
            except OSError as e:
                raise UsageError(os_error_message(e, f"write to {final.parent}")) from None
            self._staging[folder] = staging
            self._given[staging] = final.parent
        return staging / final.name

    def staged_name(self, path: Path) -> Path:
        """The final path of a staged path, spelt as the caller spelt its folder."""
        given = self._given.get(path.parent)
        return path if given is None else given / path.name

    def commit(self) -> list[Path]:
        """Rename every staged file into place; returns the final paths."""
        done: list[Path] = []
        for folder, staging in self._staging.items():
            for f in sorted(staging.iterdir()):
                target = folder / f.name
                try:
                    os.replace(f, target)
                except OSError as e:
                    raise UsageError(os_error_message(e, f"write {target}")) from None
                done.append(target)
        self._cleanup()
        return done

    def abort(self) -> None:
        """Remove every staged file; nothing appears."""
        self._cleanup()

    def _cleanup(self) -> None:
        for staging in self._staging.values():
            with contextlib.suppress(OSError):
                shutil.rmtree(staging, ignore_errors=True)
        self._staging.clear()
        self._given.clear()


@contextlib.contextmanager
def transaction() -> Iterator[Outputs]:
    """Stage outputs in the block; commit them all at its end, or none on any error."""
    tx = Outputs()
    try:
        yield tx
    except BaseException:
        tx.abort()
        raise
    tx.commit()
