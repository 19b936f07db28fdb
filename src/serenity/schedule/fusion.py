"""Graph fusion: merge chains of ops that some optimal order runs back to back.

After Zhong et al., "Memory-aware Scheduling for Complex Wired Networks with
Iterative Graph Optimization" (ICCAD 2023): simplify the graph while keeping
its optimum, then schedule the smaller graph. The rules and proofs below are
ours, written for serenity's memory model (``docs/memory-model.md``; default model only,
not the in-place option).

Notation. ``M(S)`` is the memory held after the ops of a downset ``S`` ran (a
function of the set alone); op ``x`` run from ``S`` has the step footprint
``M(S) + out(x)``, ``out(x)`` the bytes of all its outputs. The peak of an
order is ``max(M({}), max over steps)``.

**The chain.** ``v`` is ``u``'s only successor and ``u`` is ``v``'s only
predecessor. In any order the ops ``X`` between ``u`` and ``v`` are neither
descendants of ``u`` (they all lie behind ``v``) nor ancestors of ``v`` (those
are ``u`` and ``u``'s ancestors), so ``v`` may move up to ``u`` or ``u`` down
to ``v``. For the pair, let

* ``a`` = bytes of ``u``'s outputs, ``a_live`` = those some op reads or that
  are graph outputs, ``g`` = those that are graph outputs, ``I = a_live - g``
  (read by ``v`` only, freed when ``v`` runs);
* ``b`` = bytes of ``v``'s outputs, ``b_live`` likewise;
* ``F`` = bytes of ``u``'s inputs freed by ``u``: inputs that are not graph
  outputs, not read by ``v``, whose other readers already ran. ``F_min`` counts
  those ``u`` alone reads (always freed), ``F_max`` all of them; ``F`` is
  *static* when ``F_min == F_max``.

Rule A (hoist ``v``), when ``b_live <= I`` and ``a_live - F_min + b <= a``:
moving ``v`` to right after ``u`` changes the memory at every step in ``X`` by
``b_live - freed_v <= b_live - I <= 0`` (``v`` frees at least ``I``), and
``v``'s new step ``M(S) + a_live - F + b`` is at most ``u``'s step
``M(S) + a``; all later steps see the same executed sets. So the peak does not
rise, and the pair's footprint is ``a`` above ``M(S)``, whatever ``S`` is.

Rule B (delay ``u``), when ``F`` is static, ``a_live >= F`` and
``a - a_live + F <= b``: moving ``u`` to right before ``v`` lowers the memory
at every step in ``X`` by ``a_live - F >= 0`` (``F`` static: no op of ``X``
reads an input ``u`` frees), and ``u``'s new step
``M(T) + a = M(T + u) - a_live + F + a`` is at most ``v``'s step
``M(T + u) + b``. The pair's footprint is ``a_live - F + b`` above ``M(S)``.

**The fused op.** ``w`` replaces ``u`` and ``v``: it reads the inputs of both
(less ``u``'s outputs) and writes ``v``'s outputs, ``u``'s graph outputs and
one *phantom* tensor nobody reads, of ``P = step - b - g`` bytes, where
``step`` is the pair's footprint above (``a`` under rule A,
``a_live - F + b`` under rule B). The fusion is made only when ``P >= 0``; the
phantom is dead, so it is freed right after ``w``.

**Theorem.** The fused problem's optimum equals the original's, and expanding
any fused order (each ``w`` into ``u v``) gives an original order with the same
peak. *Proof.* Downsets of the fused graph are the downsets of the original
that hold both or neither of ``u`` and ``v``. For such a set ``S``,
``M_fused(S) = M(S)``: ``u``'s other outputs are dead or read only by ``v`` and
so dead too in both problems once ``v`` ran; the phantom is never live between
steps; every other tensor has the same producer set and reader set up to
``u, v -> w``. Steps of ops other than ``w`` are therefore equal, and ``w``'s
step ``M(S) + b + g + P = M(S) + step`` equals ``max(M(S) + a, M(S + u) + b)``,
the larger of the two original steps, by the rule's inequality (rule A:
``M(S + u) + b <= M(S) + a``; rule B: ``M(S) + a <= M(S + u) + b`` with ``F``
static). So expanding preserves the peak, and ``OPT <= OPT_fused``. Conversely
the rule's exchange turns an optimal original order into one, no worse, that
runs ``u v`` back to back (the moves never cross other ops' dependencies and
the steps of all other ops do not rise), which is a fused order of the same
peak: ``OPT_fused <= OPT``. The fused problem is again a :class:`Problem`
under the same model, so fusions compose: iterating to a fixed point keeps the
optimum (induction on the number of fusions). QED.

The rules are static: they hold for every state, so fusion is a pre-pass, not
a search move. The exact engine's free moves (:mod:`serenity.schedule.exact`)
are the dynamic cousin of rule A.

Complexity: O((n + e) * d) per round for in/out degree d; rounds until
nothing fuses (each fusion removes one op).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from serenity.ir import Problem


@dataclass(frozen=True)
class Fusion:
    """A fused problem and the way back to the original.

    Attributes:
        problem: The fused :class:`Problem` (default memory model).
        groups: Per fused op, the original op ids it runs, in order.
        original: The problem that was fused.
        rules: How many fusions each rule made (``{"A": .., "B": ..}``).
    """

    problem: Problem
    groups: tuple[tuple[int, ...], ...]
    original: Problem
    rules: dict[str, int] = field(default_factory=dict)

    @property
    def ops_before(self) -> int:
        return self.original.num_ops

    @property
    def ops_after(self) -> int:
        return self.problem.num_ops

    def expand(self, order: Sequence[int]) -> list[int]:
        """An order of the fused ops -> the order of the original ops it stands for."""
        return [v for w in order for v in self.groups[w]]

    def contract(self, order: Sequence[int]) -> list[int] | None:
        """An original order -> the fused order, or ``None`` when it splits a group."""
        first = {g[0]: w for w, g in enumerate(self.groups)}
        out, i = [], 0
        while i < len(order):
            w = first.get(order[i])
            if w is None or tuple(order[i : i + len(self.groups[w])]) != self.groups[w]:
                return None
            out.append(w)
            i += len(self.groups[w])
        return out


def fuse(problem: Problem) -> Fusion:
    """Fuse chains by rules A and B (module docstring) until nothing fuses.

    The result's optimum under the default memory model equals the
    original's; :meth:`Fusion.expand` maps orders back. In-place hints are not
    carried over: the fused problem is for the default model only.

    Complexity: O(n * (n + e)) worst case; near-linear on CNNs.
    """
    sizes = list(problem.tensor_sizes)
    is_go = set(problem.graph_outputs)
    order = problem.topological_order()
    rank = {v: i for i, v in enumerate(order)}
    # Mutable graph: op -> inputs / outputs, tensor -> producer / readers (dicts keep order).
    ins: dict[int, list[int]] = {v: list(problem.op_inputs[v]) for v in order}
    outs: dict[int, list[int]] = {v: list(problem.op_outputs[v]) for v in order}
    readers: dict[int, list[int]] = {t: list(c) for t, c in enumerate(problem.consumers)}
    producer: dict[int, int] = {t: p for t, p in enumerate(problem.producer)}
    groups: dict[int, list[int]] = {v: [v] for v in order}
    rules = {"A": 0, "B": 0}

    def succs(u: int) -> set[int]:
        return {r for t in outs[u] for r in readers[t]}

    def preds(v: int) -> set[int]:
        return {producer[t] for t in ins[v] if producer[t] != -1}

    def pair_step(u: int, v: int) -> tuple[str, int] | None:
        """The rule that fuses ``u -> v`` and the pair's footprint, or None."""
        a = sum(sizes[t] for t in outs[u])
        a_live = sum(sizes[t] for t in outs[u] if readers[t] or t in is_go)
        g = sum(sizes[t] for t in outs[u] if t in is_go)
        internal = a_live - g
        b = sum(sizes[t] for t in outs[v])
        b_live = sum(sizes[t] for t in outs[v] if readers[t] or t in is_go)
        v_reads = set(ins[v])
        f_min = f_max = 0
        for t in ins[u]:
            if t in is_go or t in v_reads:
                continue
            f_max += sizes[t]
            if readers[t] == [u]:
                f_min += sizes[t]
        found: tuple[str, int] | None = None
        if b_live <= internal and a_live - f_min + b <= a:
            found = ("A", a)
        elif f_min == f_max and a_live >= f_min and a - a_live + f_min <= b:
            found = ("B", a_live - f_min + b)
        if found is None or found[1] - b - g < 0:
            return None
        return found

    worklist = list(order)
    while worklist:
        u = worklist.pop(0)
        if u not in groups:
            continue
        nxt = succs(u)
        if len(nxt) != 1:
            continue
        (v,) = nxt
        if preds(v) != {u}:
            continue
        found = pair_step(u, v)
        if found is None:
            continue
        rule, step = found
        rules[rule] += 1
        g_outs = [t for t in outs[u] if t in is_go]
        b = sum(sizes[t] for t in outs[v])
        phantom = step - b - sum(sizes[t] for t in g_outs)
        u_outs = set(outs[u])
        new_ins = list(dict.fromkeys([*ins[u], *(t for t in ins[v] if t not in u_outs)]))
        new_outs = [*outs[v], *g_outs]
        if phantom > 0:
            sizes.append(phantom)
            pt = len(sizes) - 1
            readers[pt], producer[pt] = [], u
            new_outs.append(pt)
        # u becomes the fused op w (it keeps u's id and place in the topological order).
        for t in ins[u]:
            readers[t] = [r for r in readers[t] if r != u]
        for t in ins[v]:
            readers[t] = [r for r in readers[t] if r != v]
        for t in outs[u]:
            if t not in is_go:
                del readers[t], producer[t]  # internal: gone from the fused graph
        for t in new_ins:
            readers[t].append(u)
            readers[t].sort(key=rank.__getitem__)
        for t in new_outs:
            producer[t] = u
            if t in is_go and t in u_outs:
                readers[t] = [r for r in readers[t] if r != v]
        ins[u], outs[u] = new_ins, new_outs
        groups[u] += groups.pop(v)
        del ins[v], outs[v]
        # u may now fuse with its new successor; its predecessors may fuse with it.
        worklist[:0] = [*sorted(preds(u), key=rank.__getitem__), u]

    return _build(problem, groups, ins, outs, sizes, rank, rules)


