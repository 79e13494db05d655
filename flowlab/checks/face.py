"""Checks for lab 03, the 2-D autoregressive mixture-CDF flow: network, log-likelihood, sampling, training.

Every call into the student's objects runs inside :func:`student_code`; the expected numbers are
computed on our side, from flowlab's own bijectors, at fixed points (no random draws).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF, MixtureConditioner2D
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks.core import CheckFailed, check, need, need_function, printable, require, student_code, to_numpy
from flowlab.checks.held_out import cached, held_out

__all__ = ["conditional_network", "ar_log_prob", "sample_in_order", "trained_moons_flow", "trained_face_flow",
           "measure_moons", "measure_face", "MASS_TOLERANCE", "MOONS_NLL_LIMIT", "FACE_NLL_LIMIT"]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate functions at, fixed so that verdicts never depend on a random draw.
_POINTS = np.array([[0.0, 0.0], [1.0, -0.5], [-1.5, 2.0], [0.3, 0.7], [2.0, 1.0], [-2.5, -1.0]], np.float32)
_X1 = np.linspace(-3.0, 3.0, 41, dtype=np.float32)[:, None]
_X1_WIDE = np.linspace(-30.0, 30.0, 121, dtype=np.float32)[:, None]
_KS_LIMIT = 0.06  # Kolmogorov-Smirnov distance for 2000 draws: a correct sampler exceeds it with p ~ 1e-6

# The trained-flow checks: the density must integrate to 1 over a grid that holds the data with a
# wide margin, and score below a limit on the test points (nats per point, both coordinates).
# bench/check_margins.md has the fast-mode numbers behind these limits, over seeds.
MASS_TOLERANCE = 0.05
MOONS_NLL_LIMIT = 0.85  # fast mode, 5 seeds: correct 0.45-0.55; no hidden layer 1.12-1.40; relu output 1.91-2.24
FACE_NLL_LIMIT = 1.5    # fast mode, 5 seeds: correct 1.36-1.39; no hidden layer 1.59-1.61; relu output 2.56-2.71
_MOONS_GRID = (np.linspace(-3.0, 4.0, 351, dtype=np.float32), np.linspace(-3.0, 3.5, 326, dtype=np.float32))
_FACE_GRID = (np.linspace(-7.0, 7.0, 351, dtype=np.float32), np.linspace(-6.0, 7.5, 338, dtype=np.float32))


def _reference_conditioner() -> MixtureConditioner2D:
    """K = 2 mixtures whose theta_2 depends strongly (and nonlinearly) on x1; no random weights."""

    def theta2(x1: tf.Tensor) -> tf.Tensor:
        return tf.concat(
            [0.8 * x1, -0.8 * x1, 2.0 * tf.tanh(x1) - 1.0, 1.5 * x1 + 1.0, 0.3 * tf.sin(x1) - 1.0, -0.5 + 0.0 * x1],
            axis=-1,
        )

    conditioner = MixtureConditioner2D(num_components=2, network=tf.keras.layers.Lambda(theta2), loc_range=(-1.0, 1.0))
    conditioner.marginal.assign([0.3, -0.3, -1.0, 1.0, -0.7, -0.4])
    return conditioner


def _ks_uniform(u: np.ndarray) -> float:
    u = np.sort(u)
    n = len(u)
    grid = np.arange(1, n + 1) / n
    return float(max(np.max(grid - u), np.max(u - (grid - 1.0 / n))))


_NONLINEAR = {"relu", "softplus", "sigmoid", "tanh", "elu", "selu", "exponential", "softmax", "swish", "silu", "gelu",
              "hard_sigmoid", "softsign", "relu6", "leaky_relu", "mish"}


def _output_activation(network: Any) -> str | None:
    """The name of a nonlinear activation on the network's last layer, if it has a recognisable one."""
    layers = getattr(network, "layers", None)
    last = layers[-1] if isinstance(layers, list) and layers else network
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None) or (activation if isinstance(activation, str) else None)
    return name if isinstance(name, str) and name.lower() in _NONLINEAR else None


