"""Checks for lab 06, beyond affine layers: NICE's additive coupling, the spline's parameters, a transformer.

Behavioural throughout: the student's functions are called on inputs chosen here (fixed points, a
fixed nonlinear shift network, raw spline parameters from tame to extreme) and compared with what
the idea demands, in eager mode and inside a ``tf.function`` (``model.fit`` runs them there).  Any
correct way of writing an answer passes: masks by multiplication or by ``tf.where``, a softmax or a
normalised exponential, softplus or exponential slopes, any monotone affine transformer.  The
trained-flow checks take the flows the notebook built from the student's own answers and judge
them by their density (it integrates to 1 on a grid) and their test NLL, with limits set from
fast-mode runs over seeds (``bench/check_margins.md``, "Lab 06").
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.checks.core import CheckFailed, check, need, need_function, printable, require, student_code, to_numpy
from flowlab.checks.held_out import cached, held_out

__all__ = [
    "additive_coupling",
    "spline_parameter_count",
    "spline_parameters",
    "transformer",
    "trained_flow",
    "measure",
    "NLL_LIMITS",
]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate functions at, fixed so that verdicts never depend on a random draw.
_X2 = np.array([[0.3, -1.2], [1.5, 0.4], [-2.0, 2.5], [0.0, 0.0], [-0.7, -0.1]], dtype=np.float32)
_X4 = np.array([[0.3, -1.2, 0.8, 2.0], [1.5, 0.4, -0.6, -1.1], [-2.0, 2.5, 0.1, 0.9]], dtype=np.float32)
_MASKS = (np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32),
          np.array([1.0, 0.0, 1.0, 0.0], np.float32))
# Limits on the trained flows' test NLL (nats per point), set from the notebook's fast mode over seeds 0-2
# (bench/check_margins_beyond_affine.py; bench/check_margins.md, "Lab 06"): each sits between the correct
# answers' worst seed and what a flow that did not learn scores (the untrained flow is the base: 2.49
# nats on these test points; NICE without its scaling cannot go below log 2 pi = 1.84).
NLL_LIMITS = {"NICE": 2.0, "spline": 1.2, "coupling": 1.6}
# Where the densities are integrated: both data sets lie well inside; step below the data's noise.
_GRID = (np.linspace(-4.0, 5.0, 181, dtype=np.float32), np.linspace(-4.0, 5.0, 181, dtype=np.float32))
_MASS_TOLERANCE = 0.05


@contextlib.contextmanager
def _quiet_tf() -> Iterator[None]:
    """Silence TensorFlow's retracing and autograph warnings while a check runs the student's code."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    old = os.environ.get("AUTOGRAPH_VERBOSITY")
    os.environ["AUTOGRAPH_VERBOSITY"] = "0"
    try:
        yield
    finally:
        logger.setLevel(level)
        if old is None:
            os.environ.pop("AUTOGRAPH_VERBOSITY", None)
        else:
            os.environ["AUTOGRAPH_VERBOSITY"] = old


