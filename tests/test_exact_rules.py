"""The exact engine's pruning rules against an exhaustive oracle, on graphs built to break them.

The oracle (``oracle_optimum``) is a memoised search over every downset that
recomputes each step's footprint from the definitions of DESIGN.md; it shares
no code with the package. The strategy ``wired`` draws graphs where the
delaying rule applies often and at its edges: producers read by one consumer
that has several predecessors, inputs shared with other ops (so that a delayed
producer keeps them alive), graph outputs and dead outputs, consumers that are
themselves producers of another block, and sizes from a small set so that the
rule's inequalities are often tight.
"""

from __future__ import annotations

import itertools
from functools import cache

import pytest
from helpers import problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serenity import Problem, ScheduleOptions, simulate
from serenity.schedule import exact as exact_module
from serenity.schedule.exact import (
    _compile,
    _improve,
    _Local,
    _Ops,
    _Search,
    _Timeout,
    delayable_producers,
    exact,
)

MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle_optimum(p: Problem, inplace: bool = False) -> int:
    """The minimum peak over every topological order, by memoised recursion on downsets.

    With ``inplace``, an op's step is less the largest input it may overwrite that
    is no graph output and that no other op still has to read.
    """
    outputs = set(p.graph_outputs)
    readers = [[v for v in range(p.num_ops) if t in p.op_inputs[v]] for t in range(p.num_tensors)]

    def live(done: frozenset[int]) -> int:
        total = 0
        for t in range(p.num_tensors):
            prod = p.producer[t]
            if prod != -1 and prod not in done:
                continue
            pending = any(r not in done for r in readers[t])
            if t in outputs or pending or (prod == -1 and not readers[t]):
                total += p.tensor_sizes[t]
        return total

    @cache
    def best(done: frozenset[int]) -> int:
        if len(done) == p.num_ops:
            return 0
        here = live(done)
        result = None
        for v in range(p.num_ops):
            if v in done or any(u not in done for u in p.preds[v]):
                continue
            step = here + sum(p.tensor_sizes[t] for t in p.op_outputs[v])
            if inplace:
                step -= max(
                    (
                        p.tensor_sizes[t]
                        for t in p.inplace_inputs[v]
                        if t not in outputs and all(r in done or r == v for r in readers[t])
                    ),
                    default=0,
                )
            cost = max(step, best(done | {v}))
            result = cost if result is None else min(result, cost)
        assert result is not None
        return result

    start = frozenset[int]()
    return max(live(start), best(start))


@st.composite
def wired(draw: st.DrawFn, max_ops: int = 11) -> Problem:
    """Graphs rich in single-consumer producers feeding multi-input consumers."""
    size = st.sampled_from([0, 1, 2, 3, 4, 8])
    sizes = [draw(size) for _ in range(draw(st.integers(1, 2)))]
    graph_inputs = list(range(len(sizes)))
    op_inputs: list[list[int]] = []
    op_outputs: list[list[int]] = []
    unread: list[int] = list(graph_inputs)  # produced tensors nobody reads yet
    n_ops = draw(st.integers(2, max_ops))
    for _ in range(n_ops):
        avail = len(sizes)
        fan_in = draw(st.integers(1, min(3, avail)))
        # Prefer tensors nobody reads yet (single-consumer producers), else any.
        ins: list[int] = []
        for _ in range(fan_in):
            pool = [t for t in unread if t not in ins] if draw(st.booleans()) else []
            pool = pool or [t for t in range(avail) if t not in ins]
            if not pool:
                break
            ins.append(draw(st.sampled_from(pool)))
        unread = [t for t in unread if t not in ins]
        outs = [len(sizes)]
        sizes.append(draw(size))
        if draw(st.integers(0, 5)) == 0:  # a second output, often dead
            outs.append(len(sizes))
            sizes.append(draw(size))
        op_inputs.append(ins)
        op_outputs.append(outs)
        unread.extend(outs)
    produced = {t for o in op_outputs for t in o}
    graph_outputs = [op_outputs[-1][0]]
    extra = draw(st.lists(st.sampled_from(sorted(produced)), max_size=2, unique=True))
    graph_outputs += [t for t in extra if t not in graph_outputs]
    return Problem(
        [f"op{i}" for i in range(n_ops)],
        sizes,
        op_inputs,
        op_outputs,
        graph_inputs,
        graph_outputs,
    )