_ACTIVATION_HINT = ("the output layer must have no activation (a plain Dense(3 * num_components)): logits, locations "
                    "and log-scales can be any real numbers, negative or large")


@check("conditional network θ2(x1)")
def conditional_network(make_network: Any, num_components: int = 5) -> None:
    """A fresh Keras layer per call, mapping x1 of shape (n, 1) to 3K real numbers, nonlinear in x1."""
    need_function(make_network, "make_conditional_network")
    networks = []
    for k in (num_components, 3, num_components):
        with student_code(f"make_conditional_network({k})"):
            network = make_network(k)
        need(network, f"make_conditional_network({k})")
        require(isinstance(network, tf.keras.layers.Layer),
                "make_conditional_network should return a Keras layer (e.g. "
                f"tf.keras.Sequential), got {printable(type(network).__name__)}")
        with student_code("network(x1)"):
            result = network(tf.constant(_X1))
        out = to_numpy(result, "network(x1)")
        require(out.shape == (len(_X1), 3 * k),
                f"for K = {k}, network(x1) of shape ({len(_X1)}, 1) has shape {out.shape}; "
                f"expected ({len(_X1)}, {3 * k}): "
                "K logits, K locations and K log-scales per point (use the num_components argument)")
        with student_code("network.trainable_variables"):
            variables = list(network.trainable_variables)
        require(len(variables) > 0, "the network has no trainable weights: build it from Dense layers, which learn")
        networks.append((network, variables))
    (first, first_vars), _, (again, again_vars) = networks
    shared = {id(v) for v in first_vars} & {id(v) for v in again_vars}
    require(not shared,
            "make_conditional_network returns the same network every time: build a new one inside the function")
    activation = _output_activation(again)
    if activation is not None:
        raise CheckFailed(f"{_ACTIVATION_HINT}; yours ends in {printable(activation)}")
    # Behaviour, not architecture: give a fresh network random weights and see whether its output
    # bends as x1 moves, and whether it can be negative and large (a zero-initialised output layer
    # would hide both, so every trainable weight is replaced).
    rng = np.random.default_rng(0)
    with student_code("assigning random weights to the network"):
        for variable in again_vars:  # trainable ones only: a batch norm's moving variance must stay positive
            variable.assign(rng.normal(0.0, 0.7, size=tuple(variable.shape)).astype(variable.dtype.as_numpy_dtype))
    with student_code("network(x1)"):
        result, wide = again(tf.constant(_X1)), again(tf.constant(_X1_WIDE))
    out = to_numpy(result, "network(x1)")
    out_wide = to_numpy(wide, "network(x1)")
    require(bool(np.all(np.isfinite(out))) and bool(np.all(np.isfinite(out_wide))),
            "network(x1) gives NaN or infinite values")
    both = np.concatenate([out, out_wide])
    require(bool(both.min() < -0.5) and bool(both.max() > 0.5),
            f"{_ACTIVATION_HINT}; with random weights yours never goes below zero (or never above it)")
    require(bool(np.abs(both).max() > 1.5), f"{_ACTIVATION_HINT}; with random weights yours stays within (-1, 1)")
    design = np.concatenate([_X1.astype(np.float64), np.ones_like(_X1, dtype=np.float64)], axis=1)
    coef, *_ = np.linalg.lstsq(design, out, rcond=None)
    residual = np.abs(out - design @ coef).max()
    require(bool(np.isfinite(residual)) and residual > 1e-3 * (1.0 + np.abs(out).max()),
            "θ2 is a linear function of x1: a straight line cannot bend the conditionals around the curves of the "
            "data. Put hidden Dense layers with a nonlinear activation (relu, tanh) before the output layer")


