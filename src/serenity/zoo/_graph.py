"""A small ONNX graph builder shared by the benchmark-zoo networks.

:class:`GraphBuilder` appends nodes in the order they are called (the file
order a plain exporter would write), names every node after its place in the
network (``cell3/node2/sep_conv_3x3/dw1``), gives each output tensor its node's
name, and draws seeded random weights. It tracks every activation's shape
itself, so the builders never pass channel counts around, and :meth:`finish`
checks that ONNX shape inference agrees on a static shape for every tensor.

Weights: convolutions and the classifier use He-normal weights; inference-form
``BatchNormalization`` gets scale in [0.5, 1.5) and bias near 0, and its
running mean and variance are *calibrated* (:func:`calibrate_batchnorm`): set
to the per-channel statistics its input has when the network runs on a seeded
normal input, as a trained network's would be. Random statistics would let
activations grow layer after layer (logits near 1e6 on DARTS), and at that
scale float32 rounding alone breaks an element-wise comparison of a model and
its rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from serenity.io.verify import random_inputs

OPSET = 17
IR_VERSION = 8

Shape = tuple[int, ...]

_INT64_MAX = np.iinfo(np.int64).max


def _conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


class GraphBuilder:
    """Append ONNX nodes with seeded weights; track activation shapes (batch 1, NCHW).

    Every method takes the input tensor name(s) and the node's ``name`` and
    returns the output tensor's name (equal to ``name``). Names must be unique:
    a repeated one raises ``ValueError``.

    Example:
        >>> g = GraphBuilder("tiny", seed=0)
        >>> x = g.input("x", 3, 8, 8)
        >>> y = g.conv(x, 4, 3, stride=2, name="stem/conv")
        >>> g.shape(y)
        (1, 4, 4, 4)
        >>> g.finish([y]).graph.node[0].name
        'stem/conv'
    """

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._shapes: dict[str, Shape] = {}
        self._names: set[str] = set()
        self._consts: dict[str, str] = {}

    # -- bookkeeping -------------------------------------------------------

    def shape(self, tensor: str) -> Shape:
        """The shape of an activation built so far."""
        return self._shapes[tensor]

    def channels(self, tensor: str) -> int:
        """Channel count (dim 1) of an activation."""
        return self._shapes[tensor][1]

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"duplicate node or tensor name '{name}'")
        self._names.add(name)

    def _node(self, op: str, inputs: Sequence[str], name: str, shape: Shape, **attrs: Any) -> str:
        self._claim(name)
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        self._shapes[name] = shape
        return name

    def _init(self, name: str, array: np.ndarray) -> str:
        self._claim(name)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def _const(self, key: str, array: np.ndarray) -> str:
        """A shared constant initializer (created once per ``key``)."""
        if key not in self._consts:
            self._consts[key] = self._init(f"const/{key}", array)
        return self._consts[key]

    def _he(self, shape: Sequence[int], fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    # -- graph ends --------------------------------------------------------

    def input(self, name: str, channels: int, height: int, width: int) -> str:
        """Declare a float32 NCHW graph input of batch 1."""
        self._claim(name)
        shape = (1, channels, height, width)
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        self._shapes[name] = shape
        return name

    def finish(self, outputs: Sequence[str]) -> onnx.ModelProto:
        """Wrap the nodes into a checked model (opset 17, IR version 8).

        Raises:
            ValueError: shape inference leaves a tensor without a static shape
                or disagrees with the shape tracked here.
        """
        graph = helper.make_graph(
            self.nodes,
            self.name,
            self.inputs,
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, self._shapes[o]) for o in outputs],
            self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="serenity"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        check_static_shapes(model, self._shapes)
        calibrate_batchnorm(model, seed=int(self.rng.integers(2**31)))
        return model

    # -- layers --------------------------------------------------------------

    def conv(
        self,
        x: str,
        out_channels: int,
        kernel: int,
        *,
        name: str,
        stride: int = 1,
        pad: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> str:
        """Square ``kernel`` convolution; ``pad`` defaults to 'same' for stride 1."""
        n, c, h, w = self._shapes[x]
        if pad is None:
            pad = dilation * (kernel - 1) // 2
        if c % groups or out_channels % groups:
            raise ValueError(f"{name}: {c} -> {out_channels} channels not divisible by {groups}")
        weight = self._init(
            f"{name}.weight",
            self._he((out_channels, c // groups, kernel, kernel), c // groups * kernel * kernel),
        )
        inputs = [x, weight]
        if bias:
            inputs.append(self._init(f"{name}.bias", np.zeros(out_channels, np.float32)))
        shape = (
            n,
            out_channels,
            _conv_out(h, kernel, stride, pad, dilation),
            _conv_out(w, kernel, stride, pad, dilation),
        )
        return self._node(
            "Conv",
            inputs,
            name,
            shape,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            dilations=[dilation, dilation],
            group=groups,
        )

    def bn(self, x: str, *, name: str) -> str:
        """Inference-form BatchNormalization (positive variance)."""
        c = self._shapes[x][1]
        rng = self.rng
        params = [  # mean and var are placeholders until calibrate_batchnorm
            self._init(f"{name}.scale", rng.uniform(0.5, 1.5, c).astype(np.float32)),
            self._init(f"{name}.bias", (rng.standard_normal(c) * 0.1).astype(np.float32)),
            self._init(f"{name}.mean", np.zeros(c, np.float32)),
            self._init(f"{name}.var", np.ones(c, np.float32)),
        ]
        return self._node("BatchNormalization", [x, *params], name, self._shapes[x], epsilon=1e-5)

    def relu(self, x: str, *, name: str) -> str:
        """ReLU."""
        return self._node("Relu", [x], name, self._shapes[x])

    def relu_conv_bn(
        self, x: str, out_channels: int, kernel: int, *, name: str, stride: int = 1
    ) -> str:
        """ReLU -> conv (no bias) -> BN; nodes ``name/relu``, ``name/conv``, ``name/bn``."""
        y = self.relu(x, name=f"{name}/relu")
        y = self.conv(y, out_channels, kernel, stride=stride, name=f"{name}/conv")
        return self.bn(y, name=f"{name}/bn")

    def dw_pw(
        self,
        x: str,
        out_channels: int,
        kernel: int,
        *,
        name: str,
        stride: int = 1,
        dilation: int = 1,
        suffix: str = "",
    ) -> str:
        """Depthwise ``kernel`` conv then pointwise 1x1 conv (``name/dw{suffix}``, ``name/pw{suffix}``)."""
        c = self._shapes[x][1]
        y = self.conv(
            x, c, kernel, stride=stride, dilation=dilation, groups=c, name=f"{name}/dw{suffix}"
        )
        return self.conv(y, out_channels, 1, name=f"{name}/pw{suffix}")

    def max_pool(self, x: str, kernel: int, *, name: str, stride: int = 1) -> str:
        """Max pooling with 'same' padding."""
        return self._pool("MaxPool", x, kernel, stride, name)

    def avg_pool(self, x: str, kernel: int, *, name: str, stride: int = 1) -> str:
        """Average pooling with 'same' padding, padding not counted."""
        return self._pool("AveragePool", x, kernel, stride, name, count_include_pad=0)

    def _pool(self, op: str, x: str, kernel: int, stride: int, name: str, **attrs: object) -> str:
        n, c, h, w = self._shapes[x]
        pad = (kernel - 1) // 2
        shape = (n, c, _conv_out(h, kernel, stride, pad, 1), _conv_out(w, kernel, stride, pad, 1))
        return self._node(
            op,
            [x],
            name,
            shape,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            **attrs,
        )

    def add(self, a: str, b: str, *, name: str) -> str:
        """Element-wise sum of two same-shape tensors."""
        if self._shapes[a] != self._shapes[b]:
            raise ValueError(f"{name}: shapes {self._shapes[a]} and {self._shapes[b]} differ")
        return self._node("Add", [a, b], name, self._shapes[a])

    def scale(self, x: str, factor: float, *, name: str) -> str:
        """Multiply by a scalar constant (stored as the initializer ``name.factor``)."""
        factor_init = self._init(f"{name}.factor", np.array(factor, np.float32))
        return self._node("Mul", [x, factor_init], name, self._shapes[x])

    def mean(self, xs: Sequence[str], *, name: str) -> str:
        """Element-wise mean of same-shape tensors (one input: returned unchanged)."""
        if len(xs) == 1:
            return xs[0]
        shapes = {self._shapes[x] for x in xs}
        if len(shapes) != 1:
            raise ValueError(f"{name}: inputs have different shapes {sorted(shapes)}")
        return self._node("Mean", list(xs), name, self._shapes[xs[0]])

    def concat(self, xs: Sequence[str], *, name: str) -> str:
        """Channel concatenation."""
        n, _, h, w = self._shapes[xs[0]]
        if any(self._shapes[x][2:] != (h, w) for x in xs):
            raise ValueError(f"{name}: spatial sizes differ: {[self._shapes[x] for x in xs]}")
        c = sum(self._shapes[x][1] for x in xs)
        return self._node("Concat", list(xs), name, (n, c, h, w), axis=1)

    def shift(self, x: str, *, name: str) -> str:
        """Drop the first row and column (``x[:, :, 1:, 1:]``), as FactorizedReduce does."""
        n, c, h, w = self._shapes[x]
        starts = self._const("shift_starts", np.array([1, 1], np.int64))
        ends = self._const("shift_ends", np.array([_INT64_MAX, _INT64_MAX], np.int64))
        axes = self._const("shift_axes", np.array([2, 3], np.int64))
        return self._node("Slice", [x, starts, ends, axes], name, (n, c, h - 1, w - 1))

    def factorized_reduce(self, x: str, out_channels: int, *, name: str) -> str:
        """DARTS' FactorizedReduce: ReLU, two offset 1x1 stride-2 convs, concat, BN."""
        if out_channels % 2:
            raise ValueError(f"{name}: FactorizedReduce needs an even channel count")
        y = self.relu(x, name=f"{name}/relu")
        a = self.conv(y, out_channels // 2, 1, stride=2, name=f"{name}/conv1")
        s = self.shift(y, name=f"{name}/shift")
        b = self.conv(s, out_channels // 2, 1, stride=2, name=f"{name}/conv2")
        if self._shapes[a] != self._shapes[b]:
            raise ValueError(f"{name}: FactorizedReduce needs an even spatial size")
        return self.bn(self.concat([a, b], name=f"{name}/concat"), name=f"{name}/bn")

    def classifier(self, x: str, classes: int, *, name: str) -> str:
        """Global average pool, flatten, fully connected layer (``Gemm``, transB)."""
        n, c = self._shapes[x][:2]
        p = self._node("GlobalAveragePool", [x], f"{name}/pool", (n, c, 1, 1))
        f = self._node("Flatten", [p], f"{name}/flatten", (n, c), axis=1)
        weight = self._init(f"{name}/fc.weight", self._he((classes, c), c))
        bias = self._init(f"{name}/fc.bias", np.zeros(classes, np.float32))
        return self._node("Gemm", [f, weight, bias], f"{name}/fc", (n, classes), transB=1)


def batchnorm_variance(x: np.ndarray) -> np.ndarray:
    """Per-channel variance of ``x`` (N, C, ...) floored at a quarter of its overall variance.

    The floor matters where a channel has few values (a 1x1 map at batch 1
    has variance 0): a BN dividing by ``sqrt(0 + eps)`` would turn rounding
    noise into outputs in the hundreds.
    """
    channel = x.var(axis=(0, *range(2, x.ndim)))
    return np.maximum(channel, x.var() / 4)


def calibrate_batchnorm(model: onnx.ModelProto, seed: int, *, max_passes: int = 1000) -> int:
    """Set every BatchNormalization's mean and variance to its input's statistics.

    The model runs in onnxruntime on seeded standard-normal inputs
    (:func:`serenity.io.verify.random_inputs`); each BN
    gets the per-channel mean and (biased) variance of its input over batch
    and space (the variance floored by :func:`batchnorm_variance`), computed
    with every earlier BN already calibrated. The calibration model feeds mean and variance as graph inputs, so one session
    serves every pass; pass ``k`` fixes the BNs ``k`` deep, and the loop stops
    at the first pass that changes nothing.

    Args:
        model: A model whose BN mean and variance are initializers; edited in place.
        seed: Seed of the calibration input.
        max_passes: Give up (``RuntimeError``) after this many passes.

    Returns:
        The number of passes run (1 for a model without BN).
    """
    graph = model.graph
    bns = [n for n in graph.node if n.op_type == "BatchNormalization"]
    if not bns:
        return 1
    stat_names = {name for n in bns for name in n.input[3:5]}
    inits = {t.name: t for t in graph.initializer}
    stats = {name: numpy_helper.to_array(inits[name]).copy() for name in stat_names}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    keep = [t for t in probe.graph.initializer if t.name not in stat_names]
    del probe.graph.initializer[:]
    probe.graph.initializer.extend(keep)
    for name, value in stats.items():
        probe.graph.input.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape)
        )
    del probe.graph.output[:]
    bn_inputs = list(dict.fromkeys(n.input[0] for n in bns))
    probe.graph.output.extend(
        helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in bn_inputs
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feed = random_inputs(model, {}, seed)
    for passes in range(1, max_passes + 1):
        values = dict(zip(bn_inputs, session.run(bn_inputs, {**feed, **stats}), strict=True))
        changed = False
        for node in bns:
            x = values[node.input[0]].astype(np.float64)
            axes = (0, *range(2, x.ndim))  # all but channels
            with np.errstate(all="ignore"):  # deeper BNs overflow until calibrated
                new = {
                    node.input[3]: x.mean(axis=axes).astype(np.float32),
                    node.input[4]: batchnorm_variance(x).astype(np.float32),
                }
            for name, value in new.items():
                if not np.array_equal(value, stats[name], equal_nan=True):
                    stats[name] = value
                    changed = True
        if not changed:
            if not all(np.isfinite(v).all() for v in stats.values()):
                raise RuntimeError("BN calibration gave non-finite statistics")
            for name, value in stats.items():
                inits[name].CopyFrom(numpy_helper.from_array(value, name))
            return passes
    raise RuntimeError(f"BN calibration did not settle in {max_passes} passes")


def check_static_shapes(model: onnx.ModelProto, expected: dict[str, Shape] | None = None) -> None:
    """Check that shape inference gives every node output a static shape.

    Args:
        model: The model to check.
        expected: Shapes the builder tracked, compared when given.

    Raises:
        ValueError: a tensor has no static shape, or a different one than expected.
    """
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes: dict[str, Shape] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    for node in model.graph.node:
        for out in node.output:
            if out not in shapes:
                raise ValueError(f"tensor '{out}' of node '{node.name}' has no static shape")
            if expected is not None and out in expected and expected[out] != shapes[out]:
                raise ValueError(
                    f"tensor '{out}': shape inference says {shapes[out]}, "
                    f"the builder tracked {expected[out]}"
                )
