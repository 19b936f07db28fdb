"""Off-chip traffic of an order under a small on-chip memory (SERENITY's second result).

The model (``docs/offchip.md`` states it with the reasoning). An on-chip memory
of ``S`` bytes holds whole tensors; everything else lives in off-chip memory.
For a fixed topological order of a :class:`~serenity.ir.Problem`:

* **Start.** The graph inputs are the outputs of a virtual step before the
  first op, placed on chip by the caller. If together they exceed ``S`` that
  step *streams* (below): all of them go off chip.
* **An op that fits** (its distinct inputs plus outputs, ``W(v)``, are at most
  ``S``) runs with all of them on chip. Inputs not on chip are read back
  (``size`` bytes each); room for them and for the outputs is made by evicting
  other on-chip tensors, chosen by the *policy*. Evicting a tensor that has no
  off-chip copy yet writes it (``size`` bytes) and gives it one; tensors are
  never modified after they are produced, so a later eviction of the same
  tensor is free. The running op's inputs cannot be evicted.
* **An op that does not fit** (``W(v) > S``) streams: it reads each input that
  is not on chip from off-chip memory (``size`` bytes, without bringing it on
  chip) and writes every output straight off chip (``size`` bytes; outputs are
  not kept on chip). On-chip inputs are read where they are.
* After each op, tensors no later op reads (and that are not graph outputs)
  are dropped from both memories, as in the peak model
  (:mod:`serenity.memory.model`). Graph outputs on chip at the end stay there.
* **Traffic** = bytes written off chip + bytes read back.

Evictions happen only when room is needed (evicting earlier never saves a
byte: the tensor might die first). Two policies are implemented:

* ``belady``: evict the tensor whose next read is furthest in the order
  (never read again first); ties: a tensor that already has an off-chip copy
  (free to evict), then the larger one, then the smallest id. Belady's rule is
  optimal for equal-sized pages without write-backs; here sizes differ and
  writes cost, so it is **not** optimal in general: :func:`min_traffic`
  computes the least traffic any policy reaches, for small graphs.
* ``lru``: evict the least recently used tensor (produced or read), ties by
  the smallest id.

Zero-sized tensors are never evicted. With every tensor size positive,
traffic is zero if and only if the order's peak (the default memory model)
is at most ``S``: the live set is then always on chip; otherwise, at the first
step over ``S`` some live tensor is off chip, and every way there costs a write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from serenity.errors import UsageError
from serenity.ir import Problem

#: Eviction policies by name.
POLICIES: tuple[str, ...] = ("belady", "lru")
DEFAULT_POLICY = "belady"

_NEVER = 1 << 62  # "not read again", later than every position


@dataclass(frozen=True)
class Traffic:
    """The off-chip traffic of one order on one on-chip size under one policy.

    Attributes:
        onchip_bytes: ``S``.
        policy: The eviction policy (:data:`POLICIES`).
        read_bytes: Bytes read back from off-chip memory.
        write_bytes: Bytes written to off-chip memory.
        tensor_reads: Per tensor id, bytes read back.
        tensor_writes: Per tensor id, bytes written.
        step_bytes: Per step of the order, bytes moved while (and to make room
            for) that op; the start (graph inputs streamed) is not included,
            see ``start_bytes``.
        start_bytes: Bytes written before the first op (graph inputs that do
            not fit together).
        streamed: Steps (indices into the order) whose op does not fit in ``S``.
    """

    onchip_bytes: int
    policy: str
    read_bytes: int
    write_bytes: int
    tensor_reads: tuple[int, ...]
    tensor_writes: tuple[int, ...]
    step_bytes: tuple[int, ...]
    start_bytes: int
    streamed: tuple[int, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes written plus bytes read."""
        return self.read_bytes + self.write_bytes


def working_set(problem: Problem, v: int) -> int:
    """Bytes op ``v`` needs on chip to run: its distinct inputs plus its outputs."""
    sizes = problem.tensor_sizes
    return sum(sizes[t] for t in problem.op_inputs[v]) + sum(
        sizes[t] for t in problem.op_outputs[v]
    )


def _uses(problem: Problem, order: Sequence[int]) -> list[list[int]]:
    """Per tensor, the positions in ``order`` of the ops that read it, ascending."""
    uses: list[list[int]] = [[] for _ in range(problem.num_tensors)]
    for i, v in enumerate(order):
        for t in problem.op_inputs[v]:
            uses[t].append(i)
    return uses


