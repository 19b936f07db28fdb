"""Benchmark: serenity on PyTorch models, through torch.export, ExecuTorch and Inductor.

Usage (from the repository root; needs ``pip install -e '.[torch]'`` and
``pip install --no-deps timm==1.0.31 safetensors``)::

    python benchmarks/torch.py                         # the four models below
    python benchmarks/torch.py --models densenet121 --size 128 --stages export,executorch

For each timm model (``pretrained=False``, batch 1, eval, random weights with
seed 0, at ``--size`` x ``--size``):

* export: ``torch.export`` + ``run_decompositions({})``; peak of the export
  order vs the proven optimum (``auto``) under serenity's memory model;
* eager: the CPU allocation peak of ``ep.module()`` (PyTorch profiler,
  :func:`serenity.torch.measure.eager_peak_bytes`) before and after
  reordering, and the outputs ``torch.equal``;
* executorch: the planned arena (read back from the program) for
  {export order, serenity's order} x {ExecuTorch's greedy planner, serenity's
  planner}, the lower bound, and both ``.pte`` files run in
  ``executorch.runtime``;
* inductor: ``torch.compile`` with :func:`serenity.torch.inductor.serenity_reordering`:
  Inductor's estimate for its baseline order and its three methods, its pick,
  and serenity's order on the same fused graph; the compiled output vs eager.

Writes ``benchmarks/RESULTS-torch.md`` and ``benchmarks/results-torch.json``
(``--out``); ``--json-only`` merges models run separately. Byte counts are
exact and deterministic; times are single runs on a shared 2-core machine
(noisy, given for scale only).

timm imports torchvision (and, through ``timm.data``, PIL) at import time, and
torchvision's wheel does not import with the CPU torch; when they are missing,
stub modules stand in for the names timm refers to (these models never call
them; the stubs only exist inside this script).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This file is named torch.py: keep its directory off the path so "import torch" is PyTorch.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import torch  # noqa: E402

import serenity  # noqa: E402
from serenity.memory import simulate  # noqa: E402
from serenity.torch import functional, optimize, problem_from_exported, same_outputs  # noqa: E402
from serenity.torch.measure import eager_live_peak_bytes, eager_peak_bytes  # noqa: E402

MODELS = ("nasnetalarge", "pnasnet5large", "densenet121", "inception_v3")
STAGES = ("export", "eager", "executorch", "inductor")


class _Anything(type):
    """A class whose attributes are distinct such classes: stands in for names only referred to."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _Anything(f"{cls.__name__}.{name}", (cls,), {})
        setattr(cls, name, sub)
        return sub


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (torch.nn.Module,), {})


class _StubFinder:
    """Imports of the stubbed packages (and their submodules) give :class:`_StubModule`."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.roots = roots

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        import importlib.machinery

        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []  # type: ignore[attr-defined]
        module.__version__ = "0.0"  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _stub_torchvision() -> None:
    """timm imports torchvision (and PIL via timm.data) at import time; the models
    here never call them. Stub whichever is not importable."""
    import importlib.util

    missing = tuple(m for m in ("torchvision", "PIL") if importlib.util.find_spec(m) is None)
    if missing and not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder(missing))


class Shift(torch.nn.Module):
    """``ZeroPad2d((-1, 1, -1, 1))`` (NASNet's, PNASNet's "shift") as a slice and a
    non-negative pad: the same values, and ExecuTorch's portable ``constant_pad_nd``
    kernel refuses negative padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))


def replace_negative_pads(model: torch.nn.Module) -> int:
    """Swap every ``ZeroPad2d((-1, 1, -1, 1))`` for :class:`Shift`; how many."""
    count = 0
    for parent in list(model.modules()):
        for key, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ZeroPad2d) and tuple(child.padding) == (-1, 1, -1, 1):
                setattr(parent, key, Shift())
                count += 1
    return count


def build(name: str, size: int) -> tuple[torch.nn.Module, torch.Tensor]:
    _stub_torchvision()
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        replaced = replace_negative_pads(model)
        assert not replaced or torch.equal(model(x), want), "Shift changed the outputs"
    return model, x


