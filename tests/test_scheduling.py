"""Schedulers and the memory model against oracles written here, on random DAGs.

The oracles are deliberately naive and share no code with the package:
``naive_peak`` recomputes the live set from the definitions at every step, and
``brute_force`` enumerates every topological order.
"""

from __future__ import annotations

import itertools

import pytest
from helpers import problems, time_limited_result
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from serenity import Problem, ScheduleOptions, lower_bound, schedule, simulate
from serenity.errors import CycleError, ModelError, UsageError
from serenity.memory import inplace_saving, live_at_peak_steps
from serenity.schedule import ENGINES, HEURISTICS
from serenity.schedule.exact import cut_ops, exact

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def naive_peak(p: Problem, order: list[int], inplace: bool = False) -> int:
    """Peak by the definitions of docs/memory-model.md, recomputed from scratch at each step."""
    n_outputs = set(p.graph_outputs)

    def live_after(executed: set[int]) -> set[int]:
        live = set()
        for t in range(p.num_tensors):
            prod = p.producer[t]
            exists = prod == -1 or prod in executed
            if not exists:
                continue
            consumers = [v for v in range(p.num_ops) if t in p.op_inputs[v]]
            if (
                t in n_outputs
                or (prod == -1 and not consumers)
                or any(c not in executed for c in consumers)
            ):
                live.add(t)
        return live

    executed: set[int] = set()
    peak = sum(p.tensor_sizes[t] for t in live_after(executed))
    for v in order:
        before = live_after(executed)
        step = sum(p.tensor_sizes[t] for t in before | set(p.op_outputs[v]))
        if inplace:
            after = executed | {v}
            reusable = [
                p.tensor_sizes[t]
                for t in p.inplace_inputs[v]
                if t not in n_outputs
                and all(c in after for c in range(p.num_ops) if t in p.op_inputs[c])
            ]
            step -= max(reusable, default=0)
        peak = max(peak, step)
        executed.add(v)
    return peak


def all_orders(p: Problem, limit: int = 20000) -> list[list[int]]:
    """Every topological order (at most ``limit``)."""
    orders: list[list[int]] = []

    def extend(prefix: list[int], done: set[int]) -> None:
        if len(orders) >= limit:
            return
        if len(prefix) == p.num_ops:
            orders.append(list(prefix))
            return
        for v in range(p.num_ops):
            if v not in done and all(u in done for u in p.preds[v]):
                prefix.append(v)
                done.add(v)
                extend(prefix, done)
                prefix.pop()
                done.remove(v)

    extend([], set())
    return orders


def brute_force(p: Problem, inplace: bool = False) -> int:
    orders = all_orders(p)
    assume(len(orders) < 20000)  # enumerated completely
    return min(naive_peak(p, o, inplace) for o in orders)


@SETTINGS
@given(problems())
def test_every_engine_returns_a_valid_order_and_its_true_peak(p: Problem) -> None:
    for method in ENGINES:
        r = schedule(p, method)
        assert p.is_topological(r.op_order), method
        assert r.order == tuple(p.op_names[v] for v in r.op_order)
        assert r.peak_bytes == naive_peak(p, list(r.op_order)), method
        assert r.lower_bound_bytes <= r.peak_bytes


@SETTINGS
@given(problems(inplace=True), st.booleans())
def test_simulator_agrees_with_naive_simulation(p: Problem, inplace: bool) -> None:
    for order in all_orders(p, limit=50):
        t = simulate(p, order, inplace=inplace)
        assert t.peak_bytes == naive_peak(p, order, inplace)
        assert len(t.step_bytes) == p.num_ops
        assert t.peak_bytes == max(t.initial_bytes, *t.step_bytes)
        at_peak = t.initial_bytes if t.peak_step < 0 else t.step_bytes[t.peak_step]
        assert at_peak == t.peak_bytes
        if not inplace:
            assert sum(p.tensor_sizes[x] for x in t.live_at_peak) == t.peak_bytes
        # Every step tied at the peak contributes its live set; the first is Timeline's.
        tied = live_at_peak_steps(p, order, inplace=inplace)
        assert set(t.live_at_peak) <= tied
        ties = [t.initial_bytes, *t.step_bytes].count(t.peak_bytes)
        if ties == 1:
            assert tied == set(t.live_at_peak)


