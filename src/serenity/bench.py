"""``serenity bench``: the SERENITY evaluation, reproduced side by side with our numbers.

For each network (the zoo's builders and/or ``.onnx`` files) it measures:

- the **file-order** peak: the order the exporter wrote, our stand-in for
  TensorFlow Lite's order (TFLite runs operators in the order of its flatbuffer);
- the **best heuristic** peak (the lowest of the baseline list schedulers);
- the peak of the chosen method (``auto`` by default: the exact engine under a
  time limit), its proven lower bound and whether it is proven optimal;
- scheduling time; weights and MACs of the network (so a reader can check our
  zoo networks are the size the paper's table says).

and the geometric means of the reductions against file order, next to the
paper's reported figures (:data:`PAPER`). The markdown table and the JSON file
carry the same numbers; peaks are exact bytes (and KiB, as the paper reports KB).

Example:
    >>> from serenity.zoo import build_example
    >>> report = run_bench([("example", build_example)], progress=False)
    >>> row = report.rows[0]
    >>> row.file_peak, row.peak, row.optimal
    (172032, 86016, True)
    >>> round(report.geomean("scheduled"), 2)
    2.0
"""

from __future__ import annotations

import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from serenity import __version__
from serenity.errors import SerenityError, UsageError
from serenity.io.onnx_import import OnnxModel, load_onnx
from serenity.schedule import (
    DEFAULT_METHOD,
    DEFAULT_SEARCH_MEMORY,
    ScheduleOptions,
    ScheduleResult,
    schedule,
)

if TYPE_CHECKING:
    from serenity.rewrite.driver import RewriteResult

#: What the SERENITY paper (Ahn et al., MLSys 2020) reports, for the side-by-side.
PAPER: dict[str, Any] = {
    "geomean_scheduling": 1.68,  # peak reduction vs TensorFlow Lite, scheduling alone
    "geomean_rewriting": 1.86,  # ... with identity graph rewriting
    "scheduling_time": "under one minute",
    # The networks of the paper's table, as named in serenity.zoo.
    "networks": ["darts_imagenet", "swiftnet_hpd", "randwire_cifar10", "randwire_cifar100"],
}

Builder = Callable[[], onnx.ModelProto]


@dataclass
class BenchRow:
    """One network's measurements (bytes unless named otherwise)."""

    name: str
    source: str
    nodes: int
    ops: int
    weights: int | None
    macs: int | None
    file_peak: int
    heuristic_peak: int
    heuristic: str
    peak: int
    lower_bound: int
    optimal: bool
    engine: str
    seconds: float
    rewritten_peak: int | None = None
    rewritten_optimal: bool | None = None
    rewrites: int | None = None
    rewrite_seconds: float | None = None
    rewrite_passes: dict[str, int] | None = None
    verified: bool | None = None
    max_abs_diff: float | None = None
    noise_floor: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: ``bench --offchip``: per on-chip size, Belady traffic of file/heuristic/scheduled.
    offchip: dict[str, dict[str, int]] | None = None

    def reduction(self, which: str) -> float | None:
        """File-order peak divided by the ``heuristic``, ``scheduled`` or ``rewritten`` peak."""
        peak = {"heuristic": self.heuristic_peak, "scheduled": self.peak}.get(
            which, self.rewritten_peak
        )
        return self.file_peak / peak if peak else None


@dataclass(frozen=True)
class BenchError:
    """A network that could not be measured: its one-line error (bad model, failed check)."""

    name: str
    source: str
    error: str


