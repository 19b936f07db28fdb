"""One self-contained HTML page per report, and the notebook fragments.

The page has no script, no external stylesheet, font or image: the CSS is
inline, the figures inline SVG (:func:`serenity.report.figures.svg`), hover
texts SVG ``<title>`` elements. Every piece of text from the model (names)
is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from serenity.report import figures
from serenity.report.build import Report
from serenity.report.data import (
    MAX_LIVE_SEGMENTS,
    arena_map,
    fmt_bytes,
    live_set,
    timeline_series,
)

if TYPE_CHECKING:
    from serenity.bench import BenchReport
    from serenity.plan import ArenaPlan
    from serenity.schedule import ScheduleResult

#: Live tensors listed per order in the page's table (the bar shows fewer).
MAX_LIVE_ROWS = 40

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d1d1f;background:#f6f7f9;margin:0}
main{max-width:1120px;margin:0 auto;padding:18px 26px 40px;background:#fff}
h1{font-size:22px;margin:4px 0 0}h2{font-size:16px;margin:26px 0 6px;border-bottom:1px solid #e3e5e8;
padding-bottom:3px}.sub{color:#666;margin:2px 0 12px}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0}
.card{flex:1 1 150px;border:1px solid #e3e5e8;border-radius:8px;padding:8px 12px;background:#fbfbfc}
.card b{display:block;font-size:20px}.card span{color:#555;font-size:12px}
.card.good{border-color:#0072B2;background:#f0f6fb}.card.rw{border-color:#009E73;background:#effaf6}
.proof{margin:10px 0;padding:8px 12px;border-left:4px solid #0072B2;background:#f0f6fb}
.proof.open{border-color:#E69F00;background:#fff8ec}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{padding:3px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f3f4f6;padding:8px 10px;border-radius:6px;white-space:pre-wrap;word-break:break-all}
svg{width:100%;height:auto}.note{color:#555;font-size:12.5px}
details summary{cursor:pointer;color:#0b5394;margin:4px 0}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    num = set(numeric)
    cells = "".join(
        f'<th class="n">{escape(h)}</th>' if i in num else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    out = [f"<table><tr>{cells}</tr>"]
    for row in rows:
        tds = "".join(
            f'<td class="n">{escape(str(c))}</td>' if i in num else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr>{tds}</tr>")
    out.append("</table>")
    return "".join(out)


def _ratio(base: int, peak: int) -> str:
    return f"{base / peak:.2f}x lower" if peak and base > peak else ("1.00x" if peak else "-")


def _value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def render(report: Report) -> str:
    """The report as one HTML document (see the module doc).

    Complexity: linear in the figures' sizes (see :mod:`serenity.report.data`
    for how large graphs are kept small).
    """
    r = report
    chosen = next(s for s in r.series if s.role == "optimum")  # the original graph's order
    final = r.series[-1]
    ours, theirs = r.arenas[0], r.arenas[1]
    cards = [
        _card(fmt_bytes(r.file_peak), "file order peak"),
        _card(
            fmt_bytes(chosen.peak_bytes),
            f"{chosen.label}: {_ratio(r.file_peak, chosen.peak_bytes)}",
            "good",
        ),
    ]
    if final.role == "rewritten":
        cards.append(
            _card(
                fmt_bytes(final.peak_bytes),
                f"with rewrites: {_ratio(r.file_peak, final.peak_bytes)}",
                "rw",
            )
        )
    cards.append(
        _card(
            fmt_bytes(ours.arena_bytes),
            f"arena ({ours.planner}); {theirs.planner}: {fmt_bytes(theirs.arena_bytes)}",
        )
    )
    proof_cls = "proof" if r.proven else "proof open"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>serenity report: {escape(r.title)}</title><style>{_CSS}</style></head>",
        "<body><main>",
        f"<h1>{escape(r.title)}: peak activation memory</h1>",
        f'<p class="sub">serenity {escape(r.version)} report. Hover a peak, a tensor or an '
        "arena block for its name.</p>",
        f'<div class="cards">{"".join(cards)}</div>',
        f'<p class="{proof_cls}">{escape(r.proof)}</p>',
        "<h2>Memory over time</h2>",
        figures.svg(figures.timeline_figure(r.series, r.lower_bound, bound_label=r.bound_label)),
        '<p class="note">Bytes of live activations while each operator runs, one line per '
        "order; dots mark each order's peak. Steps where nothing changes are merged "
        "(the picture is exact).</p>",
        "<h2>Live set at the peak</h2>",
        figures.svg(figures.live_set_figure(r.live_sets, MAX_LIVE_SEGMENTS)),
        _live_tables(r),
        "<h2>Arena map</h2>",
        figures.svg(figures.arena_figure(r.arenas)),
        f'<p class="note">Each block is a tensor: x = the steps it is live, y = its '
        f"offset in the arena. Solid line: arena size; dashed: lower bound "
        f"({fmt_bytes(ours.lower_bound_bytes)}, the most aligned bytes live at one step). "
        f"Left: serenity's planner; right: {escape(theirs.planner)}, the largest-first "
        "greedy planner of TensorFlow Lite Micro, on the same order.</p>",
        "<h2>Orders and arenas</h2>",
        _table(
            ["", "peak bytes", "size", "vs file order", "note"],
            [
                (
                    o.label,
                    f"{o.peak_bytes:,}",
                    fmt_bytes(o.peak_bytes),
                    _ratio(r.file_peak, o.peak_bytes),
                    o.note,
                )
                for o in r.orders
            ],
            numeric=(1, 2, 3),
        ),
    ]
    if r.rewrite_peaks:
        pk = r.rewrite_peaks
        parts += [
            "<h2>Rewrites</h2>",
            _table(
                ["memory model", "peak before", "peak after", "change"],
                [
                    (
                        label,
                        f"{pk[f'{key}_before']:,}",
                        f"{pk[f'{key}_after']:,}",
                        _ratio(pk[f"{key}_before"], pk[f"{key}_after"]),
                    )
                    for label, key in (("default", "default"), ("in-place", "inplace"))
                ],
                numeric=(1, 2, 3),
            ),
            _table(
                ["#", "pass", "nodes", "parts"],
                [
                    (i + 1, w["pass"], ", ".join(w["nodes"]), w["parts"] or "")
                    for i, w in enumerate(r.rewrites)
                ],
                numeric=(0, 3),
            )
            if r.rewrites
            else '<p class="note">No rewrite lowered the peak.</p>',
        ]
    parts += [
        "<h2>Model</h2>",
        _table(["", ""], r.model_stats),
        "<h2>Search</h2>",
        _table(["statistic", "value"], [(k, _value(v)) for k, v in r.search_stats.items()]),
        "<h2>Command</h2>",
        f"<pre>{escape(r.command or '(API call)')}</pre>",
        '<p class="note">' + escape("; ".join(f"{k} {v:.2f} s" for k, v in r.timings)) + "</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _live_tables(r: Report) -> str:
    out = []
    for s in r.live_sets:
        where = f"step {s.step}, while {s.op} runs" if s.op else "before the first operator"
        rows = [(t.name, t.producer, t.op_type, f"{t.size:,}") for t in s.tensors[:MAX_LIVE_ROWS]]
        more = len(s.tensors) - len(rows)
        out.append(
            f"<details><summary>{escape(s.label)}: {len(s.tensors)} tensors, "
            f"{s.peak_bytes:,} bytes at {escape(where)}</summary>"
            + _table(["tensor", "producer", "op type", "bytes"], rows, numeric=(3,))
            + (f'<p class="note">... and {more} smaller tensors</p>' if more else "")
            + "</details>"
        )
    return "".join(out)


def _fragment(title: str, rows: Sequence[tuple[str, str]], svgs: Sequence[str]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return (
        f'<div style="font-family:sans-serif;max-width:960px"><b>{escape(title)}</b>'
        f'<table style="border-collapse:collapse;margin:4px 0">{body}</table>'
        + "".join(svgs)
        + "</div>"
    )


def schedule_fragment(result: ScheduleResult) -> str:
    """HTML for a notebook: the numbers, the timeline and the live set at the peak
    (the figures need the graph, kept on results made by the engines)."""
    rows = [
        ("peak", f"{result.peak_bytes:,} bytes ({fmt_bytes(result.peak_bytes)})"),
        ("lower bound", f"{result.lower_bound_bytes:,} bytes"),
        ("optimal", "yes (proven)" if result.optimal else f"not proven (gap {result.gap:.1%})"),
        ("engine", f"{result.engine}, {result.seconds:.3f} s, {len(result.order)} ops"),
    ]
    problem = getattr(result, "problem", None)
    svgs = []
    if problem is not None:
        label = "optimum (proven)" if result.optimal else result.engine
        s = timeline_series(problem, result.op_order, label, "optimum", inplace=result.inplace)
        svgs.append(figures.svg(figures.timeline_figure([s], result.lower_bound_bytes, 8.0)))
        live = live_set(problem, result.op_order, label, inplace=result.inplace)
        svgs.append(figures.svg(figures.live_set_figure([live], MAX_LIVE_SEGMENTS, 8.0)))
    return _fragment("ScheduleResult", rows, svgs)


def plan_fragment(plan: ArenaPlan) -> str:
    """HTML for a notebook: the numbers and the arena map (when the plan keeps its buffers)."""
    rows = [
        ("arena", f"{plan.arena_bytes:,} bytes ({fmt_bytes(plan.arena_bytes)})"),
        ("lower bound", f"{plan.lower_bound_bytes:,} bytes (alignment {plan.alignment})"),
        (
            "planner",
            f"{plan.planner}, {plan.seconds:.3f} s" + (", optimal" if plan.optimal else ""),
        ),
    ]
    buffers = getattr(plan, "buffers", None)
    svgs = []
    if buffers is not None:
        svgs.append(figures.svg(figures.arena_figure([arena_map(buffers, plan)], width=8.0)))
    return _fragment("ArenaPlan", rows, svgs)


def bench_fragment(report: BenchReport) -> str:
    """HTML for a notebook: the per-network table and the reduction bars."""
    head = ["network", "ops", "file order", "scheduled", "proven", "x"]
    rows = [
        (
            r.name,
            f"{r.ops:,}",
            fmt_bytes(r.file_peak),
            fmt_bytes(r.peak),
            "yes" if r.optimal else "no",
            f"{r.reduction('scheduled') or 0:.2f}x",
        )
        for r in report.rows
    ]
    return (
        '<div style="font-family:sans-serif;max-width:960px"><b>BenchReport</b>'
        + _table(head, rows, numeric=(1, 2, 3, 5))
        + figures.svg(figures.bench_figure(report, 8.0))
        + "</div>"
    )