@SETTINGS
@given(problems(max_ops=9))
def test_brute_force_optimum_bounds_heuristics_and_lower_bound(p: Problem) -> None:
    best = brute_force(p)
    assert lower_bound(p) <= best
    for name, heuristic in HEURISTICS.items():
        assert naive_peak(p, heuristic(p)) >= best, name


def _rescanning_list_schedule(p: Problem, inplace: bool, peak_first: bool) -> list[int]:
    """The list schedulers as written first: every ready op keyed at every step, the
    footprint while it runs included."""
    remaining = [len(c) for c in p.consumers]
    indeg = [len(q) for q in p.preds]
    ready = [v for v in range(p.num_ops) if indeg[v] == 0]
    current = sum(p.tensor_sizes[t] for t in p.graph_inputs)
    order: list[int] = []

    def key(v: int) -> tuple[int, int, int]:
        sizes, outs = p.tensor_sizes, p.op_outputs[v]
        alloc = sum(sizes[t] for t in outs)
        freed = sum(
            sizes[t] for t in p.op_inputs[v] if remaining[t] == 1 and not p.is_graph_output[t]
        )
        freed += sum(sizes[t] for t in outs if not p.consumers[t] and not p.is_graph_output[t])
        saved = inplace_saving(p, v, remaining)[0] if inplace else 0
        return (current + alloc - saved if peak_first else 0, alloc - freed, v)

    while ready:
        v = min(ready, key=key)
        ready.remove(v)
        order.append(v)
        current += key(v)[1]
        for t in p.op_inputs[v]:
            remaining[t] -= 1
        for w in p.succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return order


@SETTINGS
@given(problems(max_ops=14, inplace=True), st.booleans())
def test_the_list_schedulers_key_again_only_the_ops_a_step_changed(
    p: Problem, inplace: bool
) -> None:
    """xla-list and lpmf keep their ready ops in a heap and key again only the
    readers of the tensors a step read: the orders of keying every ready op at
    every step."""
    for name, peak_first in (("xla-list", False), ("lpmf", True)):
        expected = _rescanning_list_schedule(p, inplace, peak_first)
        assert HEURISTICS[name](p, inplace) == expected, name


@SETTINGS
@given(problems(max_ops=10, inplace=True), st.booleans())
def test_exact_equals_brute_force(p: Problem, inplace: bool) -> None:
    best = brute_force(p, inplace)
    r = exact(p, ScheduleOptions(inplace=inplace))
    assert r.optimal
    assert r.peak_bytes == best == r.lower_bound_bytes
    assert r.peak_bytes == naive_peak(p, list(r.op_order), inplace)


@SETTINGS
@given(problems(max_ops=10, inplace=True), st.booleans(), st.integers(-2, 2))
def test_give_up_at_only_stops_when_no_order_beats_it(p: Problem, inplace: bool, off: int) -> None:
    best = brute_force(p, inplace)
    target = best + off
    r = exact(p, ScheduleOptions(inplace=inplace, give_up_at=target))
    assert r.peak_bytes == naive_peak(p, list(r.op_order), inplace)
    assert r.lower_bound_bytes <= best <= r.peak_bytes
    if best < target:  # an order below the target exists: the search must find the optimum
        assert r.optimal and r.peak_bytes == best
    else:  # none does: a stop must still leave a sound bound
        assert r.optimal or r.lower_bound_bytes >= min(target, best)


@SETTINGS
@given(problems(max_ops=10, inplace=True), st.booleans(), st.randoms(use_true_random=False))
def test_a_hint_is_never_beaten_by_a_worse_result(p: Problem, inplace: bool, rnd) -> None:  # type: ignore[no-untyped-def]
    orders = all_orders(p, limit=50)
    hint = rnd.choice(orders)
    hinted = naive_peak(p, hint, inplace)
    for limit in (0.0, None):  # no time to search: the seed alone; unlimited: the optimum
        r = exact(p, ScheduleOptions(inplace=inplace, time_limit=limit, hint=tuple(hint)))
        assert r.peak_bytes <= hinted
        assert p.is_topological(r.op_order)
    assert r.optimal and r.peak_bytes == brute_force(p, inplace)
    # A hint that is not an order of this problem is ignored.
    bad = tuple(reversed(hint)) if len(hint) > 1 and not p.is_topological(hint[::-1]) else None
    if bad is not None:
        assert exact(p, ScheduleOptions(inplace=inplace, hint=bad)).optimal


