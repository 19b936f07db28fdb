"""Apply rewrites where the scheduler says they lower the peak, and nowhere else.

A rewrite changes the graph, so whether it helps is a scheduling question:
splitting a concat that is not live at the peak changes nothing, and an
accumulator can cost more than the concat it replaces. The driver therefore
asks the scheduler (a greedy loop, SERENITY's "rewrite, then schedule"):

1. schedule the graph (``auto``: the exact engine) and simulate the order;
2. collect the *sites* touching a tensor live at the peak: a ``Concat`` whose
   output, inputs, or a distributable op's output downstream of it is live
   there (rewritten as a whole: distribute, then partition every Conv /
   MatMul / Gemm reached), a ``Pad`` folded into its pool, a
   ``BatchNormalization`` whose input or output is live there (folded into
   its Conv / Gemm), a ``Mul`` by a scalar weight whose input and output are
   live at one peak step (folded into the Conv / BN producing its input), and a sum of ≥ 3 terms with a term or partial sum live
   there (re-associated in the order the current schedule makes its terms
   available: :func:`term_ranks`); with ``split_outputs`` (the default), also a group-1
   ``Conv`` whose output, or the output of the distributable ops right
   after it, is read or written by an op at a peak step and whose chain reaches a conv that
   channel partitioning takes (:func:`split_sites`: split into two
   output-channel halves, then the new concat rewritten as a whole);
3. try each site on a fresh copy, and all of them together, in the order of
   the peak the current schedule has when carried over to the copy
   (:func:`carried_order`), then each conv split alone; re-schedule, and keep
   the first whose peak is strictly lower, a group without the sites that
   peak does not need (:func:`_prune`); go back to 1 (a BN whose input is not live at the peak
   is tried only in the all-together candidate: alone its fold cannot lower
   those steps; a split is never part of the all-together candidate, so it
   only adds trials where nothing else helps);
4. stop when no site lowers the peak (or after ``max_rounds``).

Each trial is a full import and schedule, O(sites x rounds) of them; the peak
is the optimal one where the engine proves it, else the best found. A trial's
search stops as soon as it proves that no order of the candidate beats the
current peak (``ScheduleOptions.give_up_at``), so a losing candidate rarely
costs the full time limit.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import onnx
import onnx_ir as ir

from serenity.errors import UsageError
from serenity.io.format import Model
from serenity.io.onnx_import import OnnxModel, load_proto
from serenity.ir import Problem
from serenity.memory.model import peak_step_live_sets, simulate
from serenity.rewrite._graph import Editor, Rewrite, consumers, count_passes, to_ir, to_proto
from serenity.rewrite.bn_fold import fold_bn
from serenity.rewrite.bn_fold import site as _bn_site
from serenity.rewrite.channel_partition import partition_channels
from serenity.rewrite.distribute import (
    BINARY_OPS,
    CHANNELWISE_OPS,
    UNARY_OPS,
    distributable,
    distribute,
)
from serenity.rewrite.kernel_partition import partition_kernels
from serenity.rewrite.output_split import split_output, splittable
from serenity.rewrite.pad_pool import _site as _pad_site
from serenity.rewrite.pad_pool import fold_pad
from serenity.rewrite.reassociate import is_root, reassociate, sum_terms
from serenity.rewrite.scale_fold import fold_scale
from serenity.rewrite.scale_fold import site as _scale_site
from serenity.schedule import ScheduleOptions, ScheduleResult, schedule

#: Seconds each trial schedule may search when the caller gives no limit.
TRIAL_TIME_LIMIT = 10.0

#: With ``progress``, trial lines start once the search has run this long.
PROGRESS_AFTER = 1.0


@dataclass
class RewriteResult:
    """What :func:`rewrite_for_memory` did.

    Attributes:
        proto: The rewritten model (the input proto itself when nothing was applied).
        model: ``proto`` loaded, with the original's path and input shapes.
        rewrites: The rewrites applied, in order.
        before: The original graph's schedule under the chosen memory model.
        after: The rewritten graph's schedule under the chosen memory model.
        inplace: The chosen memory model (``True``: in-place).
        other_before: The original's schedule under the other memory model.
        other_after: The rewritten graph's schedule under the other model.
        trials: How many candidate graphs were scheduled.
        seconds: Wall-clock time of the whole search.
    """

    proto: onnx.ModelProto
    model: OnnxModel
    rewrites: list[Rewrite]
    before: ScheduleResult
    after: ScheduleResult
    inplace: bool
    other_before: ScheduleResult
    other_after: ScheduleResult
    trials: int = 0
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    def schedules(self, inplace: bool) -> tuple[ScheduleResult, ScheduleResult]:
        """The schedules before and after rewriting under one memory model."""
        if inplace == self.inplace:
            return self.before, self.after
        return self.other_before, self.other_after

    def peaks(self) -> dict[str, int]:
        """Peaks before and after, under the default and the in-place model."""
        peaks = {}
        for label, inplace in (("default", False), ("inplace", True)):
            before, after = self.schedules(inplace)
            peaks[f"{label}_before"], peaks[f"{label}_after"] = before.peak_bytes, after.peak_bytes
        return peaks


def rewrite_concat(editor: Editor, concat: ir.Node) -> list[Rewrite]:
    """Rewrite around one concat: distribute ops over it, then partition convs.

    Follows the concat down: each distributable consumer is moved onto the
    parts (its result is a new concat, followed in turn); each Conv / MatMul /
    Gemm over the channels is partitioned; each depthwise conv is split per
    part (its result is a new concat, followed in turn). The concat stays
    only if some consumer still needs it.

    Complexity: O(rewritten nodes x parts).
    """
    done: list[Rewrite] = []
    work = [concat]
    while work:
        cat = work.pop(0)
        for node in consumers(cat.outputs[0]):
            if cat.graph is None:
                break
            if distributable(editor, cat, node):
                moved = distribute(editor, cat, node)
                if moved is not None:
                    done.append(moved[0])
                    work.append(moved[1])
                continue
            partial = partition_channels(editor, cat, node)
            if partial is not None:
                done.append(partial)
                continue
            split = partition_kernels(editor, cat, node)
            if split is not None:
                done.append(split[0])
                work.append(split[1])
    return done


def _name_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (sites are found by name)."""
    names = [n.name for n in proto.graph.node]
    if all(names) and len(set(names)) == len(names):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    taken: set[str] = set()
    for i, node in enumerate(out.graph.node):
        name = node.name if node.name and node.name not in taken else f"{node.op_type}_{i}"
        while name in taken:
            name += "_"
        node.name = name
        taken.add(name)
    return out


