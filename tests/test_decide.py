"""The decision search (``serenity.schedule.decide``) against exhaustive oracles.

``within(search, L)`` must find an order exactly when the optimum is at most
``L``: at the optimum it returns an order whose true peak is the optimum, one
byte below it answers "none" (a proof). Both memory models, with and without
free moves, on the adversarial graphs of ``test_exact_rules`` and on random
DAGs; a budget of time or memory gives "timeout"/"memory", never a wrong
answer.
"""

from __future__ import annotations

import importlib
import itertools
import threading

import pytest
from helpers import problems, random_wired
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_exact_rules import _initial, oracle_optimum, wired
from test_scheduling import brute_force

from serenity import Problem, ScheduleOptions, UsageError, simulate
from serenity._native import native_wanted
from serenity.memory import cuts
from serenity.schedule import default_threads
from serenity.schedule import exact as exact_module
from serenity.schedule.decide import Decision, within
from serenity.schedule.exact import _compile, _Search, exact

SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _search(p: Problem, inplace: bool = False, free: bool = True) -> _Search:
    ops = _compile(p, inplace)
    goal = (1 << p.num_ops) - 1
    return _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None, free)


def _check(p: Problem, best: int, inplace: bool, free: bool) -> None:
    search = _search(p, inplace, free)
    yes = within(search, best)
    assert yes.status == "found" and yes.order is not None
    assert p.is_topological(yes.order)
    assert simulate(p, yes.order, inplace=inplace).peak_bytes == yes.peak == best
    no = within(search, best - 1)
    assert no.status == "none" and no.bound == best  # the next level is the optimum


@SOME
@given(wired(), st.booleans())
def test_within_decides_like_the_oracle_on_adversarial_graphs(p: Problem, free: bool) -> None:
    _check(p, oracle_optimum(p), inplace=False, free=free)


@SOME
@given(problems(max_ops=8, inplace=True), st.booleans(), st.booleans())
def test_within_decides_like_brute_force_in_both_memory_models(
    p: Problem, inplace: bool, free: bool
) -> None:
    _check(p, brute_force(p, inplace), inplace=inplace, free=free)


@SOME
@given(problems(max_ops=8, inplace=True), st.booleans(), st.booleans(), st.data())
def test_none_below_the_optimum_lifts_the_bound_above_the_limit_and_no_higher(
    p: Problem, inplace: bool, core: bool, data: st.DataObject
) -> None:
    """At any limit below the optimum the answer is "none", with a next level above the
    limit and at most the optimum: steps not taken into dead ends count by their stand-in
    (memory plus the least rise), in the Python reference and in the compiled core."""
    best = brute_force(p, inplace)
    assume(best > 0)
    limit = data.draw(st.integers(min_value=0, max_value=best - 1))
    ops = _compile(p, inplace)
    goal = (1 << p.num_ops) - 1
    search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None, core=core)
    out = within(search, limit)
    assert out.status == "none" and limit < out.bound <= best


@pytest.mark.parametrize("core", [False, True])
def test_a_step_into_a_dead_end_is_not_taken_and_counts_by_its_stand_in(core: bool) -> None:
    """x (input 1 B -> 10 B) then y (10 B -> 10 B): within 15 B, x's step (11 B) fits but
    leaves 10 B, and every op adds 10: the set after x is a dead end. It is not entered
    (no visit), and the next level is its stand-in 10 + 10, y's real step."""
    p = Problem(["x", "y"], [1, 10, 10], [[0], [1]], [[1], [2]], [0], [2])
    search = _Search(_compile(p, False), 0, 3, 1, 0, 1 << 60, None, lambda: None, core=core)
    out = within(search, 15)
    assert (out.status, out.visited, out.bound) == ("none", 0, 20)
    assert within(search, 20).order == [0, 1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired(max_ops=14))
def test_a_budget_stops_the_search_without_a_wrong_answer(p: Problem) -> None:
    best = oracle_optimum(p)
    search = _search(p)
    for limit in (best - 1, best):
        out = within(search, limit, max_bytes=0)
        assert out.status in ({"none", "memory"} if limit < best else {"found", "memory"})
        out = within(search, limit, deadline=0.0)
        assert out.status in ({"none", "timeout"} if limit < best else {"found", "timeout"})