def stage_export(row: dict[str, Any], model: torch.nn.Module, x: torch.Tensor, limit: float) -> Any:
    t = time.perf_counter()
    ep = functional(torch.export.export(model, (x,)))
    row["export_s"] = round(time.perf_counter() - t, 1)
    problem = problem_from_exported(ep)
    row["nodes"] = sum(1 for n in ep.graph.nodes if n.op == "call_function")
    row["ops"] = problem.num_ops
    row["export_order"] = simulate(problem, problem.topological_order()).peak_bytes
    t = time.perf_counter()
    new, result = optimize(ep, "auto", limit)
    row["optimize_s"] = round(time.perf_counter() - t, 2)
    row["serenity"] = result.peak_bytes
    row["lower_bound"] = result.lower_bound_bytes
    row["optimal"] = result.optimal
    return ep, new


def stage_eager(row: dict[str, Any], ep: Any, new: Any) -> None:
    same_outputs(ep, new)  # raises if any output differs
    row["eager_equal"] = True
    row["eager_before"] = eager_peak_bytes(ep)
    row["eager_after"] = eager_peak_bytes(new)
    row["eager_live_before"] = eager_live_peak_bytes(ep)
    row["eager_live_after"] = eager_live_peak_bytes(new)


def stage_executorch(row: dict[str, Any], ep: Any, x: torch.Tensor, limit: float) -> None:
    from serenity.torch.executorch import lower, run_pte, to_edge

    t = time.perf_counter()
    edge = to_edge(ep)
    row["et_to_edge_s"] = round(time.perf_counter() - t, 1)
    arenas: dict[str, int] = {}
    outputs: dict[str, Any] = {}
    for reorder in (False, True):
        for ours in (False, True):
            key = f"{'serenity' if reorder else 'export'}+{'serenity' if ours else 'greedy'}"
            t = time.perf_counter()
            et, rep = lower(edge, reorder=reorder, plan_with_serenity=ours, time_limit=limit)
            row[f"et_{key}_s"] = round(time.perf_counter() - t, 1)
            arenas[key] = rep.arena_bytes
            if rep.schedule is not None:
                row["et_schedule_peak"] = rep.schedule.peak_bytes
                row["et_schedule_optimal"] = rep.schedule.optimal
                row["et_schedule_bound"] = rep.schedule.lower_bound_bytes
            if rep.plan is not None:
                row[f"et_{key}_plan_bound"] = rep.plan.lower_bound_bytes
            if key in ("export+greedy", "serenity+serenity"):
                outputs[key] = run_pte(et.buffer, [x])[0]
    row["et_arena"] = arenas
    a, b = outputs["export+greedy"], outputs["serenity+serenity"]
    row["et_outputs_equal_across_orders"] = bool(torch.equal(a, b))
    with torch.no_grad():
        want = ep.module()(x)
    row["et_max_abs_diff_vs_eager"] = float((b - want).abs().max())
    row["eager_max_abs_output"] = float(want.abs().max())


class _Stop(Exception):
    """Ends a compilation once Inductor has chosen its order (``--inductor-estimates-only``)."""


def stage_inductor(
    row: dict[str, Any], model: torch.nn.Module, x: torch.Tensor, limit: float, full: bool
) -> None:
    """``torch.compile`` with serenity added to Inductor's methods. Unless ``full``,
    the compilation stops right after the order is chosen (no C++ build, no run)."""
    import torch._inductor.memory as memory

    from serenity.torch.inductor import serenity_reordering

    torch._dynamo.reset()
    t = time.perf_counter()
    out = None
    with serenity_reordering(time_limit=limit) as records, torch.no_grad():
        chosen = memory.reorder_for_peak_memory

        def stop(*args: Any, **kwargs: Any) -> Any:
            chosen(*args, **kwargs)
            raise _Stop

        if not full:
            memory.reorder_for_peak_memory = stop
        try:
            out = torch.compile(model)(x)
        except Exception:
            if full or not records:
                raise
        finally:
            memory.reorder_for_peak_memory = chosen
    row["inductor_s"] = round(time.perf_counter() - t, 1)
    row["inductor"] = records
    row["inductor_compiled"] = out is not None
    if out is not None:
        with torch.no_grad():
            want = model(x)
        row["inductor_max_abs_diff_vs_eager"] = float((out - want).abs().max())
        row["eager_max_abs_output"] = float(want.abs().max())


