"""Write a model back with its nodes in a new order.

Only the order of ``graph.node`` changes; every node, initializer, attribute,
input, output and metadata entry is kept as it was. Nodes that are not
scheduled (they compute from weights alone) are placed right before their
first consumer, so the file stays topologically sorted; weight nodes nobody
consumes go last.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnx

from serenity.errors import ModelError
from serenity.io.format import check_output_path
from serenity.io.onnx_import import OnnxModel, node_inputs


def reordered_proto(model: OnnxModel, order: Sequence[int]) -> onnx.ModelProto:
    """A copy of ``model.proto`` whose nodes follow ``order`` (op ids).

    Args:
        model: The loaded model.
        order: A topological order of ``model.problem``'s ops.

    Raises:
        ValueError: ``order`` is not a topological order of the problem.

    Complexity: O(nodes + edges).
    """
    if not model.problem.is_topological(order):
        raise ValueError("order is not a topological order of the model's ops")
    graph = model.proto.graph
    nodes = graph.node
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    scheduled = set(model.node_index)
    placed = [False] * len(nodes)
    new_order: list[int] = []

    def place_weight_producers(i: int) -> None:
        # Depth-first over weight-only producers, so each lands before its consumer.
        stack = [(i, iter(node_inputs(nodes[i])))]
        while stack:
            j, reads = stack[-1]
            for x in reads:
                u = producer.get(x)
                if u is not None and not placed[u] and u not in scheduled:
                    placed[u] = True
                    stack.append((u, iter(node_inputs(nodes[u]))))
                    break
            else:
                stack.pop()
                if j != i:
                    new_order.append(j)

    for v in order:
        i = model.node_index[v]
        place_weight_producers(i)
        placed[i] = True
        new_order.append(i)
    for i in range(len(nodes)):
        if not placed[i]:
            placed[i] = True
            place_weight_producers(i)
            new_order.append(i)

    out = onnx.ModelProto()
    out.CopyFrom(model.proto)
    del out.graph.node[:]
    out.graph.node.extend(nodes[i] for i in new_order)
    return out


def external_locations(proto: onnx.ModelProto) -> list[str]:
    """The external-data files the initializers of ``proto`` name, sorted."""
    locs = {
        e.value
        for t in proto.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in t.external_data
        if e.key == "location"
    }
    return sorted(locs)


def data_path(target: Path) -> Path:
    """Where the weights of a model written to ``target`` go: ``<target>.data``."""
    return target.with_name(target.name + ".data")


def write_model(
    model: OnnxModel, proto: onnx.ModelProto, out: str | os.PathLike[str]
) -> list[Path]:
    """Write ``proto`` (derived from ``model``) to ``out`` without half-written files.

    Weights stored in external files are carried along: when the input's
    external files exist, they are read and written next to ``out`` as
    ``<out>.data``; when they are missing (an analysis-only graph), the output
    keeps the same external references and a warning is the caller's job.
    The model file itself is written to a temporary name and renamed.

    Returns:
        The paths written.

    Raises:
        UsageError: see :func:`check_output_path`.
        ModelError: the file cannot be written.
    """
    target = check_output_path(model, out)
    proto_out = onnx.ModelProto()
    proto_out.CopyFrom(proto)
    written = [target]
    save_kwargs: dict[str, object] = {}
    if model.external_weights and not model.missing_weights:
        onnx.external_data_helper.load_external_data_for_model(proto_out, str(model.path.parent))
        save_kwargs = {
            "save_as_external_data": True,
            "all_tensors_to_one_file": True,
            "location": data_path(target).name,
            "size_threshold": 1024,
        }
        written.append(data_path(target))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if save_kwargs:
            # onnx appends to an existing data file, so start from an empty one;
            # it writes the data beside tmp under its final name.
            data_path(target).unlink(missing_ok=True)
        onnx.save_model(proto_out, str(tmp), **save_kwargs)  # type: ignore[arg-type]
        os.replace(tmp, target)
    except (OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot write {target}: {e}") from None
    # onnx keeps tensors under size_threshold inline: with only small weights no
    # data file is written, so do not report one.
    return [p for p in written if p == target or p.exists()]
