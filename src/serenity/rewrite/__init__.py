"""Identity graph rewriting: change the graph, not what it computes, to lower the peak.

SERENITY (Ahn et al., MLSys 2020) lowers the peak below the optimal schedule
of the unchanged graph by rewriting concatenations away. One pass per module,
each over an :class:`onnx_ir.Model` and each a function on one site plus an
``onnx_ir`` in-place pass that applies it everywhere:

* :mod:`~serenity.rewrite.channel_partition`: ``Conv(Concat(x1..xk))`` (or
  MatMul / Gemm over the concatenated axis) becomes partial convolutions on
  the matching input-channel slices of the weight, summed by a chain of Adds;
* :mod:`~serenity.rewrite.kernel_partition`: a depthwise conv over a concat
  becomes one depthwise conv per part, then the concat;
* :mod:`~serenity.rewrite.distribute`: element-wise and channel-wise ops
  (ReLU, inference BatchNormalization, per-channel Mul/Add, pools...) move
  from a concat onto its parts, so the two passes above can reach it;
* :mod:`~serenity.rewrite.pad_pool` (not in the paper): a constant Pad folded
  into the pool that reads it; it removes the full-size padded copy that
  sets the optimal peak of timm's NASNet and PNASNet stems;
* :mod:`~serenity.rewrite.bn_fold` (not in the paper): an inference
  BatchNormalization folded into the Conv (ConvTranspose, Gemm) feeding it,
  ``W' = W * s``, ``b' = (b - mean) * s + beta``, ``s = scale / sqrt(var +
  eps)``; the folded weights are weight-only nodes. It helps the *default*
  model only: there the BN step holds the conv output and the BN output at
  once. Under the in-place model BN already overwrites its input, so the
  fold changes no footprint;
* :mod:`~serenity.rewrite.reassociate` (not in the paper): a sum of ≥ 3
  terms (a chain or tree of ``Add``, or a ``Sum``) rebuilt as a chain in the
  order the current schedule makes its terms available, so each term is
  added, and can die, as soon as it exists (RandWire's weighted
  aggregation). It helps under *both* models wherever terms wait for their
  turn at the peak; results are equal within rounding, not bitwise;
* :mod:`~serenity.rewrite.output_split` (not in the paper): a group-1 conv
  split into convs on output-channel slices of its weight, joined by a
  concat. Alone it never lowers the peak; the driver follows it with the
  per-concat rewrite (distribute, then partition the next conv), so a wide
  conv output and its BN / ReLU chain are never whole (DARTS' ImageNet
  stem). On by default; ``rewrite_for_memory(..., split_outputs=False)``
  turns it off;
* :mod:`~serenity.rewrite.scale_fold` (not in the paper): ``Mul(x, c)`` by a
  scalar weight folded into the Conv or BN producing ``x`` (its weights
  scaled by ``c``), the other consumers of ``x``, all such Muls, rescaled by
  ``c_k / c``: ``x`` and its scaled copy are never live together (RandWire's
  weighted aggregation, where every step at the optimal peak adds a scaled
  copy of a node output that still waits for another consumer);
* :mod:`~serenity.rewrite.concat`: SERENITY's concat site as one rewrite:
  distribute over the concat, then partition the convs it reaches;
* :mod:`~serenity.rewrite.driver`: applies a rewrite only where re-scheduling
  shows a strictly lower peak. It knows no pass: each module above declares
  its sites in a ``DRIVER`` rule, registered by one line in
  :data:`~serenity.rewrite.registry.DRIVER_MODULES`.

**Weights are sliced by graph nodes, never by reading data.** A weight slice
is a ``Slice`` node on the initializer with constant starts / ends / axes.
It is weight-only arithmetic, which the importer neither schedules nor
counts (``docs/memory-model.md``), onnxruntime folds it when it loads the
model, and it works when the weight files are missing (the graphs of ``../shared/models``). The
cost is a few tiny int64 initializers and Slice nodes in the written model.

**The accumulator under each memory model.** Channel partitioning turns
``y = Conv(Concat(x1..xk))`` into ``p1 = Conv(x1)`` (bias added there),
``s2 = Add(p1, p2)``, ..., ``y = Add(s_{k-1}, pk)``: the running sum is an
ordinary activation tensor of the output's size.

* Default model: ``Add(acc, p)`` holds ``acc``, ``p`` and the new sum at once,
  so each accumulation step costs three output-sized tensors (plus whatever
  else is live). The concat's inputs die one by one, but the rewrite pays for
  that with the extra output-sized tensors; it helps only where the parts are
  larger than the output (a wide concat into a narrowing conv).
* In-place model (``--inplace``): ``Add`` is in
  :data:`~serenity.io.onnx_import.INPLACE_OPS`, so each Add overwrites its
  accumulator when it dies there (it always does: nothing else reads it),
  and a step holds two output-sized tensors: the accumulator and the partial.

The driver reports the peaks before and after under both models
(:meth:`~serenity.rewrite.driver.RewriteResult.peaks`), whichever one it
optimised for, so that a gain under one model is never read as a gain under
the other.
"""

from serenity.rewrite._graph import Rewrite, count_passes, to_ir, to_proto
from serenity.rewrite.bn_fold import BnFoldPass, fold_bn
from serenity.rewrite.channel_partition import ChannelPartitionPass, partition_channels
from serenity.rewrite.concat import rewrite_concat
from serenity.rewrite.distribute import DistributePass, distribute
from serenity.rewrite.driver import RewriteResult, rewrite_for_memory
from serenity.rewrite.kernel_partition import KernelPartitionPass, partition_kernels
from serenity.rewrite.output_split import OutputSplitPass, split_output
from serenity.rewrite.pad_pool import PadPoolPass, fold_pad
from serenity.rewrite.reassociate import ReassociatePass, reassociate
from serenity.rewrite.registry import DRIVER_MODULES, DriverRule, PeakView, driver_rules
from serenity.rewrite.scale_fold import ScaleFoldPass, fold_scale

__all__ = [
    "DRIVER_MODULES",
    "BnFoldPass",
    "ChannelPartitionPass",
    "DistributePass",
    "DriverRule",
    "KernelPartitionPass",
    "OutputSplitPass",
    "PadPoolPass",
    "PeakView",
    "ReassociatePass",
    "ScaleFoldPass",
    "Rewrite",
    "RewriteResult",
    "count_passes",
    "distribute",
    "driver_rules",
    "fold_bn",
    "fold_pad",
    "fold_scale",
    "partition_channels",
    "partition_kernels",
    "reassociate",
    "rewrite_concat",
    "rewrite_for_memory",
    "split_output",
    "to_ir",
    "to_proto",
]
