"""Fold a constant scale into the Conv or BatchNormalization that produces its input.

Not one of SERENITY's rewrites, but the same kind: an identity that removes
an intermediate. RandWire aggregates a node's inputs as ``sum_i w_i * x_i``
(positive learned weights, exported as ``Mul`` nodes by constants), and a
node output ``x`` feeding several later nodes gets one ``Mul`` per consumer.
Whenever a schedule adds ``w_j * x`` into consumer ``j``'s sum while ``x``
still waits for another consumer, both ``x`` and its scaled copy are live;
on RandWire every step at the optimal peak is such an ``Add``.

``Mul(x, c)`` with ``x = P(...)`` a ``Conv`` or an inference-form
``BatchNormalization`` and ``c`` a scalar weight becomes the producer itself
scaled by ``c``, which is linear in its weights:

* ``Conv``: ``W' = W * c`` and ``b' = b * c``;
* ``BatchNormalization``: ``scale' = scale * c`` and ``bias' = bias * c``.

The ``Mul`` disappears (its consumers read the scaled producer), and every
other consumer of ``x``, which must be a ``Mul`` by a scalar weight ``c_k``
too, gets ``c_k / c`` instead. So ``x`` never exists unscaled and no value
is computed twice. The new factors are weight-only nodes (``Mul``, ``Div``
on initializers): never scheduled or counted, folded by runtimes at load
time, and fine where weight files are missing.

The site must be exact: ``c`` is a weight with one element and a nonzero
value where it is known (a zero factor cannot be divided out); ``x`` is the
producer's only output, not a graph output, and all its consumers are such
``Mul`` nodes; the producer's weights are weights; the BN is in inference
form. Results equal the original within float rounding (a product of two
factors instead of two products), not bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    SitePass,
    const_array,
    consumers,
    copy_attributes,
    like,
    static_shape,
    uses_of,
)
from serenity.rewrite.bn_fold import inference_bn
from serenity.rewrite.registry import DriverRule, PeakView, Tried, one

#: Producers a scale folds into, with the input indices it multiplies.
PRODUCERS = {"Conv": (1, 2), "BatchNormalization": (1, 2)}


def _scale_of(editor: Editor, mul: ir.Node, x: ir.Value) -> ir.Value | None:
    """The scalar weight ``mul`` multiplies ``x`` by, or ``None``."""
    if mul.op_type != "Mul" or mul.domain not in ("", "ai.onnx") or len(mul.inputs) != 2:
        return None
    a, b = mul.inputs
    if a is x and b is not x:
        c = b
    elif b is x and a is not x:
        c = a
    else:
        return None
    if c is None or not editor.is_weight(c):
        return None
    shape = static_shape(c)
    if shape is None or math.prod(shape) != 1:  # exact: int64 products can wrap to 1
        return None
    if c.dtype != x.dtype or static_shape(mul.outputs[0]) != static_shape(x):
        return None
    known = const_array(c)
    if known is not None and not np.all(known != 0):
        return None
    return c


def site(editor: Editor, mul: ir.Node) -> tuple[ir.Node, ir.Value, ir.Value] | None:
    """``(producer, x, c)`` when ``mul`` = ``Mul(x, c)`` can be folded, else ``None``."""
    for x in mul.inputs:
        if x is None:
            continue
        producer = x.producer()
        if producer is None or producer.op_type not in PRODUCERS:
            continue
        if producer.domain not in ("", "ai.onnx") or len(producer.outputs) != 1:
            continue
        if x.is_graph_output() or x.shape is None:
            continue
        c = _scale_of(editor, mul, x)
        if c is None:
            continue
        if producer.op_type == "BatchNormalization" and not inference_bn(producer):
            continue
        if producer.op_type == "Conv":
            w = producer.inputs[1] if len(producer.inputs) > 1 else None
            if w is None or static_shape(w) is None:
                continue
        params = [
            producer.inputs[i] for i in PRODUCERS[producer.op_type] if i < len(producer.inputs)
        ]
        if not all(editor.is_weight(p) for p in params):
            continue
        if any(_scale_of(editor, user, x) is None for user in consumers(x)):
            continue
        if len(uses_of(x)) != len(consumers(x)):
            continue  # Mul(x, x) or a consumer reading x twice
        return producer, x, c
    return None


def _weight_op(
    editor: Editor, op: str, a: ir.Value, b: ir.Value, name: str, into: list[ir.Node]
) -> ir.Value:
    node = ir.Node("", op, [a, b], num_outputs=1, name=editor.fresh(name))
    out = node.outputs[0]
    out.name = editor.fresh(name)
    like(out, a, 0, None)
    into.append(node)
    return out


def fold_scale(editor: Editor, mul: ir.Node) -> Rewrite | None:
    """Fold ``mul``'s constant into the producer of its other input (module docstring).

    Returns ``None`` (graph unchanged) when the site does not qualify.

    Complexity: O(consumers of the producer's output) nodes added, all weight-only.
    """
    found = site(editor, mul)
    if found is None:
        return None
    producer, x, c = found
    graph = editor.graph
    base = producer.name or producer.op_type
    added: list[ir.Node] = []
    inputs = list(producer.inputs)
    for i in PRODUCERS[producer.op_type]:
        if i < len(inputs) and inputs[i] is not None:
            param = inputs[i]
            assert param is not None
            # A scalar [1]-shaped c broadcasts over any parameter shape; keep the parameter's.
            inputs[i] = _weight_op(editor, "Mul", param, c, f"{base}.scaled_{i}", added)
    scaled = ir.Node(
        producer.domain,
        producer.op_type,
        inputs,
        copy_attributes(producer),
        num_outputs=1,
        name=editor.fresh(f"{base}.scaled"),
    )
    out = scaled.outputs[0]
    like(out, x, 0, None)
    out.name = editor.fresh(f"{x.name or base}.scaled")
    others = [user for user in consumers(x) if user is not mul]
    graph.insert_after(producer, [*added, scaled])
    for user in others:  # Mul(x, c_k) -> Mul(x', c_k / c)
        c_k = _scale_of(editor, user, x)
        assert c_k is not None
        ratio: list[ir.Node] = []
        factor = _weight_op(editor, "Div", c_k, c, f"{user.name or 'mul'}.factor", ratio)
        graph.insert_before(user, ratio)
        for idx, value in enumerate(list(user.inputs)):
            user.replace_input_with(idx, out if value is x else factor)
    mul_out = mul.outputs[0]
    out_name = mul_out.name
    ir.convenience.replace_all_uses_with(mul_out, out, replace_graph_outputs=True)
    graph.remove([mul, producer], safe=True)
    out.name = out_name  # downstream names (and a graph output's) are unchanged
    return Rewrite("scale_fold", (mul.name or "", producer.name or ""), 1 + len(others))


class ScaleFoldPass(SitePass):
    """Fold every qualifying constant ``Mul`` into its producer."""

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        return ((n,) for n in list(graph) if n.op_type == "Mul")

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        if site[0].graph is None:
            return None  # removed by an earlier fold
        return fold_scale(editor, *site)


def _driver_match(editor: Editor, mul: ir.Node, peak: PeakView) -> Tried | None:
    """A foldable Mul whose input and scaled copy are live at one peak step."""
    scaled = site(editor, mul)
    if scaled is None:
        return None
    pair = {scaled[1].name, mul.outputs[0].name}
    return "solo" if any(pair <= step for step in peak.steps) else None


#: The driver's view of this pass (:mod:`serenity.rewrite.registry`).
DRIVER = DriverRule(
    name="scale_fold",
    ops=frozenset({"Mul"}),
    match=_driver_match,
    apply=lambda editor, mul, peak: one(fold_scale(editor, mul)),
)
