"""What the driver needs of each rewrite, declared by the rewrite's own module.

A rewrite module defines ``DRIVER``, a :class:`DriverRule`: the op types its
sites start from, which of those nodes are sites given the tensors live at
the peak (and whether a site is tried alone or only together with the
others), and how to apply it to one site. The module is registered with one
line in :data:`DRIVER_MODULES`; :mod:`serenity.rewrite.driver` knows no pass
by name or op type.

A rule is, in torch.fx's words, "a function of the graph": ``match`` reads
the onnx-ir graph and the :class:`PeakView` (the live sets of the current
schedule), ``apply`` edits the graph through an
:class:`~serenity.rewrite._graph.Editor` and returns the
:class:`~serenity.rewrite._graph.Rewrite` records. A node is offered to the
rules in :data:`DRIVER_MODULES` order and becomes a site of the first rule
that matches it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import onnx_ir as ir

from serenity.ir import Problem
from serenity.memory.model import simulate
from serenity.rewrite._graph import Editor, Rewrite

#: The rewrites the driver tries, in order of precedence at a node. One line per rewrite.
DRIVER_MODULES: tuple[str, ...] = (
    "serenity.rewrite.bn_fold",
    "serenity.rewrite.reassociate",
    "serenity.rewrite.scale_fold",
    "serenity.rewrite.pad_pool",
    "serenity.rewrite.concat",
    "serenity.rewrite.output_split",
)

#: How a site is tried: ``"solo"`` alone and in the all-sites group, ``"group"``
#: only in the group (alone it cannot lower the peak steps it touches).
Tried = Literal["solo", "group"]


@dataclass(frozen=True)
class PeakView:
    """The current schedule as the rules see it.

    Attributes:
        problem: The current graph's scheduling problem.
        order: Its current schedule.
        inplace: The memory model.
        steps: Names of the tensors live at each peak step.
        rank: When each tensor becomes available in ``order``
            (:func:`serenity.rewrite.driver.term_ranks`).
    """

    problem: Problem
    order: tuple[int, ...]
    inplace: bool
    steps: Sequence[set[str]]
    rank: Mapping[str, float] = field(default_factory=dict)

    @functools.cached_property
    def live(self) -> set[str]:
        """Names of the tensors live at some peak step."""
        return set().union(*self.steps)

    @functools.cached_property
    def touched(self) -> set[str]:
        """Names of the tensors the ops *at* the peak steps read or write.

        Narrower than :attr:`live`: a tensor merely waiting at the peak while
        other ops run is not here. O(n + e) once, on first use.
        """
        p = self.problem
        timeline = simulate(p, self.order, inplace=self.inplace)
        names: set[str] = set()
        for v, during in zip(self.order, timeline.step_bytes, strict=True):
            if during == timeline.peak_bytes:
                names.update(p.tensor_names[t] for t in (*p.op_inputs[v], *p.op_outputs[v]))
        return names


@dataclass(frozen=True)
class DriverRule:
    """One rewrite as the driver uses it.

    Attributes:
        name: The pass name (the :attr:`Rewrite.pass_name` of what it makes).
        ops: Op types a site starts from.
        match: ``match(editor, node, peak)``: ``"solo"`` or ``"group"`` when
            ``node`` is a site worth trying at this peak, else ``None``.
        apply: ``apply(editor, node, peak)``: rewrite one site, returning
            what was done (empty when the site no longer qualifies).
        fallback: Sites are tried one at a time, and only after every other
            candidate of the round failed (e.g. output splits, which add
            trials that rarely win).
        confirm: For fallback rules: a site is kept only if applying it on a
            scratch copy gives rewrites this predicate accepts.
    """

    name: str
    ops: frozenset[str]
    match: Callable[[Editor, ir.Node, PeakView], Tried | None]
    apply: Callable[[Editor, ir.Node, PeakView], list[Rewrite]]
    fallback: bool = False
    confirm: Callable[[list[Rewrite]], bool] | None = None


def driver_rules(exclude: Sequence[str] = ()) -> list[DriverRule]:
    """The registered rules, in :data:`DRIVER_MODULES` order, without those named in ``exclude``."""
    rules = [importlib.import_module(m).DRIVER for m in DRIVER_MODULES]
    return [r for r in rules if r.name not in exclude]


def one(done: Rewrite | None) -> list[Rewrite]:
    """A one-site rewrite function's result as a list (``apply``'s type)."""
    return [] if done is None else [done]
