"""The ``.pt2`` format: a ``torch.export`` archive (``torch.export.save``).

A ``.pt2`` file is a zip holding one ``ExportedProgram``. Loading it
functionalises in-place ops (:func:`serenity.torch.functional`), so the
written program is the functional one, with its ops in the new order; the
weights are carried along unchanged. The runtime is eager PyTorch
(``ep.module()``), which frees each value after its last use, so the peak
follows the order. torch is imported only when a ``.pt2`` is loaded (the
``torch`` extra).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from serenity.errors import ModelError, UsageError
from serenity.io.format import Format, Model, VerifyReport
from serenity.ir import Problem

#: A zip file's first four bytes (a local file header).
ZIP_MAGIC = b"PK\x03\x04"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's deprecation chatter (its own internals) kept off the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _torch_export() -> Any:
    try:
        import serenity.torch.export as tx
    except ImportError as e:
        raise ModelError(
            f"reading .pt2 files needs torch ({e.name} is missing): pip install 'serenity[torch]'"
        ) from None
    return tx


@dataclass
class Pt2Model(Model):
    """A loaded ``ExportedProgram`` (the pt2 :class:`Model`).

    Attributes:
        path: The file it came from.
        program: The program, functionalised; never modified.
        problem: Its activation graph (ops in graph order).
        graph_problem: The problem with its way back to the FX nodes.
        input_shapes: The user inputs' static shapes, by placeholder name.
    """

    path: Path
    program: Any
    problem: Problem
    graph_problem: Any
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    format_name: ClassVar[str] = "pt2"

    @property
    def num_nodes(self) -> int:
        """Every ``call_function`` node of the graph, scheduled or not."""
        return sum(1 for n in self.program.graph.nodes if n.op == "call_function")

    def reordered(self, order: Sequence[int], offsets: Mapping[int, int] | None = None) -> Any:
        """A new ``ExportedProgram`` with its ops in ``order`` (no arena plan: ignored)."""
        tx = _torch_export()
        with _quiet():
            module = tx.reordered_module(self.graph_problem, self.program.graph_module, order)
            return self.program._update(module, self.program.graph_signature)

    def verify(self, candidate: Any, *, exact: bool = True, seed: int = 0) -> VerifyReport:
        """Both programs run eagerly on the same seeded inputs; every output must be
        ``torch.equal`` (a reordering changes no kernel, so equality is exact)."""
        with _quiet():
            n, diff = _torch_export().same_outputs(self.program, candidate, seed)
        names = tuple(
            getattr(s.arg, "name", str(i))
            for i, s in enumerate(self.program.graph_signature.output_specs)
        )
        return VerifyReport(
            names[:n] or tuple(map(str, range(n))),
            True,
            diff,
            0,
            seed,
            runtime=f"torch {_torch_version()} (eager)",
        )

    def write(self, candidate: Any, out: Path) -> list[Path]:
        """``torch.export.save`` to a temporary file beside ``out``, then rename."""
        import torch

        tmp = out.with_name(f".{out.name}.tmp.pt2")  # torch.export.save wants .pt2
        try:
            with _quiet():
                torch.export.save(candidate, str(tmp))
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ModelError(f"cannot write {out}: {e.strerror}") from None
        except Exception as e:  # noqa: BLE001 - serialisation errors name the program part
            tmp.unlink(missing_ok=True)
            raise ModelError(f"cannot save the program to {out}: {type(e).__name__}: {e}") from None
        return [out]


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def load_pt2(path: Path, input_shapes: Mapping[str, tuple[int, ...]]) -> Pt2Model:
    """Load a ``.pt2`` archive.

    Raises:
        UsageError: ``--input-shape`` was given (exported programs have static shapes).
        ModelError: torch is missing, the file is not an exported program, or
            it has dynamic shapes or an op serenity cannot model.
    """
    if input_shapes:
        raise UsageError(f"{path}: a .pt2 program has static shapes; --input-shape does not apply")
    tx = _torch_export()
    import torch

    try:
        with _quiet():
            ep = torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001 - any failure means "not a readable archive"
        raise ModelError(
            f"{path} is not a torch.export archive ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'unreadable'})"
        ) from None
    with _quiet():
        ep = tx.functional(ep)
        gp = tx.graph_problem(ep, name=path.stem)
    shapes = {
        n.name: tuple(int(d) for d in n.meta["val"].shape)
        for n in ep.graph.nodes
        if n.op == "placeholder"
        and n.name in tx.user_input_names(ep)
        and isinstance(n.meta.get("val"), torch.Tensor)
    }
    return Pt2Model(path, ep, gp.problem, gp, shapes)


#: The pt2 format (see :mod:`serenity.io.format`).
FORMAT = Format(
    name="pt2",
    suffixes=(".pt2",),
    sniff=lambda head: head.startswith(ZIP_MAGIC),
    load=load_pt2,
    extra="torch",
)
