"""The memory model every serenity number uses (``docs/memory-model.md``).

Default model, for an order of the ops of a :class:`~serenity.ir.Problem`:

* graph inputs are live from the start until their last consumer has run (one
  that nothing consumes stays live throughout); graph outputs stay live to the
  end; every distinct tensor counts once;
* while op ``v`` runs, the footprint is every live tensor plus all outputs of
  ``v``;
* after ``v``, its inputs that no unexecuted op reads (and that are not graph
  outputs) are freed, and so are its outputs that nobody reads;
* the peak is the maximum of the initial footprint and every step's footprint.

In-place option (off by default, as TFLite and HMCOS do it): an op listed with
``Problem.inplace_inputs`` (element-wise and reshape-like ops whose output has
the size of that input) writes its output over such an input when the input
dies at this op, so the step's footprint does not count the output twice. The
largest eligible input is reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from serenity.ir import Problem


@dataclass(frozen=True)
class Timeline:
    """The result of simulating one order.

    Attributes:
        peak_bytes: Maximum footprint over the initial state and all steps.
        peak_step: Index into the order of the step at the peak, ``-1`` when the
            initial footprint (graph inputs alone) is the peak. The first step
            wins ties.
        initial_bytes: Footprint before the first op (the graph inputs).
        step_bytes: Footprint while each op of the order runs.
        after_bytes: Footprint after each op, once its dead tensors are freed.
        live_at_peak: Tensor ids held at the peak, ascending.
        reused: Per step, the tensor id the op overwrites in place (its output
            takes that input's buffer), or ``-1``; all ``-1`` without the
            in-place option.
    """

    peak_bytes: int
    peak_step: int
    initial_bytes: int
    step_bytes: tuple[int, ...]
    after_bytes: tuple[int, ...]
    live_at_peak: tuple[int, ...]
    reused: tuple[int, ...] = ()


def inplace_saving(problem: Problem, v: int, remaining: Sequence[int]) -> tuple[int, int]:
    """Bytes op ``v`` saves by overwriting an input that dies at it, and that input.

    ``remaining[t]`` is the number of consumers of ``t`` not yet executed
    (``v`` included). Returns ``(0, -1)`` when no input can be reused.
    """
    best, best_t = 0, -1
    sizes, is_out = problem.tensor_sizes, problem.is_graph_output
    for t in problem.inplace_inputs[v]:
        if remaining[t] == 1 and not is_out[t] and sizes[t] > best:
            best, best_t = sizes[t], t
    return best, best_t


def simulate(problem: Problem, order: Sequence[int], *, inplace: bool = False) -> Timeline:
    """Simulate ``order`` under the memory model.

    Args:
        problem: The graph.
        order: A topological order of all ops (checked).
        inplace: Use the in-place option instead of the default model.

    Returns:
        The :class:`Timeline` with the peak, per-step footprints and the live
        set at the peak.

    Raises:
        ValueError: ``order`` is not a topological order of ``problem``.

    Complexity: O(n + e).
    """
    if not problem.is_topological(order):
        raise ValueError("order is not a topological order of all ops")
    initial = sum(problem.tensor_sizes[t] for t in problem.graph_inputs)
    steps: list[int] = []
    afters: list[int] = []
    reuses: list[int] = []
    peak, peak_step, peak_live = initial, -1, sorted(problem.graph_inputs)
    for i, (during, reused, after, live_during) in enumerate(_walk(problem, order, inplace)):
        steps.append(during)
        reuses.append(reused)
        if during > peak:
            peak, peak_step = during, i
            peak_live = sorted(live_during())
        afters.append(after)
    return Timeline(
        peak,
        peak_step,
        initial,
        tuple(steps),
        tuple(afters),
        tuple(peak_live),
        tuple(reuses),
    )


def _walk(
    problem: Problem, order: Sequence[int], inplace: bool
) -> Iterator[tuple[int, int, int, Callable[[], set[int]]]]:
    """The one pass over ``order`` behind :func:`simulate` and :func:`live_at_peak_steps`.

    Yields per step ``(during, reused, after, live_during)``: the footprint
    while the op runs, the input it overwrites (-1: none), the footprint
    after it, and a function giving the tensors live while it ran (valid
    until the next step; built only on demand, so the walk stays O(n + e)).
    """
    sizes = problem.tensor_sizes
    remaining = [len(c) for c in problem.consumers]
    is_out = problem.is_graph_output
    live = set(problem.graph_inputs)
    current = sum(sizes[t] for t in live)
    for v in order:
        outs = problem.op_outputs[v]
        saved, reused = inplace_saving(problem, v, remaining) if inplace else (0, -1)
        during = current + sum(sizes[t] for t in outs) - saved
        for t in outs:
            live.add(t)
            current += sizes[t]
        for t in problem.op_inputs[v]:
            remaining[t] -= 1
        freed = []
        for t in (*problem.op_inputs[v], *outs):
            if t in live and remaining[t] == 0 and not is_out[t]:
                live.remove(t)
                freed.append(t)
                current -= sizes[t]

        def live_during(f: list[int] = freed, r: int = reused) -> set[int]:
            # While v ran: everything live before it plus its outputs = live now plus freed.
            return (live | set(f)) - {r}

        yield during, reused, current, live_during


def live_at_peak_steps(
    problem: Problem, order: Sequence[int], *, inplace: bool = False
) -> set[int]:
    """Tensors live at *any* step whose footprint equals the peak.

    Several steps often tie at the peak (the start, before any op, included);
    :attr:`Timeline.live_at_peak` gives only the first.

    Complexity: O(n + e) plus the sizes of the live sets at the steps that
    reach the running maximum.
    """
    return set().union(*peak_step_live_sets(problem, order, inplace=inplace))


def peak_step_live_sets(
    problem: Problem, order: Sequence[int], *, inplace: bool = False
) -> list[set[int]]:
    """The live set of each step whose footprint equals the peak, in order
    (the start, before any op, counts as a step).

    Complexity: as :func:`live_at_peak_steps`.
    """
    peak = sum(problem.tensor_sizes[t] for t in problem.graph_inputs)
    tied: list[tuple[int, set[int]]] = [(peak, set(problem.graph_inputs))]
    for during, _reused, _after, live_during in _walk(problem, order, inplace):
        if during >= peak:
            peak = during
            tied.append((during, live_during()))
    return [ts for during, ts in tied if during == peak]


def peak_bytes(problem: Problem, order: Sequence[int], *, inplace: bool = False) -> int:
    """The peak of ``order`` (see :func:`simulate`)."""
    return simulate(problem, order, inplace=inplace).peak_bytes


def lower_bound(problem: Problem, *, inplace: bool = False) -> int:
    """A trivial lower bound on the peak of every order.

    The maximum of: the graph inputs together (the initial footprint), the graph
    outputs together (all live at the end), and for every op its distinct
    inputs plus its outputs (all live while it runs; with ``inplace``, less the
    largest input it could overwrite).

    Complexity: O(n + e).
    """
    sizes = problem.tensor_sizes
    best = max(
        sum(sizes[t] for t in problem.graph_inputs),
        sum(sizes[t] for t in problem.graph_outputs),
    )
    for v in range(problem.num_ops):
        ins, outs = problem.op_inputs[v], problem.op_outputs[v]
        need = sum(sizes[t] for t in ins) + sum(sizes[t] for t in outs)
        if inplace:
            reusable = (t for t in problem.inplace_inputs[v] if not problem.is_graph_output[t])
            need -= max((sizes[t] for t in reusable), default=0)
        best = max(best, need)
    return best
