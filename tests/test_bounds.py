"""The width bound (serenity.memory.bounds): a lower bound on every order's peak.

Checked against the exhaustive optimum on random graphs in both memory models,
on graphs built like RandWire stages (node outputs summed one Add at a time,
where the bound beats the per-op one), and its treewidth bounds against the
exact treewidth and pathwidth of small random graphs.
"""

from __future__ import annotations

import itertools
import random
from functools import cache

import pytest
from helpers import problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_exact_rules import oracle_optimum, wired, wired_inplace

from serenity import Problem, ScheduleOptions
from serenity.memory import lower_bound
from serenity.memory.bounds import (
    _closure,
    _minors,
    _pathwidth_at_most_python,
    _width,
    minor_min_width,
    minor_pathwidth,
    pathwidth_at_most,
    width_bound,
)
from serenity.schedule.exact import block_precedences, exact

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def treewidth(adj: list[set[int]]) -> int:
    """Exact treewidth by the elimination-order recursion over vertex subsets."""
    n = len(adj)

    def q(eliminated: frozenset[int], v: int) -> int:
        # Vertices outside eliminated + {v} reachable from v through eliminated ones.
        seen, stack, found = {v}, [v], set()
        while stack:
            x = stack.pop()
            for y in adj[x]:
                if y in seen:
                    continue
                seen.add(y)
                if y in eliminated:
                    stack.append(y)
                else:
                    found.add(y)
        return len(found)

    @cache
    def tw(eliminated: frozenset[int]) -> int:
        if len(eliminated) == n:
            return -1
        return min(
            max(tw(eliminated | {v}), q(eliminated, v)) for v in range(n) if v not in eliminated
        )

    return tw(frozenset())


def pathwidth(adj: list[set[int]]) -> int:
    """Exact pathwidth: the vertex separation number, by the recursion over prefixes."""
    n = len(adj)

    @cache
    def vs(placed: frozenset[int]) -> int:
        if len(placed) == n:
            return 0
        return min(
            max(len(set().union(*(adj[u] for u in placed | {v})) - placed - {v}), vs(placed | {v}))
            for v in range(n)
            if v not in placed
        )

    return vs(frozenset())


@st.composite
def graphs(draw: st.DrawFn) -> list[set[int]]:
    n = draw(st.integers(1, 8))
    adj: list[set[int]] = [set() for _ in range(n)]
    for u, w in itertools.combinations(range(n), 2):
        if draw(st.booleans()):
            adj[u].add(w)
            adj[w].add(u)
    return adj


@MANY
@given(graphs())
def test_treewidth_bounds_never_exceed_the_treewidth(adj: list[set[int]]) -> None:
    exact_tw = treewidth(adj)
    assert minor_min_width(adj) <= exact_tw


def _masks(adj: list[set[int]]) -> list[int]:
    return [sum(1 << w for w in a) for a in adj]


@MANY
@given(graphs())
def test_the_exact_pathwidth_decision_matches_the_recursion(adj: list[set[int]]) -> None:
    """``pathwidth_at_most`` answers yes at the pathwidth and no one below it (its free
    placements included); the minor step, given the whole graph, finds the pathwidth
    from any lower start; a spent budget answers nothing."""
    exact_pw = pathwidth(adj)
    assert treewidth(adj) <= exact_pw
    for decide in (pathwidth_at_most, _pathwidth_at_most_python):
        assert decide(_masks(adj), exact_pw, 10**6)[0] is True
        if exact_pw > 0:
            assert decide(_masks(adj), exact_pw - 1, 10**6)[0] is False
    if exact_pw > 0:
        assert minor_pathwidth(adj, 0) == exact_pw
        assert minor_pathwidth(adj, 0, max_visits=0) == 0


