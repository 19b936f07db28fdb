"""The benchmark zoo: valid, runnable models with the structure their sources give.

Small versions only (the full-size networks are measured by the benchmarks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import serenity
from serenity.schedule import ScheduleOptions, schedule
from serenity.zoo import (
    BENCHMARKS,
    DARTS_V2,
    NASNET_A,
    RANDWIRE_CIFAR10,
    RANDWIRE_CIFAR100,
    RandWireConfig,
    build_darts_imagenet,
    build_nasnet_a_imagenet,
    build_randwire,
    build_randwire_cifar10,
    build_swiftnet_hpd,
    count_weights_and_macs,
    randwire_graphs,
    stage_graph,
)
from serenity.zoo._graph import (
    GraphBuilder,
    batchnorm_variance,
    calibrate_batchnorm,
    check_static_shapes,
)
from serenity.zoo.swiftnet import CELLS, LAYOUT


def run(model: onnx.ModelProto) -> np.ndarray:
    """Run ``model`` in onnxruntime on a seeded random input; return its one output."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)
    (y,) = session.run(None, {inp.name: x})
    return y


def assert_valid(model: onnx.ModelProto, classes: int) -> None:
    """Checker, static shapes, unique names, opset/IR, and a finite run of the right shape."""
    onnx.checker.check_model(model, full_check=True)
    check_static_shapes(model)
    assert model.ir_version == 8
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    y = run(model)
    assert y.shape == (1, classes)
    assert np.isfinite(y).all()


def ops(model: onnx.ModelProto, prefix: str = "") -> Counter[str]:
    """Op-type counts of the nodes whose name starts with ``prefix``."""
    return Counter(n.op_type for n in model.graph.node if n.name.startswith(prefix))


# -- DARTS -------------------------------------------------------------------


