"""matplotlib figures of the plain data in :mod:`serenity.report.data`.

Every builder returns a :class:`Chart`: a ``matplotlib.figure.Figure`` (made
without pyplot, so no global state) plus the hover texts of its artists.
:func:`svg` renders a chart as a self-contained SVG fragment for inline use in
HTML: text stays text (``svg.fonttype = none``, the browser's sans-serif), no
XML prolog, no namespace URLs or metadata, every hover text a plain
``<title>`` (no script), numbers at two decimals, and the same bytes on
every run (fixed hash salt, no date). :func:`image_bytes` gives PNG or SVG.

matplotlib is the optional extra ``report`` (``pip install 'serenity[report]'``);
importing this module without it raises :class:`~serenity.errors.UsageError`
saying so.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from serenity.errors import UsageError
from serenity.report.data import ArenaMap, LiveSet, Rect, Series, fmt_bytes
from serenity.report.output import MISSING_EXTRA, plot_format

try:
    import matplotlib
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter
except ImportError:  # pragma: no cover - exercised by the missing-extra test via a stub
    raise UsageError(MISSING_EXTRA) from None

if TYPE_CHECKING:
    from serenity.bench import BenchReport

#: Rectangles of an arena panel drawn as vector shapes with a hover title; the
#: rest (the smallest by area) share one rasterised layer.
MAX_ARENA_SHAPES = 1200
#: Colours by role, colour-blind safe (Okabe-Ito).
COLORS = {
    "file": "#7f7f7f",
    "heuristic": "#E69F00",
    "optimum": "#0072B2",
    "rewritten": "#009E73",
    "bound": "#000000",
    "paper": "#CC79A7",
}
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "serenity",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}


@dataclass
class Chart:
    """A figure and the hover text of each of its artists that has one (by gid)."""

    figure: Figure
    tips: dict[str, str] = field(default_factory=dict)
    path_tips: dict[str, list[str]] = field(default_factory=dict)

    def tip(self, artist: Any, text: str) -> None:
        """Give ``artist`` a hover title (an SVG ``<title>``)."""
        gid = f"tip{len(self.tips)}"
        artist.set_gid(gid)
        self.tips[gid] = text

    def tip_each(self, collection: Any, texts: Sequence[str]) -> None:
        """Give each path of ``collection`` (in order) its own hover title."""
        gid = f"tips{len(self.path_tips)}"
        collection.set_gid(gid)
        self.path_tips[gid] = list(texts)


def _palette() -> list[Any]:
    """The 20 colours of matplotlib's qualitative ``tab20`` map."""
    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i) for i in range(cmap.N)]


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), dpi=100, layout="constrained")


def byte_ticks(top: float, most: int = 6) -> list[float]:
    """Round tick positions from 0 to ``top`` bytes: multiples of 1, 2, 2.5 or 5
    times a power of ten of the binary unit :func:`fmt_bytes` shows, at most
    ``most`` + 1 of them.

    Example:
        >>> [t / 2**20 for t in byte_ticks(23_554_176)]
        [0.0, 5.0, 10.0, 15.0, 20.0]
    """
    unit = next((u for u in (1 << 30, 1 << 20, 1 << 10) if top >= u), 1)
    span = max(top / unit, 1e-9)
    power = 10.0 ** math.floor(math.log10(span / most))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= most)
    if unit == 1:
        step = max(step, 1.0)
    return [k * step * unit for k in range(int(span / step + 1e-9) + 1)]


def _byte_axis(axis: Any, top: float) -> None:
    axis.set_major_locator(FixedLocator(byte_ticks(top)))
    axis.set_major_formatter(
        FuncFormatter(lambda v, _pos: fmt_bytes(v).replace(".0 ", " ") if v else "0")
    )


def timeline_figure(
    series: Sequence[Series],
    lower_bound: int | None = None,
    width: float = 10.0,
    bound_label: str = "lower bound",
) -> Chart:
    """Memory over time: one step line per order, the lower bound, each peak marked.

    The line of the last series (the chosen order) is drawn on top; each
    peak is a dot with a hover title naming the op running there.

    Complexity: O(total points).
    """
    with matplotlib.rc_context(_STYLE):
        chart = Chart(_figure(width, 3.6))
        ax = chart.figure.add_subplot()
        for z, s in enumerate(series):
            color = COLORS.get(s.role, "#333333")
            wide = s.role in ("optimum", "rewritten")
            # Step i holds from x = i to i + 1: one more point closes the last step.
            ax.plot(
                [*s.steps, s.num_steps],
                [*s.values, s.values[-1]],
                drawstyle="steps-post",
                color=color,
                lw=1.6 if wide else 1.1,
                alpha=1.0 if wide else 0.85,
                zorder=2 + z,
                label=f"{s.label}: peak {fmt_bytes(s.peak_bytes)}",
            )
            (dot,) = ax.plot(
                [s.peak_step + 0.5],
                [s.peak_bytes],
                "o",
                color=color,
                ms=6,
                zorder=10 + z,
                markeredgecolor="white",
            )
            where = f"at step {s.peak_step} ({s.peak_op})" if s.peak_op else "before the first op"
            chart.tip(dot, f"{s.label}: peak {s.peak_bytes:,} bytes {where}")
        if lower_bound:
            ax.axhline(
                lower_bound,
                color=COLORS["bound"],
                ls="--",
                lw=0.9,
                zorder=1,
                label=f"{bound_label}: {fmt_bytes(lower_bound)}",
            )
        top = max([s.peak_bytes for s in series] + [lower_bound or 0, 1])
        ax.set_ylim(0, top * 1.1)
        ax.set_xlim(-1, max([s.num_steps for s in series] + [1]))
        ax.set_xlabel("step (operator in execution order)")
        ax.set_ylabel("live activation memory")
        _byte_axis(ax.yaxis, top * 1.1)
        ax.grid(axis="y", lw=0.4, alpha=0.5)
        ax.legend(
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=min(len(series) + 1, 3),
            fontsize=8.5,
        )
    return chart


