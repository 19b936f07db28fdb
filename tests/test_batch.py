"""serenity.batch and ``serenity batch``: isolation, resuming, formats, Ray."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from batch_workers import misbehaving
from helpers import random_wired, run_cli
from onnx_models import design_example, residual_cell, tiny

import serenity
from serenity.batching import read_results, same_result
from serenity.batching.jobs import file_sha256
from serenity.ir import Problem


def _write(d: Path, name: str, model: onnx.ModelProto) -> Path:
    path = d / name
    onnx.save(model, str(path))
    return path


def _zoo(d: Path, n: int = 4) -> list[Path]:
    """``n`` distinct small models (different weights, so different hashes)."""
    d.mkdir(exist_ok=True)
    builders = (tiny, design_example, residual_cell)
    return [_write(d, f"m{i}.onnx", builders[i % 3](seed=100 + i)) for i in range(n)]


def _bare_peak(path: Path) -> int:
    return serenity.schedule_model(serenity.load_model(path)).peak_bytes


def test_bad_crashing_and_hanging_models_never_stop_the_run(tmp_path: Path) -> None:
    good = _zoo(tmp_path / "good", 3)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a model")
    odd = [
        _write(tmp_path, f"{k}.onnx", tiny(seed=i)) for i, k in enumerate(("crash", "segv", "slow"))
    ]
    out = tmp_path / "r.jsonl"
    started = time.perf_counter()
    rows = list(serenity.batch([*good, bad, *odd], jobs=2, timeout=3, worker=misbehaving, out=out))
    assert time.perf_counter() - started < 60  # the hanging worker was killed, not waited for
    by = {Path(r["model"]).name: r for r in rows}
    assert len(rows) == len(by) == 7
    for p in good:
        r = by[p.name]
        assert (r["status"], r["error"]) == ("ok", None)
        assert r["peak_bytes"] == _bare_peak(p)
        assert r["schedule"] and r["optimal"] is True and r["timings"]["wall"] > 0
    assert by["bad.onnx"]["status"] == "error"
    assert "not a valid ONNX model" in by["bad.onnx"]["error"]
    assert by["crash.onnx"]["status"] == "error"
    assert by["crash.onnx"]["error"] == "worker process died (exit code 7)"
    assert by["segv.onnx"]["error"] == "worker process died (killed by SIGSEGV)"
    assert by["slow.onnx"]["status"] == "timeout"
    assert by["slow.onnx"]["error"] == "killed after 3 s"
    assert all("\n" not in str(r["error"]) for r in rows)
    # Every result is in the file, once, as yielded.
    stored = read_results(out)
    assert sorted(json.dumps(r, sort_keys=True) for r in stored) == sorted(
        json.dumps(r, sort_keys=True) for r in rows
    )


def test_resume_skips_finished_models_and_redoes_changed_ones(tmp_path: Path) -> None:
    paths = _zoo(tmp_path / "m", 5)
    out = tmp_path / "r.jsonl"
    it = serenity.batch(paths, jobs=1, out=out)
    first = [next(it), next(it)]
    it.close()  # as an interrupted run: workers stopped, two results kept
    assert [r["model"] for r in read_results(out)] == [r["model"] for r in first]
    with open(out, "a") as f:
        f.write('{"model": "half a line')  # killed mid-write
    rows = list(serenity.batch(paths, jobs=2, out=out))
    assert rows[:2] == first  # stored results come back first, not rerun
    stored = read_results(out)
    assert sorted(r["model"] for r in stored) == sorted(str(p) for p in paths)
    # A changed file is run again; the others are not.
    _write(paths[0].parent, paths[0].name, tiny(seed=999))
    again = list(serenity.batch(paths, jobs=1, out=out))
    assert len(again) == 5 and len(read_results(out)) == 6
    last = read_results(out)[-1]
    assert (last["model"], last["sha256"]) == (str(paths[0]), file_sha256(paths[0]))


def test_sigint_keeps_finished_results_and_a_rerun_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "models"
    d.mkdir()
    n = 80  # enough that a loaded machine does not finish before the poll sees 3
    for i in range(n):
        _write(d, f"t{i:02d}.onnx", tiny(seed=i))
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "serenity.cli", "batch", str(d), "--out", str(out), "-j", "1"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        start_new_session=True,
        # As from a shell: Ctrl-C handled (test runners' workers may ignore SIGINT,
        # and a Python started with SIGINT ignored keeps ignoring it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(read_results(out)) < 3):
        time.sleep(0.02)
    # Freeze the run, check it is mid-way, then Ctrl-C (the whole process group) and thaw.
    os.killpg(proc.pid, signal.SIGSTOP)
    assert len(read_results(out)) < n, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    kept = read_results(out)
    assert 3 <= len(kept) < n and all(r["status"] == "ok" for r in kept), (kept, err)
    code, stdout, _ = run_cli(capsys, "batch", d, "--out", out, "-j", "2")
    assert code == 0, (stdout, kept)
    assert f"{len(kept)} of {n} models already in" in stdout
    final = read_results(out)
    assert final[: len(kept)] == kept
    assert sorted(r["model"] for r in final) == sorted(str(p) for p in d.glob("*.onnx"))


def test_in_memory_models_and_problems(tmp_path: Path) -> None:
    p = Problem(["a", "b", "c"], [4, 8, 6, 2], [[0], [0], [1, 2]], [[1], [2], [3]], [0], [3])
    proto = design_example(seed=3)
    rows = list(serenity.batch([p, proto, p], jobs=1))
    assert [r["index"] for r in sorted(rows, key=lambda r: r["index"])] == [0, 1]
    by = {r["index"]: r for r in rows}
    assert by[0]["peak_bytes"] == serenity.schedule(p).peak_bytes
    assert by[0]["model"].startswith("problem-") and by[0]["nodes"] == 3
    assert by[1]["status"] == "ok" and by[1]["model"].endswith(by[1]["sha256"][:12])
    assert by[1]["peak_bytes"] == _bare_peak(_write(tmp_path, "d.onnx", proto))
    [failed] = serenity.batch([p], jobs=1, rewrite=True)
    assert failed["status"] == "error" and "needs an ONNX model" in failed["error"]


def test_the_search_memory_cap_reaches_every_model_and_may_change_on_resume(
    tmp_path: Path,
) -> None:
    """``search_memory`` caps each model's exact search (one byte: every search stops at
    its first check; the bounds at the hand-over may still prove the order found, as
    the cut bound does on this small graph); as a resource limit, like the timeout, it
    is not one of the settings a results file must match."""
    p = random_wired(13, 30)  # a RandWire-like DAG whose search expands states
    out = tmp_path / "r.jsonl"
    [capped] = serenity.batch([p], jobs=1, out=out, method="exact", search_memory=1)
    assert capped["stats"]["memory_capped"] and capped["stats"]["search_memory"] == 1
    [stored] = serenity.batch([p], jobs=1, out=out, method="exact")
    assert stored == capped  # resumed, not refused
    [free] = serenity.batch([p], jobs=1, method="exact")
    assert free["optimal"] and free["peak_bytes"] <= capped["peak_bytes"]
    with pytest.raises(serenity.UsageError, match="search_memory"):
        serenity.batch([p], search_memory=0)


def test_cli_writes_models_and_plans_and_refuses_mixed_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _zoo(tmp_path / "m", 2)
    listing = tmp_path / "list.txt"
    listing.write_text("# models\n" + "\n".join(str(p) for p in paths) + "\n\n")
    outdir = tmp_path / "opt"
    outdir.mkdir()
    out = tmp_path / "r.jsonl"
    code, stdout, _ = run_cli(
        capsys, "batch", listing, "--out", out, "-o", outdir, "--plan", "-j", "1"
    )
    assert code == 0, stdout
    for row in read_results(out):
        written = outdir / Path(row["model"]).name
        assert row["output"] == str(written)
        assert (
            serenity.schedule_model(serenity.load_model(written), "file").peak_bytes
            == row["peak_bytes"]
        )
        assert row["plan"]["arena_bytes"] >= row["plan"]["lower_bound_bytes"] > 0
        assert (
            json.loads(Path(row["plan"]["output"]).read_text())["arena_bytes"]
            == row["plan"]["arena_bytes"]
        )
    code, _, err = run_cli(capsys, "batch", listing, "--out", out, "--method", "rpo")
    assert code == 2 and "other settings" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "batch", tmp_path / "nope.onnx", "--out", out)
    assert code == 2 and "not found" in err
    code, _, err = run_cli(
        capsys, "batch", listing, "--out", tmp_path / "x.jsonl", "--address", "auto"
    )
    assert code == 2 and "--engine ray" in err


def test_missing_extras_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    [model] = _zoo(tmp_path / "m", 1)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(capsys, "batch", model, "--out", tmp_path / "r.parquet")
    assert code == 2 and "pip install 'serenity[parquet]'" in err
    code, _, err = run_cli(capsys, "batch", model, "--out", tmp_path / "r.jsonl", "--engine", "ray")
    assert code == 2 and "pip install 'serenity[ray]'" in err
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
def test_parquet_has_one_row_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    paths = _zoo(tmp_path / "m", 2)
    (tmp_path / "m" / "bad.onnx").write_bytes(b"junk")
    out = tmp_path / "r.parquet"
    code, _, _ = run_cli(capsys, "batch", tmp_path / "m", "--out", out, "-j", "2")
    assert code == 3  # one model failed
    table = pq.read_table(out).to_pylist()
    assert len(table) == 3 and len(read_results(str(out) + ".jsonl")) == 3
    ok = {r["model"]: r for r in table if r["status"] == "ok"}
    assert {k: v["peak_bytes"] for k, v in ok.items()} == {str(p): _bare_peak(p) for p in paths}
    assert json.loads(next(iter(ok.values()))["settings"])["method"] == "auto"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import socket

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert process.poll() is None, "ray start --head exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_reaches_a_cluster_started_apart_by_its_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--address` joins a cluster this run did not start (`ray start --head`, with token
    authentication, which recent Ray enforces) and gives the local engine's results;
    the cluster is left running."""
    import secrets
    import shutil
    import tempfile

    paths = _zoo(tmp_path / "m", 2)
    port = _free_port()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # the head and this client share it
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must be short
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray_cli) if ray_cli.exists() else "ray",
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped below, nothing else
    )
    try:
        out = tmp_path / "ray.jsonl"
        args = ["batch", *map(str, paths), "--out", str(out), "--engine", "ray"]
        args += ["--address", f"127.0.0.1:{port}"]
        _wait_for_port(port, head)  # Ray retries an address nobody answers for minutes
        # A process of its own, as a user runs it (Ray keeps the cluster's token mode
        # for the life of a process, so a local cluster could not start in it later).
        run = subprocess.run(
            [sys.executable, "-m", "serenity.cli", *args], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert head.poll() is None  # the run did not stop the cluster it joined
        rows = read_results(out)
        assert {r["model"]: r["peak_bytes"] for r in rows} == {str(p): _bare_peak(p) for p in paths}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_failed_ray_task_is_reported_by_its_cause() -> None:
    """Ray's first line names only the task; the reason is the cause's last error line,
    without colour codes, with a hint when a node lacks serenity."""
    from serenity.batching.ray_engine import _reason

    class TaskError(RuntimeError):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("\x1b[36mray::_run_task()\x1b[39m (pid=1, ip=10.0.0.2)")
            self.cause = cause

    cause = RuntimeError(
        "The remote function failed to import on the worker:\n\nTraceback (most recent"
        ' call last):\n  File "x.py", line 3\nModuleNotFoundError: No module named'
        " 'serenity'\n"
    )
    assert _reason(TaskError(cause)) == (
        "ModuleNotFoundError: No module named 'serenity'; every node needs serenity installed"
    )
    assert _reason(RuntimeError("\x1b[31mboom\x1b[0m\nmore")) == "boom"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_ray_gives_the_same_results_file_as_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "m"
    _zoo(d, 3)
    (d / "bad.onnx").write_bytes(b"junk")
    files = {}
    for engine in ("local", "ray"):
        files[engine] = tmp_path / f"{engine}.jsonl"
        code, stdout, err = run_cli(
            capsys, "batch", d, "--out", files[engine], "-j", "2", "--engine", engine
        )
        assert code == 3, stdout + err
    local = {r["model"]: r for r in read_results(files["local"])}
    ray = {r["model"]: r for r in read_results(files["ray"])}
    assert local.keys() == ray.keys() and len(local) == 4
    for name, row in local.items():
        assert same_result(row, ray[name]), name
