"""Checks for lab 04, MNIST RealNVP: dequantization, logit, checkerboard mask, affine coupling, the
multi-scale assembly, bits/dim, and the trained flow.

The flow the lab trains is built from the student's own functions (``FunctionCoupling`` wraps their
coupling, ``FunctionLogit`` their logit), so each check also asks what training needs: TensorFlow
ops that run inside ``tf.function``.  Log-determinants are judged against autodiff Jacobians,
never against the student's own claim; the trained flow's ``log_prob`` is compared with
``log N(z) + log|det dz/dy|`` from a brute-force Jacobian of its map on a test image, so a log-det
that lies cannot pass.  Thresholds on the trained flow are measured over seeds in fast mode:
``bench/check_margins.md`` (Lab 04) and ``bench/check_margins_mnist.py``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from flowlab.checks.core import (
    CheckFailed,
    check,
    need,
    need_function,
    printable,
    require,
    student_code,
    to_numpy,
)
from flowlab.checks.held_out import cached, held_out

__all__ = [
    "until_written",
    "dequantize",
    "logit",
    "checkerboard_mask",
    "affine_coupling",
    "scale_layers",
    "bits_per_dim",
    "trained_flow",
    "TRAINED_BPD_THRESHOLD",
]

_DIMS = 784
# The trained flow's test bits/dim must be below this: "trained at all". Measured in fast mode
# (bench/check_margins.md, Lab 04): correct answers land at 2.7-4.1 over seeds, the untrained flow
# at 6.86. Broken answers are caught by what separates them with a wide margin: log-dets by the
# brute-force Jacobian, masks by the structure, the dequantization by its own check.
TRAINED_BPD_THRESHOLD = 5.0
# |log_prob - (log N(z) + log|det J|)| allowed on one image, in nats (float32 round-off is ~0.01).
_LOG_DET_TOLERANCE = 1.0

_GRAPH_HINT = ("it runs inside model.fit's graph (tf.function): write it with TensorFlow ops (tf.math.log, tf.exp, "
               "tf.reduce_sum), not NumPy")


def _calm(fn: Callable[..., None]) -> Callable[..., None]:
    """Run a check with NumPy's floating-point warnings and Python warnings off: a student's NaN or a
    log(0) in our comparisons must not print to stderr from a check cell (the verdict says what is wrong)."""
    import warnings

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args, **kwargs)

    return run


def _tf():
    import tensorflow as tf

    return tf


def _numbers(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, or ✘ (a string, a list of objects, a bijector: not numbers)."""
    array = to_numpy(value, what)
    if array.dtype == object:
        raise CheckFailed(f"{what} is not numeric")
    return array


@contextlib.contextmanager
def _quiet_tf() -> Iterator[None]:
    """TensorFlow's Python logger at ERROR for the block: a check cell prints its verdict and nothing else
    (tracing a fresh tf.function per call makes TF warn about "retracing" after a few checks)."""
    logger = _tf().get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _in_graph(fn: Callable, args: tuple, what: str) -> Any:
    """Call ``fn(*args)`` inside ``tf.function``, as ``model.fit`` does; ✘ naming ``what`` if it cannot run there."""
    tf = _tf()
    graph_fn = tf.function(lambda *a: fn(*a), autograph=False, reduce_retracing=True)
    try:
        with _quiet_tf():
            return graph_fn(*args)
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 - the student's code failed to run in a graph
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckFailed(f"{what} raised {type(err).__name__} inside tf.function"
                          + (f" ({printable(message, 120)})" if message else "") + f": {_GRAPH_HINT}") from None


# --- function TODOs: wait until they are written ------------------------------------------------

_STUB_OPS = {"RESUME", "NOP", "CACHE", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "BUILD_TUPLE"}


def _returns_only_placeholders(fn: Any) -> bool:
    """True for a function whose whole body is ``return ...`` (or ``return ..., ...``): the lab's stub."""
    import dis

    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    try:
        instructions = list(dis.get_instructions(code))
    except Exception:  # noqa: BLE001 - not plain Python code: not a stub
        return False
    if any(i.opname not in _STUB_OPS for i in instructions):
        return False
    constants = [i.argval for i in instructions if i.opname in ("LOAD_CONST", "RETURN_CONST")]
    flat = [c for value in constants for c in (value if isinstance(value, tuple) else (value,))]
    return bool(flat) and all(c is Ellipsis for c in flat)


