"""Helpers shared by the rewrite passes: conversion, fresh names, weight slices.

The passes edit an :class:`onnx_ir.Model`. Shapes come from ONNX shape
inference run once on the proto before conversion (:func:`to_ir`); values a
pass creates get their shape from the value they stand for, so that passes
can be chained without re-inferring.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir

from serenity.errors import ModelError


@dataclass(frozen=True)
class Rewrite:
    """One rewrite applied to a graph.

    Attributes:
        pass_name: The pass (``distribute``, ``channel_partition``, ...).
        nodes: Names of the original nodes it replaced, the anchor first
            (e.g. the concat, then its consumer).
        parts: How many parts the concat had (0 for passes without parts).
    """

    pass_name: str
    nodes: tuple[str, ...]
    parts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"pass": self.pass_name, "nodes": list(self.nodes), "parts": self.parts}


def count_passes(rewrites: Iterable[Rewrite]) -> dict[str, int]:
    """How many of ``rewrites`` each pass made, by pass name in sorted order."""
    return dict(sorted(Counter(r.pass_name for r in rewrites).items()))


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    """An onnx-ir copy of ``proto`` with inferred shapes on its values.

    External weights are not read (they stay lazy references), so graphs
    whose weight files are missing convert fine.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception:  # onnx raises several unrelated types; shapes are then partial
        inferred = proto
    try:
        return ir.from_proto(inferred)
    except Exception as e:  # onnx-ir wraps what it cannot read in SerdeError, or raises plain
        raise ModelError(f"the model cannot be read for rewriting ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    """The first line of what caused ``e`` (onnx-ir wraps the cause), for a one-line error."""
    cause = e.__cause__ or e
    text = str(cause).strip()
    return "onnx-ir: " + (text.splitlines()[0] if text else type(cause).__name__)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize back; value infos of removed values go with them.

    Raises:
        ModelError: onnx-ir cannot write something it read (malformed text).
    """
    try:
        return ir.to_proto(model)
    except Exception as e:  # onnx-ir wraps what it cannot write in SerdeError
        raise ModelError(f"the rewritten model cannot be serialized ({_first_line(e)})") from None


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The dims of ``value`` when every one is a known integer, else ``None``."""
    if value is None or value.shape is None:
        return None
    dims = []
    for d in value.shape:
        if not isinstance(d, int):
            return None
        dims.append(d)
    return tuple(dims)


def dim(value: ir.Value | None, axis: int) -> int | None:
    """One static dim of ``value`` (``None`` when the rank or the dim is unknown)."""
    if value is None or value.shape is None or not -len(value.shape) <= axis < len(value.shape):
        return None
    d = value.shape[axis]
    return d if isinstance(d, int) else None


def int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else int(attr.as_int())


def ints_attr(node: ir.Node, name: str) -> list[int] | None:
    attr = node.attributes.get(name)
    return None if attr is None else [int(x) for x in attr.as_ints()]


#: Largest constant (in elements) whose values a pass reads; bigger ones are treated as unknown.
MAX_CONST_ELEMENTS = 1 << 16


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The data of a small constant (inline initializer or ``Constant`` output), else ``None``.

    External tensors are never read: their data may be missing.
    """
    if value is None:
        return None
    tensor = value.const_value
    if tensor is None:
        producer = value.producer()
        if producer is None or producer.op_type != "Constant" or producer.domain != "":
            return None
        attr = producer.attributes.get("value")
        if attr is None:
            return None
        tensor = attr.as_tensor()
    if isinstance(tensor, ir.ExternalTensor):
        return None
    try:
        # Only small constants: a tensor declaring huge dims without the data
        # (a malformed model) would otherwise be allocated from its shape alone.
        if math.prod(int(d) for d in tensor.shape) > MAX_CONST_ELEMENTS:  # type: ignore[misc, arg-type]
            return None
        return tensor.numpy()
    except Exception:  # an unreadable tensor is simply not a known constant
        return None


class Editor:
    """Fresh names, shared small constants and the weight test for one graph.

    Weights are values computed without any graph input: initializers,
    ``Constant`` outputs and arithmetic on those. Slicing a weight is again a
    weight, so the importer neither schedules nor counts it.
    """

    def __init__(self, graph: ir.Graph) -> None:
        self.graph = graph
        self._taken: set[str] = set(graph.initializers)
        self._taken.update(v.name for v in graph.inputs if v.name)
        for node in graph:
            if node.name:
                self._taken.add(node.name)
            self._taken.update(v.name for v in node.outputs if v.name)
        self._consts: dict[tuple[int, ...], ir.Value] = {}
        self._weight: dict[int, bool] = {}

    def fresh(self, base: str) -> str:
        """A name not used by any node or value of the graph, derived from ``base``."""
        name, k = base, 1
        while name in self._taken:
            name, k = f"{base}_{k}", k + 1
        self._taken.add(name)
        return name

    def ints(self, values: Sequence[int]) -> ir.Value:
        """An int64 1-D initializer holding ``values`` (shared between uses)."""
        key = tuple(int(v) for v in values)
        if key not in self._consts:
            name = self.fresh("serenity.const_" + "_".join(str(v).replace("-", "m") for v in key))
            tensor = ir.tensor(np.array(key, dtype=np.int64), name=name)
            value = ir.Value(
                name=name,
                shape=ir.Shape([len(key)]),
                type=ir.TensorType(ir.DataType.INT64),
                const_value=tensor,
            )
            self.graph.register_initializer(value)
            self._consts[key] = value
        return self._consts[key]

    def is_weight(self, value: ir.Value | None) -> bool:
        """True when ``value`` does not depend on any graph input."""
        if value is None:
            return True
        stack = [value]
        order: list[ir.Value] = []
        while stack:
            v = stack.pop()
            if id(v) in self._weight:
                continue
            order.append(v)
            if v.is_graph_input() and not v.is_initializer():
                self._weight[id(v)] = False
                continue
            producer = v.producer()
            if producer is None:
                self._weight[id(v)] = v.const_value is not None or v.is_initializer()
                continue
            stack.extend(x for x in producer.inputs if x is not None)
        for v in reversed(order):
            if id(v) in self._weight:
                continue
            producer = v.producer()
            assert producer is not None
            self._weight[id(v)] = all(
                self._weight.get(id(x), True) for x in producer.inputs if x is not None
            )
        return self._weight[id(value)]

    def slice(
        self, value: ir.Value, axis: int, start: int, end: int, into: list[ir.Node], step: int = 1
    ) -> ir.Value:
        """``value[start:end]`` on ``axis`` as a ``Slice`` node appended to ``into``.

        On a weight the node is weight-only arithmetic: never scheduled, never
        counted, folded by runtimes when they load the model.
        """
        base = value.name or "value"
        inputs = [value, self.ints([start]), self.ints([end]), self.ints([axis])]
        if step != 1:
            inputs.append(self.ints([step]))
        node = ir.Node(
            "", "Slice", inputs, name=self.fresh(f"{base}.slice{start}_{end}"), num_outputs=1
        )
        out = node.outputs[0]
        out.name = self.fresh(f"{base}[{start}:{end}]")
        out.type = value.type
        shape = static_shape(value)
        if shape is not None:
            dims = list(shape)
            dims[axis] = len(range(start, end, step))
            out.shape = ir.Shape(dims)
        into.append(node)
        return out

    def concat(
        self,
        values: Sequence[ir.Value],
        axis: int,
        template: ir.Value,
        name: str,
        into: list[ir.Node],
    ) -> ir.Node:
        """A ``Concat`` of ``values`` on ``axis``, appended to ``into``; its output
        takes ``template``'s type and shape (the tensor the concat stands for)."""
        node = ir.Node(
            "",
            "Concat",
            list(values),
            {"axis": ir.AttrInt64("axis", axis)},
            num_outputs=1,
            name=self.fresh(name),
        )
        like(node.outputs[0], template, axis, None)
        into.append(node)
        return node


def like(value: ir.Value, template: ir.Value | None, axis: int, size: int | None) -> ir.Value:
    """Give ``value`` the type of ``template`` and its shape with ``axis`` set to ``size``."""
    if template is None:
        return value
    value.type = template.type
    if template.shape is not None and size is not None and 0 <= axis < len(template.shape):
        dims = list(template.shape)
        dims[axis] = size
        value.shape = ir.Shape(dims)
    elif template.shape is not None and size is None:
        value.shape = ir.Shape(list(template.shape))
    return value


def concat_parts(concat: ir.Node) -> tuple[int, list[tuple[ir.Value, int, int]]] | None:
    """The normalized axis and the ``(value, offset, size)`` parts of a Concat.

    ``None`` when it is not a plain Concat or some part's size on the axis is
    not static.
    """
    if concat.op_type != "Concat" or concat.domain != "" or len(concat.outputs) != 1:
        return None
    out = concat.outputs[0]
    rank = len(out.shape) if out.shape is not None else None
    if rank is None:
        ranks = {len(x.shape) for x in concat.inputs if x is not None and x.shape is not None}
        if len(ranks) != 1:
            return None
        rank = ranks.pop()
    axis = norm_axis(int_attr(concat, "axis", 0), rank)
    parts: list[tuple[ir.Value, int, int]] = []
    offset = 0
    for x in concat.inputs:
        size = dim(x, axis)
        if x is None or size is None:
            return None
        parts.append((x, offset, size))
        offset += size
    if len(parts) < 2:
        return None
    return axis, parts


def uses_of(value: ir.Value) -> list[tuple[ir.Node, int]]:
    """The (node, input index) uses of ``value``, in a deterministic order."""
    return [(u.node, u.idx) for u in value.uses()]


def consumers(value: ir.Value) -> list[ir.Node]:
    """Distinct consumer nodes of ``value`` in first-use order."""
    return list(dict.fromkeys(node for node, _ in uses_of(value)))


def local_consumers(node: ir.Node) -> list[ir.Node]:
    """Consumers of ``node``'s first output in ``node``'s own graph, in first-use order.

    A subgraph (an ``If`` branch, a ``Loop`` body) that reads the value from
    the outer scope is never rewritten in its place: a rewrite edits one graph.
    The value's other uses still keep it alive (:func:`remove_if_dead`).
    """
    return [user for user in consumers(node.outputs[0]) if user.graph is node.graph]


def remove_if_dead(graph: ir.Graph, node: ir.Node) -> bool:
    """Remove ``node`` when none of its outputs is used or is a graph output."""
    if any(v.uses() or v.is_graph_output() for v in node.outputs):
        return False
    graph.remove(node, safe=True)
    return True


def copy_attributes(node: ir.Node, **overrides: object) -> list[ir.Attr]:
    """``node``'s attributes for a new :class:`ir.Node`; an override of ``None`` drops one."""
    attrs: dict[str, ir.Attr] = dict(node.attributes.items())
    for name, value in overrides.items():
        if value is None:
            attrs.pop(name, None)
        else:
            attrs[name] = ir.convenience.convert_attribute(name, value)  # type: ignore[arg-type]
    return list(attrs.values())


def replace_output(graph: ir.Graph, old: ir.Node, new_nodes: list[ir.Node], new: ir.Value) -> None:
    """Put ``new_nodes`` after ``old``, make ``new`` stand for ``old``'s only output, drop ``old``.

    ``new`` takes the old output's name, type and shape, so graph outputs and
    downstream names are unchanged.
    """
    ir.convenience.replace_nodes_and_values(graph, old, [old], new_nodes, [old.outputs[0]], [new])


class SitePass(ir.passes.InPlacePass):
    """An onnx-ir pass that applies a one-site rewrite wherever it qualifies.

    Subclasses say where to look (:meth:`sites`) and how to rewrite one site
    (:meth:`rewrite_site`, ``None`` when the site does not qualify); the pass
    records every rewrite in :attr:`rewrites`. Sites are generated lazily, so
    a site can see the edits made at the sites before it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rewrites: list[Rewrite] = []

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        raise NotImplementedError

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        raise NotImplementedError

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = Editor(model.graph)
        modified = False
        for site in self.sites(model.graph):
            done = self.rewrite_site(editor, *site)
            if done is not None:
                self.rewrites.append(done)
                modified = True
        return ir.passes.PassResult(model, modified)


def concat_consumer_sites(graph: ir.Graph) -> Iterator[tuple[ir.Node, ir.Node]]:
    """Every (concat, consumer) pair, skipping a concat once a rewrite removed it."""
    for concat in [n for n in graph if n.op_type == "Concat"]:
        for node in local_consumers(concat):
            if concat.graph is None:
                break
            yield concat, node