@MANY
@given(graphs(), st.integers(0, 3))
def test_contracted_minors_never_have_a_larger_pathwidth(adj: list[set[int]], seed: int) -> None:
    """Every minor ``_minors`` builds has the size asked and at most the graph's pathwidth
    (a wrong contraction that adds an edge between non-neighbours breaks this)."""
    exact_pw = pathwidth(adj)
    sizes = [m for m in (6, 4, 2) if m < len(adj)]
    minors = _minors(adj, sizes, seed)
    assert [len(nb) for nb in minors] == sizes
    for nb in minors:
        small = [{w for w in range(len(nb)) if nb[v] >> w & 1} for v in range(len(nb))]
        assert all(v not in a and all(v in small[w] for w in a) for v, a in enumerate(small))
        assert pathwidth(small) <= exact_pw


@pytest.mark.skipif(_width is None, reason="compiled pathwidth decision not built")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 200), st.floats(0.0, 0.3), st.integers(0, 40), st.integers(0, 2_000))
def test_the_compiled_pathwidth_decision_is_the_reference(
    n: int, density: float, k: int, budget: int
) -> None:
    """``_width.cpp`` answers as the Python reference with the same steps, budget
    included, on graphs of one to four 64-bit words."""
    rnd = random.Random(n * 7919 + k)
    adj: list[set[int]] = [set() for _ in range(n)]
    for u, w in itertools.combinations(range(n), 2):
        if rnd.random() < density:
            adj[u].add(w)
            adj[w].add(u)
    lists = [sorted(a) for a in adj]
    fits, visits = _width.pathwidth_at_most(lists, k, budget)
    answer = None if fits < 0 else bool(fits)
    assert (answer, visits) == _pathwidth_at_most_python(_masks(adj), k, budget)


def _grid(side: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(side * side)]
    for r, c in itertools.product(range(side), repeat=2):
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < side and c + dc < side:
                u, w = r * side + c, (r + dr) * side + c + dc
                adj[u].add(w)
                adj[w].add(u)
    return adj


def test_the_minor_step_lifts_mmd_to_the_pathwidth_of_grids() -> None:
    """An s x s grid has pathwidth s. MMD+ proves 4 on a 7x7 grid; the exact step
    (the grid itself, 49 vertices) proves 7. A 10x10 grid (100 vertices, pathwidth 10)
    is decided on its contracted minors: more than MMD+, never more than 10."""
    small = _grid(7)
    assert minor_min_width(small) == 4
    assert minor_pathwidth(small, 4) == 7
    large = _grid(10)
    low = minor_min_width(large)
    assert low < minor_pathwidth(large, low) <= 10


def test_treewidth_bounds_on_known_graphs() -> None:
    def clique(n: int) -> list[set[int]]:
        return [set(range(n)) - {v} for v in range(n)]

    cycle = [{(v - 1) % 7, (v + 1) % 7} for v in range(7)]
    path = [{w for w in (v - 1, v + 1) if 0 <= w < 6} for v in range(6)]
    assert minor_min_width(clique(6)) == 5
    assert minor_min_width(cycle) == 2
    assert minor_min_width(path) == 1
    assert minor_min_width([set(), set()]) == 0


@MANY
@given(st.data(), st.booleans())
def test_width_bound_never_exceeds_the_optimum(data: st.DataObject, inplace: bool) -> None:
    p = data.draw(problems(max_ops=8, inplace=inplace))
    assert width_bound(p, inplace=inplace) <= oracle_optimum(p, inplace)


@MANY
@given(wired(), st.booleans())
def test_width_bound_on_wired_graphs(p: Problem, inplace: bool) -> None:
    assert width_bound(p, inplace=inplace) <= oracle_optimum(p, inplace)


@MANY
@given(st.data(), st.booleans())
def test_width_bound_over_block_orders_never_exceeds_the_optimum(
    data: st.DataObject, inplace: bool
) -> None:
    """The bound over the orders that keep the delay blocks bounds the optimum (some
    optimal order is among them), and only gains on the bound over every order."""
    p = data.draw(wired_inplace() if inplace else wired())
    before = block_precedences(p, inplace)
    width = width_bound(p, inplace=inplace, before=before)
    assert width_bound(p, inplace=inplace) <= width <= oracle_optimum(p, inplace)