@dataclass
class BenchReport:
    """All rows plus how they were made.

    ``errors`` holds the networks that failed (a bad model in a directory
    does not stop the run); they count in no geometric mean.
    """

    rows: list[BenchRow]
    method: str
    time_limit: float | None
    inplace: bool
    rewrite: bool = False
    verify: bool = False
    trial_time_limit: float | None = None
    errors: list[BenchError] = field(default_factory=list)
    search_memory: int | None = DEFAULT_SEARCH_MEMORY

    def geomean(self, which: str, names: Iterable[str] | None = None) -> float | None:
        """Geometric mean of :meth:`BenchRow.reduction` over the rows that have it
        (only the rows named in ``names``, when given)."""
        keep = None if names is None else set(names)
        rows = [row for row in self.rows if keep is None or row.name in keep]
        values = [r for r in (row.reduction(which) for row in rows) if r]
        if not values:
            return None
        return math.exp(sum(math.log(v) for v in values) / len(values))

    def _repr_html_(self) -> str | None:
        """Notebook view: the table and the reduction bars (``report`` extra; None without it)."""
        from serenity.report import bench_html

        return bench_html(self)

    def to_json(self) -> dict[str, Any]:
        """The JSON document ``serenity bench --json`` writes."""
        return {
            "serenity_version": __version__,
            "python": platform.python_version(),
            "method": self.method,
            "time_limit": self.time_limit,
            "rewrite": self.rewrite,
            "verify": self.verify,
            "trial_time_limit": self.trial_time_limit,
            "search_memory": self.search_memory,
            "memory_model": "in-place" if self.inplace else "default",
            "rows": [asdict(r) for r in self.rows],
            "errors": [asdict(e) for e in self.errors],
            "geomean": {k: self.geomean(k) for k in ("heuristic", "scheduled", "rewritten")},
            "paper": PAPER,
        }


def report_from_json(data: dict[str, Any]) -> BenchReport:
    """Rebuild a :class:`BenchReport` from :meth:`BenchReport.to_json` (to re-render it)."""
    return BenchReport(
        rows=[BenchRow(**row) for row in data["rows"]],
        method=data["method"],
        time_limit=data["time_limit"],
        inplace=data["memory_model"] == "in-place",
        rewrite=data.get("rewrite", False),
        verify=data.get("verify", False),
        trial_time_limit=data.get("trial_time_limit"),
        errors=[BenchError(**e) for e in data.get("errors", [])],
        search_memory=data.get("search_memory", DEFAULT_SEARCH_MEMORY),
    )


def zoo_sources() -> list[tuple[str, Builder]]:
    """The full-size zoo networks (``serenity.zoo.BENCHMARKS``), in their listed order."""
    import serenity.zoo as zoo

    benchmarks: dict[str, Builder] = getattr(zoo, "BENCHMARKS", {})
    return list(benchmarks.items())


