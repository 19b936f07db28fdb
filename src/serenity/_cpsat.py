"""CP-SAT settings shared by the scheduling ILP (``schedule/ilp.py``) and the arena
planner (``plan/exact.py``).

OR-Tools 9.15 can abort the whole process (a native ``Check failed:
solution->size() == postsolve_mapping.size()``, no Python exception) when a
solve with a complete solution hint reaches its deadline inside presolve:
seen once in 3,600 solves at a 0 s limit on a loaded machine, about once in
300 when a solution, bound or log callback was also set, and never in 5,400
solves without the hint. Both models therefore take a warm start only when the
time limit leaves room for it, and neither sets a solver callback. Once, in the
test suite on a loaded machine, a solve at a 0.01 s limit with interleaved
workers (``interleave_search``, the scheduling ILP's deterministic mode) aborted
with ``Check failed: heuristics.fixed_search != nullptr`` (not reproduced in
4,000 more such solves); interleaving asks for a fixed-search subsolver whose
heuristics a deadline can hit before they exist, so short solves do not
interleave either (their answers depend on the clock anyway).
"""

from __future__ import annotations

#: Below this time limit (seconds) a CP-SAT model gets no solution hint and its
#: workers do not interleave.
ROOMY_SECONDS = 1.0


def roomy(time_limit: float | None) -> bool:
    """Whether a solve under ``time_limit`` seconds may be given a solution hint and
    interleaved workers."""
    return time_limit is None or time_limit >= ROOMY_SECONDS