def _downstream_names(node: ir.Node, editor: Editor, depth: int = 4) -> set[str]:
    """Output names of a concat and of the distributable / partitionable ops below it."""
    names: set[str] = set()
    frontier = [node]
    for _ in range(depth):
        nxt = []
        for cat in frontier:
            names.add(cat.outputs[0].name or "")
            for user in consumers(cat.outputs[0]):
                names.update(v.name or "" for v in user.outputs)
                if user.op_type != "Concat" and distributable(editor, cat, user):
                    nxt.append(user)
        frontier = nxt
    return names


def _sites(model: ir.Model, steps: Sequence[set[str]]) -> tuple[list[str], set[str]]:
    """Names of the Concat, Pad, BN, Mul and sum-root nodes whose rewrite touches a
    tensor live at a peak step (``steps``: the live set of each), a Mul only where
    its input and output are live at one step.

    The second set holds the sites tried only together with all the others:
    a BN whose output is live at the peak but not its input (the fold
    removes the input, so alone it cannot lower those steps; RandWire has a
    dozen such node outputs live at once, each trial a full schedule).
    """
    editor = Editor(model.graph)
    live = set().union(*steps)
    found = []
    group_only: set[str] = set()
    for node in model.graph:
        if node.op_type == "BatchNormalization":
            x, y = node.inputs[0], node.outputs[0]
            if {x.name if x else None, y.name} & live and _bn_site(editor, node) is not None:
                found.append(node.name or "")
                if x is None or x.name not in live:
                    group_only.add(node.name or "")
        elif node.op_type in ("Add", "Sum") and is_root(node):
            terms = sum_terms(node)
            if terms is not None:
                touched = {t.name for t in terms[0]} | {n.outputs[0].name for n in terms[1]}
                if touched & live:
                    found.append(node.name or "")
        elif node.op_type == "Mul":
            # Only where the input and the scaled copy are live at one peak step.
            scaled = _scale_site(editor, node)
            pair = {scaled[1].name, node.outputs[0].name} if scaled is not None else None
            if pair is not None and any(pair <= step for step in steps):
                found.append(node.name or "")
        elif node.op_type == "Pad":
            pool = _pad_site(node)
            touched = {node.outputs[0].name}
            if pool is not None:
                touched.update(v.name for v in pool[0].outputs)
                if node.inputs[0] is not None:
                    touched.add(node.inputs[0].name)
                if touched & live:
                    found.append(node.name or "")
        elif node.op_type == "Concat":
            touched = {x.name for x in node.inputs if x is not None}
            touched |= _downstream_names(node, editor)
            if touched & live:
                found.append(node.name or "")
    return found, group_only


