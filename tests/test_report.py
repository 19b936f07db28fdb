"""Reports: the data behind the figures, the figures' series, the HTML page,
the CLI options (--html, --plot, ``serenity report``) and the notebook views.

Figures are checked through the data handed to matplotlib (line data, bar
widths, polygon vertices) and the SVG elements, never through pixels.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import onnx
import onnx_models
import pytest
from helpers import problems
from helpers import run_cli as run
from hypothesis import given, settings
from hypothesis import strategies as st

import serenity
import serenity.report
from serenity.bench import run_bench
from serenity.ir import Problem
from serenity.memory import simulate
from serenity.plan import lifetimes, plan
from serenity.report import figures, output
from serenity.report.build import collect
from serenity.report.data import arena_map, live_set, simplify_steps, timeline_series
from serenity.report.page import render
from serenity.zoo import build_example

pytest.importorskip("matplotlib")


class _Page(HTMLParser):
    """Collects tags, SVG titles and every URL-like attribute; checks nesting."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.titles: list[str] = []
        self.refs: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key, value in attrs:
            if key in ("src", "href", "xlink:href") and value is not None:
                self.refs.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_title = tag == "title"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key, value in attrs:
            if key in ("src", "href", "xlink:href") and value is not None:
                self.refs.append(value)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    return page


def assert_self_contained(text: str) -> _Page:
    """No network reference of any kind; every link is in-page or a data URI."""
    assert "http" not in text.lower()
    assert "<script" not in text and "<link" not in text and "@import" not in text
    page = parse(text)
    assert all(r.startswith(("#", "data:")) for r in page.refs), page.refs
    return page


def _model(tmp_path: Path, proto: onnx.ModelProto | None = None, name: str = "m") -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto if proto is not None else build_example(), str(path))
    return path


# --- data -------------------------------------------------------------------


def _value_at(xs: list[int], ys: list[int], step: int) -> int:
    k = max(i for i, x in enumerate(xs) if x <= step)
    return ys[k]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=300), st.integers(4, 40))
def test_simplified_steps_keep_the_peak_and_the_picture(values: list[int], most: int) -> None:
    xs, ys = simplify_steps(values, -1, most)
    assert xs[0] == -1 and xs[-1] == len(values) - 2 and xs == sorted(set(xs))
    assert max(ys) == max(values) and min(ys) == min(values)
    assert all(values[x + 1] == y for x, y in zip(xs, ys, strict=True))  # points are real
    runs = 1 + sum(a != b for a, b in zip(values, values[1:], strict=False))
    if runs + 1 <= most:  # under the budget the step function is exact
        assert [_value_at(xs, ys, s) for s in range(-1, len(values) - 1)] == values
    else:
        assert len(xs) <= most + 2


@settings(max_examples=40, deadline=None)
@given(problems(max_ops=8))
def test_series_and_live_set_follow_the_memory_model(p: Problem) -> None:
    order = p.topological_order()
    tl = simulate(p, order)
    s = timeline_series(p, order, "x", "file")
    assert s.peak_bytes == tl.peak_bytes == max(s.values)
    assert s.peak_step == tl.peak_step and s.num_steps == p.num_ops
    assert [_value_at(list(s.steps), list(s.values), k) for k in range(-1, p.num_ops)] == [
        tl.initial_bytes,
        *tl.step_bytes,
    ]
    live = live_set(p, order, "x")
    assert sum(t.size for t in live.tensors) == tl.peak_bytes
    assert [t.size for t in live.tensors] == sorted((t.size for t in live.tensors), reverse=True)
    segments = live.segments(limit=2)
    assert sum(size for _, size, _ in segments) == tl.peak_bytes
    assert len(segments) <= 3


def test_arena_map_draws_every_buffer_where_the_plan_put_it() -> None:
    model_problem = _example_problem()
    order = serenity.schedule(model_problem).op_order
    buffers = lifetimes(model_problem, order)
    arena = plan(buffers, "greedy-size", 16)
    m = arena_map(buffers, arena)
    assert len(m.rects) == sum(1 for b in buffers if b.size)
    placed = {(b.first_step, off) for b, off in zip(buffers, arena.offsets, strict=True) if b.size}
    assert {(r.x0, r.offset) for r in m.rects} == placed
    assert max(r.offset + r.size for r in m.rects) == arena.arena_bytes == m.arena_bytes
    assert [r.area for r in m.rects] == sorted((r.area for r in m.rects), reverse=True)


