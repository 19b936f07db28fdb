"""The cut bound (serenity.memory.cuts): each op's least step by a minimum cut.

The cut of an op is checked against the least step found by enumerating every
downset it may run from (both memory models, with and without the delay blocks'
precedences), and the bound against the exhaustive optimum.
"""

from __future__ import annotations

import itertools
import operator

import pytest
from helpers import problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bounds import summed_stage
from test_exact_rules import _initial, oracle_optimum, wired, wired_inplace

from serenity import Problem, ScheduleOptions
from serenity.ir import ops_of
from serenity.memory import cuts, simulate
from serenity.memory.bounds import _closure, width_bound
from serenity.memory.cuts import (
    DEAD_BYTES,
    ENTRY_BYTES,
    LEAD_WEIGHT,
    NEVER,
    SOLVE_RATE,
    WINNER_WEIGHT,
    CutBound,
    StepCuts,
    _CompiledSequences,
    _Sequences,
    compiled,
    cut_bound,
)
from serenity.schedule import exact as exact_module
from serenity.schedule import fuse
from serenity.schedule.exact import (
    LEAD_TURNS,
    _compile,
    _dives,
    _next_turn,
    _Search,
    _split_gap,
    _through,
    block_precedences,
    exact,
)

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _python_sequences(
    steps: StepCuts,
    chosen: list[int],
    previous: _Sequences | None,
    most: int,
    reverse: bool = False,
) -> _Sequences:
    """The reference sequences (for ``cuts._sequences``), compiled cuts or not."""
    return _Sequences(steps, chosen, previous, most, reverse)


def least_step(p: Problem, v: int, anc: list[int], inplace: bool, first: int = -1) -> int:
    """The least step of ``v`` over every order that keeps the precedences ``anc``
    (and runs ``first`` before ``v``), by enumerating the downsets it may run from:
    each is a prefix of such an order, which the simulation measures."""
    n = p.num_ops
    best = None
    others = [u for u in range(n) if u != v and not anc[u] >> v & 1]
    for r in range(len(others) + 1):
        for chosen in itertools.combinations(others, r):
            done = sum(1 << u for u in chosen)
            if anc[v] & ~done or (first >= 0 and not done >> first & 1):
                continue
            if any(anc[u] & ~done for u in chosen):
                continue  # not a downset
            rest = [u for u in range(n) if not done >> u & 1 and u != v]
            order = _topological([*chosen], anc) + [v] + _topological(rest, anc)
            step = simulate(p, order, inplace=inplace).step_bytes[len(chosen)]
            best = step if best is None else min(best, step)
    assert best is not None
    return best


def comparable(cuts: StepCuts, v: int, w: int) -> bool:
    return bool(cuts.ancestors[v] >> w & 1 or cuts.ancestors[w] >> v & 1)


def _topological(ops: list[int], anc: list[int]) -> list[int]:
    return sorted(ops, key=lambda u: bin(anc[u]).count("1"))


def _check_steps(p: Problem, inplace: bool, before: list[int] | None) -> None:
    cuts = StepCuts(p, inplace=inplace, before=before)
    anc = p.ancestor_masks() if before is None else _closure(p, before)
    for v in range(p.num_ops):
        exact_step = least_step(p, v, anc, inplace)
        if inplace:  # the cut subtracts the largest input v may overwrite: a bound only
            assert cuts.step(v) <= exact_step
        else:
            assert cuts.step(v) == exact_step
        for w in range(p.num_ops):
            if w != v and not comparable(cuts, v, w):
                exact_pair = least_step(p, v, anc, inplace, first=w)
                step = cuts.step(v, [w])
                assert step is not None
                if inplace:
                    assert step <= exact_pair
                else:
                    assert step == exact_pair


@MANY
@given(st.data(), st.booleans(), st.integers(0, 60))
def test_the_witness_leads_to_orders_and_in_the_end_to_an_optimal_one(
    data: st.DataObject, inplace: bool, solves: int
) -> None:
    """The witness is a chain of nested downsets; the order through it (each gap
    searched) is a topological order that runs each of them, whatever the budget,
    and once every op is chosen it is an optimal one (the bound is the optimum)."""
    p = data.draw(problems(max_ops=12, inplace=inplace))
    ops, full = _compile(p, inplace), (1 << p.num_ops) - 1
    initial = simulate(p, list(range(p.num_ops)), inplace=inplace).initial_bytes
    for budget in (solves, None):
        cuts = CutBound(p, inplace=inplace)
        bound = cuts.lift(max_solves=budget)
        chain = cuts.witness()
        assert all(a & ~b == 0 for a, b in itertools.pairwise(chain))  # nested
        for run in chain:  # each a downset
            assert all(run >> u & 1 for v in ops_of(run) for u in p.preds[v])
        order = _through(ops, 0, initial, full, chain, 0, 1 << 62, None, True, 1 << 62)
        assert order is not None and sorted(order) == list(range(p.num_ops))
        assert p.is_topological(order)
        runs = set(itertools.accumulate((1 << v for v in order), operator.or_, initial=0))
        assert runs.issuperset(chain)  # it goes through each set of the chain
        peak = simulate(p, order, inplace=inplace).peak_bytes
        assert peak >= bound
    assert len(chain) == p.num_ops or p.num_ops == 0
    if not inplace:
        assert peak == bound == oracle_optimum(p)


