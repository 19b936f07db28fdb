""".tflite (LiteRT / TFLite Micro) in and out: the TFLite :class:`~serenity.io.format.Model`.

A ``.tflite`` file is a flatbuffer (``TFL3`` at bytes 4..8, schema version 3).
It is read with the schema's object API shipped in ``ai-edge-litert``
(``pip install 'serenity[tflite]'``); nothing here needs TensorFlow.

What is scheduled (the memory model of ``DESIGN.md`` applied to TFLite):

* the operators of every subgraph. Subgraph 0 (the one LiteRT and TFLM
  invoke) is :attr:`TfliteModel.problem`; every other subgraph (an ``IF``
  branch, a ``WHILE`` condition or body, a ``CALL_ONCE`` initialiser) is its
  own scheduling problem, solved at load time bottom-up through the calls
  (which must form no cycle) with the exact engine (optimal where it finishes
  in :data:`CHILD_TIME_LIMIT` s, and then the same on every run; a subgraph
  with operators on resource variables or hash tables keeps its file order,
  while subgraph 0 with them is refused), then placed in its own 16-byte-aligned
  arena by serenity's planner (checked). Dynamic dims are checked in subgraph
  0 only (elsewhere the stored shapes are used, as TFLM does);
* a called subgraph's tensors live only while the operator that runs it
  runs (TFLM and LiteRT copy the operator's inputs into the subgraph's inputs
  and its outputs back). So an operator that runs subgraphs gets one extra
  output per *workspace*: a tensor nothing reads (the memory model frees it
  right after the operator: footprint during the operator = live tensors +
  outputs + workspace), sized as the subgraph's arena. ``IF`` has one
  workspace of the larger branch's arena (one branch runs); any other
  operator one per subgraph (``WHILE`` copies the body's outputs into the
  condition's inputs: both live at once). The workspace is a tensor of the
  :class:`~serenity.ir.Problem` like any other (named
  ``<op>/workspace:<subgraphs>``), so every engine and planner handles it
  unchanged; where the planner reaches the subgraph's peak (it does on
  the tests' models), the workspace is the subgraph's optimal peak;
* activations: the subgraph's inputs and every tensor an operator computes
  from one. Constant tensors (a non-empty buffer), variable tensors
  (persistent in both runtimes) and the outputs of weight-only chains
  (``DEQUANTIZE`` of fp16 weights, ``DENSIFY`` of sparse weights) are weights:
  not counted, not scheduled. In the written file each weight-only operator
  runs just before its first consumer, so that LiteRT, which keeps
  ``DENSIFY`` outputs in its working arena, never holds them early;
* sizes: the stored shape times the element size. Where a shape is dynamic
  (``shape_signature`` has ``-1``), LiteRT propagates the stored input shapes
  at load time; a model whose stored shapes disagree with what the runtime
  computes is refused with the tensor named (TFLM trusts the stored shapes).

The written file has the same tensors and buffers; the operators of subgraph
0 are permuted to the order given, those of every other subgraph to its own
schedule, and the model metadata ``OfflineMemoryAllocation`` (TFLM's offline
arena plan) is set from the plan's offsets, replacing an existing entry
(without a plan, an existing entry is dropped: it was made for the old
order). Its buffer holds int32 ``[1, n_subgraphs, n_tensors, offset_0,
...]`` over the tensors of every subgraph in subgraph order (TFLM plans all
subgraphs in one arena and reads the entry of a subgraph's tensor at the
subgraph's start plus its index), ``-1`` where TFLM plans the tensor itself.
A subgraph run by exactly one operator is placed inside that operator's
workspace (its offset plus the subgraph's own plan), recursively; a subgraph
run from two operators (its tensors would need one place in two workspaces),
and any subgraph 0 never runs, gets ``-1``: TFLM plans it, around our
offsets. TFLM does not check an offline plan, so :meth:`TfliteModel.reordered`
checks that no two tensors of subgraph 0 live at the same step overlap before
embedding one; each other subgraph's plan is checked when it is made, and
nests inside a workspace no other tensor overlaps while it is live.

Complexity: loading is O(file size + tensors + operators) plus, per subgraph
other than 0, the exact engine (at most :data:`CHILD_TIME_LIMIT` s) and the
planner; the dynamic-shape check runs LiteRT's ``allocate_tensors`` once.
"""

from __future__ import annotations

import copy
import os
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from serenity.errors import (
    CycleError,
    ModelError,
    UnsupportedModelError,
    VerificationError,
)
from serenity.io.format import Format, Model, VerifyReport
from serenity.ir import Problem

__all__ = ["FORMAT", "OFFLINE_PLAN_NAME", "TfliteModel", "load_tflite", "offline_plan"]

#: The model metadata entry TFLM reads its offline arena plan from.
OFFLINE_PLAN_NAME = "OfflineMemoryAllocation"
#: TFLM's ``MicroArenaBufferAlignment()``: offsets and sizes in its arena are multiples of it.
TFLM_ALIGNMENT = 16
_IDENT = b"TFL3"

