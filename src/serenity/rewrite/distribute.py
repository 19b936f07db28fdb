"""Distribute an element-wise or channel-wise op over the concat it reads.

``op(Concat(x1..xk))`` becomes ``Concat(op(x1)..op(xk))`` when ``op`` acts on
each slice of the concat axis independently:

* element-wise unary ops (``Relu``, ``Sigmoid``, ``Clip``, ``LeakyRelu``, ...),
  with their weight operands (``Clip``'s bounds) kept as they are;
* binary element-wise ops (``Add``, ``Mul``, ``Sub``, ``Div``, ``PRelu``, ...)
  whose other operand is a weight broadcast against the concat; where the
  weight varies along the concat axis (a per-channel scale) each part gets
  its slice of it;
* channel-wise ops when the concat is along the channels (axis 1):
  ``BatchNormalization`` in inference form (scale, bias, mean and variance
  sliced per part) and pooling (``MaxPool``, ``AveragePool``, ``LpPool``,
  global pools), which never mix channels.

The pass itself never lowers memory (the parts and their results are as
large as the concat and its result); it moves the concat down the graph so
that :mod:`~serenity.rewrite.channel_partition` and
:mod:`~serenity.rewrite.kernel_partition` can consume it, as in timm's NASNet
cells (``Concat -> ReLU -> 1x1 Conv -> BN``).
"""

from __future__ import annotations

import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    concat_parts,
    copy_attributes,
    like,
    local_consumers,
    remove_if_dead,
    replace_output,
    static_shape,
)

#: Unary element-wise ops: output element i depends on input element i only.
UNARY_OPS = frozenset(
    {
        "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu",
        "Clip", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
        "HardSwish", "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not",
        "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
        "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
    }
)  # fmt: skip

#: Binary element-wise ops, distributable when the other operand is a weight.
BINARY_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Max", "Min"})

#: Ops that never mix channels (axis 1) but do mix spatial positions.
CHANNELWISE_OPS = frozenset(
    {"BatchNormalization", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
     "GlobalMaxPool", "GlobalLpPool"}
)  # fmt: skip


def _slice_operand(
    editor: Editor, w: ir.Value, out_rank: int, axis: int, start: int, end: int, into: list[ir.Node]
) -> ir.Value | None:
    """The part of a broadcast weight operand that meets ``[start:end]`` of ``axis``."""
    shape = static_shape(w)
    if shape is None:
        return None
    if len(shape) > out_rank:
        return None
    waxis = axis - (out_rank - len(shape))
    if waxis < 0 or shape[waxis] == 1:
        return w  # broadcast along the concat axis: the same for every part
    return editor.slice(w, waxis, start, end, into)


def distributable(editor: Editor, concat: ir.Node, node: ir.Node) -> bool:
    """Can ``node`` (a consumer of ``concat``) be moved onto the concat's parts?"""
    found = concat_parts(concat)
    if found is None or node.domain != "":
        return False
    axis, parts = found
    cat = concat.outputs[0]
    if cat.is_graph_output() or len(node.outputs) < 1:
        return False
    if any(v.uses() or v.is_graph_output() for v in node.outputs[1:]):
        return False  # extra outputs (MaxPool's indices, BN's running stats) are not split
    slots = [i for i, x in enumerate(node.inputs) if x is cat]
    if slots != [0] and not (
        node.op_type in BINARY_OPS and slots == [1] and node.op_type != "PRelu"
    ):
        return False
    others = [x for i, x in enumerate(node.inputs) if i not in slots]
    if not all(editor.is_weight(x) for x in others):
        return False
    rank = len(cat.shape) if cat.shape is not None else None
    if node.op_type in UNARY_OPS:
        return True
    if node.op_type in BINARY_OPS:
        if len(node.inputs) != 2:
            return False
        # The weight must broadcast into the concat, never widen it.
        other = others[0] if others else None
        shape = static_shape(other)
        cshape = static_shape(cat)
        if shape is None or cshape is None or len(shape) > len(cshape):
            return False
        tail = cshape[len(cshape) - len(shape) :]
        return all(a in (1, b) for a, b in zip(shape, tail, strict=True))
    if node.op_type in CHANNELWISE_OPS:
        if axis != 1 or rank is None or rank < 2:
            return False
        if node.op_type == "BatchNormalization":
            training = node.attributes.get("training_mode")
            return len(node.inputs) == 5 and not (training is not None and training.as_int())
        return True
    return False


def distribute(editor: Editor, concat: ir.Node, node: ir.Node) -> tuple[Rewrite, ir.Node] | None:
    """Move ``node`` onto the parts of ``concat``; return the record and the new concat.

    Returns ``None`` (graph unchanged) when the op does not qualify (see
    :func:`distributable`). The old concat is removed when nothing else reads it.

    Complexity: O(parts + uses of the concat).
    """
    if not distributable(editor, concat, node):
        return None
    found = concat_parts(concat)
    assert found is not None
    axis, parts = found
    graph = editor.graph
    cat = concat.outputs[0]
    out = node.outputs[0]
    rank = len(cat.shape) if cat.shape is not None else 0
    slot = next(i for i, x in enumerate(node.inputs) if x is cat)
    new_nodes: list[ir.Node] = []
    results: list[ir.Value] = []
    for k, (x, start, size) in enumerate(parts):
        inputs: list[ir.Value | None] = list(node.inputs)
        inputs[slot] = x
        for i, w in enumerate(node.inputs):
            if i == slot or w is None:
                continue
            if node.op_type == "BatchNormalization":
                inputs[i] = editor.slice(w, 0, start, start + size, new_nodes)
            elif node.op_type in BINARY_OPS:
                sliced = _slice_operand(editor, w, rank, axis, start, start + size, new_nodes)
                if sliced is None:
                    return None
                inputs[i] = sliced
        part = ir.Node(
            "",
            node.op_type,
            inputs,
            copy_attributes(node),
            num_outputs=1,
            name=editor.fresh(f"{node.name or node.op_type}.part{k}"),
        )
        part.outputs[0].name = editor.fresh(f"{out.name}.part{k}")
        like(part.outputs[0], out, axis, size)
        new_nodes.append(part)
        results.append(part.outputs[0])
    new_cat = editor.concat(
        results, axis, out, f"{concat.name or 'concat'}.{node.op_type.lower()}", new_nodes
    )
    new_value = new_cat.outputs[0]
    record = Rewrite("distribute", (concat.name or "", node.name or ""), len(parts))
    replace_output(graph, node, new_nodes, new_value)
    remove_if_dead(graph, concat)
    return record, new_cat


class DistributePass(ir.passes.InPlacePass):
    """Distribute every qualifying op over the concat it reads, until none is left.

    Records each rewrite in :attr:`rewrites`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rewrites: list[Rewrite] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = Editor(model.graph)
        modified, changed = False, True
        while changed:
            changed = False
            for concat in [n for n in model.graph if n.op_type == "Concat"]:
                if concat.graph is None:
                    continue
                for node in local_consumers(concat):
                    done = distribute(editor, concat, node)
                    if done is not None:
                        self.rewrites.append(done[0])
                        modified = changed = True
                        break
        return ir.passes.PassResult(model, modified)
