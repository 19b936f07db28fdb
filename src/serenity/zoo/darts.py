"""DARTS (ImageNet mobile setting) with the published DARTS_V2 genotype.

Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search" (ICLR
2019), the network evaluated on ImageNet: 14 cells, 48 initial channels,
224x224 input, 4.7M parameters and 574M multiply-adds, the figures SERENITY's
table lists for "DARTS (ImageNet)". The structure follows the paper's
description of its ImageNet network (written here from that description, not
copied):

- stem0: conv 3x3 stride 2 (C/2) -> BN -> ReLU -> conv 3x3 stride 2 (C) -> BN;
  stem1: ReLU -> conv 3x3 stride 2 (C) -> BN (224 -> 56 -> 28).
- Cells ``k = layers // 3`` and ``2 * layers // 3`` are reduction cells; they
  double the cell channel count C_cell and halve the resolution.
- Each cell takes the outputs of the two previous cells. Input 0 is
  preprocessed by FactorizedReduce when the previous cell halved the
  resolution (and for the first cell, whose input 0 is stem0 at twice stem1's
  resolution), else by ReLU-conv1x1-BN; input 1 by ReLU-conv1x1-BN. Both give
  C_cell channels.
- Four intermediate nodes, each the sum of two ops applied to earlier states
  (genotype order). In a reduction cell ops applied to the two cell inputs use
  stride 2; a strided skip_connect becomes FactorizedReduce.
- sep_conv_kxk = (ReLU, depthwise kxk, pointwise 1x1, BN) twice, the first
  with the stride; dil_conv_kxk = ReLU, depthwise kxk dilation 2, pointwise,
  BN once; pools are 3x3 with padding 1 (average pooling excludes padding);
  skip_connect is the identity (no node).
- The cell output concatenates nodes 2..5; global average pool and a
  1000-class fully connected layer follow. No auxiliary head, no drop path
  (inference).

Size: 4,718,752 trainable weights (the paper: 4.7M) and 529.9M conv/fc MACs
(:func:`~serenity.zoo.count_weights_and_macs`), 7.7% under the paper's 574M.
The paper's figure is known not to be reproducible by counting conv and fc
layers: quark0/darts issue #46 reports 523M for DARTS_V2 counted that way and
544.6M with a counter that adds BN and activations; the authors' counting
code was not published. The stems (57M), the cells' pointwise (446M) and
depthwise (26M) convolutions and the classifier (0.8M) are all accounted
for here.

Nodes are written as a plain exporter would: stems, then cell by cell
(preprocessing, then the ops of each intermediate node in genotype order,
the sum, and the concat), then the classifier.
"""

from __future__ import annotations

from typing import NamedTuple

import onnx

from serenity.zoo._graph import GraphBuilder


class Genotype(NamedTuple):
    """A DARTS cell pair: ``(op, input state)`` per op, two ops per node."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]


#: The genotype DARTS (second order) found on CIFAR-10 and evaluated on ImageNet.
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)


#: NASNet-A's cells (Zoph et al. 2018) in DARTS' genotype form (as the DARTS
#: code base lists them): five nodes per cell, the same op twice on one input
#: in some nodes, and reduction nodes reading earlier nodes.
NASNET_A = Genotype(
    normal=(
        ("sep_conv_5x5", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 0),
        ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 1),
        ("skip_connect", 0),
        ("avg_pool_3x3", 0),
        ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 1),
    ),
    normal_concat=(2, 3, 4, 5, 6),
    reduce=(
        ("sep_conv_5x5", 1),
        ("sep_conv_7x7", 0),
        ("max_pool_3x3", 1),
        ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1),
        ("sep_conv_5x5", 0),
        ("skip_connect", 3),
        ("avg_pool_3x3", 2),
        ("sep_conv_3x3", 2),
        ("max_pool_3x3", 1),
    ),
    reduce_concat=(4, 5, 6),
)


def _op(g: GraphBuilder, kind: str, x: str, stride: int, name: str) -> str:
    """One DARTS operation on ``x`` with the cell's channel count (kept from ``x``)."""
    c = g.channels(x)
    if kind == "skip_connect":
        return x if stride == 1 else g.factorized_reduce(x, c, name=name)
    if kind in ("max_pool_3x3", "avg_pool_3x3"):
        pool = g.max_pool if kind == "max_pool_3x3" else g.avg_pool
        return pool(x, 3, stride=stride, name=name)
    if kind.startswith(("sep_conv_", "dil_conv_")):
        k = int(kind.rsplit("_", 1)[1].split("x")[0])
        dilated = kind.startswith("dil_conv_")
        y = g.relu(x, name=f"{name}/relu1")
        y = g.dw_pw(y, c, k, stride=stride, dilation=2 if dilated else 1, name=name, suffix="1")
        y = g.bn(y, name=f"{name}/bn1")
        if dilated:
            return y
        y = g.relu(y, name=f"{name}/relu2")
        y = g.dw_pw(y, c, k, name=name, suffix="2")
        return g.bn(y, name=f"{name}/bn2")
    raise ValueError(f"unknown DARTS operation '{kind}'")


