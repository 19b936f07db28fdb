"""Run two models in onnxruntime on the same seeded inputs and compare outputs.

Used by ``--verify``: the reordered (later: rewritten) model must compute
exactly what the original computes. Weights stored in external files are read
from disk; where those files are missing (analysis-only exports), each missing
initializer is filled with seeded random values of its shape and type, the same
values for both models, so that the comparison is still meaningful.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from serenity.errors import ModelError, VerificationError
from serenity.io.format import VerifyReport
from serenity.io.onnx_checks import external_refs
from serenity.ir import Problem
from serenity.memory import lower_bound

#: onnxruntime's FATAL log level: nothing but a crash is printed by the runtime itself.
ORT_QUIET = 4

#: Multiple of the original's own float noise a non-exact comparison accepts.
NOISE_FACTOR = 2.0

#: Most bytes of inputs and weights a verification holds in memory. Seeded
#: random data is made only below it, so that a model declaring absurd dims
#: (1e5 on every axis) gets a clear error instead of numpy's "array is too big"
#: or a MemoryError.
MAX_VERIFY_BYTES = 4 << 30

#: protobuf's limit on one serialized message: the weights of a model handed to
#: onnxruntime in memory must fit in it.
PROTO_LIMIT = (2 << 30) - 1


def _np_dtype(elem_type: int, what: str) -> np.dtype:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        raise ModelError(
            f"cannot verify: {what} has element type {elem_type}, which numpy cannot hold"
        ) from None


def array_bytes(shape: Sequence[int], dtype: np.dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` would take (exact Python integers).

    Raises:
        VerificationError: a dim is negative.
    """
    if any(int(d) < 0 for d in shape):
        raise VerificationError(f"cannot verify: negative dim in shape {list(shape)}")
    return math.prod(int(d) for d in shape) * dtype.itemsize


class MemoryBudget:
    """Bytes of inputs and weights verification has committed to hold so far."""

    def __init__(self, limit: int = MAX_VERIFY_BYTES) -> None:
        self.limit, self.used = limit, 0

    def take(self, what: str, shape: Sequence[int], dtype: np.dtype) -> None:
        """Count ``what`` against the budget before it is allocated.

        Raises:
            VerificationError: the total would exceed the limit (names ``what``).
        """
        size = array_bytes(shape, dtype)
        if self.used + size > self.limit:
            raise VerificationError(
                f"cannot verify: {what} {dtype}{list(shape)} takes {size:,} bytes; inputs and "
                f"weights may take at most {self.limit:,} bytes in all ({self.used:,} already)"
            )
        self.used += size


