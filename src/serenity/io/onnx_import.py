"""ONNX -> :class:`~serenity.ir.Problem`.

Loading never touches the weights' bytes: the model is read with
``load_external_data=False`` so that graphs whose external weight files are
missing (as exported for analysis) still load. Shapes come from ONNX shape
inference with data propagation, after the user has fixed any symbolic input
dims. Control-flow ops (If, Loop, Scan) are opaque: the tensors their subgraphs
read from the enclosing scope count as their inputs.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx
from google.protobuf.message import DecodeError

from serenity.errors import (
    CycleError,
    ModelError,
    UnknownShapeError,
    UnsupportedModelError,
    UsageError,
)
from serenity.io.format import Format, Model, VerifyReport, parse_input_shapes
from serenity.io.onnx_checks import (
    check_attributes,
    check_names,
    external_refs,
    external_weights,
)
from serenity.ir import Problem

__all__ = ["FORMAT", "INPLACE_OPS", "OnnxModel", "load_onnx", "load_proto", "parse_input_shapes"]

#: Ops whose output may overwrite an input of the same size that dies there
#: (element-wise ops, inference-form normalisation, reshape-like views).
INPLACE_OPS = frozenset(
    {
        # unary element-wise
        "Abs", "Acos", "Asin", "Atan", "Cast", "Ceil", "Celu", "Clip", "Cos", "Elu", "Erf",
        "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "IsInf", "IsNaN",
        "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu",
        "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh",
        "ThresholdedRelu", "Dropout", "BatchNormalization", "PRelu",
        # binary element-wise (the same-size operand is overwritten)
        "Add", "And", "Div", "Max", "Min", "Mod", "Mul", "Or", "Pow", "Sub", "Sum", "Xor",
        "Where",
        # reshape-like views
        "Flatten", "Reshape", "Squeeze", "Unsqueeze",
    }
)  # fmt: skip

#: Op domains onnxruntime's CPU build has kernels for.
ORT_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc"}
)

#: Reshape-like ops: only their data input (input 0) can be reused.
_VIEW_OPS = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout"})

_SUB_BYTE_BITS: dict[int, int] = {
    onnx.TensorProto.INT4: 4,
    onnx.TensorProto.UINT4: 4,
}
if hasattr(onnx.TensorProto, "FLOAT4E2M1"):
    _SUB_BYTE_BITS[onnx.TensorProto.FLOAT4E2M1] = 4


@dataclass
class OnnxModel(Model):
    """A loaded ONNX model and the scheduling problem it defines (the ONNX :class:`Model`).

    Attributes:
        path: The file it came from.
        proto: The model as read (external weights not loaded). Never modified.
        problem: Its activation graph (ops in file order).
        node_index: For each op id, the index of its node in ``proto.graph.node``.
        input_shapes: Shapes the user fixed with ``--input-shape``.
        external_weights: Names of initializers stored in external files.
        missing_weights: Those whose external file does not exist.
    """

    path: Path
    proto: onnx.ModelProto
    problem: Problem
    node_index: tuple[int, ...]
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    external_weights: list[str] = field(default_factory=list)
    missing_weights: list[str] = field(default_factory=list)

    format_name: ClassVar[str] = "onnx"
    runtime: ClassVar[str] = "onnxruntime"

    @property
    def num_nodes(self) -> int:
        """All nodes of the main graph, scheduled or not."""
        return len(self.proto.graph.node)

    def input_files(self) -> list[Path]:
        """The model and every external weight file it names (present or not)."""
        from serenity.io.onnx_export import external_locations

        return [self.path, *(self.path.parent / loc for loc in external_locations(self.proto))]

    def output_files(self, out: Path) -> list[Path]:
        """``out`` and the ``<out>.data`` weight file written beside it."""
        from serenity.io.onnx_export import data_path

        return [out, data_path(out)]

    def reordered(
        self, order: Sequence[int], offsets: Mapping[int, int] | None = None
    ) -> onnx.ModelProto:
        """A copy of the proto with its nodes in ``order`` (ONNX holds no arena plan)."""
        from serenity.io.onnx_export import reordered_proto

        return reordered_proto(self, order)

    def verify(
        self, candidate: onnx.ModelProto, *, exact: bool = True, seed: int = 0
    ) -> VerifyReport:
        """onnxruntime on both, bitwise or within rtol 1e-4 / atol 1e-5 (see
        :func:`serenity.io.verify.verify_same_outputs`)."""
        from serenity.io.verify import check_activations, verify_same_outputs

        check_activations(self.problem)
        return verify_same_outputs(
            self.proto,
            candidate,
            self.path.parent,
            self.input_shapes,
            seed=seed,
            exact=exact,
            rtol=1e-4,
            atol=1e-5,
        )

    def runtime_warning(self, candidate: onnx.ModelProto) -> str | None:
        """Custom-domain ops, or an IR / opset version newer than the installed onnx
        (and so, most likely, than onnxruntime) knows."""
        custom = sorted({n.domain for n in candidate.graph.node if n.domain not in ORT_DOMAINS})
        if custom:
            return (
                f"{len(custom)} custom op domain(s) ({', '.join(custom[:3])}): onnxruntime "
                "runs the written model only with those ops registered; --verify checks it"
            )
        if candidate.ir_version > onnx.IR_VERSION:
            return (
                f"IR version {candidate.ir_version} is newer than this onnx supports "
                f"({onnx.IR_VERSION}): onnxruntime may refuse the written model"
            )
        newest = onnx.defs.onnx_opset_version()
        for imp in candidate.opset_import:
            if imp.domain in ("", "ai.onnx") and imp.version > newest:
                return (
                    f"opset {imp.version} is newer than this onnx knows ({newest}): "
                    "onnxruntime may refuse the written model"
                )
        return None

    def write(self, candidate: onnx.ModelProto, out: Path) -> list[Path]:
        """See :func:`serenity.io.onnx_export.write_model`."""
        from serenity.io.onnx_export import write_model

        return write_model(self, candidate, out)


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ONNX file without its external data, with clear errors.

    Raises:
        ModelError: missing file, a directory, unreadable, or not an ONNX model.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelError(f"not a file: {p}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{p} is not a valid ONNX model (protobuf parse failed: {e})") from None
    if not data or model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelError(f"{p} is not an ONNX model (no IR version or no graph)")
    if not model.graph.output:
        raise ModelError(f"{p}: the graph declares no outputs (truncated or malformed model?)")
    model_text = [model.producer_name, model.producer_version, model.domain, model.doc_string]
    model_text += [o.domain for o in model.opset_import]
    model_text += [x for e in model.metadata_props for x in (e.key, e.value)]
    if any(not isinstance(x, str) for x in model_text):
        raise ModelError(f"{p}: model metadata is not valid UTF-8 text (corrupted model?)")
    check_names(model.graph, str(p))
    check_attributes(model)
    return model


#: Most items an error message lists before "and N more".
MAX_LISTED = 10


def capped(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``items`` joined by commas, at most ``limit`` of them, then "and N more".

    Example:
        >>> capped([str(i) for i in range(12)], 3)
        '0, 1, 2 and 9 more'
    """
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs: list[onnx.GraphProto] = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            graphs.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attr.graphs)
    return graphs