def until_written(fn: Any) -> Any:
    """``...`` while ``fn`` is still the lab's stub (its body only ``return ...``), else ``fn`` itself.

    An answer cell ends with ``name = check.until_written(name)``: while the TODO is open the name is
    the placeholder ``...``, so the cells that use it wait (``flowlab.todo``) instead of failing on the
    stub's ``...``, and the check names this TODO.
    """
    return Ellipsis if _returns_only_placeholders(fn) else fn


# --- Exercise 1: dequantization -------------------------------------------------------------------

def _pixels() -> np.ndarray:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(200, 4, 4, 1)).astype(np.uint8)
    pixels[0, 0, 0, 0], pixels[0, 0, 1, 0] = 0, 255
    return pixels


def _is_float(result: Any) -> bool:
    dtype = getattr(result, "dtype", None)
    if dtype is None:
        return False
    if getattr(dtype, "is_floating", False):
        return True
    try:
        return np.dtype(str(getattr(dtype, "name", dtype))).kind == "f"
    except TypeError:
        return False


@check("uniform dequantization (x + u) / 256")
@_calm
def dequantize(fn: Callable) -> None:
    """Values in each pixel's own bin [x/256, (x+1)/256), uniform noise, new noise on every call."""
    need_function(fn, "dequantize")
    x = _pixels()
    with student_code("dequantize(images)"):
        result = fn(x.copy())
    y = _numbers(result, "dequantize(images)")
    require(y.shape == x.shape, f"dequantize(images) has shape {y.shape}, expected the images' shape {x.shape}")
    require(_is_float(result), "dequantize should return floats (tf.float32): cast the integer pixels first")
    require(bool(np.all(np.isfinite(y))), "dequantize(images) holds NaN or infinite values")
    u = y * 256.0 - x
    if np.all((y - x >= 0) & (y - x <= 1)) and y.max() > 1.0:
        raise CheckFailed("the values are x + u, in pixel units: divide by 256 so they lie in [0, 1)")
    if np.allclose(u, 0.0, atol=1e-6) or np.allclose(y * 255.0 - x, 0.0, atol=1e-5):
        raise CheckFailed("no noise was added: add u ~ U[0, 1) to each pixel before dividing by 256")
    u255 = y * 255.0 - x
    if np.all((u255 >= -1e-4) & (u255 <= 1.0 + 1e-4)) and not np.all((u >= -1e-4) & (u <= 1.0 + 1e-4)):
        raise CheckFailed("divide by 256, the number of pixel values (0..255), not by 255: each value x owns the bin "
                          "[x, x + 1) / 256 and the bins must tile [0, 1)")
    require(bool(np.all((u >= -1e-4) & (u <= 1.0 + 1e-4))),
            "each value must stay in its pixel's bin [x/256, (x+1)/256): the noise should be uniform on [0, 1)")
    require(float(np.std(u)) > 1e-4, "every pixel got the same u: draw the noise with the images' full shape, "
            "a fresh U[0, 1) value for each pixel (tf.random.uniform(tf.shape(x)))")
    require(bool(abs(u.mean() - 0.5) < 0.05 and abs(u.std() - math.sqrt(1 / 12)) < 0.05),
            "the noise does not look uniform on [0, 1): use tf.random.uniform(shape) (minval 0, maxval 1)")
    require(float(np.std(u.reshape(len(x), -1), axis=1).mean()) > 0.1,
            "every pixel needs its own noise: draw u with the images' full shape")
    with student_code("dequantize(images), called a second time"):
        again = fn(x.copy())
    again = _numbers(again, "dequantize(images) called again")
    require(again.shape == y.shape and not bool(np.allclose(again, y)),
            "two calls gave the same noise: draw fresh noise on every call (we call it once per epoch)")


# --- Exercise 2: the logit ------------------------------------------------------------------------