def live_set_figure(sets: Sequence[LiveSet], limit: int = 12, width: float = 10.0) -> Chart:
    """The live set at the peak of each order as one horizontal stacked bar.

    Each bar stacks the ``limit`` largest tensors (largest at the left, the
    name written inside when it fits) and one grey "others" segment; every
    segment's hover title names the tensor, its producer and its size.

    Complexity: O(total tensors).
    """
    with matplotlib.rc_context(_STYLE):
        chart = Chart(_figure(width, 0.75 + 0.62 * len(sets)))
        ax = chart.figure.add_subplot()
        palette = _palette()
        top = max([s.peak_bytes for s in sets] + [1])
        for row, s in enumerate(sets):
            y = len(sets) - 1 - row
            left = 0
            for k, (name, size, hover) in enumerate(s.segments(limit)):
                other = name.endswith(" others") and k == limit
                color = "#d9d9d9" if other else palette[k % len(palette)]
                (bar,) = ax.barh(
                    y, size, left=left, height=0.7, color=color, edgecolor="white", lw=0.6
                )
                chart.tip(bar, f"{s.label}: {hover}")
                if size / top > 0.07:
                    short = name if len(name) <= 26 else "…" + name[-25:]
                    ax.text(
                        left + size / 2,
                        y,
                        f"{short}\n{fmt_bytes(size)}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="#111111",
                        clip_on=True,
                    )
                left += size
        ax.set_yticks(
            range(len(sets)),
            [f"{s.label}\n{fmt_bytes(s.peak_bytes)}" for s in reversed(sets)],
        )
        ax.set_xlim(0, top * 1.01)
        _byte_axis(ax.xaxis, top * 1.01)
        ax.set_xlabel("bytes live at the peak step (largest tensors first; hover for names)")
    return chart


def arena_figure(
    maps: Sequence[ArenaMap], max_shapes: int = MAX_ARENA_SHAPES, width: float = 10.0
) -> Chart:
    """Arena maps side by side on one address scale: x = step, y = byte offset.

    Per panel the ``max_shapes`` largest rectangles are vector shapes with a
    hover title; the rest are one rasterised layer (an inline PNG, counted in
    the panel's subtitle). The arena is a solid line, the lower bound a dashed one.

    Complexity: O(total rectangles).
    """
    with matplotlib.rc_context(_STYLE):
        chart = Chart(_figure(width, 4.2))
        axes = chart.figure.subplots(1, max(1, len(maps)), sharey=True, squeeze=False)[0]
        palette = _palette()
        top = max([m.arena_bytes for m in maps] + [1])
        for ax, m in zip(axes, maps, strict=False):
            shown, rest = m.rects[:max_shapes], m.rects[max_shapes:]
            colors = [palette[(r.x0 * 7 + k) % len(palette)] for k, r in enumerate(m.rects)]
            shapes = PolyCollection(
                [_box(r) for r in shown],
                facecolors=colors[: len(shown)],
                edgecolors="white",
                linewidths=0.25,
            )
            chart.tip_each(shapes, [r.label for r in shown])
            ax.add_collection(shapes)
            if rest:
                layer = PolyCollection(
                    [_box(r) for r in rest],
                    facecolors=colors[len(shown) :],
                    edgecolors="white",
                    linewidths=0.1,
                )
                layer.set_rasterized(True)
                ax.add_collection(layer)
            ax.axhline(m.arena_bytes, color=COLORS["bound"], lw=1.0)
            ax.axhline(m.lower_bound_bytes, color=COLORS["bound"], ls="--", lw=0.8)
            note = f"\n{len(rest):,} smallest buffers as an image, without hover" if rest else ""
            ax.set_title(m.title + note, fontsize=9.5)
            ax.set_xlim(m.first_step - 0.5, m.last_step + 0.5)
            ax.set_xlabel("step")
        axes[0].set_ylim(0, top * 1.04)
        axes[0].set_ylabel("arena offset")
        _byte_axis(axes[0].yaxis, top * 1.04)
    return chart


