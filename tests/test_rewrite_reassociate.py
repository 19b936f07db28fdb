"""Re-associating a sum so that each term is added as soon as it is produced."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_models
import pytest
from test_rewrite_common import assert_equivalent, op_types, run_pass

import serenity
from serenity.io.onnx_import import load_proto
from serenity.rewrite import ReassociatePass
from serenity.rewrite.driver import term_ranks
from serenity.schedule import ScheduleOptions, schedule

#: The taps in production order (h1 exists first).
PRODUCTION = {"t1": 1, "t2": 2, "t3": 3, "t4": 4}


def _adds(proto: onnx.ModelProto) -> list[list[str]]:
    return [list(n.input) for n in proto.graph.node if n.op_type == "Add"]


def _peak(proto: onnx.ModelProto, inplace: bool) -> tuple[int, bool]:
    model = load_proto(proto, Path("m.onnx"), {})
    result = schedule(model.problem, "exact", ScheduleOptions(inplace=inplace, time_limit=30))
    return result.peak_bytes, result.optimal


@pytest.mark.parametrize("variant", ["chain", "sum", "tree"])
def test_chain_in_production_order(variant: str) -> None:
    original = onnx_models.late_sum(variant=variant)
    new, changed, rewrites = run_pass(original, ReassociatePass(PRODUCTION))
    assert changed and len(rewrites) == 1
    assert rewrites[0].pass_name == "reassociate" and rewrites[0].parts == 4
    assert "Sum" not in op_types(new)
    adds = _adds(new)
    assert adds[0] == ["t1", "t2"] and [a[1] for a in adds[1:]] == ["t3", "t4"]
    for prev, add in zip(new.graph.node, new.graph.node[1:], strict=False):
        if prev.op_type == add.op_type == "Add":
            assert add.input[0] == prev.output[0]
    assert new.graph.node[-2].output == ["s"]  # the sum keeps its name
    assert_equivalent(original, new)


@pytest.mark.parametrize("inplace", [False, True])
def test_strictly_lower_under_the_exact_scheduler(inplace: bool) -> None:
    original = onnx_models.late_sum()
    new, _, _ = run_pass(original, ReassociatePass(PRODUCTION))
    before, proven_before = _peak(original, inplace)
    after, proven_after = _peak(new, inplace)
    assert proven_before and proven_after
    assert after < before


def test_already_in_order_is_unchanged() -> None:
    original = onnx_models.late_sum()
    # The file's own order (t4 first) is a left-deep chain already.
    _, changed, rewrites = run_pass(original, ReassociatePass({"t4": 0, "t3": 1, "t2": 2}))
    assert not changed and rewrites == []
    # No rank keeps the file order: a chain is left alone, a Sum becomes a chain.
    _, changed, _ = run_pass(original, ReassociatePass())
    assert not changed
    new, changed, _ = run_pass(onnx_models.late_sum(variant="sum"), ReassociatePass())
    assert changed and op_types(new).count("Add") == 3


def test_shared_partial_sum_splits_the_chain() -> None:
    # acc0 = t4 + t3 is also a graph output: it stays, as a term of the sum
    # above it (t4 + t3 cannot be re-associated away).
    original = onnx_models.late_sum(variant="shared")
    new, changed, rewrites = run_pass(original, ReassociatePass({**PRODUCTION, "acc0": 3.5}))
    assert changed and [r.parts for r in rewrites] == [3]
    adds = _adds(new)
    assert ["t4", "t3"] in adds
    t12 = next(n.output[0] for n in new.graph.node if list(n.input) == ["t1", "t2"])
    assert adds[-1] == [t12, "acc0"]
    assert_equivalent(original, new)


def test_two_terms_or_broadcast_are_not_sums() -> None:
    original = onnx_models.late_sum(terms=2)
    _, changed, _ = run_pass(original, ReassociatePass({"t1": 0, "t2": 1}))
    assert not changed


def test_term_ranks_follow_availability(tmp_path: Path) -> None:
    proto = onnx_models.late_sum()
    model = load_proto(proto, Path("m.onnx"), {})
    result = schedule(model.problem, "file")
    ranks = term_ranks(model.problem, result.op_order)
    # File order runs every h first, then the taps; each tap ranks at its h
    # (the step after which it could run), not where the file put it.
    assert ranks["x"] == ranks["h1"] == -1.0
    assert 0 <= ranks["t1"] < 1 <= ranks["t2"] < 2 <= ranks["t3"] < 3 <= ranks["t4"] < 4


@pytest.mark.parametrize("inplace", [False, True])
def test_driver_reassociates_where_it_lowers_the_peak(tmp_path: Path, inplace: bool) -> None:
    path = tmp_path / "late_sum.onnx"
    onnx.save(onnx_models.late_sum(), str(path))
    model = serenity.load_model(path)
    result = serenity.rewrite_model(model, inplace=inplace)
    assert {r.pass_name for r in result.rewrites} == {"reassociate"}
    assert result.after.peak_bytes < result.before.peak_bytes
    assert result.before.optimal and result.after.optimal
    assert_equivalent(model.proto, result.proto)
