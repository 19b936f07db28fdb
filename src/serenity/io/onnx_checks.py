"""Checks on an ONNX model made when it is loaded, before any other work.

**Names.** protobuf hands a string field that is not valid UTF-8 to Python as
``bytes``; a corrupted name would then fail only when a report is written.
:func:`check_names` refuses such a model up front.

**External data.** An ONNX tensor stored outside the model names a ``location`` (a file path
relative to the model's folder) and optionally an ``offset`` and ``length``
in bytes. A hostile or broken model can name an absolute path, climb out with
``..``, or reach out through a symlink, and a truncated weight file is only
found out when the weights are read, long after a success was printed. So
before any other work, every reference is checked:

* the location is a non-empty relative path that stays inside the model's
  folder once ``..`` and symlinks are resolved;
* ``offset`` and ``length`` are non-negative integers, and the length (when
  given) is what the tensor's dims and type require;
* where the file exists, it is a regular file long enough for
  ``offset + length`` of every tensor stored in it.

A missing file is allowed: analysis-only exports strip their weights (the
model's ``missing_weights``). Nothing here reads a weight byte; only file
metadata (``stat``) of files inside the folder is looked at.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from serenity.errors import CONTROL_CHARACTERS, ModelError, one_line

#: Characters no name may hold: they would break one-line messages and reports.
_CONTROL = CONTROL_CHARACTERS

#: Element sizes in bits of types numpy has no dtype for.
_SUB_BYTE_BITS: dict[int, int] = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}


def check_names(graph: onnx.GraphProto, where: str = "the graph") -> None:
    """Every name the scheduling problem and the reports use must be text.

    Checks the names of graph inputs, outputs, value infos and initializers,
    and of every node (its name, op type, domain, inputs, outputs and
    attribute names),
    subgraphs included.

    Raises:
        ModelError: a name is not valid UTF-8 (a corrupted or malformed model).

    Complexity: O(nodes + edges), no weight data touched.
    """
    groups: list[tuple[str, list[object]]] = [
        ("the graph", [graph.name]),
        ("graph input", [v.name for v in graph.input]),
        ("graph output", [v.name for v in graph.output]),
        ("value info", [v.name for v in graph.value_info]),
        ("initializer", [t.name for t in graph.initializer]),
    ]
    for i, node in enumerate(graph.node):
        fields = [node.name, node.op_type, node.domain, *node.input, *node.output]
        fields += [a.name for a in node.attribute]
        groups.append((f"node {i}", fields))
    for what, names in groups:
        if any(not isinstance(n, str) for n in names):
            raise ModelError(
                f"{where}: a name of {what} is not valid UTF-8 text (corrupted or malformed model)"
            )
        if _CONTROL.search("".join(names)):  # type: ignore[arg-type]
            raise ModelError(
                f"{where}: a name of {what} contains a control character such as a newline "
                "(corrupted or malformed model)"
            )
    # Doc strings may hold newlines, but must be text: onnx-ir writes them back.
    docs = [graph.doc_string, *(n.doc_string for n in graph.node)]
    if any(not isinstance(d, str) for d in docs):
        raise ModelError(f"{where}: a doc string is not valid UTF-8 text (corrupted model)")
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                check_names(attr.g, where)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    check_names(g, where)


def check_attributes(model: onnx.ModelProto) -> None:
    """Every attribute of the main graph's nodes must have a type, the type the
    op's schema declares (standard ops), and, if a string, be UTF-8 text.

    Shape inference tolerates such attributes; the rewrite passes and the
    runtime would fail on them later, with a traceback.

    Raises:
        ModelError: names the node and the attribute.

    Complexity: O(attributes), one schema lookup per op type.
    """
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    schemas: dict[str, dict[str, int]] = {}
    A = onnx.AttributeProto
    for i, node in enumerate(model.graph.node):
        if node.op_type not in schemas:
            schemas[node.op_type] = _attribute_types(node.op_type, node.domain, version)
        declared = schemas[node.op_type] if node.domain in ("", "ai.onnx") else {}
        for attr in node.attribute:
            where = f"node {i} ({node.op_type} '{node.name}'): attribute '{attr.name}'"
            if attr.type == A.UNDEFINED:
                raise ModelError(f"{where} has no type (malformed model)")
            expected = declared.get(attr.name)
            if expected is not None and attr.type != expected:
                raise ModelError(
                    f"{where} is {A.AttributeType.Name(attr.type)}, the op requires "
                    f"{A.AttributeType.Name(expected)} (malformed model)"
                )
            texts = [attr.s] if attr.type == A.STRING else list(attr.strings)
            try:
                for text in texts:
                    text.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelError(f"{where} is not UTF-8 text (corrupted model)") from None


def _attribute_types(op_type: str, domain: str, version: int) -> dict[str, int]:
    """Attribute name -> AttributeProto type for a standard op (empty if unknown)."""
    if domain not in ("", "ai.onnx") or version <= 0:
        return {}
    try:
        schema = onnx.defs.get_schema(op_type, version, "")
    except onnx.defs.SchemaError:
        return {}
    # AttrType is an int enum the stubs do not declare as one.
    return {name: int(a.type) for name, a in schema.attributes.items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class ExternalRef:
    """One tensor stored outside the model file.

    Attributes:
        tensor: The tensor's name (or a description for unnamed attribute tensors).
        location: The location as written in the model.
        path: The resolved file, inside the model's folder.
        offset: Byte offset in the file.
        length: Bytes to read (the declared length, else what the dims require;
            ``None`` when neither is known).
        is_initializer: The tensor is an initializer of the main graph.
    """

    tensor: str
    location: str
    path: Path
    offset: int
    length: int | None
    is_initializer: bool


def _stored_tensors(graph: onnx.GraphProto, top: bool) -> Iterator[tuple[onnx.TensorProto, bool]]:
    """Every tensor of ``graph`` and its subgraphs that may hold data, with "is a
    main-graph initializer"."""
    for t in graph.initializer:
        yield t, top
    for s in graph.sparse_initializer:
        yield s.values, False
        yield s.indices, False
    A = onnx.AttributeProto
    for node in graph.node:
        for attr in node.attribute:
            kind = attr.type  # one int compare per attribute: most are ints and floats
            if kind == A.TENSOR:
                yield attr.t, False
            elif kind == A.TENSORS:
                yield from ((t, False) for t in attr.tensors)
            elif kind == A.SPARSE_TENSOR:
                yield attr.sparse_tensor.values, False
                yield attr.sparse_tensor.indices, False
            elif kind == A.GRAPH:
                yield from _stored_tensors(attr.g, False)
            elif kind == A.GRAPHS:
                for g in attr.graphs:
                    yield from _stored_tensors(g, False)


