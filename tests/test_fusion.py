"""Graph fusion against the naive oracles of test_scheduling, on random DAGs."""

from __future__ import annotations

from helpers import problems
from hypothesis import HealthCheck, given, settings
from test_scheduling import all_orders, brute_force, naive_peak

from serenity import Problem, ScheduleOptions, simulate
from serenity.schedule.exact import exact
from serenity.schedule.fusion import fuse

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems(max_ops=8))
def test_fusion_never_changes_the_optimum(p: Problem) -> None:
    f = fuse(p)
    assert f.ops_after <= f.ops_before
    assert brute_force(f.problem) == brute_force(p)
    plain = exact(p, ScheduleOptions(), fusion=False)
    fused = exact(f.problem, ScheduleOptions(), fusion=False)
    assert exact(p, ScheduleOptions()).peak_bytes == plain.peak_bytes
    assert plain.peak_bytes == fused.peak_bytes
    expanded = f.expand(fused.op_order)
    assert p.is_topological(expanded)
    assert naive_peak(p, expanded) == fused.peak_bytes


@SETTINGS
@given(problems(max_ops=8))
def test_every_fused_order_expands_to_a_valid_order_of_the_same_peak(p: Problem) -> None:
    f = fuse(p)
    assert sorted(v for g in f.groups for v in g) == list(range(p.num_ops))
    for order in all_orders(f.problem, limit=100):
        expanded = f.expand(order)
        assert p.is_topological(expanded)
        assert simulate(f.problem, order).peak_bytes == naive_peak(p, expanded)
        assert f.contract(expanded) == order


@SETTINGS
@given(problems(max_ops=10))
def test_fusion_reaches_a_fixed_point(p: Problem) -> None:
    again = fuse(fuse(p).problem)
    assert again.ops_after == again.ops_before
    assert sum(again.rules.values()) == 0


def chain(sizes: list[int]) -> Problem:
    """x -> op0 -> t1 -> op1 -> ... : a plain chain with the given tensor sizes."""
    n = len(sizes) - 1
    return Problem(
        [f"op{i}" for i in range(n)],
        sizes,
        [[i] for i in range(n)],
        [[i + 1] for i in range(n)],
        [0],
        [n],
    )


def test_a_chain_fuses_while_an_exchange_argument_holds() -> None:
    p = chain([4, 16, 16, 2, 8])
    f = fuse(p)
    # op0..op2 fuse (their footprint is 4 + 16 + 16 = 36 at op1). op3 does not join:
    # the group frees memory (4 + 16 -> 2) and op3 grows it (2 -> 8), so in a
    # larger graph other ops may belong between them; neither rule applies.
    assert f.groups == ((0, 1, 2), (3,))
    assert simulate(f.problem, [0, 1]).peak_bytes == simulate(p, [0, 1, 2, 3]).peak_bytes == 32
    assert f.expand([0, 1]) == [0, 1, 2, 3]


def test_a_shrinking_chain_fuses_to_one_op() -> None:
    p = chain([64, 32, 32, 8, 8])
    f = fuse(p)
    assert f.groups == ((0, 1, 2, 3),)
    assert simulate(f.problem, [0]).peak_bytes == simulate(p, [0, 1, 2, 3]).peak_bytes == 96


def test_a_shared_input_blocks_a_growing_first_op() -> None:
    # x feeds a (x -> big) and c; a -> b shrinks. a frees x only after c ran, so
    # a;b's footprint depends on the state: rule A needs b's step below a's.
    p = Problem(
        ["a", "b", "c"],
        [10, 50, 60, 1],
        [[0], [1], [0]],
        [[1], [2], [3]],
        [0],
        [2, 3],
    )
    f = fuse(p)
    assert f.ops_after == 3  # b's step (60 + live) can exceed a's (50 + live)
