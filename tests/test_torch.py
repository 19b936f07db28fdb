"""serenity.torch and the pt2 format: torch.export programs scheduled, reordered,
saved and checked in eager PyTorch. Skipped without torch (the ``torch`` extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_clean_error, problems
from helpers import run_cli as run
from hypothesis import given, settings
from hypothesis import strategies as st

import serenity
from serenity.errors import UnknownShapeError, UnsupportedModelError, VerificationError
from serenity.memory import simulate


def test_the_base_install_never_imports_torch() -> None:
    code = (
        "import sys, serenity, serenity.cli, serenity.io.format as f; f.formats(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


torch = pytest.importorskip("torch")

from serenity.torch import (  # noqa: E402
    export_model,
    functional,
    optimize,
    problem_from_exported,
    reorder,
    same_outputs,
)
from serenity.torch.measure import eager_live_peak_bytes, eager_peak_bytes  # noqa: E402


class Design(torch.nn.Module):
    """DESIGN.md's worked example: export order 34,816 B, optimum 13,312 B."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.ModuleList(torch.nn.Conv2d(2, 8, 1) for _ in range(4))
        self.b = torch.nn.ModuleList(torch.nn.Conv2d(8, 1, 1) for _ in range(4))
        self.head = torch.nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hs = [a(x) for a in self.a]
        return self.head(torch.cat([b(h) for b, h in zip(self.b, hs, strict=True)], 1))


