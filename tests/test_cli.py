"""The ``serenity`` command line: results, the JSON contract, and bad input.

Bad input must give exit status 2, one line on stderr starting with
``serenity: error:``, no traceback, and no file written.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import onnx_models
import pytest
from helpers import assert_clean_error, cell_with_external_weights
from helpers import run_cli as run

import serenity
from serenity.schedule import DEFAULT_METHOD
from serenity.zoo import RandWireConfig, build_randwire

#: Keys of the ``schedule --json`` report that later tools rely on.
REPORT_KEYS = {
    "model",
    "nodes",
    "baseline_peak_bytes",
    "peak_bytes",
    "lower_bound_bytes",
    "optimal",
    "method",
    "schedule",
    "seconds",
}


@pytest.fixture
def design(tmp_path: Path) -> Path:
    return design_path(tmp_path)


# --------------------------------------------------------------------------- commands


def test_example_writes_a_runnable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "example.onnx"
    code, stdout, _ = run(capsys, "example", out)
    assert code == 0
    assert f"wrote {out}" in stdout
    onnx.checker.check_model(str(out), full_check=True)
    assert serenity.load_model(out).problem.num_ops == 15

    missing = tmp_path / "no" / "such" / "dir" / "example.onnx"
    code, _, err = run(capsys, "example", missing)
    assert "does not exist" in assert_clean_error(code, err, missing)


def test_inspect(design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "inspect.json"
    before = design.read_bytes()
    code, stdout, err = run(capsys, "inspect", design, "--json", report)
    assert code == 0, err
    assert "34,816 B" in stdout  # file-order peak
    assert "13,312 B" in stdout  # best heuristic
    data = json.loads(report.read_text())
    assert data["nodes"] == 10 and data["scheduled_ops"] == 10
    assert data["baseline_peak_bytes"] == 34_816
    assert data["best_heuristic_peak_bytes"] == 13_312
    assert data["lower_bound_bytes"] <= 13_312
    assert 0 < data["width_bound_bytes"] <= 13_312
    assert "width bound" in stdout
    assert data["lower_bound_bytes"] <= data["cut_bound_bytes"] <= 13_312
    assert "cut bound" in stdout
    assert data["largest_tensor_bytes"] == 8192
    assert design.read_bytes() == before


def test_schedule_report_contract(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    before = design.read_bytes()
    code, stdout, err = run(capsys, "schedule", design, "-o", out, "--json", report, "--verify")
    assert code == 0, err
    assert err == ""
    assert "verified: 1 output(s) bitwise equal" in stdout
    assert f"wrote {out}" in stdout
    assert design.read_bytes() == before

    data = json.loads(report.read_text())
    assert set(data) >= REPORT_KEYS
    model = serenity.load_model(design)
    assert data["model"] == str(design)
    assert data["nodes"] == model.num_nodes == 10
    assert data["method"] == DEFAULT_METHOD
    assert isinstance(data["optimal"], bool)
    assert isinstance(data["seconds"], float) and data["seconds"] >= 0
    assert len(data["schedule"]) == data["scheduled_ops"] == model.problem.num_ops
    assert sorted(data["schedule"]) == sorted(model.problem.op_names)
    assert data["baseline_peak_bytes"] == 34_816
    assert data["peak_bytes"] == 13_312
    assert data["lower_bound_bytes"] <= data["peak_bytes"] <= data["baseline_peak_bytes"]
    assert data["output"] == str(out)
    assert data["verified"]["bitwise_equal"] is True
    assert data["verified"]["outputs"] == ["y"]
    assert data["verified"]["random_weights"] == 0

    written = serenity.load_model(out)
    assert list(written.problem.op_names) == data["schedule"]
    assert serenity.schedule_model(written, "file").peak_bytes == data["peak_bytes"]


@pytest.mark.parametrize("method", list(serenity.ENGINES))
def test_schedule_every_method(
    method: str, design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / f"{method}.onnx", tmp_path / f"{method}.json"
    code, _, err = run(
        capsys, "schedule", design, "-o", out, "--json", report, "--verify", "--method", method
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["method"] == method
    assert len(data["schedule"]) == 10
    assert data["peak_bytes"] <= data["baseline_peak_bytes"] == 34_816
    assert data["lower_bound_bytes"] <= data["peak_bytes"]
    expected = serenity.schedule_model(serenity.load_model(design), method)
    assert data["peak_bytes"] == expected.peak_bytes
    assert data["schedule"] == list(expected.order)


def test_schedule_with_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "sym.onnx", tmp_path / "sym.opt.onnx"
    onnx.save(onnx_models.symbolic_batch(), str(src))
    code, _, err = run(capsys, "schedule", src, "-o", out, "--verify", "--input-shape", "x=1,3,8,8")
    assert code == 0, err
    dim0 = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "N"


def test_schedule_with_external_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "cell.onnx", tmp_path / "cell.opt.onnx"
    onnx.save_model(
        onnx_models.residual_cell(),
        str(src),
        save_as_external_data=True,
        location="cell.onnx.data",
        size_threshold=0,
    )
    code, stdout, err = run(capsys, "schedule", src, "-o", out, "--verify")
    assert code == 0, err
    assert f"wrote {out}, {out}.data" in stdout
    assert Path(f"{out}.data").stat().st_size > 0


def test_schedule_with_missing_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out, report = tmp_path / "cell.onnx", tmp_path / "cell.opt.onnx", tmp_path / "r.json"
    onnx.save_model(
        onnx_models.residual_cell(),
        str(src),
        save_as_external_data=True,
        location="cell.onnx.data",
        size_threshold=0,
    )
    (tmp_path / "cell.onnx.data").unlink()

    code, stdout, err = run(capsys, "inspect", src)
    assert code == 0, err
    assert "missing" in stdout

    code, stdout, err = run(capsys, "schedule", src, "-o", out, "--json", report, "--verify")
    assert code == 0, err
    assert "missing weights filled with seeded random values" in stdout
    data = json.loads(report.read_text())
    assert data["verified"]["bitwise_equal"] is True
    assert data["verified"]["random_weights"] > 0
    assert data["peak_bytes"] < data["baseline_peak_bytes"]

    code, stdout, err = run(capsys, "schedule", src, "-o", tmp_path / "noverify.onnx")
    assert code == 0, err
    assert "do not exist" in stdout  # the note about missing external files


# --------------------------------------------------------------------------- bad input


def _missing(tmp_path: Path) -> list[str]:
    return [str(tmp_path / "nope.onnx")]


def _text(tmp_path: Path) -> list[str]:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not an ONNX model\n" * 20)
    return [str(path)]


def _empty(tmp_path: Path) -> list[str]:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    return [str(path)]


def _directory(tmp_path: Path) -> list[str]:
    path = tmp_path / "adir.onnx"
    path.mkdir()
    return [str(path)]


def _cyclic(tmp_path: Path) -> list[str]:
    path = tmp_path / "cyclic.onnx"
    onnx.save(onnx_models.cyclic(), str(path))
    return [str(path)]


def _symbolic(tmp_path: Path) -> list[str]:
    path = tmp_path / "sym.onnx"
    onnx.save(onnx_models.symbolic_batch(), str(path))
    return [str(path)]


def _not_an_input(tmp_path: Path) -> list[str]:
    return [*_symbolic(tmp_path), "--input-shape", "c0=1,4,8,8"]


def _bad_shape_spec(tmp_path: Path) -> list[str]:
    return [*_symbolic(tmp_path), "--input-shape", "x=1,three,8,8"]


def _wrong_rank(tmp_path: Path) -> list[str]:
    return [*_symbolic(tmp_path), "--input-shape", "x=1,3,8"]


def _conflicting_dim(tmp_path: Path) -> list[str]:
    return [*_symbolic(tmp_path), "--input-shape", "x=1,4,8,8"]


BAD_MODELS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "missing file": (_missing, "not found"),
    "text file": (_text, "ONNX model"),
    "empty file": (_empty, "not an ONNX model"),
    "directory": (_directory, "not a file"),
    "cyclic graph": (_cyclic, "cycle"),
    "unknown dims": (_symbolic, "--input-shape"),
    "input-shape names a non-input": (_not_an_input, "'c0', which is not a graph input"),
    "malformed input-shape": (_bad_shape_spec, "bad --input-shape"),
    "input-shape of the wrong rank": (_wrong_rank, "rank 4"),
    "input-shape conflicts with a fixed dim": (_conflicting_dim, "axis 1 is fixed to 3"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
@pytest.mark.parametrize("command", ["schedule", "inspect"])
def test_bad_input(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, expected = BAD_MODELS[case]
    model_args = make(tmp_path)
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    if command == "schedule":
        args = ["schedule", *model_args, "-o", str(out), "--json", str(report), "--verify"]
    else:
        args = ["inspect", *model_args, "--json", str(report)]
    code, _, err = run(capsys, *args)
    message = assert_clean_error(code, err, out, report)
    assert expected in message


def test_cyclic_graph_message_names_the_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "inspect", *_cyclic(tmp_path))
    message = assert_clean_error(code, err)
    assert "'first'" in message and "'second'" in message


def test_unknown_dims_message_names_the_tensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "inspect", *_symbolic(tmp_path))
    message = assert_clean_error(code, err)
    assert "'x' [N,3,8,8]" in message and "'y' [N,2,8,8]" in message


def test_output_equal_to_input_is_refused(
    design: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = design.read_bytes()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report.json"
    for spelling in (str(design), "design.onnx", "./sub/../design.onnx", "sub/../design.onnx"):
        code, _, err = run(capsys, "schedule", design, "-o", spelling, "--json", report)
        assert "overwrite" in assert_clean_error(code, err, report)
        code, _, err = run(capsys, "schedule", "./sub/../design.onnx", "-o", spelling)
        assert "overwrite" in assert_clean_error(code, err)
    assert design.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["design.onnx", "sub"]


def test_output_over_external_weights_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = cell_with_external_weights(tmp_path, "weights.bin")
    data = (tmp_path / "weights.bin").read_bytes()
    code, _, err = run(capsys, "schedule", src, "-o", tmp_path / "weights.bin")
    assert "overwrite" in assert_clean_error(code, err)
    assert (tmp_path / "weights.bin").read_bytes() == data


def test_json_path_clashes_are_refused(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json`` over the input model (or the output) once silently replaced it."""
    before = design.read_bytes()
    out = tmp_path / "out.onnx"
    for command in (["inspect", design], ["schedule", design, "-o", out]):
        code, _, err = run(capsys, *command, "--json", design)
        assert "overwrite" in assert_clean_error(code, err, out)
        assert design.read_bytes() == before
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", out)
    assert "overwrite" in assert_clean_error(code, err, out)
    missing_dir = tmp_path / "no" / "report.json"
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", missing_dir)
    assert "does not exist" in assert_clean_error(code, err, out, missing_dir)
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", tmp_path)
    assert "directory" in assert_clean_error(code, err, out)