@check("log-likelihood of the autoregressive flow")
def ar_log_prob(fn: Any) -> None:
    """fn(x, conditioner) = log p(x1; θ1) + log p(x2; θ2(x1)) for a batch of points."""
    need_function(fn, "ar_log_prob")
    conditioner = _reference_conditioner()
    n = len(_POINTS)
    with student_code("ar_log_prob(x, conditioner)"):
        result = fn(tf.constant(_POINTS), conditioner)
    got = to_numpy(result, "ar_log_prob(x, conditioner)")
    if got.shape == (n, 2):
        raise CheckFailed(f"ar_log_prob of {n} points has shape {got.shape}: the two conditionals' log-densities are "
                          "stacked side by side; add them, one number per point (shape (n,))")
    if got.ndim == 2 and got.shape in ((n, 1), (n, n)):
        raise CheckFailed(f"ar_log_prob of {n} points has shape {got.shape}; expected ({n},). Score the values x[:, 0] "
                          "and x[:, 1], of shape (n,): slices such as x[:, :1] keep a column of shape (n, 1), which "
                          "only conditional_params needs")
    require(got.shape == (n,), f"ar_log_prob of {n} points has shape {got.shape}; expected ({n},): one log-likelihood "
            "per point")
    bijector = AutoregressiveMixtureCDF(conditioner)
    per_dim = to_numpy(bijector.mixtures(_POINTS).forward_log_det_jacobian(_POINTS, event_ndims=0))
    expected = per_dim.sum(axis=1)
    if np.allclose(got, -expected, atol=1e-4):
        raise CheckFailed("the sign is flipped: return the log-likelihood, not its negative")
    if np.allclose(got, per_dim[:, 0], atol=1e-4):
        raise CheckFailed("that is log p(x1; θ1) only: add log p(x2; θ2(x1))")
    first = to_numpy(conditioner.marginal_params())
    with_theta1 = per_dim[:, 0] + to_numpy(MixtureCDF.from_params(first).forward_log_det_jacobian(_POINTS[:, 1], 0))
    if np.allclose(got, with_theta1, atol=1e-4):
        raise CheckFailed("x2 was scored with θ1: its mixture's parameters are "
                          "θ2(x1) = conditioner.conditional_params(x[:, :1])")
    theta2_of_x2 = to_numpy(conditioner.conditional_params(_POINTS[:, 1:]))
    with_x2 = per_dim[:, 0] + to_numpy(MixtureCDF.from_params(theta2_of_x2).forward_log_det_jacobian(_POINTS[:, 1], 0))
    if np.allclose(got, with_x2, atol=1e-4):
        raise CheckFailed("θ2 was computed from x2: the conditional of x2 depends on x1 only, "
                          "θ2(x1) = conditioner.conditional_params(x[:, :1])")
    require(bool(np.allclose(got, expected, atol=1e-4)),
            "ar_log_prob should be log p(x1; θ1) + log p(x2; θ2(x1)) (the uniform base adds log 1 = 0); "
            "the log-density "
            "of a mixture is MixtureCDF.from_params(θ).forward_log_det_jacobian(x, event_ndims=0)")
    # model.fit runs ar_log_prob inside a compiled TensorFlow graph, and trains θ1 through it.
    try:
        with student_code("ar_log_prob(x, conditioner) inside a tf.function"):
            with tf.GradientTape() as tape:
                traced = tf.function(lambda x: fn(x, conditioner))(tf.constant(_POINTS))
                total = tf.reduce_sum(tf.cast(traced, tf.float32))
    except CheckFailed as failed:
        raise CheckFailed(f"ar_log_prob gives the right numbers but fails inside model.fit, which runs it as a "
                          f"TensorFlow graph ({failed}): use TensorFlow operations and the mixtures' methods, not "
                          "NumPy") from None
    require(bool(np.allclose(to_numpy(traced, "ar_log_prob inside a tf.function"), expected, atol=1e-4)),
            "ar_log_prob gives different numbers inside a tf.function (as model.fit runs it): use TensorFlow "
            "operations, not NumPy or Python-side state")
    gradient = tape.gradient(total, conditioner.marginal)
    require(gradient is not None and bool(np.all(np.isfinite(to_numpy(gradient))))
            and bool(np.any(to_numpy(gradient) != 0)),
            "no gradient reaches θ1 through ar_log_prob, so model.fit cannot train it: compute it with TensorFlow "
            "operations from conditioner.marginal_params() (no NumPy, no tf.stop_gradient)")


