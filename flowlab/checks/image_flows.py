"""Checks for lab 07, image flows: Glow's 1×1 convolution (forward and log-det), its LU parameterisation,
the variational dequantization bound, and the trained Glow and variationally dequantized models.

The trained models are built from the student's functions: ``FunctionConv1x1`` runs their ``conv1x1``
(data to latent) and their ``lu_weight`` (``W`` and ``log|det W|``) in every Glow step, and
``DequantizedDensityModel`` trains with their ``dequantization_bound`` as the objective.  Log-dets are
judged against autodiff Jacobians and ``slogdet`` computed here, never against the student's claim.
Thresholds on the trained models are measured in fast mode over seeds: ``bench/check_margins.md``
(Lab 07) and ``bench/check_margins_image_flows.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from flowlab.checks.core import CheckFailed, check, need, need_function, require, student_code

# The graph runner, the NumPy-warning guard and the stub detector are lab 04's: same stack, same rules.
from flowlab.checks.held_out import cached, held_out
from flowlab.checks.mnist import _calm, _in_graph, _numbers, _quiet_tf, until_written

__all__ = [
    "until_written",
    "conv1x1",
    "lu_weight",
    "dequantization_bound",
    "trained_glow",
    "variational_dequantization",
    "GLOW_BPD_THRESHOLD",
    "VARIATIONAL_BPD_THRESHOLD",
]

# Test bits/dim below which a trained model counts as "trained": measured in fast mode over seeds
# (bench/check_margins.md, Lab 07; bench/check_margins_image_flows.py): the solution's Glow lands at
# 4.90-4.91 and its variationally dequantized Glow at 5.22-5.27; untrained, the Glow scores 6.71-6.75.
GLOW_BPD_THRESHOLD = 5.8
VARIATIONAL_BPD_THRESHOLD = 5.8
_LOG_DET_TOLERANCE = 1e-2  # nats, relative to max(1, |log det|)


def lab_test_images() -> np.ndarray:
    """The lab's ``test_images`` (the integer test digits of its split) for the current mode."""
    return _lab_test_data()[0]


def lab_y_test() -> np.ndarray:
    """The lab's ``y_test``: its test digits dequantized with the data cell's seed, for the current mode."""
    return _lab_test_data()[1]


@cached
def _lab_test_data(fast: bool) -> tuple[np.ndarray, np.ndarray]:
    from flowlab.bijectors.dequantize import uniform_dequantize
    from flowlab.datasets.mnist import load_mnist_splits

    images = load_mnist_splits(*((400, 200, 200) if fast else (8000, 1000, 1000)), seed=0)[2]
    return np.asarray(images), uniform_dequantize(images, seed=[3, 4]).numpy()


def _tf():
    import tensorflow as tf

    return tf


def _pair(out: Any, what: str, names: str) -> tuple[Any, Any]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise CheckFailed(f"{what} should return a pair {names}, got {type(out).__name__}")
    return out[0], out[1]


# --- Exercise 1: the 1x1 convolution ----------------------------------------------------------------

def _rng_weight(c: int, seed: int, det_sign: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c, c)) + 1.5 * np.eye(c)
    if np.sign(np.linalg.det(w)) != det_sign:
        w[0] *= -1.0
    return w.astype(np.float32)


