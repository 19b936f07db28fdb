"""Fold a constant ``Pad`` into the pooling that reads it.

Not one of SERENITY's rewrites, but the same kind: an identity that removes a
large intermediate. timm's NASNet and PNASNet pad a full-resolution stem
activation before a stride-2 pool (``ZeroPad2d`` then ``MaxPool``/``AvgPool``,
and a shift by one pixel, ``ZeroPad2d((-1, 1, -1, 1))``, before a 1x1
stride-2 ``AvgPool``); the padded copy is as large as its input and sits at
the optimal peak of both graphs. Two identities remove it:

* **fold**: non-negative spatial pads with ``-inf`` before ``MaxPool``, or
  with ``0`` before ``AveragePool`` (which then counts the padding:
  ``count_include_pad=1``, as the explicit zeros were counted), become the
  pool's own ``pads``. The pool must have no pads of its own and
  ``ceil_mode=0``; ``MaxPool``'s indices output must be unused.
* **subsample**: a pool with a 1x1 kernel only picks every ``stride``-th
  element of the padded tensor. It becomes a strided ``Slice`` of the
  unpadded input (any pads, negative ones included) followed by a ``Pad`` of
  the few output rows and columns that fell into the padding.

Only spatial axes may be padded; the pad values must be constants.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import onnx_ir as ir

from serenity.rewrite._graph import (
    Editor,
    Rewrite,
    SitePass,
    const_array,
    consumers,
    copy_attributes,
    int_attr,
    ints_attr,
    like,
    replace_output,
    static_shape,
)
from serenity.rewrite.registry import DriverRule, PeakView, Tried, one

_POOLS = frozenset({"MaxPool", "AveragePool"})


def _pad_spec(node: ir.Node) -> tuple[list[int], float] | None:
    """The per-axis pads (begins then ends) and the constant of a constant-mode Pad."""
    if node.op_type != "Pad" or node.domain != "" or len(node.outputs) != 1:
        return None
    mode = node.attributes.get("mode")
    if mode is not None and mode.as_string() != "constant":
        return None
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        return None  # explicit axes: not produced by the exporters we meet; keep it simple
    pads = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if pads is None:
        return None
    value = 0.0
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        c = const_array(node.inputs[2])
        if c is None or c.size != 1:
            return None
        value = float(c.reshape(()))
    return [int(p) for p in pads.reshape(-1)], value


def _site(node: ir.Node) -> tuple[ir.Node, list[int], float] | None:
    """``(pool, pads, value)`` when ``node`` is a Pad this pass can remove."""
    spec = _pad_spec(node)
    if spec is None:
        return None
    pads, value = spec
    padded = node.outputs[0]
    shape = static_shape(node.inputs[0])
    if padded.is_graph_output() or shape is None or len(pads) != 2 * len(shape) or len(shape) < 3:
        return None
    rank = len(shape)
    if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return None  # batch or channel padding changes the pool's input itself
    users = consumers(padded)
    if len(users) != 1 or len(padded.uses()) != 1:
        return None
    pool = users[0]
    if pool.op_type not in _POOLS or pool.domain != "" or pool.inputs[0] is not padded:
        return None
    if any(v.uses() or v.is_graph_output() for v in pool.outputs[1:]):
        return None
    if int_attr(pool, "ceil_mode", 0) != 0:
        return None
    auto_pad = pool.attributes.get("auto_pad")
    if auto_pad is not None and auto_pad.as_string() not in ("NOTSET", ""):
        return None
    own = ints_attr(pool, "pads")
    if own is not None and any(own):
        return None
    return pool, pads, value


def _subsample_plan(
    length: int, begin: int, end: int, stride: int
) -> tuple[int, int, int, int] | None:
    """For one axis: ``(slice start, slice end, pad before, pad after)`` or ``None``.

    Output ``j`` of a 1-wide window with ``stride`` over the padded axis reads
    padded index ``stride*j``, i.e. input ``stride*j - begin`` when in range.
    """
    padded = length + begin + end
    if padded < 1:
        return None
    n = (padded - 1) // stride + 1
    lo = max(0, math.ceil(begin / stride))
    hi = min(n - 1, (length - 1 + begin) // stride)
    if lo > hi:
        return None
    return stride * lo - begin, stride * hi - begin + 1, lo, n - 1 - hi


def fold_pad(editor: Editor, pad: ir.Node) -> Rewrite | None:
    """Remove ``pad`` by folding it into its pool (see the module docstring).

    Returns ``None`` (graph unchanged) when the pattern does not qualify.

    Complexity: O(rank).
    """
    site = _site(pad)
    if site is None:
        return None
    pool, pads, value = site
    x = pad.inputs[0]
    assert x is not None
    shape = static_shape(x)
    assert shape is not None
    rank = len(shape)
    spatial = range(2, rank)
    kernel = ints_attr(pool, "kernel_shape") or []
    strides = ints_attr(pool, "strides") or [1] * (rank - 2)
    graph = editor.graph
    out = pool.outputs[0]
    base = pool.name or pool.op_type
    new_nodes: list[ir.Node] = []
    if kernel and all(k == 1 for k in kernel):
        plans = [
            _subsample_plan(shape[a], pads[a], pads[a + rank], strides[a - 2]) for a in spatial
        ]
        if any(p is None for p in plans):
            return None
        starts = [p[0] for p in plans if p is not None]
        ends = [p[1] for p in plans if p is not None]
        node = ir.Node(
            "",
            "Slice",
            [
                x,
                editor.ints(starts),
                editor.ints(ends),
                editor.ints(list(spatial)),
                editor.ints(strides),
            ],
            num_outputs=1,
            name=editor.fresh(f"{base}.subsample"),
        )
        node.outputs[0].name = editor.fresh(f"{out.name}.subsample")
        node.outputs[0].type = x.type
        dims = list(shape[:2]) + [
            len(range(p[0], p[1], s)) for p, s in zip(plans, strides, strict=True) if p is not None
        ]
        node.outputs[0].shape = ir.Shape(dims)
        new_nodes.append(node)
        result = node.outputs[0]
        before = [0, 0] + [p[2] for p in plans if p is not None]
        after = [0, 0] + [p[3] for p in plans if p is not None]
        if any(before) or any(after):
            fill = ir.tensor(np.array(value, dtype=x.dtype.numpy() if x.dtype else np.float32))
            fill_value = ir.Value(
                name=editor.fresh(f"{base}.pad_value"),
                shape=ir.Shape([]),
                type=x.type,
                const_value=fill,
            )
            fill_value.const_value.name = fill_value.name  # type: ignore[union-attr]
            graph.register_initializer(fill_value)
            node = ir.Node(
                "",
                "Pad",
                [result, editor.ints(before + after), fill_value],
                {"mode": ir.AttrString("mode", "constant")},
                num_outputs=1,
                name=editor.fresh(f"{base}.repad"),
            )
            new_nodes.append(node)
            result = node.outputs[0]
        like(result, out, 0, None)
        kind = "pad_pool_subsample"
    else:
        if any(p < 0 for p in pads):
            return None
        if pool.op_type == "MaxPool" and not (math.isinf(value) and value < 0):
            return None
        if pool.op_type == "AveragePool" and value != 0.0:
            return None
        own = [pads[a] for a in spatial] + [pads[a + rank] for a in spatial]
        overrides: dict[str, object] = {"pads": own}
        if pool.op_type == "AveragePool":
            overrides["count_include_pad"] = 1
        node = ir.Node(
            "",
            pool.op_type,
            [x],
            copy_attributes(pool, **overrides),
            num_outputs=1,
            name=editor.fresh(f"{base}.padded"),
        )
        like(node.outputs[0], out, 0, None)
        new_nodes.append(node)
        result = node.outputs[0]
        kind = "pad_pool_fold"
    record = Rewrite(kind, (pad.name or "", pool.name or ""))
    replace_output(graph, pool, new_nodes, result)
    graph.remove(pad, safe=True)
    return record


class PadPoolPass(SitePass):
    """Fold every qualifying constant Pad into the pool that reads it."""

    def sites(self, graph: ir.Graph) -> Iterator[tuple[ir.Node, ...]]:
        return ((n,) for n in list(graph) if n.op_type == "Pad")

    def rewrite_site(self, editor: Editor, *site: ir.Node) -> Rewrite | None:
        return fold_pad(editor, *site)


def _driver_match(editor: Editor, pad: ir.Node, peak: PeakView) -> Tried | None:
    """A foldable Pad whose input, output or pool output is live at the peak."""
    pool = _site(pad)
    if pool is None:
        return None
    touched = {pad.outputs[0].name, *(v.name for v in pool[0].outputs)}
    if pad.inputs[0] is not None:
        touched.add(pad.inputs[0].name)
    return "solo" if touched & peak.live else None


#: The driver's view of this pass (:mod:`serenity.rewrite.registry`).
DRIVER = DriverRule(
    name="pad_pool",
    ops=frozenset({"Pad"}),
    match=_driver_match,
    apply=lambda editor, pad, peak: one(fold_pad(editor, pad)),
)