@st.composite
def wired_inplace(draw: st.DrawFn) -> Problem:
    """``wired`` graphs where ops may overwrite an input of their output's size."""
    p = draw(wired())
    cands = [
        [t for t in ins if len(outs) == 1 and p.tensor_sizes[t] == p.tensor_sizes[outs[0]]]
        for ins, outs in zip(p.op_inputs, p.op_outputs, strict=True)
    ]
    chosen = [draw(st.lists(st.sampled_from(c), unique=True)) if c else [] for c in cands]
    return Problem(
        list(p.op_names),
        list(p.tensor_sizes),
        p.op_inputs,
        p.op_outputs,
        p.graph_inputs,
        p.graph_outputs,
        inplace_inputs=chosen,
    )


def _exact_peak(p: Problem, inplace: bool = False, **flags: bool) -> int:
    r = exact(p, ScheduleOptions(inplace=inplace), **flags)
    assert p.is_topological(r.op_order)
    assert r.optimal and r.lower_bound_bytes == r.peak_bytes
    assert simulate(p, r.op_order, inplace=inplace).peak_bytes == r.peak_bytes
    return r.peak_bytes


def test_in_place_a_producer_is_not_delayed_behind_a_consumer_that_overwrites_its_output() -> None:
    """u frees x (4) and writes a (4); v overwrites a. Delaying u behind w peaks at 12:
    the default rule's (2) holds, the in-place one (with s_v = 4) does not."""
    p = Problem(
        ["u", "w", "v"],
        [4, 1, 4, 4, 4],  # x, y, a, c, b
        [[0], [1], [2, 3]],
        [[2], [3], [4]],
        [0, 1],
        [4],
        inplace_inputs=[[], [], [2]],
    )
    assert delayable_producers(p)[0] == 2  # default model: u waits for v
    assert delayable_producers(p, inplace=True)[0] is None
    assert simulate(p, [1, 0, 2], inplace=True).peak_bytes == 12
    assert oracle_optimum(p, inplace=True) == 9
    assert _exact_peak(p, True, fusion=False, free_moves=False, decompose=False) == 9


@MANY
@given(wired_inplace())
def test_delay_rule_keeps_the_in_place_optimum_on_adversarial_graphs(p: Problem) -> None:
    best = oracle_optimum(p, inplace=True)
    assert _exact_peak(p, True, free_moves=False, decompose=False) == best
    assert _exact_peak(p, True) == best


@MANY
@given(wired())
def test_delay_rule_keeps_the_optimum_on_adversarial_graphs(p: Problem) -> None:
    best = oracle_optimum(p)
    # Alone (no fusion, no free moves, no decomposition), and with everything on.
    assert _exact_peak(p, fusion=False, free_moves=False, decompose=False) == best
    assert _exact_peak(p) == best


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_ops=10))
def test_delay_rule_keeps_the_optimum_on_random_graphs(p: Problem) -> None:
    best = oracle_optimum(p)
    assert _exact_peak(p, fusion=False, free_moves=False, decompose=False) == best
    assert _exact_peak(p, fusion=False) == best


def test_a_producer_that_keeps_a_shared_input_alive_is_not_delayed() -> None:
    """The condition ``a_live >= F_max`` is needed: a counterexample without it.

    ``x`` (10 bytes) is read by ``u`` and ``w``; ``u`` makes ``y`` (1 byte), read
    only by ``v``, whose output (11 bytes) satisfies ``a - a_live + F_max <= out(v)``.
    Delaying ``u`` until ``v``'s other input is ready keeps ``x`` alive across the
    50-byte step of ``q``: every such order peaks at 61, the optimum at 52.
    """
    sizes = [10, 1, 1, 50, 1, 11]  # x, y, s, q, r, out
    ops = ["u", "w", "q", "r", "v"]
    ins = [[0], [0], [2], [3], [1, 4]]
    outs = [[1], [2], [3], [4], [5]]
    p = Problem(ops, sizes, ins, outs, [0], [5])
    assert oracle_optimum(p) == 52
    u, r = 0, 3
    orders = [o for o in itertools.permutations(range(5)) if p.is_topological(o)]
    delayed = [o for o in orders if o.index(u) > o.index(r)]  # u after v's other input
    assert min(simulate(p, o).peak_bytes for o in delayed) == 61
    assert delayable_producers(p)[u] is None
    assert _exact_peak(p) == 52
    assert _exact_peak(p, fusion=False, free_moves=False, decompose=False) == 52


