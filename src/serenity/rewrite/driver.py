"""Apply rewrites where the scheduler says they lower the peak, and nowhere else.

A rewrite changes the graph, so whether it helps is a scheduling question:
splitting a concat that is not live at the peak changes nothing, and an
accumulator can cost more than the concat it replaces. The driver therefore
asks the scheduler (a greedy loop, SERENITY's "rewrite, then schedule"):

1. schedule the graph (``auto``: the exact engine) and simulate the order;
2. collect the *sites*: each rewrite module declares, in its ``DRIVER`` rule
   (:mod:`serenity.rewrite.registry`), the op types its sites start from,
   which such nodes touch a tensor live at the peak (and whether a site is
   tried alone or only with all the others), and how to apply it; the
   driver offers every node to the registered rules and knows no pass by
   name (see each module's ``_driver_match`` for its test: a concat, a Pad
   into its pool, a BN, a scalar Mul, the root of a sum, a conv split);
3. try each site on a fresh copy, and all of them together, in the order of
   the peak the current schedule has when carried over to the copy
   (:func:`carried_order`), then each *fallback* site alone (output splits:
   rules with ``fallback=True``, found only when reached); re-schedule, and
   keep the first whose peak is strictly lower, a group without the sites
   that peak does not need (:func:`_prune`); go back to 1;
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import onnx
import onnx_ir as ir

from serenity.errors import UsageError
from serenity.io.format import Model
from serenity.io.onnx_import import OnnxModel, load_proto
from serenity.ir import Problem
from serenity.memory.model import peak_step_live_sets, simulate
from serenity.rewrite._graph import Editor, Rewrite, count_passes, to_ir, to_proto
from serenity.rewrite.registry import DriverRule, PeakView, driver_rules
from serenity.schedule import DEFAULT_SEARCH_MEMORY, ScheduleOptions, ScheduleResult, schedule

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


#: A site: the rule that found it and the name of the node it starts from.
Site = tuple[str, str]


def _sites(
    model: ir.Model, rules: Sequence[DriverRule], peak: PeakView
) -> tuple[list[Site], set[Site]]:
    """The sites of the non-fallback ``rules`` at ``peak``, in graph order, and those
    of them tried only together with all the others (see :class:`DriverRule`).

    A node is offered to the rules for its op type in registry order and is a
    site of the first that matches it.

    Complexity: O(nodes) plus the rules' own tests.
    """
    editor = Editor(model.graph)
    by_op: dict[str, list[DriverRule]] = {}
    for rule in rules:
        if not rule.fallback:
            for op in sorted(rule.ops):
                by_op.setdefault(op, []).append(rule)
    found: list[Site] = []
    group_only: set[Site] = set()
    for node in model.graph:
        for rule in by_op.get(node.op_type, ()):
            tried = rule.match(editor, node, peak)
            if tried is not None:
                site = (rule.name, node.name or "")
                found.append(site)
                if tried == "group":
                    group_only.add(site)
                break
    return found, group_only


def _fallback_sites(
    proto: onnx.ModelProto, rules: Sequence[DriverRule], peak: PeakView
) -> Iterator[list[Site]]:
    """Each site of the fallback ``rules``, alone, lazily (computed only when reached).

    A rule with ``confirm`` keeps a candidate only if its rewrite on a scratch
    copy of the graph passes the test; the copy is reused while the next
    candidate's node is still in it, so k candidates cost far fewer than k
    conversions.

    Complexity: O(nodes) for the filter, plus one conversion of ``proto``
    and the rewrite per confirmed candidate.
    """
    for rule in rules:
        if not rule.fallback:
            continue
        model = to_ir(proto)
        editor = Editor(model.graph)
        candidates = [
            node.name or ""
            for node in model.graph
            if node.op_type in rule.ops and rule.match(editor, node, peak) is not None
        ]
        scratch: tuple[ir.Model, Editor] | None = None
        for name in candidates:
            if rule.confirm is not None:
                node = None if scratch is None else _find(scratch[0], name)
                if scratch is None or node is None:  # an earlier trial rewrote it: a fresh copy
                    fresh = to_ir(proto)
                    scratch = fresh, Editor(fresh.graph)
                    node = _find(fresh, name)
                if node is None or not rule.confirm(rule.apply(scratch[1], node, peak)):
                    continue
            yield [(rule.name, name)]


def _find(model: ir.Model, name: str) -> ir.Node | None:
    return next((n for n in model.graph if n.name == name), None)


def _apply(
    proto: onnx.ModelProto,
    sites: Sequence[Site],
    rules: Mapping[str, DriverRule],
    peak: PeakView,
) -> tuple[onnx.ModelProto, list[Rewrite]]:
    """Rewrite every site (skipping those an earlier one removed) on a fresh copy."""
    model = to_ir(proto)
    editor = Editor(model.graph)
    rewrites: list[Rewrite] = []
    for rule_name, node_name in sites:
        node = _find(model, node_name)
        if node is not None:
            rewrites += rules[rule_name].apply(editor, node, peak)
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
    sites: tuple[Site, ...]


def _prepare(
    proto: onnx.ModelProto,
    model: OnnxModel,
    rules: Mapping[str, DriverRule],
    peak: PeakView,
    group: list[Site],
) -> _Candidate | None:
    """Rewrite ``group``'s sites on a copy of ``proto``; import it; carry the order over."""
    new_proto, rewrites = _apply(proto, group, rules, peak)
    if not rewrites:
        return None
    candidate = load_proto(new_proto, model.path, model.input_shapes)
    hint = carried_order(model.problem, peak.order, candidate.problem)
    carried = simulate(candidate.problem, hint, inplace=peak.inplace).peak_bytes
    return _Candidate(new_proto, rewrites, candidate, hint, carried, tuple(group))


