"""Off-chip traffic of four orders side by side, per on-chip size (``serenity offchip``).

For each on-chip size ``S`` and one eviction policy
(:mod:`serenity.memory.offchip`), the traffic of:

- ``file``: the order the model lists (our stand-in for TensorFlow Lite's);
- ``best-heuristic``: the lowest-peak baseline heuristic's order;
- ``memory-optimal``: the exact engine's minimum-peak order (``auto``; proven
  unless its time limit stopped it);
- ``traffic-search``: :func:`serenity.schedule.traffic.minimise_traffic`,
  seeded with the orders above and the baseline heuristics (proven only where
  its result says ``optimal``).

Traffic is zero exactly when an order's peak fits in ``S``, so the smallest
size with zero traffic is each order's peak, and for every order the
memory-optimal peak (when proven).

Example:
    >>> from serenity.ir import Problem
    >>> p = Problem(["a", "b"], [4, 8, 2], [[0], [1]], [[1], [2]], [0], [2])
    >>> c = compare_offchip(p, [10, 12], orders_to_compare(p))
    >>> [s.traffic["file"].total_bytes for s in c.sizes]
    [16, 0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from serenity import __version__
from serenity.ir import Problem
from serenity.memory.offchip import DEFAULT_POLICY, Traffic, format_size, simulate_traffic
from serenity.schedule import HEURISTICS, ScheduleOptions, ScheduleResult, schedule
from serenity.schedule.traffic import (
    DEFAULT_EVALUATIONS,
    TrafficResult,
    minimise_traffic,
    traffic_lower_bound,
)

#: The orders compared, in the order reports list them.
ORDER_NAMES: tuple[str, ...] = ("file", "best-heuristic", "memory-optimal", "traffic-search")

#: SERENITY's reported reduction in off-chip traffic against TensorFlow Lite's
#: order, by on-chip size in bytes (Ahn et al., MLSys 2020, the talk's slides).
PAPER_REDUCTION: dict[int, float] = {32768: 1.52, 65536: 1.49, 131072: 1.51, 262144: 1.76}


@dataclass(frozen=True)
class SizeComparison:
    """The traffic of every order on one on-chip size.

    Attributes:
        onchip_bytes: ``S``.
        traffic: Per order name (:data:`ORDER_NAMES`), its simulated traffic.
        search: The traffic search's result (None when it was skipped).
        lower_bound_bytes: A proven lower bound on every order's traffic.
    """

    onchip_bytes: int
    traffic: dict[str, Traffic]
    search: TrafficResult | None
    lower_bound_bytes: int

    def reduction(self, name: str) -> float | None:
        """File-order traffic divided by ``name``'s (inf when only ``name``'s is 0)."""
        if name not in self.traffic:
            return None
        base, other = self.traffic["file"].total_bytes, self.traffic[name].total_bytes
        if other == 0:
            return 1.0 if base == 0 else math.inf
        return base / other


@dataclass(frozen=True)
class OffchipComparison:
    """Every size's :class:`SizeComparison` and the orders compared."""

    policy: str
    orders: dict[str, ScheduleResult]
    sizes: list[SizeComparison]

    def to_json(self, problem: Problem) -> dict[str, Any]:
        """The JSON document (a contract: keys are only ever added)."""
        optimal = self.orders["memory-optimal"]
        return {
            "scheduled_ops": problem.num_ops,
            "activation_tensors": problem.num_tensors,
            "policy": self.policy,
            "memory_model": "default",
            "orders": {
                name: {
                    "engine": r.engine,
                    "peak_bytes": r.peak_bytes,
                    "peak_optimal": r.optimal,
                    "zero_traffic_from_bytes": r.peak_bytes,
                }
                for name, r in self.orders.items()
            },
            # Traffic is zero iff the peak fits: below the proven minimum peak, no
            # order avoids off-chip traffic.
            "zero_traffic_from_bytes": optimal.peak_bytes,
            "zero_traffic_from_proven": optimal.optimal,
            "no_order_is_zero_below_bytes": optimal.lower_bound_bytes,
            "sizes": [size_json(problem, s) for s in self.sizes],
            "serenity_version": __version__,
        }


def size_json(problem: Problem, s: SizeComparison) -> dict[str, Any]:
    """One size's entry of :meth:`OffchipComparison.to_json`."""
    entry: dict[str, Any] = {
        "onchip_bytes": s.onchip_bytes,
        "onchip": format_size(s.onchip_bytes),
        "lower_bound_bytes": s.lower_bound_bytes,
        "traffic": {
            name: {
                "traffic_bytes": t.total_bytes,
                "read_bytes": t.read_bytes,
                "write_bytes": t.write_bytes,
                "streamed_ops": len(t.streamed),
            }
            for name, t in s.traffic.items()
        },
        "reduction_vs_file": {
            name: _finite(s.reduction(name)) for name in s.traffic if name != "file"
        },
        "traffic_search": None,
    }
    if s.search is not None:
        r = s.search
        entry["traffic_search"] = {
            "traffic_bytes": r.traffic_bytes,
            "optimal": r.optimal,
            "method": r.method,
            "seed": r.seed,
            "evaluations": r.evaluations,
            "stopped": r.stopped,
            "seconds": round(r.seconds, 6),
            "peak_bytes": r.peak_bytes,
            "schedule": list(r.order),
            "tensors": tensor_traffic(problem, r.traffic),
        }
    return entry


def _finite(x: float | None) -> float | str | None:
    return "inf" if x == math.inf else x