def test_several_delayable_producers_of_one_consumer_run_as_one_block() -> None:
    """Two producers of one consumer are both delayable: the rule must not wait
    for each other (a rule "run u only when v's other inputs are ready" would
    leave no op to run) and finds the optimum."""
    # x feeds m0 and m1 (scales, read only by add), and a big branch b -> c.
    sizes = [4, 4, 4, 4, 40, 1, 4]  # x, m0, m1, add, b, c, out
    ops = ["m0", "m1", "add", "b", "c", "cat"]
    ins = [[0], [0], [1, 2], [0], [4], [3, 5]]
    outs = [[1], [2], [3], [4], [5], [6]]
    p = Problem(ops, sizes, ins, outs, [0], [6])
    consumers = delayable_producers(p)
    assert consumers[0] == consumers[1] == 2
    assert _exact_peak(p, fusion=False, free_moves=False, decompose=False) == oracle_optimum(p)


def _whole(p: Problem) -> tuple[_Ops, int, list[int]]:
    ops = _compile(p, inplace=False)
    order = p.topological_order()
    return ops, sum(1 << v for v in order), order


def _initial(p: Problem) -> int:
    return simulate(p, p.topological_order()).initial_bytes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired(), st.integers(1, 8))
def test_beam_and_window_search_return_valid_orders_never_below_the_optimum(
    p: Problem, width: int
) -> None:
    best = oracle_optimum(p)
    ops, goal, order = _whole(p)
    search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None)
    found = search.beam(width, None)
    assert found is not None
    beam_order, peak = found
    assert p.is_topological(beam_order)
    assert simulate(p, beam_order).peak_bytes == max(peak, _initial(p)) >= best
    counters = _Local()
    better, local_peak = _improve(ops, 0, _initial(p), order, 0, None, True, counters)
    assert p.is_topological(better)
    true_peak = simulate(p, better).peak_bytes
    assert true_peak == max(local_peak, _initial(p)) >= best
    assert true_peak <= simulate(p, order).peak_bytes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired(), st.integers(1, 8))
def test_a_beam_keeps_to_its_budget_of_generated_successors(p: Problem, width: int) -> None:
    """The budget is a count, not a clock: a beam that generates more than it stops
    with nothing, one within it finds the same order as without a budget, and
    ``_improve`` starts a wider beam only when its predicted count fits."""
    ops, goal, order = _whole(p)

    def beam(budget: int | None) -> tuple[tuple[list[int], int] | None, int]:
        search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None)
        return search.beam(width, None, budget), search.generated

    free, generated = beam(None)
    assert free is not None and generated > 0
    assert beam(generated) == (free, generated)
    cut, spent = beam(generated - 1)
    assert cut is None and spent <= generated
    for budget in (0, generated, 10**9):
        counters = _Local()
        _improve(ops, 0, _initial(p), order, 0, None, True, counters, False, (1, 8), budget)
        # a beam stops at the first expansion over the budget: at most its moves over
        assert counters.generated <= budget + max(len(order), 1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired(), st.integers(1, 5))
def test_a_search_stopped_and_resumed_still_finds_the_optimum(p: Problem, budget: int) -> None:
    best = oracle_optimum(p)
    ops, goal, _ = _whole(p)
    search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None)
    while True:
        search.max_expanded = search.expanded + budget
        try:
            order, peak = search.run()
            break
        except _Timeout:
            assert search.level <= best  # a proven bound at every stop
    assert max(peak, _initial(p)) == best == simulate(p, order).peak_bytes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired())
def test_the_memory_cap_keeps_the_result_sound(p: Problem) -> None:
    best = oracle_optimum(p)
    r = exact(p, ScheduleOptions(search_memory=0), fusion=False)
    assert p.is_topological(r.op_order)
    assert r.lower_bound_bytes <= best <= r.peak_bytes == simulate(p, r.op_order).peak_bytes
    assert r.optimal == (r.peak_bytes == r.lower_bound_bytes)
    if r.stats.get("memory_capped"):
        assert not r.stats.get("gave_up")


@MANY
@given(wired(), wired_inplace(), st.sampled_from([2, 3, 8]))
def test_free_sets_keep_the_optimum_in_both_memory_models(
    p: Problem, q: Problem, most: int
) -> None:
    """Free sets (``serenity.schedule.decide``, "Free sets") of up to ``most`` ops in the
    best-first search: the oracle's optimum on the adversarial graphs, both models."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_module, "FREE_SET_OPS", most)
        assert _exact_peak(p, fusion=False, decompose=False) == oracle_optimum(p)
        assert _exact_peak(q, True, decompose=False) == oracle_optimum(q, inplace=True)