def simulate_traffic(
    problem: Problem, order: Sequence[int], onchip_bytes: int, policy: str = DEFAULT_POLICY
) -> Traffic:
    """Simulate ``order`` on ``onchip_bytes`` of on-chip memory under ``policy``.

    Args:
        problem: The graph.
        order: A topological order of all ops (checked).
        onchip_bytes: The on-chip capacity ``S`` (``>= 0``).
        policy: ``"belady"`` or ``"lru"`` (see the module docstring).

    Returns:
        The :class:`Traffic`: totals, per tensor and per step.

    Raises:
        ValueError: ``order`` is not a topological order of ``problem``.
        UsageError: unknown policy or a negative size.

    Complexity: O(n + e) plus, per eviction, a scan of the on-chip tensors
    (O(n + e + k * r) for k evictions with r tensors on chip).
    """
    if not problem.is_topological(order):
        raise ValueError("order is not a topological order of all ops")
    if policy not in POLICIES:
        raise UsageError(f"unknown policy '{policy}' (choose from: {', '.join(POLICIES)})")
    if onchip_bytes < 0:
        raise UsageError(f"on-chip size must be >= 0 bytes, got {onchip_bytes}")
    return _simulate(problem, order, onchip_bytes, policy)


def _simulate(problem: Problem, order: Sequence[int], cap: int, policy: str) -> Traffic:
    """:func:`simulate_traffic` without the argument checks (the search calls it often)."""
    sizes = problem.tensor_sizes
    is_out = problem.is_graph_output
    m = problem.num_tensors
    uses = _uses(problem, order)
    next_ptr = [0] * m  # uses[t][next_ptr[t]] is the next read of t
    last_use = [-1] * m  # LRU: the last step t was produced or read (-1: the start)
    remaining = [len(c) for c in problem.consumers]
    on_chip: dict[int, None] = {}  # insertion-ordered: deterministic scans
    has_copy = [False] * m
    reads, writes = [0] * m, [0] * m
    used = 0
    belady = policy == "belady"

    start = 0
    if sum(sizes[t] for t in problem.graph_inputs) <= cap:
        for t in problem.graph_inputs:
            on_chip[t] = None
            used += sizes[t]
    else:
        for t in problem.graph_inputs:
            writes[t] += sizes[t]
            start += sizes[t]
            has_copy[t] = True

    def victim(pinned: tuple[int, ...]) -> int:
        best, best_key = -1, None
        for t in on_chip:
            if sizes[t] == 0 or t in pinned:
                continue
            if belady:
                p = next_ptr[t]
                nxt = uses[t][p] if p < len(uses[t]) else _NEVER
                key: tuple[int, ...] = (nxt, has_copy[t], sizes[t], -t)
            else:
                key = (-last_use[t], -t)
            if best_key is None or key > best_key:
                best, best_key = t, key
        return best

    step_bytes: list[int] = []
    streamed: list[int] = []
    for i, v in enumerate(order):
        ins, outs = problem.op_inputs[v], problem.op_outputs[v]
        moved = 0
        if working_set(problem, v) <= cap:
            need = sum(sizes[t] for t in ins if t not in on_chip) + sum(sizes[t] for t in outs)
            while used + need > cap:
                t = victim(ins)
                if t < 0:  # cannot happen: W(v) <= cap leaves an evictable tensor
                    raise RuntimeError("no tensor to evict although the op fits")
                del on_chip[t]
                used -= sizes[t]
                if not has_copy[t]:
                    has_copy[t] = True
                    writes[t] += sizes[t]
                    moved += sizes[t]
            for t in ins:
                if t not in on_chip:
                    reads[t] += sizes[t]
                    moved += sizes[t]
                    on_chip[t] = None
                    used += sizes[t]
            for t in outs:
                on_chip[t] = None
                used += sizes[t]
        else:
            streamed.append(i)
            for t in ins:
                if t not in on_chip:
                    reads[t] += sizes[t]
                    moved += sizes[t]
            for t in outs:
                writes[t] += sizes[t]
                moved += sizes[t]
                has_copy[t] = True
        for t in ins:
            remaining[t] -= 1
            next_ptr[t] += 1
            last_use[t] = i
        for t in outs:
            last_use[t] = i
        for t in (*ins, *outs):
            if remaining[t] == 0 and not is_out[t] and t in on_chip:
                del on_chip[t]
                used -= sizes[t]
        step_bytes.append(moved)
    return Traffic(
        onchip_bytes=cap,
        policy=policy,
        read_bytes=sum(reads),
        write_bytes=sum(writes),
        tensor_reads=tuple(reads),
        tensor_writes=tuple(writes),
        step_bytes=tuple(step_bytes),
        start_bytes=start,
        streamed=tuple(streamed),
    )


