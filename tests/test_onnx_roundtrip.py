"""ONNX in, schedule, ONNX out: the written model is the same model, reordered.

Every test builds its models in ``tmp_path`` (see ``onnx_models.py``); nothing
here reads ../shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_models
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import serenity
from serenity.io.onnx_import import node_inputs
from serenity.schedule import ScheduleOptions, result_from_order

KIB = 1024


# --------------------------------------------------------------------------- helpers


def save(model: onnx.ModelProto, path: Path, **kwargs: object) -> Path:
    onnx.save_model(model, str(path), **kwargs)  # type: ignore[arg-type]
    return path


def random_feeds(
    proto: onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 42
) -> dict[str, np.ndarray]:
    """Seeded float32 inputs for every non-initializer graph input."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        if shapes and vi.name in shapes:
            shape = tuple(shapes[vi.name])
        else:
            shape = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def run_ort(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model file (external data resolved beside it) on one thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def assert_bitwise_equal(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"output {name} differs"


def written_op_order(model: serenity.io.OnnxModel, written: onnx.ModelProto) -> list[int]:
    """Op ids (of ``model.problem``) of the scheduled nodes, in ``written``'s order.

    Nodes are matched by their serialized bytes, so unnamed nodes work too.
    """
    op_of_node = {i: v for v, i in enumerate(model.node_index)}
    index_of = {n.SerializeToString(): i for i, n in enumerate(model.proto.graph.node)}
    assert len(index_of) == len(model.proto.graph.node)  # nodes are distinct
    order = []
    for node in written.graph.node:
        i = index_of[node.SerializeToString()]  # KeyError: a node was changed
        if i in op_of_node:
            order.append(op_of_node[i])
    return order


def assert_topologically_sorted(graph: onnx.GraphProto) -> None:
    """Every tensor a node reads (subgraph reads included) is defined earlier."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for x in node_inputs(node):
            assert x in defined, f"node {node.name or node.op_type} reads {x} before it is defined"
        defined.update(o for o in node.output if o)


def assert_same_model_except_order(original: onnx.ModelProto, written: onnx.ModelProto) -> None:
    """Same nodes (as a multiset), initializers, inputs, outputs and metadata."""
    a, b = original.graph, written.graph
    assert sorted(n.SerializeToString() for n in a.node) == sorted(
        n.SerializeToString() for n in b.node
    )
    # Initializers may move between inline and external storage.
    assert [(t.name, t.data_type, list(t.dims)) for t in a.initializer] == [
        (t.name, t.data_type, list(t.dims)) for t in b.initializer
    ]
    for field in ("input", "output", "value_info", "sparse_initializer"):
        assert [x.SerializeToString() for x in getattr(a, field)] == [
            x.SerializeToString() for x in getattr(b, field)
        ], field
    assert written.opset_import == original.opset_import
    assert written.ir_version == original.ir_version
    assert written.metadata_props == original.metadata_props


def roundtrip(
    src: Path,
    out: Path,
    method: str | Sequence[str],
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> tuple[serenity.io.OnnxModel, serenity.ScheduleResult, serenity.SaveOutcome]:
    """Load, schedule, save with verification, and check the written model.

    ``method`` is a scheduling method, or an explicit order of op names.
    """
    before = src.read_bytes()
    model = serenity.load_model(src, shapes)
    if isinstance(method, str):
        result = serenity.schedule_model(model, method)
    else:
        ids = model.problem.op_index()
        order = [ids[name] for name in method]
        result = result_from_order(model.problem, order, "given", ScheduleOptions(), started=0.0)
    assert model.problem.is_topological(result.op_order)
    saved = serenity.save_model(model, result, out, verify=True)
    assert saved.paths[0] == out
    assert saved.verify is not None and saved.verify.exact
    assert all(p.exists() for p in saved.paths)

    onnx.checker.check_model(str(out), full_check=True)
    written = onnx.load(str(out), load_external_data=False)
    assert_topologically_sorted(written.graph)
    assert_same_model_except_order(model.proto, written)
    order = written_op_order(model, written)
    assert order == list(result.op_order)
    assert [model.problem.op_names[v] for v in order] == list(result.order)

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    for t in onnx.load(str(out)).graph.initializer:  # loads <out>.data when there is one
        assert numpy_helper.to_array(t).tobytes() == weights[t.name].tobytes(), t.name

    reloaded = serenity.load_model(out, shapes)
    assert reloaded.problem.num_ops == model.problem.num_ops
    assert serenity.schedule_model(reloaded, "file").peak_bytes == result.peak_bytes

    feeds = random_feeds(model.proto, shapes)
    assert_bitwise_equal(run_ort(src, feeds), run_ort(out, feeds))
    assert src.read_bytes() == before, "the input model was modified"
    return model, result, saved


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("method", list(serenity.ENGINES))
@pytest.mark.parametrize("name", list(onnx_models.ROUNDTRIP_MODELS))
def test_roundtrip_every_method(tmp_path: Path, name: str, method: str) -> None:
    src = save(onnx_models.ROUNDTRIP_MODELS[name](), tmp_path / f"{name}.onnx")
    roundtrip(src, tmp_path / f"{name}.{method}.onnx", method)


def test_multi_branch_cell_best_heuristic_beats_file_order(tmp_path: Path) -> None:
    for name in ("design_example", "residual_cell"):
        src = save(onnx_models.ROUNDTRIP_MODELS[name](), tmp_path / f"{name}.onnx")
        model, result, _ = roundtrip(src, tmp_path / f"{name}.opt.onnx", "best-heuristic")
        baseline = serenity.schedule_model(model, "file")
        assert result.peak_bytes < baseline.peak_bytes
        assert list(result.op_order) != list(range(model.problem.num_ops))
        assert result.lower_bound_bytes <= result.peak_bytes


def test_weight_nodes_are_unscheduled_and_placed_before_consumers(tmp_path: Path) -> None:
    src = save(onnx_models.weight_arithmetic(), tmp_path / "w.onnx")
    model = serenity.load_model(src)
    unscheduled = {"scale", "shift", "bias", "c1.wmul", "unused_weight"}
    assert set(model.problem.op_names) == {"c0", "c2", "add_bias", "c1", "cat", "y"}
    names = [n.name for n in model.proto.graph.node]
    assert {names[i] for i in range(len(names)) if i not in model.node_index} == unscheduled
    # Weights computed from weights are not activations.
    assert not {"scale", "shift", "bias", "c1.w", "unused_weight"} & set(model.problem.tensor_names)
    # c1 first: its weight node (after the c0 branch in the file) must move up.
    out = tmp_path / "w.c1first.onnx"
    roundtrip(src, out, ["c1", "c0", "c2", "add_bias", "cat", "y"])
    written = [n.name for n in onnx.load(str(out)).graph.node]
    assert written[:3] == ["scale", "c1.wmul", "c1"]
    assert written.index("shift") < written.index("bias") < written.index("add_bias")
    assert written[-1] == "unused_weight"  # consumed by nobody: last


def test_dead_outputs_in_any_position(tmp_path: Path) -> None:
    """The dead Sigmoid branch last, and the pools swapped: still the same model."""
    src = save(onnx_models.pooling_dead_outputs(), tmp_path / "pool.onnx")
    order = ["Conv_0", "Relu_1", "AveragePool_3", "MaxPool_2", "Add_5", "Conv_6", "Sigmoid_4"]
    _, result, _ = roundtrip(src, tmp_path / "pool.given.onnx", order)
    assert list(result.order) == order


# --------------------------------------------------------------------------- memory model


def test_design_example_peaks(tmp_path: Path) -> None:
    src = save(onnx_models.design_example(), tmp_path / "design.onnx")
    model = serenity.load_model(src)
    p = model.problem
    sizes = dict(zip(p.tensor_names, p.tensor_sizes, strict=True))
    assert sizes["x"] == 2 * KIB
    assert all(sizes[f"a{i}"] == 8 * KIB and sizes[f"b{i}"] == 1 * KIB for i in range(4))
    assert sizes["cat"] == 4 * KIB and sizes["y"] == 1 * KIB

    file_order = serenity.schedule_model(model, "file")
    assert file_order.peak_bytes == 34_816
    timeline = serenity.simulate(p, file_order.op_order)
    assert timeline.initial_bytes == 2 * KIB
    assert [s // KIB for s in timeline.step_bytes] == [10, 18, 26, 34, 33, 26, 19, 12, 8, 5]

    ids = p.op_index()
    interleaved = [ids[n] for i in range(4) for n in (f"a{i}", f"b{i}")] + [ids["cat"], ids["y"]]
    assert serenity.simulate(p, interleaved).peak_bytes == 13_312
    best = serenity.schedule_model(model, "best-heuristic")
    assert best.peak_bytes == 13_312
    assert best.lower_bound_bytes <= 13_312


def test_dead_outputs_and_passthrough_output_peak(tmp_path: Path) -> None:
    """Hand-computed file-order peak of ``pooling_dead_outputs``.

    x 1 KiB (a graph output: live throughout), c0 and r0 2 KiB, MaxPool's
    int64 Indices 1 KiB (dead: freed right after MaxPool), mp/ap/s 512 B, the
    dead Sigmoid output 2 KiB, y 256 B. MaxPool's step holds x + c0 + r0 + mp +
    indices = 6,656 bytes, the file-order peak.
    """
    src = save(onnx_models.pooling_dead_outputs(), tmp_path / "pool.onnx")
    model = serenity.load_model(src)
    p = model.problem
    t = {name: i for i, name in enumerate(p.tensor_names)}
    assert p.tensor_sizes[t["mp_idx"]] == 1024  # int64
    assert p.consumers[t["mp_idx"]] == () and p.consumers[t["dead"]] == ()
    assert t["x"] in p.graph_inputs and t["x"] in p.graph_outputs
    timeline = serenity.simulate(p, serenity.schedule_model(model, "file").op_order)
    assert timeline.peak_bytes == 6_656
    assert timeline.step_bytes == (3072, 5120, 6656, 6144, 6144, 2560, 1792)
    # x, being an output, is still live after its last consumer.
    assert t["x"] in timeline.live_at_peak


# --------------------------------------------------------------------------- symbolic dims


def test_symbolic_input_needs_input_shape(tmp_path: Path) -> None:
    src = save(onnx_models.symbolic_batch(), tmp_path / "sym.onnx")
    with pytest.raises(serenity.UnknownShapeError) as info:
        serenity.load_model(src)
    message = str(info.value)
    for name in ("'x'", "'c0'", "'r0'", "'y'"):
        assert name in message
    assert "--input-shape" in message

    shapes = {"x": [1, 3, 8, 8]}
    model, result, _ = roundtrip(src, tmp_path / "sym.opt.onnx", "best-heuristic", shapes)
    assert model.problem.tensor_sizes[model.problem.tensor_names.index("x")] == 3 * 64 * 4
    written = onnx.load(str(tmp_path / "sym.opt.onnx"))
    dim0 = written.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "N" and not dim0.HasField("dim_value")
    # Still a dynamic-batch model: both run, identically, with batch 3.
    feeds = random_feeds(written, {"x": [3, 3, 8, 8]})
    assert_bitwise_equal(run_ort(src, feeds), run_ort(tmp_path / "sym.opt.onnx", feeds))


def test_input_shape_must_name_a_graph_input(tmp_path: Path) -> None:
    src = save(onnx_models.symbolic_batch(), tmp_path / "sym.onnx")
    with pytest.raises(serenity.UsageError, match="'c0'.*not a graph input"):
        serenity.load_model(src, {"c0": [1, 4, 8, 8]})


# --------------------------------------------------------------------------- control flow


def test_if_reads_outer_scope_activation(tmp_path: Path) -> None:
    src = save(onnx_models.if_outer_scope(), tmp_path / "if.onnx")
    model = serenity.load_model(src)
    p = model.problem
    node = model.proto.graph.node[model.node_index[p.op_names.index("if")]]
    assert "h" not in node.input  # only its branches read h
    if_op = p.op_names.index("if")
    assert [p.tensor_names[t] for t in p.op_inputs[if_op]] == ["h"]
    assert p.preds[if_op] == (p.op_names.index("h"),)
    for method in serenity.ENGINES:
        _, result, _ = roundtrip(src, tmp_path / f"if.{method}.onnx", method)
        assert result.order.index("h") < result.order.index("if")


# --------------------------------------------------------------------------- external data


def test_external_weights_are_carried_along(tmp_path: Path) -> None:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    src = save(
        onnx_models.residual_cell(),
        src_dir / "cell.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="cell.onnx.data",
        size_threshold=0,
    )
    data_before = (src_dir / "cell.onnx.data").read_bytes()
    model = serenity.load_model(src)
    assert model.external_weights and not model.missing_weights

    out = out_dir / "cell.opt.onnx"
    _, _, saved = roundtrip(src, out, "best-heuristic")  # runs both in ORT from disk
    data = out_dir / "cell.opt.onnx.data"
    assert saved.paths == (out, data)
    assert data.stat().st_size > 0
    assert saved.verify is not None and saved.verify.filled_weights == 0
    assert (src_dir / "cell.onnx.data").read_bytes() == data_before
    written = onnx.load(str(out), load_external_data=False)
    locations = {
        e.value
        for t in written.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    assert locations == {data.name}


def test_external_weights_small_enough_to_inline(tmp_path: Path) -> None:
    """All weights under the 1 KiB threshold: the output keeps them inline and
    does not claim a data file it never wrote."""
    src = save(
        onnx_models.design_example(),
        tmp_path / "d.onnx",
        save_as_external_data=True,
        location="d.onnx.data",
        size_threshold=0,
    )
    out = tmp_path / "d.opt.onnx"
    _, _, saved = roundtrip(src, out, "best-heuristic")
    assert saved.paths == (out,)
    assert not (tmp_path / "d.opt.onnx.data").exists()


def test_missing_external_weights(tmp_path: Path) -> None:
    src = save(
        onnx_models.residual_cell(),
        tmp_path / "cell.onnx",
        save_as_external_data=True,
        location="cell.onnx.data",
        size_threshold=0,
    )
    reference = serenity.load_model(src)
    (tmp_path / "cell.onnx.data").unlink()
    before = src.read_bytes()

    model = serenity.load_model(src)  # analysis needs no weights
    assert model.missing_weights and set(model.missing_weights) == set(model.external_weights)
    assert model.problem.tensor_sizes == reference.problem.tensor_sizes
    result = serenity.schedule_model(model)
    assert result.peak_bytes == serenity.schedule_model(reference).peak_bytes

    out = tmp_path / "cell.opt.onnx"
    saved = serenity.save_model(model, result, out, verify=True)
    assert saved.verify is not None
    assert saved.verify.filled_weights == len(model.missing_weights) > 0
    assert saved.paths == (out,)
    assert src.read_bytes() == before
    written = onnx.load(str(out), load_external_data=False)
    assert written_op_order(model, written) == list(result.op_order)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in written.graph.initializer)
    # The seeded random weights are the same every run.
    again = serenity.save_model(model, result, tmp_path / "again.onnx", verify=True)
    assert again.verify is not None and again.verify.filled_weights == saved.verify.filled_weights


# --------------------------------------------------------------------------- refusals


def test_save_refuses_to_overwrite_input(tmp_path: Path) -> None:
    src = save(onnx_models.design_example(), tmp_path / "m.onnx")
    before = src.read_bytes()
    model = serenity.load_model(src)
    result = serenity.schedule_model(model)
    (tmp_path / "sub").mkdir()
    for out in (src, tmp_path / "sub" / ".." / "m.onnx"):
        with pytest.raises(serenity.UsageError, match="overwrite"):
            serenity.save_model(model, result, out, verify=True)
    assert src.read_bytes() == before


def test_reordered_proto_rejects_non_topological_order(tmp_path: Path) -> None:
    from serenity.io.onnx_export import reordered_proto

    src = save(onnx_models.design_example(), tmp_path / "m.onnx")
    model = serenity.load_model(src)
    with pytest.raises(ValueError, match="topological"):
        reordered_proto(model, list(range(model.problem.num_ops))[::-1])
