"""Outputs are one transaction: all appear, or none does and old files stay."""

from __future__ import annotations

import errno
from pathlib import Path

import onnx
import onnx.numpy_helper
import onnx_models
import pytest
from helpers import assert_clean_error, cell_with_external_weights
from helpers import run_cli as run

import serenity.cli
from serenity.io.outputs import transaction


@pytest.fixture
def design(tmp_path: Path) -> Path:
    path = tmp_path / "design.onnx"
    onnx.save(onnx_models.design_example(), str(path))
    return path


def fail_with(exc: BaseException):  # type: ignore[no-untyped-def]
    def raiser(*args: object, **kwargs: object) -> None:
        raise exc

    return raiser


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    "exc, message",
    [
        (OSError(errno.ENOSPC, "No space left on device", "report.json"), "no space left"),
        (OSError(errno.EROFS, "Read-only file system", "report.json"), "read-only"),
        (MemoryError(), "out of memory"),
    ],
)
def test_a_failing_report_leaves_no_model_behind(
    design: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    message: str,
) -> None:
    """Regression: the model was written before the JSON report, so a failing
    ``--json`` left ``out.onnx`` behind (and OS errors gave tracebacks)."""
    monkeypatch.setattr(serenity.cli, "report_dict", fail_with(exc))
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    before = listing(tmp_path)
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", report)
    assert message in assert_clean_error(code, err, out, report)
    assert listing(tmp_path) == before


def test_existing_outputs_survive_a_failed_run(
    design: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    out.write_bytes(b"old model")
    (tmp_path / "out.onnx.data").write_bytes(b"old weights")
    report.write_text("old report")
    monkeypatch.setattr(serenity.cli, "report_dict", fail_with(KeyboardInterrupt()))
    code, _, err = run(capsys, "schedule", design, "-o", out, "--json", report)
    assert code == 130 and "nothing was written" in err
    assert out.read_bytes() == b"old model"
    assert (tmp_path / "out.onnx.data").read_bytes() == b"old weights"
    assert report.read_text() == "old report"
    assert listing(tmp_path) == ["design.onnx", "out.onnx", "out.onnx.data", "report.json"]


def test_weights_and_model_are_written_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``<out>.data`` is staged with the model: a stale one is replaced only on success."""
    src = cell_with_external_weights(tmp_path)
    out = tmp_path / "out.onnx"
    (tmp_path / "out.onnx.data").write_bytes(b"stale")
    code, stdout, err = run(capsys, "schedule", src, "-o", out, "--verify")
    assert code == 0, err
    assert f"wrote {out}, {out}.data" in stdout
    written = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    original = {
        t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer
    }
    assert written.keys() == original.keys()
    assert all((written[k] == original[k]).all() for k in original)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_transaction_commits_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(RuntimeError), transaction() as tx:
        tx.stage(tmp_path / "a.txt").write_text("a")
        tx.stage(tmp_path / "sub" / "b.txt").write_text("b")
        raise RuntimeError("boom")
    assert listing(tmp_path) == ["sub"] and listing(tmp_path / "sub") == []
    with transaction() as tx:
        tx.stage(tmp_path / "a.txt").write_text("a")
        tx.stage(tmp_path / "sub" / "b.txt").write_text("b")
    assert listing(tmp_path) == ["a.txt", "sub"] and listing(tmp_path / "sub") == ["b.txt"]