def _cell(
    g: GraphBuilder,
    genotype: Genotype,
    index: int,
    s0: str,
    s1: str,
    channels: int,
    reduction: bool,
) -> str:
    name = f"cell{index}"
    if g.shape(s0)[2] != g.shape(s1)[2]:
        s0 = g.factorized_reduce(s0, channels, name=f"{name}/pre0")
    else:
        s0 = g.relu_conv_bn(s0, channels, 1, name=f"{name}/pre0")
    s1 = g.relu_conv_bn(s1, channels, 1, name=f"{name}/pre1")
    ops, concat = (
        (genotype.reduce, genotype.reduce_concat)
        if reduction
        else (genotype.normal, genotype.normal_concat)
    )
    states = [s0, s1]
    for step in range(len(ops) // 2):
        node = step + 2
        branches = []
        for j in (0, 1):
            kind, src = ops[2 * step + j]
            stride = 2 if reduction and src < 2 else 1
            op_name = f"{name}/node{node}/{kind}_from{src}"
            if j == 1 and ops[2 * step] == (kind, src):
                op_name += "_2"  # the same op twice on one input (NASNet-A)
            branches.append(_op(g, kind, states[src], stride, op_name))
        states.append(g.add(branches[0], branches[1], name=f"{name}/node{node}/add"))
    return g.concat([states[i] for i in concat], name=f"{name}/concat")


def build_darts_imagenet(
    channels: int = 48,
    layers: int = 14,
    resolution: int = 224,
    classes: int = 1000,
    seed: int = 0,
    genotype: Genotype = DARTS_V2,
    name: str = "darts_imagenet",
) -> onnx.ModelProto:
    """Build the DARTS ImageNet network (see the module docstring).

    Args:
        channels: Initial channels C (48 in the paper; even).
        layers: Number of cells (14; cells ``layers // 3`` and
            ``2 * layers // 3`` reduce).
        resolution: Input height and width (224; a multiple of 32).
        classes: Classifier outputs.
        seed: Seed of the random weights.
        genotype: The cell genotype (DARTS_V2 by default).
        name: The ONNX graph's name.

    Returns:
        A checked ONNX model (opset 17) with input ``x`` (1x3xRxR) and output
        ``logits`` (1 x classes). Full size: 4,718,752 weights and 529.9M
        conv/fc MACs (see the module docstring on the paper's 574M).

    Example:
        >>> m = build_darts_imagenet(channels=8, layers=3, resolution=32)
        >>> sum(n.op_type == "Concat" for n in m.graph.node)  # 3 cells + 2 FactorizedReduce
        5
    """
    g = GraphBuilder(name, seed)
    x = g.input("x", 3, resolution, resolution)
    y = g.conv(x, channels // 2, 3, stride=2, name="stem0/conv1")
    y = g.relu(g.bn(y, name="stem0/bn1"), name="stem0/relu")
    y = g.conv(y, channels, 3, stride=2, name="stem0/conv2")
    s0 = g.bn(y, name="stem0/bn2")
    s1 = g.relu_conv_bn(s0, channels, 3, stride=2, name="stem1")
    c_cell = channels
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c_cell *= 2
        s0, s1 = s1, _cell(g, genotype, i, s0, s1, c_cell, reduction)
    logits = g.classifier(s1, classes, name="classifier")
    return g.finish([logits])


def build_nasnet_a_imagenet(
    channels: int = 46,
    layers: int = 14,
    resolution: int = 224,
    classes: int = 1000,
    seed: int = 0,
) -> onnx.ModelProto:
    """NASNet-A cells (:data:`NASNET_A`) in the DARTS ImageNet network.

    This is NASNet-A as the DARTS code base evaluates it (its genotype, the
    DARTS stems, preprocessing and cell layout), not Google's original
    NASNet-A mobile graph (whose cells also concatenate the previous cell's
    output, adjust inputs differently and use 4 normal cells per stage after
    a different stem). ``channels=46`` was fitted to NASNet-A mobile's
    published size (5.3M weights, 564M MACs): this build has 5.16M weights
    (-2.6%) and 557M conv/fc MACs (-1.2%).

    Args:
        channels: Initial channels C (even).
        layers: Number of cells.
        resolution: Input height and width (a multiple of 32).
        classes: Classifier outputs.
        seed: Seed of the random weights.

    Returns:
        A checked ONNX model (opset 17), input ``x``, output ``logits``.
    """
    return build_darts_imagenet(
        channels, layers, resolution, classes, seed, genotype=NASNET_A, name="nasnet_a_imagenet"
    )
