"""serenity for PyTorch: ``torch.export`` programs, Inductor and ExecuTorch.

Importing this package imports torch (the ``torch`` extra:
``pip install 'serenity[torch]'``); the rest of serenity never does.

* :func:`problem_from_exported`, :func:`reorder`, :func:`optimize`: an
  ``ExportedProgram`` scheduled for minimum peak activation memory, its ops
  permuted into the proven order (eager PyTorch frees each value after its
  last use, so its memory follows).
* :mod:`serenity.torch.inductor`: serenity as one more method of Inductor's
  ``reorder_for_peak_memory``.
* :mod:`serenity.torch.executorch`: a reorder pass and a
  ``memory_planning_algo`` backed by :mod:`serenity.plan` for
  ``to_executorch``.
"""

from serenity.torch.export import (
    export_model,
    functional,
    optimize,
    problem_from_exported,
    reorder,
    same_outputs,
    seeded_inputs,
)
from serenity.torch.graph import GraphProblem, problem_from_graph

__all__ = [
    "GraphProblem",
    "export_model",
    "functional",
    "optimize",
    "problem_from_exported",
    "problem_from_graph",
    "reorder",
    "same_outputs",
    "seeded_inputs",
]