def _build(
    problem: Problem,
    groups: dict[int, list[int]],
    ins: dict[int, list[int]],
    outs: dict[int, list[int]],
    sizes: list[int],
    rank: dict[int, int],
    rules: dict[str, int],
) -> Fusion:
    """Renumber the surviving ops (topological order) and tensors (first use)."""
    fused_ops = sorted(groups, key=rank.__getitem__)
    tid: dict[int, int] = {}

    def t_id(t: int) -> int:
        return tid.setdefault(t, len(tid))

    for t in problem.graph_inputs:
        t_id(t)
    new_ins = [[t_id(t) for t in ins[w]] for w in fused_ops]
    new_outs = [[t_id(t) for t in outs[w]] for w in fused_ops]
    for t in problem.graph_outputs:
        t_id(t)  # a graph input that is also a graph output is already there
    old = sorted(tid, key=tid.__getitem__)
    n0 = problem.num_tensors
    names = [problem.tensor_names[t] if t < n0 else f"phantom:{t - n0}" for t in old]
    taken = set(problem.op_names)
    op_names = []
    for w in fused_ops:
        g = groups[w]
        name = problem.op_names[w] if len(g) == 1 else f"{problem.op_names[g[0]]}(+{len(g) - 1})"
        while len(g) > 1 and name in taken:
            name += "'"
        taken.add(name)
        op_names.append(name)
    fused = Problem(
        op_names,
        [sizes[t] for t in old],
        new_ins,
        new_outs,
        [tid[t] for t in problem.graph_inputs],
        [tid[t] for t in problem.graph_outputs],
        tensor_names=names,
        op_types=[problem.op_types[w] if len(groups[w]) == 1 else "Fused" for w in fused_ops],
        name=problem.name,
    )
    return Fusion(fused, tuple(tuple(groups[w]) for w in fused_ops), problem, rules)