def _example_problem() -> Problem:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return serenity.load_model(_model(Path(d))).problem


# --- figures ----------------------------------------------------------------


def test_timeline_figure_has_one_line_per_order_the_bound_and_marked_peaks() -> None:
    p = _example_problem()
    file_order = timeline_series(p, list(range(p.num_ops)), "file order", "file")
    best = serenity.schedule(p)
    opt = timeline_series(p, best.op_order, "optimum (proven)", "optimum")
    chart = figures.timeline_figure([file_order, opt], best.lower_bound_bytes)
    ax = chart.figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "file order: peak 168.0 KiB" in labels
    assert "optimum (proven): peak 84.0 KiB" in labels
    assert "lower bound: 84.0 KiB" in labels
    line = next(x for x in ax.get_lines() if x.get_label().startswith("file order"))
    assert max(line.get_ydata()) == 172032
    dots = [x for x in ax.get_lines() if x.get_marker() == "o"]
    assert sorted(max(d.get_ydata()) for d in dots) == [86016, 172032]
    text = figures.svg(chart)
    titles = re.findall(r"<title>([^<]*)</title>", text)
    assert any(t.startswith("file order: peak 172,032 bytes at step") for t in titles)
    assert "http" not in text and text.startswith("<svg")
    assert figures.svg(chart) == text  # deterministic bytes


def test_live_set_figure_stacks_the_largest_tensors_and_one_others_segment() -> None:
    sizes = [100 * (i + 1) for i in range(20)]
    n = len(sizes)
    # One op reads 20 graph inputs: all are live at its step.
    p = Problem(["op"], [*sizes, 8], [list(range(n))], [[n]], list(range(n)), [n])
    live = live_set(p, [0], "only order")
    chart = figures.live_set_figure([live], limit=5)
    bars = chart.figure.axes[0].patches
    widths = [b.get_width() for b in bars]
    assert widths[:5] == [2000, 1900, 1800, 1700, 1600]
    assert widths[5] == sum(sizes) + 8 - sum(widths[:5])  # "others" holds the rest
    assert len(bars) == 6
    titles = re.findall(r"<title>([^<]*)</title>", figures.svg(chart))
    assert "only order: 16 smaller tensors: 11.7 KiB" in titles  # 15 inputs and the output
    assert "only order: t19: 2.0 KiB, a graph input" in titles


def test_arena_figure_titles_the_largest_rectangles_and_rasterises_the_rest() -> None:
    # 300 one-step buffers in a chain: a large map (small cap to keep it fast).
    n = 300
    p = Problem(
        [f"op{i}" for i in range(n)],
        [64 + i for i in range(n + 1)],
        [[i] for i in range(n)],
        [[i + 1] for i in range(n)],
        [0],
        [n],
    )
    buffers = lifetimes(p, list(range(n)))
    maps = [arena_map(buffers, plan(buffers, name, 16)) for name in ("best", "greedy-size")]
    chart = figures.arena_figure(maps, max_shapes=50)
    left, right = chart.figure.axes
    assert len(left.collections[0].get_paths()) == 50 and left.collections[1].get_rasterized()
    assert len(left.collections[1].get_paths()) == len(maps[0].rects) - 50
    text = figures.svg(chart)
    titles = re.findall(r"<title>([^<]*)</title>", text)
    assert len(titles) == 100  # 50 per panel
    assert titles[0] == maps[0].rects[0].label
    assert "data:image/png;base64," in text  # the rasterised layer, inline
    assert f"{len(maps[0].rects) - 50} smallest buffers as an image" in text
    assert right.get_title().startswith("greedy-size:")


def test_bench_figure_has_bars_per_network_and_the_papers_means() -> None:
    report = run_bench([("example", build_example)], progress=False, rewrite=False)
    chart = figures.bench_figure(report)
    ax = chart.figure.axes[0]
    heights = [b.get_height() for b in ax.patches]
    assert heights == [pytest.approx(2.0), pytest.approx(2.0)]  # heuristic, scheduled
    levels = {round(line.get_ydata()[0], 2) for line in ax.get_lines()}
    assert {1.68, 1.86} <= levels
    assert_self_contained(report._repr_html_())


# --- the page and the CLI ---------------------------------------------------


