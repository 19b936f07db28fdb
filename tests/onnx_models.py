"""Small ONNX models built in memory for the io and CLI tests.

Every builder returns a checked ``ModelProto`` (opset 17, IR version 8) with
seeded random float32 weights, so the same call gives the same bytes every run.
Tensor sizes are chosen so that the memory numbers can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
F32 = TensorProto.FLOAT


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    name: str = "test",
    *,
    check: bool = True,
) -> onnx.ModelProto:
    """Wrap nodes into a model with the fixed opset and IR version."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="serenity-tests"
    )
    model.ir_version = IR_VERSION
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def tensor(name: str, shape: Sequence[int | str] | None, elem: int = F32) -> onnx.ValueInfoProto:
    """A value info (graph input or output)."""
    return helper.make_tensor_value_info(name, elem, shape)


class Weights:
    """Seeded random float32 initializers, collected as they are made."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.initializers: list[TensorProto] = []

    def __call__(self, name: str, *shape: int) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        data = self.rng.standard_normal(shape) / np.sqrt(fan_in)
        self.initializers.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name


def conv(w: Weights, name: str, x: str, cin: int, cout: int, k: int = 1) -> onnx.NodeProto:
    """A ``k x k`` convolution with "same" padding and a bias."""
    pad = k // 2
    return helper.make_node(
        "Conv",
        [x, w(f"{name}.w", cout, cin, k, k), w(f"{name}.b", cout)],
        [name],
        name=name,
        pads=[pad] * 4,
    )


def design_example(seed: int = 0) -> onnx.ModelProto:
    """The worked example of DESIGN.md ("The memory model").

    ``x`` (2 KiB) feeds four 1x1 convs ``a0..a3`` (8 KiB each); each is followed
    by a conv ``b_i`` to 1 KiB; the ``b_i`` are concatenated (4 KiB) and mixed by
    a final conv (1 KiB). The file lists every ``a`` first. File order peaks at
    34,816 bytes, the branch-by-branch order at 13,312 bytes.
    """
    w = Weights(seed)
    a = [conv(w, f"a{i}", "x", 2, 8) for i in range(4)]
    b = [conv(w, f"b{i}", f"a{i}", 8, 1) for i in range(4)]
    cat = helper.make_node("Concat", [f"b{i}" for i in range(4)], ["cat"], name="cat", axis=1)
    final = conv(w, "y", "cat", 4, 1)
    return make_model(
        [*a, *b, cat, final],
        [tensor("x", [1, 2, 16, 16])],
        [tensor("y", [1, 1, 16, 16])],
        w.initializers,
        "design_example",
    )


def weight_arithmetic(seed: int = 1) -> onnx.ModelProto:
    """Convs whose weights and Add operands are computed from weights alone.

    ``Constant -> Mul(initializer)`` makes a conv weight, ``Constant -> Add``
    makes an operand of an activation Add, and one weight-only node has no
    consumer at all. These nodes are not scheduled; the writer must place each
    before its first consumer. The file interleaves them with activation ops
    (``c1`` and its weight come after the ``c0`` branch), so an order that
    starts with ``c1`` needs ``c1.wmul`` moved ahead of it.
    """
    w = Weights(seed)
    rng = np.random.default_rng(seed + 100)
    scale = helper.make_node(
        "Constant",
        [],
        ["scale"],
        name="scale",
        value=numpy_helper.from_array(np.array(0.5, dtype=np.float32)),
    )
    shift = helper.make_node(
        "Constant",
        [],
        ["shift"],
        name="shift",
        value=numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32)),
    )
    wmul = helper.make_node("Mul", [w("c1.raw", 4, 3, 3, 3), "scale"], ["c1.w"], name="c1.wmul")
    bias_sum = helper.make_node("Add", ["shift", w("bias2", 1, 4, 1, 1)], ["bias"], name="bias")
    unused = helper.make_node("Neg", ["shift"], ["unused_weight"], name="unused_weight")
    c0 = conv(w, "c0", "x", 3, 4, 3)
    c1 = helper.make_node("Conv", ["x", "c1.w", w("c1.b", 4)], ["c1"], name="c1", pads=[1, 1, 1, 1])
    c2 = conv(w, "c2", "c0", 4, 4, 1)
    add = helper.make_node("Add", ["c2", "bias"], ["c2b"], name="add_bias")
    cat = helper.make_node("Concat", ["c1", "c2b"], ["cat"], name="cat", axis=1)
    out = conv(w, "y", "cat", 8, 2, 1)
    nodes = [c0, c2, scale, shift, bias_sum, add, wmul, c1, cat, out, unused]
    return make_model(
        nodes,
        [tensor("x", [1, 3, 8, 8])],
        [tensor("y", [1, 2, 8, 8])],
        w.initializers,
        "weight_arithmetic",
    )


def pooling_dead_outputs(seed: int = 2) -> onnx.ModelProto:
    """Pooling, dead outputs and a pass-through graph output; nodes are unnamed.

    MaxPool's optional ``Indices`` output is never read and is not a graph
    output; a Sigmoid branch computes a tensor nobody reads; the graph input
    ``x`` is also a graph output.
    """
    w = Weights(seed)
    nodes = [
        helper.make_node("Conv", ["x", w("w0", 8, 4, 3, 3)], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("MaxPool", ["r0"], ["mp", "mp_idx"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["r0"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["c0"], ["dead"]),
        helper.make_node("Add", ["mp", "ap"], ["s"]),
        helper.make_node("Conv", ["s", w("w1", 4, 8, 1, 1)], ["y"]),
    ]
    return make_model(
        nodes,
        [tensor("x", [1, 4, 8, 8])],
        [tensor("y", [1, 4, 4, 4]), tensor("x", [1, 4, 8, 8])],
        w.initializers,
        "pooling_dead_outputs",
    )


def residual_cell(seed: int = 3, branches: int = 3) -> onnx.ModelProto:
    """A NAS-like cell: every branch expands, squeezes, and the sums are added.

    The file lists every expansion first, so file order is worse than running
    each branch to completion.
    """
    w = Weights(seed)
    expand = [conv(w, f"e{i}", "x", 4, 16, 1) for i in range(branches)]
    relu = [helper.make_node("Relu", [f"e{i}"], [f"r{i}"], name=f"r{i}") for i in range(branches)]
    squeeze = [conv(w, f"s{i}", f"r{i}", 16, 4, 3) for i in range(branches)]
    adds = [helper.make_node("Add", ["s0", "s1"], ["sum1"], name="sum1")]
    for i in range(2, branches):
        adds.append(helper.make_node("Add", [f"sum{i - 1}", f"s{i}"], [f"sum{i}"], name=f"sum{i}"))
    res = helper.make_node("Add", [f"sum{branches - 1}", "x"], ["y"], name="residual")
    return make_model(
        [*expand, *relu, *squeeze, *adds, res],
        [tensor("x", [1, 4, 8, 8])],
        [tensor("y", [1, 4, 8, 8])],
        w.initializers,
        "residual_cell",
    )


def symbolic_batch(seed: int = 4) -> onnx.ModelProto:
    """A model whose input has a symbolic batch dim ``N``."""
    w = Weights(seed)
    nodes = [
        conv(w, "c0", "x", 3, 4, 3),
        helper.make_node("Relu", ["c0"], ["r0"], name="r0"),
        conv(w, "y", "r0", 4, 2, 1),
    ]
    return make_model(
        nodes,
        [tensor("x", ["N", 3, 8, 8])],
        [tensor("y", ["N", 2, 8, 8])],
        w.initializers,
        "symbolic_batch",
    )


def if_outer_scope(seed: int = 5) -> onnx.ModelProto:
    """An ``If`` whose branches read the activation ``h`` from the outer scope.

    The condition is an initializer, so onnxruntime can run it. ``h`` is not a
    direct input of the If node; only its subgraphs read it.
    """
    w = Weights(seed)
    cond = numpy_helper.from_array(np.array(True), "cond")
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["then_out"], name="then_relu")],
        "then",
        [],
        [tensor("then_out", [1, 4, 8, 8])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["else_out"], name="else_neg")],
        "else",
        [],
        [tensor("else_out", [1, 4, 8, 8])],
    )
    nodes = [
        conv(w, "h", "x", 3, 4, 3),
        conv(w, "side", "x", 3, 4, 1),
        helper.make_node(
            "If", ["cond"], ["branch"], name="if", then_branch=then_graph, else_branch=else_graph
        ),
        helper.make_node("Add", ["branch", "side"], ["y"], name="add"),
    ]
    return make_model(
        nodes,
        [tensor("x", [1, 3, 8, 8])],
        [tensor("y", [1, 4, 8, 8])],
        [*w.initializers, cond],
        "if_outer_scope",
    )


def tiny(seed: int = 6) -> onnx.ModelProto:
    """Two small convs and an Add: a few hundred bytes, for truncation tests."""
    w = Weights(seed)
    nodes = [
        conv(w, "a", "x", 2, 2, 1),
        conv(w, "b", "x", 2, 2, 1),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    model = make_model(
        nodes, [tensor("x", [1, 2, 4, 4])], [tensor("y", [1, 2, 4, 4])], w.initializers, "tiny"
    )
    model.metadata_props.add(key="origin", value="serenity tests")
    return model


def cyclic() -> onnx.ModelProto:
    """Two nodes that feed each other (not a valid ONNX graph; never checked)."""
    nodes = [
        helper.make_node("Add", ["x", "t2"], ["t1"], name="first"),
        helper.make_node("Relu", ["t1"], ["t2"], name="second"),
    ]
    return make_model(
        nodes, [tensor("x", [1, 4])], [tensor("t2", [1, 4])], name="cyclic", check=False
    )


#: The models every scheduling method is run on, by name.
ROUNDTRIP_MODELS = {
    "design_example": design_example,
    "weight_arithmetic": weight_arithmetic,
    "pooling_dead_outputs": pooling_dead_outputs,
    "residual_cell": residual_cell,
    "if_outer_scope": if_outer_scope,
}