@check("sampling in order: x1, then x2 given x1")
def sample_in_order(fn: Any) -> None:
    """fn(n, conditioner, seed) returns n points whose latents F(x) are uniform on the unit square."""
    need_function(fn, "sample_in_order")
    conditioner = _reference_conditioner()
    with student_code("sample_in_order(2000, conditioner, seed=1)"):
        result = fn(2000, conditioner, seed=1)
    samples = to_numpy(result, "sample_in_order(2000, conditioner, seed=1)")
    require(samples.shape == (2000, 2), f"sample_in_order(2000, ...) has shape {samples.shape}; expected (2000, 2)")
    require(bool(np.all(np.isfinite(samples))), "some samples are NaN or infinite")
    require(bool(np.ptp(samples, axis=0).min() > 0), "the samples do not vary: draw u uniformly and invert the CDFs")
    z = to_numpy(AutoregressiveMixtureCDF(conditioner).forward(samples.astype(np.float32)))
    require(_ks_uniform(z[:, 0]) < _KS_LIMIT,
            "x1 does not follow its mixture θ1: x1 = MixtureCDF.from_params(θ1).inverse(u1) with u1 ~ Uniform(0, 1)")
    require(_ks_uniform(z[:, 1]) < _KS_LIMIT,
            "x2 does not follow its conditional: compute θ2 from the x1 you just sampled "
            "(conditioner.conditional_params(x1[:, None])), then x2 = MixtureCDF.from_params(θ2).inverse(u2)")
    require(abs(float(np.corrcoef(z[:, 0], z[:, 1])[0, 1])) < 0.1,
            "u1 and u2 must be independent draws: do not reuse the same uniform numbers for both coordinates")