def test_the_closure_adds_the_precedences_given_and_rejects_a_cycle() -> None:
    # a -> b, c independent; "c before a" makes c an ancestor of a and b.
    p = Problem(["a", "b", "c"], [1, 1, 1, 1], [[0], [1], [0]], [[1], [2], [3]], [0], [2, 3])
    assert _closure(p, [0, 0, 0]) == p.ancestor_masks()
    assert _closure(p, [0b100, 0, 0]) == [0b100, 0b101, 0]
    with pytest.raises(ValueError, match="cycle"):
        _closure(p, [0b100, 0, 0b010])


def summed_stage(
    nodes: int, p_edge: float, seed: int, size: int = 4, weighted: bool = False
) -> Problem:
    """A RandWire-like stage: a random DAG on ``nodes`` nodes whose node sums its
    inputs one binary Add at a time, then applies a unary op (every op reads at most
    two tensors, so the per-op bound stays at three tensors). ``weighted``: as the
    zoo builds RandWire, every input is first scaled by a unary op (its weight), so
    each scaling op is a delayable producer of its ``Add``
    (:mod:`serenity.schedule.exact`, "Blocks")."""
    rng = random.Random(seed)
    names: list[str] = []
    sizes = [size]  # tensor 0: the stage input
    ins: list[list[int]] = []
    outs: list[list[int]] = []

    def op(reads: list[int]) -> int:
        sizes.append(size)
        names.append(f"op{len(names)}")
        ins.append(reads)
        outs.append([len(sizes) - 1])
        return len(sizes) - 1

    node_out: list[int] = []
    for j in range(nodes):
        preds = [node_out[i] for i in range(j) if rng.random() < p_edge] or [0]
        acc = op([preds[0]]) if weighted else preds[0]
        for t in preds[1:]:
            acc = op([acc, op([t]) if weighted else t])
        node_out.append(op([acc]))
    read = {t for r in ins for t in r}
    sinks = [t for t in node_out if t not in read]
    acc = sinks[0]
    for t in sinks[1:]:
        acc = op([acc, t])
    return Problem(names, sizes, ins, outs, [0], [acc], inplace_inputs=[r[:1] for r in ins])


def test_width_bound_beats_the_per_op_bound_on_summed_stages() -> None:
    raised = 0
    for seed in range(12):
        p = summed_stage(9, 0.55, seed)
        for inplace in (False, True):
            optimum = oracle_optimum(p, inplace)
            width = width_bound(p, inplace=inplace)
            assert width <= optimum, (seed, inplace)
            raised += width > lower_bound(p, inplace=inplace)
    assert raised >= 6  # the bound is not vacuous on these graphs


def test_the_block_orders_raise_the_width_bound_on_weighted_stages() -> None:
    raised = 0
    for seed in (0, 2, 3, 5, 6, 9, 10, 11):  # the stages of 26 ops or fewer
        p = summed_stage(7, 0.5, seed, weighted=True)
        for inplace in (False, True):
            plain = width_bound(p, inplace=inplace)
            blocks = width_bound(p, inplace=inplace, before=block_precedences(p, inplace))
            assert plain <= blocks <= oracle_optimum(p, inplace), (seed, inplace)
            raised += blocks > plain
    assert raised >= 2  # seeds 3 and 5, default model: to the optimum


def test_exact_reports_the_width_bound_and_stays_optimal() -> None:
    p = summed_stage(9, 0.55, 3)
    r = exact(p, ScheduleOptions())
    assert r.optimal and r.peak_bytes == oracle_optimum(p)
    assert r.stats["width_bound"] >= width_bound(p) > lower_bound(p)
