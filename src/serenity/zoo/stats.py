"""Weights and multiply-accumulates of an ONNX model, counted like the papers do.

Weights are the trainable parameters a PyTorch ``count_parameters`` would
report: the weight and bias initializers of ``Conv``, ``ConvTranspose``,
``Gemm`` and ``MatMul`` and the scale and bias (gamma, beta) of
``BatchNormalization``. Running mean and variance are statistics, not trained
weights, and are not counted (the DARTS paper's 4.7M for its ImageNet model
counts exactly these). Other constants (scalar ``Mul`` factors, ``Slice``
indices) are not counted either. An initializer read by several nodes counts
once.

MACs are those of ``Conv`` / ``ConvTranspose`` (output elements x input
channels per group x kernel area), ``Gemm`` and ``MatMul`` (output elements x
the reduced dimension), from inferred static shapes. Element-wise ops,
pooling and normalisation are not counted, as in the papers' MAC figures.
"""

from __future__ import annotations

import math

import onnx

_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),
}


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def count_weights_and_macs(model: onnx.ModelProto) -> tuple[int, int]:
    """Count trainable weights and multiply-accumulates (see the module docstring).

    Args:
        model: A model whose tensors all get static shapes from shape inference.

    Returns:
        ``(weights, macs)``.

    Raises:
        ValueError: a Conv/Gemm/MatMul tensor has no static shape.

    Complexity: one shape-inference pass plus O(nodes).

    Example:
        >>> from serenity.zoo import build_example
        >>> count_weights_and_macs(build_example(channels=8, expand=4, branches=4, size=16))
        (5776, 1474560)
    """
    shapes = _static_shapes(model)
    initializers = {init.name for init in model.graph.initializer}
    counted: set[str] = set()
    weights = macs = 0

    def shape_of(node: onnx.NodeProto, tensor: str) -> tuple[int, ...]:
        try:
            return shapes[tensor]
        except KeyError:
            raise ValueError(
                f"tensor '{tensor}' of node '{node.name}' has no static shape"
            ) from None

    for node in model.graph.node:
        for i in _WEIGHT_INPUTS.get(node.op_type, ()):
            if (
                i < len(node.input)
                and node.input[i] in initializers
                and node.input[i] not in counted
            ):
                counted.add(node.input[i])
                weights += math.prod(shape_of(node, node.input[i]))
        if node.op_type in ("Conv", "ConvTranspose"):
            w = shape_of(node, node.input[1])
            out = shape_of(node, node.output[0])
            if node.op_type == "Conv":
                # weight (M, C/group, k...): every output element reads C/group * k... inputs
                macs += math.prod(out) * math.prod(w[1:])
            else:
                # weight (C, M/group, k...): every input element feeds M/group * k... outputs
                macs += math.prod(shape_of(node, node.input[0])) * math.prod(w[1:])
        elif node.op_type == "Gemm":
            a = shape_of(node, node.input[0])
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            macs += math.prod(shape_of(node, node.output[0])) * k
        elif node.op_type == "MatMul":
            a = shape_of(node, node.input[0])
            macs += math.prod(shape_of(node, node.output[0])) * a[-1]
    return weights, macs