def _shift_network(dims: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """A fixed nonlinear conditioner ``t(u)``: every output depends on every input."""
    rng = np.random.default_rng(dims)
    a = tf.constant(rng.standard_normal((dims, dims)).astype(np.float32))
    b = tf.constant(rng.standard_normal(dims).astype(np.float32))

    def shift(u: tf.Tensor) -> tf.Tensor:
        return 1.5 * tf.tanh(tf.matmul(u, a) + b) + 0.25 * tf.square(u) @ tf.ones([dims, dims]) / dims

    return shift


def _run(fn: Callable, args: tuple, what: str, graph: bool) -> np.ndarray:
    def call(*a: Any) -> Any:
        return fn(*a)

    with student_code(what), _quiet_tf():
        out = tf.function(call)(*args) if graph else fn(*args)
    return to_numpy(out, f"the result of {what}")


def _close(got: np.ndarray, expected: np.ndarray, atol: float = 1e-4) -> bool:
    return got.shape == expected.shape and bool(np.allclose(got, expected, atol=atol))


@check("additive coupling (NICE): forward, inverse and log-det")
def additive_coupling(forward: Any, inverse: Any, log_det: Any) -> None:
    """``forward(x, mask, shift_fn) -> z``, ``inverse(z, mask, shift_fn) -> x``, ``log_det(x, mask, shift_fn)``."""
    for fn, name in ((forward, "additive_forward"), (inverse, "additive_inverse"), (log_det, "additive_log_det")):
        need_function(fn, name)
    for graph in (False, True):
        where = " inside a tf.function (as model.fit runs it)" if graph else ""
        for mask in _MASKS:
            dims = len(mask)
            x = _X2 if dims == 2 else _X4
            shift = _shift_network(dims)
            args = (tf.constant(x), tf.constant(mask), shift)
            z = _run(forward, args, "additive_forward(x, mask, shift_fn)", graph)
            t = shift(tf.constant(x * mask)).numpy()
            expected = mask * x + (1 - mask) * (x + t)
            require(z.shape == x.shape, f"additive_forward returned shape {z.shape} for x of shape {x.shape}{where}: "
                    "the coupling keeps the shape")
            require(bool(np.allclose(z[:, mask == 1], x[:, mask == 1], atol=1e-5)),
                    "additive_forward changed the variables where mask is 1: those are copied unchanged (they "
                    "are what the inverse reads to recompute the shift)")
            if not _close(z, expected):
                unmasked = x + shift(tf.constant(x)).numpy()
                require(not _close(z[:, mask == 0], unmasked[:, mask == 0]),
                        "additive_forward computes the shift from all of x; it must read only the copied part, "
                        "shift_fn(mask * x), or the inverse could not recompute it")
                require(not _close(z, mask * x + (1 - mask) * (x - t)),
                        "additive_forward subtracts the shift; NICE's forward adds it, z = x + t(mask * x) on the "
                        "transformed part (and the inverse subtracts it)")
                raise CheckFailed(f"additive_forward{where} does not give z = mask * x + (1 - mask) * (x + "
                                  "shift_fn(mask * x))")
            back = _run(inverse, (tf.constant(expected.astype(np.float32)), tf.constant(mask), shift),
                        "additive_inverse(z, mask, shift_fn)", graph)
            if not _close(back, x):
                require(back.shape == x.shape, f"additive_inverse returned shape {back.shape}; expected {x.shape}")
                require(not _close(back, expected + (1 - mask) * t),
                        "additive_inverse adds the shift again; it must undo the forward: x = z - t(mask * z) on "
                        "the transformed part")
                raise CheckFailed(f"additive_inverse{where} does not undo additive_forward: recompute the shift "
                                  "from the copied part of z (mask * z equals mask * x) and subtract it")
            ld = _run(log_det, args, "additive_log_det(x, mask, shift_fn)", graph)
            require(ld.shape == (len(x),), f"additive_log_det returned shape {ld.shape}; expected one number per "
                    f"example, shape ({len(x)},)")
            require(bool(np.allclose(ld, 0.0, atol=1e-6)),
                    "additive_log_det is not 0: the Jacobian of an additive coupling is triangular with ones on "
                    "its diagonal (dz_i/dx_i = 1), so its log-determinant is 0 at every point")


@check("spline parameter count")
def spline_parameter_count(count: Any) -> None:
    """``count(bins)``: widths, heights and interior knot slopes of a ``bins``-piece spline."""
    need_function(count, "spline_parameter_count")
    for bins in (2, 3, 5, 8, 16):
        with student_code(f"spline_parameter_count({bins})"):
            got = count(bins)
        value = to_numpy(got, f"spline_parameter_count({bins})")
        require(value.shape == () and float(value) == int(value),
                f"spline_parameter_count({bins}) should be one whole number, got {printable(got)}")
        n = int(value)
        require(n != 3 * bins + 1, f"spline_parameter_count({bins}) = {n} counts the slopes at both ends of the "
                "interval too: they are fixed at 1 so the spline joins the identity outside; only the K - 1 interior "
                "knots have free slopes")
        require(n != 3 * bins, f"spline_parameter_count({bins}) = {n}: a spline of K bins has K widths, K heights "
                "and K - 1 interior knot slopes")
        require(n != 2 * bins, f"spline_parameter_count({bins}) = {n} leaves out the knot slopes (K - 1 of them)")
        require(n == 3 * bins - 1, f"spline_parameter_count({bins}) = {n}: count K bin widths, K bin heights and "
                "K - 1 interior knot slopes")


def _spline_raw() -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    return [rng.standard_normal((4, 3, 17)).astype(np.float32),
            (25.0 * rng.standard_normal((2, 17))).astype(np.float32),
            np.zeros((1, 17), np.float32)]


@check("spline parameters: widths and heights fill the interval, slopes positive")
def spline_parameters(fn: Any) -> None:
    """``fn(raw, bins, bound) -> (widths, heights, slopes)`` with the spline's constraints, for any raw values."""
    need_function(fn, "spline_parameters")
    bins, bound = 6, 2.5
    for graph in (False, True):
        for raw in _spline_raw():
            raw_t = tf.constant(raw)
            def split(r: tf.Tensor) -> Any:
                return fn(r, bins, bound)

            with student_code("spline_parameters(raw, bins, bound)"), _quiet_tf():
                # a named function: AutoGraph cannot parse two lambdas on one line, and would say so
                out = (tf.function(split) if graph else split)(raw_t)
            require(isinstance(out, (tuple, list)) and len(out) == 3,
                    "spline_parameters should return three tensors: (widths, heights, slopes)")
            widths, heights, slopes = (to_numpy(v, what) for v, what in zip(out, ("widths", "heights", "slopes")))
            batch = raw.shape[:-1]
            for value, what, size in ((widths, "widths", bins), (heights, "heights", bins),
                                      (slopes, "slopes", bins - 1)):
                require(value.shape == (*batch, size), f"the {what} have shape {value.shape} for raw parameters of "
                        f"shape {raw.shape}; expected {(*batch, size)} (the raw vector's 3K - 1 = 17 values split as "
                        "K widths, K heights, K - 1 slopes)")
                require(bool(np.all(np.isfinite(value))), f"some {what} are not finite for large raw values: "
                        "use a softmax / softplus, which stay finite")
            for value, what in ((widths, "widths"), (heights, "heights")):
                require(bool(np.all(value > 0)), f"some bin {what} are not positive: a bin needs a positive size "
                        "(a softmax gives positive numbers)")
                total = value.sum(axis=-1)
                require(not bool(np.allclose(total, 1.0, atol=1e-3)),
                        f"the bin {what} sum to 1; they must sum to the interval's width 2B = {2 * bound} (scale the "
                        "softmax by 2B)")
                require(bool(np.allclose(total, 2 * bound, rtol=1e-4)),
                        f"the bin {what} must sum to the interval's width 2B = {2 * bound}, so the spline maps "
                        "[-B, B] onto itself (normalise them, e.g. a softmax times 2B)")
            require(bool(np.all(slopes > 0)), "some knot slopes are not positive: the derivative at every knot must "
                    "be positive for the spline to be strictly increasing (softplus or exp)")
    with student_code("gradients of spline_parameters"):
        raw_t = tf.constant(_spline_raw()[0])
        with tf.GradientTape() as tape:
            tape.watch(raw_t)
            w, h, s = fn(raw_t, bins, bound)
            loss = tf.reduce_sum(tf.sin(w)) + tf.reduce_sum(tf.cos(h)) + tf.reduce_sum(tf.sin(s))
        grad = tape.gradient(loss, raw_t)
    require(grad is not None and bool(np.all(np.isfinite(to_numpy(grad, "the gradient")))),
            "spline_parameters is not differentiable: use TensorFlow operations so the conditioner can be trained")


def _bijector(fn: Callable, params: np.ndarray, what: str) -> Any:
    with student_code(what), _quiet_tf():
        out = fn(tf.constant(params))
    if not isinstance(out, tfb.Bijector):
        raise CheckFailed(f"{what} should return a tfb.Bijector, got {printable(type(out).__name__)}")
    return out


def _values(fn: Callable, what: str, *args: Any) -> np.ndarray:
    with student_code(what), _quiet_tf():
        out = fn(*args)
    return to_numpy(out, f"the result of {what}")


@check("a transformer for the generic coupling: affine, bounded log-scale")
def transformer(fn: Any, params_per_dim: Any) -> None:
    """``fn(params) -> elementwise bijector``: monotone, affine in z, the identity at 0, exact log-det, bounded scale."""  # noqa: E501
    need_function(fn, "affine_transformer")
    need(params_per_dim, "AFFINE_PARAMS")
    count = to_numpy(params_per_dim, "AFFINE_PARAMS")
    require(count.shape == () and float(count) == 2.0,
            f"AFFINE_PARAMS = {printable(params_per_dim)}: an affine transformer needs 2 parameters per variable "
            "(a shift and a log-scale)")
    rng = np.random.default_rng(3)
    z = np.linspace(-3.0, 3.0, 7, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    zero = _bijector(fn, np.zeros((7, 2, 2), np.float32), "affine_transformer(zeros)")
    with student_code("forward_min_event_ndims of the transformer's bijector"):
        ndims = zero.forward_min_event_ndims
    flat = tf.nest.flatten(ndims)
    require(len(flat) == 1 and isinstance(flat[0], (int, np.integer)) and int(flat[0]) == 0,
            "the transformer must return an elementwise bijector "
            f"(forward_min_event_ndims 0, like tfb.Shift and tfb.Scale); got {printable(ndims)}")
    require(_close(_values(zero.forward, "bijector.forward(z)", tf.constant(z)), z, atol=1e-5),
            "with all parameters 0 the transformer must be the identity (shift 0, log-scale 0 means scale 1): "
            "a zero-initialised conditioner then starts every layer as the identity")
    params = (0.7 * rng.standard_normal((1, 2, 2))).astype(np.float32)  # one transformer per variable, all rows
    tau = _bijector(fn, params, "affine_transformer(params)")
    zt = tf.constant(z)
    with student_code("bijector.forward(z)"), _quiet_tf(), tf.GradientTape() as tape:
        tape.watch(zt)
        x = tau.forward(zt)
    x_np = to_numpy(x, "bijector.forward(z)")
    require(x_np.shape == z.shape, f"bijector.forward(z) has shape {x_np.shape}; expected {z.shape} (elementwise)")
    with student_code("the gradient of bijector.forward"):
        slope = tape.gradient(x, zt)
    slope = to_numpy(slope, "dx/dz")
    require(bool(np.all(slope > 0)), "the transformer is not increasing in z: the scale must be positive, "
            "exp(log-scale), not the raw parameter")
    require(bool(np.allclose(slope, slope[:1], atol=1e-4)), "the transformer is not affine in z: x = z * exp(s) + t")
    shift_part = x_np[3]  # z = 0: the shift alone
    require(bool(np.abs(shift_part).max() > 1e-3) and bool(np.abs(np.log(slope[0])).max() > 1e-3),
            "the transformer ignores one of its two parameters: params[..., 0] and params[..., 1] are the shift "
            "and the log-scale")
    ldj = _values(lambda v: tau.forward_log_det_jacobian(v, event_ndims=0),
                  "bijector.forward_log_det_jacobian(z, event_ndims=0)", tf.constant(z))
    try:
        ldj = np.broadcast_to(ldj, z.shape)
    except ValueError:
        raise CheckFailed(f"the bijector's forward_log_det_jacobian(z, event_ndims=0) has shape {ldj.shape}; an "
                          f"elementwise bijector gives one value per variable, {z.shape}") from None
    require(_close(ldj, np.log(slope), atol=1e-4),
            "the bijector's log-det is not log dx/dz: build it from TFP bijectors (tfb.Shift, tfb.Scale) so the "
            "log-det comes with them")
    back = _values(tau.inverse, "bijector.inverse(x)", tf.constant(x_np.astype(np.float32)))
    require(_close(back, z, atol=1e-4), "the bijector's inverse does not undo its forward")
    huge = np.zeros((2, 2, 2), np.float32)
    huge[..., 0], huge[0, :, 1], huge[1, :, 1] = 0.5, 100.0, -100.0
    big = _bijector(fn, huge, "affine_transformer(params with log-scale ±100)")
    ldj_big = _values(lambda v: big.forward_log_det_jacobian(v, event_ndims=0),
                      "bijector.forward_log_det_jacobian(z, event_ndims=0)", tf.ones([2, 2]))
    require(bool(np.all(np.isfinite(ldj_big))) and bool(np.abs(ldj_big).max() < 20.0),
            "the log-scale is not bounded: a log-scale parameter of 100 scales by e^100; bound it softly, "
            "c * tanh(s / c) (flowlab.transformers.bound_log_scale), so one layer cannot blow up")
    small = np.zeros((1, 2, 2), np.float32)
    small[..., 1] = 0.05
    near = _bijector(fn, small, "affine_transformer(small params)")
    ldj_small = _values(lambda v: near.forward_log_det_jacobian(v, event_ndims=0),
                        "bijector.forward_log_det_jacobian(z, event_ndims=0)", tf.ones([1, 2]))
    require(bool(np.allclose(ldj_small, 0.05, rtol=0.05)),
            "for a small log-scale s the bound must leave s almost unchanged (c * tanh(s / c) ≈ s): the bound "
            "should only bite for large s")


def measure(flow: Any, x_test: Any) -> tuple[float, float]:
    """``(mass on the grid, test NLL in nats per point)`` of a trained flow: what :func:`trained_flow` judges."""
    with student_code("flow.log_prob"):
        log_prob = getattr(flow, "log_prob", None)
    require(callable(log_prob), f"expected a trained flow with a log_prob method, got {printable(type(flow).__name__)}")
    xs, ys = _GRID
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    with student_code("flow.log_prob on a grid of points"), _quiet_tf():
        # one call: each eager call through a deep flow has a fixed cost, and 181² points fit in memory
        values = to_numpy(log_prob(tf.constant(points)), "log_prob")
    with np.errstate(all="ignore"):
        density = np.exp(np.where(np.isnan(values), np.inf, np.minimum(values, 700.0))).reshape(len(ys), len(xs))
    mass = float(np.trapezoid(np.trapezoid(density, xs.astype(np.float64), axis=1), ys.astype(np.float64)))
    x = np.asarray(x_test, np.float32)
    with student_code("flow.log_prob on the test points"), _quiet_tf():
        test = to_numpy(log_prob(tf.constant(x)), "log_prob")
    require(test.shape == (len(x),), f"log_prob of {len(x)} test points has shape {test.shape}; expected ({len(x)},)")
    return mass, -float(np.mean(test))


_HINTS = {
    "NICE": "the NICE flow built from your additive coupling does not fit two moons: check additive_forward/"
            "additive_inverse above, and run the training cell after them",
    "spline": "the spline flow built from your spline_parameters does not fit two moons: check the spline TODO "
              "above, and run the training cell after it",
    "coupling": "the coupling flow built from your affine_transformer does not fit two moons: check the "
                "transformer TODO above, and run the training cell after it",
}


@cached
def moons_test_set(fast: bool) -> np.ndarray:
    """The lab's ``X_moons_test`` for the current mode, as its data cell makes it."""
    from flowlab.datasets import load_two_moons

    return load_two_moons(*((1024, 1000) if fast else (8192, 2000)), seed=0)[1]


@check("trained flow built from your answers fits two moons")
def trained_flow(flow: Any, x_test: Any, kind: str) -> None:
    """The trained flow's density integrates to 1 on a grid and its test NLL is below ``NLL_LIMITS[kind]``."""
    if kind not in NLL_LIMITS:
        raise ValueError(f"kind must be one of {sorted(NLL_LIMITS)}, got {kind!r}")
    need(flow, "the trained flow (built from your answers above)")
    x_test = held_out(x_test, "X_moons_test", moons_test_set).astype(np.float32)
    mass, nll = measure(flow, x_test)
    require(bool(np.isfinite(nll)), "the test log-likelihood is not finite: did training diverge?")
    require(bool(np.isfinite(mass)) and mass < 1.0 + _MASS_TOLERANCE,
            "the trained density integrates to more than 1 over the plane: a log-det has the wrong sign or is "
            "missing, so log_prob is not a density")
    require(nll < NLL_LIMITS[kind], _HINTS[kind])
    require(mass > 1.0 - _MASS_TOLERANCE, "the trained density integrates to less than 1 over the plane: a "
            "log-det has the wrong sign")
