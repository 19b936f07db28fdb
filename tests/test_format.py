"""The format interface: choice by content, and a second format through api and cli.

``toy_format`` (a JSON graph that, unlike ONNX, holds an arena plan) is one
module registered with one line; nothing in ``api`` or ``cli`` knows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx_models
import pytest
from helpers import assert_clean_error, cell_with_external_weights
from helpers import run_cli as run

import serenity
from serenity.errors import ModelError, UsageError
from serenity.io import format as formats
from serenity.io.format import check_output_path, load, parse_input_shapes
from serenity.plan import check_plan


@pytest.fixture
def with_toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the toy format: the one line a new format needs."""
    monkeypatch.setattr(formats, "FORMAT_MODULES", (*formats.FORMAT_MODULES, "toy_format"))


def design_toy(path: Path) -> Path:
    """docs/memory-model.md's worked example as a toy graph: file order 34,816 B, optimum 13,312 B."""
    tensors = {"x": 2048, "c": 4096, "y": 1024}
    ops = [{"name": f"a{i}", "inputs": ["x"], "outputs": [f"a{i}"]} for i in range(4)]
    ops += [{"name": f"b{i}", "inputs": [f"a{i}"], "outputs": [f"b{i}"]} for i in range(4)]
    ops += [
        {"name": "cat", "inputs": [f"b{i}" for i in range(4)], "outputs": ["c"]},
        {"name": "head", "inputs": ["c"], "outputs": ["y"]},
    ]
    for i in range(4):
        tensors[f"a{i}"], tensors[f"b{i}"] = 8192, 1024
    data = {"toy-graph": 1, "tensors": tensors, "inputs": ["x"], "outputs": ["y"], "ops": ops}
    path.write_text(json.dumps(data))
    return path


def test_onnx_is_chosen_by_content_not_name(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    onnx.save(onnx_models.design_example(), str(src))
    model = load(src)
    assert model.format_name == "onnx"
    assert model.problem.num_ops == onnx_models.design_example().graph.node.__len__()


def test_unknown_content_and_suffix_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    with pytest.raises(ModelError, match="not a model format serenity reads"):
        load(src)


def test_a_registered_format_works_through_the_api(with_toy: None, tmp_path: Path) -> None:
    src = design_toy(tmp_path / "design.toy")
    model = serenity.load_model(src)
    assert model.format_name == "toy" and model.holds_plan
    assert serenity.schedule_model(model, "file").peak_bytes == 34_816
    result = serenity.schedule_model(model)
    assert result.peak_bytes == 13_312 and result.optimal
    planned = serenity.plan_schedule(model, result)
    check_plan(planned.buffers, planned.plan)
    saved = serenity.save_model(model, result, tmp_path / "out.toy", verify=True, plan=planned)
    assert saved.verify is not None and saved.verify.runtime == "toy"
    written = json.loads((tmp_path / "out.toy").read_text())
    assert [op["name"] for op in written["ops"]] == list(result.order)
    assert written["arena"] == {
        r["name"]: r["offset"] for r in serenity.plan_dict(model, planned)["tensors"]
    }
    again = serenity.load_model(tmp_path / "out.toy")
    assert serenity.schedule_model(again, "file").peak_bytes == 13_312


def test_a_registered_format_works_through_the_cli(
    with_toy: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = design_toy(tmp_path / "design.toy")
    before = src.read_bytes()
    out, report = tmp_path / "out.toy", tmp_path / "report.json"
    code, stdout, err = run(capsys, "schedule", src, "-o", out, "--verify", "--json", report)
    assert code == 0, err
    assert "verified: 1 output(s) bitwise equal in toy" in stdout
    assert "arena plan embedded" in stdout
    data = json.loads(report.read_text())
    assert data["format"] == "toy" and data["peak_bytes"] == 13_312
    assert "arena" in json.loads(out.read_text())
    assert src.read_bytes() == before
    code, _, err = run(capsys, "schedule", src, "-o", tmp_path / "plain.toy", "--no-offline-plan")
    assert code == 0, err
    assert "arena" not in json.loads((tmp_path / "plain.toy").read_text())
    code, _, err = run(capsys, "schedule", src, "-o", tmp_path / "r.toy", "--rewrite")
    assert "ONNX" in assert_clean_error(code, err, tmp_path / "r.toy")


def test_a_wrong_order_fails_the_format_runtime(with_toy: None, tmp_path: Path) -> None:
    model = serenity.load_model(design_toy(tmp_path / "design.toy"))
    bad = dict(model.data, ops=list(reversed(model.data["ops"])))
    with pytest.raises(serenity.VerificationError, match="runs before its inputs"):
        model.verify(bad)


def test_side_outputs_never_overwrite_external_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json`` / ``--plan`` over the model's external-data file once destroyed the weights."""
    src = cell_with_external_weights(tmp_path)
    weights = tmp_path / "cell.onnx.data"
    data = weights.read_bytes()
    out = tmp_path / "out.onnx"
    for command in (
        ["inspect", src, "--json", weights],
        ["schedule", src, "-o", out, "--json", weights],
        ["schedule", src, "-o", out, "--plan", weights],
        ["plan", src, "--json", weights],
    ):
        code, _, err = run(capsys, *command)
        assert "overwrite" in assert_clean_error(code, err, out)
        assert weights.read_bytes() == data
    with pytest.raises(UsageError, match="overwrite"):
        check_output_path(serenity.load_model(src), weights.with_name("cell.onnx"))


def test_input_shape_given_twice_differently_is_refused() -> None:
    assert parse_input_shapes(["x=1,3", "x=1,3"]) == {"x": (1, 3)}
    with pytest.raises(UsageError, match="twice"):
        parse_input_shapes(["x=1,3", "x=1,4"])