@check("1x1 convolution: z = W x at every pixel, log-det H * W * log|det W|")
@_calm
def conv1x1(fn: Callable) -> None:
    """conv1x1(x, weight) -> (z, log_det) on (batch, H, W, C) images; z against W x, log_det against the
    autodiff Jacobian of the student's own z, W with a negative determinant included, inside tf.function."""
    need_function(fn, "conv1x1")
    tf = _tf()
    for (b, h, w, c), seed, sign in (((3, 2, 3, 3), 1, -1.0), ((2, 4, 4, 2), 2, 1.0)):
        x = np.random.default_rng(seed).standard_normal((b, h, w, c)).astype(np.float32)
        weight = _rng_weight(c, seed, sign)
        with student_code("conv1x1(x, weight)"):
            out = fn(tf.constant(x), tf.constant(weight))
        z_raw, ld_raw = _pair(out, "conv1x1(x, weight)", "(z, log_det)")
        z = _numbers(z_raw, "z from conv1x1")
        log_det = _numbers(ld_raw, "log_det from conv1x1")
        expected = np.einsum("bhwj,ij->bhwi", x.astype(np.float64), weight.astype(np.float64))
        require(z.shape == x.shape, f"z has shape {z.shape}, expected the images' shape {x.shape}")
        if not np.allclose(z, expected, atol=1e-4) and np.allclose(z, np.einsum("bhwj,ji->bhwi", x, weight), atol=1e-4):
            raise CheckFailed("z is W^T x: at each pixel z_i = sum_j W[i, j] x_j, i.e. x @ W^T (tf.linalg.matvec(W, x) "
                              "or tf.einsum('bhwj,ij->bhwi', x, W))")
        require(bool(np.allclose(z, expected, atol=1e-4)),
                "z is wrong: multiply every pixel's channel vector by W, z[b, h, w] = W @ x[b, h, w]")
        log_abs = float(np.linalg.slogdet(weight.astype(np.float64))[1])
        if log_det.shape in ((), (1,)) and np.allclose(log_det, h * w * log_abs, rtol=1e-4, atol=1e-3):
            raise CheckFailed(f"log_det should have one value per image, shape ({b},): the same number for each")
        require(log_det.shape == (b,), f"log_det has shape {log_det.shape}, expected ({b},): one value per image")
        require(bool(np.all(np.isfinite(log_det))),
                "log_det is not finite: det W can be negative, so take log|det W| (tf.linalg.slogdet), not log det W")
        if np.allclose(log_det, log_abs, rtol=1e-4, atol=1e-3):
            raise CheckFailed("the log-det counts W once, but W acts at every pixel: multiply log|det W| by H * W "
                              "(the Jacobian is block diagonal with one block W per pixel)")
        if np.allclose(log_det, -h * w * log_abs, rtol=1e-4, atol=1e-3):
            raise CheckFailed("the log-det has the wrong sign: z = W x scales volumes by |det W| at each pixel")
        if np.allclose(log_det, h * w * c * log_abs, rtol=1e-4, atol=1e-3):
            raise CheckFailed("the log-det counts each pixel's block C times: it is H * W * log|det W|")
    # Against autodiff on the last case: log|det dz/dx| of the student's own map.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        with student_code("conv1x1(x, weight) under tf.GradientTape"):
            zt, _ = _pair(fn(xt, tf.constant(weight)), "conv1x1(x, weight)", "(z, log_det)")
        flat = tf.reshape(tf.convert_to_tensor(zt), [b, -1]) if tf.is_tensor(zt) else None
    jacobian = tape.batch_jacobian(flat, xt) if flat is not None else None
    if jacobian is None:
        raise CheckFailed("z is not differentiable with TensorFlow: write conv1x1 with TensorFlow ops (model.fit "
                          "trains through it)")
    dims = h * w * c
    true = np.linalg.slogdet(jacobian.numpy().reshape(b, dims, dims).astype(np.float64))[1]
    require(bool(np.allclose(log_det, true, rtol=1e-4, atol=1e-3)),
            "log_det is not log|det dz/dx| (checked by autodiff): H * W * log|det W| per image")
    graph = _in_graph(fn, (tf.constant(x), tf.constant(weight)), "conv1x1")
    zg, lg = _pair(graph, "conv1x1 inside tf.function", "(z, log_det)")
    require(bool(np.allclose(_numbers(zg, "z"), expected, atol=1e-4) and np.allclose(_numbers(lg, "log_det"), true,
                                                                                     atol=1e-3)),
            "inside tf.function conv1x1 gives other values than when called directly: avoid Python-side state")


# --- Exercise 2: the LU parameterisation -------------------------------------------------------------

def _lu_inputs(c: int, seed: int) -> dict[str, np.ndarray]:
    """Raw parameters as the layer holds them: full matrices (only the strict triangles count), a permutation."""
    rng = np.random.default_rng(seed)
    perm = np.eye(c)[np.roll(rng.permutation(c), 1)]
    if np.allclose(perm, np.eye(c)):  # an identity P would hide a missing permutation
        perm = perm[::-1]
    return {"permutation": perm.astype(np.float32),
            "lower": rng.standard_normal((c, c)).astype(np.float32),
            "upper": rng.standard_normal((c, c)).astype(np.float32),
            "log_s": rng.normal(0.0, 0.5, c).astype(np.float32),
            "sign_s": np.where(rng.random(c) < 0.5, -1.0, 1.0).astype(np.float32)}