def _measure(
    log_prob: Callable[[tf.Tensor], Any], x_test: Any, grid: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    xs, ys = grid
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    with student_code("the trained model's log_prob on a grid of points"):
        chunks = [log_prob(tf.constant(chunk)) for chunk in np.array_split(points, 8)]
    values = [to_numpy(c, "the trained model's log_prob") for c in chunks]
    require(all(v.shape == (len(c),) for v, c in zip(values, np.array_split(points, 8))),
            "the trained model's log_prob should return one number per point, shape (n,)")
    grid_values = np.concatenate(values).reshape(len(ys), len(xs))
    with np.errstate(all="ignore"):
        density = np.exp(np.where(np.isnan(grid_values), np.inf, np.minimum(grid_values, 700.0)))
    mass = float(np.trapezoid(np.trapezoid(density, xs.astype(np.float64), axis=1), ys.astype(np.float64)))
    x = np.asarray(x_test, np.float32)
    with student_code("the trained model's log_prob on the test points"):
        on_test = log_prob(tf.constant(x))
    test_values = to_numpy(on_test, "the trained model's log_prob on the test points")
    require(test_values.shape == (len(x),), f"the trained model's log_prob of {len(x)} points has shape "
            f"{test_values.shape}; expected ({len(x)},)")
    return mass, -float(np.mean(test_values))


def measure_moons(log_prob: Callable[[tf.Tensor], Any], x_test: Any) -> tuple[float, float]:
    """``(mass, test NLL in nats per point)``: what :func:`trained_moons_flow` measures."""
    return _measure(log_prob, x_test, _MOONS_GRID)


def measure_face(log_prob: Callable[[tf.Tensor], Any], x_test: Any) -> tuple[float, float]:
    """``(mass, test NLL in nats per point)``: what :func:`trained_face_flow` measures."""
    return _measure(log_prob, x_test, _FACE_GRID)


@cached
def moons_test_set() -> np.ndarray:
    """The lab's held-out moons (``X_moons_test``), as its data cell makes them."""
    from flowlab.datasets import load_two_moons

    return load_two_moons(4000, 1000, seed=0)[1]


@cached
def face_test_set() -> np.ndarray:
    """The lab's held-out face points (``X_face_test``), as its data cell makes them."""
    from flowlab.datasets import load_face

    return load_face(2000, 1000, seed=0)[1]


def _is_the_labs_flow(model: Any, log_prob: Callable[[tf.Tensor], Any], x: np.ndarray) -> None:
    """The model is the lab's autoregressive flow: its density is the mixture-CDF density of its own
    conditioner, log p(x1; θ1) + log p(x2; θ2(x1)), computed here from that conditioner."""
    with student_code("model.conditioner"):
        conditioner = getattr(model, "conditioner", None)
    require(isinstance(conditioner, MixtureConditioner2D),
            "the trained model is not the lab's autoregressive flow: the check measures the AutoregressiveFlow built "
            "from your make_conditional_network and ar_log_prob and trained by the fit cell (its .conditioner a "
            "MixtureConditioner2D), not another model put in its place")
    with student_code("the conditioner's parameters"):
        reference = AutoregressiveMixtureCDF(conditioner).forward_log_det_jacobian(tf.constant(x), event_ndims=1)
        reference = to_numpy(reference, "the conditioner's mixture density")
    with student_code("model.log_prob"):
        claimed = to_numpy(log_prob(tf.constant(x)), "the trained model's log_prob")
    require(claimed.shape == reference.shape and bool(np.allclose(claimed, reference, atol=1e-3)),
            "the trained model's log_prob is not the autoregressive mixture density of its own conditioner: "
            "ar_log_prob must be exactly log p(x1; θ1) + log p(x2; θ2(x1)), "
            "both terms from the conditioner it is given")


def _trained(model: Any, x_test: Any, measure: Callable[..., tuple[float, float]], limit: float, data: str,
             held: tuple[str, Callable[[], np.ndarray]]) -> None:
    need(model, "the trained flow (built from your answers above)")
    with student_code("model.log_prob"):
        log_prob = getattr(model, "log_prob", None)
    require(callable(log_prob),
            f"expected a trained model with a log_prob method, got {printable(type(model).__name__)}")
    x_test = held_out(x_test, *held).astype(np.float32)
    mass, nll = measure(log_prob, x_test)
    require(bool(np.isfinite(nll)), "the test log-likelihood is not finite: did training diverge?")
    _is_the_labs_flow(model, log_prob, x_test[:64])
    not_a_density = ("the trained model's density does not integrate to 1 over the plane, so it is not a density: "
                     "ar_log_prob must be exactly log p(x1; θ1) + log p(x2; θ2(x1)), "
                     "each term a normalised mixture density")
    # More than 1 is a lie whatever the fit (it would buy a better score); less than 1 can also be a
    # real but badly fitted density whose tails reach past the grid, so the fit is judged first.
    require(bool(np.isfinite(mass)) and mass < 1.0 + MASS_TOLERANCE, not_a_density)
    require(nll < limit,
            f"the trained flow does not fit {data} (its test NLL is far above what a correct flow reaches): "
            "θ2 must be able to "
            "follow x1 — hidden layers with a nonlinear activation, an output layer with no activation — and the "
            "training cell must have run after your answers")
    require(mass > 1.0 - MASS_TOLERANCE, not_a_density)


@check("trained flow models two moons")
def trained_moons_flow(model: Any, x_test: Any) -> None:
    """The trained density integrates to 1 and scores below MOONS_NLL_LIMIT nats on held-out moons."""
    _trained(model, x_test, measure_moons, MOONS_NLL_LIMIT, "two moons", ("X_moons_test", moons_test_set))


@check("trained flow models the face")
def trained_face_flow(model: Any, x_test: Any) -> None:
    """The trained density integrates to 1 and scores below FACE_NLL_LIMIT nats on held-out face points."""
    _trained(model, x_test, measure_face, FACE_NLL_LIMIT, "the face", ("X_face_test", face_test_set))