def _outer_references(graph: onnx.GraphProto) -> list[str]:
    """Names a subgraph (recursively) reads but does not define, in first-use order."""
    defined = {i.name for i in graph.input}
    defined |= {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    refs: dict[str, None] = {}
    for node in graph.node:
        reads = [x for x in node.input if x]
        for sub in _subgraphs(node):
            reads += _outer_references(sub)
        refs.update((x, None) for x in reads if x not in defined)
        defined.update(x for x in node.output if x)
    refs.update((o.name, None) for o in graph.output if o.name not in defined)
    return list(refs)


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Every tensor ``node`` reads, outer-scope reads of its subgraphs included."""
    names = [x for x in node.input if x]
    for sub in _subgraphs(node):
        names += _outer_references(sub)
    return list(dict.fromkeys(names))


def _display_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """Unique, stable names: the node's own name, else ``OpType_<index>``."""
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.name] = counts.get(n.name, 0) + 1
    names = []
    taken: set[str] = set()
    for i, n in enumerate(nodes):
        name = n.name if n.name and counts[n.name] == 1 else f"{n.op_type}_{i}"
        while name in taken:
            name = f"{name}#{i}"
        taken.add(name)
        names.append(name)
    return names


def _node_order(graph: onnx.GraphProto, inputs: list[list[str]], names: list[str]) -> list[int]:
    """Check every read is defined and return a topological order of all nodes.

    Raises:
        ModelError: a node reads a tensor nothing defines, or two nodes write one.
        CycleError: the nodes form a cycle.
    """
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in defined:
                raise ModelError(
                    f"tensor '{out}' is defined twice (second time by node '{names[i]}')"
                )
            producer[out] = i
    for i, reads in enumerate(inputs):
        for x in reads:
            if x not in producer and x not in defined:
                raise ModelError(
                    f"node '{names[i]}' ({graph.node[i].op_type}) reads '{x}', which no node, graph "
                    "input or initializer defines (truncated or malformed model?)"
                )
    for o in graph.output:
        if o.name not in producer and o.name not in defined:
            raise ModelError(
                f"graph output '{o.name}' is never produced (truncated or malformed model?)"
            )
    succs: list[list[int]] = [[] for _ in graph.node]
    indeg = [0] * len(graph.node)
    for i, reads in enumerate(inputs):
        for u in sorted({producer[x] for x in reads if x in producer}):
            succs[u].append(i)
            indeg[i] += 1
    heap = [i for i, d in enumerate(indeg) if d == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        u = heapq.heappop(heap)
        order.append(u)
        for w in succs[u]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, w)
    if len(order) < len(graph.node):
        stuck = [names[i] for i, d in enumerate(indeg) if d > 0]
        shown = ", ".join(f"'{x}'" for x in stuck[:5])
        more = f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""
        raise CycleError(f"the graph has a cycle through or behind nodes {shown}{more}")
    return order