def _lu_reference(p: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    c = len(p["log_s"])
    lower = np.tril(p["lower"].astype(np.float64), -1) + np.eye(c)
    upper = np.triu(p["upper"].astype(np.float64), 1) + np.diag(p["sign_s"] * np.exp(p["log_s"].astype(np.float64)))
    return p["permutation"] @ lower @ upper, float(np.sum(p["log_s"]))


@check("LU parameterisation: W = P L (U + diag(s)), log|det W| = sum log|s|")
@_calm
def lu_weight(fn: Callable) -> None:
    """lu_weight(permutation, lower, upper, log_s, sign_s) -> (weight, log_abs_det); lower/upper are full
    matrices of which only the strict triangles are parameters; the log-det is sum(log_s), exactly slogdet(W)."""
    need_function(fn, "lu_weight")
    tf = _tf()
    for c, seed in ((4, 3), (3, 4)):
        p = _lu_inputs(c, seed)
        args = tuple(tf.constant(p[k]) for k in ("permutation", "lower", "upper", "log_s", "sign_s"))
        with student_code("lu_weight(permutation, lower, upper, log_s, sign_s)"):
            out = fn(*args)
        w_raw, ld_raw = _pair(out, "lu_weight(...)", "(weight, log_abs_det)")
        w = _numbers(w_raw, "weight from lu_weight")
        log_abs = _numbers(ld_raw, "log_abs_det from lu_weight")
        expected, expected_ld = _lu_reference(p)
        require(w.shape == (c, c), f"weight has shape {w.shape}, expected ({c}, {c})")
        lower_full = np.tril(p["lower"], -1) + np.eye(c)
        upper_plain = np.triu(p["upper"], 1) + np.diag(p["sign_s"] * np.exp(p["log_s"]))
        # Only the strict triangles are parameters: entries elsewhere in lower/upper must not change W.
        noise = np.random.default_rng(seed + 10).standard_normal((c, c)).astype(np.float32)
        moved = dict(p, lower=p["lower"] + np.triu(noise), upper=p["upper"] + np.tril(noise))
        with student_code("lu_weight(permutation, lower, upper, log_s, sign_s)"):
            out_moved = fn(*(tf.constant(moved[k]) for k in ("permutation", "lower", "upper", "log_s", "sign_s")))
        w_moved = _numbers(_pair(out_moved, "lu_weight(...)", "(weight, log_abs_det)")[0], "weight from lu_weight")
        if w_moved.shape == w.shape and not np.allclose(w_moved, w, atol=1e-5):
            raise CheckFailed("lower and upper are full matrices: keep only their strict triangles "
                              "(tf.linalg.band_part, or multiply by a triangular mask of ones), "
                              "so W is P L (U + diag s) "
                              "whatever the entries on and beyond the diagonal hold")
        if np.allclose(w, lower_full @ upper_plain, atol=1e-4):
            raise CheckFailed("the permutation is missing: W = P @ L @ (U + diag(s))")
        if np.allclose(w, p["permutation"] @ np.tril(p["lower"], -1) @ upper_plain, atol=1e-4):
            raise CheckFailed("L needs ones on its diagonal: L = strict lower triangle + I (so det L = 1)")
        if np.allclose(w, p["permutation"] @ lower_full @ (np.triu(p["upper"], 1) + np.diag(np.exp(p["log_s"]))),
                       atol=1e-4):
            raise CheckFailed("s = sign_s * exp(log_s): the sign matters, or W cannot start at the rotation it was "
                              "decomposed from")
        if np.allclose(w, p["permutation"] @ lower_full @ (np.triu(p["upper"], 1) + np.diag(p["sign_s"] * p["log_s"])),
                       atol=1e-4):
            raise CheckFailed("the diagonal is s = sign_s * exp(log_s), not log_s itself")
        require(bool(np.allclose(w, expected, atol=1e-4)),
                "weight is wrong: W = P @ (strict_lower(lower) + I) @ "
                "(strict_upper(upper) + diag(sign_s * exp(log_s)))")
        require(log_abs.size == 1, f"log_abs_det should be one number, got shape {log_abs.shape}")
        value = float(log_abs.reshape(()))
        if np.isclose(value, float(np.sum(np.exp(p["log_s"]))), atol=1e-4):
            raise CheckFailed("log|det W| = sum(log|s|) = sum(log_s): already logs, no exp")
        if np.isclose(value, -expected_ld, atol=1e-4) and abs(expected_ld) > 1e-3:
            raise CheckFailed("log_abs_det has the wrong sign: log|det W| = + sum(log_s)")
        true = float(np.linalg.slogdet(w.astype(np.float64))[1])
        require(bool(np.isclose(value, true, atol=1e-3)),
                "log_abs_det is not log|det W| (checked with slogdet of your W): det P = ±1, det L = 1, so it is "
                "sum(log_s)")
    graph = _in_graph(fn, args, "lu_weight")
    wg, _ = _pair(graph, "lu_weight inside tf.function", "(weight, log_abs_det)")
    require(bool(np.allclose(_numbers(wg, "weight"), expected, atol=1e-4)),
            "inside tf.function lu_weight gives another W than when called directly: avoid Python-side state")
    # Gradients must reach the parameters (they are trained through W).
    variables = [tf.Variable(p[k]) for k in ("lower", "upper", "log_s")]
    with tf.GradientTape() as tape:
        with student_code("lu_weight(...) under tf.GradientTape"):
            w_t, ld_t = _pair(fn(args[0], *variables, args[4]), "lu_weight(...)", "(weight, log_abs_det)")
            loss = tf.reduce_sum(tf.convert_to_tensor(w_t) ** 2) + tf.reduce_sum(tf.convert_to_tensor(ld_t))
    grads = tape.gradient(loss, variables)
    require(all(g is not None for g in grads), "no gradient reaches lower, upper or log_s: build W with TensorFlow "
            "ops from the tensors you are given (they are trainable variables in the model)")


# --- Exercise 3: the variational dequantization bound ------------------------------------------------

class _FixedDequantizer:
    """A stand-in q(u | x) that hands out fixed noise and log q: the bound becomes deterministic."""

    def __init__(self, u: np.ndarray, log_q: np.ndarray) -> None:
        self._u, self._log_q = u, log_q
        self.calls = 0

    def sample_and_log_prob(self, x: Any, seed: Any = None) -> tuple[Any, Any]:
        tf = _tf()
        self.calls += 1
        n = int(x.shape[0]) if getattr(x, "shape", None) is not None and x.shape[0] is not None else len(self._u)
        return tf.constant(self._u[:n]), tf.constant(self._log_q[:n])

    def __call__(self, x: Any, seed: Any = None) -> tuple[Any, Any]:
        return self.sample_and_log_prob(x, seed)


class _QuadraticFlow:
    """A stand-in density over [0, 1)^D: log p(y) = -sum 40 (y - 0.3)^2 (it depends on y, so a wrong y shows)."""

    def log_prob(self, y: Any) -> Any:
        tf = _tf()
        y = tf.convert_to_tensor(y, tf.float32)
        return -40.0 * tf.reduce_sum((y - 0.3) ** 2, axis=[-3, -2, -1])


def _bound_reference(x: np.ndarray, u: np.ndarray, log_q: np.ndarray, divisor: float = 256.0, dims: int = 784,
                     levels: float = 256.0) -> np.ndarray:
    y = (x.astype(np.float64) + u) / divisor
    return -40.0 * np.sum((y - 0.3) ** 2, axis=(1, 2, 3)) - dims * math.log(levels) - log_q


@check("variational dequantization bound: log p(x + u) - log q(u | x)")
@_calm
def dequantization_bound(fn: Callable) -> None:
    """dequantization_bound(flow, dequantizer, x) -> one lower bound on log P(x) per image, in nats:
    flow.log_prob((x + u) / 256) - D log 256 - log q(u | x), with (u, log q) from the dequantizer."""
    need_function(fn, "dequantization_bound")
    tf = _tf()
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.float32)
    u = rng.uniform(0.05, 0.95, x.shape).astype(np.float32)
    log_q = np.array([3.0, -2.0, 10.0], np.float32)
    flow, q = _QuadraticFlow(), _FixedDequantizer(u, log_q)
    with student_code("dequantization_bound(flow, dequantizer, x)"):
        raw = fn(flow, q, tf.constant(x))
    got = _numbers(raw, "dequantization_bound(flow, dequantizer, x)")
    expected = _bound_reference(x, u, log_q)
    require(q.calls >= 1, "draw the noise from the dequantizer: u, log_q = dequantizer.sample_and_log_prob(x)")
    if got.size == 1 and len(x) > 1:
        raise CheckFailed("return one bound per image (shape (batch,)), not the mean: the loss averages them")
    require(got.shape == (len(x),), f"the bound has shape {got.shape}, expected ({len(x)},): one value per image")
    if np.allclose(got, expected + 2 * log_q, atol=1e-2):
        raise CheckFailed("subtract log q(u | x): the bound is E_q[log p(x + u) - log q(u | x)], the entropy of q "
                          "pays for the noise it chooses")
    if np.allclose(got, expected + 784 * math.log(256.0), atol=1e-2):
        raise CheckFailed("the flow's density is of y = (x + u) / 256; in pixel space p(x + u) = p_Y(y) / 256^D: "
                          "subtract D * log(256)")
    if np.allclose(got, _bound_reference(x, 0 * u, log_q), atol=1e-2):
        raise CheckFailed("add the noise u to the pixels before rescaling: y = (x + u) / 256")
    if np.allclose(got, _bound_reference(x, u, log_q, divisor=255.0), atol=1e-2):
        raise CheckFailed("divide by 256, the number of pixel values: each x owns the bin [x, x + 1) / 256")
    y_wrong = x.astype(np.float64) / 256.0 + u
    if np.allclose(got, -40.0 * np.sum((y_wrong - 0.3) ** 2, axis=(1, 2, 3)) - 784 * math.log(256.0) - log_q,
                   atol=1e-2):
        raise CheckFailed("rescale the noise with the pixels: y = (x + u) / 256, not x / 256 + u")
    bits = -expected / (784 * math.log(2.0))
    if np.allclose(got, bits, atol=1e-3) or np.allclose(got, -bits, atol=1e-3):
        raise CheckFailed("return the bound in nats per image (log P(x) >= ...), not in bits/dim: the lab converts")
    if np.allclose(got, -expected, atol=1e-2):
        raise CheckFailed("mind the sign: this is a lower bound on log P(x) (a log-likelihood), not a loss")
    require(bool(np.allclose(got, expected, rtol=1e-5, atol=1e-2)),
            "the bound is flow.log_prob((x + u) / 256) - D * log(256) - log_q, with D = 784 pixels")
    graph = _in_graph(lambda xx: fn(flow, q, xx), (tf.constant(x),), "dequantization_bound")
    require(bool(np.allclose(_numbers(graph, "the bound inside tf.function"), expected, rtol=1e-5, atol=1e-2)),
            "inside tf.function dequantization_bound gives other values: write it with TensorFlow ops")


