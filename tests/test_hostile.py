"""Hostile input: malformed and truncated models, odd paths, external-data tricks,
NaN that ``--verify`` must not accept, and dims too large to allocate.

Every bad input must give exit 2, one ``serenity: error:`` line, no traceback,
no new file, and the input's bytes unchanged (issue 14).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnx_models
import pytest
from helpers import assert_clean_error, run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx_models import make_model, tensor

from serenity import bench
from serenity.errors import ModelError, VerificationError
from serenity.io.onnx_checks import external_refs
from serenity.io.onnx_import import load_onnx
from serenity.io.verify import MemoryBudget, random_inputs, verify_same_outputs
from serenity.rewrite._graph import const_array, to_ir

#: Fuzzing settings: each example is one in-process CLI run on a tiny model.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _clean_failure(capsys: pytest.CaptureFixture[str], folder: Path, *args: str | Path) -> str:
    """Run the CLI, expect a clean error, and check no file under ``folder`` changed."""
    before = _files(folder)
    code, _, err = run_cli(capsys, *args)
    line = assert_clean_error(code, err)
    assert _files(folder) == before, "a file was written or changed"
    return line


def _plain_tiny() -> bytes:
    """``tiny`` without metadata: its top-level fields serialize as ir_version,
    producer_name, graph, opset_import, so every strict prefix lacks something
    a model needs."""
    model = onnx_models.tiny()
    del model.metadata_props[:]
    return model.SerializeToString()


# --------------------------------------------------------------------------- truncated, malformed


@FUZZ
@given(st.data())
def test_every_prefix_of_a_model_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    full = _plain_tiny()
    no_opset = onnx.ModelProto.FromString(full)
    no_opset.ClearField("opset_import")
    boundary = len(no_opset.SerializeToString())  # the graph complete, no opset
    cut = data.draw(
        st.one_of(
            st.sampled_from([0, 1, 2, boundary, len(full) - 1]), st.integers(0, len(full) - 1)
        )
    )
    folder = tmp_path / f"cut{cut}"
    folder.mkdir(exist_ok=True)
    src = folder / "m.onnx"
    src.write_bytes(full[:cut])
    out, report, plan = folder / "o.onnx", folder / "r.json", folder / "p.json"
    _clean_failure(
        capsys, folder, "schedule", src, "-o", out, "--json", report, "--plan", plan, "--verify"
    )


@FUZZ
@given(
    name=st.sampled_from(["tiny", "pad_pools"]),
    position=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
@example(name="tiny", position=3, value=0xFF)
@example(name="tiny", position=126, value=0x80)  # a node name: not UTF-8 (bytes in Python)
@example(name="tiny", position=287, value=0)  # a length byte: an output name swallows newlines
@example(name="tiny", position=54, value=0xC1)  # an attribute name: onnx-ir raised in --rewrite
@example(name="pad_pools", position=209, value=0)  # 'strides' loses its type: --rewrite raised
@example(name="pad_pools", position=131, value=0x9A)  # Pad's mode not UTF-8: --rewrite raised
@example(name="pad_pools", position=607, value=0xE8)  # the graph's name: onnx-ir could not write
def test_corrupted_bytes_give_a_result_or_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, position: int, value: int
) -> None:
    """One byte changed anywhere: a (different) valid model or a clean error, never a crash."""
    model = getattr(onnx_models, name)()
    del model.metadata_props[:]
    data = bytearray(model.SerializeToString())
    data[position % len(data)] = value
    folder = tmp_path / f"{name}{position}_{value}"
    folder.mkdir(exist_ok=True)
    src, out, report = folder / "m.onnx", folder / "o.onnx", folder / "r.json"
    src.write_bytes(bytes(data))
    command = ["schedule", src, "-o", out, "--json", report, "--verify", "--rewrite"]
    code, _, err = run_cli(capsys, *command)
    assert code in (0, 2), err
    if code == 2:
        assert_clean_error(code, err, out, report)
    assert src.read_bytes() == bytes(data)


# --------------------------------------------------------------------------- bad paths


def test_bad_model_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.onnx"
    assert "not a file" in _clean_failure(capsys, tmp_path, "inspect", tmp_path)
    assert "not found" in _clean_failure(
        capsys, tmp_path, "schedule", tmp_path / "no.onnx", "-o", out
    )
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _clean_failure(capsys, tmp_path, "schedule", empty, "-o", out)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    _clean_failure(capsys, tmp_path, "schedule", text, "-o", out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(_plain_tiny())
    src.chmod(0)
    try:
        code, _, err = run_cli(capsys, "inspect", src)
        assert "cannot read" in assert_clean_error(code, err)
    finally:
        src.chmod(0o644)


def test_unreadable_model_when_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as :func:`test_unreadable_model` for a root user: open() refuses."""
    src = tmp_path / "m.onnx"
    src.write_bytes(_plain_tiny())
    real_open = pathlib.Path.open

    def refusing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self == src:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    out = tmp_path / "o.onnx"
    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "open", refusing_open)
        code, _, err = run_cli(capsys, "schedule", src, "-o", out)
    assert "Permission denied" in assert_clean_error(code, err, out)