@MANY
@given(st.data(), st.booleans(), st.integers(0, 30), st.integers(0, 3), st.integers(-2, 4))
def test_split_gaps_run_each_split_op_at_its_least_step_between_the_sets_around_it(
    data: st.DataObject, inplace: bool, solves: int, most: int, above: int
) -> None:
    """With gaps split past ``most`` ops (pieces down to one op), the pieces are nested
    downsets from one set of the chain to the next, each split op ready at the set
    before it and its step there no less than its least step between the chain's two
    sets; the order through the witness is a real one through every set of the chain
    with every step below ``upper``, or None."""
    p = data.draw(problems(max_ops=12, inplace=inplace))
    ops, full = _compile(p, inplace), (1 << p.num_ops) - 1
    initial = simulate(p, list(range(p.num_ops)), inplace=inplace).initial_bytes
    bound = CutBound(p, inplace=inplace)
    bound.lift(max_solves=solves)
    chain, step_cuts = bound.witness(), bound.cuts
    assert step_cuts is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_module, "SPLIT_GAP_OPS", most)
        patch.setattr(exact_module, "_SPLIT_PIECE_OPS", 1)
        done = 0
        for target in [*chain, full]:
            for after, v in _split_gap(ops, done, target, step_cuts):
                assert done & ~after == 0 and after & ~target == 0
                if v >= 0:
                    before = after & ~(1 << v)
                    assert all(before >> u & 1 for u in p.preds[v])  # v ready there
                    outside = ops_of(full & ~target)
                    least = step_cuts.step(v, ops_of(done), outside)
                    first = [u for u in p.topological_order() if before >> u & 1]
                    rest = [u for u in p.topological_order() if not after >> u & 1]
                    steps = simulate(p, [*first, v, *rest], inplace=inplace).step_bytes
                    held = steps[len(first)]  # v's step from `before`
                    assert least is not None
                    assert held >= least
                done = after
            assert done == target
        upper = oracle_optimum(p) + above if not inplace else 1 << 62
        order = _through(ops, 0, initial, full, chain, 0, upper, None, True, 1 << 40, step_cuts)
    if order is not None:
        assert sorted(order) == list(range(p.num_ops)) and p.is_topological(order)
        runs = set(itertools.accumulate((1 << v for v in order), operator.or_, initial=0))
        assert runs.issuperset(chain)
        assert simulate(p, order, inplace=inplace).peak_bytes < upper


@MANY
@given(wired(), st.integers(-3, 3), st.integers(-3, 3), st.sampled_from([0, 1, 5, 1 << 40]))
def test_the_gap_probes_find_an_order_within_the_limit_they_were_given(
    p: Problem, low_off: int, high_off: int, budget: int
) -> None:
    """``_dives`` between ``low`` and ``high`` around the optimum: an order it returns
    is a real order with every step within ``high`` (``low`` above it is taken as
    ``high``); with visits enough, it finds one within ``low`` exactly when the optimum
    is, one exactly when the optimum is within ``high``."""
    best = oracle_optimum(p)
    high = best + high_off
    low = min(best + low_off, high)
    ops, goal = _compile(p, False), (1 << p.num_ops) - 1
    initial = _initial(p)
    search = _Search(ops, 0, goal, initial, 0, 1 << 60, None, lambda: None)
    order, peak, spent = _dives(search, low, high, budget)
    assert spent <= max(budget, 0) + 1024
    if order is not None:
        assert sorted(order) == list(range(p.num_ops)) and p.is_topological(order)
        assert peak == simulate(p, order).peak_bytes
        assert best <= peak <= high
    else:
        assert peak == high + 1
    if budget == 1 << 40:  # every probe answers
        if best <= low:
            assert order is not None and simulate(p, order).peak_bytes <= low
        elif best <= high:
            assert order is not None
        else:
            assert order is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(0, 30), st.integers(-2, 4))
def test_the_witness_s_gaps_probed_by_dives_give_real_orders_below_the_upper_bound(
    data: st.DataObject, solves: int, above: int
) -> None:
    """With no best-first states at all (``_WINDOW_EXPANSIONS`` 0) every gap of the
    witness goes to the decision probes: the order through the chain is a real order
    through each of its sets with every step below ``upper``, or None."""
    p = data.draw(problems(max_ops=12))
    ops, full = _compile(p, False), (1 << p.num_ops) - 1
    initial = _initial(p)
    cuts = CutBound(p)
    cuts.lift(max_solves=solves)
    chain = cuts.witness()
    upper = oracle_optimum(p) + above
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_module, "_WINDOW_EXPANSIONS", 0)
        order = _through(ops, 0, initial, full, chain, 0, upper, None, True, 1 << 40)
    if order is not None:
        assert sorted(order) == list(range(p.num_ops)) and p.is_topological(order)
        runs = set(itertools.accumulate((1 << v for v in order), operator.or_, initial=0))
        assert runs.issuperset(chain)
        assert simulate(p, order).peak_bytes < upper
    if not chain:
        assert (order is not None) == (above > 0)  # one gap: the probes answer exactly


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired())
def test_a_gap_the_dives_leave_high_keeps_the_beam_s_order_when_lower(p: Problem) -> None:
    """When the dives return a gap order above the walk's height, the narrowest beam
    tries the gap too and the lower of the two orders is the gap's (here the dives
    are made to return the file order, the beam's order is computed alone)."""
    ops, full = _compile(p, False), (1 << p.num_ops) - 1
    initial = _initial(p)
    file_order = list(range(p.num_ops))
    dived = simulate(p, file_order).peak_bytes
    beam = _Search(ops, 0, full, initial, 0, (1 << 40) - 1, None, lambda: None)
    beamed = beam.beam(64, None, 1 << 40)
    assert beamed is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_module, "_WINDOW_EXPANSIONS", 0)
        patch.setattr(exact_module, "_dives", lambda *a: (file_order, dived, 0))
        order = _through(ops, 0, initial, full, [], 0, 1 << 40, None, True, 1 << 40)
    assert order is not None and p.is_topological(order)
    peak = simulate(p, order).peak_bytes
    if dived > 0:  # above the walk's height (0): the beam ran
        assert peak == min(dived, beamed[1])
    else:
        assert order == file_order


@MANY
@given(st.data(), st.booleans())
def test_each_cut_is_the_least_step_over_the_downsets(data: st.DataObject, inplace: bool) -> None:
    p = data.draw(problems(max_ops=7, inplace=inplace))
    _check_steps(p, inplace, None)


