"""Arena planning: lifetimes against the simulator, planners against oracles.

Every plan any test makes goes through ``check_plan``. The oracles are written
here and share no code with the package: ``first_fit`` places buffers one by
one at the lowest free address, and ``brute_force_arena`` tries it under every
order of the buffers, which finds the optimal arena (order the buffers of an
optimal plan by offset: first fit never puts one higher than that plan does).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import onnx_models
import pytest
from helpers import problems
from helpers import run_cli as cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serenity import Problem, simulate
from serenity.errors import UsageError
from serenity.plan import (
    PLANNERS,
    ArenaPlan,
    Buffer,
    InvalidPlanError,
    ascii_chart,
    check_plan,
    lifetimes,
    live_bytes,
    max_live_bytes,
    plan,
)
from serenity.plan.exact import solve_cpsat

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def planned(buffers: list[Buffer], planner: str, alignment: int = 16, **kw: float) -> ArenaPlan:
    """``plan`` followed by the checker, as every test here uses it."""
    p = plan(buffers, planner, alignment, **kw)
    check_plan(buffers, p)
    assert p.planner == planner
    assert p.arena_bytes >= p.lower_bound_bytes == max_live_bytes(buffers, alignment)
    assert p.reaches_bound == (p.arena_bytes == p.lower_bound_bytes)
    if p.reaches_bound:
        assert p.optimal
    return p


def first_fit(buffers: list[Buffer], order: tuple[int, ...]) -> int:
    """Arena of placing ``order`` one by one at the lowest address that fits."""
    offset: dict[int, int] = {}
    for i in order:
        b = buffers[i]
        taken = sorted(
            (offset[j], buffers[j].size)
            for j in offset
            if b.first_step <= buffers[j].last_step and buffers[j].first_step <= b.last_step
        )
        at = 0
        for o, s in taken:
            if o - at >= b.size:
                break
            at = max(at, o + s)
        offset[i] = at
    return max((offset[i] + buffers[i].size for i in offset if buffers[i].size), default=0)


def brute_force_arena(buffers: list[Buffer]) -> int:
    """The optimal arena (alignment 1): first fit under every order."""
    return min(first_fit(buffers, o) for o in itertools.permutations(range(len(buffers))))


# --------------------------------------------------------------------------- hand cases


def test_chain_reuses_the_first_buffer() -> None:
    # a (32 B) dies at step 1, where b is made; c reuses a's bytes.
    bufs = [Buffer(32, 0, 1, name="a"), Buffer(16, 1, 2, name="b"), Buffer(32, 2, 3, name="c")]
    for name in PLANNERS:
        p = planned(bufs, name)
        assert p.arena_bytes == 48 and p.optimal, name
    assert plan(bufs, "greedy-size").offsets == (0, 32, 0)


def test_greedy_size_misses_a_reachable_bound_and_best_reaches_it() -> None:
    # Units of 16 bytes. Largest first puts C and B at 0; A must sit on B (step 3),
    # then D (steps 1-2) must clear C at step 1 and A at step 2: an arena of 4
    # units. C at 0, D at 2, A at 0, B at 1 fits in 3 units: the bound (step 1).
    u = 16
    bufs = [
        Buffer(1 * u, 2, 4, name="A"),
        Buffer(2 * u, 3, 3, name="B"),
        Buffer(2 * u, 1, 1, name="C"),
        Buffer(1 * u, 1, 2, name="D"),
    ]
    greedy = planned(bufs, "greedy-size")
    assert greedy.offsets == (2 * u, 0, 0, 3 * u)
    assert greedy.arena_bytes == 4 * u and not greedy.optimal
    for name in ("best", "cpsat"):
        p = planned(bufs, name)
        assert p.arena_bytes == 3 * u == p.lower_bound_bytes and p.optimal, name
    assert brute_force_arena(bufs) == 3 * u


def test_greedy_order_is_best_fit_in_allocation_order() -> None:
    # At step 0, a (64) b (16) c (32) e (16) are stacked in allocation order. a and c
    # die, leaving holes of 64 bytes at 0 and 32 at 80: d (32, step 1) takes the
    # smaller hole that fits (best fit); largest-first first fit puts it at 0.
    bufs = [
        Buffer(64, 0, 0, name="a"),
        Buffer(16, 0, 1, name="b"),
        Buffer(32, 0, 0, name="c"),
        Buffer(16, 0, 1, name="e"),
        Buffer(32, 1, 1, name="d"),
    ]
    p = planned(bufs, "greedy-order", alignment=16)
    assert p.offsets == (0, 64, 80, 112, 80)
    assert p.arena_bytes == 128 == p.lower_bound_bytes


def test_alignment_rounds_sizes_and_offsets() -> None:
    bufs = [Buffer(1, 0, 1), Buffer(17, 0, 1), Buffer(0, 0, 1), Buffer(33, 1, 2)]
    for name in PLANNERS:
        p = planned(bufs, name, alignment=16)
        assert all(o % 16 == 0 for o in p.offsets)
        assert p.lower_bound_bytes == 16 + 32 + 48  # step 1
        assert p.arena_bytes == 96, name
    assert planned(bufs, "best", alignment=1).arena_bytes == 1 + 17 + 33


def test_empty_and_zero_size() -> None:
    for name in PLANNERS:
        assert planned([], name).arena_bytes == 0
        assert planned([Buffer(0, -1, 3)], name).offsets == (0,)


def test_bad_planner_arguments() -> None:
    with pytest.raises(UsageError, match="unknown planner 'nope'"):
        plan([], "nope")
    with pytest.raises(UsageError, match="alignment"):
        plan([], "best", 0)
    with pytest.raises(UsageError, match="time limit"):
        plan([], "best", 16, -1.0)


def test_checker_rejects_bad_plans() -> None:
    bufs = [Buffer(32, 0, 1, name="a"), Buffer(16, 1, 2, name="b")]
    good = plan(bufs, "best")

    def bad(**changes: object) -> ArenaPlan:
        fields = {**good.__dict__, **changes}
        return ArenaPlan(**fields)  # type: ignore[arg-type]

    with pytest.raises(InvalidPlanError, match=r"'a' \(bytes 0\.\.31\) and 'b' .* step 1"):
        check_plan(bufs, bad(offsets=(0, 16), arena_bytes=32))
    with pytest.raises(InvalidPlanError, match="'b' has offset 40, not a non-negative multiple"):
        check_plan(bufs, bad(offsets=(0, 40), arena_bytes=56))
    with pytest.raises(InvalidPlanError, match="arena_bytes is 64"):
        check_plan(bufs, bad(arena_bytes=64))
    with pytest.raises(InvalidPlanError, match="1 offsets for 2 buffers"):
        check_plan(bufs, bad(offsets=(0,)))
    # Not live at the same step: sharing bytes is fine.
    check_plan([Buffer(32, 0, 0), Buffer(32, 1, 1)], bad(offsets=(0, 0), arena_bytes=32))


def test_chart_draws_every_step_and_a_legend() -> None:
    bufs = [Buffer(32, -1, 0, name="x"), Buffer(32, 0, 1, name="y"), Buffer(0, 1, 1, name="z")]
    text = ascii_chart(bufs, planned(bufs, "best"), width=8)
    assert text.splitlines()[1:4] == [
        "  -1 | AAAA.... |     32",
        "   0 | AAAABBBB |     64",
        "   1 | ....BBBB |     32",
    ]
    assert "B y: 32 bytes at 32, steps 0..1" in text and "z" not in text


# --------------------------------------------------------------------------- random lifetimes


@st.composite
def buffer_lists(draw: st.DrawFn, max_buffers: int = 12, max_size: int = 200) -> list[Buffer]:
    n = draw(st.integers(0, max_buffers))
    out = []
    for k in range(n):
        first = draw(st.integers(-1, 10))
        last = draw(st.integers(first, first + draw(st.sampled_from([0, 1, 3, 10]))))
        out.append(Buffer(draw(st.integers(0, max_size)), first, last, name=f"b{k}"))
    return out


@SETTINGS
@given(buffer_lists(), st.sampled_from([1, 4, 16, 64]))
def test_every_planner_gives_a_valid_plan(bufs: list[Buffer], alignment: int) -> None:
    arenas = {}
    for name in PLANNERS:
        arenas[name] = planned(bufs, name, alignment).arena_bytes
    # best tries largest-first among its orders, and never returns a worse plan.
    assert arenas["best"] <= arenas["greedy-size"]
    per_step = live_bytes(bufs, 12 + 10, alignment)
    assert max(per_step, default=0) == max_live_bytes(bufs, alignment)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffer_lists(max_buffers=6, max_size=6))
def test_exact_planners_equal_brute_force(bufs: list[Buffer]) -> None:
    best = brute_force_arena(bufs)
    # CP-SAT from the worst start (every buffer stacked on the previous one).
    sizes = [b.size for b in bufs]
    stacked = [sum(sizes[:k]) for k in range(len(bufs))]
    solved = solve_cpsat(bufs, sizes, 1, max_live_bytes(bufs), stacked, 20.0)
    assert solved.arena == best and solved.proven
    check_plan(bufs, ArenaPlan(solved.offsets, best, max_live_bytes(bufs), 1, "cpsat", True))
    for name in ("cpsat", "best"):
        p = planned(bufs, name, alignment=1, time_limit=20.0)
        assert p.arena_bytes == best, name
        assert p.optimal, name
    assert (best == max_live_bytes(bufs)) == planned(bufs, "cpsat", 1).reaches_bound


# --------------------------------------------------------------------------- lifetimes


@st.composite
def problem_and_order(draw: st.DrawFn) -> tuple[Problem, list[int]]:
    p = draw(problems(inplace=True))
    order: list[int] = []
    while len(order) < p.num_ops:
        ready = [
            v for v in range(p.num_ops) if v not in order and all(u in order for u in p.preds[v])
        ]
        order.append(draw(st.sampled_from(ready)))
    return p, order


@SETTINGS
@given(problem_and_order(), st.booleans())
def test_lifetimes_reproduce_the_simulated_footprints(
    case: tuple[Problem, list[int]], inplace: bool
) -> None:
    p, order = case
    timeline = simulate(p, order, inplace=inplace)
    bufs = lifetimes(p, order, inplace=inplace)
    assert live_bytes(bufs, len(order)) == [timeline.initial_bytes, *timeline.step_bytes]
    assert max_live_bytes(bufs) == timeline.peak_bytes
    assert sorted(t for b in bufs for t in b.tensors) == list(range(p.num_tensors))
    home = {t: k for k, b in enumerate(bufs) for t in b.tensors}
    for i, t in enumerate(timeline.reused):  # an in-place output shares its input's buffer
        if t >= 0:
            assert home[t] == home[p.op_outputs[order[i]][0]]
    if not inplace:
        assert all(len(b.tensors) == 1 for b in bufs)
        assert timeline.reused == (-1,) * len(order)
    p1 = planned(bufs, "best", alignment=1)
    assert p1.lower_bound_bytes == timeline.peak_bytes


def test_lifetime_rules_by_hand() -> None:
    # x -> a -> (u, dead); u -> b -> y (graph output); x also read by b; z unread input.
    p = Problem(
        ["a", "b"],
        [8, 4, 2, 6, 1],
        [[0], [1, 0]],
        [[1, 2], [3]],
        [0, 4],
        [3],
        tensor_names=["x", "u", "dead", "y", "z"],
    )
    bufs = lifetimes(p, [0, 1])
    spans = {b.name: (b.first_step, b.last_step) for b in bufs}
    assert spans == {"x": (-1, 1), "u": (0, 1), "dead": (0, 0), "y": (1, 1), "z": (-1, 1)}


def test_inplace_chain_merges_into_one_buffer() -> None:
    # x -> relu1 -> r1 -> relu2 -> r2 (output): both ops overwrite their input.
    p = Problem(
        ["relu1", "relu2"],
        [16, 16, 16],
        [[0], [1]],
        [[1], [2]],
        [0],
        [2],
        tensor_names=["x", "r1", "r2"],
        inplace_inputs=[[0], [1]],
    )
    (buf,) = lifetimes(p, [0, 1], inplace=True)
    assert (buf.size, buf.first_step, buf.last_step, buf.name) == (16, -1, 1, "x+r1+r2")
    assert len(lifetimes(p, [0, 1])) == 3


# --------------------------------------------------------------------------- CLI

PLAN_KEYS = {
    "arena_bytes",
    "peak_bytes",
    "lower_bound_bytes",
    "alignment",
    "planner",
    "optimal",
    "tensors",
}
TENSOR_KEYS = {"name", "offset", "size", "first_step", "last_step"}


def plan_is_valid(plan_json: dict[str, Any]) -> None:
    """Rebuild buffers from the JSON (tensors with one offset share a buffer) and check."""
    assert set(plan_json) >= PLAN_KEYS
    rows = plan_json["tensors"]
    assert rows and all(set(r) >= TENSOR_KEYS for r in rows)
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get("buffer", len(groups)), []).append(r)
    bufs = [
        Buffer(
            max(r["size"] for r in g),
            min(r["first_step"] for r in g),
            max(r["last_step"] for r in g),
            name=g[0]["name"],
        )
        for g in groups.values()
    ]
    offsets = tuple(g[0]["offset"] for g in groups.values())
    assert all(r["offset"] == g[0]["offset"] for g in groups.values() for r in g)
    arena = ArenaPlan(
        offsets,
        plan_json["arena_bytes"],
        plan_json["lower_bound_bytes"],
        plan_json["alignment"],
        plan_json["planner"],
        plan_json["optimal"],
    )
    check_plan(bufs, arena)
    assert max_live_bytes(bufs, plan_json["alignment"]) == plan_json["lower_bound_bytes"]
    assert max_live_bytes(bufs) == plan_json["peak_bytes"]


def test_cli_schedule_plan_then_plan_from_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "design.onnx"
    onnx.save(onnx_models.design_example(), str(model))
    report, plan1, plan2 = tmp_path / "r.json", tmp_path / "p1.json", tmp_path / "p2.json"
    code, out, err = cli(
        capsys, "schedule", model, "-o", tmp_path / "o.onnx", "--json", report, "--plan", plan1
    )
    assert code == 0, err
    first = json.loads(plan1.read_text())
    plan_is_valid(first)
    # docs/memory-model.md's worked example: the best order peaks at 13,312 bytes, and the
    # arena realises it (every size is a multiple of 16).
    assert first["peak_bytes"] == first["arena_bytes"] == 13312 and first["optimal"]
    assert f"arena: {13312:,} bytes (equals the lower bound: optimal)" in out
    assert first["schedule"] == json.loads(report.read_text())["schedule"]

    code, out, err = cli(
        capsys,
        "plan",
        model,
        "--schedule",
        report,
        "--planner",
        "greedy-order",
        "--alignment",
        "64",
        "--json",
        plan2,
        "--chart",
    )
    assert code == 0, err
    second = json.loads(plan2.read_text())
    plan_is_valid(second)
    assert (second["planner"], second["alignment"]) == ("greedy-order", 64)
    assert second["schedule"] == first["schedule"]
    assert "step | address 0.." in out and "lower bound (alignment 64)" in out
    assert len([line for line in out.splitlines() if " | " in line]) >= 11  # steps -1..9 + head


def test_cli_plan_schedules_first_and_merges_inplace_buffers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "cell.onnx"
    onnx.save(onnx_models.residual_cell(), str(model))
    out_json = tmp_path / "p.json"
    code, _, err = cli(capsys, "plan", model, "--inplace", "--json", out_json)
    assert code == 0, err
    data = json.loads(out_json.read_text())
    plan_is_valid(data)
    assert data["inplace"] and data["arena_bytes"] == data["lower_bound_bytes"]
    by_name = {r["name"]: r for r in data["tensors"]}
    # Every Relu overwrites its expansion: same buffer, same offset.
    for i in range(3):
        assert by_name[f"r{i}"]["buffer"] == by_name[f"e{i}"]["buffer"]
        assert by_name[f"r{i}"]["offset"] == by_name[f"e{i}"]["offset"]
    code, _, err = cli(capsys, "plan", model, "--json", out_json)
    assert code == 0, err
    assert len({r["buffer"] for r in json.loads(out_json.read_text())["tensors"]}) == len(by_name)


def _report(tmp_path: Path, names: list[str]) -> list[str]:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schedule": names}))
    return ["--schedule", str(path)]


def _empty_json(tmp_path: Path) -> str:
    (tmp_path / "empty.json").write_text("{}")
    return str(tmp_path / "empty.json")


BAD_PLAN_ARGS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "unknown node": (lambda d: _report(d, ["a0", "zz"]), "not scheduled in the model: 'zz'"),
    "missing node": (lambda d: _report(d, DESIGN_ORDER[:-1]), "1 node(s) missing, e.g. 'y'"),
    "repeated node": (lambda d: _report(d, [*DESIGN_ORDER, "a0"]), "'a0' listed twice"),
    "wrong order": (lambda d: _report(d, DESIGN_ORDER[::-1]), "'y' comes before its input's"),
    "not a report": (lambda d: ["--schedule", str(d / "m.onnx")], "is not JSON"),
    "no schedule key": (lambda d: _report(d, [])[:1] + [_empty_json(d)], "no 'schedule' list"),
    "missing report": (lambda d: ["--schedule", str(d / "none.json")], "cannot read"),
    "alignment": (lambda d: ["--alignment", "0"], "--alignment must be >= 1"),
    "time limit": (
        lambda d: ["--time-limit", "-1"],
        "--time-limit must be a finite number of seconds >= 0",
    ),
}
DESIGN_ORDER = ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "cat", "y"]


@pytest.mark.parametrize("case", list(BAD_PLAN_ARGS))
def test_cli_plan_bad_input(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(onnx_models.design_example(), str(model))
    make, message = BAD_PLAN_ARGS[case]
    out_json = tmp_path / "p.json"
    code, _, err = cli(capsys, "plan", model, *make(tmp_path), "--json", out_json)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("serenity: error: "), err
    assert message in lines[0]
    assert not out_json.exists()


def test_cli_schedule_plan_path_clash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(onnx_models.design_example(), str(model))
    out = tmp_path / "o.onnx"
    code, _, err = cli(capsys, "schedule", model, "-o", out, "--plan", model)
    assert code == 2 and "--plan" in err and "would overwrite" in err
    assert not out.exists()