# --- The trained models ----------------------------------------------------------------------------

def _conv_layers(flow: Any) -> list[Any]:
    from flowlab.bijectors.conv1x1 import InvertibleConv1x1

    found: list[Any] = []
    for module in getattr(getattr(flow, "bijector", None), "submodules", ()):
        if isinstance(module, InvertibleConv1x1) and all(module is not f for f in found):
            found.append(module)
    return found


def _test_bpd(values: np.ndarray) -> float:
    return float(np.mean(values))


@check("the trained Glow: your 1x1 convolutions, an exact density, test bits/dim")
@_calm
def trained_glow(flow: Any, y_test: Any) -> None:
    """Every 1x1 convolution in the flow runs the student's functions; each layer's log-det is H*W*log|det W|
    of the W it uses (slogdet here), sampling inverts the density's map, and the test bits/dim is below the
    threshold measured in fast mode."""
    import tensorflow_probability as tfp

    from flowlab.bijectors.conv1x1 import FunctionConv1x1

    tf = _tf()
    need(flow, "flow", tfp.distributions.Distribution)
    y = held_out(_numbers(y_test, "y_test"), "y_test", lambda: lab_y_test(), atol=1e-5).astype(np.float32)
    require(y.ndim == 4 and y.shape[1:] == (28, 28, 1), f"y_test should be images (n, 28, 28, 1), got {y.shape}")
    convs = _conv_layers(flow)
    require(len(convs) > 0, "the flow holds no 1x1 convolution: build it with build_glow(conv1x1=your_conv)")
    require(all(isinstance(c, FunctionConv1x1) and c.lu_decomposed for c in convs),
            "the flow's 1x1 convolutions are not built from your conv1x1 and lu_weight "
            "(FunctionConv1x1 with lu_weight)")
    rng = np.random.default_rng(0)
    for conv in convs[:3] + convs[-1:]:
        x = tf.constant(rng.standard_normal((2, 3, 2, conv.channels)).astype(np.float32))
        with student_code(f"{conv.name}: your lu_weight and conv1x1"):
            weight = _numbers(conv.weight, "W")
            ildj = _numbers(conv.inverse_log_det_jacobian(x, event_ndims=3), "the layer's log-det")
            z = _numbers(conv.inverse(tf.identity(x)), "the layer's output")
        require(bool(np.all(np.isfinite(weight))), "a trained W holds NaN or infinite values: did training diverge?")
        true = 6 * float(np.linalg.slogdet(weight.astype(np.float64))[1])
        require(bool(np.allclose(ildj, true, atol=_LOG_DET_TOLERANCE * max(1.0, abs(true)))),
                "a 1x1 convolution's log-det in the trained flow is not H * W * log|det W| of the W it uses: "
                "check lu_weight's log_abs_det")
        require(bool(np.allclose(z, np.einsum("bhwj,ij->bhwi", x.numpy(), weight), atol=1e-3)),
                "the trained flow's 1x1 convolution does not compute W x with the W from lu_weight")
    with student_code("flow.bijector.inverse(y)"):
        z = _numbers(flow.bijector.inverse(tf.constant(y[:4])), "flow.bijector.inverse(y)")
    with student_code("flow.bijector.forward(z)"):
        back = _numbers(flow.bijector.forward(tf.constant(z, tf.float32)), "flow.bijector.forward(z)")
    require(bool(np.allclose(back, y[:4], atol=2e-3)),
            "sampling does not invert the density's map: forward(inverse(y)) is not y")
    values = []
    with student_code("flow.log_prob(y_test)"), _quiet_tf():
        for i in range(0, len(y), 250):
            values.append(_numbers(flow.log_prob(tf.constant(y[i : i + 250])), "log_prob").reshape(-1))
    lp = np.concatenate(values)
    require(bool(np.all(np.isfinite(lp))), "the test log-likelihood is not finite: did training diverge?")
    bpd = _test_bpd(-lp / (784 * math.log(2.0)) + 8.0)
    require(bpd < GLOW_BPD_THRESHOLD,
            f"the trained Glow scores above {GLOW_BPD_THRESHOLD:g} bits/dim on the test images, where correct answers "
            "land well below after this training: was it trained, and is the best validation checkpoint loaded?")