# --------------------------------------------------------------------------- external data


def _external_model(folder: Path, location: str = "w.bin", **entries: str) -> Path:
    """``tiny`` with its first weight stored externally at ``location`` (other
    ``external_data`` entries as given); the data file is not written."""
    model = onnx_models.tiny()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, **entries}.items():
        t.external_data.add(key=key, value=value)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _weight_bytes() -> bytes:
    return numpy_helper.to_array(onnx_models.tiny().graph.initializer[0]).tobytes()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    return folder


def test_missing_external_file_is_allowed(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _external_model(model_dir)
    code, stdout, err = run_cli(capsys, "inspect", src)
    assert code == 0, err
    assert "missing" in stdout
    assert load_onnx(src).missing_weights == [onnx_models.tiny().graph.initializer[0].name]


def test_present_external_file_loads(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (model_dir / "w.bin").write_bytes(_weight_bytes())
    src = _external_model(model_dir)
    assert not load_onnx(src).missing_weights
    code, _, err = run_cli(capsys, "schedule", src, "-o", model_dir / "o.onnx", "--verify")
    assert code == 0, err


@pytest.mark.parametrize(
    ("location", "entries", "message"),
    [
        ("/etc/passwd", {}, "absolute path"),
        ("C:\\weights.bin", {}, "absolute path"),
        ("../outside.bin", {}, "outside the model's folder"),
        ("sub/../../outside.bin", {}, "outside the model's folder"),
        ("", {}, "names no location"),
        ("w\0.bin", {}, "control character"),
        ("w\n.bin", {}, "control character"),
        ("w.bin", {"offset": "-8"}, "not a non-negative integer"),
        ("w.bin", {"offset": "eight"}, "not a non-negative integer"),
        ("w.bin", {"length": "4"}, "does not match"),
    ],
)
def test_bad_external_references(
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    location: str,
    entries: dict[str, str],
    message: str,
) -> None:
    (model_dir.parent / "outside.bin").write_bytes(_weight_bytes())
    src = _external_model(model_dir, location, **entries)
    out = model_dir / "o.onnx"
    for args in (("inspect", src), ("schedule", src, "-o", out, "--verify")):
        assert message in _clean_failure(capsys, model_dir.parent, *args)


def test_symlink_out_of_the_folder_is_refused(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = model_dir.parent / "secret.bin"
    secret.write_bytes(_weight_bytes())
    (model_dir / "w.bin").symlink_to(secret)
    src = _external_model(model_dir)
    line = _clean_failure(capsys, model_dir.parent, "schedule", src, "-o", model_dir / "o.onnx")
    assert "symlink" in line
    # A symlink that stays inside the folder is fine.
    (model_dir / "w.bin").unlink()
    (model_dir / "real.bin").write_bytes(_weight_bytes())
    (model_dir / "w.bin").symlink_to(model_dir / "real.bin")
    assert not load_onnx(src).missing_weights


def test_short_external_file_is_refused_before_any_work(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _weight_bytes()
    (model_dir / "w.bin").write_bytes(data[:-4])
    src = _external_model(model_dir)
    out, report = model_dir / "o.onnx", model_dir / "r.json"
    line = _clean_failure(capsys, model_dir, "schedule", src, "-o", out, "--json", report)
    assert "too short" in line
    (model_dir / "w.bin").write_bytes(data)
    src = _external_model(model_dir, offset=str(len(data)))  # past the end
    assert "too short" in _clean_failure(capsys, model_dir, "inspect", src)


def test_external_location_that_is_a_directory(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model_dir / "w.bin").mkdir()
    src = _external_model(model_dir)
    assert "not a file" in _clean_failure(capsys, model_dir, "inspect", src)


def test_external_tensors_in_attributes_and_subgraphs_are_checked(tmp_path: Path) -> None:
    value = helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])
    value.ClearField("float_data")
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value="../../etc/passwd")
    const = helper.make_node("Constant", [], ["c"], value=value)
    inner = helper.make_graph([const], "then", [], [tensor("c", [1])])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=inner)
    model = make_model(
        [node], [tensor("cond", [], TensorProto.BOOL)], [tensor("y", [1])], check=False
    )
    with pytest.raises(ModelError, match="outside the model's folder"):
        external_refs(model, tmp_path)