#: Ops a split conv's chain may pass through on its way to the next conv
#: (a first filter; the trial rewrite in :func:`split_sites` decides).
_CHAIN_OPS = UNARY_OPS | BINARY_OPS | CHANNELWISE_OPS


def _chain_names(conv: ir.Node, depth: int = 4) -> set[str]:
    """Output names of ``conv`` and of the channel-wise ops right below it."""
    names = {conv.outputs[0].name or ""}
    frontier = [conv.outputs[0]]
    for _ in range(depth):
        nxt = []
        for value in frontier:
            for user in consumers(value):
                if user.op_type in _CHAIN_OPS and user.domain == "" and user.outputs:
                    names.add(user.outputs[0].name or "")
                    nxt.append(user.outputs[0])
        frontier = nxt
    return names


def _split_and_rewrite(editor: Editor, conv: ir.Node) -> list[Rewrite]:
    """Split ``conv`` in two, then rewrite the new concat as a whole (:func:`rewrite_concat`)."""
    done = split_output(editor, conv)
    if done is None:
        return []
    return [done[0], *rewrite_concat(editor, done[1])]


def split_sites(proto: onnx.ModelProto, live: set[str]) -> list[str]:
    """Names of the Conv nodes worth splitting by output channels.

    A site is a group-1 conv whose output, or a channel-wise op's output
    right below it, is in ``live`` (the driver passes the tensors of the ops
    at the peak steps: :func:`peak_step_tensors`), and whose split, followed by
    :func:`rewrite_concat` on the new concat, channel-partitions some conv:
    only then can the wide tensor stop existing as a whole. The test is the
    rewrite itself, on a scratch copy of the graph (made only when some
    conv passes the first filter).

    Complexity: O(nodes) for the filter, plus one conversion of ``proto``
    and O(chain) edits per candidate.
    """
    model = to_ir(proto)
    editor = Editor(model.graph)
    candidates = [
        node.name or ""
        for node in model.graph
        if node.op_type == "Conv" and splittable(editor, node) and _chain_names(node) & live
    ]
    found: list[str] = []
    scratch: tuple[ir.Model, Editor] | None = None
    for name in candidates:
        node = None if scratch is None else _find(scratch[0], name)
        if scratch is None or node is None:  # an earlier trial rewrote it: a fresh copy
            fresh = to_ir(proto)
            scratch = fresh, Editor(fresh.graph)
            node = _find(fresh, name)
        if node is None:
            continue
        rewrites = _split_and_rewrite(scratch[1], node)
        if any(r.pass_name == "channel_partition" for r in rewrites):
            found.append(name)
    return found


def peak_step_tensors(problem: Problem, order: tuple[int, ...], *, inplace: bool) -> set[str]:
    """Names of the tensors the ops at the peak steps read or write.

    A split only shortens the steps of its own chain: a conv output that is
    merely live at the peak, waiting while other ops run, is no site (on
    NASNet such trials cost the full time limit each and never gain).
    """
    timeline = simulate(problem, order, inplace=inplace)
    names: set[str] = set()
    for v, during in zip(order, timeline.step_bytes, strict=True):
        if during == timeline.peak_bytes:
            for t in (*problem.op_inputs[v], *problem.op_outputs[v]):
                names.add(problem.tensor_names[t])
    return names