def path_sources(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """``.onnx`` files named, or found (sorted) in the directories named.

    Raises:
        UsageError: a path does not exist, or a directory holds no ``.onnx`` file.
    """
    found: list[tuple[str, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(p.glob("*.onnx"))
            if not files:
                raise UsageError(f"{p}: no .onnx files in this directory")
            found += [(f.stem, f) for f in files]
        elif p.is_file():
            found.append((p.stem, p))
        else:
            raise UsageError(f"{p}: no such file or directory")
    return found


def _weights_and_macs(proto: onnx.ModelProto) -> tuple[int | None, int | None]:
    try:
        from serenity.zoo.stats import count_weights_and_macs
    except ImportError:  # the zoo's counter is optional for bench
        return None, None
    weights, macs = count_weights_and_macs(proto)
    return int(weights), int(macs)


def bench_model(
    name: str,
    model: OnnxModel,
    *,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = None,
    inplace: bool = False,
    rewrite: bool = False,
    verify: bool = False,
    trial_time_limit: float | None = None,
    source: str = "",
    progress: bool = False,
    offchip: Sequence[int] = (),
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
) -> BenchRow:
    """Measure one loaded model (see the module docstring for the columns).

    With ``rewrite``, the rewriting driver (:mod:`serenity.rewrite`) runs with
    the same method and ``trial_time_limit`` per trial schedule (the driver's
    default when None), then the rewritten graph is scheduled once with
    ``time_limit`` like the original; with ``verify`` as
    well, the rewritten model must match the original in onnxruntime (rtol
    1e-4, atol 1e-5; missing weights filled with the same seeded values).

    Raises:
        VerificationError: a rewritten model's outputs differ.
    """
    options = ScheduleOptions(inplace=inplace, time_limit=time_limit, search_memory=search_memory)
    file_r = schedule(model.problem, "file", options)
    heur = schedule(model.problem, "best-heuristic", options)
    started = time.perf_counter()
    # Long searches report their progress on stderr (the engines print after a second).
    result = schedule(model.problem, method, replace(options, progress=progress))
    seconds = time.perf_counter() - started
    weights, macs = _weights_and_macs(model.proto)
    row = BenchRow(
        name=name,
        source=source or str(model.path),
        nodes=model.num_nodes,
        ops=model.problem.num_ops,
        weights=weights,
        macs=macs,
        file_peak=file_r.peak_bytes,
        heuristic_peak=heur.peak_bytes,
        heuristic=str(heur.stats.get("chosen", "")),
        peak=result.peak_bytes,
        lower_bound=result.lower_bound_bytes,
        optimal=result.optimal,
        engine=result.engine,
        seconds=seconds,
        stats={k: v for k, v in result.stats.items() if isinstance(v, (int, float, str))},
    )
    if offchip:  # off-chip traffic columns (serenity.offchip)
        from serenity.offchip import bench_columns

        orders = {"file": file_r.op_order, "heuristic": heur.op_order, "scheduled": result.op_order}
        row.offchip = bench_columns(model.problem, orders, offchip)
    if rewrite:
        with_progress = replace(options, progress=progress)
        _rewrite_columns(row, model, method, with_progress, verify, trial_time_limit, result)
    return row


def rewrite_then_reschedule(
    model: OnnxModel,
    method: str,
    options: ScheduleOptions,
    trial_time_limit: float | None,
    baseline: ScheduleResult,
) -> tuple[RewriteResult, ScheduleResult]:
    """Run the rewriting driver from ``baseline`` (the unchanged graph's schedule
    under the full limit: a rewrite must beat it), then schedule the rewritten
    graph once more with ``options``' full limit, from the driver's order (its
    trials use ``trial_time_limit``); ``options.progress`` prints the
    driver's and the final schedule's progress on stderr.

    Returns:
        The driver's result and the better of its final schedule and the
        rescheduled one (``baseline`` when nothing was rewritten).
    """
    from serenity.rewrite.driver import rewrite_for_memory

    rw = rewrite_for_memory(
        model,
        method,
        inplace=options.inplace,
        time_limit=trial_time_limit,
        baseline=baseline,
        progress=options.progress,
        search_memory=options.search_memory,
    )
    if not rw.rewrites:  # the graph is unchanged: its schedule is the baseline
        return rw, baseline
    final = schedule(rw.model.problem, method, replace(options, hint=rw.after.op_order))
    better = (final.peak_bytes, not final.optimal) < (rw.after.peak_bytes, not rw.after.optimal)
    return rw, final if better else rw.after


def _rewrite_columns(
    row: BenchRow,
    model: OnnxModel,
    method: str,
    options: ScheduleOptions,
    verify: bool,
    trial_time_limit: float | None,
    baseline: ScheduleResult,
) -> None:
    """Fill ``row``'s rewriting columns (:func:`rewrite_then_reschedule`)."""
    from serenity.api import checked_model
    from serenity.rewrite import count_passes

    rw, best = rewrite_then_reschedule(model, method, options, trial_time_limit, baseline)
    row.rewrites = len(rw.rewrites)
    row.rewrite_seconds = rw.seconds
    row.rewrite_passes = count_passes(rw.rewrites)
    row.rewritten_peak, row.rewritten_optimal = best.peak_bytes, best.optimal
    if verify and rw.rewrites:
        _, report = checked_model(model, rw.model, best, verify=True, exact=False)
        assert report is not None
        row.verified, row.max_abs_diff = True, report.max_abs_diff
        row.noise_floor = report.noise_floor


def run_bench(
    sources: Sequence[tuple[str, Builder | str | Path]],
    *,
    method: str = DEFAULT_METHOD,
    time_limit: float | None = None,
    inplace: bool = False,
    rewrite: bool = False,
    verify: bool = False,
    trial_time_limit: float | None = None,
    progress: bool = True,
    offchip: Sequence[int] = (),
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
) -> BenchReport:
    """Benchmark every source: a zoo builder (called, saved to a temporary file
    and loaded like any model) or a path to an ``.onnx`` file.

    Args:
        sources: ``(name, builder or path)`` pairs, benchmarked in this order.
        method: The scheduling method measured against file order.
        time_limit: Seconds per network for the method (``auto``: 60 s if None).
        inplace: Use the in-place memory model.
        rewrite: Also run the rewriting driver (the rewriting columns).
        verify: Check every rewritten model in onnxruntime.
        trial_time_limit: Seconds per trial schedule of the rewriting driver.
        progress: Print one line per network to stderr.
        offchip: On-chip sizes (bytes) for the off-chip traffic columns.
        search_memory: Bytes each exact search may hold
            (:attr:`~serenity.schedule.ScheduleOptions.search_memory`).
    """
    rows: list[BenchRow] = []
    errors: list[BenchError] = []
    with tempfile.TemporaryDirectory(prefix="serenity-bench-") as tmp:
        for k, (name, src) in enumerate(sources, 1):
            if progress:
                print(f"[{k}/{len(sources)}] {name} ...", file=sys.stderr, flush=True)
            if isinstance(src, (str, Path)):
                path, label = Path(src), str(src)
            else:
                path, label = Path(tmp) / f"{name}.onnx", "serenity.zoo"
                onnx.save(src(), str(path))
            try:
                row = bench_model(
                    name,
                    load_onnx(path),
                    method=method,
                    time_limit=time_limit,
                    inplace=inplace,
                    rewrite=rewrite,
                    verify=verify,
                    trial_time_limit=trial_time_limit,
                    source=label,
                    progress=progress,
                    offchip=offchip,
                    search_memory=search_memory,
                )
            except (SerenityError, MemoryError) as e:  # one bad network does not end the run
                message = str(e) if isinstance(e, SerenityError) else "out of memory"
                errors.append(BenchError(name, label, " ".join(message.split())))
                if progress:
                    print(f"    error: {errors[-1].error}", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            if progress:
                proof = "optimal" if row.optimal else f"bound {row.lower_bound:,}"
                rewritten = (
                    ""
                    if row.rewritten_peak is None
                    else f", rewritten {row.rewritten_peak:,} B ({row.rewrites} rewrites)"
                )
                print(
                    f"    file {row.file_peak:,} B -> {row.peak:,} B ({proof}) "
                    f"in {row.seconds:.2f} s{rewritten}",
                    file=sys.stderr,
                    flush=True,
                )
    return BenchReport(
        rows,
        method,
        time_limit,
        inplace,
        rewrite,
        verify,
        trial_time_limit,
        errors=errors,
        search_memory=search_memory,
    )


def _num(n: float | None, unit: str = "") -> str:
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f}"


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _verified_cell(r: BenchRow) -> str:
    if not r.rewrites:
        return "no rewrite"
    if not r.verified:
        return "no"
    floor = "" if r.noise_floor is None else f", noise floor {r.noise_floor:.1g}"
    return f"yes ({r.max_abs_diff:.1g}{floor})"


def markdown(report: BenchReport, command: str = "", notes: str = "") -> str:
    """The results as a markdown document: the table, geometric means, the paper's figures."""
    lines = ["# serenity bench: peak activation memory", ""]
    if command:
        lines += [f"Regenerate with `{command}`.", ""]
    limit = "60 s (auto's default)" if report.time_limit is None else f"{report.time_limit:g} s"
    if report.rewrite:
        trial = 10.0 if report.trial_time_limit is None else report.trial_time_limit
        limit += (
            f"; the rewriting search schedules each candidate graph with {trial:g} s, then the "
            "rewritten graph once more with the full limit"
        )
    model = "in-place" if report.inplace else "default (docs/memory-model.md)"
    lines += [
        f"Method `{report.method}`, time limit {limit} per network, memory model {model}, "
        f"serenity {__version__}, Python {platform.python_version()}. Peaks are exact bytes "
        '(KiB = 1024 B); "file order" is the order the model file lists, our stand-in for '
        "TensorFlow Lite's order. Reductions are file-order peak / peak.",
        "",
    ]
    has_rewrite = any(r.rewritten_peak is not None for r in report.rows)
    head = [
        "network", "ops", "weights", "MACs", "file order B", "file KiB", "best heuristic B",
        "scheduled B", "scheduled KiB", "lower bound B", "proven", "sched. s",
        "heuristic x", "scheduled x",
    ]  # fmt: skip
    if has_rewrite:
        head += ["rewritten B", "rewritten KiB", "proven", "rewrites", "rewritten x"]
        if report.verify:
            head.append("verified")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report.rows:
        cells = [
            r.name,
            f"{r.ops:,}",
            _num(r.weights),
            _num(r.macs),
            f"{r.file_peak:,}",
            _kib(r.file_peak),
            f"{r.heuristic_peak:,} ({r.heuristic})",
            f"{r.peak:,}",
            _kib(r.peak),
            f"{r.lower_bound:,}",
            "yes" if r.optimal else "no",
            f"{r.seconds:.2f}",
            _x(r.reduction("heuristic")),
            _x(r.reduction("scheduled")),
        ]
        if has_rewrite:
            cells += [
                "-" if r.rewritten_peak is None else f"{r.rewritten_peak:,}",
                _kib(r.rewritten_peak),
                {None: "-", True: "yes", False: "no"}[r.rewritten_optimal],
                _passes(r),
                _x(r.reduction("rewritten")),
            ]
            if report.verify:
                cells.append(_verified_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
    for e in report.errors:
        lines.append("| " + " | ".join([e.name, "failed", *["-"] * (len(head) - 2)]) + " |")
    if report.errors:
        lines += [
            "",
            f"{len(report.errors)} network(s) could not be measured; they count in no mean:",
            "",
            *(f"- {e.name} (`{e.source}`): {e.error}" for e in report.errors),
        ]
    if has_rewrite and report.verify:
        lines += [
            "",
            "verified: the rewritten model and the original give the same outputs in "
            "onnxruntime on seeded inputs, within rtol 1e-4 / atol 1e-5 (largest absolute "
            'difference in brackets). "noise floor" marks a network deep enough that the '
            "original alone, run without onnxruntime's graph optimizations, already differs "
            "from itself by more than that; there the rewritten model passes by differing at "
            "most 2x that much (`serenity.io.verify`).",
        ]
    from serenity.zoo import PAPER_SIZES

    sized = [r for r in report.rows if r.name in PAPER_SIZES]
    paper_rows = [r.name for r in report.rows if r.name in PAPER["networks"]]
    groups: list[tuple[str, list[str] | None]] = [("all networks", None)]
    if paper_rows and len(paper_rows) < len(report.rows):
        groups.append(("the paper's networks", paper_rows))
    lines += [
        "",
        "## Geometric means against file order, and the paper",
        "",
        "| | " + " | ".join(f"ours, {g}" for g, _ in groups) + " | SERENITY paper (vs TFLite) |",
        "|---|" + "---|" * len(groups) + "---|",
    ]
    paper = {"scheduled": PAPER["geomean_scheduling"], "rewritten": PAPER["geomean_rewriting"]}
    for label, which in (
        ("best heuristic", "heuristic"),
        ("scheduling", "scheduled"),
        ("scheduling + rewriting", "rewritten"),
    ):
        ours = " | ".join(_x(report.geomean(which, names)) for _, names in groups)
        theirs = f"{paper[which]:.2f}x" if which in paper else "-"
        lines.append(f"| {label} | {ours} | {theirs} |")
    slowest = " | ".join(
        f"{max((r.seconds for r in report.rows if n is None or r.name in n), default=0):.2f} s"
        for _, n in groups
    )
    lines += [f"| slowest scheduling | {slowest} | {PAPER['scheduling_time']} |", ""]
    if sized:
        lines += [
            "## Network sizes against the published ones",
            "",
            "Weights: conv/fc weights and biases plus BN scale and bias; MACs: Conv, Gemm and "
            "MatMul (`serenity.zoo.count_weights_and_macs`). Published sizes: SERENITY's table; "
            "NASNet-A mobile from Zoph et al. (not in SERENITY's table).",
            "",
            "| network | MACs (ours) | MACs (published) | weights (ours) | weights (published) |",
            "|---|---|---|---|---|",
        ]
        for r in sized:
            weights, macs = PAPER_SIZES[r.name]
            lines.append(
                f"| {r.name} | {_num(r.macs)} | {_num(macs)} ({_pct(r.macs, macs)}) | "
                f"{_num(r.weights)} | {_num(weights)} ({_pct(r.weights, weights)}) |"
            )
        lines.append("")
    if any(r.offchip for r in report.rows):
        from serenity.offchip import bench_markdown

        lines += bench_markdown([(r.name, r.offchip) for r in report.rows if r.offchip])
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def _passes(r: BenchRow) -> str:
    if r.rewrites is None:
        return "-"
    detail = ", ".join(f"{k} {v}" for k, v in (r.rewrite_passes or {}).items())
    return f"{r.rewrites} ({detail})" if detail else str(r.rewrites)


def _pct(ours: int | None, paper: float) -> str:
    return "-" if ours is None else f"ours {ours / paper - 1:+.1%}"
