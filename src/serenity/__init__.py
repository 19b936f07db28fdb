"""serenity: memory-optimal operator scheduling for neural-network graphs.

Find the operator order with the lowest peak activation memory, prove how good
it is, and write back a model that computes exactly the same outputs.

Example:
    >>> import serenity
    >>> from serenity.ir import Problem
    >>> p = Problem(["a", "b"], [4, 8, 2], [[0], [1]], [[1], [2]], [0], [2])
    >>> serenity.schedule(p).peak_bytes
    12
"""

__version__ = "0.1.0"

from serenity.api import (  # noqa: E402
    SaveOutcome,
    load_model,
    plan_dict,
    plan_schedule,
    read_schedule,
    report_dict,
    rewrite_model,
    save_model,
    save_rewritten,
    schedule_model,
)
from serenity.batching import batch  # noqa: E402
from serenity.errors import (  # noqa: E402
    CycleError,
    ModelError,
    SerenityError,
    UnknownShapeError,
    UsageError,
    VerificationError,
)
from serenity.ir import Problem  # noqa: E402
from serenity.memory import lower_bound, simulate  # noqa: E402
from serenity.schedule import ENGINES, ScheduleOptions, ScheduleResult, schedule  # noqa: E402
from serenity.zoo import build_example  # noqa: E402

__all__ = [
    "ENGINES",
    "CycleError",
    "ModelError",
    "Problem",
    "SaveOutcome",
    "ScheduleOptions",
    "ScheduleResult",
    "SerenityError",
    "UnknownShapeError",
    "UsageError",
    "VerificationError",
    "__version__",
    "batch",
    "build_example",
    "load_model",
    "lower_bound",
    "plan_dict",
    "plan_schedule",
    "read_schedule",
    "report_dict",
    "rewrite_model",
    "save_model",
    "save_rewritten",
    "schedule",
    "schedule_model",
    "simulate",
]
