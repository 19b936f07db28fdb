""".tflite in and out: reorder in LiteRT bitwise, TFLM's offline plan embedded and run.

The models are built with the schema's object API (tests/tflite_models.py); no
TensorFlow. TFLM checks skip cleanly where tflite-micro is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

import tflite_models as tm  # noqa: E402
from helpers import assert_clean_error  # noqa: E402
from helpers import run_cli as run  # noqa: E402

import serenity  # noqa: E402
from serenity.errors import UnsupportedModelError  # noqa: E402
from serenity.io.tflite import (  # noqa: E402
    TfliteModel,
    offline_plan,
    run_litert,
    run_tflm,
    seeded_inputs,
)

HAS_TFLM = importlib.util.find_spec("tflite_micro") is not None
needs_tflm = pytest.mark.skipif(not HAS_TFLM, reason="tflite-micro is not installed")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def load(path: Path) -> TfliteModel:
    model = serenity.load_model(path)
    assert isinstance(model, TfliteModel)
    return model


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_reorder_roundtrip_with_the_plan_embedded(tmp_path: Path, int8: bool) -> None:
    src = write(tmp_path / "m.tflite", tm.design_example(int8))
    before = src.read_bytes()
    model = load(src)
    scale = 4 if int8 else 1
    assert model.format_name == "tflite" and model.problem.num_ops == 10
    assert serenity.schedule_model(model, "file").peak_bytes == 34_816 // scale
    result = serenity.schedule_model(model)
    assert result.peak_bytes == 13_312 // scale and result.optimal
    planned = serenity.plan_schedule(model, result)
    assert planned.plan.alignment == 16
    out = tmp_path / "out.tflite"
    saved = serenity.save_model(model, result, out, verify=True, plan=planned)
    assert src.read_bytes() == before
    assert saved.verify is not None and saved.verify.runtime == "LiteRT"

    again = load(out)
    assert list(again.problem.op_names) == list(result.order)
    assert serenity.schedule_model(again, "file").peak_bytes == result.peak_bytes
    old, new = model.fbmodel.subgraphs[0], again.fbmodel.subgraphs[0]
    assert [(t.name, t.shape, t.type, t.buffer) for t in old.tensors] == [
        (t.name, t.shape, t.type, t.buffer) for t in new.tensors
    ]
    for a, b in zip(model.fbmodel.buffers, again.fbmodel.buffers, strict=False):
        assert bytes(a.data if a.data is not None else b"") == bytes(
            b.data if b.data is not None else b""
        )
    embedded = offline_plan(out.read_bytes())
    assert offline_plan(before) is None and embedded is not None
    assert len(embedded) == len(old.tensors)
    rows = serenity.plan_dict(model, planned)["tensors"]
    by_name = {r["name"]: r["offset"] for r in rows}
    for t, tensor in enumerate(new.tensors):
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
        want = by_name[name] if t in model.tensor_index else -1
        assert embedded[t] == want
    assert model.offline_arena(embedded) == planned.plan.arena_bytes
    if HAS_TFLM:
        (note,) = saved.verify.notes
        assert f"head equal to the embedded plan's {planned.plan.arena_bytes:,} B" in note
        assert f"original: head {34_816 // scale:,} B" in note


@needs_tflm
def test_tflm_runs_with_our_plan_and_its_arena_is_ours(tmp_path: Path) -> None:
    model = load(write(tmp_path / "m.tflite", tm.design_example(True)))
    result = serenity.schedule_model(model)
    planned = serenity.plan_schedule(model, result)
    data = model.reordered(result.op_order, serenity.api.tensor_offsets(planned))
    inputs = seeded_inputs(data, 3)
    want, own = run_tflm(model.data, inputs, model.arena_hint())
    got, ours = run_tflm(data, inputs, model.arena_hint())
    assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
    assert ours["head"] == planned.plan.arena_bytes < own["head"]
    assert ours["tail"] == own["tail"]
    # The smallest arena that works is the total TFLM printed.
    run_tflm(data, inputs, ours["total"])


@needs_tflm
def test_an_overlapping_plan_is_refused_and_tflm_would_run_it_wrong(tmp_path: Path) -> None:
    model = load(write(tmp_path / "m.tflite", tm.design_example()))
    result = serenity.schedule_model(model)
    zeros = dict.fromkeys(range(model.problem.num_tensors), 0)
    with pytest.raises(ValueError, match="overlaps tensors"):
        model.reordered(result.op_order, zeros)
    with pytest.raises(ValueError, match="multiple of 16"):
        model.reordered(result.op_order, dict.fromkeys(zeros, 8))
    # Bypassing the check, TFLM silently computes garbage: verify catches it.
    model._check_offsets = lambda order, offsets: None  # type: ignore[method-assign]
    bad = model.reordered(result.op_order, zeros)
    with pytest.raises(serenity.VerificationError, match="TFLM: output"):
        model.verify(bad)


def test_a_wrong_order_fails_litert_verification(tmp_path: Path) -> None:
    model = load(write(tmp_path / "m.tflite", tm.design_example()))
    m = model.fbmodel
    m.subgraphs[0].operators = list(reversed(m.subgraphs[0].operators))
    with pytest.raises(serenity.VerificationError, match="LiteRT: output"):
        model.verify(tm.to_bytes(m))


def test_an_existing_plan_is_replaced_or_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write(tmp_path / "m.tflite", tm.design_example())
    first, second, plain = tmp_path / "a.tflite", tmp_path / "b.tflite", tmp_path / "c.tflite"
    report = tmp_path / "r.json"
    code, stdout, err = run(capsys, "schedule", src, "-o", first, "--verify", "--json", report)
    assert code == 0, err
    assert "bitwise equal in LiteRT" in stdout and "arena plan embedded" in stdout
    data = json.loads(report.read_text())
    assert data["format"] == "tflite" and data["arena_bytes"] == 13_312
    code, _, err = run(capsys, "schedule", first, "-o", second, "--method", "file")
    assert code == 0, err
    names = [m.name for m in load(second).fbmodel.metadata]
    assert names.count(b"OfflineMemoryAllocation") == 1
    assert offline_plan(second.read_bytes()) is not None
    code, _, err = run(capsys, "schedule", first, "-o", plain, "--no-offline-plan")
    assert code == 0, err
    assert offline_plan(plain.read_bytes()) is None
    code, stdout, err = run(capsys, "plan", src)
    assert code == 0, err
    assert "alignment 16" in stdout


def test_weight_only_chains_are_weights_placed_before_their_consumer(tmp_path: Path) -> None:
    model = load(write(tmp_path / "m.tflite", tm.to_bytes(tm.with_fp16_weights())))
    assert model.num_nodes == 11 and model.problem.num_ops == 10
    assert "DEQUANTIZE" not in model.problem.op_types
    result = serenity.schedule_model(model)
    assert result.peak_bytes == 13_312
    planned = serenity.plan_schedule(model, result)
    out = tmp_path / "out.tflite"
    saved = serenity.save_model(model, result, out, verify=True, plan=planned)
    ops = load(out).fbmodel.subgraphs[0].operators
    codes = [model.fbmodel.operatorCodes[o.opcodeIndex].builtinCode for o in ops]
    assert codes.index(tm.fb.BuiltinOperator.DEQUANTIZE) == len(ops) - 2  # just before the head
    if HAS_TFLM:
        assert saved.verify is not None
        assert saved.verify.notes[0].startswith("TFLM cannot run this model")


def test_dynamic_batch_is_checked_against_the_runtime(tmp_path: Path) -> None:
    m = tm.design_model()
    for t in m.subgraphs[0].tensors:
        if t.buffer == 0:
            t.shapeSignature = [-1, *t.shape[1:]]
    ok = load(write(tmp_path / "ok.tflite", tm.to_bytes(m)))
    assert serenity.schedule_model(ok, "file").peak_bytes == 34_816
    cat = next(t for t in m.subgraphs[0].tensors if t.name in ("cat", b"cat"))
    cat.shape = [1, 8, 8, 12]  # stored wrong, as converters do behind SPACE_TO_BATCH_ND
    with pytest.raises(UnsupportedModelError, match="'cat' is stored with shape"):
        serenity.load_model(write(tmp_path / "bad.tflite", tm.to_bytes(m)))
    with pytest.raises(UnsupportedModelError, match="keeps the stored shapes"):
        serenity.load_model(tmp_path / "ok.tflite", {"x": (2, 8, 8, 8)})


def _version_2() -> bytes:
    m = tm.design_model()
    m.version = 2
    return tm.to_bytes(m)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tm.design_example()[:300], "truncated or corrupt"),
        (lambda: b"this is not a flatbuffer at all", "not a .tflite flatbuffer"),
        (_version_2, "schema version 2"),
        (lambda: tm.to_bytes(tm.with_subgraph_cycle()), "cycle: 0 -> 0"),
    ],
    ids=["truncated", "not-a-flatbuffer", "schema-version", "subgraph-cycle"],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    src = write(tmp_path / "bad.tflite", make())  # type: ignore[operator]
    out = tmp_path / "out.tflite"
    code, _, err = run(capsys, "schedule", src, "-o", out, "--verify")
    assert message in assert_clean_error(code, err, out)
    code, _, err = run(capsys, "inspect", src)
    assert message in assert_clean_error(code, err)


def test_seeded_integer_inputs_stay_in_range(tmp_path: Path) -> None:
    (x,) = seeded_inputs(tm.design_example(True), 0)
    assert x.dtype == np.int8 and x.min() < -100 and x.max() > 100


def test_a_formats_plan_alignment_is_honoured_generically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api.plan_schedule takes the alignment from the model (no format test in api/cli)."""
    import toy_format

    from serenity.io import format as formats

    monkeypatch.setattr(formats, "FORMAT_MODULES", (*formats.FORMAT_MODULES, "toy_format"))
    monkeypatch.setattr(toy_format.ToyModel, "plan_alignment", 64, raising=False)
    data = {
        "toy-graph": 1,
        "tensors": {"x": 10, "a": 20, "y": 30},
        "inputs": ["x"],
        "outputs": ["y"],
        "ops": [
            {"name": "f", "inputs": ["x"], "outputs": ["a"]},
            {"name": "g", "inputs": ["a"], "outputs": ["y"]},
        ],
    }
    src = tmp_path / "m.toy"
    src.write_text(json.dumps(data))
    model = serenity.load_model(src)
    planned = serenity.plan_schedule(model, serenity.schedule_model(model))
    assert planned.plan.alignment == 64 and planned.plan.arena_bytes == 128
    assert serenity.plan_schedule(model, planned.schedule, alignment=1).plan.alignment == 1


