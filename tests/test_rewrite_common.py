"""Shared checks of the rewrite passes, and the helpers' own tests.

Every pass test asserts the four facts torch.fx's pass tests do: whether the
graph changed, that it is still valid (checker, shape inference), that its
inputs and outputs are unchanged, and that onnxruntime gives the same outputs.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir
import onnx_models

from serenity.io.verify import verify_same_outputs
from serenity.rewrite import Rewrite, to_ir, to_proto
from serenity.rewrite._graph import Editor


def run_pass(
    proto: onnx.ModelProto, pass_: ir.passes.InPlacePass
) -> tuple[onnx.ModelProto, bool, list[Rewrite]]:
    """Apply ``pass_`` (an onnx-ir in-place pass with ``rewrites``) to a copy of ``proto``."""
    model = to_ir(proto)
    result = pass_(model)
    return to_proto(result.model), result.modified, list(pass_.rewrites)  # type: ignore[attr-defined]


def signature(proto: onnx.ModelProto) -> tuple[list[str], list[str]]:
    inits = {t.name for t in proto.graph.initializer}
    ins = [onnx.helper.printable_value_info(v) for v in proto.graph.input if v.name not in inits]
    outs = [onnx.helper.printable_value_info(v) for v in proto.graph.output]
    return ins, outs


def assert_equivalent(original: onnx.ModelProto, new: onnx.ModelProto) -> None:
    """Valid, same signature, same outputs within tolerance in onnxruntime."""
    onnx.checker.check_model(new, full_check=True)
    onnx.shape_inference.infer_shapes(new, check_type=True, strict_mode=True)
    assert signature(new) == signature(original)
    verify_same_outputs(original, new, Path("."), exact=False, rtol=1e-4, atol=1e-5)


def op_types(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def test_editor_names_and_weights() -> None:
    model = to_ir(onnx_models.concat_elementwise())
    editor = Editor(model.graph)
    assert editor.fresh("cat") == "cat_1" and editor.fresh("cat") == "cat_2"
    assert editor.fresh("new") == "new"
    values = {v.name: v for n in model.graph for v in (*n.inputs, *n.outputs) if v is not None}
    assert editor.is_weight(values["bn.scale"]) and editor.is_weight(values["lo"])
    assert not editor.is_weight(values["cat"]) and not editor.is_weight(values["x"])
    assert editor.ints([1, 2]) is editor.ints([1, 2])


def test_unchanged_graph_round_trips() -> None:
    proto = onnx_models.design_example()
    back = to_proto(to_ir(proto))
    assert op_types(back) == op_types(proto)
    assert_equivalent(proto, back)