# --------------------------------------------------------------------------- NaN and Inf


def _scaled(values: list[float]) -> onnx.ModelProto:
    """``y = x * c`` for x [1, 4] and a constant ``c`` of 4 values."""
    c = numpy_helper.from_array(np.array(values, dtype=np.float32), "c")
    node = helper.make_node("Mul", ["x", "c"], ["y"], name="mul")
    return make_model([node], [tensor("x", [1, 4])], [tensor("y", [1, 4])], [c])


@pytest.mark.parametrize(
    ("original", "candidate"),
    [
        ([1, 1, 1, 1], [np.nan] * 4),  # all NaN where the original is finite
        ([1, 1, 1, 1], [1, np.nan, 1, 1]),  # partial NaN
        ([1, np.nan, 1, 1], [1, 1, 1, 1]),  # the NaN vanished
        ([1, np.nan, 1, 1], [1, 1, np.nan, 1]),  # a NaN moved
        ([1, 1, 1, 1], [1, 1, np.inf, 1]),  # an infinity appeared
        ([1, np.inf, 1, 1], [1, -np.inf, 1, 1]),  # an infinity changed sign
    ],
)
def test_verify_rejects_non_finite_values_the_original_lacks(
    original: list[float], candidate: list[float]
) -> None:
    a, b = _scaled(original), _scaled(candidate)
    for exact in (False, True):
        with pytest.raises(VerificationError):
            verify_same_outputs(a, b, Path("."), exact=exact)


def test_verify_accepts_nan_and_inf_at_the_same_places() -> None:
    values = [1.0, np.nan, np.inf, -np.inf]
    report = verify_same_outputs(_scaled(values), _scaled(values), Path("."), exact=False)
    assert report.max_abs_diff == 0.0
    assert report.notes  # the original has non-finite values: the report says so


# --------------------------------------------------------------------------- huge dims


def _huge(n: int = 100_000) -> onnx.ModelProto:
    """Dims of ``n`` on every axis: two 1x1 convs from ``x``, concatenated, a 1x1 conv
    (channel partitioning applies), weights external and missing."""

    def weight(name: str, cout: int, cin: int) -> TensorProto:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[cout, cin, 1, 1])
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="weights.bin")
        return t

    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="a"),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="b"),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
        helper.make_node("Conv", ["cat", "wc"], ["y"], name="c"),
    ]
    inits = [weight("wa", n, n), weight("wb", n, n), weight("wc", n, 2 * n)]
    return make_model(nodes, [tensor("x", [n, n, n, n])], [tensor("y", None)], inits, check=False)


def test_huge_dims(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "huge.onnx"
    src.write_bytes(_huge().SerializeToString())
    out = tmp_path / "o.onnx"
    code, stdout, err = run_cli(capsys, "inspect", src)
    assert code == 0, err
    line = _clean_failure(capsys, tmp_path, "schedule", src, "-o", out, "--verify")
    assert "cannot verify" in line and "bytes" in line
    line = _clean_failure(capsys, tmp_path, "schedule", src, "-o", out, "--rewrite", "--verify")
    assert "cannot verify" in line
    # Rewriting never allocates weight-sized arrays: it slices with Slice nodes.
    code, stdout, err = run_cli(capsys, "schedule", src, "-o", out, "--rewrite")
    assert code == 0, err
    assert out.exists()


def test_verify_budget_names_the_tensor() -> None:
    model = _scaled([1, 1, 1, 1])
    big = {"x": (1 << 20, 1 << 20)}  # 4 TiB of float32
    with pytest.raises(VerificationError, match=r"input 'x' float32\[1048576, 1048576\]"):
        random_inputs(model, big, 0)
    budget = MemoryBudget(limit=64)
    random_inputs(model, {"x": (4, 4)}, 0, budget)  # 64 bytes: exactly the limit
    assert budget.used == 64
    with pytest.raises(VerificationError, match="at most 64 bytes"):
        random_inputs(model, {"x": (1, 1)}, 0, budget)


def test_huge_missing_weight_is_not_allocated(tmp_path: Path) -> None:
    model = _huge(n=4)
    for t in model.graph.initializer:
        del t.dims[:]
        t.dims.extend([100_000] * 4)
    with pytest.raises(VerificationError, match="weight 'wa'"):
        verify_same_outputs(model, model, tmp_path, {"x": (1, 4, 2, 2)})


# --------------------------------------------------------------------------- long lists, bench


def test_unknown_dims_error_lists_ten_tensors_then_a_count(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"r{i}") for i in range(30)]
    model = make_model(nodes, [tensor("t0", ["N", 8])], [tensor("t30", None)], check=False)
    src = tmp_path / "sym.onnx"
    src.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError) as info:
        load_onnx(src)
    message = str(info.value)
    assert "31 activation tensor(s)" in message
    assert "and 21 more" in message
    assert message.count("'t") == 10
    assert len(message) < 600


