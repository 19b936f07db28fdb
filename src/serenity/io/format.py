"""The one interface every model format implements, and the choice of format by content.

A format is one module in :mod:`serenity.io` that defines ``FORMAT``, a
:class:`Format`: how to recognise its files and how to load one into a
:class:`Model`. The module is registered with one line in
:data:`FORMAT_MODULES`. Everything above ``io`` (``api``, ``cli``, ``bench``,
reports) speaks only of :class:`Model`: it never asks which format it holds.

A :class:`Model` is the scheduling problem of one file plus the way back to
the file:

* ``problem`` (:class:`~serenity.ir.Problem`): ops and activation tensors as
  dense ids, with names for the way back;
* :meth:`Model.reordered`: the model in memory with its ops in a new order
  and, where the format can carry one (:attr:`Model.holds_plan`), an arena
  plan (byte offset per activation tensor);
* :meth:`Model.verify`: run the original and a reordered model in the
  format's own runtime and compare every output;
* :meth:`Model.write`: write a reordered model without half-written files;
* :meth:`Model.input_files` / :meth:`Model.output_files`: the files a load
  reads and a write creates, so that no output ever overwrites an input.

Formats are tried by content first (:attr:`Format.sniff` on the file's first
bytes), then by file-name suffix; a format's heavy runtime (LiteRT, torch) is
imported only when its functions run, so listing formats stays cheap.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from serenity.errors import ModelError, UsageError
from serenity.ir import Problem

#: The format modules, tried in this order; each defines ``FORMAT``. One line per format.
#: TFLite's test (``TFL3`` at bytes 4..8) and .pt2's (a zip) are the stricter, so
#: they come before ONNX's (first byte 0x08).
FORMAT_MODULES: tuple[str, ...] = (
    "serenity.io.tflite",
    "serenity.io.pt2",
    "serenity.io.onnx_import",
)

#: Bytes read from the head of a file to recognise its format.
SNIFF_BYTES = 64


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of running an original model and a rewritten or reordered one.

    Attributes:
        outputs: Names of the outputs compared.
        exact: Bitwise equality was required (else the format's tolerances).
        max_abs_diff: Largest absolute difference over all float outputs.
        filled_weights: Weights whose data were missing and filled with seeded values.
        seed: Seed of the random inputs.
        notes: Remarks for the report (non-finite outputs, the noise-floor clause).
        noise_floor: Set when an output missed the tolerances but passed the
            noise-floor clause (:func:`serenity.io.verify.verify_same_outputs`):
            the largest difference between the original and itself run
            without the runtime's graph optimizations.
        runtime: The runtime both models ran in (``onnxruntime``, ``LiteRT``...).
    """

    outputs: tuple[str, ...]
    exact: bool
    max_abs_diff: float
    filled_weights: int
    seed: int
    notes: list[str] = field(default_factory=list)
    noise_floor: float | None = None
    runtime: str = "onnxruntime"


class Model(ABC):
    """A loaded model of some format: its scheduling problem and the way back.

    Subclasses are dataclasses that hold at least ``path``, ``problem`` and
    ``input_shapes``. ``Encoded`` below means the format's in-memory model
    (an ``onnx.ModelProto``, a flatbuffer's bytes, an ``ExportedProgram``).
    """

    #: Short name of the format (``onnx``, ``tflite``, ``pt2``).
    format_name: ClassVar[str]
    #: Whether a written file can carry an arena plan (offsets per tensor).
    holds_plan: ClassVar[bool] = False
    #: The runtime :meth:`verify` runs (for messages).
    runtime: ClassVar[str] = "the format's runtime"
    #: Alignment (bytes) of the offsets and sizes of an arena plan for this format's
    #: runtime; ``None``: the planner's default (:data:`serenity.plan.DEFAULT_ALIGNMENT`).
    plan_alignment: ClassVar[int | None] = None

    path: Path
    problem: Problem
    input_shapes: dict[str, tuple[int, ...]]

    @property
    @abstractmethod
    def num_nodes(self) -> int:
        """Every operator of the model, scheduled or not."""

    #: Names of weights the file refers to but that are not on disk.
    missing_weights: Sequence[str] = ()

    def input_files(self) -> list[Path]:
        """Every file loading this model reads or refers to (the model first)."""
        return [self.path]

    def output_files(self, out: Path) -> list[Path]:
        """Every file that writing to ``out`` may create (``out`` first)."""
        return [out]

    @abstractmethod
    def reordered(self, order: Sequence[int], offsets: Mapping[int, int] | None = None) -> Any:
        """The model in memory with its ops in ``order`` (op ids of ``problem``).

        Args:
            order: A topological order of ``problem``'s ops.
            offsets: Byte offset in one arena per activation tensor id, to
                embed where :attr:`holds_plan`; formats that cannot hold a plan
                ignore it.

        Raises:
            ValueError: ``order`` is not a topological order of the problem.
        """

    @abstractmethod
    def verify(self, candidate: Any, *, exact: bool = True, seed: int = 0) -> VerifyReport:
        """Run this model and ``candidate`` (from :meth:`reordered`, possibly of a
        rewritten model) on the same seeded inputs and compare every output:
        bitwise when ``exact``, else within the format's tolerances.

        Raises:
            VerificationError: an output differs or a model fails to run.
        """

    @abstractmethod
    def write(self, candidate: Any, out: Path) -> list[Path]:
        """Write ``candidate`` (from :meth:`reordered`) to ``out`` atomically.

        Returns:
            The paths written.

        Raises:
            ModelError: the file cannot be written.
        """

    def runtime_warning(self, candidate: Any) -> str | None:
        """Why the format's runtime may refuse ``candidate``, or ``None``.

        A quick static check, made on every write without ``--verify`` (which
        runs the model instead): custom operators, versions newer than the
        runtime knows.
        """
        return None


