"""ILP engine: the min-peak topological order as a time-indexed 0-1 program.

After Zhong et al., "Memory-aware Scheduling for Complex Wired Networks with
Iterative Graph Optimization" (ICCAD 2023): fuse the graph first
(:mod:`serenity.schedule.fusion`, default model only), then solve an integer
program whose variables are pruned by the topology, solved with OR-Tools
CP-SAT. The same model as a MIP for HiGHS (highspy) is measured in
``benchmarks/ilp.py`` and loses clearly (``benchmarks/RESULTS-ilp.md``); it is
not offered here, also because highspy 1.15 and the HiGHS inside OR-Tools 9.15
cannot be loaded into one process (undefined-symbol errors in either order).

**Formulation.** Positions ``p = 0..n-1``; one op runs per position.

* ``y[v,p]`` (0-1): op ``v`` has run by position ``p`` (at ``p`` or before).
  Monotone: ``y[v,p-1] <= y[v,p]``. One op per position:
  ``sum_v y[v,p] = p + 1``. Precedence, for each edge ``u -> v``:
  ``y[v,p] <= y[u,p-1]``.
* ``z[t,p]`` (0-1): every reader of tensor ``t`` has run by ``p``, i.e.
  ``z = AND_c y[c,p]`` (``z <= y[c,p]`` and ``z >= sum_c y[c,p] - (k-1)``).
  For a tensor with one reader ``c``, ``z[t,p]`` is ``y[c,p]`` itself (no new
  variable); graph outputs are never freed (``z = 0``); a tensor nobody reads
  is freed right after its producer (``z[t,p] = y[prod,p]``); a graph input
  nobody reads stays live (``z = 0``).
* Liveness while the op at position ``p`` runs:
  ``live[t,p] = y[prod(t),p] - z[t,p-1]`` (produced by now, not yet freed
  before this step; graph inputs have ``y[prod,p] = 1``). This counts the
  running op's outputs and its inputs, as the memory model does.
* In-place model (``options.inplace``): ``s[v,t,p]`` (0-1) for each input ``t``
  op ``v`` may overwrite: ``s <= y[v,p] - y[v,p-1]`` (``v`` runs at ``p``),
  ``s <= z[t,p]`` (every reader of ``t`` ran by ``p``, so ``v`` is the last),
  at most one per ``(v,p)``; the step saves ``sum size[t] * s[v,t,p]``.
* Objective: ``min peak`` with ``peak >= sum_t size[t] * live[t,p]
  (- savings)`` for every ``p``, ``peak >= graph inputs``; every size is
  divided by the gcd of all sizes first (exact, and smaller coefficients).

**Pruning by topology.** Op ``v`` runs at a position in
``[lo_v, hi_v] = [|anc(v)|, n-1-|desc(v)|]``, so ``y[v,p]`` is the constant 0
below ``lo_v`` and 1 from ``hi_v`` on; only ``hi_v - lo_v`` variables remain
(none for cut ops, whose window is a single position: the time-indexed model
splits at cut ops by itself). ``z[t,p]`` is 0 before
``|R_t| - 1`` (``R_t``: the readers of ``t`` and all their ancestors, which
must all have run) and 1 from the latest ``hi_c`` of its readers on; memory
rows only hold the tensors whose liveness is not constant at ``p``. Peak is
bounded by the trivial lower bound and the best heuristic's peak, whose order
is the solver's hint (warm start).

**Size.** For ``n`` ops, ``W = sum_v (hi_v - lo_v)`` binaries ``y`` (at most
``n^2``, far fewer on CNNs), ``z`` variables only for multi-reader tensors
inside their windows, ``n`` equality rows, ``O(W * d)`` implications for
monotony and precedence, and ``n`` memory rows with ``O(sum_t window(t))``
non-zeros.

Determinism: fixed seed and an explicit worker count; CP-SAT runs its
workers interleaved (``interleave_search``), which makes the parallel search
deterministic (at limits of a second or more: below, the answer depends on the
clock anyway, and interleaving is off, :mod:`serenity._cpsat`). Under a time limit the proven bound and the best order so far
are returned (``optimal`` false unless they meet).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from serenity._cpsat import roomy
from serenity.errors import UsageError
from serenity.ir import Problem
from serenity.memory import lower_bound, simulate
from serenity.memory.bounds import width_bound
from serenity.schedule.fusion import Fusion, fuse
from serenity.schedule.heuristics import best_heuristic_order
from serenity.schedule.result import ScheduleOptions, ScheduleResult, result_from_order

#: Literals: a variable is its index (>= 0), ``not var`` is ``-3 - var``; constants below.
ZERO, ONE = -1, -2
#: Workers CP-SAT runs (CI machines have 2 cores); fixed for determinism.
WORKERS = 2
SEED = 1
SOLVERS = ("cp-sat",)


@dataclass
class TimeIndexedModel:
    """The 0-1 program above, solver-neutral.

    Attributes:
        n: Ops (= positions).
        num_vars: Binary variables (``y``, ``z``, ``s``); the peak is separate.
        names: One name per variable.
        y: ``y[v]`` maps position -> variable for the free part of op ``v``'s window.
        lo, hi: Op windows.
        implications: ``(a, b)``: ``a => b`` over literals.
        ands: ``(z, [y...])``: ``z`` is the AND of the ``y``s.
        counts: ``(vars, k)``: ``sum(vars) == k``.
        at_most_one: Groups of variables of which at most one is 1.
        memory: Per position, ``(terms, constant)`` with ``sum coef * lit +
            constant <= peak``; a literal may be negative-coefficient.
        peak_lo, peak_hi: Bounds of the (scaled) peak.
        scale: The gcd the sizes were divided by.
        hint: Variable -> 0/1 of the warm-start order.
        hint_peak: Its scaled peak.
    """

    n: int
    scale: int
    lo: list[int]
    hi: list[int]
    num_vars: int = 0
    names: list[str] = field(default_factory=list)
    y: list[dict[int, int]] = field(default_factory=list)
    implications: list[tuple[int, int]] = field(default_factory=list)
    ands: list[tuple[int, list[int]]] = field(default_factory=list)
    counts: list[tuple[list[int], int]] = field(default_factory=list)
    at_most_one: list[list[int]] = field(default_factory=list)
    memory: list[tuple[list[tuple[int, int]], int]] = field(default_factory=list)
    peak_lo: int = 0
    peak_hi: int = 0
    hint: dict[int, int] = field(default_factory=dict)
    hint_peak: int = 0

    def new_var(self, name: str) -> int:
        self.names.append(name)
        self.num_vars += 1
        return self.num_vars - 1

    def y_lit(self, v: int, p: int) -> int:
        if p < self.lo[v]:
            return ZERO
        if p >= self.hi[v]:
            return ONE
        return self.y[v][p]

    def order_from(self, value: Any) -> list[int]:
        """The order encoded by an assignment (``value(var) -> 0/1``)."""
        pos = []
        for v in range(self.n):
            p = self.lo[v] + sum(1 for q, var in self.y[v].items() if round(value(var)) == 0)
            pos.append((p, v))
        return [v for _, v in sorted(pos)]

    @property
    def size(self) -> dict[str, int]:
        return {
            "variables": self.num_vars,
            "y_variables": sum(len(x) for x in self.y),
            "implications": len(self.implications),
            "and_constraints": len(self.ands),
            "memory_nonzeros": sum(len(t) for t, _ in self.memory),
        }


def build_model(
    problem: Problem,
    inplace: bool,
    hint_order: list[int],
    upper: int,
    lower: int,
    *,
    prune: bool = True,
) -> TimeIndexedModel:
    """Build the pruned time-indexed model for ``problem`` (module docstring).

    Args:
        problem: The graph (usually the fused one).
        inplace: Add the in-place savings.
        hint_order: A topological order: the warm start.
        upper: A peak some order reaches (at most the hint's); bounds the objective.
        lower: A proven lower bound on the peak.
        prune: Restrict windows by topology (off only to measure what it buys:
            every op may then take any position, every tensor be freed any time).

    Complexity: O(W * d + sum of tensor windows) for ``W`` window variables.
    """
    n = problem.num_ops
    sizes = problem.tensor_sizes
    anc, desc = problem.ancestor_masks(), problem.descendant_masks()
    lo = [anc[v].bit_count() if prune else 0 for v in range(n)]
    hi = [n - 1 - desc[v].bit_count() if prune else n - 1 for v in range(n)]
    g = math.gcd(*sizes, upper, lower) or 1
    m = TimeIndexedModel(n=n, scale=g, lo=lo, hi=hi)
    pos = [0] * n
    for i, v in enumerate(hint_order):
        pos[v] = i

    for v in range(n):
        m.y.append({})
        for p in range(lo[v], hi[v]):
            var = m.new_var(f"y_{v}_{p}")
            m.y[v][p] = var
            m.hint[var] = int(pos[v] <= p)
    for v in range(n):
        for p in range(lo[v], hi[v] + 1):
            cur = m.y_lit(v, p)
            if p > lo[v]:
                m.implications.append((m.y_lit(v, p - 1), cur))
            for u in problem.preds[v]:
                m.implications.append((cur, m.y_lit(u, p - 1)))
    for p in range(n):
        free = [m.y[v][p] for v in range(n) if lo[v] <= p < hi[v]]
        fixed = sum(1 for v in range(n) if p >= hi[v])
        if free:
            m.counts.append((free, p + 1 - fixed))

    # z: "every reader of t has run by q", as a literal per position.
    z_vars: dict[int, dict[int, int]] = {}
    z_lo: dict[int, int] = {}
    z_hi: dict[int, int] = {}
    for t in range(problem.num_tensors):
        readers = problem.consumers[t]
        if len(readers) < 2 or problem.is_graph_output[t]:
            continue
        need = 0
        for c in readers:
            need |= anc[c] | (1 << c)
        z_lo[t] = need.bit_count() - 1 if prune else 0
        z_hi[t] = max(hi[c] for c in readers)
        z_vars[t] = {}
        for q in range(z_lo[t], z_hi[t]):
            var = m.new_var(f"z_{t}_{q}")
            z_vars[t][q] = var
            m.hint[var] = int(all(pos[c] <= q for c in readers))
            m.ands.append((var, [m.y_lit(c, q) for c in readers]))

    def z_lit(t: int, q: int) -> int:
        if q < 0:
            return ZERO  # nothing has run before the first position
        readers = problem.consumers[t]
        if problem.is_graph_output[t]:
            return ZERO
        if not readers:
            prod = problem.producer[t]
            return ZERO if prod == -1 else m.y_lit(prod, q)
        if len(readers) == 1:
            return m.y_lit(readers[0], q)
        if q < z_lo[t]:
            return ZERO
        if q >= z_hi[t]:
            return ONE
        return z_vars[t][q]

    # Memory rows. live[t,p] = y[prod,p] - z[t,p-1].
    rows: list[dict[int, int]] = [{} for _ in range(n)]
    consts = [0] * n
    for t in range(problem.num_tensors):
        size = sizes[t] // g
        if size == 0:
            continue
        prod = problem.producer[t]
        for p in range(n):
            made = ONE if prod == -1 else m.y_lit(prod, p)
            gone = z_lit(t, p - 1)
            for lit, sign in ((made, 1), (gone, -1)):
                if lit == ONE:
                    consts[p] += sign * size
                elif lit != ZERO:
                    rows[p][lit] = rows[p].get(lit, 0) + sign * size

    if inplace:
        reused = simulate(problem, hint_order, inplace=True).reused
        for v in range(n):
            cands = [t for t in problem.inplace_inputs[v] if not problem.is_graph_output[t]]
            cands = [t for t in cands if sizes[t] // g > 0]
            for p in range(lo[v], hi[v] + 1) if cands else ():
                group = []
                for t in cands:
                    s = m.new_var(f"s_{v}_{t}_{p}")
                    group.append(s)
                    m.hint[s] = int(pos[v] == p and reused[p] == t)
                    m.implications.append((s, m.y_lit(v, p)))
                    m.implications.append((s, _neg(m.y_lit(v, p - 1))))
                    m.implications.append((s, z_lit(t, p)))
                    rows[p][s] = rows[p].get(s, 0) - sizes[t] // g
                if len(group) > 1:
                    m.at_most_one.append(group)

    m.memory = [
        ([(c, lit) for lit, c in sorted(rows[p].items()) if c], consts[p]) for p in range(n)
    ]
    m.peak_lo = -(-lower // g)
    m.peak_hi = upper // g
    m.hint_peak = simulate(problem, hint_order, inplace=inplace).peak_bytes // g
    return m


def _neg(lit: int) -> int:
    """The negation of a literal."""
    if lit == ZERO:
        return ONE
    if lit == ONE:
        return ZERO
    return -3 - lit


@dataclass
class _Solved:
    order: list[int] | None
    bound: int  # scaled
    proven: bool
    status: str
    seconds: float


def _solve_cpsat(
    m: TimeIndexedModel, time_limit: float | None, progress: bool, started: float
) -> _Solved:
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    xs = [model.new_bool_var(name) for name in m.names]

    def lit(a: int) -> Any:
        return xs[a] if a >= 0 else ~xs[-3 - a]

    for a, b in m.implications:
        if a == ZERO or b == ONE:
            continue
        if b == ZERO:
            model.add_bool_or([~lit(a)])
        elif a == ONE:
            model.add_bool_or([lit(b)])
        else:
            model.add_implication(lit(a), lit(b))
    for z, ys in m.ands:
        inner = [y for y in ys if y != ONE]
        if any(y == ZERO for y in inner):
            model.add(xs[z] == 0)
            continue
        for y in inner:
            model.add_implication(xs[z], lit(y))
        model.add_bool_or([xs[z], *(~lit(y) for y in inner)])
    for vs, k in m.counts:
        model.add(sum(xs[v] for v in vs) == k)
    for group in m.at_most_one:
        model.add_at_most_one(xs[v] for v in group)
    peak = model.new_int_var(m.peak_lo, max(m.peak_lo, m.peak_hi), "peak")
    for terms, const in m.memory:
        if terms:
            model.add(sum(c * xs[v] for c, v in terms) + const <= peak)
        else:
            model.add(peak >= const)
    model.minimize(peak)
    # The warm start only where the search has time to use it (serenity._cpsat:
    # a hint with a deadline inside presolve can abort OR-Tools). The objective
    # stays bounded by the hint's peak either way.
    if roomy(time_limit):
        for v, val in m.hint.items():
            model.add_hint(xs[v], val)
        model.add_hint(peak, m.hint_peak)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = WORKERS
    solver.parameters.interleave_search = roomy(time_limit)  # not short ones: serenity._cpsat
    solver.parameters.random_seed = SEED
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = max(time_limit, 0.01)
    # No solution, bound or log callback either (serenity._cpsat). Progress is a heartbeat from another thread
    # (the solver releases the GIL while it searches).
    with _heartbeat(started, len(xs)) if progress else contextlib.nullcontext():
        status = solver.solve(model)
    name = solver.status_name(status)
    if progress:
        print(
            f"ilp: {time.perf_counter() - started:6.1f}s  CP-SAT {name}: bound "
            f"{int(math.ceil(solver.best_objective_bound - 1e-6)) * m.scale:,}",
            file=sys.stderr,
            flush=True,
        )
    if status in (cp_model.MODEL_INVALID, cp_model.INFEASIBLE):
        raise RuntimeError(f"ILP model is {name}; the hinted order satisfies it")
    order = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        order = m.order_from(lambda v: solver.value(xs[v]))
    bound = int(math.ceil(solver.best_objective_bound - 1e-6)) if order else m.peak_lo
    return _Solved(order, bound, status == cp_model.OPTIMAL, name, solver.wall_time)


#: Seconds between two progress lines of a running CP-SAT search.
HEARTBEAT = 5.0


@contextlib.contextmanager
def _heartbeat(started: float, variables: int) -> Iterator[None]:
    """Print a line on stderr every :data:`HEARTBEAT` seconds until the block ends."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT):
            print(
                f"ilp: {time.perf_counter() - started:6.1f}s  CP-SAT searching "
                f"({variables:,} variables)",
                file=sys.stderr,
                flush=True,
            )

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def ilp(
    problem: Problem,
    options: ScheduleOptions,
    *,
    solver: str = "cp-sat",
    use_fusion: bool = True,
    prune: bool = True,
) -> ScheduleResult:
    """The memory-optimal order by the pruned time-indexed ILP (module docstring).

    Fuses the graph (default model), hints the solver with the best heuristic
    order, and returns the best order found with the solver's proven bound;
    optimal when the solver proves it within ``options.time_limit``.

    Args:
        problem: The graph.
        options: Memory model, time limit (for the whole engine), progress.
        solver: ``"cp-sat"`` (the only one; see the module docstring for HiGHS).
        use_fusion: Fuse first (default model only; switch off to compare).
        prune: Prune variables by topology (switch off to compare).

    Raises:
        UsageError: ``solver`` is unknown.
    """
    if solver not in SOLVERS:
        raise UsageError(f"unknown ILP solver '{solver}' (choose from: {', '.join(SOLVERS)})")
    started = time.perf_counter()
    inplace = options.inplace
    base_order, _, _ = best_heuristic_order(problem, inplace)
    base_peak = simulate(problem, base_order, inplace=inplace).peak_bytes
    trivial = lower_bound(problem, inplace=inplace)
    stats: dict[str, Any] = {"heuristic_peak": base_peak, "trivial_bound": trivial}
    if base_peak <= trivial:
        stats.update(status="heuristic meets the bound", solver=solver)
        return result_from_order(problem, base_order, "ilp", options, started=started, stats=stats)

    fusion = fuse(problem) if use_fusion and not inplace else None
    target = fusion.problem if fusion else problem
    stats.update(ops=problem.num_ops, ops_fused=target.num_ops, solver=solver)
    hint = _fused_hint(fusion, base_order, inplace) if fusion else base_order
    hint_peak = simulate(target, hint, inplace=inplace).peak_bytes
    stats["hint_peak"] = hint_peak
    width = width_bound(target, inplace=inplace)  # fusion keeps the optimum
    stats["width_bound"] = width
    floor = max(trivial, width)
    model = build_model(target, inplace, hint, min(hint_peak, base_peak), floor, prune=prune)
    stats.update(model.size)
    stats["build_seconds"] = round(time.perf_counter() - started, 3)
    remaining = None
    if options.time_limit is not None:
        remaining = options.time_limit - (time.perf_counter() - started)
    solved = _solve_cpsat(model, remaining, options.progress, started)
    stats.update(status=solved.status, solver_seconds=round(solved.seconds, 3))

    order = base_order
    if solved.order is not None:
        found = fusion.expand(solved.order) if fusion else solved.order
        if simulate(problem, found, inplace=inplace).peak_bytes < base_peak:
            order = found
    # The model's optimum is the problem's (fusion keeps it), so its bound is a bound.
    return result_from_order(
        problem,
        order,
        "ilp",
        options,
        started=started,
        bound=solved.bound * model.scale,
        stats=stats,
    )


def _fused_hint(fusion: Fusion, base_order: list[int], inplace: bool) -> list[int]:
    """The better of the fused graph's best heuristic order and ``base_order`` made fused.

    ``base_order`` becomes a fused order by running each group where its first
    op ran (valid: an edge into a group enters at its first op).
    """
    first = {v: i for i, v in enumerate(base_order)}
    lifted = sorted(range(len(fusion.groups)), key=lambda w: first[fusion.groups[w][0]])
    own, _, _ = best_heuristic_order(fusion.problem, inplace)
    peaks = [simulate(fusion.problem, o, inplace=inplace).peak_bytes for o in (lifted, own)]
    return lifted if peaks[0] <= peaks[1] else own
