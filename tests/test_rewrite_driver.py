"""The driver applies rewrites only where the scheduler finds a lower peak."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import onnx
import onnx_models
import pytest
from helpers import run_cli as run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rewrite_common import assert_equivalent, signature

import serenity
from serenity import simulate
from serenity.zoo.example import build_example


def _load(tmp_path: Path, proto: onnx.ModelProto, name: str) -> serenity.io.OnnxModel:
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, str(path))
    return serenity.load_model(path)


@pytest.mark.parametrize("inplace", [False, True])
def test_lowers_the_optimal_peak_of_nasnet_like_cells(tmp_path: Path, inplace: bool) -> None:
    model = _load(tmp_path, onnx_models.nasnet_like(), "nasnet_like")
    result = serenity.rewrite_model(model, inplace=inplace)
    assert result.before.optimal and result.after.optimal
    assert result.after.peak_bytes < result.before.peak_bytes
    passes = {r.pass_name for r in result.rewrites}
    assert passes == {"distribute", "channel_partition"}
    peaks = result.peaks()
    chosen = "inplace" if inplace else "default"
    assert peaks[f"{chosen}_after"] == result.after.peak_bytes
    assert peaks[f"{chosen}_before"] == result.before.peak_bytes
    # Both models are reported whichever was optimised.
    assert peaks["default_before"] == serenity.schedule_model(model).peak_bytes
    assert peaks["inplace_before"] == serenity.schedule_model(model, inplace=True).peak_bytes
    assert signature(result.proto) == signature(model.proto)
    assert_equivalent(model.proto, result.proto)


def test_baseline_schedule_is_what_a_rewrite_must_beat(tmp_path: Path) -> None:
    from serenity.rewrite import rewrite_for_memory

    model = _load(tmp_path, onnx_models.nasnet_like(), "nasnet_like")
    best = serenity.schedule_model(model)
    result = rewrite_for_memory(model, baseline=best)
    assert result.before is best and result.after.peak_bytes < best.peak_bytes
    # A baseline at the rewritten peak (as if a longer search had found it) leaves nothing to gain.
    better = serenity.ScheduleResult(**{**best.__dict__, "peak_bytes": result.after.peak_bytes})
    assert rewrite_for_memory(model, baseline=better).rewrites == []
    with pytest.raises(serenity.SerenityError, match="other memory model"):
        rewrite_for_memory(model, inplace=True, baseline=best)


@pytest.mark.parametrize("build", [onnx_models.widening_concat, onnx_models.residual_cell])
def test_leaves_a_graph_without_gain_unchanged(tmp_path: Path, build) -> None:  # type: ignore[no-untyped-def]
    model = _load(tmp_path, build(), build.__name__)
    result = serenity.rewrite_model(model)
    assert result.rewrites == []
    assert result.proto is model.proto and result.model is model
    assert result.after.peak_bytes == result.before.peak_bytes


def test_cli_rewrite_verify_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out, report = tmp_path / "cells.onnx", tmp_path / "cells.opt.onnx", tmp_path / "r.json"
    onnx.save(onnx_models.nasnet_like(), str(src))
    code, stdout, err = run(
        capsys, "schedule", src, "-o", out, "--rewrite", "--verify", "--json", report
    )
    assert code == 0, err
    assert "equal within rtol 1e-4, atol 1e-5" in stdout
    assert "rewrites:" in stdout
    data = json.loads(report.read_text())
    assert data["rewritten_peak_bytes"] == data["peak_bytes"] < data["unrewritten_peak_bytes"]
    assert data["unrewritten_optimal"] is True  # a small graph: the baseline is proven
    assert "no rewrite (proven)" in stdout
    block = data["rewrite"]
    assert block["default_model"]["peak_bytes_after"] == data["rewritten_peak_bytes_default"]
    assert block["inplace_model"]["peak_bytes_after"] == data["rewritten_peak_bytes_inplace"]
    assert block["rewrites"] and {"pass", "nodes", "parts"} <= set(block["rewrites"][0])
    assert data["verified"]["bitwise_equal"] is False
    written = serenity.load_model(out)
    assert list(written.problem.op_names) == data["schedule"]
    assert serenity.schedule_model(written, "file").peak_bytes == data["peak_bytes"]
    onnx.checker.check_model(str(out), full_check=True)


def test_cli_rewrite_says_when_its_baseline_is_not_proven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rewrites are credited against the baseline schedule: the table and the
    report say whether that baseline is proven (file order is not, on the example)."""
    src, out, report = tmp_path / "e.onnx", tmp_path / "e.opt.onnx", tmp_path / "e.json"
    onnx.save(build_example(), str(src))
    code, stdout, err = run(
        capsys, "schedule", src, "-o", out, "--rewrite", "--method", "file", "--json", report
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["unrewritten_optimal"] is False
    gap = data["unrewritten_peak_bytes"] / data["lower_bound_bytes"] - 1
    assert f"no rewrite (not proven, gap {gap:.1%})" in stdout


def test_cli_rewrite_without_gain_is_bitwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, report = tmp_path / "w.onnx", tmp_path / "w.opt.onnx", tmp_path / "w.json"
    onnx.save(onnx_models.widening_concat(), str(src))
    code, stdout, err = run(
        capsys, "schedule", src, "-o", out, "--rewrite", "--verify", "--json", report
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["rewrite"]["rewrites"] == [] and data["verified"]["bitwise_equal"] is True
    assert data["rewritten_peak_bytes"] == data["unrewritten_peak_bytes"]


def test_cli_no_output_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "stem.onnx"
    onnx.save(onnx_models.conv_stem(), str(src))
    passes = {}
    for flag in ([], ["--no-output-split"]):
        out, report = tmp_path / f"o{len(flag)}.onnx", tmp_path / f"r{len(flag)}.json"
        code, _, err = run(capsys, "schedule", src, "-o", out, "--rewrite", "--json", report, *flag)
        assert code == 0, err
        data = json.loads(report.read_text())
        passes[bool(flag)] = {r["pass"] for r in data["rewrite"]["rewrites"]}
    assert "output_split" in passes[False]
    assert passes[True] == set()  # the stem's BN and ReLU tie: only a split lowers it


def test_carried_order_is_valid_and_keeps_the_old_places(tmp_path: Path) -> None:
    from serenity.rewrite import ScaleFoldPass, to_ir, to_proto
    from serenity.rewrite.driver import carried_order

    proto = onnx_models.scaled_fanout()
    old = _load(tmp_path, proto, "fanout").problem
    order = tuple(old.topological_order())
    assert carried_order(old, order, old) == order  # same graph: same order
    new_proto = to_proto(ScaleFoldPass()(to_ir(proto)).model)
    new = _load(tmp_path, new_proto, "fanout_folded").problem
    carried = carried_order(old, order, new)
    assert new.is_topological(carried)
    kept = [new.op_names[v] for v in carried if new.op_names[v] in old.op_names]
    assert kept == [old.op_names[v] for v in order if old.op_names[v] in new.op_names]


def test_an_accepted_group_drops_the_sites_its_peak_does_not_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serenity.rewrite import driver
    from serenity.zoo.randwire import RandWireConfig, build_randwire

    config = RandWireConfig(
        channels=8, nodes=8, stage_strides=(1,), head_channels=8, classes=5, resolution=16
    )
    model = _load(tmp_path, build_randwire(config, seed=3), "randwire")
    pruned = driver.rewrite_for_memory(model, split_outputs=False)
    with monkeypatch.context() as patch:
        patch.setattr(driver, "_prune", lambda *args: None)
        unpruned = driver.rewrite_for_memory(model, split_outputs=False)
    # The all-sites group wins here, riders (BN folds no peak step needs) and all.
    assert "bn_fold" in {r.pass_name for r in unpruned.rewrites}
    # Which scale folds the peak needs depends on which optimal order the engine
    # returns (several tie); the riders are dropped whichever it is.
    kept = [r.pass_name for r in pruned.rewrites]
    assert set(kept) == {"scale_fold"} and len(kept) < len(unpruned.rewrites)
    assert pruned.after.optimal and unpruned.after.optimal
    assert pruned.after.peak_bytes == unpruned.after.peak_bytes < pruned.before.peak_bytes
    assert_equivalent(model.proto, pruned.proto)


def test_progress_reports_each_trial_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serenity.rewrite import driver

    model = _load(tmp_path, onnx_models.nasnet_like(), "nasnet_like")
    monkeypatch.setattr(driver, "PROGRESS_AFTER", 0.0)
    result = driver.rewrite_for_memory(model, progress=True)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("rewrite:")]
    assert len(lines) == result.trials + 1
    kept = [x for x in lines[:-1] if x.endswith("kept")]
    assert kept and all(x.endswith("no gain") for x in lines[:-1] if x not in kept)
    assert kept[-1].split(": ")[-1].startswith(f"{result.after.peak_bytes:,} vs")
    assert f"{len(result.rewrites)} rewrite(s) kept after {result.trials} trial(s)" in lines[-1]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    nodes=st.integers(5, 10),
    method=st.sampled_from(["auto", "rpo", "dfs"]),
)
def test_a_kept_rewrite_always_lowers_the_peak_of_the_method(
    seed: int, nodes: int, method: str
) -> None:
    # Whatever the method (heuristics ignore hints, so a pruned group may
    # schedule worse than the whole one), the driver keeps only strict gains.
    from serenity.rewrite.driver import rewrite_for_memory
    from serenity.zoo.randwire import RandWireConfig, build_randwire

    config = RandWireConfig(
        channels=4, nodes=nodes, stage_strides=(1,), head_channels=4, classes=3, resolution=8
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = _load(Path(tmp), build_randwire(config, seed=seed), "randwire")
        result = rewrite_for_memory(model, method, split_outputs=False, time_limit=5)
        after = serenity.schedule_model(result.model, method).peak_bytes
    if result.rewrites:
        assert result.after.peak_bytes < result.before.peak_bytes
        assert simulate(result.model.problem, result.after.op_order).peak_bytes == (
            result.after.peak_bytes
        )
    else:
        assert result.after.peak_bytes == result.before.peak_bytes == after
    assert signature(result.proto) == signature(model.proto)


def identity_chain() -> onnx.ModelProto:
    """x -> Conv (wide) -> Identity -> Conv -> y: the Identity step holds two wide copies."""
    w = onnx_models.Weights(21)
    nodes = [
        onnx_models.conv(w, "wide", "x", 4, 32, 1),
        onnx.helper.make_node("Identity", ["wide"], ["copy"], name="copy"),
        onnx_models.conv(w, "narrow", "copy", 32, 4, 1),
    ]
    return onnx_models.make_model(
        nodes,
        [onnx_models.tensor("x", [1, 4, 8, 8])],
        [onnx_models.tensor("narrow", [1, 4, 8, 8])],
        w.initializers,
        "identity_chain",
    )


def test_a_new_rewrite_is_one_module_and_one_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``toy_rewrite`` declares its sites; registering it is all the driver needs."""
    from serenity.rewrite import registry

    src = tmp_path / "chain.onnx"
    onnx.save(identity_chain(), str(src))
    model = serenity.load_model(src)
    unchanged = serenity.rewrite_model(model, split_outputs=False)
    assert not unchanged.rewrites
    monkeypatch.setattr(registry, "DRIVER_MODULES", (*registry.DRIVER_MODULES, "toy_rewrite"))
    rewritten = serenity.rewrite_model(model, split_outputs=False)
    assert [r.pass_name for r in rewritten.rewrites] == ["drop_identity"]
    assert rewritten.after.peak_bytes < rewritten.before.peak_bytes
    saved = serenity.save_rewritten(model, rewritten, tmp_path / "out.onnx", verify=True)
    assert saved.verify is not None
    assert [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node] == ["Conv", "Conv"]