@dataclass(frozen=True)
class Format:
    """How to recognise and load one model format.

    Attributes:
        name: Short name, also :attr:`Model.format_name`.
        suffixes: File-name suffixes, lower case, used when no content test answers.
        sniff: True when a file's first :data:`SNIFF_BYTES` bytes are this format's.
        load: ``load(path, input_shapes) -> Model``; raises ``SerenityError``s.
        extra: The pip extra that provides the format's runtime, if any.
    """

    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    load: Callable[[Path, Mapping[str, tuple[int, ...]]], Model]
    extra: str | None = None


def formats() -> list[Format]:
    """The registered formats, in :data:`FORMAT_MODULES` order."""
    return [importlib.import_module(m).FORMAT for m in FORMAT_MODULES]


def _readable_file(path: Path) -> bytes:
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"not a file: {path}")
    try:
        with path.open("rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None


def format_of(path: str | os.PathLike[str]) -> Format:
    """The format of the file at ``path``: by content, else by suffix.

    Raises:
        ModelError: the file is missing, unreadable, or of no known format.
    """
    p = Path(path)
    head = _readable_file(p)
    known = formats()
    for fmt in known:
        if fmt.sniff(head):
            return fmt
    for fmt in known:
        if p.suffix.lower() in fmt.suffixes:
            return fmt
    names = ", ".join(f"{f.name} ({'/'.join(f.suffixes)})" for f in known)
    raise ModelError(f"{p}: not a model format serenity reads (known: {names})")


def load(
    path: str | os.PathLike[str], input_shapes: Mapping[str, Sequence[int]] | None = None
) -> Model:
    """Load the model at ``path`` in whatever registered format it is.

    Args:
        path: The model file.
        input_shapes: Dims for graph inputs with symbolic dims, by input name.

    Raises:
        SerenityError: see each format's loader (missing file, malformed model,
            cycle, unknown shapes, unsupported op).
    """
    fmt = format_of(path)
    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    return fmt.load(Path(path), shapes)


def parse_input_shapes(specs: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=1,3,224,224`` strings (the ``--input-shape`` option).

    Raises:
        UsageError: a spec is malformed, a dim is not a positive integer, or
            one input is given twice.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",")) if dims.strip() else ()
        except ValueError:
            shape = (-1,)
        if not sep or not name or any(d <= 0 for d in shape):
            raise UsageError(
                f"bad --input-shape '{spec}': expected NAME=d0,d1,... with positive integer dims"
            )
        if name in shapes and shapes[name] != shape:
            raise UsageError(f"--input-shape gives input '{name}' twice, with different dims")
        shapes[name] = shape
    return shapes


def check_output_path(model: Model, out: str | os.PathLike[str]) -> Path:
    """Refuse an output path whose files would overwrite a file the model reads.

    Raises:
        UsageError: ``out`` (or a file writing it creates, such as ONNX's
            ``<out>.data``) is the input model or one of its weight files, or
            ``out`` is a directory or in a missing directory.
    """
    target = Path(out)
    for p in model.output_files(target):
        for q in model.input_files():
            if same_file(p, q):
                raise UsageError(
                    f"output {target} would overwrite the input {q}; choose another path"
                )
    if target.is_dir():
        raise UsageError(f"output {target} is a directory; give a file name")
    if not target.parent.exists():
        raise UsageError(f"output directory {target.parent} does not exist")
    return target


def same_file(p: Path, q: Path) -> bool:
    """``p`` and ``q`` name one file (by path, or as links to one existing file)."""
    if p.resolve() == q.resolve():
        return True
    try:
        return p.exists() and q.exists() and p.samefile(q)
    except OSError:
        return False