def _prune(
    prepare: Callable[[list[Site]], _Candidate | None],
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
    search_memory: int | None = DEFAULT_SEARCH_MEMORY,
    threads: int | None = None,
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
            its chain reaches a conv to partition (:mod:`~serenity.rewrite.output_split`;
            DARTS' ImageNet stem). Tried only when no other rewrite is
            accepted in a round.
        progress: Print a line per trial to stderr once the search has run
            :data:`PROGRESS_AFTER` seconds (and the baseline schedule's own
            progress).
        search_memory: Bytes each schedule's search may hold
            (:attr:`~serenity.schedule.ScheduleOptions.search_memory`).
        threads: Searchers of each schedule's search
            (:attr:`~serenity.schedule.ScheduleOptions.threads`).

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
    options = ScheduleOptions(
        inplace=inplace, time_limit=limit, search_memory=search_memory, threads=threads
    )
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
    rules = driver_rules(exclude=() if split_outputs else ("output_split",))
    by_name = {rule.name: rule for rule in rules}
    for round_no in range(1, max_rounds + 1):
        problem = current_model.problem
        names = problem.tensor_names
        steps = [
            {names[t] for t in step}
            for step in peak_step_live_sets(problem, current.op_order, inplace=inplace)
        ]
        peak = PeakView(
            problem, current.op_order, inplace, steps, term_ranks(problem, current.op_order)
        )
        sites, group_only = _sites(to_ir(current_proto), rules, peak)
        prepare = functools.partial(_prepare, current_proto, current_model, by_name, peak)
        # Each site alone, and all together for peaks that tie at several steps;
        # the most promising first: by the peak of the current order carried over.
        solo = [[site] for site in sites if site not in group_only]
        groups = solo + ([sites] if len(sites) > 1 or not solo else [])
        ready = sorted(
            (c for c in map(prepare, groups) if c is not None), key=lambda c: c.carried_peak
        )
        # Fallback sites (output splits) are found only if nothing before them is accepted.
        fallback = _fallback_sites(current_proto, rules, peak)
        candidates: Iterable[_Candidate | None] = itertools.chain(ready, map(prepare, fallback))
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