def _random_array(shape: Sequence[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 4, shape).astype(dtype)
    raise ModelError(f"cannot make random data of type {dtype}")


def check_activations(problem: Problem, budget: int = MAX_VERIFY_BYTES) -> None:
    """Refuse to run a model whose activations alone cannot fit in ``budget`` bytes.

    Every order holds at least :func:`serenity.memory.lower_bound` bytes of
    activations at once, so the runtime needs that much on top of inputs and
    weights; checked before anything is allocated.

    Raises:
        VerificationError: the bound exceeds ``budget`` (names the largest tensor).

    Complexity: O(ops + edges).
    """
    need = lower_bound(problem)
    if need > budget:
        big = max(range(problem.num_tensors), key=lambda t: problem.tensor_sizes[t])
        raise VerificationError(
            f"cannot verify: running the model needs at least {need:,} bytes of activations "
            f"(tensor '{problem.tensor_names[big]}' alone {problem.tensor_sizes[big]:,} bytes), "
            f"more than the {budget:,} bytes verification allows"
        )


def materialize_weights(
    proto: onnx.ModelProto, base: Path, budget: MemoryBudget | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Read every externally stored initializer, filling missing ones randomly.

    Each missing tensor's values are seeded by a hash of its name, so the same
    tensor gets the same values in every model and every run; a file that
    exists but cannot be read is an error, never silently replaced. The
    references are checked first (:mod:`serenity.io.onnx_checks`). Sizes are
    checked against ``budget`` (and the weights together against protobuf's
    2 GiB, as the models are handed to onnxruntime in memory) before any
    array is made.

    Returns:
        The arrays by initializer name, and how many were filled randomly.

    Raises:
        VerificationError: the weights are too large to verify in memory.
    """
    budget = budget or MemoryBudget()
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    weights = proto.ByteSize()
    for t in external:
        dtype = _np_dtype(t.data_type, f"weight '{t.name}'")
        budget.take(f"weight '{t.name}'", tuple(t.dims), dtype)
        weights += array_bytes(tuple(t.dims), dtype)
        if weights > PROTO_LIMIT:
            raise VerificationError(
                f"cannot verify: with weight '{t.name}' the model's weights take more than "
                f"{PROTO_LIMIT:,} bytes, protobuf's limit for a model run from memory"
            )
    arrays: dict[str, np.ndarray] = {}
    filled = 0
    # Variances must be positive or BatchNormalization yields NaN everywhere.
    positive = {
        n.input[4]
        for n in proto.graph.node
        if n.op_type == "BatchNormalization" and len(n.input) > 4
    }
    refs = external_refs(proto, base)
    present = {path: path.is_file() for path in {r.path for r in refs}}
    on_disk = {r.tensor for r in refs if present[r.path]}
    for t in external:
        if t.name in on_disk:
            copy = onnx.TensorProto()
            copy.CopyFrom(t)
            try:
                onnx.external_data_helper.load_external_data_for_tensor(copy, str(base))
                arrays[t.name] = numpy_helper.to_array(copy)
            except Exception as e:  # onnx raises OSError, ValueError or its own types
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise VerificationError(f"cannot read weight '{t.name}': {first}") from None
            continue
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
        rng = np.random.default_rng(zlib.crc32(t.name.encode()))
        arrays[t.name] = _random_array(tuple(t.dims), dtype, rng)
        if np.issubdtype(dtype, np.floating):
            # Keep activations in range through deep nets: scale like He init.
            fan_in = math.prod(t.dims[1:]) if len(t.dims) > 1 else 1
            arrays[t.name] = (arrays[t.name] / np.sqrt(max(fan_in, 1))).astype(dtype)
            if t.name in positive:
                arrays[t.name] = (np.abs(arrays[t.name]) + 0.5).astype(dtype)
        filled += 1
    return arrays, filled


def _with_weights(proto: onnx.ModelProto, arrays: Mapping[str, np.ndarray]) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    for i, t in enumerate(m.graph.initializer):
        if t.name in arrays:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(arrays[t.name], t.name))
    return m.SerializeToString()


def random_inputs(
    proto: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]],
    seed: int,
    budget: MemoryBudget | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random values for every non-initializer graph input.

    Raises:
        ModelError: an input has a symbolic dim that ``input_shapes`` does not fix.
        VerificationError: the inputs exceed ``budget`` (checked before allocating).
    """
    budget = budget or MemoryBudget()
    rng = np.random.default_rng(seed)
    inits = {t.name for t in proto.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if vi.name in input_shapes:
            shape = tuple(input_shapes[vi.name])
        elif all(d.HasField("dim_value") for d in tt.shape.dim):
            shape = tuple(d.dim_value for d in tt.shape.dim)
        else:
            raise ModelError(
                f"cannot verify: input '{vi.name}' has symbolic dims; fix them with --input-shape"
            )
        dtype = _np_dtype(tt.elem_type, f"input '{vi.name}'")
        budget.take(f"input '{vi.name}'", shape, dtype)
        feeds[vi.name] = _random_array(shape, dtype, rng)
    return feeds


def _run(
    model_bytes: bytes, feeds: Mapping[str, np.ndarray], label: str, *, optimize: bool = True
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1  # one thread: the same reduction order every run
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # FATAL only: onnxruntime's own ERROR lines would go to stderr next to our one-line
    # error (its message is carried in the exception caught below).
    opts.log_severity_level = ORT_QUIET
    ort.set_default_logger_severity(ORT_QUIET)
    try:
        session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        run_options = ort.RunOptions()
        run_options.log_severity_level = ORT_QUIET
        return dict(zip(names, session.run(names, dict(feeds), run_options), strict=True))
    except Exception as e:  # onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VerificationError(f"onnxruntime cannot run the {label} model: {first}") from None


def verify_same_outputs(
    original: onnx.ModelProto,
    candidate: onnx.ModelProto,
    base: Path,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    seed: int = 0,
    exact: bool = True,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    noise_factor: float = NOISE_FACTOR,
) -> VerifyReport:
    """Run both models on the same seeded inputs and compare every output.

    Without ``exact``, an output passes if it is within ``rtol``/``atol``
    element-wise, or else by the *noise-floor clause*: deep networks amplify
    float32 rounding, so that even the original model run with and without
    onnxruntime's graph optimizations (which fuse Conv+BN and so round
    differently) can differ by more than the tolerances (full DARTS: 1.1e-4 on
    logits of magnitude 4). Such an output passes if its largest difference
    is at most ``noise_factor`` times that self-difference, and the
    self-difference is at most 1e-3 of the output's magnitude (a model noisier
    than that cannot be checked). A wrong rewrite changes outputs by far more.
    The report's ``noise_floor`` and ``notes`` say when the clause was used.
    Neither way lets NaN or infinities through: they must sit exactly where
    the original has them (infinities with the same sign); differences are
    measured where both are finite. The exact mode compares bytes.

    Inputs and weights are checked against :data:`MAX_VERIFY_BYTES` (and
    the weights against protobuf's 2 GiB) before anything is allocated.

    Args:
        original: The input model (external weights not loaded).
        candidate: The model to check against it.
        base: Directory of the original's external weight files.
        input_shapes: Dims for symbolic graph inputs.
        seed: Seed of the random inputs.
        exact: Require bitwise-equal outputs (reordering); else use tolerances.
        rtol: Relative tolerance when not exact.
        atol: Absolute tolerance when not exact.
        noise_factor: Multiple of the noise floor accepted when not exact (0: never).

    Raises:
        VerificationError: an output differs, is missing, or a model fails to
            run; the inputs and weights are too large to verify in memory.
    """
    budget = MemoryBudget()
    arrays, filled = materialize_weights(original, base, budget)
    feeds = random_inputs(original, input_shapes or {}, seed, budget)
    want = _run(_with_weights(original, arrays), feeds, "original")
    got = _run(_with_weights(candidate, arrays), feeds, "new")
    worst = 0.0
    notes = [
        f"output '{name}' has non-finite values in the original model: the comparison is weaker"
        for name, a in want.items()
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all()
    ]
    unoptimized: dict[str, np.ndarray] | None = None
    floor_used: float | None = None
    for name, a in want.items():
        if name not in got:
            raise VerificationError(f"output '{name}' is missing from the new model")
        b = got[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise VerificationError(
                f"output '{name}' differs in shape or type: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
            )
        diff = _max_abs_diff(a, b)
        worst = max(worst, diff)
        if exact:
            if a.tobytes() != b.tobytes():
                raise VerificationError(
                    f"output '{name}' is not equal bitwise (max abs diff {diff:.3g}, seed {seed})"
                )
            continue
        _check_non_finite(name, a, b, seed)
        if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            continue
        how = f"within rtol={rtol}, atol={atol}"
        if noise_factor > 0 and np.issubdtype(a.dtype, np.floating):
            if unoptimized is None:
                unoptimized = _run(
                    _with_weights(original, arrays), feeds, "original", optimize=False
                )
            floor = _max_abs_diff(a, unoptimized[name])
            magnitude = float(np.nanmax(np.abs(a))) if a.size else 0.0
            if diff <= noise_factor * floor and floor <= 1e-3 * magnitude:
                floor_used = max(floor_used or 0.0, floor)
                notes.append(
                    f"output '{name}': max abs diff {diff:.3g} misses rtol={rtol}, atol={atol} "
                    f"but is within {noise_factor:g}x the original's own difference without "
                    f"onnxruntime's graph optimizations ({floor:.3g}; |output| up to {magnitude:.3g})"
                )
                continue
            how += f", nor within {noise_factor:g}x the original's own float noise {floor:.3g}"
        raise VerificationError(
            f"output '{name}' is not equal {how} (max abs diff {diff:.3g}, seed {seed})"
        )
    return VerifyReport(tuple(want), exact, worst, filled, seed, notes, floor_used)


def _check_non_finite(name: str, a: np.ndarray, b: np.ndarray, seed: int) -> None:
    """Require NaN and infinities of ``b`` exactly where ``a`` (the original) has them.

    ``allclose(equal_nan=True)`` and a NaN-ignoring difference would otherwise
    pass an output that is NaN where the original is finite.

    Raises:
        VerificationError: a NaN or an infinity (or its sign) differs in place.

    Complexity: O(size).
    """
    if not np.issubdtype(a.dtype, np.floating) or not a.size:
        return
    for what, wrong in (
        ("NaN", np.isnan(a) != np.isnan(b)),
        ("an infinity", (np.isinf(a) | np.isinf(b)) & (a != b) & ~(np.isnan(a) | np.isnan(b))),
    ):
        if wrong.any():
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            raise VerificationError(
                f"output '{name}' has {what} where the original does not, or the reverse "
                f"({int(wrong.sum()):,} element(s), first at index {list(first)}, seed {seed})"
            )


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two float arrays where both are finite (0 otherwise).

    Non-finite values are compared by :func:`_check_non_finite`; an infinity
    against a finite value counts as an infinite difference.
    """
    if not np.issubdtype(a.dtype, np.floating) or not a.size:
        return 0.0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    same_inf = np.isinf(a64) & (a64 == b64)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, cleared just below
        diff = np.abs(a64 - b64)
    diff[both_nan | same_inf] = 0.0
    if np.isnan(diff).any():  # NaN against a number: no finite difference describes it
        return math.inf
    return float(diff.max())