def _assert_in_workspaces(model: TfliteModel, offsets: dict[int, int], embedded: list[int]) -> None:
    """The offline plan covers every subgraph: each subgraph main runs has its
    tensors inside the workspace of the operator that runs it, at its own plan's offsets."""
    subgraphs = model.fbmodel.subgraphs
    assert len(embedded) == sum(len(sg.tensors) for sg in subgraphs)
    bases = np.cumsum([0, *(len(sg.tensors) for sg in subgraphs)])
    p = model.problem
    for ws, group in model.subgraphs[0].workspaces.items():
        for c in group:
            part = model.subgraphs[c]
            for t, k in enumerate(part.tensor_index):
                at = embedded[bases[c] + k]
                assert at - offsets[ws] == part.offsets[t]
                end = at + part.problem.tensor_sizes[t]
                assert offsets[ws] <= at and end <= offsets[ws] + p.tensor_sizes[ws]


def _branch_inputs(data: bytes) -> list[list[np.ndarray]]:
    """Seeded inputs of an IF model, once with each value of its condition."""
    cond, x = seeded_inputs(data, 5)
    return [[np.array([flag]), x] for flag in (True, False)]


def test_if_branches_are_scheduled_and_reordered(tmp_path: Path) -> None:
    from serenity.memory import peak_bytes

    model = load(write(tmp_path / "if.tflite", tm.to_bytes(tm.if_model())))
    main, then, other = model.subgraphs
    assert main.workspaces == {7: (1, 2)}  # the IF's workspace holds either branch
    # The branches are their own problems, solved to optimality at load.
    assert peak_bytes(then.problem, range(then.problem.num_ops)) == 34_816
    assert then.peak == then.arena == 13_312 and then.optimal
    assert peak_bytes(other.problem, range(other.problem.num_ops)) == 18_432
    assert other.peak == other.arena == 11_264 and other.optimal
    assert then.order != tuple(range(then.problem.num_ops))
    # The workspace is an output of the IF nothing reads, sized as the larger branch.
    p = model.problem
    (ws,) = (t for t in range(p.num_tensors) if "workspace" in p.tensor_names[t])
    v = p.op_names.index("if")
    assert p.tensor_sizes[ws] == 13_312 and ws in p.op_outputs[v] and not p.consumers[ws]
    # File order runs the IF while pa (8 KiB) is live; the optimum runs it first.
    assert serenity.schedule_model(model, "file").peak_bytes == 1 + 2048 + 8192 + 1024 + 13_312
    result = serenity.schedule_model(model)
    assert result.optimal and result.peak_bytes == 1 + 2048 + 1024 + 13_312
    assert result.order[0] == "if"

    planned = serenity.plan_schedule(model, result)
    offsets = serenity.api.tensor_offsets(planned)
    out = tmp_path / "out.tflite"
    serenity.save_model(model, result, out, verify=True, plan=planned)
    data = out.read_bytes()
    for inputs in _branch_inputs(data):  # both branches, bitwise in LiteRT
        want, got = run_litert(model.data, inputs), run_litert(data, inputs)
        assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
    again = load(out)
    for part in again.subgraphs[1:]:  # every branch now in its optimal order in the file
        assert peak_bytes(part.problem, range(part.problem.num_ops)) == part.peak
        assert part.order == tuple(range(part.problem.num_ops))
    assert list(again.problem.op_names) == list(result.order)

    embedded = offline_plan(data)
    assert embedded is not None
    _assert_in_workspaces(model, offsets, embedded)
    assert model.offline_arena(embedded) == planned.plan.arena_bytes