@check("the variationally dequantized Glow: trained with your bound")
@_calm
def variational_dequantization(model: Any, test_images: Any) -> None:
    """The model trains with the student's bound, its q is a learned dequantizer, and its test bits/dim
    (from the library's bound, with the model's own q) is below the threshold measured in fast mode."""
    from flowlab.bijectors.variational_dequantization import (
        DequantizedDensityModel,
        VariationalDequantizer,
        variational_bound,
    )

    tf = _tf()
    need(model, "vardeq_model", DequantizedDensityModel)
    require(isinstance(model.dequantizer, VariationalDequantizer),
            "the model's dequantizer should be a VariationalDequantizer (uniform noise would not be variational)")
    x = held_out(_numbers(test_images, "test_images"), "test_images", lambda: lab_test_images()).astype(np.float32)
    require(x.ndim == 4 and x.shape[1:] == (28, 28, 1) and bool(np.all(x == np.round(x))),
            "test_images should be the integer test images, shape (n, 28, 28, 1)")
    with student_code("the model (your dequantization_bound)"):
        theirs = _numbers(model(tf.constant(x[:64])), "the model's bound")
    ours = []
    for i in range(0, len(x), 250):
        ours.append(variational_bound(model.flow, model.dequantizer, tf.constant(x[i : i + 250]), seed=[i, 1]).numpy())
    ours = np.concatenate(ours).astype(np.float64)
    require(bool(np.all(np.isfinite(ours))), "the test bound is not finite: did training diverge?")
    # Same q, other noise draws: the student's mean and ours agree to Monte-Carlo error (a few nats per image).
    require(bool(abs(float(np.mean(theirs)) - float(np.mean(ours[:64]))) < 0.02 * 784),
            "the model's output is not the variational bound of its flow and q: train it with your "
            "dequantization_bound")
    bpd = float(np.mean(-ours / (784 * math.log(2.0))))
    require(bpd < VARIATIONAL_BPD_THRESHOLD,
            f"the variationally dequantized Glow scores above {VARIATIONAL_BPD_THRESHOLD:g} bits/dim on the test "
            "images: was it trained with your bound, and is the best validation checkpoint loaded?")
