"""``serenity bench``: every column present, numbers consistent with the engines, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx_models
import pytest
from helpers import run_cli as run
from test_cli import assert_clean_error

from serenity import bench, zoo
from serenity.zoo import build_example

#: Every column of the markdown table (rewriting columns appear once rewriting ran).
COLUMNS = [
    "network",
    "ops",
    "weights",
    "MACs",
    "file order B",
    "file KiB",
    "best heuristic B",
    "scheduled B",
    "scheduled KiB",
    "lower bound B",
    "proven",
    "sched. s",
    "heuristic x",
    "scheduled x",
]


def small_sources() -> list[tuple[str, bench.Builder]]:
    """Small, fast networks: the bundled example and the design worked example."""
    return [("example", build_example), ("design", onnx_models.design_example)]


def test_report_rows_and_geomeans() -> None:
    report = bench.run_bench(small_sources(), progress=False)
    assert [r.name for r in report.rows] == ["example", "design"]
    ex, design = report.rows
    assert (ex.file_peak, ex.peak, ex.optimal) == (172_032, 86_016, True)
    # docs/memory-model.md's worked example: 34,816 in file order, 13,312 at best.
    assert (design.file_peak, design.peak, design.optimal) == (34_816, 13_312, True)
    for r in report.rows:
        assert r.lower_bound <= r.peak <= r.heuristic_peak <= r.file_peak
    expected = ((172_032 / 86_016) * (34_816 / 13_312)) ** 0.5
    assert report.geomean("scheduled") == pytest.approx(expected)
    assert report.geomean("rewritten") is None  # nothing was rewritten


def test_markdown_has_every_column_and_the_paper() -> None:
    report = bench.run_bench(small_sources(), progress=False)
    text = bench.markdown(report, "serenity bench x", "## Notes\n\nhand-written")
    header = next(line for line in text.splitlines() if line.startswith("| network"))
    assert [c.strip() for c in header.strip("|").split("|")] == COLUMNS
    rows = [line for line in text.splitlines() if line.startswith("| example")]
    assert len(rows) == 1 and rows[0].count("|") == len(COLUMNS) + 1
    assert "1.68x" in text and "1.86x" in text
    assert "`serenity bench x`" in text and text.rstrip().endswith("hand-written")


def test_rewriting_columns_are_verified() -> None:
    report = bench.run_bench(small_sources(), rewrite=True, verify=True, progress=False)
    ex, design = report.rows
    # The example's concat -> conv is partitioned: 86,016 -> 81,920 bytes, checked in onnxruntime.
    assert ex.rewrites and ex.rewritten_peak is not None and ex.rewritten_peak < ex.peak
    assert ex.verified is True and ex.rewrite_passes
    assert sum(ex.rewrite_passes.values()) == ex.rewrites
    for r in report.rows:
        assert r.rewritten_peak is not None and r.rewritten_peak <= r.peak
    text = bench.markdown(report)
    header = next(line for line in text.splitlines() if line.startswith("| network"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == [*COLUMNS, "rewritten B", "rewritten KiB", "proven", "rewrites",
                     "rewritten x", "verified"]  # fmt: skip
    assert report.geomean("rewritten") > report.geomean("scheduled")
    again = bench.report_from_json(json.loads(json.dumps(report.to_json())))
    assert bench.markdown(again) == text


def test_small_zoo_bench_has_every_column(capsys: pytest.CaptureFixture[str]) -> None:
    """Small versions of the paper's four networks, with rewriting: every column filled."""
    small: list[tuple[str, bench.Builder]] = [
        ("darts_imagenet", lambda: zoo.build_darts_imagenet(channels=8, layers=3, resolution=32)),
        ("randwire_cifar10", lambda: zoo.build_randwire_cifar10(channels=8, nodes=6, resolution=16)),
        ("randwire_cifar100", lambda: zoo.build_randwire_cifar100(channels=8, nodes=6, resolution=16)),
        ("swiftnet_hpd", lambda: zoo.build_swiftnet_hpd(widths=(8, 8, 16, 16, 32), resolution=32, cells=4)),
    ]  # fmt: skip
    report = bench.run_bench(small, rewrite=True, time_limit=5)
    assert "[4/4] swiftnet_hpd" in capsys.readouterr().err
    text = bench.markdown(report)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| network"))
    width = header.count("|")
    for r in report.rows:
        assert r.weights and r.macs and r.file_peak >= r.peak >= r.lower_bound > 0
        assert r.rewritten_peak is not None and r.rewritten_peak <= r.peak
        (line,) = [x for x in lines if x.startswith(f"| {r.name} |") and x.count("|") == width]
        assert " - |" not in line  # every column has a value
    # Sizes and the geometric means are compared with the paper.
    assert "## Network sizes against the published ones" in text
    assert "| darts_imagenet | " in text.split("## Network sizes")[1]
    assert "1.68x" in text and "1.86x" in text


def test_cli_bench_writes_markdown_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name, build in small_sources():
        onnx.save(build(), str(models / f"{name}.onnx"))
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    args = ["--out", md, "--json", js, "--no-rewrite", "--search-memory", "64MiB"]
    code, out, err = run(capsys, "bench", models, *args)
    assert code == 0, err
    assert "[1/2] design" in err and "[2/2] example" in err  # progress, sorted by file name
    assert "geometric mean" in out
    data = json.loads(js.read_text())
    assert [r["name"] for r in data["rows"]] == ["design", "example"]
    assert data["paper"]["geomean_scheduling"] == 1.68
    assert data["search_memory"] == 64 << 20
    assert {"file_peak", "heuristic_peak", "peak", "lower_bound", "optimal", "seconds"} <= set(
        data["rows"][0]
    )
    assert "| design |" in md.read_text()


def test_cli_bench_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "r.md"
    line = assert_clean_error(*run(capsys, "bench", tmp_path / "nope.onnx", "--out", md)[::2], md)
    assert "nope.onnx" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .onnx files" in assert_clean_error(*run(capsys, "bench", empty)[::2])
    model = tmp_path / "m.onnx"
    onnx.save(build_example(), str(model))
    bad_out = tmp_path / "missing" / "r.md"
    line = assert_clean_error(*run(capsys, "bench", model, "--out", bad_out)[::2], bad_out)
    assert "r.md" in line
    notes = tmp_path / "notes.md"
    notes.write_text("kept")
    line = assert_clean_error(*run(capsys, "bench", model, "--notes", notes, "--out", notes)[::2])
    assert "would overwrite" in line and notes.read_text() == "kept"
