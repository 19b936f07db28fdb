"""Orders that move fewer bytes off chip: search with a fixed policy's traffic as the cost.

:func:`minimise_traffic` looks for the topological order whose off-chip
traffic (:func:`serenity.memory.offchip.simulate_traffic`, one policy, one
on-chip size) is least. What it proves, and how:

* **Zero traffic.** Traffic is zero exactly when an order's peak fits (the
  :mod:`serenity.memory.offchip` docstring), so a seed order peaking within
  ``S`` (say the memory-optimal one) is proven optimal at once.
* **The compulsory traffic** (:func:`~serenity.memory.offchip.compulsory_traffic`:
  ops too large for ``S`` stream in every order) plus, when the caller proves
  that every order peaks above ``S``, the smallest positive tensor, is a lower
  bound for every order and policy; a seed or search result that reaches it
  is proven optimal.
* **Exhaustive search** (``method="exhaustive"``) when the graph has at most
  ``max_orders`` topological orders: every one is simulated; proven for the
  policy.
* Otherwise **local search** (``method="local-search"``), a heuristic: not
  proven unless it reaches the lower bound. It starts from the best seed order
  and moves one op at a time to another position between its last
  predecessor and its first successor (half the time within 8 positions), keeping a move when the traffic does
  not grow (sideways moves let it cross plateaus). Half the moves pick an op
  near a step that moves bytes, half any op; a seeded generator makes the
  result deterministic for a given evaluation budget (a time limit, when it
  stops the search first, does not). It is anytime: it never returns an
  order worse than its best seed.

The traffic of a fixed policy is not a function of the executed set alone
(Belady looks ahead, LRU looks back), so SERENITY's dynamic programming over
zero-indegree sets does not carry over exactly; that is why the exact path
here is enumeration.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from serenity.ir import Problem
from serenity.memory import simulate
from serenity.memory.offchip import (
    DEFAULT_POLICY,
    Traffic,
    _simulate,
    compulsory_traffic,
    simulate_traffic,
)
from serenity.schedule.heuristics import HEURISTICS

#: Default number of orders the search simulates before it stops.
DEFAULT_EVALUATIONS = 2000
#: Graphs with at most this many topological orders are searched exhaustively.
DEFAULT_MAX_ORDERS = 1000


@dataclass(frozen=True)
class TrafficResult:
    """The best order found for one on-chip size and policy, and what is proven.

    Attributes:
        order: Op names in execution order.
        op_order: The same order as op ids.
        traffic: Its simulated traffic.
        peak_bytes: Its peak under the default memory model.
        lower_bound_bytes: A proven lower bound on the traffic of every order
            under this policy.
        optimal: True only when no order has less traffic under this policy:
            the bound is reached, or every order was simulated.
        method: ``"seed"`` (a seed order was proven optimal), ``"exhaustive"``
            or ``"local-search"``.
        seed: Name of the seed order the search started from.
        evaluations: Orders simulated.
        stopped: Why the search ended: ``"proven"``, ``"complete"``
            (exhaustive), ``"budget"`` (evaluations), ``"time"``.
        seconds: Wall-clock time.
    """

    order: tuple[str, ...]
    op_order: tuple[int, ...]
    traffic: Traffic
    peak_bytes: int
    lower_bound_bytes: int
    optimal: bool
    method: str
    seed: str
    evaluations: int
    stopped: str
    seconds: float

    @property
    def traffic_bytes(self) -> int:
        return self.traffic.total_bytes


def traffic_lower_bound(
    problem: Problem, onchip_bytes: int, peak_lower_bound: int | None = None
) -> int:
    """A lower bound on the traffic of every order under every policy.

    The compulsory traffic; and when ``peak_lower_bound`` (a proven lower bound
    on every order's peak) exceeds ``onchip_bytes``, at least one live tensor
    is off chip at some step, so at least the smallest positive tensor is
    written. Complexity: O(n + e).
    """
    bound = compulsory_traffic(problem, onchip_bytes)
    if peak_lower_bound is not None and peak_lower_bound > onchip_bytes:
        smallest = min((s for s in problem.tensor_sizes if s > 0), default=0)
        bound = max(bound, smallest)
    return bound


def topological_orders(problem: Problem) -> Iterator[list[int]]:
    """Every topological order, in lexicographic order of op ids.

    Complexity: O(n * (r + d)) per order for r ready ops and out-degree d,
    and there may be n! of them.
    """
    n = problem.num_ops
    indeg = [len(p) for p in problem.preds]
    order: list[int] = []

    def extend(ready: list[int]) -> Iterator[list[int]]:
        if len(order) == n:
            yield list(order)
            return
        for k, v in enumerate(ready):
            order.append(v)
            rest = ready[:k] + ready[k + 1 :]
            for w in problem.succs[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    rest.append(w)
            yield from extend(sorted(rest))
            for w in problem.succs[v]:
                indeg[w] += 1
            order.pop()

    yield from extend([v for v in range(n) if indeg[v] == 0])


def minimise_traffic(
    problem: Problem,
    onchip_bytes: int,
    policy: str = DEFAULT_POLICY,
    *,
    seeds: Mapping[str, Sequence[int]] | None = None,
    peak_lower_bound: int | None = None,
    max_evaluations: int = DEFAULT_EVALUATIONS,
    time_limit: float | None = None,
    max_orders: int = DEFAULT_MAX_ORDERS,
    rng_seed: int = 0,
) -> TrafficResult:
    """Find an order with little off-chip traffic (see the module docstring).

    Args:
        problem: The graph.
        onchip_bytes: On-chip capacity ``S``.
        policy: Eviction policy whose traffic is the cost.
        seeds: Named starting orders (the memory-optimal order, file order...);
            the baseline heuristics when None. The first wins ties.
        peak_lower_bound: A proven lower bound on every order's peak, if known
            (it strengthens the traffic bound).
        max_evaluations: Orders the local search may simulate (it also stops
            after ``4 * max_evaluations`` tries, pinned ops included).
        time_limit: Seconds the search may take (None: no limit).
        max_orders: Enumerate every order when there are at most this many.
        rng_seed: Seed of the local search's move generator.

    Raises:
        ValueError: a seed is not a topological order.

    Complexity: per evaluation, one traffic simulation (O(n + e) plus the
    evictions); at most ``max_orders + max_evaluations`` evaluations.
    """
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    if seeds is None:
        seeds = {name: h(problem, False) for name, h in HEURISTICS.items()}
    bound = traffic_lower_bound(problem, onchip_bytes, peak_lower_bound)
    evaluations = 0
    best: tuple[int, list[int], Traffic, str] | None = None
    for name, seed in seeds.items():
        traffic = simulate_traffic(problem, seed, onchip_bytes, policy)
        evaluations += 1
        if best is None or traffic.total_bytes < best[0]:
            best = (traffic.total_bytes, list(seed), traffic, name)
    if best is None:
        raise ValueError("give at least one seed order")
    seed_name = best[3]

    def done(method: str, stopped: str, optimal: bool) -> TrafficResult:
        assert best is not None
        cost, order, traffic, _ = best
        return TrafficResult(
            order=tuple(problem.op_names[v] for v in order),
            op_order=tuple(order),
            traffic=traffic,
            peak_bytes=simulate(problem, order).peak_bytes,
            lower_bound_bytes=cost if optimal else bound,
            optimal=optimal or cost == bound,
            method=method,
            seed=seed_name,
            evaluations=evaluations,
            stopped=stopped,
            seconds=time.perf_counter() - started,
        )

    if best[0] <= bound:
        return done("seed", "proven", True)

    # Exhaustive search on graphs with few orders.
    orders: list[list[int]] = []
    for order in topological_orders(problem):
        orders.append(order)
        if len(orders) > max_orders:
            break
    if len(orders) <= max_orders:
        for order in orders:
            traffic = _simulate(problem, order, onchip_bytes, policy)
            evaluations += 1
            if traffic.total_bytes < best[0]:
                best = (traffic.total_bytes, order, traffic, seed_name)
        return done("exhaustive", "complete", True)
    del orders

    rng = random.Random(rng_seed)
    stopped = "budget"
    current = list(best[1])
    cost, traffic = best[0], best[2]
    pos = [0] * problem.num_ops
    for i, v in enumerate(current):
        pos[v] = i
    tries = 0  # pinned ops cost a try but no evaluation; bounded so that chains end
    budget = evaluations + max_evaluations
    while evaluations < budget and tries < 4 * max_evaluations and cost > bound:
        tries += 1
        if deadline is not None and time.perf_counter() >= deadline:
            stopped = "time"
            break
        busy = [i for i, b in enumerate(traffic.step_bytes) if b]
        if busy and rng.random() < 0.5:
            i = rng.choice(busy) + rng.randint(-8, 8)
            v = current[min(max(i, 0), len(current) - 1)]
        else:
            v = rng.randrange(problem.num_ops)
        lo = max((pos[u] + 1 for u in problem.preds[v]), default=0)
        hi = min((pos[w] - 1 for w in problem.succs[v]), default=len(current) - 1)
        if lo >= hi:
            continue
        if rng.random() < 0.5:  # half the moves stay close: long jumps are rarely good
            lo, hi = max(lo, pos[v] - 8), min(hi, pos[v] + 8)
        j = rng.randint(lo, hi - 1)
        if j >= pos[v]:
            j += 1  # a position other than the current one
        candidate = current[:]
        candidate.pop(pos[v])
        candidate.insert(j, v)
        evaluations += 1
        new = _simulate(problem, candidate, onchip_bytes, policy)
        if new.total_bytes <= cost:
            current, cost, traffic = candidate, new.total_bytes, new
            a, b = min(j, pos[v]), max(j, pos[v])
            for k in range(a, b + 1):
                pos[current[k]] = k
            if cost < best[0]:
                best = (cost, list(current), traffic, seed_name)
    if cost <= bound:
        stopped = "proven"
    return done("local-search", stopped, False)
