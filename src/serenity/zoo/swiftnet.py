"""A SwiftNet-like cell network for human presence detection (HPD).

Cheng et al., "SwiftNet: Using Graph Propagation as Meta-knowledge to Search
Highly Representative Neural Architectures" (2019). What the sources give:

- The SwiftNet abstract: GRAM searches node-wise over a complete DAG and
  prunes low-weight edges at the structure level instead of using predefined
  cells and width multipliers, so the found cells are irregularly wired.
- SERENITY's talk and table: SwiftNet for human presence detection has
  249.7K weights (249.7KB at 8 bits) and 57.4M MACs; its cells have many
  branches that are concatenated, which is what makes its file order
  memory-hungry (the talk: 200KB peak when scheduled by hand or by
  SERENITY, against 800KB in TensorFlow Lite's order).

The searched architecture itself (the wiring, the op of each node, the
widths, the input resolution) is not published in those sources, so this
builder *assumes* all of it and only keeps the character and the size:

- Input 1x3x128x128; stem: conv 3x3 stride 2 -> BN -> ReLU (64x64, C0).
- Three stages of two cells each: a reducing cell (ops reading the cell input
  use stride 2) then a normal cell; stage widths C1, C2, C3.
- A cell is a DAG over its input (node 0) and numbered nodes; a node with
  several inputs concatenates them (channel concat, the pattern SERENITY's
  partial-convolution rewrite targets), then applies one op: ``conv1x1``
  (ReLU-conv-BN), ``sep3x3`` / ``sep5x5`` (ReLU, depthwise, pointwise, BN),
  ``dw3x3`` (ReLU, depthwise, BN: keeps the channel count) or ``max3x3`` /
  ``avg3x3`` pooling (keeps the channel count). The cell output concatenates
  the nodes nothing else in the cell reads. The wirings (:data:`CELLS`) are
  hand-drawn "pruned complete DAG" cells with skip edges across the cell.
- Head: ReLU -> 1x1 conv (C_head) -> BN -> ReLU -> global average pool ->
  fully connected to 2 classes (person present or not).
- Widths (C0, C1, C2, C3, C_head) = (16, 32, 48, 64, 128) and the 128x128
  input were fitted (small grid search) to the paper's 249.7K weights and
  57.4M MACs: this build has 250.7K weights (+0.4%) and 59.0M MACs (+2.8%).
"""

from __future__ import annotations

import onnx

from serenity.zoo._graph import GraphBuilder

#: Cell wirings: per node ``(op, inputs)``; input 0 is the cell input.
CELLS: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "A": (
        ("conv1x1", (0,)),
        ("sep3x3", (0,)),
        ("max3x3", (0,)),
        ("sep3x3", (1, 2)),
        ("dw3x3", (2, 3)),
        ("conv1x1", (1, 5)),
        ("sep5x5", (4,)),
        ("sep3x3", (4, 6)),
    ),
    "B": (
        ("sep3x3", (0,)),
        ("conv1x1", (0,)),
        ("sep3x3", (1,)),
        ("avg3x3", (2,)),
        ("sep5x5", (0, 3)),
        ("conv1x1", (2, 3, 4)),
        ("sep3x3", (5, 6)),
        ("dw3x3", (1, 6)),
    ),
    "C": (
        ("conv1x1", (0,)),
        ("sep3x3", (0,)),
        ("sep3x3", (1,)),
        ("sep5x5", (1, 2)),
        ("max3x3", (2,)),
        ("conv1x1", (3, 4, 5)),
        ("sep3x3", (3, 6)),
        ("dw3x3", (4, 6)),
    ),
}

#: The network: per cell ``(wiring, stride, stage index)``.
LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("A", 2, 0),
    ("B", 1, 0),
    ("A", 2, 1),
    ("B", 1, 1),
    ("A", 2, 2),
    ("C", 1, 2),
)


def _node_op(g: GraphBuilder, op: str, x: str, width: int, stride: int, name: str) -> str:
    if op == "conv1x1":
        return g.relu_conv_bn(x, width, 1, stride=stride, name=name)
    if op in ("sep3x3", "sep5x5"):
        y = g.relu(x, name=f"{name}/relu")
        y = g.dw_pw(y, width, int(op[-1]), stride=stride, name=name)
        return g.bn(y, name=f"{name}/bn")
    if op == "dw3x3":
        y = g.relu(x, name=f"{name}/relu")
        y = g.conv(y, g.channels(y), 3, stride=stride, groups=g.channels(y), name=f"{name}/dw")
        return g.bn(y, name=f"{name}/bn")
    if op == "max3x3":
        return g.max_pool(x, 3, stride=stride, name=name)
    if op == "avg3x3":
        return g.avg_pool(x, 3, stride=stride, name=name)
    raise ValueError(f"unknown SwiftNet op '{op}'")


def _cell(g: GraphBuilder, x: str, wiring: str, stride: int, width: int, name: str) -> str:
    spec = CELLS[wiring]
    states = [x]
    read: set[int] = set()
    for i, (op, inputs) in enumerate(spec, start=1):
        if any(j >= i for j in inputs):
            raise ValueError(f"cell {wiring}: node {i} reads a later node {inputs}")
        read.update(inputs)
        node = f"{name}/node{i}"
        srcs = [states[j] for j in inputs]
        y = srcs[0] if len(srcs) == 1 else g.concat(srcs, name=f"{node}/concat")
        # Ops on the cell input carry the cell's stride; a concat mixing the cell
        # input with other nodes never happens in a reducing cell.
        s = stride if 0 in inputs else 1
        if s != 1 and len(inputs) > 1:
            raise ValueError(f"cell {wiring}: strided node {i} must read only the cell input")
        states.append(_node_op(g, op, y, width, s, f"{node}/{op}"))
    leaves = [states[i] for i in range(1, len(states)) if i not in read]
    return g.concat(leaves, name=f"{name}/concat") if len(leaves) > 1 else leaves[0]


def build_swiftnet_hpd(
    widths: tuple[int, int, int, int, int] = (16, 32, 48, 64, 128),
    resolution: int = 128,
    classes: int = 2,
    cells: int = len(LAYOUT),
    seed: int = 0,
) -> onnx.ModelProto:
    """Build the SwiftNet-like HPD network (see the module docstring: mostly assumed).

    Args:
        widths: Channels (stem, stage 1, stage 2, stage 3, head conv).
        resolution: Input height and width (a multiple of 16).
        classes: Classifier outputs.
        cells: Use only the first ``cells`` cells of :data:`LAYOUT` (for small tests).
        seed: Seed of the random weights.

    Returns:
        A checked ONNX model (opset 17) with input ``x`` and output ``logits``.

    Example:
        >>> m = build_swiftnet_hpd(widths=(8, 8, 8, 8, 16), resolution=32, cells=2)
        >>> sum(n.name.endswith("/concat") for n in m.graph.node)  # node and cell concats
        10
    """
    g = GraphBuilder("swiftnet_hpd", seed)
    x = g.input("x", 3, resolution, resolution)
    y = g.conv(x, widths[0], 3, stride=2, name="stem/conv")
    y = g.relu(g.bn(y, name="stem/bn"), name="stem/relu")
    for i, (wiring, stride, stage) in enumerate(LAYOUT[:cells]):
        y = _cell(g, y, wiring, stride, widths[1 + stage], f"cell{i}")
    y = g.relu_conv_bn(y, widths[4], 1, name="head")
    y = g.relu(y, name="head/relu_out")
    logits = g.classifier(y, classes, name="classifier")
    return g.finish([logits])
