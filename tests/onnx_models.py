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
    """The worked example of docs/memory-model.md.

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


# --------------------------------------------------------------------------- rewrite patterns


def branches_concat(
    w: Weights, x: str, cin: int, widths: Sequence[int], axis: int = 1
) -> list[onnx.NodeProto]:
    """One 3x3 conv per width from ``x``, concatenated as ``cat``."""
    nodes = [conv(w, f"br{i}", x, cin, c, 3) for i, c in enumerate(widths)]
    nodes.append(
        helper.make_node(
            "Concat", [f"br{i}" for i in range(len(widths))], ["cat"], name="cat", axis=axis
        )
    )
    return nodes


def concat_conv(
    seed: int = 10, *, group: int = 1, axis: int = 1, stride: int = 2, dilation: int = 1
) -> onnx.ModelProto:
    """Three branches -> Concat -> 3x3 Conv with bias (stride, dilation, pads).

    With ``group=1`` and ``axis=1`` (12 channels) it is channel-partitionable;
    ``group=2`` (grouped, not depthwise) or ``axis=2`` (wrong axis: branches of
    4 channels stacked on height) are not.
    """
    w = Weights(seed)
    widths = [4, 2, 6] if axis == 1 else [4, 4, 4]
    nodes = branches_concat(w, "x", 3, widths, axis)
    cin = sum(widths) if axis == 1 else 4
    nodes.append(
        helper.make_node(
            "Conv",
            ["cat", w("y.w", 6, cin // group, 3, 3), w("y.b", 6)],
            ["y"],
            name="y",
            pads=[dilation] * 4,
            strides=[stride, stride],
            dilations=[dilation, dilation],
            group=group,
        )
    )
    size = 4 if stride == 2 else 8
    yshape = [1, 6, size, size] if axis == 1 else [1, 6, 12, 4]
    return make_model(
        nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", yshape)], w.initializers, "concat_conv"
    )


def concat_matmul(seed: int = 11, *, gemm: bool = False, trans_b: int = 0) -> onnx.ModelProto:
    """x [2, 5] -> two MatMuls -> Concat on the last axis -> MatMul (or Gemm with bias)."""
    w = Weights(seed)
    nodes = [
        helper.make_node("MatMul", ["x", w("a.w", 5, 3)], ["a"], name="a"),
        helper.make_node("MatMul", ["x", w("b.w", 5, 4)], ["b"], name="b"),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=-1),
    ]
    if gemm:
        wshape = (6, 7) if trans_b else (7, 6)
        nodes.append(
            helper.make_node(
                "Gemm",
                ["cat", w("y.w", *wshape), w("y.c", 6)],
                ["y"],
                name="y",
                transB=trans_b,
                alpha=0.5,
                beta=2.0,
            )
        )
    else:
        nodes.append(helper.make_node("MatMul", ["cat", w("y.w", 7, 6)], ["y"], name="y"))
    return make_model(
        nodes, [tensor("x", [2, 5])], [tensor("y", [2, 6])], w.initializers, "concat_matmul"
    )


def concat_depthwise(
    seed: int = 12, *, multiplier: int = 2, group: int | None = None
) -> onnx.ModelProto:
    """Branches (4 + 2 channels) -> Concat -> depthwise 3x3 conv (``group`` 6) with bias.

    ``group=2`` makes it a grouped, non-depthwise conv.
    """
    w = Weights(seed)
    nodes = branches_concat(w, "x", 3, [4, 2])
    g = 6 if group is None else group
    cout = 6 * multiplier
    nodes.append(
        helper.make_node(
            "Conv",
            ["cat", w("dw.w", cout, 6 // g, 3, 3), w("dw.b", cout)],
            ["y"],
            name="dw",
            group=g,
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        )
    )
    return make_model(
        nodes,
        [tensor("x", [1, 3, 8, 8])],
        [tensor("y", [1, cout, 4, 4])],
        w.initializers,
        "concat_depthwise",
    )


def concat_elementwise(seed: int = 13, *, cat_is_output: bool = False) -> onnx.ModelProto:
    """Concat -> BatchNormalization -> Relu -> Mul(per-channel) -> Clip -> 1x1 Conv, plus a
    second consumer (LeakyRelu -> graph output). With ``cat_is_output`` the concat is also a
    graph output and must be left alone."""
    w = Weights(seed)
    rng = np.random.default_rng(seed)
    nodes = branches_concat(w, "x", 3, [4, 2, 2])
    bn = [
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bn.scale"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bn.bias"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bn.mean"),
        numpy_helper.from_array((rng.random(8) + 0.5).astype(np.float32), "bn.var"),
        numpy_helper.from_array(rng.standard_normal((8, 1, 1)).astype(np.float32), "scale"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, dtype=np.float32), "hi"),
    ]
    nodes += [
        helper.make_node(
            "BatchNormalization",
            ["cat", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            ["bn"],
            name="bn",
        ),
        helper.make_node("Relu", ["bn"], ["relu"], name="relu"),
        helper.make_node("Mul", ["relu", "scale"], ["mul"], name="mul"),
        helper.make_node("Clip", ["mul", "lo", "hi"], ["clip"], name="clip"),
        conv(w, "y", "clip", 8, 3, 1),
        helper.make_node("LeakyRelu", ["cat"], ["z"], name="leaky", alpha=0.2),
    ]
    outputs = [tensor("y", [1, 3, 8, 8]), tensor("z", [1, 8, 8, 8])]
    if cat_is_output:
        outputs.append(tensor("cat", [1, 8, 8, 8]))
    return make_model(
        nodes, [tensor("x", [1, 3, 8, 8])], outputs, [*w.initializers, *bn], "concat_elementwise"
    )


def pad_pools(seed: int = 14, *, crop_other_axis: bool = False) -> onnx.ModelProto:
    """The NASNet stem pads: Pad(-inf) -> MaxPool 3x3/2, Pad(0) -> AvgPool 3x3/2
    (count_include_pad=0), Pad(-1,+1) -> AvgPool 1x1/2; their sum is the output.
    With ``crop_other_axis`` the last Pad also pads the channels (left alone)."""
    w = Weights(seed)
    pads = {
        "p_max": [0, 0, 1, 1, 0, 0, 1, 1],
        "p_avg": [0, 0, 1, 1, 0, 0, 1, 1],
        "p_shift": [0, 1 if crop_other_axis else 0, -1, -1, 0, 0, 1, 1],
    }
    consts = [numpy_helper.from_array(np.array(v, dtype=np.int64), k) for k, v in pads.items()]
    consts += [
        numpy_helper.from_array(np.array(-np.inf, dtype=np.float32), "ninf"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    cout = 5 if crop_other_axis else 4
    nodes = [
        conv(w, "s", "x", 3, 4, 3),
        helper.make_node("Relu", ["s"], ["r"], name="r"),
        helper.make_node("Pad", ["r", "p_max", "ninf"], ["pm"], name="pad_max", mode="constant"),
        helper.make_node(
            "MaxPool", ["pm"], ["mp"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2]
        ),
        helper.make_node("Pad", ["r", "p_avg", "zero"], ["pa"], name="pad_avg", mode="constant"),
        helper.make_node(
            "AveragePool",
            ["pa"],
            ["ap"],
            name="avgpool",
            kernel_shape=[3, 3],
            strides=[2, 2],
            count_include_pad=0,
        ),
        helper.make_node(
            "Pad", ["r", "p_shift", "zero"], ["ps"], name="pad_shift", mode="constant"
        ),
        helper.make_node(
            "AveragePool", ["ps"], ["sp"], name="shiftpool", kernel_shape=[1, 1], strides=[2, 2]
        ),
        conv(w, "spc", "sp", cout, 4, 1),
        helper.make_node("Add", ["mp", "ap"], ["s1"], name="s1"),
        helper.make_node("Add", ["s1", "spc"], ["y"], name="y"),
    ]
    return make_model(
        nodes,
        [tensor("x", [1, 3, 9, 9])],
        [tensor("y", [1, 4, 5, 5])],
        [*w.initializers, *consts],
        "pad_pools",
    )


def nasnet_like(
    seed: int = 15, cells: int = 3, width: int = 8, branches: int = 4
) -> onnx.ModelProto:
    """NASNet-like cells: ``branches`` wide 3x3 convs -> Concat -> Relu -> 1x1 Conv -> BN.

    Each cell widens ``width`` channels to ``branches * 2 * width`` and squeezes
    them back, so the concat (and its ReLU) sets the peak; partitioned, each
    branch dies into the accumulator.
    """
    w = Weights(seed)
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    x = "x"
    for c in range(cells):
        parts = []
        for b in range(branches):
            nodes.append(conv(w, f"c{c}.b{b}", x, width, 2 * width, 3))
            parts.append(f"c{c}.b{b}")
        nodes.append(helper.make_node("Concat", parts, [f"c{c}.cat"], name=f"c{c}.cat", axis=1))
        nodes.append(helper.make_node("Relu", [f"c{c}.cat"], [f"c{c}.relu"], name=f"c{c}.relu"))
        nodes.append(conv(w, f"c{c}.proj", f"c{c}.relu", branches * 2 * width, width, 1))
        names = [f"c{c}.bn.{k}" for k in ("scale", "bias", "mean", "var")]
        values = [
            rng.standard_normal(width),
            rng.standard_normal(width),
            rng.standard_normal(width),
            rng.random(width) + 0.5,
        ]
        inits += [
            numpy_helper.from_array(v.astype(np.float32), n)
            for n, v in zip(names, values, strict=True)
        ]
        out = "y" if c == cells - 1 else f"c{c}.out"
        nodes.append(
            helper.make_node("BatchNormalization", [f"c{c}.proj", *names], [out], name=f"c{c}.bn")
        )
        x = out
    return make_model(
        nodes,
        [tensor("x", [1, width, 8, 8])],
        [tensor("y", [1, width, 8, 8])],
        [*w.initializers, *inits],
        "nasnet_like",
    )


def widening_concat(seed: int = 16) -> onnx.ModelProto:
    """Two 1-channel convs -> Concat -> 1x1 conv to 32 channels: partitioning only adds
    output-sized accumulators, so the driver must leave it alone."""
    w = Weights(seed)
    nodes = [
        conv(w, "a", "x", 2, 1, 1),
        conv(w, "b", "x", 2, 1, 1),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
        conv(w, "y", "cat", 2, 32, 1),
    ]
    return make_model(
        nodes,
        [tensor("x", [1, 2, 8, 8])],
        [tensor("y", [1, 32, 8, 8])],
        w.initializers,
        "widening_concat",
    )


def bn_params(w: Weights, name: str, c: int) -> list[str]:
    """Scale, bias, mean and (positive) variance initializers of an inference BN."""
    rng = w.rng
    arrays = {
        "scale": rng.uniform(0.5, 1.5, c),
        "bias": rng.standard_normal(c) * 0.1,
        "mean": rng.standard_normal(c) * 0.1,
        "var": rng.uniform(0.5, 1.5, c),
    }
    names = []
    for key, data in arrays.items():
        w.initializers.append(numpy_helper.from_array(data.astype(np.float32), f"{name}.{key}"))
        names.append(f"{name}.{key}")
    return names


def conv_bn(seed: int = 17, *, variant: str = "plain") -> onnx.ModelProto:
    """x [1,2,8,8] -> 3x3 conv to 16 channels -> BN -> 1x1 conv (no bias) to 2 -> BN.

    The BN after the wide conv holds two 4 KiB tensors at once: the default
    peak. Variants: ``relu`` (a ReLU after the first BN: it holds the same two
    tensors, as in DARTS' stem), near misses ``second_consumer``
    (the conv output is also read by a ReLU that is a graph output),
    ``training`` (the first BN has ``training_mode=1`` and its running
    statistics are graph outputs), ``not_conv`` (a MaxPool between conv and
    BN), ``graph_output`` (the conv output is a graph output), ``gemm``
    (``Flatten -> Gemm(transB) -> BN`` on a 2-D tensor, with a Gemm
    ``beta``) and ``conv_transpose`` (a 2x2 stride-2 ConvTranspose -> BN).
    """
    w = Weights(seed)
    outputs = [tensor("y", [1, 2, 8, 8])]
    nodes: list[onnx.NodeProto] = []
    post: list[onnx.NodeProto] = []
    first = "c"
    if variant == "conv_transpose":
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                ["x", w("c.w", 2, 16, 2, 2), w("c.b", 16)],
                ["c"],
                name="c",
                strides=[2, 2],
            )
        )
        post.append(
            helper.make_node(
                "MaxPool", ["bn"], ["bnp"], name="p", kernel_shape=[2, 2], strides=[2, 2]
            )
        )
    elif variant == "gemm":
        nodes.append(helper.make_node("Flatten", ["x"], ["flat"], name="flat"))
        nodes.append(
            helper.make_node(
                "Gemm",
                ["flat", w("c.w", 1024, 128), w("c.b", 1024)],
                ["c"],
                name="c",
                transB=1,
                beta=0.5,
            )
        )
        post.append(helper.make_node("Reshape", ["bn", "shape"], ["bnp"], name="unflat"))
        w.initializers.append(
            numpy_helper.from_array(np.array([1, 16, 8, 8], dtype=np.int64), "shape")
        )
    else:
        nodes.append(conv(w, "c", "x", 2, 16, 3))
    if variant == "not_conv":
        nodes.append(helper.make_node("MaxPool", ["c"], ["cp"], name="cp", kernel_shape=[1, 1]))
        first = "cp"
    bn_outputs = ["bn"]
    channels = 1024 if variant == "gemm" else 16
    if variant == "training":
        bn_outputs += ["running_mean", "running_var"]
        outputs += [tensor("running_mean", [channels]), tensor("running_var", [channels])]
    nodes.append(
        helper.make_node(
            "BatchNormalization",
            [first, *bn_params(w, "bn", channels)],
            bn_outputs,
            name="bn",
            epsilon=1e-3,
            **({"training_mode": 1} if variant == "training" else {}),
        )
    )
    nodes += post
    if variant == "second_consumer":
        nodes.append(helper.make_node("Relu", ["c"], ["side"], name="side"))
        outputs.append(tensor("side", [1, 16, 8, 8]))
    if variant == "graph_output":
        outputs.append(tensor("c", [1, 16, 8, 8]))
    mid = "bnp" if variant in ("gemm", "conv_transpose") else "bn"
    if variant == "relu":
        nodes.append(helper.make_node("Relu", [mid], ["r"], name="r"))
        mid = "r"
    nodes.append(helper.make_node("Conv", [mid, w("d.w", 2, 16, 1, 1)], ["d"], name="d"))
    nodes.append(
        helper.make_node("BatchNormalization", ["d", *bn_params(w, "bn2", 2)], ["y"], name="bn2")
    )
    xshape = [1, 2, 4, 4] if variant == "conv_transpose" else [1, 2, 8, 8]
    if variant == "conv_transpose":
        outputs[0] = tensor("y", [1, 2, 4, 4])
    return make_model(nodes, [tensor("x", xshape)], outputs, w.initializers, f"conv_bn_{variant}")


def late_sum(seed: int = 18, *, terms: int = 4, variant: str = "chain") -> onnx.ModelProto:
    """A backbone ``h1 .. hk`` of 3x3 convs (8 channels, 2 KiB each) from ``x``, a 1x1
    conv tap ``t_i`` of each, and the sum of the taps listed last-first:
    ``((t_k + t_{k-1}) + ...) + t_1``. The file's chain keeps every tap live
    until ``h_k`` exists; summed in production order each dies at once.

    Variants: ``sum`` (one ``Sum`` node over the taps, same order),
    ``tree`` (``(t_k + t_{k-1}) + (t_{k-2} + ... )``, balanced),
    ``shared`` (the first partial sum is also a graph output ``partial``).
    """
    w = Weights(seed)
    nodes = [conv(w, "h1", "x", 4, 8, 3)]
    for i in range(2, terms + 1):
        nodes.append(conv(w, f"h{i}", f"h{i - 1}", 8, 8, 3))
    for i in range(1, terms + 1):
        nodes.append(conv(w, f"t{i}", f"h{i}", 8, 8, 1))
    taps = [f"t{i}" for i in range(terms, 0, -1)]
    outputs = [tensor("y", [1, 8, 8, 8])]
    if variant == "sum":
        nodes.append(helper.make_node("Sum", taps, ["s"], name="s"))
    elif variant == "tree":
        half = len(taps) // 2
        left, right = taps[:half], taps[half:]

        def chain(parts: list[str], name: str) -> str:
            acc = parts[0]
            for k, p in enumerate(parts[1:]):
                out = f"{name}{k}"
                nodes.append(helper.make_node("Add", [acc, p], [out], name=out))
                acc = out
            return acc

        a, b = chain(left, "left"), chain(right, "right")
        nodes.append(helper.make_node("Add", [a, b], ["s"], name="s"))
    else:
        acc = taps[0]
        for k, p in enumerate(taps[1:]):
            out = "s" if k == len(taps) - 2 else f"acc{k}"
            nodes.append(helper.make_node("Add", [acc, p], [out], name=out))
            acc = out
        if variant == "shared":
            outputs.append(tensor("acc0", [1, 8, 8, 8]))
    nodes.append(helper.make_node("Relu", ["s"], ["y"], name="y"))
    return make_model(
        nodes, [tensor("x", [1, 4, 8, 8])], outputs, w.initializers, f"late_sum_{variant}"
    )


def conv_stem(seed: int = 19, *, variant: str = "plain") -> onnx.ModelProto:
    """DARTS' ImageNet stem in small: x [1,4,16,16] (4 KiB) -> 3x3/2 conv ``c1`` to 24
    channels (6 KiB) -> BN -> ReLU -> 3x3/2 conv ``c2`` to 8 channels -> BN -> y.

    The BN and ReLU steps each hold two 6 KiB tensors: the default peak
    (12 KiB). Near misses for splitting ``c1`` by output channels:
    ``grouped`` (``c1`` has ``group=2``), ``depthwise`` (``group=4``, a
    channel multiplier of 6) and ``graph_output`` (``c1`` is also a graph
    output).
    """
    w = Weights(seed)
    group = {"grouped": 2, "depthwise": 4}.get(variant, 1)
    nodes = [
        helper.make_node(
            "Conv",
            ["x", w("c1.w", 24, 4 // group, 3, 3), w("c1.b", 24)],
            ["c1"],
            name="c1",
            pads=[1] * 4,
            strides=[2, 2],
            group=group,
        ),
        helper.make_node(
            "BatchNormalization", ["c1", *bn_params(w, "bn1", 24)], ["bn1"], name="bn1"
        ),
        helper.make_node("Relu", ["bn1"], ["r"], name="r"),
        helper.make_node(
            "Conv", ["r", w("c2.w", 8, 24, 3, 3)], ["c2"], name="c2", pads=[1] * 4, strides=[2, 2]
        ),
        helper.make_node("BatchNormalization", ["c2", *bn_params(w, "bn2", 8)], ["y"], name="bn2"),
    ]
    outputs = [tensor("y", [1, 8, 4, 4])]
    if variant == "graph_output":
        outputs.append(tensor("c1", [1, 24, 8, 8]))
    return make_model(
        nodes, [tensor("x", [1, 4, 16, 16])], outputs, w.initializers, f"conv_stem_{variant}"
    )


def scaled_fanout(seed: int = 20, *, variant: str = "plain") -> onnx.ModelProto:
    """RandWire's weighted aggregation in small: x [1,4,8,8] -> 3x3 conv ``c`` (8 channels,
    bias) -> BN ``bn`` -> ``b``, read by ``m1 = Mul(b, 0.7)`` and ``m2 = Mul(0.4, b)``;
    ``y = (m1 + d) + m2`` with ``d`` a 1x1 conv of x.

    Variants: ``conv`` (no BN: the Muls read the conv), ``single`` (no ``m2``);
    near misses ``relu_consumer`` (``b`` is also read by a ReLU added to ``y``),
    ``per_channel`` (``m1``'s factor has shape [1,8,1,1]), ``input_scale`` (``m1``'s
    factor is a graph input), ``graph_output`` (``b`` is a graph output), ``zero``
    (``m1``'s factor is 0) and ``relu_producer`` (a ReLU between BN and the Muls).
    """
    w = Weights(seed)
    nodes = [
        helper.make_node(
            "Conv", ["x", w("c.w", 8, 4, 3, 3), w("c.b", 8)], ["c"], name="c", pads=[1] * 4
        )
    ]
    b = "c"
    if variant != "conv":
        nodes.append(
            helper.make_node("BatchNormalization", ["c", *bn_params(w, "bn", 8)], ["b"], name="bn")
        )
        b = "b"
    if variant == "relu_producer":
        nodes.append(helper.make_node("Relu", [b], ["br"], name="br"))
        b = "br"
    inputs = [tensor("x", [1, 4, 8, 8])]
    factor = {"zero": 0.0}.get(variant, 0.7)
    shape = [1, 8, 1, 1] if variant == "per_channel" else []
    if variant == "input_scale":
        inputs.append(tensor("f1", []))
    else:
        w.initializers.append(numpy_helper.from_array(np.full(shape, factor, np.float32), "f1"))
    w.initializers.append(numpy_helper.from_array(np.array(0.4, np.float32), "f2"))
    nodes += [
        helper.make_node("Mul", [b, "f1"], ["m1"], name="m1"),
        conv(w, "d", "x", 4, 8),
        helper.make_node("Add", ["m1", "d"], ["s"], name="s"),
    ]
    last = "s"
    if variant != "single":
        nodes += [
            helper.make_node("Mul", ["f2", b], ["m2"], name="m2"),
            helper.make_node("Add", ["s", "m2"], ["s2"], name="s2"),
        ]
        last = "s2"
    if variant == "relu_consumer":
        nodes += [
            helper.make_node("Relu", [b], ["r"], name="r"),
            helper.make_node("Add", [last, "r"], ["s3"], name="s3"),
        ]
        last = "s3"
    nodes.append(helper.make_node("Identity", [last], ["y"], name="y"))
    outputs = [tensor("y", [1, 8, 8, 8])]
    if variant == "graph_output":
        outputs.append(tensor(b, [1, 8, 8, 8]))
    return make_model(nodes, inputs, outputs, w.initializers, f"scaled_fanout_{variant}")