#: Bits per element of each TensorType (by name); absent: no fixed size (string, resource).
_BITS = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8,
    "INT16": 16, "COMPLEX64": 64, "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128,
    "UINT64": 64, "UINT32": 32, "UINT16": 16, "INT4": 4, "BFLOAT16": 16, "INT2": 2,
}  # fmt: skip

#: Operators whose order is a side effect on state the graph does not show.
_STATEFUL = frozenset(
    {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "HASHTABLE",
     "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE"}
)  # fmt: skip


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError:
        raise UnsupportedModelError(
            "reading .tflite files needs ai-edge-litert: pip install 'serenity[tflite]'"
        ) from None
    return fb


def _names(enum_cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class TfliteModel(Model):
    """A loaded .tflite model, the scheduling problem of its main subgraph and
    the schedules of the others.

    Attributes:
        path: The file it came from.
        data: The file's bytes (never modified).
        fbmodel: The flatbuffer as a schema ``ModelT`` (read-only here).
        problem: Activations and scheduled operators of subgraph 0, with the
            workspaces of the operators that run subgraphs.
        node_index: For each op id, the operator's index in subgraph 0.
        tensor_index: For each activation id, the tensor's index in subgraph 0.
        input_shapes: The stored shapes of the subgraph's inputs, by name.
        subgraphs: Every subgraph's problem, and for those other than 0 their
            own schedule and arena (see :class:`SubgraphSchedule`).
    """

    path: Path
    data: bytes
    fbmodel: Any
    problem: Problem
    node_index: tuple[int, ...]
    tensor_index: tuple[int, ...]
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    subgraphs: tuple[SubgraphSchedule, ...] = ()

    format_name: ClassVar[str] = "tflite"
    holds_plan: ClassVar[bool] = True
    plan_alignment: ClassVar[int] = TFLM_ALIGNMENT

    @property
    def num_nodes(self) -> int:
        """Operators of every subgraph."""
        return sum(len(sg.operators or []) for sg in self.fbmodel.subgraphs)

    def file_order(self, order: Sequence[int]) -> list[int]:
        """Operator indices of subgraph 0 for a schedule ``order`` of the problem's ops:
        each weight-only operator just before its first consumer, unconsumed ones last.

        Raises:
            ValueError: ``order`` is not a topological order of the problem.

        Complexity: O(operators + edges).
        """
        if not self.problem.is_topological(order):
            raise ValueError("order is not a topological order of the model's ops")
        return _file_order(self.fbmodel.subgraphs[0].operators or [], self.node_index, order)

    def reordered(self, order: Sequence[int], offsets: Mapping[int, int] | None = None) -> bytes:
        """The flatbuffer with subgraph 0's operators in ``order``, every other
        subgraph's in its own schedule and, with ``offsets`` (activation id ->
        byte offset, workspaces included), TFLM's offline plan embedded over
        the tensors of every subgraph (:meth:`global_offsets`).

        Raises:
            ValueError: ``order`` is not topological, or ``offsets`` misses an
                activation, is not a multiple of 16, or overlaps two tensors
                live at the same step of ``order``.

        Complexity: O(file size + n log n) plus the plan check, O(n log n + overlaps).
        """
        fb = _schema()
        from ai_edge_litert.tools import flatbuffer_utils

        placed = self.file_order(order)
        model = copy.copy(self.fbmodel)
        subgraphs = []
        for k, sg in enumerate(model.subgraphs):
            sg = copy.copy(sg)
            if k == 0:
                sg.operators = [sg.operators[i] for i in placed]
            elif k < len(self.subgraphs):
                part = self.subgraphs[k]
                ops = sg.operators or []
                sg.operators = [ops[i] for i in _file_order(ops, part.node_index, part.order)]
            subgraphs.append(sg)
        model.subgraphs = subgraphs
        model.buffers = list(model.buffers or [])
        metadata = [m for m in model.metadata or [] if _name(m.name) != OFFLINE_PLAN_NAME]
        for m in model.metadata or []:
            if _name(m.name) == OFFLINE_PLAN_NAME and 0 <= m.buffer < len(model.buffers):
                model.buffers[m.buffer] = fb.BufferT()  # the stale plan's bytes go
        if offsets is not None:
            self._check_offsets(order, offsets)
            plan = self.global_offsets(offsets)
            values = np.array([1, len(model.subgraphs), len(plan), *plan], dtype="<i4")
            buf = fb.BufferT()
            buf.data = np.frombuffer(values.tobytes(), dtype=np.uint8).copy()
            model.buffers.append(buf)
            entry = fb.MetadataT()
            entry.name, entry.buffer = OFFLINE_PLAN_NAME, len(model.buffers) - 1
            metadata.append(entry)
        model.metadata = metadata or None
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

    def _plan_bases(self) -> list[int]:
        """Where each subgraph's tensors start in the offline plan (and the total last)."""
        bases = [0]
        for sg in self.fbmodel.subgraphs:
            bases.append(bases[-1] + len(sg.tensors or []))
        return bases

    def call_counts(self) -> list[int]:
        """For each subgraph, the number of operators (of any subgraph) that run it."""
        counts = [0] * len(self.fbmodel.subgraphs)
        for part in self.subgraphs:
            for group in part.workspaces.values():
                for c in group:
                    counts[c] += 1
        return counts

    def global_offsets(self, offsets: Mapping[int, int]) -> list[int]:
        """TFLM's offline plan over every tensor of every subgraph, for the
        offsets ``offsets`` of subgraph 0's activations (and workspaces).

        Subgraph 0's activations get ``offsets``. A subgraph run by exactly one
        operator, whose own subgraph is placed, is placed at the offset of that
        operator's workspace tensor plus its own plan's offsets: its tensors
        live only while that operator runs, inside the workspace that no other
        tensor of the caller overlaps then (checked for subgraph 0 by
        :meth:`reordered`, for the others by ``check_plan`` at load). Every
        other tensor (weights, tensors of a subgraph run from two places or of
        a subgraph not run by subgraph 0) is ``-1``: TFLM plans it itself.

        Complexity: O(tensors of every subgraph).
        """
        bases = self._plan_bases()
        plan = [-1] * bases[-1]
        counts = self.call_counts()
        region: dict[int, tuple[int, Mapping[int, int]]] = {0: (0, offsets)}
        queue = [0]
        while queue:
            s = queue.pop(0)
            base, own = region[s]
            part = self.subgraphs[s] if s < len(self.subgraphs) else None
            if part is None:
                continue
            for t, k in enumerate(part.tensor_index):
                if t in own:
                    plan[bases[s] + k] = base + own[t]
            for w, group in sorted(part.workspaces.items()):
                for c in group:
                    if counts[c] == 1 and c not in region and w in own:
                        region[c] = (base + own[w], self.subgraphs[c].offsets)
                        queue.append(c)
        return plan

    def _check_offsets(self, order: Sequence[int], offsets: Mapping[int, int]) -> None:
        from serenity.plan import tensor_lifetimes

        p = self.problem
        missing = [p.tensor_names[t] for t in range(p.num_tensors) if t not in offsets]
        if missing:
            raise ValueError(f"the arena plan has no offset for tensor '{missing[0]}'")
        bad = [t for t in range(p.num_tensors) if offsets[t] < 0 or offsets[t] % TFLM_ALIGNMENT]
        if bad:
            raise ValueError(
                f"offset {offsets[bad[0]]} of tensor '{p.tensor_names[bad[0]]}' is not a "
                f"non-negative multiple of {TFLM_ALIGNMENT} (TFLM's alignment)"
            )
        spans = tensor_lifetimes(p, order)
        live = sorted(
            (t for t in range(p.num_tensors) if p.tensor_sizes[t]), key=offsets.__getitem__
        )
        for i, t in enumerate(live):  # sorted by offset: only later starts can overlap t
            end = offsets[t] + p.tensor_sizes[t]
            for u in live[i + 1 :]:
                if offsets[u] >= end:
                    break
                (a, b), (c, d) = spans[t], spans[u]
                if a <= d and c <= b:
                    raise ValueError(
                        f"the arena plan overlaps tensors '{p.tensor_names[t]}' and "
                        f"'{p.tensor_names[u]}', both live at step {max(a, c)}"
                    )

    def verify(self, candidate: bytes, *, exact: bool = True, seed: int = 0) -> VerifyReport:
        """Run this model and ``candidate`` in LiteRT on the same seeded inputs
        (every output bitwise equal when ``exact``, else within rtol 1e-4 /
        atol 1e-5) and, where tflite-micro is installed and can load the
        model, in TFLM too: outputs bitwise equal there, and the arena TFLM
        reports is put in the notes beside the embedded plan's.

        Raises:
            VerificationError: an output differs, or LiteRT cannot run a model.
        """
        inputs = seeded_inputs(self.data, seed)
        want = run_litert(self.data, inputs)
        got = run_litert(candidate, inputs)
        names = tuple(name for name, _ in want)
        worst = _compare(want, got, exact, "LiteRT")
        notes = self._tflm_notes(candidate, inputs)
        return VerifyReport(names, exact, worst, 0, seed, notes=notes, runtime="LiteRT")

    def _tflm_notes(self, candidate: bytes, inputs: list[np.ndarray]) -> list[str]:
        try:
            from tflite_micro.python.tflite_micro import runtime  # noqa: F401
        except ImportError:
            return ["TFLM: tflite-micro is not installed; checked in LiteRT only"]
        arena = self.arena_hint()
        try:
            want, before = run_tflm(self.data, inputs, arena)
            got, after = run_tflm(candidate, inputs, arena)
        except TflmError as e:
            return [f"TFLM cannot run this model ({e}); checked in LiteRT only"]
        _compare(want, got, True, "TFLM")
        plan = offline_plan(candidate)
        ours = self.offline_arena(plan) if plan is not None else None
        line = (
            f"TFLM: outputs bitwise equal; arena {after['total']:,} B = head "
            f"{after['head']:,} B + tail {after['tail']:,} B (TFLM's fixed overhead)"
        )
        if ours is not None:
            same = "equal to" if ours == after["head"] else f"{after['head'] - ours:+,} B vs"
            line += f"; head {same} the embedded plan's {ours:,} B"
        line += f"; the original: head {before['head']:,} B, total {before['total']:,} B"
        return [line]

    def offline_arena(self, plan: Sequence[int]) -> int:
        """The head TFLM needs for the offline offsets ``plan`` of the activations of every subgraph."""
        bases = self._plan_bases()
        ends = [
            plan[bases[s] + k] + _align(part.problem.tensor_sizes[t])
            for s, part in enumerate(self.subgraphs)
            for t, k in enumerate(part.tensor_index)
            if bases[s] + k < len(plan) and plan[bases[s] + k] >= 0
        ]
        return max(ends, default=0)

    def arena_hint(self) -> int:
        """A TFLM arena size that fits any plan of this model: every activation
        of every subgraph side by side, plus room for TFLM's own structures."""
        act = sum(_align(s) for part in self.subgraphs for s in part.problem.tensor_sizes)
        tensors = sum(len(sg.tensors or []) for sg in self.fbmodel.subgraphs)
        return act + 256 * (tensors + self.num_nodes) + (4 << 20)

    def write(self, candidate: bytes, out: Path) -> list[Path]:
        """Write ``candidate`` to ``out`` through a temporary file and a rename.

        Raises:
            ModelError: the file cannot be written.
        """
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(candidate)
            os.replace(tmp, out)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise ModelError(f"cannot write {out}: {e.strerror}") from None
        return [out]


def _file_order(ops: Sequence[Any], node_index: Sequence[int], order: Sequence[int]) -> list[int]:
    """Operator indices of a subgraph for the order ``order`` of its scheduled
    ops (``node_index``): each weight-only operator just before its first
    consumer, unconsumed ones last. Complexity: O(operators + edges)."""
    scheduled = set(node_index)
    producer: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.outputs or []:
            producer[t] = i
    placed: list[int] = []
    done: set[int] = set()

    def emit(i: int) -> None:
        stack = [(i, False)]
        while stack:
            v, expanded = stack.pop()
            if v in done:
                continue
            if expanded:
                done.add(v)
                placed.append(v)
                continue
            stack.append((v, True))
            for t in reversed(ops[v].inputs or []):
                u = producer.get(t)
                if u is not None and u not in scheduled and u not in done:
                    stack.append((u, False))

    for v in order:
        emit(node_index[v])
    for i in range(len(ops)):
        emit(i)
    return placed


class TflmError(Exception):
    """TFLM could not load or run a model (an unsupported op, a bad arena)."""


def _align(n: int) -> int:
    return -(-n // TFLM_ALIGNMENT) * TFLM_ALIGNMENT


def _name(x: str | bytes | None) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else (x or "")


def offline_plan(data: bytes) -> list[int] | None:
    """The offsets of a flatbuffer's ``OfflineMemoryAllocation`` metadata (every
    tensor of every subgraph, ``-1`` = planned by TFLM), or ``None``.

    Raises:
        ModelError: the entry is malformed.
    """
    fb = _schema()
    m = fb.Model.GetRootAs(data, 0)
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if _name(entry.Name()) != OFFLINE_PLAN_NAME:
            continue
        raw = m.Buffers(entry.Buffer()).DataAsNumpy()
        blob = b"" if isinstance(raw, int) else bytes(raw)
        values = np.frombuffer(blob[: len(blob) // 4 * 4], dtype="<i4").tolist()
        if len(values) < 3 or len(blob) % 4 or len(values) != 3 + int(values[2]):
            raise ModelError(f"malformed {OFFLINE_PLAN_NAME} metadata ({len(values)} int32s)")
        return [int(x) for x in values[3:]]
    return None


def _parse(path: Path, data: bytes) -> Any:
    fb = _schema()
    if len(data) < 8 or data[4:8] != _IDENT:
        raise ModelError(f"{path}: not a .tflite flatbuffer (no 'TFL3' identifier)")
    try:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    except (IndexError, struct.error, ValueError, TypeError, OverflowError, RecursionError):
        raise ModelError(f"{path}: truncated or corrupt .tflite flatbuffer") from None
    buffers, model.buffers = model.buffers, None
    _to_lists(model)
    model.buffers = buffers
    if model.version != 3:
        raise ModelError(
            f"{path}: .tflite schema version {model.version}, serenity reads version 3"
        )
    if not model.subgraphs:
        raise ModelError(f"{path}: .tflite model without subgraphs")
    for buf in model.buffers or []:
        if buf.offset > 1:  # weights stored after the flatbuffer
            if buf.offset + buf.size > len(data):
                raise ModelError(f"{path}: truncated .tflite file (a buffer ends past its end)")
            buf.data = np.frombuffer(data[buf.offset : buf.offset + buf.size], dtype=np.uint8)
            buf.offset = buf.size = 0
    _check_indices(path, model)
    return model


def _to_lists(obj: Any) -> None:
    """Turn the object API's numpy index arrays into lists, in place (not the buffers)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        for key, v in vars(o).items():
            if isinstance(v, np.ndarray):
                setattr(o, key, v.tolist())
            elif isinstance(v, list):
                stack.extend(x for x in v if hasattr(x, "__dict__"))
            elif hasattr(v, "__dict__"):
                stack.append(v)


def _check_indices(path: Path, model: Any) -> None:
    """Every index in range; subgraph references form no cycle."""
    n_codes, n_bufs, n_sub = (
        len(model.operatorCodes or []),
        len(model.buffers or []),
        len(model.subgraphs),
    )
    calls: list[set[int]] = []
    for s, sg in enumerate(model.subgraphs):
        n = len(sg.tensors or [])
        refs: set[int] = set()
        for t in sg.tensors or []:
            if not 0 <= t.buffer < max(n_bufs, 1):
                raise ModelError(
                    f"{path}: subgraph {s}: tensor buffer index {t.buffer} out of range"
                )
        for i, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                raise ModelError(f"{path}: subgraph {s} operator {i}: opcode index out of range")
            for t in [*(op.inputs or []), *(op.outputs or [])]:
                if not -1 <= t < n:
                    raise ModelError(f"{path}: subgraph {s} operator {i}: tensor {t} out of range")
            for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
                for key, v in vars(opts).items() if opts is not None else ():
                    if key.endswith("SubgraphIndex") and isinstance(v, int):
                        if not 0 <= v < n_sub:
                            raise ModelError(
                                f"{path}: subgraph {s} operator {i}: {key} {v} out of range"
                            )
                        refs.add(v)
        for t in [*(sg.inputs or []), *(sg.outputs or [])]:
            if not 0 <= t < n:
                raise ModelError(f"{path}: subgraph {s}: input/output tensor {t} out of range")
        calls.append(refs)
    state = [0] * n_sub  # 0 new, 1 on the stack, 2 done
    for root in range(n_sub):
        stack: list[tuple[int, Iterator[int]]] = []
        if state[root]:
            continue
        state[root] = 1
        stack.append((root, iter(sorted(calls[root]))))
        while stack:
            s, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[s] = 2
                stack.pop()
            elif state[nxt] == 1:
                cycle = [str(x) for x, _ in stack[[x for x, _ in stack].index(nxt) :]]
                raise CycleError(
                    f"{path}: subgraphs call each other in a cycle: {' -> '.join([*cycle, str(nxt)])}"
                )
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(calls[nxt]))))


def load_tflite(
    path: str | os.PathLike[str], input_shapes: Mapping[str, Sequence[int]] | None = None
) -> TfliteModel:
    """Load a .tflite file into a :class:`TfliteModel` (see the module docstring).

    Args:
        path: The file.
        input_shapes: Shapes by input name; they must equal the stored ones
            (serenity writes the stored shapes back unchanged).

    Raises:
        ModelError: unreadable, not a TFLite flatbuffer, schema version not 3,
            truncated or corrupt, an index out of range, a tensor read before
            anything computes it.
        CycleError: subgraphs call each other in a cycle, or the operators do.
        UnsupportedModelError: stateful operators (resource variables,
            hash tables), a string or resource activation, or stored shapes
            that disagree with the runtime's.
    """
    fb = _schema()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror}") from None
    model = _parse(p, data)
    op_names = _names(fb.BuiltinOperator)
    type_names = _names(fb.TensorType)
    codes = [
        op_names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "UNKNOWN")
        if max(c.builtinCode, c.deprecatedBuiltinCode) != fb.BuiltinOperator.CUSTOM
        else f"CUSTOM:{_name(c.customCode)}"
        for c in model.operatorCodes
    ]
    stateful = sorted({codes[op.opcodeIndex] for op in model.subgraphs[0].operators or []})
    stateful = [c for c in stateful if c in _STATEFUL]
    if stateful:
        raise UnsupportedModelError(
            f"{p}: {', '.join(stateful)}: the order of operators on resource variables or "
            "hash tables is a side effect serenity does not model"
        )
    parts: dict[int, SubgraphSchedule] = {}
    for s in _bottom_up(model, codes):
        parts[s] = _subgraph_schedule(p, model, s, codes, type_names, parts)
    main = parts[0]
    sg = model.subgraphs[0]
    act = list(main.tensor_index)
    _check_shapes(p, data, model, act, input_shapes or {})
    shapes = {
        _name(sg.tensors[t].name): tuple(int(d) for d in sg.tensors[t].shape or ())
        for t in dict.fromkeys(sg.inputs or [])
    }
    return TfliteModel(
        p,
        data,
        model,
        main.problem,
        main.node_index,
        main.tensor_index,
        shapes,
        tuple(parts[s] for s in range(len(model.subgraphs))),
    )


def _callees(op: Any, code: str) -> list[tuple[int, ...]]:
    """The subgraphs an operator runs, grouped by workspace: an ``IF`` runs one
    of its branches (one group, the branches share a workspace); any other
    operator may hold all its subgraphs' tensors at once (``WHILE`` copies the
    body's outputs into the condition's inputs), one group per subgraph."""
    found: list[int] = []
    for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        for key, v in sorted(vars(opts).items()) if opts is not None else ():
            if key.endswith("SubgraphIndex") and isinstance(v, int) and v not in found:
                found.append(v)
    if code == "IF":
        return [tuple(sorted(found))] if found else []
    return [(v,) for v in found]


def _bottom_up(model: Any, codes: list[str]) -> list[int]:
    """Every subgraph after all the subgraphs it runs (the calls form no cycle:
    :func:`_check_indices`), ties by index."""
    done: list[int] = []
    seen: set[int] = set()
    for root in range(len(model.subgraphs)):
        stack = [(root, False)]
        while stack:
            s, expanded = stack.pop()
            if expanded:
                done.append(s)
                continue
            if s in seen:
                continue
            seen.add(s)
            stack.append((s, True))
            kids = [
                c
                for op in model.subgraphs[s].operators or []
                for group in _callees(op, codes[op.opcodeIndex])
                for c in group
            ]
            stack.extend((c, False) for c in reversed(list(dict.fromkeys(kids))) if c not in seen)
    return done


#: Seconds the exact engine may spend on each non-main subgraph at load time.
CHILD_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class SubgraphSchedule:
    """One subgraph's scheduling problem and, for a subgraph other than 0, its own schedule.

    Attributes:
        index: The subgraph's index in the model.
        problem: Its activations and scheduled operators, plus one *workspace*
            tensor per group of subgraphs an operator runs (an extra output of
            that operator that nothing reads, sized as the group's arena).
        node_index: For each op id, the operator's index in the subgraph.
        tensor_index: For each real activation id, the tensor's index in the
            subgraph; the workspace tensors have the ids after these.
        workspaces: Workspace tensor id -> the subgraphs whose tensors it holds.
        order: Its operators' order (op ids): the proven-optimal one where the
            exact engine finishes in :data:`CHILD_TIME_LIMIT`, the file order
            where the subgraph has stateful operators; for subgraph 0 the file
            order (the order written is the one given).
        offsets: The arena offset of every tensor of ``problem`` in its own
            arena (16-byte aligned, checked), from serenity's planner.
        arena: That arena's size: the workspace a calling operator reserves.
        peak: The peak of ``order`` (the optimum where ``optimal``).
        optimal: Whether ``peak`` is proven optimal.
    """

    index: int
    problem: Problem
    node_index: tuple[int, ...]
    tensor_index: tuple[int, ...]
    workspaces: dict[int, tuple[int, ...]]
    order: tuple[int, ...]
    offsets: dict[int, int]
    arena: int
    peak: int
    optimal: bool


def _subgraph_schedule(
    p: Path,
    model: Any,
    s: int,
    codes: list[str],
    type_names: dict[int, str],
    done: Mapping[int, SubgraphSchedule],
) -> SubgraphSchedule:
    """Build subgraph ``s``'s problem (its callees in ``done``) and, unless it
    is 0, schedule and plan it. Complexity: that of the exact engine, bounded by
    :data:`CHILD_TIME_LIMIT`, plus O(tensors + operators)."""
    sg = model.subgraphs[s]
    tensors, ops = sg.tensors or [], sg.operators or []

    def constant(t: int) -> bool:
        b = tensors[t].buffer
        buf = model.buffers[b] if b < len(model.buffers or []) else None
        return b > 0 and buf is not None and buf.data is not None and len(buf.data) > 0

    inputs = list(dict.fromkeys(sg.inputs or []))
    activation = [False] * len(tensors)
    for t in inputs:
        activation[t] = True
    scheduled = [False] * len(ops)
    changed = True
    while changed:  # one pass for a file in topological order
        changed = False
        for i, op in enumerate(ops):
            if not scheduled[i] and any(t >= 0 and activation[t] for t in op.inputs or []):
                scheduled[i] = changed = True
                for t in op.outputs or []:
                    activation[t] = True
    where = f"{p}: " if s == 0 else f"{p}: subgraph {s}: "
    produced = {t for op in ops for t in op.outputs or []}
    for i, op in enumerate(ops):
        for t in op.inputs or []:
            if (
                t >= 0
                and t not in produced
                and not (activation[t] or constant(t) or tensors[t].isVariable)
                and not _empty(tensors[t])
            ):
                raise ModelError(
                    f"{where}operator {i} ({codes[op.opcodeIndex]}) reads tensor "
                    f"'{_name(tensors[t].name)}', which nothing computes and is not an input"
                )
    act = [t for t in range(len(tensors)) if activation[t]]
    tid = {t: k for k, t in enumerate(act)}
    sizes = [_tensor_bytes(p, tensors[t], type_names) for t in act]
    node_index = tuple(i for i in range(len(ops)) if scheduled[i])
    names = _op_names(ops, tensors, codes, node_index)
    tensor_names = [_name(tensors[t].name) or f"tensor{t}" for t in act]
    op_outputs = [[tid[t] for t in ops[i].outputs or []] for i in node_index]
    workspaces: dict[int, tuple[int, ...]] = {}
    for v, i in enumerate(node_index):
        for group in _callees(ops[i], codes[ops[i].opcodeIndex]):
            workspaces[len(sizes)] = group
            op_outputs[v].append(len(sizes))
            sizes.append(max(done[c].arena for c in group))
            tensor_names.append(f"{names[v]}/workspace:{'|'.join(map(str, group))}")
    problem = Problem(
        op_names=names,
        tensor_sizes=sizes,
        op_inputs=[
            [tid[t] for t in ops[i].inputs or [] if t >= 0 and t in tid] for i in node_index
        ],
        op_outputs=op_outputs,
        graph_inputs=[tid[t] for t in inputs],
        graph_outputs=[tid[t] for t in sg.outputs or [] if t in tid],
        tensor_names=tensor_names,
        op_types=[codes[ops[i].opcodeIndex] for i in node_index],
        name=p.stem if s == 0 else f"{p.stem}/subgraph{s}",
    )
    part = SubgraphSchedule(
        s,
        problem,
        node_index,
        tuple(act),
        workspaces,
        tuple(range(len(node_index))),
        {},
        0,
        0,
        False,
    )
    if s == 0:
        return part
    from serenity.plan import check_plan, lifetimes, plan
    from serenity.schedule import ScheduleOptions, schedule

    stateful = any(codes[op.opcodeIndex] in _STATEFUL for op in ops)
    method = "file" if stateful or not node_index else "auto"
    result = schedule(problem, method, ScheduleOptions(time_limit=CHILD_TIME_LIMIT))
    buffers = tuple(lifetimes(problem, result.op_order))
    arena = plan(buffers, alignment=TFLM_ALIGNMENT)
    check_plan(buffers, arena)
    offsets = {t: arena.offsets[k] for k, b in enumerate(buffers) for t in b.tensors}
    return replace(
        part,
        order=tuple(result.op_order),
        offsets=offsets,
        arena=_align(arena.arena_bytes),
        peak=result.peak_bytes,
        optimal=result.optimal,
    )


def _empty(t: Any) -> bool:
    return any(int(d) == 0 for d in t.shape or ())


def _op_names(ops: Any, tensors: Any, codes: list[str], node_index: Sequence[int]) -> list[str]:
    """Each scheduled operator named by its first output tensor (stable across
    reorders); ``#index`` is appended where that name is not unique."""
    base = []
    for i in node_index:
        outs = ops[i].outputs or []
        base.append((_name(tensors[outs[0]].name) if outs else "") or codes[ops[i].opcodeIndex])
    seen: dict[str, int] = {}
    for b in base:
        seen[b] = seen.get(b, 0) + 1
    return [
        b if b and seen[b] == 1 else f"{b or 'op'}#{i}"
        for b, i in zip(base, node_index, strict=True)
    ]


def _tensor_bytes(path: Path, t: Any, type_names: dict[int, str]) -> int:
    kind = type_names.get(t.type, str(t.type))
    bits = _BITS.get(kind)
    if bits is None:
        raise UnsupportedModelError(
            f"{path}: activation '{_name(t.name)}' is of type {kind}, which has no fixed size"
        )
    n = 1
    for d in t.shape if t.shape is not None else ():
        n *= int(d)
    return -(-n * bits // 8)


def _check_shapes(
    path: Path, data: bytes, model: Any, act: list[int], user: Mapping[str, Sequence[int]]
) -> None:
    """Refuse shapes the runtime would change: user shapes other than the stored
    ones, or dynamic dims whose stored shape differs from LiteRT's propagation."""
    sg = model.subgraphs[0]
    stored = {
        _name(sg.tensors[t].name): [int(d) for d in sg.tensors[t].shape or ()]
        for t in sg.inputs or []
    }
    for name, shape in user.items():
        if name not in stored:
            raise UnsupportedModelError(
                f"{path}: no input named '{name}' (inputs: {', '.join(stored)})"
            )
        if list(shape) != stored[name]:
            raise UnsupportedModelError(
                f"{path}: input '{name}' is stored with shape {stored[name]}; serenity keeps the "
                "stored shapes (TFLM never resizes): convert the model with the shape you need"
            )
    dynamic = [t for t in act if any(int(d) < 0 for d in sg.tensors[t].shapeSignature or ())]
    if not dynamic:
        return
    try:
        interp = _litert(data)
        interp.allocate_tensors()
        real = {d["index"]: [int(x) for x in d["shape"]] for d in interp.get_tensor_details()}
    except Exception as e:  # noqa: BLE001 - any runtime failure is the reason given
        raise UnsupportedModelError(
            f"{path}: dynamic shapes, and LiteRT cannot propagate the stored ones ({_first_line(e)})"
        ) from None
    for t in dynamic:
        want = [int(d) for d in sg.tensors[t].shape or ()]
        if t in real and real[t] != want:
            raise UnsupportedModelError(
                f"{path}: tensor '{_name(sg.tensors[t].name)}' is stored with shape {want} but "
                f"LiteRT computes {real[t]} (dynamic dims); TFLM would trust the stored shape: "
                "convert the model with a fixed batch size"
            )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _litert(data: bytes, delegates: bool = False) -> Any:
    """A LiteRT interpreter, one thread; built-in kernels only unless ``delegates``
    (XNNPACK, which some custom ops need)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise UnsupportedModelError(
            "running .tflite models needs ai-edge-litert: pip install 'serenity[tflite]'"
        ) from None
    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=data, experimental_op_resolver_type=kind, num_threads=1)


def seeded_inputs(data: bytes, seed: int) -> list[np.ndarray]:
    """One seeded random array per model input: standard normal for floats,
    uniform over the type's range for integers, 0/1 for booleans."""
    interp = _litert(data)
    rng = np.random.default_rng(seed)
    arrays = []
    for d in interp.get_input_details():
        shape, dtype = tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            lo, hi = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
            arrays.append(rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            raise VerificationError(f"cannot make a random input of type {dtype}")
    return arrays


def run_litert(data: bytes, inputs: Sequence[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Outputs (name, array) of one LiteRT run on one thread: with the built-in
    kernels, else (a custom op only XNNPACK provides) with the default delegates.

    Raises:
        VerificationError: LiteRT cannot load or run the model either way.
    """
    error: Exception | None = None
    for delegates in (False, True):
        try:
            interp = _litert(data, delegates)
            interp.allocate_tensors()
            for d, x in zip(interp.get_input_details(), inputs, strict=True):
                interp.set_tensor(d["index"], x)
            interp.invoke()
            return [
                (d["name"], interp.get_tensor(d["index"]).copy())
                for d in interp.get_output_details()
            ]
        except (RuntimeError, ValueError) as e:
            error = error or e
    assert error is not None
    raise VerificationError(f"LiteRT cannot run the model: {_first_line(error)}")


_ALLOC = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def run_tflm(
    data: bytes, inputs: Sequence[np.ndarray], arena_size: int, timeout: float = 900.0
) -> tuple[list[tuple[str, np.ndarray]], dict[str, int]]:
    """Outputs of one TFLM run and its arena (``total``, ``head``, ``tail`` bytes,
    as its recording allocator prints them; the smallest arena that works is ``total``).

    TFLM runs in a child process: it aborts the whole process on some models
    it cannot prepare, and prints its allocations only on file descriptor 2.

    Raises:
        TflmError: TFLM cannot load or run the model (its first error line, or
            the signal that ended it).
    """
    with tempfile.TemporaryDirectory(prefix="serenity-tflm-") as tmp:
        work = Path(tmp)
        (work / "model.tflite").write_bytes(data)
        np.savez(work / "inputs.npz", *inputs)
        n_out = _schema().Model.GetRootAs(data, 0).Subgraphs(0).OutputsLength()
        (work / "sizes").write_text(f"{int(arena_size)} {n_out}")
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _TFLM_CHILD, tmp], capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise TflmError(f"TFLM did not finish in {timeout:g} s") from None
        log = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
            errors = [ln for ln in lines if not ln.startswith(("Traceback", "File "))]
            if proc.returncode < 0:
                why = f"TFLM aborted (signal {-proc.returncode})"
                raise TflmError(f"{why}: {errors[-1]}" if errors else why)
            raise TflmError(errors[-1] if errors else f"TFLM exited with {proc.returncode}")
        with np.load(work / "outputs.npz") as z:
            outs = [(str(k), z[f"arr_{k}"]) for k in range(len(z.files))]
    found = {k: int(v) for k, v in _ALLOC.findall(log)}
    if set(found) != {"total", "head", "tail"}:
        raise TflmError("TFLM printed no arena sizes")
    return outs, found


#: The child of :func:`run_tflm` (imports only numpy and tflite-micro, to start fast).
_TFLM_CHILD = """
import sys
from pathlib import Path
import numpy as np
from tflite_micro.python.tflite_micro import runtime
work = Path(sys.argv[1])
arena, n_out = (int(x) for x in (work / "sizes").read_text().split())
interp = runtime.Interpreter.from_bytes((work / "model.tflite").read_bytes(), arena_size=arena)
with np.load(work / "inputs.npz") as z:
    for k in range(len(z.files)):
        interp.set_input(z[f"arr_{k}"], k)
interp.invoke()
np.savez(work / "outputs.npz", *[np.array(interp.get_output(k)) for k in range(n_out)])
sys.stderr.flush()
interp.print_allocations()
"""


def _compare(
    want: list[tuple[str, np.ndarray]], got: list[tuple[str, np.ndarray]], exact: bool, runtime: str
) -> float:
    if len(want) != len(got):
        raise VerificationError(f"{runtime}: {len(want)} outputs vs {len(got)}")
    worst = 0.0
    for (name, a), (_, b) in zip(want, got, strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise VerificationError(
                f"{runtime}: output '{name}' is {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
            )
        if a.tobytes() == b.tobytes():
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        if exact or a.dtype.kind != "f" or not np.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise VerificationError(
                f"{runtime}: output '{name}' differs (max abs diff {diff:g}); nothing written"
            )
        worst = max(worst, diff)
    return worst


FORMAT = Format(
    name="tflite",
    suffixes=(".tflite",),
    sniff=lambda head: head[4:8] == _IDENT,
    load=load_tflite,
    extra="tflite",
)