def _fix_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Write user-given dims into the graph inputs of ``model`` (a private copy)."""
    inits = {t.name for t in model.graph.initializer}
    by_name = {i.name: i for i in model.graph.input if i.name not in inits}
    for name, dims in shapes.items():
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise UsageError(
                f"--input-shape names '{name}', which is not a graph input (inputs: {known})"
            )
        ttype = by_name[name].type.tensor_type
        if ttype.HasField("shape") and len(ttype.shape.dim) != len(dims):
            raise UsageError(
                f"--input-shape {name}: the model's input has rank {len(ttype.shape.dim)}, "
                f"got {len(dims)} dims"
            )
        for axis, (d, given) in enumerate(zip(ttype.shape.dim, dims, strict=False)):
            if d.HasField("dim_value") and d.dim_value != given:
                raise UsageError(
                    f"--input-shape {name}: axis {axis} is fixed to {d.dim_value} in the model, "
                    f"got {given}"
                )
        ttype.ClearField("shape")
        for given in dims:
            ttype.shape.dim.add().dim_value = given


def _describe_type(t: onnx.TypeProto | None) -> str:
    if t is None or not t.HasField("tensor_type"):
        return "(no type)" if t is None else "(not a tensor)"
    if not t.tensor_type.HasField("shape"):
        return "(no shape)"
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
        for d in t.tensor_type.shape.dim
    ]
    return "[" + ",".join(dims) + "]"


def tensor_bytes(t: onnx.TypeProto | None) -> int | None:
    """Bytes of a statically shaped tensor type, ``None`` when unknown."""
    if t is None or not t.HasField("tensor_type"):
        return None
    tt = t.tensor_type
    if not tt.HasField("shape") or any(not d.HasField("dim_value") for d in tt.shape.dim):
        return None
    if tt.elem_type in _SUB_BYTE_BITS:
        bits = _SUB_BYTE_BITS[tt.elem_type]
    else:
        try:
            bits = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize * 8
        except (KeyError, ValueError, TypeError):
            return None
        if tt.elem_type == onnx.TensorProto.STRING:
            return None
    elems = math.prod(d.dim_value for d in tt.shape.dim)
    return (elems * bits + 7) // 8


def _infer(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(
            model, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception as e:  # onnx raises several unrelated types here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: ONNX shape inference failed: {first}") from None


def load_onnx(
    path: str | os.PathLike[str],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> OnnxModel:
    """Load an ONNX model and build its scheduling problem.

    Args:
        path: The ``.onnx`` file. External weight files may be missing.
        input_shapes: Dims for graph inputs, overriding symbolic dims.

    Returns:
        The model and its :class:`~serenity.ir.Problem`.

    Raises:
        ModelError: unreadable, truncated or malformed model, or an external-data
            reference that is absolute, leaves the model's folder or names a
            file too short for it (:mod:`serenity.io.onnx_checks`).
        CycleError: the graph is cyclic.
        UnknownShapeError: some activation has no static shape; the message
            lists the first ten such tensors and how many more.
        UsageError: ``input_shapes`` names a non-input or conflicts with it.

    Example:
        >>> import tempfile, os
        >>> from serenity.zoo import build_example
        >>> d = tempfile.mkdtemp(); f = os.path.join(d, "m.onnx")
        >>> onnx.save(build_example(), f)
        >>> load_onnx(f).problem.num_ops
        15
    """
    p = Path(path)
    return load_proto(read_model(p), p, input_shapes)


def load_proto(
    proto: onnx.ModelProto,
    path: str | os.PathLike[str],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> OnnxModel:
    """Build the scheduling problem of an in-memory model (see :func:`load_onnx`).

    Args:
        proto: The model (external weights need not be loaded). Kept, never modified.
        path: Where the model lives or will live: its stem names the problem,
            its directory is where external weight files are looked up.
        input_shapes: Dims for graph inputs, overriding symbolic dims.

    Raises:
        ModelError, CycleError, UnknownShapeError, UsageError: as :func:`load_onnx`.
    """
    p = Path(path)
    refs = external_refs(proto, p.parent)  # before any work: nothing outside the folder is read
    graph = proto.graph
    names = _display_names(graph.node)
    inputs = [node_inputs(n) for n in graph.node]
    topo = _node_order(graph, inputs, names)

    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    analysis = onnx.ModelProto()
    analysis.CopyFrom(proto)
    _fix_input_shapes(analysis, shapes)
    inferred = _infer(analysis, p).graph
    types: dict[str, onnx.TypeProto] = {}
    for vi in (*inferred.input, *inferred.value_info, *inferred.output):
        if vi.HasField("type") and vi.name not in types:
            types[vi.name] = vi.type

    inits = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    act_inputs = [i.name for i in analysis.graph.input if i.name not in inits]
    active = set(act_inputs)
    scheduled = []
    for i in topo:
        if any(x in active for x in inputs[i]):
            scheduled.append(i)
            active.update(x for x in graph.node[i].output if x)
    scheduled.sort()  # ops are numbered in file order

    tensor_ids: dict[str, int] = {}

    def tid(name: str) -> int:
        if name not in tensor_ids:
            tensor_ids[name] = len(tensor_ids)
        return tensor_ids[name]

    for name in act_inputs:
        tid(name)
    op_inputs, op_outputs = [], []
    for i in scheduled:
        op_inputs.append([tid(x) for x in inputs[i] if x in active])
        op_outputs.append([tid(x) for x in graph.node[i].output if x])
    tensor_names = list(tensor_ids)

    sizes: list[int] = []
    unknown: list[str] = []
    for name in tensor_names:
        t = types.get(name)
        if t is not None and (
            not t.HasField("tensor_type") or t.tensor_type.elem_type == onnx.TensorProto.STRING
        ):
            raise UnsupportedModelError(
                f"{p}: activation '{name}' is not a numeric tensor (sequence, map, optional or "
                "string values have no static byte size); serenity schedules tensor graphs only"
            )
        size = tensor_bytes(t)
        if size is None:
            unknown.append(f"'{name}' {_describe_type(t)}")
            size = 0
        sizes.append(size)
    if unknown:
        inputs_desc = [f"{n} {_describe_type(types.get(n))}" for n in act_inputs]
        raise UnknownShapeError(
            f"{p}: {len(unknown)} activation tensor(s) have no static size after shape inference: "
            + capped(unknown)
            + "; fix symbolic input dims with --input-shape NAME=d0,d1,... "
            + f"(graph inputs: {capped(inputs_desc)})"
        )

    inplace: list[list[int]] = []
    for k, i in enumerate(scheduled):
        node = graph.node[i]
        outs = op_outputs[k]
        cands: list[int] = []
        if node.op_type in INPLACE_OPS and node.domain in ("", "ai.onnx") and len(outs) == 1:
            data = (
                [tid(node.input[0])]
                if node.op_type in _VIEW_OPS and node.input[0] in active
                else op_inputs[k]
            )
            cands = [t for t in data if sizes[t] == sizes[outs[0]]]
        inplace.append(cands)

    problem = Problem(
        op_names=[names[i] for i in scheduled],
        tensor_sizes=sizes,
        op_inputs=op_inputs,
        op_outputs=op_outputs,
        graph_inputs=[tensor_ids[n] for n in act_inputs],
        graph_outputs=[tensor_ids[o.name] for o in graph.output if o.name in active],
        tensor_names=tensor_names,
        op_types=[graph.node[i].op_type for i in scheduled],
        inplace_inputs=inplace,
        name=p.stem,
    )
    external, missing = external_weights(refs)
    return OnnxModel(p, proto, problem, tuple(scheduled), shapes, external, missing)


def _is_onnx(head: bytes) -> bool:
    """An ONNX file starts with its IR version (protobuf field 1, varint: byte 0x08)."""
    return head[:1] == b"\x08" and len(head) > 1


#: The ONNX format (see :mod:`serenity.io.format`).
FORMAT = Format(
    name="onnx",
    suffixes=(".onnx",),
    sniff=_is_onnx,
    load=load_onnx,
)