def compulsory_traffic(problem: Problem, onchip_bytes: int) -> int:
    """A lower bound on the traffic of *every* order under *every* policy.

    Whether an op streams depends only on its working set, not on the order:
    every output of a streaming op is written (and read back at least once if
    any op reads it: it is never on chip before); the same holds for the graph
    inputs when they do not fit together.

    Complexity: O(n + e).
    """
    sizes = problem.tensor_sizes
    total = 0

    def off_chip(t: int) -> int:
        return sizes[t] * (2 if problem.consumers[t] else 1)

    if sum(sizes[t] for t in problem.graph_inputs) > onchip_bytes:
        total += sum(off_chip(t) for t in problem.graph_inputs)
    for v in range(problem.num_ops):
        if working_set(problem, v) > onchip_bytes:
            total += sum(off_chip(t) for t in problem.op_outputs[v])
    return total


def min_traffic(problem: Problem, order: Sequence[int], onchip_bytes: int) -> int:
    """The least traffic *any* eviction policy reaches on ``order`` (exact, exponential).

    Dynamic programming over (step, tensors on chip, tensors with an off-chip
    copy): at each op that fits, every set of evictable tensors whose removal
    makes room is tried (not only minimal ones). Use it on small graphs
    (a dozen tensors): it measures how far :data:`POLICIES` are from the
    optimum on a fixed order.

    Raises:
        ValueError: ``order`` is not a topological order of ``problem``.

    Complexity: O(n * 4^m * 2^m) in the worst case for m tensors.
    """
    if not problem.is_topological(order):
        raise ValueError("order is not a topological order of all ops")
    sizes = problem.tensor_sizes
    cap = onchip_bytes
    order = tuple(order)
    alive_after: list[frozenset[int]] = []  # tensors still needed after each step
    remaining = [len(c) for c in problem.consumers]
    alive = set(problem.graph_inputs)
    for v in order:
        ins, outs = problem.op_inputs[v], problem.op_outputs[v]
        alive |= set(outs)
        for t in ins:
            remaining[t] -= 1
        # As in the simulator: only the op's own tensors can die at it (a graph
        # input nothing reads stays live throughout).
        alive -= {t for t in (*ins, *outs) if remaining[t] == 0 and not problem.is_graph_output[t]}
        alive_after.append(frozenset(alive))

    def size(ts: frozenset[int] | set[int]) -> int:
        return sum(sizes[t] for t in ts)

    @cache
    def best(i: int, chip: frozenset[int], copy: frozenset[int]) -> int:
        if i == len(order):
            return 0
        v = order[i]
        ins, outs = frozenset(problem.op_inputs[v]), frozenset(problem.op_outputs[v])
        keep = alive_after[i]
        if size(ins | outs) > cap:
            cost = size(ins - chip) + size(outs)
            return cost + best(i + 1, chip & keep, (copy | outs) & keep)
        loads = ins - chip
        room = size(chip) + size(loads) + size(outs) - cap
        candidates = sorted(chip - ins)
        result = _NEVER
        for mask in range(1 << len(candidates)):
            out = frozenset(t for k, t in enumerate(candidates) if mask >> k & 1)
            if size(out) < room:
                continue
            cost = size(out - copy) + size(loads)
            chip2 = ((chip - out) | loads | outs) & keep
            result = min(result, cost + best(i + 1, chip2, (copy | out) & keep))
        return result

    inputs = frozenset(problem.graph_inputs)
    if size(inputs) <= cap:
        return best(0, inputs, frozenset())
    return size(inputs) + best(0, frozenset(), inputs)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "ki": 1024}
_UNITS |= {"m": 1024**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


def parse_size(text: str) -> int:
    """Bytes from ``"65536"``, ``"64KiB"``, ``"64K"`` (both 1024-based), ``"64KB"`` (1000-based), MiB/MB, GiB/GB.

    Raises:
        UsageError: not a size.

    Example:
        >>> parse_size("64KiB"), parse_size("32K"), parse_size("1MB")
        (65536, 32768, 1000000)
    """
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"'{text}' is not a size (examples: 65536, 64KiB, 1MiB)")
    number, unit = match.groups()
    value = float(number) * _UNITS[(unit or "").lower()]
    if value != int(value):
        raise UsageError(f"'{text}' is not a whole number of bytes")
    return int(value)


def parse_sizes(texts: Sequence[str]) -> list[int]:
    """Sizes from a list of items, each possibly comma-separated; ascending, distinct."""
    found = [parse_size(x) for text in texts for x in text.split(",") if x.strip()]
    if not found:
        raise UsageError("give at least one on-chip size (e.g. 64KiB)")
    return sorted(set(found))


def format_size(n: int) -> str:
    """``65536`` -> ``"64KiB"``; sizes that are not whole KiB stay in bytes."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"