def run_model(
    name: str, size: int, stages: list[str], limit: float, full: bool = True
) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "size": size}
    model, x = build(name, size)
    ep = new = None
    if {"export", "eager", "executorch"} & set(stages):
        ep, new = stage_export(row, model, x, limit)
        print(f"{name}: export {row['export_order']:,} -> {row['serenity']:,} B", file=sys.stderr)
    if "eager" in stages:
        stage_eager(row, ep, new)
        print(f"{name}: eager {row['eager_before']:,} -> {row['eager_after']:,} B", file=sys.stderr)
    if "executorch" in stages:
        stage_executorch(row, ep, x, limit)
        print(f"{name}: executorch {row['et_arena']}", file=sys.stderr)
    if "inductor" in stages:
        stage_inductor(row, model, x, limit, full)
        print(f"{name}: inductor {row['inductor']}", file=sys.stderr)
    return row


def _kib(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _diff(d: float | None, scale: float | None = None) -> str:
    if d is None:
        return "not compiled"
    return f"{d:.2g}" + (f" (of {scale:.2g})" if scale else "")


def _pct(before: int | None, after: int | None) -> str:
    if not before or after is None:
        return "—"
    return f"{100 * (after - before) / before:+.1f}%"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "# serenity on PyTorch: torch.export, ExecuTorch, Inductor",
        "",
        f"Generated by `python benchmarks/torch.py` ({meta['python']}, torch {meta['torch']}, "
        f"executorch {meta['executorch']}, timm {meta['timm']}; search time limit "
        f"{meta['time_limit']} s). timm models, `pretrained=False`, batch 1, eval, input "
        "1x3xSxS (S below: smaller than the models' defaults to keep the run short). "
        "Bytes are exact; seconds are single runs on a shared 2-core machine.",
        "",
        "## torch.export graph (serenity's memory model) and eager PyTorch",
        "",
        "Eager: `ep.module()` on CPU. *live* = bytes of the storages op outputs hold "
        "alive (a dispatch mode with weakref finalizers: what the generated code keeps, "
        "views once); *alloc* = the running sum of the profiler's allocation events, "
        "which adds what kernels allocate and free inside one call (oneDNN weight "
        "reorders, no order changes those). Neither counts the caller's input.",
        "",
        "| model | S | nodes | scheduled | export order | serenity | optimal | lower bound "
        "| search s | eager live before | after | change | eager alloc before | after | change "
        "| outputs equal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "export_order" not in r:
            continue
        out.append(
            f"| {r['model']} | {r['size']} | {r['nodes']} | {r['ops']} | {_kib(r['export_order'])} "
            f"| {_kib(r['serenity'])} ({_pct(r['export_order'], r['serenity'])}) "
            f"| {'yes' if r['optimal'] else 'no'} | {_kib(r['lower_bound'])} | {r['optimize_s']} "
            f"| {_kib(r.get('eager_live_before'))} | {_kib(r.get('eager_live_after'))} "
            f"| {_pct(r.get('eager_live_before'), r.get('eager_live_after'))} "
            f"| {_kib(r.get('eager_before'))} | {_kib(r.get('eager_after'))} "
            f"| {_pct(r.get('eager_before'), r.get('eager_after'))} "
            f"| {'yes' if r.get('eager_equal') else '—'} |"
        )
    out += [
        "",
        "## ExecuTorch arena (bytes, read back from the program: "
        "`execution_plan[0].non_const_buffer_sizes[1]`)",
        "",
        "Order x planner: ExecuTorch's default greedy planner or serenity's "
        "(`serenity.plan`, `best`). Constants propagated before planning. "
        "Bound = serenity's proven optimum of the edge graph (ExecuTorch's "
        "memory model, 16-byte alignment): no order and no plan does better.",
        "",
        "| model | export+greedy | export+serenity | serenity+greedy | serenity+serenity "
        "| bound (optimal?) | change | .pte outputs equal across orders "
        "| max abs diff vs eager (of max abs output) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r.get("et_arena")
        if not a:
            continue
        out.append(
            f"| {r['model']} | {_kib(a['export+greedy'])} | {_kib(a['export+serenity'])} "
            f"| {_kib(a['serenity+greedy'])} | {_kib(a['serenity+serenity'])} "
            f"| {_kib(r.get('et_schedule_peak'))} ({'yes' if r.get('et_schedule_optimal') else 'no'}) "
            f"| {_pct(a['export+greedy'], a['serenity+serenity'])} "
            f"| {'yes' if r['et_outputs_equal_across_orders'] else 'NO'} "
            f"| {_diff(r['et_max_abs_diff_vs_eager'], r.get('eager_max_abs_output'))} |"
        )
    out += [
        "",
        "## Inductor (`torch.compile`): its estimate on its own fused graph",
        "",
        "`reorder_for_peak_memory` estimates each order on Inductor's fused graph "
        "(its buffers after fusion; the input and the weights are not counted), so "
        "these bytes are not comparable with the tables above. Inductor's pick = the "
        "lowest of its baseline (the order before reordering) and its three methods; "
        "serenity (`auto`, same time limit) was added as a fifth method, and "
        "`kept` is the one Inductor chose. serenity's peak of an order equals "
        "Inductor's estimate (tested). With `--inductor-estimates-only` the "
        "compilation stops once the order is chosen (no C++ build, no run).",
        "",
        "| model | graph | kernels | baseline | lpmf | bfs | dfs | Inductor's pick | serenity "
        "| optimal | vs pick | kept | compile s | max abs diff vs eager (of max abs output) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for k, rec in enumerate(r.get("inductor", [])):
            inductor = min(
                v
                for key, v in rec.items()
                if key in ("baseline", *(f"topological_sort_{m}" for m in ("lpmf", "bfs", "dfs")))
            )
            out.append(
                f"| {r['model']} | {k} | {rec['nodes']} | {_kib(rec.get('baseline'))} "
                f"| {_kib(rec.get('topological_sort_lpmf'))} | {_kib(rec.get('topological_sort_bfs'))} "
                f"| {_kib(rec.get('topological_sort_dfs'))} | {_kib(inductor)} | {_kib(rec.get('serenity'))} "
                f"| {'yes' if rec.get('optimal') else 'no'} | {_pct(inductor, rec.get('serenity'))} "
                f"| {rec.get('chosen')} | {r['inductor_s']} "
                f"| {_diff(r.get('inductor_max_abs_diff_vs_eager'), r.get('eager_max_abs_output'))} |"
            )
    notes = HERE / "RESULTS-torch-notes.md"
    if notes.exists():
        out += ["", notes.read_text().rstrip()]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", type=int, default=128, help="input height and width (default 128)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated; '' = none")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--json", type=Path, default=HERE / "results-torch.json")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-torch.md")
    ap.add_argument(
        "--inductor-estimates-only",
        action="store_true",
        help="stop each compilation once Inductor has chosen its order (no C++ build)",
    )
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="results of other runs")
    args = ap.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    rows: dict[str, dict[str, Any]] = {}

    def merge(row: dict[str, Any]) -> None:
        same = rows.get(row["model"], {}).get("size") == row["size"]
        rows[row["model"]] = {**rows[row["model"]], **row} if same else row

    for source in [args.json, *args.merge]:
        if source.exists():
            for r in json.loads(source.read_text())["rows"]:
                merge(r)
    names = [m for m in args.models.split(",") if m] if stages else []
    for name in [*names, None] if names else [None]:
        if name is not None:
            full = not args.inductor_estimates_only
            merge(run_model(name, args.size, stages, args.time_limit, full))
        ordered = [rows[m] for m in (*MODELS, *sorted(set(rows) - set(MODELS))) if m in rows]
        _stub_torchvision()
        import executorch
        import timm

        meta = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "executorch": getattr(executorch, "__version__", "1.5.1"),
            "timm": timm.__version__,
            "serenity": serenity.__version__,
            "time_limit": args.time_limit,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": ordered}, indent=1) + "\n")
        args.out.write_text(markdown(ordered, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