@needs_tflm
def test_tflm_runs_both_if_branches_with_the_plan(tmp_path: Path) -> None:
    model = load(write(tmp_path / "if.tflite", tm.to_bytes(tm.if_model())))
    result = serenity.schedule_model(model)
    planned = serenity.plan_schedule(model, result)
    data = model.reordered(result.op_order, serenity.api.tensor_offsets(planned))
    for inputs in _branch_inputs(data):
        want, own = run_tflm(model.data, inputs, model.arena_hint())
        got, ours = run_tflm(data, inputs, model.arena_hint())
        assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
        assert ours["head"] == planned.plan.arena_bytes < own["head"]


def test_a_subgraph_run_from_two_operators_is_left_to_tflm(tmp_path: Path) -> None:
    m = tm.if_model()
    main = m.subgraphs[0]
    first_if = next(
        op for op in main.operators if op.builtinOptionsType == tm.fb.BuiltinOptions.IfOptions
    )
    y2 = tm.fb.TensorT()
    y2.name, y2.shape, y2.type, y2.buffer = "if2", [1, 8, 8, 4], tm.FLOAT32, 0
    main.tensors.append(y2)
    second = copy.copy(first_if)
    second.outputs = [len(main.tensors) - 1]
    main.operators.append(second)
    main.outputs = [*main.outputs, len(main.tensors) - 1]
    model = load(write(tmp_path / "if2.tflite", tm.to_bytes(m)))
    assert model.call_counts() == [0, 2, 2]
    assert sum("workspace" in n for n in model.problem.tensor_names) == 2
    result = serenity.schedule_model(model)
    planned = serenity.plan_schedule(model, result)
    data = model.reordered(result.op_order, serenity.api.tensor_offsets(planned))
    embedded = offline_plan(data)
    assert embedded is not None
    base = len(main.tensors)
    assert set(embedded[base:]) == {-1}  # TFLM plans the shared branches itself
    assert any(x >= 0 for x in embedded[:base])
    for inputs in _branch_inputs(data):
        want, got = run_litert(model.data, inputs), run_litert(data, inputs)
        assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
        if HAS_TFLM:
            want, _ = run_tflm(model.data, inputs, model.arena_hint())
            got, _ = run_tflm(data, inputs, model.arena_hint())
            assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))


