"""Fold an inference-form ``BatchNormalization`` into the Conv (or Gemm) that feeds it.

Not one of SERENITY's rewrites, but the same kind: an identity that removes
an intermediate. ``BN(Conv(x, W, b))`` with ``s = scale / sqrt(var + eps)``
is ``Conv(x, W', b')`` with ``W' = W * s`` on the output-channel axis and
``b' = (b - mean) * s + beta`` (``b = 0`` when the conv has no bias). The
conv output, as large as the BN output, is gone: under the default memory
model the BN step held both; under the in-place model BN already overwrote
its input, so the fold changes nothing there.

**Folded weights are graph nodes, never data** (as the weight slices of the
other passes): ``Add(var, eps)``, ``Sqrt``, ``Div`` give ``s``; an
``Unsqueeze`` shapes it for the weight's axis, ``Mul`` scales the weight,
``Sub`` / ``Mul`` / ``Add`` give the bias. They are weight-only arithmetic:
the importer neither schedules nor counts them, onnxruntime folds them when
it loads the model, and they work when the weight files are missing.

Producers handled:

* ``Conv``: weight ``(M, C/group, k...)``, scaled on axis 0 (any group);
* ``ConvTranspose`` with ``group == 1``: weight ``(C, M, k...)``, axis 1;
* ``Gemm`` with a 2-D output ``(N, M)``: ``B`` scaled on its output axis
  (0 when ``transB``, else 1), ``C' = (beta_gemm * C - mean) * s + beta``
  (``beta_gemm`` then becomes 1; ``C`` may be any broadcastable bias).

The site must be exact: the producer's output has the BN as its only
consumer and is not a graph output; the BN is in inference form
(``training_mode`` 0, no extra output used); the producer's weight and bias
and the BN's four parameters are weights (no graph input reaches them).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    SitePass,
    consumers,
    copy_attributes,
    int_attr,
    like,
    replace_output,
    static_shape,
)
from serenity.rewrite.registry import DriverRule, PeakView, Tried, one

#: Producers a BN can be folded into.
PRODUCERS = frozenset({"Conv", "ConvTranspose", "Gemm"})


def inference_bn(bn: ir.Node) -> bool:
    """``bn`` is an inference-form BatchNormalization with all five inputs, whose
    extra (training) outputs are unused."""
    if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
        return False
    if len(bn.inputs) != 5 or any(x is None for x in bn.inputs):
        return False
    if int_attr(bn, "training_mode", 0) != 0:
        return False
    return not any(v.uses() or v.is_graph_output() for v in bn.outputs[1:])


def site(editor: Editor, bn: ir.Node) -> ir.Node | None:
    """The producer ``bn`` can be folded into, or ``None`` (see the module docstring)."""
    if not inference_bn(bn):
        return None
    x = bn.inputs[0]
    assert x is not None
    producer = x.producer()
    if (
        producer is None
        or producer.op_type not in PRODUCERS
        or producer.domain not in ("", "ai.onnx")
    ):
        return None
    if len(producer.outputs) != 1 or x.is_graph_output():
        return None
    if consumers(x) != [bn] or len(x.uses()) != 1:
        return None
    if not all(editor.is_weight(p) for p in bn.inputs[1:]):
        return None
    weights = list(producer.inputs[1:])
    if not weights or weights[0] is None or not all(editor.is_weight(w) for w in weights):
        return None
    dtypes = {v.dtype for v in (*bn.inputs[1:], *weights) if v is not None and v.dtype}
    if len(dtypes) > 1:
        return None  # BN-15 allows other parameter types than X's: not folded
    if producer.op_type == "ConvTranspose" and int_attr(producer, "group", 1) != 1:
        return None
    if producer.op_type == "Gemm":
        shape = static_shape(x)
        if shape is None or len(shape) != 2:
            return None
    return producer


class _Builder:
    """Weight-only nodes appended to one list, each output typed like a template."""

    def __init__(self, editor: Editor, base: str, template: ir.Value) -> None:
        self.editor, self.base, self.template = editor, base, template
        self.nodes: list[ir.Node] = []

    def op(
        self,
        op_type: str,
        inputs: list[ir.Value],
        label: str,
        shape: tuple[int, ...] | None,
        **attrs: object,
    ) -> ir.Value:
        node = ir.Node(
            "",
            op_type,
            inputs,
            [ir.convenience.convert_attribute(k, v) for k, v in attrs.items()],  # type: ignore[arg-type]
            num_outputs=1,
            name=self.editor.fresh(f"{self.base}.{label}"),
        )
        out = node.outputs[0]
        out.name = self.editor.fresh(f"{self.base}.{label}")
        out.type = self.template.type
        if shape is not None:
            out.shape = ir.Shape(list(shape))
        self.nodes.append(node)
        return out

    def scalar(self, value: float, label: str) -> ir.Value:
        dtype = self.template.dtype.numpy() if self.template.dtype is not None else np.float32
        name = self.editor.fresh(f"{self.base}.{label}")
        tensor = ir.tensor(np.array(value, dtype=dtype), name=name)
        v = ir.Value(name=name, shape=ir.Shape([]), type=self.template.type, const_value=tensor)
        self.editor.graph.register_initializer(v)
        return v


def fold_bn(editor: Editor, bn: ir.Node) -> Rewrite | None:
    """Fold ``bn`` into the Conv / ConvTranspose / Gemm producing its input.

    Returns ``None`` (graph unchanged) when the pattern does not qualify.

    Complexity: O(1) nodes added (about ten weight-only ones).
    """
    producer = site(editor, bn)
    if producer is None:
        return None
    x, scale, beta, mean, var = bn.inputs
    assert x is not None and scale is not None and beta is not None
    assert mean is not None and var is not None
    out = bn.outputs[0]
    base = bn.name or "bn"
    channels = static_shape(scale)
    b = _Builder(editor, base, scale)
    eps = b.scalar(
        float(bn.attributes["epsilon"].as_float()) if "epsilon" in bn.attributes else 1e-5, "eps"
    )
    std = b.op("Sqrt", [b.op("Add", [var, eps], "var_eps", channels)], "std", channels)
    s = b.op("Div", [scale, std], "factor", channels)
    w = producer.inputs[1]
    assert w is not None
    w_shape = static_shape(w)
    bias = producer.inputs[2] if len(producer.inputs) > 2 else None
    op = producer.op_type
    overrides: dict[str, object] = {}
    if op == "Gemm":
        axis = 0 if int_attr(producer, "transB", 0) else 1
        s_w = s if axis == 1 else b.op("Unsqueeze", [s, editor.ints([1])], "factor_w", None)
        gemm_beta = (
            float(producer.attributes["beta"].as_float()) if "beta" in producer.attributes else 1.0
        )
        if bias is not None and gemm_beta != 1.0:
            bias = b.op("Mul", [bias, b.scalar(gemm_beta, "gemm_beta")], "bias_scaled", None)
        overrides["beta"] = 1.0
    else:
        rank = len(w_shape) if w_shape is not None else (len(x.shape) if x.shape else 4)
        axis = 0 if op == "Conv" else 1
        axes = [a for a in range(rank) if a != axis]
        s_w = b.op("Unsqueeze", [s, editor.ints(axes)], "factor_w", None)
    new_w = b.op("Mul", [w, s_w], "weight", w_shape)
    new_w.type = w.type
    if bias is None:
        centred = b.op("Mul", [mean, s], "mean_scaled", channels)
        new_b = b.op("Sub", [beta, centred], "bias", channels)
    else:
        centred = b.op("Sub", [bias, mean], "bias_centred", None)
        new_b = b.op("Add", [b.op("Mul", [centred, s], "bias_scaled", None), beta], "bias", None)
        if op != "Gemm":
            new_b.shape = ir.Shape(list(channels)) if channels is not None else None
    inputs = [producer.inputs[0], new_w, new_b]
    node = ir.Node(
        producer.domain,
        op,
        inputs,
        copy_attributes(producer, **overrides),
        num_outputs=1,
        name=editor.fresh(f"{producer.name or op}.bn_folded"),
    )
    like(node.outputs[0], out, 0, None)
    record = Rewrite("bn_fold", (bn.name or "", producer.name or ""))
    replace_output(editor.graph, bn, [*b.nodes, node], node.outputs[0])
    editor.graph.remove(producer, safe=True)
    return record


class BnFoldPass(SitePass):
    """Fold every qualifying inference BatchNormalization into its producer."""

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        return ((n,) for n in list(graph) if n.op_type == "BatchNormalization")

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        return fold_bn(editor, *site)


def _driver_match(editor: Editor, bn: ir.Node, peak: PeakView) -> Tried | None:
    """A BN whose input or output is live at the peak; tried alone only where its
    input is (the fold removes the input: alone it cannot lower the other steps)."""
    x, y = bn.inputs[0], bn.outputs[0]
    if not ({x.name if x else None, y.name} & peak.live) or site(editor, bn) is None:
        return None
    return "solo" if x is not None and x.name in peak.live else "group"


#: The driver's view of this pass (:mod:`serenity.rewrite.registry`).
DRIVER = DriverRule(
    name="bn_fold",
    ops=frozenset({"BatchNormalization"}),
    match=_driver_match,
    apply=lambda editor, bn, peak: one(fold_bn(editor, bn)),
)