def test_report_page_parses_and_is_self_contained(tmp_path: Path) -> None:
    model = serenity.load_model(_model(tmp_path))
    base = serenity.schedule_model(model, "file")
    result = serenity.schedule_model(model)
    report = collect(model, base, result, command="serenity report m.onnx -o r.html")
    assert [s.role for s in report.series] == ["file", "heuristic", "optimum"]
    assert [a.planner for a in report.arenas] == ["best", "greedy-size"]
    page = assert_self_contained(render(report))
    assert page.tags["svg"] == 3 and page.tags["h1"] == 1
    assert any("file order: peak 172,032 bytes" in t for t in page.titles)
    assert any("at offset" in t for t in page.titles)  # arena rectangles hover
    assert "serenity report m.onnx -o r.html" in render(report)


def test_report_command_with_rewrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _model(tmp_path, onnx_models.nasnet_like(), "nasnet_like")
    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "report", src, "-o", out, "--rewrite")
    assert code == 0, err
    assert "wrote" in stdout and "report" in stdout and " s more" in stdout
    text = out.read_text()
    page = assert_self_contained(text)
    assert "rewritten graph, optimum (proven)" in text and "<h2>Rewrites</h2>" in text
    assert "channel_partition" in text
    assert f"serenity report {src} -o {out} --rewrite" in text
    assert page.tags["svg"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{dir}/r.txt"], "give an .html file name"),
        (["-o", "{dir}/missing/r.html"], "does not exist"),
        (["-o", "{dir}/m.onnx.data"], "give an .html file name"),
    ],
)
def test_report_command_refuses_bad_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    src = _model(tmp_path)
    argv = [a.format(dir=tmp_path, src=src) for a in args]
    before = sorted(tmp_path.iterdir())
    code, _, err = run(capsys, "report", src, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before


def test_report_never_overwrites_its_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Formats are recognised by content, so a model may carry any name.
    src = tmp_path / "model.html"
    onnx.save(build_example(), str(src))
    before = src.read_bytes()
    code, _, err = run(capsys, "report", src, "-o", src)
    assert code == 2 and "would overwrite" in err and src.read_bytes() == before


def test_without_matplotlib_the_cli_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "find_spec", lambda name: None)
    monkeypatch.setattr(serenity.report, "find_spec", lambda name: None)
    src = _model(tmp_path)
    for argv in (
        ["report", src, "-o", tmp_path / "r.html"],
        ["schedule", src, "-o", tmp_path / "o.onnx", "--plot", tmp_path / "t.png"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "pip install 'serenity[report]'" in err
        assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    # Notebooks fall back to the plain repr.
    result = serenity.schedule_model(serenity.load_model(src))
    assert result._repr_html_() is None


def test_schedule_html_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _model(tmp_path)
    html, png, svg = tmp_path / "s.html", tmp_path / "t.png", tmp_path / "a.svg"
    argv = ["schedule", src, "-o", tmp_path / "o.onnx", "--html", html, "--plot", png]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert f"wrote {html}" in stdout and f"wrote {png}" in stdout
    assert not list(tmp_path.glob(".serenity-*"))  # staged, then renamed into place
    assert_self_contained(html.read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "plan", src, "--plot", svg)
    assert code == 0, err
    text = svg.read_text()
    assert (
        text.startswith("<?xml") and "<svg" in text and text.count("at offset") == 16
    )  # one per buffer
    code, _, err = run(capsys, "bench", src, "--no-rewrite", "--plot", tmp_path / "b.svg")
    assert code == 0, err
    assert "paper, scheduling" in (tmp_path / "b.svg").read_text()
    code, _, err = run(capsys, "plan", src, "--plot", tmp_path / "a.jpg")
    assert code == 2 and "give a .png or .svg" in err


def test_notebook_views(tmp_path: Path) -> None:
    model = serenity.load_model(_model(tmp_path))
    result = serenity.schedule_model(model)
    view = result._repr_html_()
    page = assert_self_contained(view)
    assert page.tags["svg"] == 2 and "84.0 KiB" in view
    planned = serenity.plan_schedule(model, result)
    view = planned.plan._repr_html_()
    assert assert_self_contained(view).tags["svg"] == 1 and "at offset" in view
    # The graph rides along but does not change equality or the repr.
    assert "problem" not in repr(result)
    assert replace(result, problem=None) == result