def _data_bytes(t: onnx.TensorProto) -> int | None:
    """Bytes the data of ``t`` takes by its dims and type, ``None`` when unknown."""
    if any(d < 0 for d in t.dims):
        raise ModelError(f"tensor '{t.name}' has a negative dim {list(t.dims)}")
    bits = _SUB_BYTE_BITS.get(t.data_type)
    if bits is None:
        if t.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            return None
        try:
            bits = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize * 8
        except (KeyError, ValueError, TypeError):
            return None
    return (math.prod(t.dims) * bits + 7) // 8


def _non_negative_int(t: onnx.TensorProto, key: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ModelError(
            f"tensor '{t.name}': external-data {key} '{value}' is not a non-negative integer"
        )
    return n


def _inside(base: Path, location: str, tensor: str) -> Path:
    """The file ``location`` names, checked to resolve inside ``base``.

    Raises:
        ModelError: empty, absolute, escaping ``base`` (``..`` or a symlink), or
            not a path the OS accepts.
    """
    where = f"tensor '{tensor}': external-data location '{one_line(location)}'"
    if _CONTROL.search(location):
        raise ModelError(f"{where} contains a control character")
    if not location:
        raise ModelError(f"tensor '{tensor}' is stored externally but names no location")
    if (
        PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or location.startswith(("/", "\\"))
    ):
        raise ModelError(f"{where} is an absolute path; it must be relative to the model's folder")
    try:
        root = base.resolve()
        path = (base / location).resolve()
    except (OSError, ValueError, RuntimeError) as e:  # NUL bytes, symlink loops, long names
        raise ModelError(f"{where} is not a usable path ({e})") from None
    if not path.is_relative_to(root) or path == root:
        raise ModelError(
            f"{where} resolves outside the model's folder {root} (through '..' or a symlink); "
            "serenity reads weights only from inside it"
        )
    return path


def external_refs(proto: onnx.ModelProto, folder: Path) -> list[ExternalRef]:
    """Check every external-data reference of ``proto`` (see the module docstring).

    Args:
        proto: The model, external data not loaded.
        folder: The model's folder: every weight file must be inside it.

    Returns:
        One entry per externally stored tensor, in file order.

    Raises:
        ModelError: a reference is malformed, points outside the model's folder,
            or its file exists but is not a regular file or is too short.

    Complexity: O(tensors) plus one ``stat`` per distinct file.
    """
    base = folder
    refs: list[ExternalRef] = []
    resolved: dict[str, Path] = {}
    for t, is_init in _stored_tensors(proto.graph, True):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        name = one_line(t.name) or "(unnamed attribute tensor)"
        entries = {e.key: e.value for e in t.external_data}
        location = entries.get("location", "")
        if location not in resolved:  # one resolve per file, not per tensor
            resolved[location] = _inside(base, location, name)
        path = resolved[location]
        offset = _non_negative_int(t, "offset", entries.get("offset", "0"))
        needed = _data_bytes(t)
        length = needed
        if "length" in entries:
            length = _non_negative_int(t, "length", entries["length"])
            if needed is not None and length != needed:
                raise ModelError(
                    f"tensor '{name}': external-data length {length:,} does not match the "
                    f"{needed:,} bytes its dims {list(t.dims)} and type require"
                )
        refs.append(ExternalRef(name, location, path, offset, length, is_init))
    _check_files(refs)
    return refs


def _check_files(refs: list[ExternalRef]) -> None:
    """Existing files must be regular and long enough for every tensor in them."""
    sizes: dict[Path, int | None] = {}
    for r in refs:
        if r.path not in sizes:
            try:
                st = os.stat(r.path)
            except FileNotFoundError:
                sizes[r.path] = None  # missing: an analysis-only graph
                continue
            except OSError as e:
                raise ModelError(
                    f"cannot read external-data file {r.path} of tensor '{r.tensor}': {e.strerror}"
                ) from None
            if not os.path.isfile(r.path):
                raise ModelError(
                    f"external-data location '{r.location}' of tensor '{r.tensor}' is not a file"
                )
            sizes[r.path] = st.st_size
        size = sizes[r.path]
        if size is None:
            continue
        end = r.offset + (r.length or 0)
        if end > size:
            raise ModelError(
                f"external-data file {r.path} is too short: tensor '{r.tensor}' needs bytes "
                f"{r.offset:,}..{end:,}, the file has {size:,} (truncated weights?)"
            )


def external_weights(refs: list[ExternalRef]) -> tuple[list[str], list[str]]:
    """Names of the main graph's externally stored initializers, and of those
    whose file does not exist."""
    present = {path: path.is_file() for path in {r.path for r in refs}}
    external = [r.tensor for r in refs if r.is_initializer]
    missing = [r.tensor for r in refs if r.is_initializer and not present[r.path]]
    return external, missing