@MANY
@given(st.data(), st.booleans(), st.integers(0, 40))
def test_sequences_of_every_op_are_the_optimum(
    data: st.DataObject, inplace: bool, solves: int
) -> None:
    """With every op in the sequence each cut is the step itself (the ops before it
    run, the others not), so the sequences' bound is the optimum (in place: at most,
    each op's saving is taken at its largest); under a budget it stops lower."""
    p = data.draw(problems(max_ops=8, inplace=inplace))
    optimum = oracle_optimum(p, inplace)
    singles = cut_bound(p, inplace=inplace, max_solves=0)
    bound = cut_bound(p, inplace=inplace, max_solves=None)
    assert singles <= cut_bound(p, inplace=inplace, max_solves=solves) <= bound <= optimum
    if not inplace:
        assert bound == optimum
    assert cut_bound(p, inplace=inplace, upper=singles) == singles


@MANY
@given(st.data(), st.booleans(), st.sampled_from([0, 3, 8]))
def test_sequences_from_the_end_prove_the_same_levels(
    data: st.DataObject, inplace: bool, fewer: int
) -> None:
    """Built from the last op back, the sequences are the same sequences with the same
    cuts (module docstring, "From the end"): for any choice of ops, unbudgeted, the
    same least level as built from the first, in the reference and compiled, and with
    every op chosen the optimum (in place: at most)."""
    p = data.draw(problems(max_ops=10, inplace=inplace))
    steps = StepCuts(p, inplace=inplace)
    ops = list(range(p.num_ops))
    chosen = data.draw(st.permutations(ops))[: max(1, p.num_ops - fewer)]
    start = max(steps.step(v) or 0 for v in ops)
    levels = set()
    for make in (_Sequences, cuts._sequences):
        for reverse in (False, True):
            sequences = make(steps, chosen, None, 1 << 62, reverse)
            level, finished = sequences.bound(start, None, 1 << 62, None)
            assert finished and sequences.path is not None
            levels.add(level)
            # The sequence found runs in a real order of the chosen ops, within the level.
            order = [chosen[i] for i in sequences.path]
            assert sorted(order) == sorted(chosen)
            for j, x in enumerate(order):
                assert not any(steps.ancestors[x] >> y & 1 for y in order[j + 1 :])
                cut = steps.step(x, order[:j], order[j + 1 :])
                assert cut is not None and cut <= level
    assert len(levels) == 1
    if fewer == 0:
        optimum = oracle_optimum(p, inplace)
        assert levels.pop() <= optimum if inplace else levels.pop() == optimum


@MANY
@given(st.data(), st.booleans())
def test_a_guide_changes_no_level(data: st.DataObject, inplace: bool) -> None:
    """The order a set's next ops are tried in (a guide, any order of the ops, or
    none) changes the max-flows the sequences take, not what they prove: without a
    budget the bound is the same with any guide (the optimum without in place)."""
    p = data.draw(problems(max_ops=8, inplace=inplace))
    plain = CutBound(p, inplace=inplace).lift(max_solves=None)
    guided = CutBound(p, inplace=inplace)
    guided.guide(data.draw(st.permutations(range(p.num_ops))))
    assert guided.lift(max_solves=None) == plain
    if not inplace:
        assert plain == oracle_optimum(p, inplace)


@MANY
@given(st.data(), st.booleans())
def test_a_grown_choice_takes_the_smaller_one_s_pairs(data: st.DataObject, reverse: bool) -> None:
    """Sequences built for a choice that extends a smaller one's read the smaller
    one's ops' chosen ancestors (descendants from the end) off it and add the new ops'
    pairs: the same lists and masks as built from nothing, whatever the ops added."""
    p = data.draw(problems(max_ops=12))
    cuts = StepCuts(p)
    ops = data.draw(st.permutations(range(p.num_ops)))
    small = ops[: data.draw(st.integers(0, len(ops)))]
    grown = ops[: data.draw(st.integers(len(small), len(ops)))]
    before = _Sequences(cuts, small, reverse=reverse)
    fresh = _Sequences(cuts, grown, reverse=reverse)
    for previous in (before, _Sequences(cuts, small[::-1], reverse=reverse)):  # not a prefix
        built = _Sequences(cuts, grown, previous, reverse=reverse)
        assert built.ancestor_lists == fresh.ancestor_lists
        assert built.ancestors == fresh.ancestors
    for j, x in enumerate(grown):
        if reverse:  # its chosen descendants
            placed = [i for i, y in enumerate(grown) if cuts.ancestors[y] >> x & 1]
        else:
            placed = [i for i, y in enumerate(grown) if cuts.ancestors[x] >> y & 1]
        assert fresh.ancestor_lists[j] == placed
        assert fresh.ancestors[j] == sum(1 << i for i in placed)
    assert before.ancestor_lists == _Sequences(cuts, small, reverse=reverse).ancestor_lists


@MANY
@given(st.data(), st.booleans(), st.integers(0, 300))
def test_a_twin_shares_the_cuts_and_proves_its_own_levels(
    data: st.DataObject, inplace: bool, solves: int
) -> None:
    """A twin (the exact engine's second cut bound in one thread) holds the same cuts
    and single cuts and fresh refined lines of its own, without the line of highest
    cuts: lifted before the first, it is that cut bound's refined lines alone; lifted
    after it, guided by any order, it proves no more than the optimum, and the first's
    levels and choices are its own."""
    p = data.draw(problems(max_ops=8, inplace=inplace))
    first = CutBound(p, inplace=inplace)
    twin = first.twin()
    assert twin.cuts is first.cuts and twin.bound == first.bound
    assert [line.refine for line in twin.lines] == [line.refine for line in first.lines[1:]]
    assert not set(map(id, twin.lines)) & set(map(id, first.lines))
    alone = CutBound(p, inplace=inplace)
    alone.lines = alone.lines[1:]
    assert twin.lift(max_solves=solves) == alone.lift(max_solves=solves)
    assert [line.chosen for line in twin.lines] == [line.chosen for line in alone.lines]
    kept = [(line.level, list(line.chosen)) for line in first.lines]
    assert kept == [(line.level, line.chosen) for line in CutBound(p, inplace=inplace).lines]
    twin.guide(data.draw(st.permutations(range(p.num_ops))))
    assert twin.lift(max_solves=None) <= oracle_optimum(p, inplace)
    assert first.lift(max_solves=None) <= oracle_optimum(p, inplace)