def _solo_splits(
    proto: onnx.ModelProto, problem: Problem, order: tuple[int, ...], inplace: bool
) -> Iterator[list[str]]:
    touched = peak_step_tensors(problem, order, inplace=inplace)
    yield from ([site] for site in split_sites(proto, touched))


def _find(model: ir.Model, name: str) -> ir.Node | None:
    return next((n for n in model.graph if n.name == name), None)


def _apply(
    proto: onnx.ModelProto, sites: list[str], rank: dict[str, float] | None = None
) -> tuple[onnx.ModelProto, list[Rewrite]]:
    """Rewrite every named site (skipping those an earlier one removed) on a fresh copy.

    ``rank`` orders the terms of re-associated sums (:func:`term_ranks`).
    """
    model = to_ir(proto)
    editor = Editor(model.graph)
    rewrites: list[Rewrite] = []
    for site in sites:
        node = _find(model, site)
        if node is None:
            continue
        if node.op_type == "Pad":
            done = fold_pad(editor, node)
            rewrites += [done] if done is not None else []
        elif node.op_type == "BatchNormalization":
            done = fold_bn(editor, node)
            rewrites += [done] if done is not None else []
        elif node.op_type in ("Add", "Sum"):
            done = reassociate(editor, node, rank)
            rewrites += [done] if done is not None else []
        elif node.op_type == "Mul":
            done = fold_scale(editor, node)
            rewrites += [done] if done is not None else []
        elif node.op_type == "Conv":
            rewrites += _split_and_rewrite(editor, node)
        else:
            rewrites += rewrite_concat(editor, node)
    return (to_proto(model), rewrites) if rewrites else (proto, [])


def term_ranks(problem: Problem, order: list[int] | tuple[int, ...]) -> dict[str, float]:
    """When each tensor becomes available in ``order``: a rank per tensor name.

    The rank of an op's output is the step after which the op *could* run
    (the latest step producing one of its inputs; -1 for graph inputs), ties
    broken by the step where it does run. A term ``Mul(x, w)`` thus ranks at
    ``x``'s production, not where the schedule put the Mul (a fixed sum order
    makes a schedule delay such ops to their turn, which is what
    re-association undoes).

    Complexity: O(n + e).
    """
    step: dict[int, int] = {}
    for i, v in enumerate(order):
        for t in problem.op_outputs[v]:
            step[t] = i
    n = max(len(order), 1)
    ranks: dict[str, float] = {}
    for i, v in enumerate(order):
        ready = max((step.get(t, -1) for t in problem.op_inputs[v]), default=-1)
        for t in problem.op_outputs[v]:
            ranks[problem.tensor_names[t]] = ready + i / n
    for t in problem.graph_inputs:
        ranks[problem.tensor_names[t]] = -1.0
    return ranks


@dataclass(frozen=True)
class _Candidate:
    """A rewritten copy awaiting its trial schedule."""

    proto: onnx.ModelProto
    rewrites: list[Rewrite]
    model: OnnxModel
    hint: tuple[int, ...]
    carried_peak: int
    sites: tuple[str, ...]


def _prepare(
    proto: onnx.ModelProto,
    model: OnnxModel,
    order: tuple[int, ...],
    rank: dict[str, float],
    inplace: bool,
    group: list[str],
) -> _Candidate | None:
    """Rewrite ``group``'s sites on a copy of ``proto``; import it; carry ``order`` over."""
    new_proto, rewrites = _apply(proto, group, rank)
    if not rewrites:
        return None
    candidate = load_proto(new_proto, model.path, model.input_shapes)
    hint = carried_order(model.problem, order, candidate.problem)
    peak = simulate(candidate.problem, hint, inplace=inplace).peak_bytes
    return _Candidate(new_proto, rewrites, candidate, hint, peak, tuple(group))


