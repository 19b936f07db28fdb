"""A second model format for the tests: one module, registered with one line.

It shows what a format must provide (:mod:`serenity.io.format`) and lets the
tests drive ``api`` and ``cli`` through a format that is not ONNX and that,
unlike ONNX, holds an arena plan. A file is JSON::

    {"toy-graph": 1, "tensors": {"x": 16, ...}, "inputs": ["x"], "outputs": ["y"],
     "ops": [{"name": "a", "inputs": ["x"], "outputs": ["t"]}, ...],
     "arena": {"t": 0, ...}}          # optional: byte offset per tensor

Its "runtime" evaluates each op as the sum of its inputs plus a per-op
constant, so a wrong order (or a lost op) changes the outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from serenity.errors import ModelError, VerificationError
from serenity.io.format import Format, Model, VerifyReport
from serenity.ir import Problem

MAGIC = b'{"toy-graph"'


@dataclass
class ToyModel(Model):
    path: Path
    problem: Problem
    data: dict[str, Any]
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    format_name: ClassVar[str] = "toy"
    holds_plan: ClassVar[bool] = True

    @property
    def num_nodes(self) -> int:
        return len(self.data["ops"])

    def reordered(
        self, order: Sequence[int], offsets: Mapping[int, int] | None = None
    ) -> dict[str, Any]:
        if not self.problem.is_topological(order):
            raise ValueError("order is not a topological order of the model's ops")
        out = dict(self.data, ops=[self.data["ops"][v] for v in order])
        if offsets is not None:
            out["arena"] = {self.problem.tensor_names[t]: o for t, o in sorted(offsets.items())}
        return out

    def verify(
        self, candidate: dict[str, Any], *, exact: bool = True, seed: int = 0
    ) -> VerifyReport:
        want, got = run(self.data, seed), run(candidate, seed)
        for name in self.data["outputs"]:
            if want[name] != got.get(name):
                raise VerificationError(f"output '{name}' differs: {want[name]} vs {got.get(name)}")
        return VerifyReport(tuple(self.data["outputs"]), True, 0.0, 0, seed, runtime="toy")

    def write(self, candidate: dict[str, Any], out: Path) -> list[Path]:
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(json.dumps(candidate))
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ModelError(f"cannot write {out}: {e.strerror}") from None
        return [out]


def run(data: dict[str, Any], seed: int) -> dict[str, int]:
    """Evaluate the graph in file order; an op reading an unset tensor fails."""
    values = {x: seed + i for i, x in enumerate(data["inputs"])}
    for op in data["ops"]:
        if any(x not in values for x in op["inputs"]):
            raise VerificationError(f"op '{op['name']}' runs before its inputs exist")
        for k, y in enumerate(op["outputs"]):
            values[y] = sum(values[x] for x in op["inputs"]) + len(op["name"]) + k
    return values


def load(path: Path, input_shapes: Mapping[str, tuple[int, ...]]) -> ToyModel:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: not a toy graph ({e})") from None
    tensors = list(data["tensors"])
    tid = {name: i for i, name in enumerate(tensors)}
    ops = data["ops"]
    problem = Problem(
        op_names=[op["name"] for op in ops],
        tensor_sizes=[data["tensors"][t] for t in tensors],
        op_inputs=[[tid[x] for x in op["inputs"]] for op in ops],
        op_outputs=[[tid[y] for y in op["outputs"]] for op in ops],
        graph_inputs=[tid[x] for x in data["inputs"]],
        graph_outputs=[tid[y] for y in data["outputs"]],
        tensor_names=tensors,
        name=path.stem,
    )
    problem.topological_order()  # raises CycleError naming the ops on a cycle
    return ToyModel(path, problem, data, dict(input_shapes))


FORMAT = Format(
    name="toy", suffixes=(".toy",), sniff=lambda head: head.startswith(MAGIC), load=load
)
