"""Small .tflite models for the tests, built with the schema's object API (no TensorFlow).

:func:`design_example` is DESIGN.md's worked example as a real LiteRT/TFLM
model: four branches ``x -> conv1x1 (8 KiB) -> conv1x1 (1 KiB)`` joined by a
concatenation and a 1x1 head. In float32 its file order peaks at 34,816 B and
the optimum is 13,312 B; in int8 every size is a quarter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils

FLOAT32, INT32, INT8 = fb.TensorType.FLOAT32, fb.TensorType.INT32, fb.TensorType.INT8


class _Builder:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self, int8: bool) -> None:
        self.int8 = int8
        self.rng = np.random.default_rng(7)
        self.buffers: list[Any] = [fb.BufferT()]
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.codes: list[int] = []
        self.subgraphs: list[Any] = []  # finished subgraphs other than the main one

    def tensor(
        self,
        name: str,
        shape: list[int],
        ttype: int,
        data: np.ndarray | None = None,
        quant: tuple[list[float], list[int], int] | None = None,
    ) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        t.buffer = 0
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(data.tobytes(), dtype=np.uint8).copy()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = fb.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = quant
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def activation(self, name: str, shape: list[int]) -> int:
        if self.int8:
            return self.tensor(name, shape, INT8, quant=([0.05], [-3], 0))
        return self.tensor(name, shape, FLOAT32)

    def op(self, code: int, inputs: list[int], outputs: list[int], options: Any = None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = fb.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = inputs, outputs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options
        self.operators.append(o)

    def conv1x1(self, name: str, x: int, cin: int, cout: int, hw: int) -> int:
        """A 1x1 CONV_2D with seeded weights; returns its output tensor."""
        w = self.rng.standard_normal((cout, 1, 1, cin)).astype(np.float32) * 0.3
        bias = self.rng.standard_normal(cout).astype(np.float32) * 0.1
        if self.int8:
            ws = (np.abs(w).reshape(cout, -1).max(axis=1) / 127).astype(np.float32)
            wq = np.round(w / ws[:, None, None, None]).astype(np.int8)
            bq = np.round(bias / (0.05 * ws)).astype(np.int32)
            wt = self.tensor(f"{name}/w", [cout, 1, 1, cin], INT8, wq, ([*ws], [0] * cout, 0))
            bt = self.tensor(f"{name}/b", [cout], INT32, bq, ([*(0.05 * ws)], [0] * cout, 0))
        else:
            wt = self.tensor(f"{name}/w", [cout, 1, 1, cin], FLOAT32, w)
            bt = self.tensor(f"{name}/b", [cout], FLOAT32, bias)
        y = self.activation(name, [1, hw, hw, cout])
        opts = fb.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = fb.Padding.SAME, 1, 1
        opts.dilationWFactor = opts.dilationHFactor = 1
        opts.fusedActivationFunction = fb.ActivationFunctionType.RELU
        self.op(
            fb.BuiltinOperator.CONV_2D, [x, wt, bt], [y], (fb.BuiltinOptions.Conv2DOptions, opts)
        )
        return y

    def finish(self, inputs: list[int], outputs: list[int], name: str) -> int:
        """Close the tensors and operators so far as subgraph ``1 + len(subgraphs)``."""
        sg = fb.SubGraphT()
        sg.tensors, sg.operators, sg.inputs, sg.outputs = (
            self.tensors,
            self.operators,
            inputs,
            outputs,
        )
        sg.name = name
        self.tensors, self.operators = [], []
        self.subgraphs.append(sg)
        return len(self.subgraphs)

    def concat(self, name: str, xs: list[int], channels: int) -> int:
        """A channel CONCATENATION of ``xs`` (8x8 maps); returns its output tensor."""
        cat = self.activation(name, [1, 8, 8, channels])
        opts = fb.ConcatenationOptionsT()
        opts.axis = 3
        self.op(
            fb.BuiltinOperator.CONCATENATION,
            xs,
            [cat],
            (fb.BuiltinOptions.ConcatenationOptions, opts),
        )
        return cat

    def model(self, inputs: list[int], outputs: list[int]) -> Any:
        self.finish(inputs, outputs, "main")
        m = fb.ModelT()
        m.version = 3
        m.description = "serenity test model"
        m.subgraphs, m.buffers = [self.subgraphs[-1], *self.subgraphs[:-1]], self.buffers
        m.operatorCodes = []
        for code in self.codes:
            c = fb.OperatorCodeT()
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)
            c.version = 1
            m.operatorCodes.append(c)
        return m


def _design_ops(b: _Builder, x: int, branches: int = 4, prefix: str = "", out: int = 4) -> int:
    """The example's operators on ``x`` in its (bad) file order; returns the head's output."""
    a = [b.conv1x1(f"{prefix}a{i}", x, 8, 32, 8) for i in range(branches)]
    bs = [b.conv1x1(f"{prefix}b{i}", a[i], 32, 4, 8) for i in range(branches)]
    cat = b.concat(f"{prefix}cat", bs, 4 * branches)
    return b.conv1x1(f"{prefix}head", cat, 4 * branches, out, 8)


def design_model(int8: bool = False) -> Any:
    """DESIGN.md's example as a ``ModelT`` (see the module docstring)."""
    b = _Builder(int8)
    x = b.activation("x", [1, 8, 8, 8])
    y = _design_ops(b, x)
    return b.model([x], [y])