def test_output_in_missing_directory(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "out.onnx"
    report = tmp_path / "report.json"
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", report)
    assert "does not exist" in assert_clean_error(code, err, out, report)
    code, _, err = run(capsys, "schedule", design, "-o", tmp_path, "--json", report)
    assert "directory" in assert_clean_error(code, err, report)


def test_unknown_method(design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", report, "--method", "magic")
    assert code == 2  # argparse's usage error
    assert "Traceback" not in err
    assert "magic" in err
    assert not out.exists() and not report.exists()


def _top_level_boundaries(model: onnx.ModelProto) -> set[int]:
    """Byte offsets where a top-level field of the serialized model ends.

    Cutting there leaves a file that still parses (into a smaller model).
    """
    data = model.SerializeToString()
    cuts = set()
    partial = onnx.ModelProto()
    partial.CopyFrom(model)
    for field in ("metadata_props", "opset_import", "graph", "producer_name", "ir_version"):
        partial.ClearField(field)
        prefix = partial.SerializeToString()
        if data.startswith(prefix):
            cuts.add(len(prefix))
    return cuts


@pytest.mark.parametrize("builder", [onnx_models.tiny, onnx_models.if_outer_scope])
def test_truncated_models(
    builder: Callable[[], onnx.ModelProto], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every truncation is a clean exit 2, or (if it still parses) exit 0."""
    model = builder()
    data = model.SerializeToString()
    cuts = _top_level_boundaries(model)
    assert len(cuts) >= 3  # after metadata_props, opset_import, graph
    src, out, report = tmp_path / "cut.onnx", tmp_path / "out.onnx", tmp_path / "report.json"
    outcomes = {0: 0, 2: 0}
    for cut in sorted({*range(0, len(data), 7), *cuts, len(data) - 1}):
        src.write_bytes(data[:cut])
        try:
            code, _, err = run(capsys, "schedule", src, "-o", out, "--json", report, "--verify")
        except Exception as e:  # an internal error: the CLI would exit 1
            raise AssertionError(f"cut at byte {cut}/{len(data)} raised {e!r}") from e
        assert code in (0, 2), f"cut at byte {cut}: exit {code}: {err}"
        if code == 2:
            assert_clean_error(code, err, out, report)
        else:
            assert out.exists() and report.exists()
            out.unlink()
            report.unlink()
        outcomes[code] += 1
    assert outcomes[2] > 0


# --------------------------------------------------------------------------- subprocess


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serenity.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_module_entry_point(design: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    done = _cli("schedule", design, "-o", out, "--json", report, "--verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "13,312" in done.stdout
    assert json.loads(report.read_text())["peak_bytes"] == 13_312

    cyclic = _cyclic(tmp_path)[0]
    out2 = tmp_path / "out2.onnx"
    done = _cli("schedule", cyclic, "-o", out2, cwd=tmp_path)
    assert done.returncode == 2
    assert_clean_error(done.returncode, done.stderr, out2)

    text = _text(tmp_path)[0]
    done = _cli("inspect", text, cwd=tmp_path)
    assert_clean_error(done.returncode, done.stderr)


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("serenity")
    if not script.exists():
        pytest.skip("the serenity console script is not installed next to the interpreter")
    out = tmp_path / "example.onnx"
    done = subprocess.run(
        [str(script), "example", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(script), "inspect", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "file-order peak" in done.stdout
    done = subprocess.run(
        [str(script), "inspect", str(tmp_path / "missing.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "not found" in assert_clean_error(done.returncode, done.stderr)
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and serenity.__version__ in done.stdout


# --------------------------------------------------------------------------- time limit


def test_time_limit_zero_still_writes_a_valid_schedule(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    code, _, err = run(
        capsys,
        "schedule",
        design,
        "-o",
        out,
        "--method",
        "exact",
        "--time-limit",
        "0",
        "--json",
        report,
    )
    assert code == 0, err
    r = json.loads(report.read_text())
    assert r["lower_bound_bytes"] <= 13_312 <= r["peak_bytes"] <= r["baseline_peak_bytes"]
    assert r["optimal"] == (r["peak_bytes"] == r["lower_bound_bytes"])


def test_negative_time_limit_is_refused(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.onnx"
    code, _, err = run(capsys, "schedule", design, "-o", out, "--time-limit", "-1")
    assert_clean_error(code, err, out)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_time_limits_must_be_finite_and_non_negative(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Regression: ``--time-limit nan`` / ``inf`` were accepted silently."""
    out = tmp_path / "out.onnx"
    for command in (["schedule", design, "-o", out], ["plan", design], ["bench", design]):
        code, _, err = run(capsys, *command, "--time-limit", value)
        assert "finite number of seconds" in assert_clean_error(code, err, out)


# --------------------------------------------------------------------------- search memory


def _small_randwire(tmp_path: Path) -> Path:
    """A RandWire network (two WS stages of 10 nodes) whose exact search expands states
    and whose structural bounds stay below the optimum (seed 1: 14,336 against 16,384;
    with seed 0 the cut bound proves the heuristic order optimal at once)."""
    cfg = RandWireConfig(
        channels=8, nodes=10, k=4, p=0.75, stage_strides=(1, 2), head_channels=32, resolution=16
    )
    path = tmp_path / "randwire.onnx"
    onnx.save(build_randwire(cfg, seed=1), str(path))
    return path


def test_search_memory_caps_the_exact_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--search-memory`` reaches the engine: capped at one byte every search stops at
    once (nothing proven, a valid order kept; the cut bound at the hand-over, which
    would prove this small graph, is switched off); the default cap proves the optimum."""
    monkeypatch.setattr(importlib.import_module("serenity.schedule.exact"), "CUT_SECONDS", 0)
    model = _small_randwire(tmp_path)
    reports, said = {}, {}
    for cap in ("1", "512MiB"):
        out, report = tmp_path / f"{cap}.onnx", tmp_path / f"{cap}.json"
        args = ["--method", "exact", "--search-memory", cap, "--json", report]
        code, said[cap], err = run(capsys, "schedule", model, "-o", out, *args)
        assert code == 0, err
        reports[cap] = json.loads(report.read_text())
    capped, free = reports["1"], reports["512MiB"]
    assert "memory cap (--search-memory 1)" in said["1"]
    assert (capped["stats"]["search_memory"], free["stats"]["search_memory"]) == (1, 2**29)
    assert "memory cap" not in said["512MiB"]
    assert capped["stats"]["memory_capped"] and not capped["optimal"]
    assert free["optimal"] and not free["stats"].get("memory_capped")
    assert capped["lower_bound_bytes"] <= free["peak_bytes"] <= capped["peak_bytes"]
    code, stdout, err = run(capsys, "plan", model, "--search-memory", "1", "--json", tmp_path / "p")
    assert code == 0, err
    assert "arena" in stdout


def test_threads_reach_the_exact_search_and_must_be_a_whole_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--threads N`` sets the searchers (recorded in the JSON report); the proven peak
    does not depend on it; 0, -1 and 1.5 are one-line errors that write nothing."""
    model = _small_randwire(tmp_path)
    reports = {}
    for n in ("1", "3"):
        out, report = tmp_path / f"t{n}.onnx", tmp_path / f"t{n}.json"
        args = ["--method", "exact", "--threads", n, "--json", report]
        code, _, err = run(capsys, "schedule", model, "-o", out, *args)
        assert code == 0, err
        reports[n] = json.loads(report.read_text())
    assert [reports[n]["stats"]["threads"] for n in ("1", "3")] == [1, 3]
    assert reports["1"]["optimal"] and reports["3"]["optimal"]
    assert reports["1"]["peak_bytes"] == reports["3"]["peak_bytes"]
    out = tmp_path / "bad.onnx"
    for value in ("0", "-1", "1.5"):
        for command in (["schedule", model, "-o", out], ["plan", model]):
            code, _, err = run(capsys, *command, "--threads", value)
            assert "--threads" in assert_clean_error(code, err, out)
        code, _, err = run(capsys, "report", model, "-o", tmp_path / "r.html", "--threads", value)
        assert "--threads" in assert_clean_error(code, err, tmp_path / "r.html")


@pytest.mark.parametrize("value", ["12XB", "0", "1.5"])
def test_search_memory_must_be_a_positive_whole_size(
    design: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out = tmp_path / "out.onnx"
    batch = ["batch", design, "--out", tmp_path / "r.jsonl"]
    for command in (["schedule", design, "-o", out], ["plan", design], ["bench", design], batch):
        code, _, err = run(capsys, *command, "--search-memory", value)
        assert "search-memory" in assert_clean_error(code, err, out)
    assert not (tmp_path / "r.jsonl").exists()


def test_a_model_onnxruntime_cannot_load_is_written_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: a custom-domain op was written with exit 0 and no word."""
    model = onnx_models.design_example()
    model.graph.node[-1].domain = "com.example.custom"
    model.opset_import.append(onnx.helper.make_opsetid("com.example.custom", 1))
    src, out = tmp_path / "custom.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    code, _, err = run(capsys, "schedule", src, "-o", out)
    assert code == 0 and out.exists()
    assert "warning: 1 custom op domain(s) (com.example.custom)" in err
    code, _, err = run(capsys, "schedule", design_path(tmp_path), "-o", tmp_path / "plain.onnx")
    assert code == 0 and "warning" not in err


def design_path(folder: Path) -> Path:
    path = folder / "design.onnx"
    onnx.save(onnx_models.design_example(), str(path))
    return path


def test_piped_output_does_not_wrap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: piped to a file, rich wrapped tables at 80 columns ("netw…")."""
    monkeypatch.delenv("COLUMNS", raising=False)
    folder = tmp_path / ("a_folder_name_long_enough_to_push_the_title_past_eighty_columns" * 2)
    folder.mkdir()
    src = design_path(folder)
    code, stdout, err = run(capsys, "schedule", src, "-o", folder / "out.onnx")
    assert code == 0, err
    assert f"wrote {folder / 'out.onnx'}" in stdout  # one line, not wrapped
    assert any(len(line) > 80 for line in stdout.splitlines())