@pytest.mark.parametrize("seed", range(4))
def test_a_visit_budget_stops_the_same_in_the_core_and_in_python(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_visits`` is a count, checked every 1,024 visits: the compiled core and the
    Python reference stop at the same visit with the same answer, and a budget past
    what the search needs changes nothing. At the level under the optimum (ops of 4 B:
    levels 4 B apart), where "none" takes 3,000-30,000 visits on these graphs without
    free sets."""
    monkeypatch.setattr(exact_module, "FREE_SET_OPS", 0)
    p = random_wired(seed, 50)
    ops, goal = _compile(p, False), (1 << p.num_ops) - 1
    limit = _initial(p)
    while within(_search(p), limit + 4).status == "none":
        limit += 4
    answers = {}
    for core in (False, True):
        search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None, core=core)
        free = within(search, limit)
        assert free.status == "none" and free.visited > 3000
        rows = [(free.status, free.visited, free.order, free.bound)]
        for visits in (0, 1, 1024, 3000, free.visited + 2048):
            out = within(search, limit, max_visits=visits)
            rows.append((out.status, out.visited, out.order, out.bound))
            if visits < free.visited:
                assert out.status == "timeout"
                assert visits <= out.visited < visits + 1024 and out.visited % 1024 == 0
        assert rows[-1] == rows[0]  # enough visits: the answer without a budget
        answers[core] = rows
    assert answers[False] == answers[True]


@SOME
@given(wired(), problems(max_ops=8, inplace=True), st.sampled_from([2, 8]), st.booleans())
def test_free_sets_of_any_size_decide_like_the_oracle(
    p: Problem, q: Problem, most: int, inplace: bool
) -> None:
    """Free sets of up to ``most`` ops (3 by default): the decision search still finds
    an order exactly at the optimum and proves the level under it, both models."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_module, "FREE_SET_OPS", most)
        _check(p, oracle_optimum(p), inplace=False, free=True)
        _check(q, brute_force(q, inplace), inplace=inplace, free=True)


@pytest.mark.parametrize("core", [False, True])
def test_free_sets_cut_the_search_and_keep_its_answers(
    core: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the level under the optimum and at it, on 50-op random-wired graphs: the same
    answers and next levels with free sets of up to 2, 3 or 8 ops as without, and fewer
    visits and dead sets over the graphs with them (62,362 visits and 10,552 dead sets
    under the optimum without, 55,592 and 8,825 with 3: the big cuts are on larger
    graphs, decide.py)."""
    totals: dict[int, list[int]] = {}
    for seed in range(4):
        p = random_wired(seed, 50)
        best = exact(p, ScheduleOptions()).peak_bytes
        answers = set()
        for most in (0, 2, 3, 8):
            monkeypatch.setattr(exact_module, "FREE_SET_OPS", most)
            ops, goal = _compile(p, False), (1 << p.num_ops) - 1
            search = _Search(ops, 0, goal, _initial(p), 0, 1 << 60, None, lambda: None, core=core)
            no, yes = within(search, best - 1), within(search, best)
            assert yes.order is not None and simulate(p, yes.order).peak_bytes == yes.peak
            answers.add((no.status, no.bound, yes.status, yes.peak))
            count = totals.setdefault(most, [0, 0])
            count[0] += no.visited
            count[1] += no.dead
        assert answers == {("none", best, "found", best)}
    assert totals[3][0] < totals[0][0] and totals[3][1] < totals[0][1]


@pytest.fixture
def no_minors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounds at the hand-over (the cut bound, the width bound's minor step) prove
    nothing: on some of these graphs (seed 84) they meet the optimum there and leave the
    decision rounds nothing to do."""
    engine = importlib.import_module("serenity.schedule.exact")
    monkeypatch.setattr(engine, "MINOR_SECONDS", 0)
    monkeypatch.setattr(engine, "CUT_SECONDS", 0)


@pytest.mark.parametrize("cuts", [True, False])
def test_a_bound_at_the_hand_over_can_prove_alone(
    cuts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the hand-over the cut bound, then the width bound's minor step, run once: on
    seed 84 either alone meets the best order found (the cut bound first, the minor
    step when the cut bound is switched off), so no decision round runs; the optimum
    is the uncapped one."""
    if not cuts:
        monkeypatch.setattr(importlib.import_module("serenity.schedule.exact"), "CUT_SECONDS", 0)
    p = random_wired(84, 30)
    free = exact(p, ScheduleOptions(), fusion=False)
    r = exact(p, ScheduleOptions(search_memory=200_000), fusion=False, local_search=False)
    assert r.stats["memory_capped"] and r.stats["decision_rounds"] == 0 and r.optimal
    assert r.peak_bytes == free.peak_bytes == r.lower_bound_bytes
    if cuts:
        assert r.stats["cut_bound"] == r.peak_bytes and "width_minors" not in r.stats
    else:
        assert r.stats["width_minors"] and r.stats["width_bound"] == r.peak_bytes
    assert "width_minors" not in free.stats and "cut_bound" not in free.stats  # proven early


@pytest.mark.parametrize("decision", [True, False])
def test_a_search_stopped_at_the_time_limit_gets_no_minor_step(decision: bool) -> None:
    """The minor step takes steps for a share of the limit, but never time past it: a
    search the limit stopped (here at once) reports the width bound without it."""
    p = random_wired(84, 30)
    r = exact(p, ScheduleOptions(time_limit=1e-9), fusion=False, decision=decision)
    assert not r.optimal and "width_minors" not in r.stats
    assert r.lower_bound_bytes <= exact(p, ScheduleOptions(), fusion=False).peak_bytes


@pytest.mark.usefixtures("no_minors")
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_the_exact_engine_proves_with_the_decision_search_at_the_memory_cap(seed: int) -> None:
    """Capped after its first 1,024 states, the best-first search hands over to the
    decision search, which proves the same optimum as the uncapped search."""
    p = random_wired(seed, 30)
    free = exact(p, ScheduleOptions(), fusion=False)
    r = exact(p, ScheduleOptions(search_memory=200_000), fusion=False, local_search=False)
    assert r.stats["memory_capped"] and r.stats["decision_visited"] > 0
    assert r.optimal and free.optimal
    assert r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes


@pytest.mark.parametrize("local_search", [False, True])
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_rounds_from_above_take_turns_with_the_cut_bound(
    seed: int, local_search: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one searcher, rounds from above paused at their first check (each round's
    first call is asked to pause at once, the call that resumes it not to pause: turns
    timed by the clock left a busy machine's rounds paused until the cut bound proved
    the optimum; the cut bound's turns are 2,000 arcs' worth of max-flows) give the cut
    bound's sequences their turn and resume: the same optimum as the uncapped search,
    proven, with the local search at each turn or without."""
    module = importlib.import_module("serenity.schedule.exact")
    rate = cuts.COMPILED_SOLVE_RATE if cuts.compiled() else cuts.SOLVE_RATE
    monkeypatch.setattr(module, "CUT_SECONDS", 2_000 / rate)
    monkeypatch.setattr(module, "CUT_TURNS", 1.0)  # short turns: the rounds resume
    monkeypatch.setattr(module, "FREE_SET_OPS", 0)  # with free sets seed 62 needs no turn
    answers: list[str] = []

    def spy(*args: object, pause_at: float | None = None, **kw: object) -> Decision:
        if pause_at is not None:  # a round's first call pauses at its first check
            pause_at = None if answers and answers[-1] == "paused" else 0.0
        answer = within(*args, pause_at=pause_at, **kw)  # type: ignore[arg-type]
        answers.append(answer.status)
        return answer

    monkeypatch.setattr(module, "within", spy)
    p = random_wired(seed, 30)
    free = exact(p, ScheduleOptions(), fusion=False)
    one = ScheduleOptions(search_memory=200_000, threads=1)  # with two, no turns (beside)
    r = exact(p, one, fusion=False, local_search=local_search)
    assert r.stats["memory_capped"] and "paused" in answers
    # With the local search an order its windows find may end the rounds at a turn; the
    # Python reference restarts a paused round (it keeps nothing between calls), so with
    # turns this short its rounds may never answer before the cut bound proves the optimum.
    if not local_search and exact_module._core is not None and native_wanted():
        # A paused round went on (the last may stay paused: the cut bound's turn proved it).
        assert any(a == "paused" != b for a, b in itertools.pairwise(answers))
    assert r.optimal and r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes


@pytest.mark.skipif(
    exact_module._core is None or not native_wanted() or not cuts.compiled(),
    reason="compiled core or cuts not built, or SERENITY_PURE_PYTHON set",
)
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_rounds_run_beside_the_cut_bound_with_three_threads(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With three threads and the compiled core, one lifts the second cut bound and
    rounds from above run in a thread of their own with one searcher (more searchers'
    tables can outgrow this 200 kB cap: three, without the cut bound, stop at it on
    seed 62), stoppable, while the cut bound's sequences lift in the engine's thread
    (its first turn 2,000 arcs' worth of max-flows); the rest run here with the two
    searchers left, stopped when the second cut bound proves the best order. The
    optimum is the one-searcher one, proven, and the order is valid."""
    rate = cuts.COMPILED_SOLVE_RATE if cuts.compiled() else cuts.SOLVE_RATE
    monkeypatch.setattr(exact_module, "CUT_SECONDS", 2_000 / rate)
    monkeypatch.setattr(exact_module, "FREE_SET_OPS", 0)  # with them seed 62 needs no round
    seen: list[tuple[bool, int, bool]] = []

    def spy(*args: object, threads: int = 1, **kw: object) -> Decision:
        here = threading.current_thread() is threading.main_thread()
        seen.append((here, threads, kw.get("stop") is not None))
        return within(*args, threads=threads, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(exact_module, "within", spy)
    p = random_wired(seed, 30)
    one = exact(p, ScheduleOptions(search_memory=200_000, threads=1), fusion=False)
    assert seen and all(here and n == 1 and not stop for here, n, stop in seen)
    seen.clear()
    # Without the local search (beams, witnesses) the rounds find the orders.
    options = ScheduleOptions(search_memory=200_000, threads=3)
    r = exact(p, options, fusion=False, local_search=False)
    assert (False, 1, True) in seen
    assert set(seen) <= {(False, 1, True), (True, 2, True)}
    assert r.optimal and r.peak_bytes == one.peak_bytes == simulate(p, r.op_order).peak_bytes


@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_the_second_cut_bound_reaches_the_optimum_in_its_thread(seed: int) -> None:
    """The second cut bound lifts in its own thread up to ``upper`` (here the
    optimum: with enough ops chosen the cut bound is the optimum) and says so; stopped
    at once it returns a valid bound."""
    p = random_wired(seed, 30)
    best = exact(p, ScheduleOptions(threads=1), fusion=False)
    assert best.optimal
    order = list(range(p.num_ops))  # the graph's own order: a valid guide
    second = exact_module._SecondCuts(
        p, inplace=False, before=None, order=order, upper=best.peak_bytes, deadline=None
    )
    assert second.reached.wait(60)
    assert second.close() == best.peak_bytes
    stopped = exact_module._SecondCuts(
        p, inplace=False, before=None, order=[], upper=1 << 60, deadline=None
    )
    assert stopped.close() <= best.peak_bytes and not stopped.reached.is_set()


def test_the_second_cut_bound_s_errors_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the second cut bound's thread raises, :meth:`close` raises again."""

    def fail(*args: object, **kw: object) -> int:
        raise RuntimeError("lift failed")

    monkeypatch.setattr(cuts.CutBound, "lift", fail)
    second = exact_module._SecondCuts(
        random_wired(13, 30), inplace=False, before=None, order=[], upper=1 << 60, deadline=None
    )
    second._thread.join(60)  # it fails at its first piece (close() would stop it first)
    with pytest.raises(RuntimeError, match="lift failed"):
        second.close()


@pytest.mark.skipif(not cuts.compiled(), reason="the second cut bound needs the compiled cuts")
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_with_two_threads_the_second_cut_bound_proves_while_the_rounds_take_turns(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two threads the second cut bound lifts in its thread and the rounds take
    turns with the first in the engine's thread, one searcher, each stopped by the
    second when it reaches the best peak. With the first cut bound frozen and every
    round waiting for that stop, the second alone proves the optimum (the engine
    starts from an optimal order: a bound proves no more than the best order's peak):
    the engine reports it proven, at the one-searcher optimum, with a valid order."""
    monkeypatch.setattr(exact_module, "CUT_SECONDS", 2_000 / cuts.COMPILED_SOLVE_RATE)
    monkeypatch.setattr(exact_module, "FREE_SET_OPS", 0)  # with them seed 62 needs no round
    p = random_wired(seed, 30)
    one = exact(p, ScheduleOptions(search_memory=200_000, threads=1), fusion=False)
    lift = cuts.CutBound.lift

    def frozen(self: cuts.CutBound, *args: object, **kw: object) -> int:
        if threading.current_thread() is threading.main_thread():
            return self.bound  # the first cut bound lifts nothing
        return lift(self, *args, **kw)  # type: ignore[arg-type]

    seen: list[tuple[bool, int]] = []

    def waiting(*args: object, threads: int = 1, **kw: object) -> Decision:
        stop = kw.get("stop")
        seen.append((threading.current_thread() is threading.main_thread(), threads))
        assert isinstance(stop, threading.Event) and stop.wait(60)
        return within(*args, threads=threads, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cuts.CutBound, "lift", frozen)
    monkeypatch.setattr(exact_module, "within", waiting)
    options = ScheduleOptions(search_memory=200_000, threads=2, hint=one.op_order)
    r = exact(p, options, fusion=False, local_search=False)
    assert r.optimal and r.peak_bytes == one.peak_bytes == simulate(p, r.op_order).peak_bytes
    assert r.stats["cut_bound_second"] == r.peak_bytes
    assert set(seen) <= {(True, 1)}


def test_the_cut_bound_s_witness_leads_to_better_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the beams off and short cut turns (400,000 arcs' worth of max-flows
    compiled, 20,000 by OR-Tools), the orders through the cut bound's witnesses are
    followed at its turns (on the graphs where its first piece does not prove the
    best order at once), some are better than the best order then, and each answer
    is the uncapped optimum, proven; without the local search no witness is
    followed."""
    module = importlib.import_module("serenity.schedule.exact")
    arcs, rate = (
        (400_000, cuts.COMPILED_SOLVE_RATE) if cuts.compiled() else (20_000, cuts.SOLVE_RATE)
    )
    monkeypatch.setattr(module, "CUT_SECONDS", arcs / rate)
    monkeypatch.setattr(module, "BEAM_SLICE", 0.0)
    followed = 0
    witnesses = {True: 0, False: 0}
    for seed in (13, 62, 84, 164):
        p = random_wired(seed, 30)
        free = exact(p, ScheduleOptions(), fusion=False)
        for local_search in (True, False):
            r = exact(
                p, ScheduleOptions(search_memory=200_000), fusion=False, local_search=local_search
            )
            witnesses[local_search] += r.stats["local_witnesses"]
            assert (
                r.optimal and r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes
            )
            followed += r.stats["local_followed"]
    assert witnesses[True] > 0 and witnesses[False] == 0
    assert followed > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_the_cut_bound_s_turns_run_in_pieces_and_keep_the_optimum(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn of the cut bound's sequences asks for at most ``_CUT_PIECE`` seconds'
    worth of max-flows at a time (here 0.03 ms of turns of 1 ms: several pieces a
    turn; the guided sequences prove each of these graphs in one piece of 0.1 ms),
    with one searcher (turns) or two (beside the rounds); every answer is the
    uncapped optimum, proven. Beside the rounds, a round may answer before a second
    piece is asked (it depends on the threads' timing): one piece a graph at least."""
    monkeypatch.setattr(exact_module, "CUT_SECONDS", 1e-3)
    monkeypatch.setattr(exact_module, "_CUT_PIECE", 3e-5)
    asked: list[float] = []
    lift = cuts.CutBound.lift

    def spy(self: cuts.CutBound, *args: object, seconds: float, **kw: object) -> int:
        asked.append(seconds)
        return lift(self, *args, seconds=seconds, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cuts.CutBound, "lift", spy)
    for seed in (13, 62, 84, 164):
        p = random_wired(seed, 30)
        free = exact(p, ScheduleOptions(), fusion=False)
        r = exact(p, ScheduleOptions(search_memory=200_000, threads=threads), fusion=False)
        assert r.optimal and r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes
    assert len(asked) > (4 if threads == 1 else 3) and max(asked) <= 3e-5


@pytest.mark.usefixtures("no_minors")
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_threads_reach_the_decision_rounds_and_prove_the_same_optimum(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ScheduleOptions.threads`` is the searcher count of every decision round (the
    default: the CPUs this process may use; here without the cut bound, whose second
    copy would take one); the optimum is the one-searcher one."""
    module = importlib.import_module("serenity.schedule.exact")
    monkeypatch.setattr(module, "FREE_SET_OPS", 0)  # with them seed 62 needs no round
    asked: list[int] = []

    def spy(*args: object, threads: int = 1, **kw: object) -> Decision:
        asked.append(threads)
        return within(*args, threads=threads, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "within", spy)
    p = random_wired(seed, 30)
    one = exact(p, ScheduleOptions(search_memory=200_000, threads=1), fusion=False)
    assert one.optimal and set(asked) == {1}
    asked.clear()
    r = exact(p, ScheduleOptions(search_memory=200_000, threads=2), fusion=False)
    assert r.stats["threads"] == 2 and asked and set(asked) == {2}
    assert r.optimal and r.peak_bytes == one.peak_bytes == simulate(p, r.op_order).peak_bytes
    asked.clear()
    auto = exact(p, ScheduleOptions(search_memory=200_000), fusion=False)
    assert auto.stats["threads"] == default_threads() and set(asked) == {default_threads()}
    with pytest.raises(UsageError, match="threads"):
        ScheduleOptions(threads=0)


@pytest.mark.usefixtures("no_minors")
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_the_beam_slice_before_the_rounds_keeps_the_optimum(seed: int) -> None:
    """At the memory cap the beam searches run first (a lower start for the rounds
    from above); the rounds still prove the uncapped search's optimum, and the order
    returned is a valid one with that peak."""
    p = random_wired(seed, 30)
    free = exact(p, ScheduleOptions(), fusion=False)
    r = exact(p, ScheduleOptions(search_memory=200_000, time_limit=600), fusion=False)
    assert r.stats["memory_capped"] and r.stats["local_beams"] > 0
    assert r.optimal and p.is_topological(r.op_order)
    assert r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes


@pytest.mark.usefixtures("no_minors")
@pytest.mark.parametrize("seed", [13, 62, 84, 164])
def test_rounds_from_below_prove_the_same_optimum(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the rounds from above out of time at once, the rounds from below lift the
    bound level by level until an order within it is found: the same optimum."""
    monkeypatch.setattr(importlib.import_module("serenity.schedule.exact"), "FROM_BELOW_SHARE", 0)
    p = random_wired(seed, 30)
    free = exact(p, ScheduleOptions(), fusion=False)
    options = ScheduleOptions(search_memory=200_000, time_limit=600)
    r = exact(p, options, fusion=False, local_search=False)
    assert r.stats["decision_below"] > 0
    assert r.optimal and r.peak_bytes == free.peak_bytes == simulate(p, r.op_order).peak_bytes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wired(max_ops=11), st.integers(1, 4), st.sampled_from([None, 0]))
def test_rounds_from_below_never_claim_too_much(p: Problem, rounds: int, cap: int | None) -> None:
    """Stopped after a few decision rounds (above, then from below), the engine's bound
    is at most the optimum, and an order claimed optimal is."""
    engine = importlib.import_module("serenity.schedule.exact")
    best = oracle_optimum(p)
    calls = []

    def stopping(search: object, limit: int, *args: object, **kw: object) -> Decision:
        calls.append(limit)
        if len(calls) > rounds:
            return Decision("timeout", None, 0, 0, 0)
        return within(search, limit, *args, **kw)  # type: ignore[arg-type]

    old = engine.FROM_BELOW_SHARE, engine.within
    engine.FROM_BELOW_SHARE, engine.within = 0.0, stopping
    try:
        options = ScheduleOptions(search_memory=cap, time_limit=600)
        r = exact(p, options, fusion=False, local_search=False)
    finally:
        engine.FROM_BELOW_SHARE, engine.within = old
    assert r.lower_bound_bytes <= best <= r.peak_bytes
    assert not r.optimal or r.peak_bytes == best