def tensor_traffic(
    problem: Problem, traffic: Traffic, top: int | None = None
) -> list[dict[str, Any]]:
    """Tensors that move, most bytes first (ties: tensor id): name, bytes read and written."""
    moved = [
        t for t in range(problem.num_tensors) if traffic.tensor_reads[t] or traffic.tensor_writes[t]
    ]
    moved.sort(key=lambda t: (-(traffic.tensor_reads[t] + traffic.tensor_writes[t]), t))
    return [
        {
            "tensor": problem.tensor_names[t],
            "bytes": problem.tensor_sizes[t],
            "read_bytes": traffic.tensor_reads[t],
            "write_bytes": traffic.tensor_writes[t],
        }
        for t in moved[:top]
    ]


def orders_to_compare(
    problem: Problem, time_limit: float | None = None, *, progress: bool = False
) -> dict[str, ScheduleResult]:
    """File order, the best heuristic and the memory-optimal order (``auto``,
    with ``time_limit`` seconds: 60 by default)."""
    options = ScheduleOptions(time_limit=time_limit)
    return {
        "file": schedule(problem, "file", options),
        "best-heuristic": schedule(problem, "best-heuristic", options),
        "memory-optimal": schedule(problem, "auto", replace(options, progress=progress)),
    }


def compare_offchip(
    problem: Problem,
    sizes: Sequence[int],
    orders: Mapping[str, ScheduleResult],
    policy: str = DEFAULT_POLICY,
    *,
    search: bool = True,
    max_evaluations: int = DEFAULT_EVALUATIONS,
    time_limit: float | None = None,
) -> OffchipComparison:
    """Simulate every order of ``orders`` (:func:`orders_to_compare`) on every
    size and, with ``search``, look for an order with less traffic.

    Args:
        problem: The graph.
        sizes: On-chip sizes in bytes.
        orders: ``file``, ``best-heuristic`` and ``memory-optimal`` results.
        policy: Eviction policy.
        search: Run :func:`~serenity.schedule.traffic.minimise_traffic`.
        max_evaluations: Its evaluation budget per size.
        time_limit: Its time limit per size, seconds (None: none).

    Complexity: per size, one simulation per order plus the search's.
    """
    optimal = orders["memory-optimal"]
    # The memory-optimal order first: it wins ties among the seeds.
    seeds: dict[str, Sequence[int]] = {"memory-optimal": optimal.op_order}
    seeds |= {name: r.op_order for name, r in orders.items() if name != "memory-optimal"}
    seeds |= {name: h(problem, False) for name, h in HEURISTICS.items() if name != "file"}
    rows: list[SizeComparison] = []
    for size in sizes:
        traffic = {
            name: simulate_traffic(problem, orders[name].op_order, size, policy)
            for name in ORDER_NAMES[:3]
        }
        found = None
        bound = traffic_lower_bound(problem, size, optimal.lower_bound_bytes)
        if search:
            found = minimise_traffic(
                problem,
                size,
                policy,
                seeds=seeds,
                peak_lower_bound=optimal.lower_bound_bytes,
                max_evaluations=max_evaluations,
                time_limit=time_limit,
            )
            traffic["traffic-search"] = found.traffic
        rows.append(SizeComparison(size, traffic, found, bound))
    return OffchipComparison(policy, dict(orders), rows)


#: The orders ``serenity bench --offchip`` simulates, by column name.
BENCH_ORDERS: tuple[str, ...] = ("file", "heuristic", "scheduled")


def bench_columns(
    problem: Problem, orders: Mapping[str, Sequence[int]], sizes: Sequence[int]
) -> dict[str, dict[str, int]]:
    """Belady traffic of each of :data:`BENCH_ORDERS` (``orders`` maps them to op
    orders) per size: ``{"64KiB": {"file": bytes, ...}}``. No search (bench stays fast).

    Complexity: one simulation per order and size.
    """
    return {
        format_size(size): {
            name: simulate_traffic(problem, orders[name], size).total_bytes for name in BENCH_ORDERS
        }
        for size in sizes
    }


def bench_reduction(cells: Mapping[str, int], name: str = "scheduled") -> float:
    """File-order traffic / ``name``'s traffic (inf when only ``name``'s is zero)."""
    base, other = cells["file"], cells[name]
    if other == 0:
        return 1.0 if base == 0 else math.inf
    return base / other


def bench_markdown(rows: Sequence[tuple[str, Mapping[str, Mapping[str, int]]]]) -> list[str]:
    """The ``bench --offchip`` section: per network and size, file-order and scheduled
    traffic (KiB) and their ratio; geometric mean per size against the paper's."""
    if not rows:
        return []
    sizes = list(rows[0][1])
    lines = [
        "## Off-chip traffic (Belady, whole tensors; docs/offchip.md)",
        "",
        "KiB written off chip plus read back: file order / scheduled order (reduction).",
        "",
        "| network | " + " | ".join(sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name, columns in rows:
        cells = []
        for size in sizes:
            c = columns[size]
            r = bench_reduction(c)
            shown = "zero" if r == math.inf else f"{r:.2f}x"
            cells.append(f"{c['file'] / 1024:,.0f} / {c['scheduled'] / 1024:,.0f} ({shown})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = []
    for size in sizes:
        vals = [bench_reduction(c[size]) for _, c in rows]
        finite = [v for v in vals if v != math.inf]
        gm = math.exp(sum(map(math.log, finite)) / len(finite)) if finite else None
        paper = {format_size(k): v for k, v in PAPER_REDUCTION.items()}.get(size)
        means.append(
            f"{size} {'-' if gm is None else f'{gm:.2f}x'}"
            + (f" (paper {paper:.2f}x)" if paper else "")
        )
    lines += ["", "Geometric mean reduction: " + ", ".join(means) + ".", ""]
    return lines