def if_model() -> Any:
    """An ``IF`` whose branches are subgraphs in a bad file order (float32).

    Subgraph 1 (then) is the design example on the ``IF``'s input ``x``
    (file order peak 34,816 B, optimum 13,312 B); subgraph 2 (else) is the
    example with two branches (file order 18,432 B, optimum 11,264 B). The
    main subgraph runs ``pa = conv(x)`` (8 KiB) and, in its file order, the
    ``IF`` while ``pa`` is live, then ``pb = conv(pa)``, a concatenation of
    ``pb`` and the ``IF``'s output, and a 1x1 head.
    """
    b = _Builder(False)
    bx = b.activation("then/x", [1, 8, 8, 8])
    then = b.finish([bx], [_design_ops(b, bx, 4, "then/")], "then")
    ex = b.activation("else/x", [1, 8, 8, 8])
    other = b.finish([ex], [_design_ops(b, ex, 2, "else/")], "else")
    cond = b.tensor("cond", [1], fb.TensorType.BOOL)
    x = b.activation("x", [1, 8, 8, 8])
    pa = b.conv1x1("pa", x, 8, 32, 8)
    y = b.activation("if", [1, 8, 8, 4])
    opts = fb.IfOptionsT()
    opts.thenSubgraphIndex, opts.elseSubgraphIndex = then, other
    b.op(fb.BuiltinOperator.IF, [cond, x], [y], (fb.BuiltinOptions.IfOptions, opts))
    pb = b.conv1x1("pb", pa, 32, 4, 8)
    cat = b.concat("cat", [pb, y], 8)
    out = b.conv1x1("out", cat, 8, 4, 8)
    return b.model([cond, x], [out])


def to_bytes(model: Any) -> bytes:
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def design_example(int8: bool = False) -> bytes:
    """The example's flatbuffer bytes."""
    return to_bytes(design_model(int8))


def while_model() -> Any:
    """A ``WHILE`` that runs its body three times (float32 maps, int32 counter).

    Subgraph 1 (condition): ``i < 3``. Subgraph 2 (body): ``i + 1`` and the
    example with two branches and an 8-channel head on ``x`` (its file
    order is not optimal). The main subgraph runs the
    ``WHILE`` on ``(i, x)`` and a 1x1 head on its ``x``.
    """
    b = _Builder(False)
    ci, cx = b.tensor("cond/i", [1], INT32), b.activation("cond/x", [1, 8, 8, 8])
    three = b.tensor("cond/three", [1], INT32, np.array([3], np.int32))
    flag = b.tensor("cond/flag", [1], fb.TensorType.BOOL)
    b.op(fb.BuiltinOperator.LESS, [ci, three], [flag])
    cond = b.finish([ci, cx], [flag], "cond")
    bi, bx = b.tensor("body/i", [1], INT32), b.activation("body/x", [1, 8, 8, 8])
    y = _design_ops(b, bx, 2, "body/", out=8)
    one = b.tensor("body/one", [1], INT32, np.array([1], np.int32))
    nxt = b.tensor("body/next", [1], INT32)
    opts = fb.AddOptionsT()
    b.op(fb.BuiltinOperator.ADD, [bi, one], [nxt], (fb.BuiltinOptions.AddOptions, opts))
    body = b.finish([bi, bx], [nxt, y], "body")
    i, x = b.tensor("i", [1], INT32), b.activation("x", [1, 8, 8, 8])
    io, xo = b.tensor("i_out", [1], INT32), b.activation("x_out", [1, 8, 8, 8])
    wopts = fb.WhileOptionsT()
    wopts.condSubgraphIndex, wopts.bodySubgraphIndex = cond, body
    b.op(fb.BuiltinOperator.WHILE, [i, x], [io, xo], (fb.BuiltinOptions.WhileOptions, wopts))
    out = b.conv1x1("out", xo, 8, 4, 8)
    return b.model([i, x], [io, out])


def with_fp16_weights(int8: bool = False) -> Any:
    """The example with the head's weights stored fp16 behind a DEQUANTIZE (a
    weight-only chain: not scheduled, placed before its consumer; TFLM has no
    fp16 DEQUANTIZE)."""
    m = design_model(int8)
    sg = m.subgraphs[0]
    head = sg.operators[-1]
    w = sg.tensors[head.inputs[1]]
    half = fb.TensorT()
    half.name, half.shape, half.type = "head/w_fp16", list(w.shape), fb.TensorType.FLOAT16
    data = np.frombuffer(bytes(m.buffers[w.buffer].data), dtype=np.float32).astype(np.float16)
    buf = fb.BufferT()
    buf.data = np.frombuffer(data.tobytes(), dtype=np.uint8).copy()
    m.buffers.append(buf)
    half.buffer = len(m.buffers) - 1
    w.buffer = 0  # now computed at run time
    sg.tensors.append(half)
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.DEQUANTIZE
    code.version = 2
    m.operatorCodes.append(code)
    deq = fb.OperatorT()
    deq.opcodeIndex = len(m.operatorCodes) - 1
    deq.inputs, deq.outputs = [len(sg.tensors) - 1], [head.inputs[1]]
    sg.operators.insert(0, deq)
    return m


def with_subgraph_cycle() -> Any:
    """The example plus a WHILE whose condition and body are subgraph 0 itself."""
    m = design_model()
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.WHILE
    code.version = 1
    m.operatorCodes.append(code)
    op = fb.OperatorT()
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.inputs, op.outputs = [0], [0]
    opts = fb.WhileOptionsT()
    opts.condSubgraphIndex, opts.bodySubgraphIndex = 0, 0
    op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.WhileOptions, opts
    m.subgraphs[0].operators.append(op)
    return m