def test_bench_goes_on_after_a_bad_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    onnx.save(onnx_models.design_example(), str(models / "a_good.onnx"))
    (models / "b_bad.onnx").write_bytes(_plain_tiny()[:100])
    onnx.save(onnx_models.tiny(), str(models / "c_good.onnx"))
    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    code, _, err = run_cli(capsys, "bench", models, "--out", md, "--json", js)
    assert code == 0, err
    assert "Traceback" not in err
    data = json.loads(js.read_text())
    assert [r["name"] for r in data["rows"]] == ["a_good", "c_good"]
    assert [e["name"] for e in data["errors"]] == ["b_bad"]
    assert "not a valid ONNX model" in data["errors"][0]["error"]
    text = md.read_text()
    assert "| b_bad | failed |" in text
    assert "b_bad" in text and "not a valid ONNX model" in text
    again = bench.report_from_json(data)
    assert [e.error for e in again.errors] == [data["errors"][0]["error"]]


def test_rewrites_never_read_a_constant_declared_huge() -> None:
    """A constant with huge dims and no data once became a 4 GiB (lazy) zero array."""
    proto = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[4096, 4096, 64])
    value = ir.Value(name="c", const_value=ir.serde.deserialize_tensor(proto))
    assert const_array(value) is None
    small = numpy_helper.from_array(np.arange(4, dtype=np.float32), "s")
    assert (
        const_array(ir.Value(name="s", const_value=ir.serde.deserialize_tensor(small))) is not None
    )


def test_a_newline_in_a_path_stays_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "inspect", tmp_path / "a\nb.onnx")
    assert "a\\nb.onnx" in assert_clean_error(code, err)


def test_onnxruntime_prints_nothing_of_its_own(tmp_path: Path) -> None:
    """onnxruntime once logged its failure to stderr (fd 2) beside our one line.

    A subprocess, because capsys does not see what native code writes to fd 2.
    """
    model = onnx_models.tiny()
    bias = next(t for t in model.graph.initializer if t.name == "b.b")
    bias.raw_data = bias.raw_data * 2  # twice the bytes its shape declares: runtime refuses
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    src.write_bytes(model.SerializeToString())
    done = subprocess.run(
        [sys.executable, "-m", "serenity.cli", "schedule", str(src), "-o", str(out), "--verify"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "onnxruntime cannot run" in assert_clean_error(done.returncode, done.stderr, out)


def test_rewriting_a_model_onnx_ir_cannot_read_is_a_model_error() -> None:
    data = bytearray(_plain_tiny())
    data[54] = 0xC1  # an attribute name that is not UTF-8: onnx parses it, onnx-ir cannot
    with pytest.raises(ModelError, match="cannot be read for rewriting"):
        to_ir(onnx.ModelProto.FromString(bytes(data)))


def test_rewrite_leaves_subgraph_readers_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ``If`` branch reading a concat from the outer scope once crashed ``--rewrite``
    (distributing its op meant editing the branch in the main graph's place)."""
    src, out = tmp_path / "if.onnx", tmp_path / "o.onnx"
    onnx.save(onnx_models.if_outer_scope(), str(src))
    code, _, err = run_cli(capsys, "schedule", src, "-o", out, "--rewrite", "--verify")
    assert code == 0, err
    assert out.exists()