def _prune(
    prepare: Callable[[list[str]], _Candidate | None],
    accepted: _Candidate,
    result: ScheduleResult,
    inplace: bool,
) -> _Candidate | None:
    """The accepted group without the sites its peak does not need, or ``None``.

    The all-together candidate brings riders (on RandWire, BN folds that no
    peak step needs). Each site is dropped in turn, last first, where the
    accepted schedule carried over to the smaller group's graph
    (:func:`carried_order`) still reaches the accepted peak; that is a
    simulation, not a search, so a rider costs one rewrite and one import.
    The returned candidate's ``hint`` reaches the accepted peak.

    Complexity: O(|group|) rewrites, imports and simulations.
    """
    kept = list(accepted.sites)
    best = accepted
    order = result.op_order
    for site in reversed(accepted.sites):
        if len(kept) == 1:
            break
        fewer = prepare([s for s in kept if s != site])
        if fewer is None:
            continue
        hint = carried_order(best.model.problem, order, fewer.model.problem)
        if simulate(fewer.model.problem, hint, inplace=inplace).peak_bytes <= result.peak_bytes:
            kept.remove(site)
            best, order = replace(fewer, hint=hint), hint
    return None if best is accepted else best


def carried_order(
    old: Problem, order: tuple[int, ...] | list[int], new: Problem
) -> tuple[int, ...]:
    """``order`` of ``old`` carried over to the rewritten ``new``: a valid order of ``new``.

    An op keeps its place when ``new`` has an op of its name (rewrites keep
    the names downstream of a site); an op new to ``new`` ranks just after
    the latest of its predecessors. Ops are then listed ready-first by rank,
    so the result is topological whatever the rewrite did. The exact engine
    takes it as a hint: a candidate graph is never judged worse than the
    current schedule carried over.

    Complexity: O((n + e) log n).
    """
    place = {old.op_names[v]: i for i, v in enumerate(order)}
    rank: list[float] = [0.0] * new.num_ops
    for v in new.topological_order():
        name = new.op_names[v]
        if name in place:
            rank[v] = place[name]
        else:
            rank[v] = max((rank[u] for u in new.preds[v]), default=-1.0) + 0.5
    waiting = [len(p) for p in new.preds]
    ready = [(rank[v], v) for v in range(new.num_ops) if not waiting[v]]
    heapq.heapify(ready)
    result: list[int] = []
    while ready:
        _, v = heapq.heappop(ready)
        result.append(v)
        for s in new.succs[v]:
            waiting[s] -= 1
            if not waiting[s]:
                heapq.heappush(ready, (rank[s], s))
    return tuple(result)


def _progress(started: float, text: str) -> None:
    """A progress line on stderr, once the search has run :data:`PROGRESS_AFTER` seconds."""
    elapsed = time.perf_counter() - started
    if elapsed >= PROGRESS_AFTER:
        print(f"rewrite: {elapsed:6.1f}s  {text}", file=sys.stderr, flush=True)