def test_darts_small_is_valid_and_follows_the_genotype() -> None:
    layers = 5  # reductions at cells 1 and 3
    model = build_darts_imagenet(channels=8, layers=layers, resolution=32, classes=7)
    assert_valid(model, 7)
    normal_convs = sum(
        4 if op == "sep_conv_3x3" else 2 if op == "dil_conv_3x3" else 0 for op, _ in DARTS_V2.normal
    )
    for i in range(layers):
        cell = ops(model, f"cell{i}/")
        reduction = i in (layers // 3, 2 * layers // 3)
        # Input 0 needs FactorizedReduce (2 convs) after a reduction and in cell 0.
        pre_convs = 3 if i == 0 or i - 1 in (layers // 3, 2 * layers // 3) else 2
        assert cell["Add"] == 4  # four intermediate nodes
        assert cell["Concat"] == 1 + (pre_convs == 3)
        if reduction:
            assert cell["MaxPool"] == sum(op == "max_pool_3x3" for op, _ in DARTS_V2.reduce)
            assert cell["Conv"] == pre_convs  # skip_connect from node 2 is the identity
        else:
            assert cell["Conv"] == pre_convs + normal_convs
            assert cell["MaxPool"] == 0
    assert ops(model, "stem")["Conv"] == 3
    assert ops(model, "cell5/") == Counter()
    # Reduction cells halve the resolution: 32 -> 8 (stems) -> 4 -> 2.
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in onnx.shape_inference.infer_shapes(model).graph.value_info
    }
    assert shapes["cell0/concat"] == [1, 4 * 8, 4, 4]
    assert shapes["cell1/concat"] == [1, 4 * 16, 2, 2]
    assert shapes["cell4/concat"] == [1, 4 * 32, 1, 1]


def test_darts_names_say_where_a_node_is() -> None:
    names = {n.name for n in build_darts_imagenet(channels=8, layers=3, resolution=32).graph.node}
    assert "cell0/node2/sep_conv_3x3_from0/dw1" in names
    assert "cell0/node5/dil_conv_3x3_from2/pw1" in names
    assert "cell1/node2/max_pool_3x3_from0" in names
    assert "cell0/pre0/conv1" in names  # FactorizedReduce of stem0


def test_darts_full_size_matches_the_paper_weights() -> None:
    weights, macs = count_weights_and_macs(build_darts_imagenet())
    assert abs(weights / 4.7e6 - 1) < 0.02
    # The paper's 574M counts more than conv/fc MACs (quark0/darts issue #46: 523M).
    assert 0.9 < macs / 574e6 < 1.0


def test_nasnet_a_small_is_valid_and_follows_its_genotype() -> None:
    model = build_nasnet_a_imagenet(channels=8, layers=3, resolution=32, classes=5)
    assert_valid(model, 5)
    assert model.graph.name == "nasnet_a_imagenet"
    normal, reduce = ops(model, "cell0/"), ops(model, "cell1/")  # cell 1 reduces
    assert normal["Add"] == reduce["Add"] == 5
    assert normal["AveragePool"] == 3
    assert reduce["MaxPool"] == 2 and reduce["AveragePool"] == 2
    names = {n.name for n in model.graph.node}
    assert {"cell0/node5/avg_pool_3x3_from0", "cell0/node5/avg_pool_3x3_from0_2"} <= names
    assert len(NASNET_A.normal) == 10


# -- RandWire ------------------------------------------------------------------

SMALL_RW = RandWireConfig(
    channels=8, nodes=10, k=4, p=0.75, stage_strides=(1, 2), head_channels=32, resolution=16
)


def test_randwire_small_is_valid_and_matches_its_graphs() -> None:
    model = build_randwire(SMALL_RW, seed=3)
    assert_valid(model, 10)
    graphs = randwire_graphs(SMALL_RW, seed=3)
    assert [g.seed for g in graphs] == [300, 301]
    for s, graph in enumerate(graphs, start=1):
        assert len(graph.edges) == SMALL_RW.nodes * SMALL_RW.k // 2
        assert all(u < v for u, v in graph.edges)
        stage = ops(model, f"stage{s}/")
        with_preds = sum(1 for v in range(graph.nodes) if graph.predecessors(v))
        assert stage["Mul"] == len(graph.edges)  # one scaled input per edge
        assert stage["Add"] == len(graph.edges) - with_preds
        assert stage["Conv"] == 2 * graph.nodes  # depthwise + pointwise per node
        assert stage["BatchNormalization"] == stage["Relu"] == graph.nodes
        # Sink outputs are averaged (a single sink is the stage output itself).
        means = [n for n in model.graph.node if n.name == f"stage{s}/mean"]
        assert [len(n.input) for n in means] == (
            [len(graph.sinks())] if len(graph.sinks()) > 1 else []
        )
    # Nodes fed by the input of a downsampling stage use stride 2, the others 1.
    graph = graphs[1]
    for v in range(graph.nodes):
        dw = next(n for n in model.graph.node if n.name == f"stage2/node{v}/sep_conv_3x3/dw")
        strides = next(a.ints for a in dw.attribute if a.name == "strides")
        assert list(strides) == ([2, 2] if not graph.predecessors(v) else [1, 1])


def test_randwire_graph_is_reproducible_from_its_seed() -> None:
    a = stage_graph(32, 4, 0.75, seed=7)
    assert a == stage_graph(32, 4, 0.75, seed=7)
    assert a != stage_graph(32, 4, 0.75, seed=8)
    ws = nx.watts_strogatz_graph(32, 4, 0.75, seed=7)
    assert set(a.edges) == {(min(u, v), max(u, v)) for u, v in ws.edges()}
    assert len(a.edges) == 32 * 4 // 2
    m1, m2 = build_randwire(SMALL_RW, seed=1), build_randwire(SMALL_RW, seed=1)
    assert m1.SerializeToString() == m2.SerializeToString()


def test_randwire_settings() -> None:
    assert len(randwire_graphs(RANDWIRE_CIFAR10)) == 2
    assert len(randwire_graphs(RANDWIRE_CIFAR100)) == 3
    assert RANDWIRE_CIFAR100.classes == 100
    small = build_randwire_cifar10(channels=8, nodes=6, resolution=16)
    assert_valid(small, 10)
    with pytest.raises(ValueError, match="WS"):
        build_randwire(replace(SMALL_RW, nodes=3))


# -- SwiftNet --------------------------------------------------------------------


def test_swiftnet_small_is_valid_and_follows_its_cells() -> None:
    model = build_swiftnet_hpd(widths=(8, 8, 16, 16, 32), resolution=32, cells=4, classes=2)
    assert_valid(model, 2)
    for i, (wiring, _stride, _stage) in enumerate(LAYOUT[:4]):
        spec = CELLS[wiring]
        cell = ops(model, f"cell{i}/")
        multi = sum(len(inputs) > 1 for _, inputs in spec)
        assert cell["Concat"] == multi + 1  # node concats + the cell output
        expected_convs = sum(
            {"conv1x1": 1, "sep3x3": 2, "sep5x5": 2, "dw3x3": 1}.get(op, 0) for op, _ in spec
        )
        assert cell["Conv"] == expected_convs
    assert ops(model, "cell4/") == Counter()


# -- Counting --------------------------------------------------------------------


def test_count_weights_and_macs_by_hand() -> None:
    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [
        init("w", 3, 2, 3, 3),
        init("b", 3),
        init("dw", 3, 1, 3, 3),
        *(init(f"bn.{p}", 3) for p in ("scale", "bias", "mean")),
        numpy_helper.from_array(np.ones(3, np.float32), "bn.var"),
        init("fc", 5, 3),
        init("fcb", 5),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c", "dw"], ["d"], pads=[1, 1, 1, 1], group=3),
        helper.make_node(
            "BatchNormalization", ["d", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["n"]
        ),
        helper.make_node("GlobalAveragePool", ["n"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", f32, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", f32, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    weights, macs = count_weights_and_macs(model)
    # conv 3*2*9 + 3, depthwise 3*9, BN scale + bias 2*3, fc 5*3 + 5
    assert weights == 57 + 27 + 6 + 20
    # conv: 3*4*4 outputs x 2*9; depthwise: 48 outputs x 9; fc: 5 outputs x 3
    assert macs == 48 * 18 + 48 * 9 + 15


def test_graph_builder_rejects_duplicate_names() -> None:
    g = GraphBuilder("t", 0)
    x = g.input("x", 2, 4, 4)
    g.relu(x, name="r")
    with pytest.raises(ValueError, match="duplicate"):
        g.relu(x, name="r")


def test_calibrated_batchnorm_holds_its_inputs_statistics() -> None:
    """After calibration on seed s, every BN's mean and variance are its input's on seed s."""
    # 64x64 input: the last cells' maps are 2x2 (at 1x1 one value per channel
    # leaves the statistics to rounding noise, see batchnorm_variance).
    model = build_darts_imagenet(channels=8, layers=5, resolution=64, classes=7)
    passes = calibrate_batchnorm(model, seed=7)
    assert passes > 5  # BNs deep in the network need earlier ones calibrated first
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(
        helper.make_tensor_value_info(n.input[0], TensorProto.FLOAT, None) for n in bns
    )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(7).standard_normal(inp.shape).astype(np.float32)
    values = session.run([n.input[0] for n in bns], {inp.name: x})
    for node, value in zip(bns, values, strict=True):
        np.testing.assert_allclose(inits[node.input[3]], value.mean(axis=(0, 2, 3)), atol=1e-3)
        spread = np.maximum(value.var(axis=(0, 2, 3)), value.var() / 4)
        np.testing.assert_allclose(inits[node.input[4]], spread, rtol=1e-2)
    assert calibrate_batchnorm(model, seed=7) == 1  # a fixed point
    assert np.abs(run(model)).max() < 100  # activations stay O(1) on another input


def test_batchnorm_variance_is_floored_where_a_channel_has_one_value() -> None:
    x = np.array([[[[1.0, 3.0]], [[5.0, 5.0]]]])  # channel 0 varies, channel 1 is constant
    np.testing.assert_allclose(batchnorm_variance(x), [1.0, x.var() / 4])
    assert (batchnorm_variance(np.arange(4.0).reshape(1, 4, 1, 1)) > 0).all()


def test_calibration_without_batchnorm_is_a_no_op() -> None:
    g = GraphBuilder("t", 0)
    y = g.relu(g.input("x", 2, 4, 4), name="r")
    model = g.finish([y])
    assert calibrate_batchnorm(model, seed=0) == 1


# -- Registry and scheduling -------------------------------------------------------


def test_benchmarks_registry() -> None:
    assert set(BENCHMARKS) == {
        "darts_imagenet",
        "randwire_cifar10",
        "randwire_cifar100",
        "swiftnet_hpd",
        "nasnet_a_imagenet",
    }
    assert all(callable(b) for b in BENCHMARKS.values())


def test_saved_zoo_model_loads_and_schedules(tmp_path: Path) -> None:
    path = tmp_path / "swift.onnx"
    onnx.save(build_swiftnet_hpd(widths=(8, 8, 8, 8, 16), resolution=16, cells=2), str(path))
    model = serenity.load_model(path)
    assert model.problem.num_ops == len(model.proto.graph.node)
    options = ScheduleOptions(time_limit=10)
    file_order = schedule(model.problem, "file", options)
    best = schedule(model.problem, "auto", options)
    assert best.peak_bytes <= file_order.peak_bytes
    assert best.lower_bound_bytes <= best.peak_bytes
    out = serenity.save_model(model, best, tmp_path / "out.onnx", verify=True)
    assert out.verify is not None