def test_one_thread_lifts_the_two_cut_bounds_in_turns_weighted_to_the_lead() -> None:
    """With one thread the engine's two cut bounds take turns piece by piece: evenly
    (the first on ties) until one raises the bound, then ``LEAD_TURNS`` pieces to the
    one that raised it last for each of the other's; a spent one gets none."""
    first = CutBound(summed_stage(12, 0.3, 0))
    twin = first.twin()
    turns: dict[CutBound, int] = {}

    def run(count: int, lead: CutBound | None) -> list[CutBound]:
        picked = []
        for _ in range(count):
            c = _next_turn([first, twin], turns, lead)
            turns[c] = turns.get(c, 0) + 1
            picked.append(c)
        return picked

    assert run(4, None) == [first, twin, first, twin]
    turns.clear()
    picked = run(4 * (LEAD_TURNS + 1), twin)
    assert picked.count(twin) == LEAD_TURNS * picked.count(first) == LEAD_TURNS * 4
    for line in twin.lines:
        line.spent = True
    assert run(3, twin) == [first] * 3


@MANY
@given(st.data(), st.booleans(), st.integers(0, 200))
def test_refined_sequences_reach_the_optimum(
    data: st.DataObject, inplace: bool, solves: int
) -> None:
    """Past ``START_OPS`` ops the sequences grow by the ops their last sequence found
    disagrees on, or by the highest cuts between its sets: unbudgeted, every op is
    chosen in the end and the bound is the optimum (in place: at most); any budget
    stops at or below it, and for each line alone a budget split in two ends where
    one budget does (two lines share a call's budget, so splits shift their shares).
    The cuts taken over from a previous choice are the cuts asked."""
    p = data.draw(problems(max_ops=12, inplace=inplace))
    optimum = oracle_optimum(p, inplace)
    with pytest.MonkeyPatch.context() as patch:  # the reference, whose cuts can be read
        patch.setattr(cuts, "_sequences", _python_sequences)
        whole = CutBound(p, inplace=inplace)
        bound = whole.lift(max_solves=None)
    assert bound <= optimum and (inplace or bound == optimum)
    # Each cut kept, found or taken over from the previous choice, is the cut asked
    # (from the end, the set keyed holds the chosen ops placed after the op).
    fresh = StepCuts(p, inplace=inplace)
    for refined in whole.lines[1:]:
        last = refined.sequences
        assert isinstance(last, _Sequences) and last.reverse == refined.reverse
        for (x, inside), (value, _) in last.known.items():
            rest = [y for y in last.chosen if not inside >> y & 1 and y != x]
            ran = [y for y in range(p.num_ops) if inside >> y & 1]
            if last.reverse:
                ran, rest = rest, ran
            assert value == fresh.step(x, ran, rest)
    # Each line alone resumes where its budget stopped it. With the compiled max-flows
    # stopped past the level the lower bounds they keep depend on the flow each grew
    # from, which a resumed search may start elsewhere: only without that stop is the
    # split the same to the max-flow (with it, test_stopping_past_the_level_...).
    for line in range(len(whole.lines)):
        parts, one = CutBound(p, inplace=inplace), CutBound(p, inplace=inplace)
        parts.lines, one.lines = parts.lines[line : line + 1], one.lines[line : line + 1]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cuts, "STOP_PAST_LEVEL", False)
            parts.lift(max_solves=solves // 2)
            split = parts.lift(max_solves=solves - solves // 2)
            assert split == one.lift(max_solves=solves) <= bound


@MANY
@given(st.data(), st.booleans())
def test_the_cut_bound_over_block_orders_never_exceeds_the_optimum(
    data: st.DataObject, inplace: bool
) -> None:
    p = data.draw(wired_inplace() if inplace else wired(max_ops=9))
    before = block_precedences(p, inplace)
    _check_steps(p, inplace, before)
    if not inplace and p.num_ops <= 8:  # every op in the sequences: some optimal order
        assert cut_bound(p, before=before, max_solves=None) == oracle_optimum(p)
    # More precedences only raise each least step.
    assert cut_bound(p, inplace=inplace, max_solves=0) <= cut_bound(
        p, inplace=inplace, before=before, max_solves=0
    )
    assert cut_bound(p, inplace=inplace, before=before) <= oracle_optimum(p, inplace)


def test_the_cut_bound_beats_the_width_bound_on_summed_stages() -> None:
    """On RandWire-like stages of 57-64 ops the pairs lift the cut bound above the
    single cuts, and above the width bound (measured: 11-12 tensors against 10-11;
    the optimum holds 12), never above the proven optimum."""
    raised = higher = 0
    for seed in range(3):
        p = summed_stage(20, 0.3, seed)
        r = exact(p, ScheduleOptions())
        assert r.optimal
        bound = cut_bound(p)
        singles = cut_bound(p, max_solves=0)
        assert singles <= bound <= r.peak_bytes, seed
        raised += bound > singles
        higher += bound > width_bound(p)
    assert raised == 3 and higher >= 2


def test_a_step_no_downset_allows_has_no_cut() -> None:
    p = Problem(["a", "b"], [1, 1, 1], [[0], [1]], [[1], [2]], [0], [2])
    cuts = StepCuts(p)
    assert comparable(cuts, 0, 1)
    assert cuts.step(0, [1]) is None  # b after a, yet asked to run first
    assert cuts.step(1, outside=[0]) is None  # a before b, yet asked to wait
    assert cuts.step(1, [0]) == cuts.step(1) == 2  # t1 and its output; t0 is freed


def test_exact_computes_the_cut_bound_once_at_the_hand_over() -> None:
    """A search that ends in its first slice needs no cut bound; one that hands over
    takes it, on the fused graph over the block orders, lifted past the single cuts
    (its budget is time's worth of max-flows, so no fixed count matches it), and may
    not claim more than it proves."""
    quick = exact(summed_stage(9, 0.55, 3), ScheduleOptions())
    assert quick.optimal and "cut_bound" not in quick.stats
    p = summed_stage(60, 0.1, 0)  # 212 ops: no proof in the 0.1 s first slice
    r = exact(p, ScheduleOptions(time_limit=1.0, threads=1))
    fused = fuse(p).problem  # the search runs on the fused graph, over the block orders
    assert cut_bound(fused, before=block_precedences(fused), max_solves=0) < r.stats["cut_bound"]
    assert r.stats["cut_bound"] <= r.lower_bound_bytes <= r.peak_bytes
    # One thread: the twin took turns with the first, and the bound is the higher.
    assert 0 < r.stats["cut_bound_twin"] <= r.stats["cut_bound"]


def test_the_bound_resumes_where_its_budget_stopped_it() -> None:
    """Cuts already found are kept, and a refinement the budget stopped is resumed (its
    sequence not searched again), so one line of sequences lifted with budgets a then
    b ends where one lift with a + b does, with the same choice (two lines share each
    call's budget, so a split shifts their shares); seconds are a count of
    max-flows, not a clock."""
    p = summed_stage(20, 0.3, 0)
    whole = CutBound(p)
    singles = whole.bound
    assert whole.lift(max_solves=300) > singles
    for a in (1, 40, 150):
        parts, one = CutBound(p), CutBound(p)
        parts.lines, one.lines = parts.lines[1:2], one.lines[1:2]  # the refined line alone
        parts.lift(max_solves=a)
        assert parts.lift(max_solves=300 - a) == one.lift(max_solves=300)
        assert parts.lines[0].chosen == one.lines[0].chosen
    cuts = StepCuts(p)
    seconds = (200 * cuts.arcs + 0.5) / cuts.rate
    assert cut_bound(p, seconds=seconds) == cut_bound(p, max_solves=200)


def test_the_line_that_raised_the_bound_last_gets_the_larger_share() -> None:
    """Until a line raises the bound the lines share a call's budget evenly; then the
    one that raised it last gets ``LEAD_WEIGHT`` times the others' share (and the
    refined line that grew the shared choice last ``WINNER_WEIGHT`` times more)."""
    bound = CutBound(summed_stage(20, 0.3, 0))
    shares: list[tuple[object, int]] = []
    lift = bound._lift

    def spy(line, upper, stop_at):  # type: ignore[no-untyped-def]
        assert bound.cuts is not None
        shares.append((line, stop_at - bound.cuts.solves))
        lift(line, upper, stop_at)

    bound._lift = spy  # type: ignore[method-assign]
    assert bound.lead is None
    lines = len(bound.lines)
    bound.lift(max_solves=420)
    assert shares[0] == (bound.lines[0], 420 // lines)  # even, nothing raised yet
    lead = bound.lead
    assert lead is not None and not any(line.spent for line in bound.lines)
    shares.clear()
    weights = [bound._weight(line) for line in bound.lines]
    assert sorted(weights) in (
        [1, 1, LEAD_WEIGHT],
        [1, WINNER_WEIGHT, LEAD_WEIGHT],
        [1, 1, LEAD_WEIGHT * WINNER_WEIGHT],
    )
    bound.lift(max_solves=420)
    assert shares[0] == (bound.lines[0], 420 * weights[0] // sum(weights))


@settings(max_examples=60, deadline=None)
@given(st.integers(18, 28), st.integers(0, 10**6))
def test_the_refined_line_proves_its_own_levels(nodes: int, seed: int) -> None:
    """The line of highest cuts starts each search at the bound proven so far, the
    refined lines (from the front and from the end, one choice between them) at the
    level their choices proved: neither stands above the least level of a sequence
    of the ops chosen (from the single cuts), whatever the other line proved, so the
    sequence they refine by is its own least one."""
    p = summed_stage(nodes, 0.4, seed)  # the lines' choices part past 8 ops
    bound = CutBound(p)
    single, top, *refined = bound.bound, *bound.lines
    assert all(line.refine for line in refined) and len(refined) == 1 + cuts.REVERSE_LINE
    for _ in range(8):
        before = bound.bound
        bound.lift(max_solves=40)
        for line in refined:  # one choice, grown by whichever direction found first
            assert line.chosen == refined[0].chosen
            least = _Sequences(StepCuts(p), line.chosen).bound(single, None, 1 << 62, None)[0]
            assert line.level <= least
        assert top.spent or top.level >= before
        assert bound.bound == max(line.level for line in bound.lines)


def _least_peaks(cuts: StepCuts, chosen: list[int], reverse: bool = False) -> dict[int, int]:
    """Per set of ``chosen`` ops that some sequence of them runs first (with
    ``reverse``: last; a bitmask of ops): the least, over the sequences of the rest,
    of their largest cut (``NEVER`` when there is none), by trying every sequence."""
    mask, memo = sum(1 << x for x in chosen), {}

    def least(inside: int) -> int:
        if inside == mask:
            return 0
        if inside not in memo:
            best = NEVER
            for x in chosen:
                if inside >> x & 1:
                    continue
                if reverse:  # x runs last of the rest: its descendants among the set
                    if any(cuts.ancestors[y] >> x & 1 for y in chosen if not inside >> y & 1):
                        continue
                    rest = [y for y in chosen if not inside >> y & 1 and y != x]
                    step = cuts.step(x, rest, ops_of(inside))
                else:
                    if cuts.ancestors[x] & mask & ~inside:
                        continue
                    outside = [y for y in chosen if not inside >> y & 1 and y != x]
                    step = cuts.step(x, ops_of(inside), outside)
                if step is not None:
                    best = min(best, max(step, least(inside | 1 << x)))
            memo[inside] = best
        return memo[inside]

    least(0)
    return memo


@MANY
@given(st.data())
def test_every_sequence_from_a_dead_set_reaches_its_level(data: st.DataObject) -> None:
    """The sets of chosen ops kept dead, by each choice a line made (those of the
    smaller choices prune the larger ones'), with the level that every sequence of the
    rest reaches from them: checked against every sequence, per choice."""
    p = data.draw(problems(max_ops=12))
    bound = CutBound(p)
    bound.lift(max_solves=data.draw(st.sampled_from([None, 30, 80])))
    cuts = StepCuts(p)
    for line in bound.lines:
        sequences = line.sequences
        if sequences is None:
            continue
        for mask, dead in sequences.dead_sets():
            peaks = _least_peaks(cuts, ops_of(mask), line.reverse)
            for inside, level in dead.items():
                assert peaks[inside] >= level


def _three_cuts(
    data: st.DataObject, inplace: bool, blocks: bool
) -> tuple[Problem, tuple[StepCuts, StepCuts, StepCuts]]:
    """A drawn graph (with the block orders' precedences when ``blocks``) and its cuts
    three ways: compiled with the closures kept, compiled following the arcs
    (``CLOSURE_BYTES`` 0), each on the graph the probe chose or on one drawn (with a
    node per tensor read, or the lean one: module docstring, "One reader"), and
    OR-Tools' reference, with a node per tensor read."""
    p = data.draw(wired(max_ops=12) if blocks else problems(max_ops=12, inplace=inplace))
    before = block_precedences(p) if blocks else None
    lean = data.draw(st.sampled_from([None, False, True]))
    fast = StepCuts(p, inplace=inplace, before=before)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuts, "CLOSURE_BYTES", 0)
        walked = StepCuts(p, inplace=inplace, before=before)
    for step_cuts, closure_bytes in ((fast, cuts.CLOSURE_BYTES), (walked, 0)):
        if lean is not None:
            graph = step_cuts._network(p, lean=lean)
            step_cuts.compiled = cuts._flow.Cuts(
                *graph, step_cuts.infinite, p.num_ops, closure_bytes
            )
    reference = StepCuts(p, inplace=inplace, before=before)
    reference.compiled = None
    return p, (fast, walked, reference)


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@MANY
@given(st.data(), st.booleans(), st.booleans())
def test_the_compiled_cuts_are_the_reference_ones(
    data: st.DataObject, inplace: bool, blocks: bool
) -> None:
    """The compiled minimum cuts (``_flow.cpp``) against OR-Tools' push-relabel on the
    same graph: the same least step, or none, and the same downset (the least source
    side of a minimum cut is unique), for any ops forced to either side, the
    contradictory included, given as lists or as bitmasks, with the ops' closures
    kept or (``CLOSURE_BYTES`` 0) the arcs followed; with ``SERENITY_PURE_PYTHON=1``
    the reference runs."""
    p, (fast, walked, reference) = _three_cuts(data, inplace, blocks)
    assert fast.compiled is not None and walked.compiled is not None
    n = p.num_ops
    for _ in range(12):
        v = data.draw(st.integers(0, n - 1))
        others = [u for u in range(n) if u != v]
        inside = data.draw(
            st.lists(st.sampled_from(others), unique=True) if others else st.just([])
        )
        rest = [u for u in others if u not in inside]
        outside = data.draw(st.lists(st.sampled_from(rest), unique=True) if rest else st.just([]))
        if data.draw(st.booleans()) and inside and rest:
            outside.append(inside[0])  # an op on both sides: no cut
        expected = reference.solve(v, inside, outside)
        assert fast.solve(v, inside, outside) == expected
        assert walked.solve(v, inside, outside) == expected
        masks = (sum(1 << u for u in inside), sum(1 << u for u in outside))
        assert fast.solve_masks(v, *masks) == expected
        assert walked.solve_masks(v, *masks) == expected
        assert reference.solve_masks(v, *masks) == expected
        assert fast.step(v, inside, outside) == reference.step(v, inside, outside)


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_compiled_cuts_keep_the_graph_whose_probe_scanned_fewer_arcs(seed: int) -> None:
    """The lean graph has no node for a tensor that one reader is the last of (module
    docstring, "One reader"), and the compiled cuts keep the graph on which the
    probe's single cuts scanned fewer arcs (the other compared on the same probe)."""
    p = summed_stage(24, 0.3, seed)
    n, step_cuts = p.num_ops, StepCuts(p)
    full, lean = (step_cuts._network(p, lean=lean) for lean in (False, True))
    read = [t for t in range(p.num_tensors) if p.consumers[t] and t not in p.graph_outputs]
    ancestors = p.ancestor_masks()
    last = [
        [c for c in p.consumers[t] if not any(ancestors[d] >> c & 1 for d in p.consumers[t])]
        for t in read
    ]
    assert full[0] == n + len(read) + 2
    assert lean[0] == full[0] - sum(len(readers) == 1 for readers in last) < full[0]
    works = []
    for graph in (full, lean):
        probe = cuts._flow.Cuts(*graph, step_cuts.infinite, n, cuts.CLOSURE_BYTES)
        for v in range(0, n, max(1, n // cuts.PROBE_OPS)):
            probe.solve(step_cuts.direct[v], [v], False)
        works.append(probe.work())
    assert step_cuts.compiled is not None
    assert step_cuts.compiled.work() == min(works)


def _draw_sides(data: st.DataObject, ops: st.SearchStrategy[list[int]]) -> tuple[int, int]:
    """Ops forced inside and outside (bitmasks), mostly sides that agree."""
    inside = sum(1 << u for u in data.draw(ops))
    outside = sum(1 << u for u in data.draw(ops))
    if not data.draw(st.booleans()):
        outside &= ~inside
    return inside, outside


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@MANY
@given(st.data(), st.booleans(), st.booleans())
def test_a_group_of_cuts_is_each_cut_alone(
    data: st.DataObject, inplace: bool, blocks: bool
) -> None:
    """:meth:`StepCuts.solve_group` (one max-flow of the shared sides, each op's from
    its flow) answers each op as :meth:`StepCuts.solve_masks` alone does, compiled with
    the closures kept or the arcs followed, and by OR-Tools: the same step and least
    downset, none where its predecessors or the shared sides contradict; the queries
    after a group are unharmed."""
    p, (fast, walked, reference) = _three_cuts(data, inplace, blocks)
    n = p.num_ops
    ops = st.lists(st.integers(0, n - 1), unique=True)
    for _ in range(6):
        inside, outside = _draw_sides(data, ops)
        xs = data.draw(st.lists(st.integers(0, n - 1), min_size=1, unique=True))
        outside |= sum(1 << x for x in xs)
        expected = [reference.solve_masks(x, inside, outside) for x in xs]
        counted = fast.solves
        assert fast.solve_group(xs, inside, outside) == expected
        assert fast.solves == counted + len(xs)
        assert walked.solve_group(xs, inside, outside) == expected
        assert reference.solve_group(xs, inside, outside) == expected
        v = data.draw(st.integers(0, n - 1))
        assert fast.solve_masks(v, 0, 0) == reference.solve_masks(v, 0, 0)


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@pytest.mark.parametrize("closure_bytes", [0, 64 << 20])
def test_the_compiled_cuts_refuse_bits_past_the_ops(
    closure_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forced bit past the ops (a tensor node, or past every node) is a clear error,
    with or without the closures, and the next query is unharmed."""
    monkeypatch.setattr(cuts, "CLOSURE_BYTES", closure_bytes)
    p = summed_stage(9, 0.3, 0)
    steps = StepCuts(p)
    assert steps.compiled is not None
    n = p.num_ops
    expected = steps.solve(n - 1, [], [])
    assert n % 8  # bit n falls in the last byte of the ops' bits
    within = (1 << n).to_bytes(steps.width, "little")
    longer = (1 << n).to_bytes(steps.width + 1, "little")
    for inside, outside in ((within, b""), (b"", within), (longer, b""), (b"", longer)):
        with pytest.raises(ValueError, match="beyond the side nodes"):
            steps.compiled.solve_bits(inside, outside, True)
    assert steps.solve(n - 1, [], []) == expected


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@MANY
@given(st.data(), st.booleans(), st.booleans())
def test_the_cuts_between_two_sets_are_each_cut_alone(
    data: st.DataObject, inplace: bool, blocks: bool
) -> None:
    """:meth:`StepCuts.steps_between` (one max-flow of the two sets, each op's grown
    from its flow with the op forced out and its predecessors in) answers each op as
    :meth:`StepCuts.step` alone does, compiled and by OR-Tools: the same step, none
    where the op's predecessors or the sets contradict; an op asked again between
    the same sets costs no max-flow; the queries after it are unharmed."""
    p, (fast, walked, reference) = _three_cuts(data, inplace, blocks)
    n = p.num_ops
    ops = st.lists(st.integers(0, n - 1), unique=True)
    asked: set[tuple[int, int, int]] = set()
    for _ in range(6):
        inside, outside = _draw_sides(data, ops)
        xs = [x for x in data.draw(ops) if not (inside | outside) >> x & 1]
        expected = [reference.step(x, ops_of(inside), ops_of(outside)) for x in xs]
        counted = fast.solves
        assert fast.steps_between(xs, inside, outside) == expected
        fresh = {(inside, outside, x) for x in xs} - asked
        assert fast.solves == counted + len(fresh)
        asked |= fresh
        assert walked.steps_between(xs, inside, outside) == expected
        v = data.draw(st.integers(0, n - 1))
        assert fast.solve_masks(v, 0, 0) == reference.solve_masks(v, 0, 0)


def test_the_steps_between_two_sets_are_kept_up_to_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps between two sets are kept: asked again, the same answers for no
    max-flow; past ``BETWEEN_ENTRIES`` those of the other pairs of sets are dropped,
    and solved again when asked, with the same answers."""
    monkeypatch.setattr(cuts, "BETWEEN_ENTRIES", 6)
    p = summed_stage(12, 0.3, 1)
    steps = StepCuts(p)
    n = p.num_ops
    a, b = (1, 1 << (n - 1)), (3, 1 << (n - 1))
    xs = list(range(2, n - 1))
    assert len(xs) >= 5

    def expected(sets: tuple[int, int], ops: list[int]) -> list[int | None]:
        return [steps.step(x, ops_of(sets[0]), ops_of(sets[1])) for x in ops]

    def costs(sets: tuple[int, int], ops: list[int]) -> int:
        before = steps.solves
        assert steps.steps_between(ops, *sets) == expected(sets, ops)
        return steps.solves - before - len(ops)  # less the checks' own max-flows

    assert costs(a, xs[:4]) == 4
    assert costs(a, xs[:5]) == 1  # only the fifth solved
    assert costs(b, xs[:3]) == 3  # past the cap: a's dropped
    assert costs(a, xs[:2]) == 2
    assert costs(b, xs[:3]) == 0


def _lines(bound: CutBound) -> list[tuple[object, ...]]:
    """What each line of ``bound`` holds: its level, choice, whether spent, and its
    sequences' last path and sides, caches kept, forgettings and dead sets."""
    found = []
    for line in bound.lines:
        s = line.sequences
        kept = (
            None if s is None else (s.path, s.sides, s.kept(), s.held(), s.forgotten, s.dead_sets())
        )
        found.append((line.level, line.chosen, line.spent, kept))
    return found


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@MANY
@given(st.data(), st.booleans())
def test_the_compiled_sequences_are_the_reference_ones(data: st.DataObject, inplace: bool) -> None:
    """The compiled sequences (``_flow.cpp``, :class:`_CompiledSequences`) against the
    reference (:class:`_Sequences`) on the same compiled cuts: after every budget, the
    same bound, max-flows counted, witness, and per line the same choice, sequence,
    caches (at a cap that forgets them too) and dead sets."""
    p = data.draw(problems(max_ops=12, inplace=inplace))
    memory = data.draw(st.sampled_from([cuts.CUT_MEMORY, 1, 40 * 2 * (ENTRY_BYTES + 3)]))
    budgets = data.draw(st.lists(st.sampled_from([1, 7, 30, 80, None]), min_size=1, max_size=3))
    fast = CutBound(p, inplace=inplace, memory=memory)
    reference = CutBound(p, inplace=inplace, memory=memory)
    for solves in budgets:
        # Sometimes a guide first (any order of the ops: it need not be topological).
        guide = data.draw(st.none() | st.permutations(range(p.num_ops)))
        if guide is not None:
            fast.guide(guide)
            reference.guide(guide)
        _same_lifts(fast, reference, solves)


def _same_lifts(fast: CutBound, reference: CutBound, solves: int | None) -> None:
    """Lifts ``fast`` (compiled sequences, each max-flow solved to the end:
    ``STOP_PAST_LEVEL`` off) and ``reference`` (Python's) by ``solves`` max-flows and
    checks they agree (:func:`_lines`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuts, "STOP_PAST_LEVEL", False)
        lifted = fast.lift(max_solves=solves)
        patch.setattr(cuts, "_sequences", _python_sequences)
        assert lifted == reference.lift(max_solves=solves)
    assert fast.cuts is not None and reference.cuts is not None
    assert fast.cuts.solves == reference.cuts.solves
    assert fast.witness() == reference.witness()
    assert _lines(fast) == _lines(reference)
    assert all(
        isinstance(line.sequences, _CompiledSequences) for line in fast.lines if line.sequences
    )
    assert all(isinstance(line.sequences, _Sequences) for line in reference.lines if line.sequences)


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@pytest.mark.parametrize(("nodes", "seed"), [(24, 1), (28, 3), (30, 5)])
def test_the_compiled_sequences_follow_the_reference_on_larger_choices(
    nodes: int, seed: int
) -> None:
    """The same on summed stages where the lines choose 16 to 40 ops (sets of chosen
    ops past a byte, smaller choices' dead sets and cuts taken over), with and
    without a cap that forgets."""
    p = summed_stage(nodes, 0.3, seed)
    guide = p.topological_order()[::-1]  # as far from a real order as it gets
    for memory in (cuts.CUT_MEMORY, 300 * 2 * (ENTRY_BYTES + p.num_ops // 4)):
        fast, reference = CutBound(p, memory=memory), CutBound(p, memory=memory)
        for solves in (500, 4_000, 15_000):
            _same_lifts(fast, reference, solves)
            fast.guide(guide)  # the later lifts guided
            reference.guide(guide)
        assert max(len(line.chosen) for line in fast.lines) > 8


@pytest.mark.skipif(not compiled(), reason="compiled cuts not built")
@MANY
@given(st.data(), st.booleans())
def test_stopping_past_the_level_proves_the_same(data: st.DataObject, inplace: bool) -> None:
    """The compiled max-flows stopped once an op's cut is past the level (a lower
    bound kept for it: module docstring, "Compiled sequences") change the max-flows
    counted, not what the lines find: unbudgeted, the same bound, witness, and per
    line the same level, choice and sequence as with every max-flow solved to the end;
    and budgets in turn, each resumed where the last stopped, never past that bound."""
    p = data.draw(problems(max_ops=12, inplace=inplace))
    found = []
    for stop in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cuts, "STOP_PAST_LEVEL", stop)
            bound = CutBound(p, inplace=inplace)
            lifted = bound.lift(max_solves=None)
        lines = [
            (
                line.level,
                line.chosen,
                line.sequences and (line.sequences.path, line.sequences.sides),
            )
            for line in bound.lines
        ]
        found.append((lifted, bound.witness(), lines))
    assert found[0] == found[1]
    budgeted = CutBound(p, inplace=inplace)
    for solves in data.draw(st.lists(st.integers(0, 60), min_size=1, max_size=4)):
        assert budgeted.lift(max_solves=solves) <= found[0][0]


def test_pure_python_solves_the_cuts_by_ortools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERENITY_PURE_PYTHON", "1")
    p = summed_stage(20, 0.3, 0)
    pure = CutBound(p)
    assert pure.cuts is not None and pure.cuts.compiled is None
    assert pure.cuts.rate == SOLVE_RATE
    monkeypatch.setenv("SERENITY_PURE_PYTHON", "0")
    both = CutBound(p)
    assert both.cuts is not None and (both.cuts.compiled is not None) == compiled()
    assert pure.lift(max_solves=300) == both.lift(max_solves=300)
    assert pure.witness() == both.witness()


@MANY
@given(st.data())
def test_forgetting_the_cuts_and_dead_sets_changes_no_bound(data: st.DataObject) -> None:
    """The cuts and dead sets kept are caches: a line that may keep one byte forgets
    them all the time (it holds at most the cuts of one set run, solved together) and
    reaches the same bounds (the optimum, once every op is chosen) and a witness that
    is still a chain of nested downsets."""
    p = data.draw(problems(max_ops=12))
    solves = data.draw(st.sampled_from([None, 40, 150]))
    tight, free = CutBound(p, memory=1), CutBound(p)
    assert tight.most == 1
    assert tight.lift(max_solves=solves) <= free.lift(max_solves=None) == oracle_optimum(p)
    assert all(s is None or s.kept() <= s.k for s in (line.sequences for line in tight.lines))
    assert any(line.sequences is not None and line.sequences.forgotten for line in tight.lines)
    if solves is None:
        assert tight.bound == free.bound
    chain = tight.witness()
    assert all(a & ~b == 0 for a, b in itertools.pairwise(chain))
    for run in chain:
        assert all(run >> u & 1 for v in ops_of(run) for u in p.preds[v])


def test_a_line_at_its_cap_forgets_and_goes_on() -> None:
    """At a cap of 200 cuts' bytes per line (an equal part of the cap each) the lines
    forget, hold no more than that, and reach the bound that the uncapped ones reach,
    with more max-flows."""
    p = summed_stage(20, 0.3, 0)
    bound = CutBound(p).lift(max_solves=2_000)
    free = CutBound(p)
    assert free.lift(upper=bound, max_solves=50_000) == bound
    most = 200 * (ENTRY_BYTES + p.num_ops // 4)
    tight = CutBound(p, memory=len(free.lines) * most)
    assert tight.most == most
    assert tight.lift(upper=bound, max_solves=50_000) == bound
    assert any(line.sequences and line.sequences.forgotten for line in tight.lines)
    assert not any(line.sequences and line.sequences.forgotten for line in free.lines)
    assert all(line.sequences is None or line.sequences.held() <= most for line in tight.lines)
    for line in (*tight.lines, *free.lines):  # a cut counted cut_bytes, a dead set DEAD_BYTES
        s = line.sequences
        if s is not None:
            dead = sum(len(sets) for _, sets in s.dead_sets())
            assert s.held() == (s.kept() - dead) * s.cut_bytes + dead * DEAD_BYTES
    assert any(
        dead for line in free.lines if line.sequences for _, dead in line.sequences.dead_sets()
    )
    assert tight.cuts is not None and free.cuts is not None
    assert tight.cuts.solves >= free.cuts.solves
