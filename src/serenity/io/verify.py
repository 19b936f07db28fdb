"""Run two models in onnxruntime on the same seeded inputs and compare outputs.

Used by ``--verify``: the reordered (later: rewritten) model must compute
exactly what the original computes. Weights stored in external files are read
from disk; where those files are missing (analysis-only exports), each missing
initializer is filled with seeded random values of its shape and type, the same
values for both models, so that the comparison is still meaningful.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from serenity.errors import ModelError, VerificationError
from serenity.io.format import VerifyReport

#: Multiple of the original's own float noise a non-exact comparison accepts.
NOISE_FACTOR = 2.0


def _random_array(shape: Sequence[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 4, shape).astype(dtype)
    raise ModelError(f"cannot make random data of type {dtype}")


def materialize_weights(proto: onnx.ModelProto, base: Path) -> tuple[dict[str, np.ndarray], int]:
    """Read every externally stored initializer, filling missing ones randomly.

    Each missing tensor's values are seeded by a hash of its name, so the same
    tensor gets the same values in every model and every run.

    Returns:
        The arrays by initializer name, and how many were filled randomly.
    """
    arrays: dict[str, np.ndarray] = {}
    filled = 0
    # Variances must be positive or BatchNormalization yields NaN everywhere.
    positive = {
        n.input[4]
        for n in proto.graph.node
        if n.op_type == "BatchNormalization" and len(n.input) > 4
    }
    for t in proto.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(t)
        try:
            onnx.external_data_helper.load_external_data_for_tensor(copy, str(base))
            arrays[t.name] = numpy_helper.to_array(copy)
        except Exception:  # onnx raises OSError or its ValidationError for a missing file
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
            rng = np.random.default_rng(zlib.crc32(t.name.encode()))
            arrays[t.name] = _random_array(tuple(t.dims), np.dtype(dtype), rng)
            if np.issubdtype(dtype, np.floating):
                # Keep activations in range through deep nets: scale like He init.
                fan_in = int(np.prod(t.dims[1:])) if len(t.dims) > 1 else 1
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
    proto: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]], seed: int
) -> dict[str, np.ndarray]:
    """Seeded random values for every non-initializer graph input.

    Raises:
        ModelError: an input has a symbolic dim that ``input_shapes`` does not fix.
    """
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
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
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
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(feeds)), strict=True))
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
        VerificationError: an output differs, is missing, or a model fails to run.
    """
    arrays, filled = materialize_weights(original, base)
    feeds = random_inputs(original, input_shapes or {}, seed)
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


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two float arrays, NaN-aware (0 otherwise)."""
    if not np.issubdtype(a.dtype, np.floating) or not a.size:
        return 0.0
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return 0.0 if np.all(np.isnan(diff)) else float(np.nanmax(diff))
