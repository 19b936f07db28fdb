"""``serenity offchip``: off-chip traffic under a small on-chip memory, four orders compared.

Registered in :data:`serenity.cli.COMMAND_MODULES`. The model is stated in
``docs/offchip.md`` and :mod:`serenity.memory.offchip`.
"""

from __future__ import annotations

import argparse
import math

from rich.console import Console
from rich.table import Table

from serenity.api import load_model
from serenity.cli_options import add_input_shape, add_time_limit
from serenity.errors import UsageError
from serenity.io.format import parse_input_shapes
from serenity.memory.offchip import DEFAULT_POLICY, POLICIES, format_size, parse_sizes
from serenity.offchip import ORDER_NAMES, compare_offchip, orders_to_compare, tensor_traffic
from serenity.schedule.traffic import DEFAULT_EVALUATIONS


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``offchip`` subcommand to ``sub``."""
    p = sub.add_parser(
        "offchip",
        help="off-chip traffic on a small on-chip memory: file, heuristic, memory-optimal "
        "and traffic-minimising orders",
    )
    p.set_defaults(run=run)
    p.add_argument("model", help="the ONNX model (external weight files may be missing)")
    p.add_argument(
        "--onchip",
        action="append",
        required=True,
        metavar="SIZE",
        help="on-chip memory size: bytes, or 64KiB, 1MiB (1024-based), 64KB (1000-based); "
        "repeatable or comma-separated",
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        choices=POLICIES,
        help=f"eviction policy (default: {DEFAULT_POLICY}; see docs/offchip.md)",
    )
    add_input_shape(p)
    add_time_limit(p, "seconds for the memory-optimal schedule (default 60)")
    p.add_argument(
        "--evaluations",
        type=int,
        default=DEFAULT_EVALUATIONS,
        metavar="N",
        help=f"orders the traffic search may simulate per size (default {DEFAULT_EVALUATIONS}; "
        "0 skips the search)",
    )
    p.add_argument(
        "--search-time-limit",
        type=float,
        metavar="SECONDS",
        help="seconds per size for the traffic search (default: no limit, so results are "
        "reproducible)",
    )
    p.add_argument(
        "--tensors", type=int, default=5, metavar="N", help="list the N tensors moving most bytes"
    )
    p.add_argument("--json", metavar="FILE", help="write the numbers as JSON")


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _x(r: float | None) -> str:
    if r is None:
        return "-"
    return "zero traffic" if r == math.inf else f"{r:.2f}x"


def run(args: argparse.Namespace, out: Console) -> int:
    """Run ``serenity offchip`` (exit status 0; user errors raise)."""
    sizes = parse_sizes(args.onchip)
    from serenity.cli import _check_json_path, _write_json, check_seconds  # cli imports us

    check_seconds(args, "time_limit", "search_time_limit")
    if args.evaluations < 0 or args.tensors < 0:
        raise UsageError("--evaluations and --tensors must be >= 0")

    model = load_model(args.model, parse_input_shapes(args.input_shape))
    _check_json_path(args, model)
    problem = model.problem
    orders = orders_to_compare(problem, args.time_limit, progress=True)
    comparison = compare_offchip(
        problem,
        sizes,
        orders,
        args.policy,
        search=args.evaluations > 0,
        max_evaluations=args.evaluations,
        time_limit=args.search_time_limit,
    )
    optimal = orders["memory-optimal"]
    table = Table(
        title=f"{model.path.name}: off-chip traffic in KiB ({args.policy}, whole tensors)",
        title_justify="left",
    )
    table.add_column("on-chip")
    for name in ORDER_NAMES:
        if name == "traffic-search" and args.evaluations == 0:
            continue
        table.add_column(name, justify="right")
    table.add_column("lower bound", justify="right")
    table.add_column("memory-opt. x", justify="right")
    table.add_column("search x", justify="right")
    table.add_column("search proven", justify="right")
    for s in comparison.sizes:
        cells = [format_size(s.onchip_bytes)]
        cells += [_kib(t.total_bytes) for t in s.traffic.values()]
        cells += [_kib(s.lower_bound_bytes), _x(s.reduction("memory-optimal"))]
        cells.append(_x(s.reduction("traffic-search")))
        cells.append("-" if s.search is None else ("yes" if s.search.optimal else "no"))
        table.add_row(*cells)
    out.print(table)
    peaks = ", ".join(f"{name} {orders[name].peak_bytes:,} B" for name in orders)
    proof = (
        "proven minimum" if optimal.optimal else f"no order below {optimal.lower_bound_bytes:,} B"
    )
    out.print(f"traffic reaches zero at the order's peak: {peaks} ({proof})")
    if args.tensors:
        for s in comparison.sizes:
            name = "traffic-search" if s.search is not None else "memory-optimal"
            top = tensor_traffic(problem, s.traffic[name], args.tensors)
            if top:
                moved = ", ".join(
                    f"{t['tensor']} (w {_kib(t['write_bytes'])}, r {_kib(t['read_bytes'])})"
                    for t in top
                )
                out.print(f"{format_size(s.onchip_bytes)}, {name}, most moved (KiB): {moved}")
    if args.json:
        data = {"model": str(model.path), "nodes": model.num_nodes}
        data |= comparison.to_json(problem)
        _write_json(args, args.json, data)
    return 0