def test_while_condition_and_body_get_workspaces_side_by_side(tmp_path: Path) -> None:
    model = load(write(tmp_path / "while.tflite", tm.to_bytes(tm.while_model())))
    main, cond, body = model.subgraphs
    p = model.problem
    assert sorted(main.workspaces.values()) == [(1,), (2,)]  # both live while WHILE runs
    assert sorted(p.tensor_sizes[w] for w in main.workspaces) == [cond.arena, body.arena]
    assert body.optimal and body.order != tuple(range(body.problem.num_ops))
    result = serenity.schedule_model(model)
    assert result.peak_bytes == 4 + 2048 + 4 + 2048 + cond.arena + body.arena
    planned = serenity.plan_schedule(model, result)
    offsets = serenity.api.tensor_offsets(planned)
    data = model.reordered(result.op_order, offsets)
    embedded = offline_plan(data)
    assert embedded is not None
    _assert_in_workspaces(model, offsets, embedded)
    x = seeded_inputs(data, 1)[1]
    for start in (0, 2):  # three iterations, then one
        inputs = [np.array([start], np.int32), x]
        want, got = run_litert(model.data, inputs), run_litert(data, inputs)
        assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
        if HAS_TFLM:
            want, _ = run_tflm(model.data, inputs, model.arena_hint())
            got, ours = run_tflm(data, inputs, model.arena_hint())
            assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(want, got, strict=True))
            assert ours["head"] == planned.plan.arena_bytes


def test_a_subgraph_with_a_resource_variable_keeps_its_file_order(tmp_path: Path) -> None:
    m = tm.if_model()
    other = m.subgraphs[2]
    handle = tm.fb.TensorT()
    handle.name, handle.shape, handle.type = "else/handle", [], tm.fb.TensorType.RESOURCE
    other.tensors.append(handle)
    code = tm.fb.OperatorCodeT()
    code.builtinCode = tm.fb.BuiltinOperator.VAR_HANDLE
    code.deprecatedBuiltinCode = 127  # the placeholder of codes above 127
    code.version = 1
    m.operatorCodes.append(code)
    op = tm.fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, [], [len(other.tensors) - 1]
    other.operators.append(op)
    model = load(write(tmp_path / "var.tflite", tm.to_bytes(m)))
    then, kept = model.subgraphs[1:]
    assert then.order != tuple(range(then.problem.num_ops))
    assert kept.order == tuple(range(kept.problem.num_ops)) and kept.peak == 18_432
