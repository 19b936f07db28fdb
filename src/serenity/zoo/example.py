"""The bundled example: a small NAS-like cell whose file order wastes memory.

Four branches fan out from one input; each expands channels with a 1x1
convolution (big output), applies ReLU, then squeezes back with a 3x3
convolution (small output). The branches are concatenated and mixed by a final
1x1 convolution with a residual add. The file lists every expansion first, as
an exporter walking the graph breadth-first would, so all four big tensors are
live at once; running each branch to completion holds only one.

It carries real (seeded random) weights, so ``serenity schedule --verify``
runs it in onnxruntime, and it needs no download.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_example(
    channels: int = 8,
    expand: int = 4,
    branches: int = 4,
    size: int = 16,
    seed: int = 0,
) -> onnx.ModelProto:
    """Build the example model.

    Args:
        channels: Channels of the input and of the output.
        expand: Channel expansion factor of each branch's 1x1 convolution.
        branches: Number of parallel branches.
        size: Height and width of the input.
        seed: Seed of the random weights.

    Returns:
        A checked ONNX model (opset 17) with ``3 * branches + 3`` nodes.

    Example:
        >>> build_example().graph.node[0].op_type
        'Conv'
    """
    rng = np.random.default_rng(seed)
    c, wide, narrow = channels, channels * expand, max(1, channels // 2)
    inits: list[TensorProto] = []

    def weight(name: str, *shape: int) -> str:
        scale = 1.0 / np.sqrt(np.prod(shape[1:]))
        inits.append(
            numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    expand_nodes, relu_nodes, squeeze_nodes = [], [], []
    for b in range(branches):
        expand_nodes.append(
            helper.make_node(
                "Conv",
                ["x", weight(f"w_expand{b}", wide, c, 1, 1)],
                [f"expand{b}"],
                name=f"expand{b}",
            )
        )
        relu_nodes.append(helper.make_node("Relu", [f"expand{b}"], [f"relu{b}"], name=f"relu{b}"))
        squeeze_nodes.append(
            helper.make_node(
                "Conv",
                [
                    f"relu{b}",
                    weight(f"w_squeeze{b}", narrow, wide, 3, 3),
                    weight(f"b_squeeze{b}", narrow),
                ],
                [f"squeeze{b}"],
                name=f"squeeze{b}",
                pads=[1, 1, 1, 1],
            )
        )
    concat = helper.make_node(
        "Concat", [f"squeeze{b}" for b in range(branches)], ["cat"], name="concat", axis=1
    )
    mix = helper.make_node(
        "Conv", ["cat", weight("w_mix", c, narrow * branches, 1, 1)], ["mix"], name="mix"
    )
    add = helper.make_node("Add", ["mix", "x"], ["y"], name="residual")
    graph = helper.make_graph(
        [*expand_nodes, *relu_nodes, *squeeze_nodes, concat, mix, add],
        "serenity_example",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, size, size])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="serenity"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