@SETTINGS
@given(problems(max_ops=10, inplace=True), st.booleans())
def test_decomposition_and_free_moves_never_change_the_optimum(p: Problem, inplace: bool) -> None:
    options = ScheduleOptions(inplace=inplace)
    full = exact(p, options).peak_bytes
    for decompose, free in [(False, False), (True, False), (False, True)]:
        assert exact(p, options, decompose=decompose, free_moves=free).peak_bytes == full


@SETTINGS
@given(problems(max_ops=10))
def test_cut_ops_are_ordered_against_every_other_op(p: Problem) -> None:
    cuts = set(cut_ops(p))
    for order in all_orders(p, limit=200):
        pos = {v: i for i, v in enumerate(order)}
        for c in cuts:
            before = {v for v in range(p.num_ops) if pos[v] < pos[c]}
            for other in all_orders(p, limit=20):
                opos = {v: i for i, v in enumerate(other)}
                assert before == {v for v in range(p.num_ops) if opos[v] < opos[c]}


def fan_out(width: int, big: int = 100, small: int = 1) -> Problem:
    """x feeds ``width`` branches a_i (big output) -> b_i (small output) -> concat."""
    sizes = [2] + [big] * width + [small] * width + [small * width]
    ops = [f"a{i}" for i in range(width)] + [f"b{i}" for i in range(width)] + ["cat"]
    ins = [[0]] * width + [[1 + i] for i in range(width)] + [[1 + width + i for i in range(width)]]
    outs = (
        [[1 + i] for i in range(width)]
        + [[1 + width + i] for i in range(width)]
        + [[len(sizes) - 1]]
    )
    return Problem(ops, sizes, ins, outs, [0], [len(sizes) - 1])


def test_design_worked_example() -> None:
    # docs/memory-model.md: x 2 KiB, a_i 8 KiB, b_i 1 KiB, concat, a final conv.
    k = 1024
    sizes = [2 * k] + [8 * k] * 4 + [k] * 4 + [4 * k, k]
    ops = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)] + ["cat", "fin"]
    ins = [[0]] * 4 + [[1 + i] for i in range(4)] + [[5, 6, 7, 8], [9]]
    outs = [[1 + i] for i in range(4)] + [[5 + i] for i in range(4)] + [[9], [10]]
    p = Problem(ops, sizes, ins, outs, [0], [10])
    assert schedule(p, "file").peak_bytes == 34_816
    r = schedule(p, "exact")
    assert (r.peak_bytes, r.optimal) == (13_312, True)


def test_time_limit_returns_valid_order_and_sound_bound() -> None:
    p = fan_out(12)
    r, _ = time_limited_result(p, exact)
    assert r.peak_bytes <= schedule(p, "best-heuristic").peak_bytes
    if r.peak_bytes != r.lower_bound_bytes:
        assert not r.optimal


@SETTINGS
@given(problems(max_ops=10))
def test_time_limited_search_is_sound_on_random_graphs(p: Problem) -> None:
    r, _ = time_limited_result(p, exact)
    assert r.optimal == (r.peak_bytes == r.lower_bound_bytes)


def test_cycle_and_bad_problems_are_rejected() -> None:
    with pytest.raises(CycleError):
        Problem(["a", "b"], [1, 1, 1], [[0, 2], [1]], [[1], [2]], [0], [2])
    with pytest.raises(ModelError, match="produced by both"):
        Problem(["a", "b"], [1, 1], [[0], [0]], [[1], [1]], [0], [1])
    with pytest.raises(ModelError, match="no producer"):
        Problem(["a"], [1, 1, 1], [[0, 2]], [[1]], [0], [1])
    with pytest.raises(UsageError, match="unknown method"):
        schedule(fan_out(2), "nope")


def test_same_input_gives_same_schedule() -> None:
    p = fan_out(6)
    for method in ENGINES:
        assert schedule(p, method).order == schedule(p, method).order


@pytest.mark.parametrize("width", [2, 5, 8])
def test_fan_out_optimum_runs_branches_one_at_a_time(width: int) -> None:
    p = fan_out(width)
    r = exact(p, ScheduleOptions())
    # One big tensor at a time, plus x and the small results so far.
    assert r.peak_bytes == 2 + 100 + (width - 1) * 1
    assert r.optimal
    assert schedule(p, "file").peak_bytes == 2 + 100 * width


def test_orders_are_checked() -> None:
    p = fan_out(2)
    with pytest.raises(ValueError):
        simulate(p, [0, 0, 1, 2, 3])
    assert not p.is_topological(list(itertools.chain([2], [0, 1, 3, 4])))
