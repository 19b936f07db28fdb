"""Helpers shared by the test modules: a random-DAG strategy and an in-process CLI runner."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import strategies as st

from serenity import Problem, ScheduleOptions, ScheduleResult
from serenity.cli import main
from serenity.schedule.exact import exact


@st.composite
def problems(draw: st.DrawFn, max_ops: int = 8, inplace: bool = False) -> Problem:
    """Random DAGs: random sizes, fan-in and fan-out, graph inputs and outputs,
    dead outputs, graph inputs nobody reads, ops with several outputs."""
    n_inputs = draw(st.integers(1, 3))
    sizes = [draw(st.integers(0, 64)) for _ in range(n_inputs)]
    n_ops = draw(st.integers(1, max_ops))
    op_inputs, op_outputs, inplace_inputs = [], [], []
    for _ in range(n_ops):
        k = draw(st.integers(0, min(3, len(sizes))))
        ins = draw(st.lists(st.integers(0, len(sizes) - 1), min_size=k, max_size=k, unique=True))
        n_out = draw(st.integers(1, 2))
        outs = list(range(len(sizes), len(sizes) + n_out))
        for _ in outs:
            # Often copy an input's size, so that in-place reuse has candidates.
            if ins and draw(st.booleans()):
                sizes.append(sizes[draw(st.sampled_from(ins))])
            else:
                sizes.append(draw(st.integers(0, 64)))
        op_inputs.append(ins)
        op_outputs.append(outs)
        cands = [t for t in ins if n_out == 1 and sizes[t] == sizes[outs[0]]]
        inplace_inputs.append(cands if inplace else [])
    m = len(sizes)
    produced = {t for outs in op_outputs for t in outs}
    graph_outputs = draw(st.lists(st.integers(0, m - 1), max_size=3, unique=True))
    # Make sure sinks are not all dead: the last op's first output is an output.
    graph_outputs.append(op_outputs[-1][0])
    return Problem(
        [f"op{i}" for i in range(n_ops)],
        sizes,
        op_inputs,
        op_outputs,
        [t for t in range(m) if t not in produced],
        graph_outputs,
        inplace_inputs=inplace_inputs,
    )


def random_wired(seed: int, n: int) -> Problem:
    """A random DAG of ``n`` equal-size ops reading 1-3 earlier tensors (RandWire-like)."""
    rnd = random.Random(seed)
    sizes, op_inputs, op_outputs = [1, 4], [[0]], [[1]]
    for _ in range(1, n):
        op_inputs.append(rnd.sample(range(1, len(sizes)), min(rnd.randint(1, 3), len(sizes) - 1)))
        op_outputs.append([len(sizes)])
        sizes.append(4)
    read = {t for ins in op_inputs for t in ins}
    op_inputs.append([t for t in range(1, len(sizes)) if t not in read])
    op_outputs.append([len(sizes)])
    sizes.append(4)
    names = [f"op{i}" for i in range(len(op_inputs))]
    return Problem(names, sizes, op_inputs, op_outputs, [0], [len(sizes) - 1])


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``serenity ARGS`` in-process; argparse's exits become return codes."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def time_limited_result(
    p: Problem, engine: Callable[[Problem, ScheduleOptions], ScheduleResult]
) -> tuple[ScheduleResult, int]:
    """Run ``engine`` with a zero time limit and check what it must still give:
    a valid order and a bound not above the true optimum (the exact engine's),
    which the order's peak is not below. Returns the result and the optimum."""
    true_opt = exact(p, ScheduleOptions()).peak_bytes
    r = engine(p, ScheduleOptions(time_limit=0.0))
    assert p.is_topological(r.op_order)
    assert r.lower_bound_bytes <= true_opt <= r.peak_bytes
    return r, true_opt


def assert_clean_error(code: int, err: str, *unwritten: Path) -> str:
    """Exit 2, a single ``serenity: error:`` line, no traceback, nothing written."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("serenity: error: "), err
    for path in unwritten:
        assert not path.exists(), f"{path} was written"
    return lines[0]


def cell_with_external_weights(folder: Path, location: str = "cell.onnx.data") -> Path:
    """``residual_cell`` saved as ``folder/cell.onnx`` with every weight in ``location``."""
    import onnx
    import onnx_models

    src = folder / "cell.onnx"
    onnx.save_model(
        onnx_models.residual_cell(),
        str(src),
        save_as_external_data=True,
        location=location,
        size_threshold=0,
    )
    return src