def _logit_reference(y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    p = alpha + (1 - 2 * alpha) * y
    return np.log(p) - np.log1p(-p), np.log1p(-2 * alpha) - np.log(p) - np.log1p(-p)


@check("logit transform and its log-determinant")
@_calm
def logit(transform: Callable, log_det: Callable) -> None:
    """z = logit(alpha + (1 - 2 alpha) y) and log|dz/dy| elementwise, for alpha = 0.05 and alpha = 0;
    the log-det is judged against autodiff of the transform; both must run inside tf.function."""
    need_function(transform, "logit_transform")
    need_function(log_det, "logit_log_det")
    tf = _tf()
    edges = np.array([0.0, 1e-3, 0.25, 0.5, 0.9, 1.0 - 1e-3, 1.0], dtype=np.float32)
    inner = edges[1:-1]
    for alpha, y in ((0.05, edges), (0.0, inner)):
        with student_code(f"logit_transform(y, alpha={alpha})"):
            z_raw = transform(tf.constant(y), alpha)
        with student_code(f"logit_log_det(y, alpha={alpha})"):
            ldj_raw = log_det(tf.constant(y), alpha)
        z = _numbers(z_raw, "logit_transform(y, alpha)")
        ldj = _numbers(ldj_raw, "logit_log_det(y, alpha)")
        ref_z, ref_ldj = _logit_reference(y.astype(np.float64), alpha)
        require(z.shape == y.shape and ldj.shape == y.shape,
                f"for {len(y)} values got shapes {z.shape} and {ldj.shape}: both functions work elementwise "
                "(the flow sums the log-det over the pixels itself)")
        require(bool(np.all(np.isfinite(z)) and np.all(np.isfinite(ldj))),
                f"non-finite values at alpha={alpha}: with alpha > 0, y = 0 and y = 1 must give finite logits")
        y64 = np.clip(y.astype(np.float64), 1e-12, 1.0 - 1e-12)
        if alpha > 0 and np.allclose(z, np.log(y64) - np.log1p(-y64), atol=1e-3):
            raise CheckFailed("logit_transform ignores alpha: squeeze y into [alpha, 1 - alpha] first, "
                              "p = alpha + (1 - 2 alpha) y, so that y = 0 and 1 stay finite")
        require(bool(np.allclose(z, ref_z, rtol=1e-4, atol=1e-4)),
                f"logit_transform is wrong at alpha={alpha}: z = log(p) - log(1 - p) with p = alpha + (1 - 2 alpha) y")
        if np.allclose(ldj, -ref_ldj, rtol=1e-4, atol=1e-4):
            raise CheckFailed("the log-det has the wrong sign: dz/dy is positive and large near 0 and 1, "
                              "so log|dz/dy| is positive there")
        if alpha > 0 and np.allclose(ldj, ref_ldj - np.log1p(-2 * alpha), rtol=1e-4, atol=1e-4):
            raise CheckFailed("the log-det misses log(1 - 2 alpha): the chain rule through p = alpha + (1 - 2 alpha) y")
        require(bool(np.allclose(ldj, ref_ldj, rtol=1e-4, atol=1e-4)),
                f"logit_log_det is wrong at alpha={alpha}: log|dz/dy| = log(1 - 2 alpha) - log(p) - log(1 - p)")
    # The log-det must be the derivative of the student's own transform (autodiff).
    yt = tf.constant(inner)
    with tf.GradientTape() as tape:
        tape.watch(yt)
        with student_code("logit_transform(y, alpha) under tf.GradientTape"):
            zt = transform(yt, 0.05)
    grad = tape.gradient(zt, yt) if tf.is_tensor(zt) else None
    if grad is not None:
        with student_code("logit_log_det(y, alpha)"):
            ldj_t = _numbers(log_det(yt, 0.05), "logit_log_det(y, alpha)")
        require(bool(np.allclose(ldj_t, np.log(np.abs(grad.numpy().astype(np.float64))), atol=1e-3)),
                "logit_log_det is not log|dz/dy| of your logit_transform (autodiff disagrees)")
    z_graph = _numbers(_in_graph(transform, (tf.constant(edges), 0.05), "logit_transform"),
                       "logit_transform in a graph")
    ldj_graph = _numbers(_in_graph(log_det, (tf.constant(edges), 0.05), "logit_log_det"), "logit_log_det in a graph")
    ref_z, ref_ldj = _logit_reference(edges.astype(np.float64), 0.05)
    require(bool(np.allclose(z_graph, ref_z, atol=1e-4) and np.allclose(ldj_graph, ref_ldj, atol=1e-4)),
            "inside tf.function your functions give other values than when called directly: avoid Python-side state")


# --- Exercise 3: the checkerboard mask ------------------------------------------------------------

@check("checkerboard mask")
@_calm
def checkerboard_mask(fn: Callable) -> None:
    """(height, width, channels) array of 0/1; 1 where (row + column) % 2 == parity."""
    need_function(fn, "checkerboard_mask")
    for h, w, c, parity in ((4, 4, 1, 0), (4, 4, 1, 1), (3, 5, 2, 0), (28, 28, 1, 1), (7, 7, 4, 0)):
        call = f"checkerboard_mask({h}, {w}, {c}, {parity})"
        with student_code(call):
            raw = fn(h, w, c, parity)
        mask = _numbers(raw, call)
        require(mask.shape == (h, w, c), f"{call} has shape {mask.shape}, expected ({h}, {w}, {c})")
        require(bool(np.all((mask == 0) | (mask == 1))), "a mask holds only 0s and 1s")
        rows, cols = np.indices((h, w))
        expected = np.repeat(((rows + cols) % 2 == parity)[:, :, None], c, axis=2)
        if np.array_equal(mask, 1 - expected):
            raise CheckFailed("the parities are swapped: parity=0 puts a 1 at the top-left pixel, (row + col) even")
        require(bool(np.array_equal(mask, expected)),
                f"{call} is not a checkerboard: 1 where (row + col) % 2 == parity, the same in every channel")


# --- Exercise 4: the affine coupling --------------------------------------------------------------

_MASK = (np.indices((4, 4)).sum(axis=0) % 2 == 0)[:, :, None].astype(np.float32)


def _conditioner(xm: Any) -> tuple[Any, Any]:
    """A fixed 'network': shift and log-scale from the neighbours (never zero where the mask is 1)."""
    tf = _tf()
    xm = tf.convert_to_tensor(xm)
    xm = tf.cast(xm, tf.float32) if not xm.dtype.is_floating else xm
    neighbour = tf.roll(xm, 1, axis=2) + tf.roll(xm, -1, axis=1) + 0.7 * xm  # the centre: 0 unless copied
    return 0.5 * neighbour + 0.1, 0.4 * tf.tanh(neighbour) + 0.2


def _coupling_reference(x: np.ndarray, conditioner_input: np.ndarray,
                        masked: bool = True) -> tuple[np.ndarray, np.ndarray]:
    shift, log_scale = (t.numpy().astype(np.float64) for t in _conditioner(conditioner_input.astype(np.float32)))
    b = _MASK if masked else np.zeros_like(_MASK)
    y = b * x + (1 - b) * (x * np.exp(log_scale) + shift)
    return y, ((1 - b) * log_scale).sum(axis=(1, 2, 3))


def _pair(out: Any, what: str) -> tuple[Any, Any]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise CheckFailed(f"{what} should return two things: (y, log_det)")
    return out[0], out[1]


@check("affine coupling: forward, log-det and inverse")
@_calm
def affine_coupling(forward: Callable, inverse: Callable) -> None:
    """forward(x, mask, conditioner) -> (y, log_det); inverse(y, mask, conditioner) -> x.

    y against the formula, log_det against the autodiff Jacobian of the student's own y, the inverse
    against the forward, and both inside tf.function (where the lab's training runs them).
    """
    need_function(forward, "coupling_forward")
    need_function(inverse, "coupling_inverse")
    tf = _tf()
    x = np.random.default_rng(5).standard_normal((5, 4, 4, 1)).astype(np.float32)
    with student_code("coupling_forward(x, mask, conditioner)"):
        out = forward(tf.constant(x), tf.constant(_MASK), _conditioner)
    y_raw, log_det_raw = _pair(out, "coupling_forward")
    y = _numbers(y_raw, "y from coupling_forward")
    log_det = _numbers(log_det_raw, "log_det from coupling_forward")
    y_ref, ld_ref = _coupling_reference(x.astype(np.float64), x * _MASK)
    require(y.shape == x.shape, f"y has shape {y.shape}, expected {x.shape}")
    if np.allclose(y, _coupling_reference(x, x)[0], atol=1e-4):
        raise CheckFailed("the conditioner must read only the copied half: call it on mask * x, not x")
    if np.allclose(y, _coupling_reference(x, x * _MASK, masked=False)[0], atol=1e-4):
        raise CheckFailed("the pixels where the mask is 1 must pass through unchanged: y = b*x + (1-b)*(x*exp(s) + t)")
    require(bool(np.allclose(y, y_ref, atol=1e-4)), "y is wrong: y = mask*x + (1-mask)*(x*exp(log_scale) + shift), "
            "with (shift, log_scale) = conditioner(mask*x)")
    if log_det.shape == x.shape:
        raise CheckFailed("log_det has one value per pixel: sum it over height, width and channels (one per image)")
    require(log_det.shape == (len(x),), f"log_det has shape {log_det.shape}, expected ({len(x)},): one per image")
    # The log-det against autodiff: log|det dy/dx| of the student's own map, 16 x 16 per image.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        with student_code("coupling_forward(x, mask, conditioner) under tf.GradientTape"):
            y_t, _ = _pair(forward(xt, tf.constant(_MASK), _conditioner), "coupling_forward")
        y_flat = tf.reshape(tf.convert_to_tensor(y_t), [len(x), -1]) if tf.is_tensor(y_t) else None
    jacobian = tape.batch_jacobian(y_flat, xt) if y_flat is not None else None
    if jacobian is None:
        raise CheckFailed(f"y from coupling_forward is not differentiable with TensorFlow: {_GRAPH_HINT}")
    true_log_det = np.linalg.slogdet(jacobian.numpy().reshape(len(x), 16, 16).astype(np.float64))[1]
    if np.allclose(log_det, 0.0, atol=1e-6):
        raise CheckFailed("log_det is 0, but this coupling scales: the log-det is the sum of (1 - mask) * log_scale")
    if np.allclose(log_det, -true_log_det, atol=1e-3):
        raise CheckFailed("the log-det has the wrong sign: y = x*exp(s) + t stretches by exp(s), so log|det| = +sum s")
    if np.allclose(log_det, _coupling_reference(x, x * _MASK, masked=False)[1], atol=1e-3):
        raise CheckFailed("the log-det counts the copied pixels too: sum (1 - mask) * log_scale")
    require(bool(np.allclose(log_det, true_log_det, atol=1e-3)),
            "log_det is not log|det dy/dx| (checked by autodiff): the sum of (1 - mask) * log_scale over each image")
    with student_code("coupling_inverse(y, mask, conditioner)"):
        back_raw = inverse(tf.constant(y_ref.astype(np.float32)), tf.constant(_MASK), _conditioner)
    back = _numbers(back_raw, "coupling_inverse(y, mask, conditioner)")
    require(back.shape == x.shape, f"coupling_inverse returned shape {back.shape}, expected {x.shape}")
    if np.allclose(back, y_ref, atol=1e-4):
        raise CheckFailed("coupling_inverse returns y unchanged: undo the scale and shift on the (1 - mask) part")
    require(bool(np.allclose(back, x, atol=1e-4)), "coupling_inverse(coupling_forward(x)) is not x: recompute "
            "(shift, log_scale) from mask*y (the same as mask*x) and undo: "
            "x = mask*y + (1-mask)*(y - shift)*exp(-log_scale)")
    y_graph, ld_graph = _pair(_in_graph(forward, (tf.constant(x), tf.constant(_MASK), _conditioner),
                                        "coupling_forward"),
                              "coupling_forward")
    back_graph = _in_graph(inverse, (tf.constant(y_ref.astype(np.float32)), tf.constant(_MASK), _conditioner),
                           "coupling_inverse")
    require(bool(np.allclose(_numbers(y_graph, "y"), y_ref, atol=1e-4)
                 and np.allclose(_numbers(ld_graph, "log_det"), ld_ref, atol=1e-3)
                 and np.allclose(_numbers(back_graph, "x"), x, atol=1e-4)),
            "inside tf.function your functions give other values than when called directly: avoid Python-side state")


# --- Exercise 5: one scale of the multi-scale architecture ----------------------------------------

def _flatten(bijectors: Any) -> list[Any]:
    """The bijectors in data order, nested chains opened (a chain lists its parts in data order here)."""
    from tensorflow_probability.python.bijectors.chain import _Chain  # tfb.Chain(...) may build a _Chain

    out: list[Any] = []
    for b in bijectors:
        if isinstance(b, _Chain):
            out += _flatten(b.bijectors)
        else:
            out.append(b)
    return out


def _is_squeeze(b: Any) -> bool:
    """``squeeze()``: ``tfb.Invert(Squeeze())`` (space to depth in the data direction)."""
    from tensorflow_probability.python.bijectors.invert import _Invert  # tfb.Invert(...) may build an _Invert

    from flowlab.bijectors.squeeze import Squeeze

    return isinstance(b, _Invert) and isinstance(b.bijector, Squeeze)


def _mask_of(b: Any) -> np.ndarray | None:
    mask = getattr(b, "mask", None)
    if mask is None:
        return None
    try:
        return np.asarray(mask, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _checkerboard(h: int, w: int, c: int, parity: int) -> np.ndarray:
    rows, cols = np.indices((h, w))
    return np.repeat(((rows + cols) % 2 == parity)[:, :, None], c, axis=2).astype(np.float64)


def _channel(h: int, w: int, c: int, half: int) -> np.ndarray:
    first = np.zeros(c)
    first[: c // 2] = 1.0
    return np.broadcast_to(first if half == 0 else 1.0 - first, (h, w, c)).astype(np.float64)


def _kind(mask: np.ndarray, h: int, w: int, c: int) -> tuple[str, int] | None:
    if mask.shape != (h, w, c):
        return None
    for parity in (0, 1):
        if np.array_equal(mask, _checkerboard(h, w, c, parity)):
            return "checkerboard", parity
        if c >= 2 and np.array_equal(mask, _channel(h, w, c, parity)):
            return "channel", parity
    return None


def _one_scale(fn: Callable, h: int, w: int, c: int) -> None:
    """The structure only: running data through would run (and blame) the coupling TODO's functions."""
    import tensorflow_probability as tfp

    call = f"scale_layers({h}, {w}, {c})"
    with student_code(call):
        layers = fn(h, w, c)
    need(layers, call)
    if isinstance(layers, tfp.bijectors.Bijector) or not isinstance(layers, (list, tuple)):
        raise CheckFailed(f"{call} should return a list of bijectors in data order, got "
                          f"{printable(type(layers).__name__)}")
    flat = _flatten(layers)
    bad = [type(b).__name__ for b in flat if not isinstance(b, tfp.bijectors.Bijector)]
    require(not bad, f"{call} should hold only bijectors (coupling(...), squeeze()), found "
            f"{printable(', '.join(bad[:3]))}")
    from flowlab.bijectors.squeeze import Squeeze

    squeezes = [i for i, b in enumerate(flat) if _is_squeeze(b)]
    if not squeezes and any(isinstance(b, Squeeze) for b in flat):
        raise CheckFailed("use squeeze() (Squeeze inverted): in data order the squeeze goes from (H, W, C) to "
                          "(H/2, W/2, 4C)")
    require(len(squeezes) == 1, f"{call} should hold exactly one squeeze(), between the checkerboard and the channel "
            f"couplings; found {len(squeezes)}")
    s = squeezes[0]
    couplings = [(i, b, _mask_of(b)) for i, b in enumerate(flat) if _mask_of(b) is not None]
    before = [(b, m) for i, b, m in couplings if i < s]
    after = [(b, m) for i, b, m in couplings if i > s]
    require(len(before) == 3 and len(after) == 3,
            f"a scale has 3 checkerboard couplings, a squeeze, then 3 channel couplings; {call} has {len(before)} "
            f"coupling(s) before the squeeze and {len(after)} after")
    ids = [id(b) for b, _ in before + after]
    conditioners = [id(getattr(b, "conditioner", b)) for b, _ in before + after]
    require(len(set(ids)) == len(ids) and len(set(conditioners)) == len(conditioners),
            "the same coupling (or conditioner) appears more than once: call coupling(...) once per layer, so that "
            "every layer has its own network and weights")
    for group, shape, kind, name in ((before, (h, w, c), "checkerboard", "before"),
                                     (after, (h // 2, w // 2, 4 * c), "channel", "after")):
        kinds = []
        for _, mask in group:
            found = _kind(mask, *shape)
            if found is None:
                raise CheckFailed(f"a coupling {name} the squeeze has a mask of shape {mask.shape} that is neither a "
                                  f"checkerboard nor a channel mask of shape {shape}: build it for the image shape at "
                                  "that point (after the squeeze: height/2, width/2, 4*channels)")
            kinds.append(found)
        if any(k != kind for k, _ in kinds):
            raise CheckFailed("checkerboard couplings come before the squeeze, channel couplings after it: "
                              "channel masks "
                              "need the 4 channels the squeeze makes")
        parities = [p for _, p in kinds]
        require(all(a != b for a, b in zip(parities, parities[1:])),
                f"the {kind} masks must alternate ({'parity' if kind == 'checkerboard' else 'half'} 0, 1, 0): with the "
                "same mask twice in a row, the second layer transforms the same half again and the other half is "
                "never transformed between them")


@check("one scale: checkerboard couplings, squeeze, channel couplings")
@_calm
def scale_layers(fn: Callable) -> None:
    """3 checkerboard couplings (alternating parity), one squeeze, 3 channel couplings (alternating
    halves), each its own layer, at both scales the lab uses."""
    need_function(fn, "scale_layers")
    _one_scale(fn, 28, 28, 1)
    _one_scale(fn, 14, 14, 2)


# --- Exercise 6: bits per dimension ---------------------------------------------------------------

@check("bits per dimension")
@_calm
def bits_per_dim(fn: Callable) -> None:
    """-log_prob / (D ln 2) + 8 for densities of (x + u) / 256, elementwise, on NumPy arrays (as the lab calls it)."""
    need_function(fn, "to_bits_per_dim")
    log_prob = np.array([0.0, -_DIMS * math.log(2.0), -3000.0, 1000.0], dtype=np.float32)
    with student_code("to_bits_per_dim(log_prob, num_dims)"):
        raw = fn(log_prob.copy(), _DIMS)
    got = _numbers(raw, "to_bits_per_dim(log_prob, num_dims)")
    expected = -log_prob.astype(np.float64) / (_DIMS * math.log(2.0)) + 8.0
    require(got.shape == log_prob.shape,
            f"got shape {got.shape} for {len(log_prob)} log-probabilities: work elementwise")
    if np.allclose(got, expected - 8.0, atol=1e-4):
        raise CheckFailed("add the log-det of dividing by 256: log2(256) = 8 bits per dimension "
                          "(a uniform density on [0, 1) must score 8 bits/dim)")
    if np.allclose(got, (expected - 8.0) * math.log(2.0) + math.log(256.0), atol=1e-4) or np.allclose(
            got, (expected - 8.0) * math.log(2.0) + 8.0, atol=1e-4):
        raise CheckFailed("that is nats per dimension: divide by ln 2 to get bits")
    if np.allclose(got, -(expected - 8.0) + 8.0, atol=1e-4):
        raise CheckFailed("mind the sign: bits/dim is the NEGATIVE log-likelihood per dimension")
    if np.allclose(got, -log_prob / math.log(2.0) + 8.0, atol=1e-4) or np.allclose(got, expected * _DIMS, atol=1e-2):
        raise CheckFailed("divide by num_dims: bits per DIMENSION, not per image")
    require(bool(np.allclose(got, expected, atol=1e-4)), "bits/dim = -log_prob / (num_dims * ln 2) + log2(256)")


# --- Exercise 7: the trained flow -----------------------------------------------------------------

def _coupling_groups(bijector: Any) -> list[list[np.ndarray]]:
    """The masks of a flow's couplings in data order, in runs not broken by a squeeze or a factoring out."""
    from tensorflow_probability.python.bijectors.chain import _Chain

    from flowlab.flows.multiscale import MultiScale

    groups: list[list[np.ndarray]] = [[]]

    def walk(b: Any) -> None:
        if isinstance(b, _Chain):
            for part in b.bijectors:
                walk(part)
        elif isinstance(b, MultiScale):
            for level in list(b._levels) + [b._final]:
                groups.append([])
                walk(level)
                groups.append([])
        elif _is_squeeze(b):
            groups.append([])
        else:
            mask = _mask_of(b)
            if mask is not None:
                groups[-1].append(mask)

    walk(bijector)
    return [g for g in groups if g]


def _jacobian_log_prob(flow: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow.log_prob(y), log N(z) + log|det dz/dy|) with the Jacobian by brute force (autodiff)."""
    tf = _tf()
    yt = tf.constant(y)
    with tf.GradientTape() as tape:
        tape.watch(yt)
        with student_code("flow.bijector.inverse(y)"):
            z = tf.convert_to_tensor(flow.bijector.inverse(yt))
        z_flat = tf.reshape(z, [len(y), -1])
    with student_code("autodiff through flow.bijector.inverse(y)"), _quiet_tf():
        jacobian = tape.batch_jacobian(z_flat, yt, experimental_use_pfor=True)
    if jacobian is None:
        raise CheckFailed("the flow's map is not differentiable with TensorFlow: write every piece with TensorFlow ops")
    dims = int(np.prod(y.shape[1:]))
    j = jacobian.numpy().reshape(len(y), dims, dims).astype(np.float64)
    sign, log_det = np.linalg.slogdet(j)
    require(bool(np.all(sign != 0)), "the flow's Jacobian is singular on a test image: the map is not invertible")
    base = -0.5 * np.sum(z_flat.numpy().astype(np.float64) ** 2, axis=1) - 0.5 * dims * math.log(2 * math.pi)
    with student_code("flow.log_prob(y)"):
        claimed = _numbers(flow.log_prob(yt), "flow.log_prob(y)")
    return claimed.reshape(-1), base + log_det


@cached
def mnist_test_set(fast: bool) -> np.ndarray:
    """The lab's ``y_test`` (its test digits, dequantized with the data cell's seed) for the current mode."""
    from flowlab.bijectors.dequantize import uniform_dequantize
    from flowlab.datasets.mnist import load_mnist_splits

    test_images = load_mnist_splits(*((2000, 500, 500) if fast else (8000, 1000, 1000)), seed=0)[2]
    return uniform_dequantize(test_images, seed=[3, 4]).numpy()


@check("test bits/dim of the trained RealNVP")
@_calm
def trained_flow(flow: Any, y_test: Any, test_bpd: Any) -> None:
    """``flow.log_prob`` is the density of its own map (brute-force Jacobian on a test image), sampling
    inverts it, ``test_bpd`` is the mean bits/dim of ``y_test``, and that is below the threshold
    measured in fast mode (``TRAINED_BPD_THRESHOLD``)."""
    import tensorflow_probability as tfp

    tf = _tf()
    need(flow, "flow", tfp.distributions.Distribution)
    # Called through the module so that the tests can stand synthetic digits in for MNIST's.
    y = held_out(_numbers(y_test, "y_test"), "y_test", lambda: mnist_test_set(), atol=1e-5).astype(np.float32)
    require(y.ndim == 4 and y.shape[1:] == (28, 28, 1) and len(y) >= 1,
            f"y_test should be dequantized test images of shape (n, 28, 28, 1), got {y.shape}")
    bijector = getattr(flow, "bijector", None)
    require(isinstance(bijector, tfp.bijectors.Bijector),
            "flow should be a tfd.TransformedDistribution (base + bijector)")
    got = _numbers(test_bpd, "test_bpd")
    require(got.size == 1, f"test_bpd should be one number (the mean over the test images), got shape {got.shape}")
    for group in _coupling_groups(bijector):
        require(all(a.shape == b.shape and bool(np.array_equal(b, 1.0 - a)) for a, b in zip(group, group[1:])),
                "in the trained flow two consecutive couplings use the same mask: each mask must be the complement "
                "of the one before (alternate the parity / half), or some variables are never transformed there")
    claimed, honest = _jacobian_log_prob(flow, y[:1])
    require(bool(np.all(np.isfinite(claimed))), "flow.log_prob is not finite on a test image: did training diverge?")
    require(bool(np.all(np.abs(claimed - honest) < _LOG_DET_TOLERANCE)),
            "flow.log_prob is not the density of the flow's own map: it differs from log N(z) + log|det dz/dy| "
            "computed by autodiff on a test image. A log-determinant is missing or has the wrong sign (the logit's, "
            "a coupling's): fix the function it comes from, then rerun the model and training cells")
    with student_code("flow.bijector.inverse(y)"):
        z = _numbers(flow.bijector.inverse(tf.constant(y[:4])), "flow.bijector.inverse(y)")
    with student_code("flow.bijector.forward(z) (sampling runs your coupling_inverse)"):
        x = _numbers(flow.bijector.forward(tf.constant(z, tf.float32)), "flow.bijector.forward(z)")
    with student_code("flow.bijector.inverse(x)"):  # a fresh tensor: TFP's cache would hand back z itself
        again = _numbers(flow.bijector.inverse(tf.constant(x, tf.float32)), "the round trip")
    require(again.shape == z.shape and bool(np.allclose(again, z, atol=1e-2, rtol=1e-3)),
            "sampling does not invert the density's map: for z = flow.bijector.inverse(y), generating from z and "
            "mapping back does not give z (coupling_inverse must undo coupling_forward)")
    from flowlab.bits_per_dim import bits_per_dim as reference

    values = []
    for i in range(0, len(y), 250):
        with student_code("flow.log_prob(y_test)"):
            values.append(_numbers(flow.log_prob(tf.constant(y[i : i + 250])), "flow.log_prob(y_test)").reshape(-1))
    expected = float(np.mean(reference(np.concatenate(values), _DIMS).numpy()))
    require(bool(np.isfinite(expected)), "the test log-likelihood is not finite: did training diverge?")
    value = float(got.reshape(()))
    if np.isclose(value, expected - 8.0, atol=1e-3):
        raise CheckFailed("test_bpd misses the 8 bits of the rescaling by 256: use your to_bits_per_dim")
    require(bool(np.isclose(value, expected, rtol=1e-3, atol=1e-3)),
            "test_bpd should be the mean of to_bits_per_dim(log_prob, 784) over y_test, "
            "log_prob from the trained model "
            "(the selected checkpoint)")
    require(expected < TRAINED_BPD_THRESHOLD,
            f"the trained flow scores above {TRAINED_BPD_THRESHOLD:g} bits/dim on the test images, where a correct "
            "answer lands well below after this training: was the model trained on your dequantized images "
            "(fresh noise, divided by 256), and is the best epoch's checkpoint loaded?")
