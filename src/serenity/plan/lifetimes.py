"""Tensor lifetimes of a schedule, and the buffers an arena must hold.

Steps are numbered by position in the order: step ``i`` is the ``i``-th op of
an order of ``n`` ops, and step ``-1`` is the initial state (graph inputs only).
Under serenity's memory model (``docs/memory-model.md``, :mod:`serenity.memory`):

* a graph input lives from ``-1`` to its last consumer's step, or to ``n - 1``
  when nothing reads it or it is also a graph output;
* an op output made at step ``i`` lives from ``i`` to its last consumer's step;
  ``i..i`` when nobody reads it; ``i..n - 1`` when it is a graph output.

So at every step the bytes of the tensors whose interval contains it equal the
footprint :func:`serenity.memory.simulate` reports (``initial_bytes`` at step
``-1``, ``step_bytes[i]`` at step ``i``), and their maximum is the peak.

With the in-place option an op writes its output over the input it reuses
(:attr:`serenity.memory.Timeline.reused`): the two tensors must share one
address, so they become one :class:`Buffer` (the union of their intervals, the
larger size). Chains of in-place ops merge transitively. The per-step sums
still equal the simulated footprints because an in-place output has the size
of the input it reuses (how :mod:`serenity.io` fills ``inplace_inputs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from serenity.ir import Problem
from serenity.memory import simulate


@dataclass(frozen=True)
class Buffer:
    """One block of the arena: a size and the closed step interval it is live.

    Attributes:
        size: Bytes (before alignment).
        first_step: First step it is live (``-1``: the initial state).
        last_step: Last step it is live, inclusive.
        tensors: Tensor ids stored in it, ascending (several only in-place).
        name: The tensor names joined with ``+``.
    """

    size: int
    first_step: int
    last_step: int
    tensors: tuple[int, ...] = ()
    name: str = ""

    def overlaps_in_time(self, other: Buffer) -> bool:
        """Whether some step has both buffers live."""
        return self.first_step <= other.last_step and other.first_step <= self.last_step


def align_up(n: int, alignment: int) -> int:
    """``n`` rounded up to a multiple of ``alignment`` (``>= 1``)."""
    return -(-n // alignment) * alignment


def tensor_lifetimes(problem: Problem, order: Sequence[int]) -> list[tuple[int, int]]:
    """The closed ``(first_step, last_step)`` interval of every tensor under ``order``.

    Args:
        problem: The graph.
        order: A topological order of all its ops (not checked here).

    Returns:
        One interval per tensor id.

    Complexity: O(n + e).
    """
    n = len(order)
    step = [0] * problem.num_ops
    for i, v in enumerate(order):
        step[v] = i
    intervals: list[tuple[int, int]] = []
    for t in range(problem.num_tensors):
        prod = problem.producer[t]
        first = -1 if prod == -1 else step[prod]
        consumers = problem.consumers[t]
        if problem.is_graph_output[t]:
            last = n - 1
        elif consumers:
            last = max(step[c] for c in consumers)
        else:  # a dead output lives while its producer runs; an unread input throughout
            last = first if prod != -1 else n - 1
        intervals.append((first, max(first, last)))
    return intervals


def lifetimes(problem: Problem, order: Sequence[int], *, inplace: bool = False) -> list[Buffer]:
    """The buffers a schedule needs, ordered by their smallest tensor id.

    Without ``inplace`` there is one buffer per tensor (tensor ``t`` is buffer
    ``t``). With it, every output that overwrites an input in place joins that
    input's buffer (union-find over the reuse pairs of
    :func:`serenity.memory.simulate`).

    Args:
        problem: The graph.
        order: A topological order of all ops.
        inplace: The in-place memory model.

    Returns:
        The buffers; tensor ids inside each are ascending.

    Raises:
        ValueError: ``order`` is not a topological order of ``problem``.

    Complexity: O(n + e + m α(m)) for ``m`` tensors.
    """
    timeline = simulate(problem, order, inplace=inplace)
    intervals = tensor_lifetimes(problem, order)
    m = problem.num_tensors
    parent = list(range(m))

    def root(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for i, t in enumerate(timeline.reused):
        if t >= 0:
            # The reusing op has exactly one output (see Problem.inplace_inputs).
            a, b = root(t), root(problem.op_outputs[order[i]][0])
            parent[max(a, b)] = min(a, b)  # the smaller id stays the root: deterministic
    groups: dict[int, list[int]] = {}
    for t in range(m):
        groups.setdefault(root(t), []).append(t)
    buffers = []
    for members in groups.values():  # dict keeps first-seen (= smallest id) order
        buffers.append(
            Buffer(
                size=max(problem.tensor_sizes[t] for t in members),
                first_step=min(intervals[t][0] for t in members),
                last_step=max(intervals[t][1] for t in members),
                tensors=tuple(members),
                name="+".join(problem.tensor_names[t] for t in members),
            )
        )
    return buffers


def live_bytes(buffers: Sequence[Buffer], num_steps: int, alignment: int = 1) -> list[int]:
    """Bytes live at every step: entry ``k`` is step ``k - 1`` (so entry 0 is step -1).

    Args:
        buffers: The buffers.
        num_steps: Ops in the order (steps ``-1 .. num_steps - 1``).
        alignment: Sizes are rounded up to it first.

    Complexity: O(b + num_steps) (difference array).
    """
    diff = [0] * (num_steps + 2)
    for b in buffers:
        s = align_up(b.size, alignment)
        diff[b.first_step + 1] += s
        diff[b.last_step + 2] -= s
    out, run = [], 0
    for k in range(num_steps + 1):
        run += diff[k]
        out.append(run)
    return out


def max_live_bytes(buffers: Sequence[Buffer], alignment: int = 1) -> int:
    """The most aligned bytes live at one step: a lower bound on every arena.

    With ``alignment == 1`` this is the schedule's peak.

    Complexity: O(b log b).
    """
    events: list[tuple[int, int]] = []
    for b in buffers:
        s = align_up(b.size, alignment)
        if s:
            events.append((b.first_step, s))
            events.append((b.last_step + 1, -s))
    best = run = 0
    for _, delta in sorted(events):  # a release sorts before an allocation at one step
        run += delta
        best = max(best, run)
    return best