def rewrite_for_memory(
    model: Model,
    method: str = "auto",
    *,
    inplace: bool = False,
    time_limit: float | None = None,
    max_rounds: int = 100,
    baseline: ScheduleResult | None = None,
    split_outputs: bool = True,
    progress: bool = False,
) -> RewriteResult:
    """Rewrite ``model`` where it lowers the peak found by ``method``.

    Args:
        model: The loaded model (external weights may be missing).
        method: The scheduling method that judges each candidate graph.
        inplace: Judge under the in-place memory model instead of the default.
        time_limit: Seconds per schedule (default :data:`TRIAL_TIME_LIMIT`).
        max_rounds: At most this many rewrites are accepted.
        baseline: A schedule of ``model`` already found under the same memory
            model (say, by a longer search); the first rewrite must beat its
            peak, so a rewrite is never credited with what a longer search of
            the unchanged graph finds. Default: schedule ``model`` here.
        split_outputs: Also try splitting a conv by output channels where
            its chain reaches a conv to partition (:func:`split_sites`;
            DARTS' ImageNet stem). Tried only when no other rewrite is
            accepted in a round.
        progress: Print a line per trial to stderr once the search has run
            :data:`PROGRESS_AFTER` seconds (and the baseline schedule's own
            progress).

    Raises:
        UsageError: ``baseline`` was made under the other memory model, or
            ``model`` is not an ONNX model.

    Returns:
        The rewritten model and the peaks before and after under both models.
    """
    if not isinstance(model, OnnxModel):
        raise UsageError(
            f"rewriting works on ONNX graphs (onnx-ir); {model.path.name} is a "
            f"{model.format_name} model: schedule it without --rewrite"
        )
    started = time.perf_counter()
    limit = TRIAL_TIME_LIMIT if time_limit is None else time_limit
    options = ScheduleOptions(inplace=inplace, time_limit=limit)
    if baseline is not None and baseline.inplace != inplace:
        raise UsageError("the baseline schedule uses the other memory model")
    before = (
        baseline
        if baseline is not None
        else schedule(model.problem, method, replace(options, progress=progress))
    )
    current_proto, current_model, current = _name_nodes(model.proto), model, before
    applied: list[Rewrite] = []
    trials = 0
    for round_no in range(1, max_rounds + 1):
        problem = current_model.problem
        names = problem.tensor_names
        steps = [
            {names[t] for t in step}
            for step in peak_step_live_sets(problem, current.op_order, inplace=inplace)
        ]
        sites, group_only = _sites(to_ir(current_proto), steps)
        rank = term_ranks(problem, current.op_order)

        prepare = functools.partial(
            _prepare, current_proto, current_model, current.op_order, rank, inplace
        )
        # Each site alone, and all together for peaks that tie at several steps;
        # the most promising first: by the peak of the current order carried over.
        solo = [[site] for site in sites if site not in group_only]
        groups = solo + ([sites] if len(sites) > 1 or not solo else [])
        ready = sorted(
            (c for c in map(prepare, groups) if c is not None), key=lambda c: c.carried_peak
        )
        candidates: Iterable[_Candidate | None] = ready
        if split_outputs:  # found only if nothing before them is accepted
            splits = _solo_splits(current_proto, problem, current.op_order, inplace)
            candidates = itertools.chain(candidates, map(prepare, splits))
        accepted = False
        for c in candidates:
            if c is None:
                continue
            trials += 1
            # Only a lower peak counts: the search may stop once none can exist;
            # and it starts from the current schedule, carried over.
            trial = replace(options, give_up_at=current.peak_bytes, hint=c.hint)
            result = schedule(c.model.problem, method, trial)
            better = result.peak_bytes < current.peak_bytes
            if better:
                pruned = _prune(prepare, c, result, inplace) if len(c.sites) > 1 else None
                if pruned is not None:  # its hint reaches result's peak (a heuristic
                    # method ignores hints: then keep the whole group if it does worse)
                    again = schedule(
                        pruned.model.problem, method, replace(options, hint=pruned.hint)
                    )
                    if again.peak_bytes <= result.peak_bytes:
                        c, result = pruned, again
            if progress:
                what = ", ".join(f"{k} x{n}" for k, n in count_passes(c.rewrites).items())
                _progress(
                    started,
                    f"round {round_no}  trial {trials}  {what}: {result.peak_bytes:,} vs "
                    f"{current.peak_bytes:,}  {'kept' if better else 'no gain'}",
                )
            if better:
                current_proto, current_model, current = c.proto, c.model, result
                applied.extend(c.rewrites)
                accepted = True
                break
        if not accepted:
            break
    if not applied:
        current_proto, current_model = model.proto, model
    if progress:
        other_model = "default" if inplace else "in-place"
        _progress(
            started,
            f"{len(applied)} rewrite(s) kept after {trials} trial(s); "
            f"peaks under the {other_model} model next",
        )
    other = ScheduleOptions(inplace=not inplace, time_limit=limit)
    other_before = schedule(model.problem, method, other)
    other_after = schedule(current_model.problem, method, other) if applied else other_before
    return RewriteResult(
        proto=current_proto,
        model=current_model,
        rewrites=applied,
        before=before,
        after=current,
        inplace=inplace,
        other_before=other_before,
        other_after=other_after,
        trials=trials,
        seconds=time.perf_counter() - started,
    )
