"""RandWire: randomly wired networks (Xie et al. 2019) adapted to CIFAR (32x32).

Xie, Kirillov, Girshick and He, "Exploring Randomly Wired Neural Networks for
Image Recognition" (ICCV 2019). What the paper describes, and this builder
follows:

- Each random stage is a Watts-Strogatz graph WS(N, K, P) (here N=32, K=4,
  P=0.75) from networkx's ``watts_strogatz_graph(N, K, P, seed)``, made a DAG
  by orienting every edge from the lower to the higher node index.
- A node aggregates its inputs by a weighted sum with positive learned
  weights (sigmoid of a parameter), then applies ReLU -> 3x3 separable
  convolution (depthwise + pointwise) -> BN. The learned weights are folded
  into constants: each input is multiplied by its weight (``Mul``) and the
  products are added in a chain (``Add``), as a plain export of
  ``sum(w_i * x_i)`` would be; a node with one input has no aggregation.
- An extra input node (the stage input) feeds every node without
  predecessors; those nodes use stride 2 when the stage downsamples. The
  outputs of nodes without successors are averaged (``Mean``) into the stage
  output.
- Small regime: conv1 (3x3, C/2), conv2 (3x3, C), then random stages of C,
  2C (and 4C) channels, then a 1x1 conv to 1280 channels, global average
  pool and a fully connected classifier.

What had to be assumed (the SERENITY paper gives only 111.0M MACs / 1.2M
weights for CIFAR-10 and 160.0M MACs / 4.7M weights for CIFAR-100, no
structure):

- Every random stage has N=32 nodes (the paper's first small-regime stage
  has N/2).
- Resolutions for 32x32 input: conv1 keeps 32x32, conv2 halves it to 16x16,
  the first random stage keeps 16x16 and every later stage halves it.
- The number of random stages: the two settings have very different
  MACs-per-weight ratios (92 for CIFAR-10, 34 for CIFAR-100), which one
  channel count alone cannot match. Two stages (16x16 with C, 8x8 with 2C)
  give CIFAR-10's ratio, three stages (16, 8, 4 with C, 2C, 4C) give
  CIFAR-100's. Other layouts tried: three stages at 32, 16, 8 (ratio ~140,
  with or without an N/2 first stage) and at 16, 8, 4 for CIFAR-10 (~37).
- Channel counts fitted to the paper's weights and MACs: C=76 for CIFAR-10
  (1.16M weights, 118M MACs) and C=78 for CIFAR-100 (4.50M, 164M; 78 is the
  paper's small-regime C). See :data:`RANDWIRE_CIFAR10` and
  :data:`RANDWIRE_CIFAR100`.
- Conv1 is conv -> BN and conv2 is ReLU -> conv -> BN (no bias); the
  classifier head is ReLU -> 1x1 conv (1280) -> BN -> ReLU -> global average
  pool -> fully connected.
- Graph seeds: stage ``s`` (from 0) of a network built with ``seed`` uses the
  networkx seed ``seed * 100 + s``; the weights use ``seed`` and each stage's
  edge weights the stage's graph seed. :func:`randwire_graphs` returns the
  seeds and edge lists. networkx's generator is deterministic for a seed
  (it draws from its own ``random.Random(seed)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx
import numpy as np
import onnx

from serenity.zoo._graph import GraphBuilder


@dataclass(frozen=True)
class RandWireConfig:
    """Size of a RandWire network (see the module docstring for the defaults' origin).

    Attributes:
        channels: C; stage s has C * 2**s channels.
        stem_strides: Strides of conv1 and conv2.
        stage_strides: Stride of each random stage (of its input-fed nodes); one per stage.
        nodes: N, nodes per random graph.
        k: K, each node's initial ring neighbours in WS.
        p: P, rewiring probability in WS.
        head_channels: Channels of the final 1x1 conv.
        classes: Classifier outputs.
        resolution: Input height and width.
        generator: ``"ws"`` (Watts-Strogatz, the default) or ``"er"``
            (Erdos-Renyi with edge probability ``er_p``, the paper's ER(P)).
        er_p: Edge probability of the ER generator.
    """

    channels: int
    stem_strides: tuple[int, int] = (1, 2)
    stage_strides: tuple[int, ...] = (1, 2, 2)
    nodes: int = 32
    k: int = 4
    p: float = 0.75
    head_channels: int = 1280
    classes: int = 10
    resolution: int = 32
    generator: str = "ws"
    er_p: float = 0.2


#: CIFAR-10 setting: two stages at 16x16 and 8x8 (paper: 1.2M weights, 111.0M MACs).
RANDWIRE_CIFAR10 = RandWireConfig(channels=76, stage_strides=(1, 2))
#: CIFAR-100 setting: three stages at 16, 8, 4 (paper: 4.7M weights, 160.0M MACs).
RANDWIRE_CIFAR100 = RandWireConfig(channels=78, stage_strides=(1, 2, 2), classes=100)


@dataclass(frozen=True)
class StageGraph:
    """The random DAG of one stage.

    Attributes:
        seed: The networkx seed it was generated with.
        nodes: Number of nodes (0 .. nodes-1).
        edges: Directed edges ``(u, v)`` with ``u < v``, sorted.
    """

    seed: int
    nodes: int
    edges: tuple[tuple[int, int], ...]

    def predecessors(self, v: int) -> list[int]:
        """Sorted predecessors of node ``v``."""
        return [u for u, w in self.edges if w == v]

    def sinks(self) -> list[int]:
        """Nodes without successors, sorted."""
        has_out = {u for u, _ in self.edges}
        return [v for v in range(self.nodes) if v not in has_out]


def stage_graph(nodes: int, k: int, p: float, seed: int) -> StageGraph:
    """WS(nodes, k, p) from networkx with ``seed``, oriented low -> high index.

    Example:
        >>> len(stage_graph(32, 4, 0.75, seed=0).edges)  # N * K / 2
        64

    Raises:
        ValueError: not ``0 < k < nodes`` with ``k`` even, or ``p`` outside [0, 1].
    """
    if not (0 < k < nodes and k % 2 == 0 and 0.0 <= p <= 1.0):
        raise ValueError(f"WS({nodes}, {k}, {p}) needs 0 < K < N, K even and 0 <= P <= 1")
    g = nx.watts_strogatz_graph(nodes, k, p, seed=seed)
    edges = sorted((min(u, v), max(u, v)) for u, v in g.edges())
    return StageGraph(seed, nodes, tuple(edges))


def er_stage_graph(nodes: int, p: float, seed: int) -> StageGraph:
    """ER(nodes, p) from networkx's ``gnp_random_graph`` with ``seed``, oriented low -> high.

    Raises:
        ValueError: ``p`` outside [0, 1] or fewer than one node.
    """
    if nodes < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"ER({nodes}, {p}) needs N >= 1 and 0 <= P <= 1")
    g = nx.gnp_random_graph(nodes, p, seed=seed)
    edges = sorted((min(u, v), max(u, v)) for u, v in g.edges())
    return StageGraph(seed, nodes, tuple(edges))


def randwire_graphs(config: RandWireConfig, seed: int = 0) -> list[StageGraph]:
    """The random graphs (seed and edge list per stage) of a network built with ``seed``."""
    if config.generator not in ("ws", "er"):
        raise ValueError(f"unknown RandWire generator '{config.generator}' (ws, er)")
    return [
        stage_graph(config.nodes, config.k, config.p, seed * 100 + s)
        if config.generator == "ws"
        else er_stage_graph(config.nodes, config.er_p, seed * 100 + s)
        for s in range(len(config.stage_strides))
    ]


def _stage(
    g: GraphBuilder, x: str, graph: StageGraph, channels: int, stride: int, name: str
) -> str:
    rng = np.random.default_rng(graph.seed)
    outs: list[str] = []
    for v in range(graph.nodes):
        node = f"{name}/node{v}"
        preds = graph.predecessors(v)
        if not preds:
            y, node_stride = x, stride
        else:
            # Learned positive edge weights sigmoid(w), folded into constants.
            weights = 1.0 / (1.0 + np.exp(-rng.standard_normal(len(preds))))
            y = ""
            for i, (u, w) in enumerate(zip(preds, weights, strict=True)):
                scaled = g.scale(outs[u], float(w), name=f"{node}/in{u}_mul")
                y = scaled if i == 0 else g.add(y, scaled, name=f"{node}/in{u}_add")
            node_stride = 1
        y = g.relu(y, name=f"{node}/relu")
        y = g.dw_pw(y, channels, 3, stride=node_stride, name=f"{node}/sep_conv_3x3")
        outs.append(g.bn(y, name=f"{node}/bn"))
    return g.mean([outs[v] for v in graph.sinks()], name=f"{name}/mean")


def build_randwire(config: RandWireConfig, seed: int = 0) -> onnx.ModelProto:
    """Build a RandWire network for CIFAR-sized input (see the module docstring).

    Args:
        config: Sizes (channels, strides, WS parameters, classes, resolution).
        seed: Seed of the weights; stage ``s``'s graph uses ``seed * 100 + s``.

    Returns:
        A checked ONNX model (opset 17) with input ``x`` and output ``logits``.

    Example:
        >>> m = build_randwire(RandWireConfig(channels=8, nodes=6, stage_strides=(1, 2)))
        >>> m.graph.output[0].type.tensor_type.shape.dim[1].dim_value
        10
    """
    c = config.channels
    g = GraphBuilder("randwire", seed)
    x = g.input("x", 3, config.resolution, config.resolution)
    y = g.conv(x, c // 2, 3, stride=config.stem_strides[0], name="conv1/conv")
    y = g.bn(y, name="conv1/bn")
    y = g.relu_conv_bn(y, c, 3, stride=config.stem_strides[1], name="conv2")
    for s, (graph, stride) in enumerate(
        zip(randwire_graphs(config, seed), config.stage_strides, strict=True)
    ):
        y = _stage(g, y, graph, c * 2**s, stride, f"stage{s + 1}")
    y = g.relu_conv_bn(y, config.head_channels, 1, name="head")
    y = g.relu(y, name="head/relu_out")
    logits = g.classifier(y, config.classes, name="classifier")
    return g.finish([logits])


def build_randwire_cifar10(
    channels: int = RANDWIRE_CIFAR10.channels,
    nodes: int = RANDWIRE_CIFAR10.nodes,
    resolution: int = RANDWIRE_CIFAR10.resolution,
    seed: int = 0,
) -> onnx.ModelProto:
    """RandWire for CIFAR-10 (:data:`RANDWIRE_CIFAR10`; smaller sizes for tests)."""
    config = replace(RANDWIRE_CIFAR10, channels=channels, nodes=nodes, resolution=resolution)
    return build_randwire(config, seed)


def build_randwire_cifar100(
    channels: int = RANDWIRE_CIFAR100.channels,
    nodes: int = RANDWIRE_CIFAR100.nodes,
    resolution: int = RANDWIRE_CIFAR100.resolution,
    seed: int = 0,
) -> onnx.ModelProto:
    """RandWire for CIFAR-100 (:data:`RANDWIRE_CIFAR100`; smaller sizes for tests)."""
    config = replace(RANDWIRE_CIFAR100, channels=channels, nodes=nodes, resolution=resolution)
    return build_randwire(config, seed)