class Branchy(torch.nn.Module):
    """In-place ops, views, a multi-output op with getitem, batch norm and a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.ModuleList(torch.nn.Conv2d(4, 16, 3, padding=1) for _ in range(3))
        self.bn = torch.nn.BatchNorm2d(48)
        self.fc = torch.nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs = [a(x).relu_() for a in self.a]
        c = self.bn(torch.cat(hs, 1)).flatten(2)  # a view of the batch norm's output
        m, _ = c.max(dim=2)  # two outputs, one read
        return self.fc(m), c.transpose(1, 2)  # a view returned as an output


def export(module: torch.nn.Module, *shape: int) -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    return torch.export.export(module.eval(), (torch.randn(*shape),))


def test_optimize_reaches_the_design_optimum_with_equal_outputs() -> None:
    ep = export(Design(), 1, 2, 16, 16)
    problem = problem_from_exported(ep)
    assert problem.num_ops == 10
    assert simulate(problem, problem.topological_order()).peak_bytes == 34_816
    new, result = optimize(ep)
    assert result.peak_bytes == 13_312 and result.optimal
    again = problem_from_exported(new)  # the written graph runs in the proven order
    assert simulate(again, again.topological_order()).peak_bytes == 13_312
    assert same_outputs(ep, new) == (1, 0.0)
    # Eager PyTorch frees each value after its last use, so its memory follows the order
    # (the profiler sees neither the caller's input nor the weights: 2,048 B less at most).
    before, after = eager_peak_bytes(ep), eager_peak_bytes(new)
    assert after < before
    assert 34_816 - 2_048 <= before <= 34_816 and 13_312 - 2_048 <= after <= 13_312
    # storages held alive by op outputs: the model's peaks less the caller's 2,048-byte input
    assert (eager_live_peak_bytes(ep), eager_live_peak_bytes(new)) == (33_792, 12_288)
    ops = [n.name for n in ep.graph.nodes if n.op == "call_function"]
    assert ops[:4] == ["conv2d", "conv2d_1", "conv2d_2", "conv2d_3"]  # the input is unchanged


def test_views_and_getitem_count_their_storage_once() -> None:
    ep = export(Branchy(), 1, 4, 8, 8)
    with pytest.raises(UnsupportedModelError, match="in place.*run_decompositions"):
        problem_from_exported(ep)
    ep = functional(ep)
    problem = problem_from_exported(ep)
    types = set(problem.op_types)
    assert not types & {"view", "permute", "transpose", "getitem", "_unsafe_view"}
    by_name = dict(zip(problem.tensor_names, problem.tensor_sizes, strict=True))
    assert by_name["x"] == 4 * 64 * 4
    # the flattened batch-norm output is one storage, an output of the graph (via the view)
    bn = next(t for t, name in enumerate(problem.tensor_names) if name.startswith("_native_batch"))
    assert problem.tensor_sizes[bn] == 48 * 64 * 4 and problem.is_graph_output[bn]
    new, result = optimize(ep)
    assert result.optimal
    same_outputs(ep, new)


def test_reorder_takes_any_topological_order_and_refuses_others() -> None:
    ep = functional(export(Branchy(), 1, 4, 8, 8))
    problem = problem_from_exported(ep)
    order = list(reversed(problem.topological_order()))
    with pytest.raises(ValueError, match="topological"):
        reorder(ep, order)
    # the three conv branches last-first: still topological, still the same outputs
    convs = [v for v in range(problem.num_ops) if problem.op_types[v] == "conv2d"]
    rest = [v for v in problem.topological_order() if v not in convs]
    new = reorder(ep, convs[::-1] + rest)
    names = [n.name for n in new.graph.nodes if n.op == "call_function"]
    assert names.index(problem.op_names[convs[2]]) < names.index(problem.op_names[convs[0]])
    same_outputs(ep, new)
    gm = reorder(ep.graph_module, convs[::-1] + rest)  # a graph module works too
    assert isinstance(gm, torch.fx.GraphModule)


def test_a_wrong_program_fails_the_check() -> None:
    ep = export(Design(), 1, 2, 16, 16)
    other = export(Design(), 1, 2, 16, 16)  # same architecture, new random weights
    with pytest.raises(VerificationError, match="differs"):
        same_outputs(ep, other)


class DataDependent(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp() if x.sum() > 0 else x.sin()


def test_a_module_export_refuses_is_a_one_line_error() -> None:
    with pytest.raises(
        UnsupportedModelError, match="torch.export cannot export DataDependent"
    ) as e:
        export_model(DataDependent(), (torch.randn(4),))
    assert "\n" not in str(e.value)
    ep = export_model(Branchy().eval(), (torch.randn(1, 4, 8, 8),))  # functionalised
    assert problem_from_exported(ep).num_ops > 0


def test_dynamic_shapes_are_a_clear_error() -> None:
    batch = torch.export.Dim("batch", min=2, max=64)
    ep = torch.export.export(
        Design().eval(), (torch.randn(4, 2, 16, 16),), dynamic_shapes={"x": {0: batch}}
    )
    with pytest.raises(UnknownShapeError, match="dynamic shape.*static shapes"):
        problem_from_exported(ep)


def test_pt2_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out, report = tmp_path / "design.pt2", tmp_path / "out.pt2", tmp_path / "r.json"
    torch.export.save(export(Design(), 1, 2, 16, 16), str(src))
    before = src.read_bytes()
    code, stdout, err = run(capsys, "schedule", src, "-o", out, "--verify", "--json", report)
    assert code == 0, err
    assert "bitwise equal in torch" in stdout
    data = json.loads(report.read_text())
    assert data["format"] == "pt2" and data["peak_bytes"] == 13_312 and data["optimal"]
    assert src.read_bytes() == before
    model = serenity.load_model(out)
    assert model.format_name == "pt2"
    assert serenity.schedule_model(model, "file").peak_bytes == 13_312
    code, _, err = run(capsys, "schedule", src, "-o", tmp_path / "x.pt2", "--input-shape", "x=1,2")
    assert "static shapes" in assert_clean_error(code, err, tmp_path / "x.pt2")


def test_a_zip_that_is_not_an_exported_program_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "weights.pt2"
    torch.save(Design().state_dict(), str(src))  # a zip, but a pickled state dict
    code, _, err = run(capsys, "schedule", src, "-o", tmp_path / "out.pt2")
    assert "not a torch.export archive" in assert_clean_error(code, err, tmp_path / "out.pt2")


def test_executorch_pass_and_planner_reach_the_bound_and_run() -> None:
    pytest.importorskip("executorch")
    from serenity.torch.executorch import run_pte, to_executorch

    ep = export(Design(), 1, 2, 16, 16)
    x = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    default, rep0 = to_executorch(ep, reorder=False, plan_with_serenity=False)
    ours, rep1 = to_executorch(ep)
    assert rep0.arena_bytes == 34_816 and rep0.schedule is None and rep0.plan is None
    # the arena read back from the program is the plan, at its lower bound and at the
    # proven optimum of the order (sizes here are multiples of the 16-byte alignment)
    assert rep1.schedule is not None and rep1.schedule.optimal and rep1.plan is not None
    assert rep1.arena_bytes == rep1.plan.arena_bytes == rep1.plan.lower_bound_bytes == 13_312
    want = ep.module()(x)
    a, b = run_pte(default.buffer, [x])[0], run_pte(ours.buffer, [x])[0]
    assert torch.equal(a, b)  # the same kernels in another order: bitwise equal
    assert torch.allclose(a, want, rtol=1e-5, atol=1e-6)  # portable kernels vs ATen's


class _Buf:
    def __init__(self, name: str, info: object) -> None:
        self.name, self.mpi_buffer, self.users = name, info, []

    def get_name(self) -> str:
        return self.name


class _Node:
    def __init__(self, name: str) -> None:
        self.name, self.outs, self.mpi_node = name, [], None

    def get_outputs(self) -> list[_Buf]:
        return self.outs

    def get_name(self) -> str:
        return self.name


@settings(max_examples=30, deadline=None)
@given(problem=problems(max_ops=8), rnd=st.randoms(use_true_random=False))
def test_inductor_problem_peaks_equal_inductors_own_estimate(problem, rnd) -> None:  # noqa: ANN001
    """Random DAGs as Inductor scheduler nodes: serenity's simulated peak of any
    order equals ``torch._inductor.memory.estimate_peak_memory``."""
    from torch._inductor.memory import (
        FreeableInputBuffer,
        MemoryPlanningInfoForBuffer,
        MemoryPlanningInfoForNode,
        estimate_peak_memory,
    )
    from torch.utils._ordered_set import OrderedSet

    from serenity.torch.inductor import problem_from_scheduler_nodes

    nodes = [_Node(f"op{v}") for v in range(problem.num_ops)]
    readers = [
        OrderedSet(nodes[c] for c in problem.consumers[t]) for t in range(problem.num_tensors)
    ]
    bufs: dict[int, object] = {}
    freeable = {}
    for t in range(problem.num_tensors):
        size = problem.tensor_sizes[t]
        info = MemoryPlanningInfoForBuffer(size, size, readers[t], OrderedSet(readers[t]))
        if problem.producer[t] == -1:
            if readers[t]:  # Inductor only knows the inputs something reads
                bufs[t] = freeable[f"t{t}"] = FreeableInputBuffer(f"t{t}", info)
        else:
            bufs[t] = _Buf(f"t{t}", info)
            nodes[problem.producer[t]].outs.append(bufs[t])
    for v, node in enumerate(nodes):
        node.mpi_node = MemoryPlanningInfoForNode(
            index=v,
            pred_buffers=OrderedSet(bufs[t] for t in problem.op_inputs[v] if t in bufs),
            succ_nodes=OrderedSet(nodes[w] for w in problem.succs[v]),
        )
    outputs = OrderedSet(f"t{t}" for t in problem.graph_outputs)
    converted = problem_from_scheduler_nodes(nodes, set(outputs))
    indeg = [len(p) for p in problem.preds]
    ready, order = [v for v in range(problem.num_ops) if indeg[v] == 0], []
    while ready:
        v = ready.pop(rnd.randrange(len(ready)))
        order.append(v)
        for w in problem.succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    want, _ = estimate_peak_memory([nodes[v] for v in order], freeable, outputs)
    assert simulate(converted, order).peak_bytes == want