def _box(r: Rect) -> list[tuple[float, float]]:
    x0, x1, y0, y1 = r.x0 - 0.5, r.x1 - 0.5, r.offset, r.offset + r.size
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def bench_figure(report: BenchReport, width: float = 10.0) -> Chart:
    """Peak reduction vs file order per network (best heuristic, scheduled,
    rewritten), with the paper's geometric means as horizontal lines.

    Complexity: O(networks).
    """
    from serenity.bench import PAPER

    kinds = [("heuristic", "best heuristic", "heuristic"), ("scheduled", "scheduled", "optimum")]
    if any(r.rewritten_peak is not None for r in report.rows):
        kinds.append(("rewritten", "rewritten", "rewritten"))
    with matplotlib.rc_context(_STYLE):
        chart = Chart(_figure(width, 3.8))
        ax = chart.figure.add_subplot()
        w = 0.8 / len(kinds)
        for j, (which, label, role) in enumerate(kinds):
            xs, ys, names = [], [], []
            for i, r in enumerate(report.rows):
                x = r.reduction(which)
                if x:
                    xs.append(i + (j - (len(kinds) - 1) / 2) * w)
                    ys.append(x)
                    names.append(r.name)
            mean = report.geomean(which)
            legend = f"{label} (geo. mean {mean:.2f}x)" if mean else label
            bars = ax.bar(xs, ys, width=w, color=COLORS[role], label=legend)
            for bar, x, y, name in zip(bars, xs, ys, names, strict=True):
                chart.tip(bar, f"{name}, {label}: {y:.2f}x lower than file order")
                if len(report.rows) <= 12:
                    ax.text(x, y, f"{y:.2f}x", ha="center", va="bottom", fontsize=7)
        for key, label, ls in (
            ("geomean_scheduling", "paper, scheduling", "--"),
            ("geomean_rewriting", "paper, with rewriting", ":"),
        ):
            ax.axhline(
                PAPER[key],
                color=COLORS["paper"],
                ls=ls,
                lw=1.1,
                label=f"{label} (geo. mean {PAPER[key]:.2f}x)",
            )
        ax.axhline(1.0, color="#444444", lw=0.6)
        ax.set_xticks(
            range(len(report.rows)),
            [r.name for r in report.rows],
            rotation=30 if len(report.rows) > 5 else 0,
            ha="right" if len(report.rows) > 5 else "center",
        )
        ax.set_ylabel("peak reduction vs file order (x)")
        ax.grid(axis="y", lw=0.4, alpha=0.5)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8.5)
    return chart


_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_NOISE = (
    re.compile(r"<metadata>.*?</metadata>\s*", re.S),
    re.compile(r"<!--.*?-->\s*", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
)
_NUMBER = re.compile(r"(\d+\.\d{2})\d+")
_PATH_END = re.compile(r"\s*/>")


def svg(chart: Chart, *, inline: bool = True) -> str:
    """The chart as SVG text: with ``inline`` a fragment for HTML5 (see the
    module doc), else a standalone file (prolog and namespaces kept).

    Coordinates keep two decimals (a hundredth of a point); hover texts
    become ``<title>`` children of their artists' groups.

    Complexity: O(size of the SVG).
    """
    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        chart.figure.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    if inline:
        text = _PROLOG.sub("", text, count=1)
        for pattern in _NOISE:
            text = pattern.sub("", text)
    text = _NUMBER.sub(r"\1", text).replace(" \nL ", " L ").replace(" \nz\n", " z")
    for gid, tip in chart.tips.items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(tip)}</title>', 1)
    for gid, tips in chart.path_tips.items():
        text = _title_paths(text, gid, tips)
    return text.strip() + "\n"


def _title_paths(text: str, gid: str, tips: Sequence[str]) -> str:
    """Give the ``k``-th ``<path .../>`` of group ``gid`` the title ``tips[k]``
    (matplotlib writes a collection's paths in order, one element each)."""
    start = text.find(f'<g id="{gid}">')
    if start < 0:
        return text
    end = text.find("</g>", start)
    block = text[start:end]
    it = iter(tips)

    def titled(match: re.Match[str]) -> str:
        tip = next(it, None)
        return match.group(0) if tip is None else f"><title>{escape(tip)}</title></path>"

    return text[:start] + _PATH_END.sub(titled, block) + text[end:]


def image_bytes(chart: Chart, path: str) -> bytes:
    """``chart`` as PNG (150 dpi) or standalone SVG, by ``path``'s suffix.

    Raises:
        UsageError: the suffix is neither ``.png`` nor ``.svg``.
    """
    suffix = plot_format(path)
    if suffix == "svg":
        return svg(chart, inline=False).encode()
    buf = io.BytesIO()
    with matplotlib.rc_context(_STYLE):
        chart.figure.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    return buf.getvalue()
