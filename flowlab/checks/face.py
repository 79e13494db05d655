"""Checks for lab 03, the 2-D autoregressive mixture-CDF flow: network, log-likelihood, sampling, training."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF, MixtureConditioner2D
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks.core import CheckFailed, check, is_stub, require, to_numpy

__all__ = ["conditional_network", "ar_log_prob", "sample_in_order", "trained_face_flow"]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate functions at, fixed so that verdicts never depend on a random draw.
_POINTS = np.array([[0.0, 0.0], [1.0, -0.5], [-1.5, 2.0], [0.3, 0.7], [2.0, 1.0], [-2.5, -1.0]], np.float32)
_X1 = np.linspace(-3.0, 3.0, 41, dtype=np.float32)[:, None]
_KS_LIMIT = 0.06  # Kolmogorov-Smirnov distance for 2000 draws: a correct sampler exceeds it with p ~ 1e-6


def _callable(fn: Any, what: str) -> None:
    if is_stub(fn):
        raise CheckFailed(f"{what} is still a placeholder (`...`): fill in the TODO above")
    require(callable(fn), f"{what} should be a function, got {type(fn).__name__}")


def _reference_conditioner() -> MixtureConditioner2D:
    """K = 2 mixtures whose theta_2 depends strongly (and nonlinearly) on x1; no random weights."""

    def theta2(x1: tf.Tensor) -> tf.Tensor:
        return tf.concat([0.8 * x1, -0.8 * x1, 2.0 * tf.tanh(x1) - 1.0, 1.5 * x1 + 1.0, 0.3 * tf.sin(x1) - 1.0, -0.5 + 0.0 * x1], axis=-1)

    conditioner = MixtureConditioner2D(num_components=2, network=tf.keras.layers.Lambda(theta2), loc_range=(-1.0, 1.0))
    conditioner.marginal.assign([0.3, -0.3, -1.0, 1.0, -0.7, -0.4])
    return conditioner


def _ks_uniform(u: np.ndarray) -> float:
    u = np.sort(u)
    n = len(u)
    grid = np.arange(1, n + 1) / n
    return float(max(np.max(grid - u), np.max(u - (grid - 1.0 / n))))


@check("conditional network θ2(x1)")
def conditional_network(make_network: Any, num_components: int = 5) -> None:
    """A fresh Keras layer per call, mapping x1 of shape (n, 1) to 3K numbers, nonlinear in x1."""
    _callable(make_network, "make_conditional_network")
    networks = []
    for k in (num_components, 3, num_components):
        network = make_network(k)
        if is_stub(network):
            raise CheckFailed("make_conditional_network returns a placeholder: return a Keras layer")
        require(isinstance(network, tf.keras.layers.Layer),
                f"make_conditional_network should return a Keras layer (e.g. tf.keras.Sequential), got {type(network).__name__}")
        out = to_numpy(network(tf.constant(_X1)), "network(x1)")
        require(out.shape == (len(_X1), 3 * k),
                f"for K = {k}, network(x1) of shape ({len(_X1)}, 1) has shape {out.shape}; expected ({len(_X1)}, {3 * k}): "
                "K logits, K locations and K log-scales per point (use the num_components argument)")
        require(len(network.trainable_variables) > 0, "the network has no trainable weights")
        networks.append(network)
    first, _, again = networks
    shared = {id(v) for v in first.trainable_variables} & {id(v) for v in again.trainable_variables}
    require(not shared, "make_conditional_network returns the same network every time: build a new one inside the function")
    # Behaviour, not architecture: give a fresh network random weights and see whether its output
    # bends as x1 moves (a zero-initialised output layer would hide that, so we replace it).
    rng = np.random.default_rng(0)
    again.set_weights([rng.normal(0.0, 0.7, size=w.shape).astype(np.float32) for w in again.get_weights()])
    out = to_numpy(again(tf.constant(_X1)), "network(x1)")
    design = np.concatenate([_X1.astype(np.float64), np.ones_like(_X1, dtype=np.float64)], axis=1)
    coef, *_ = np.linalg.lstsq(design, out, rcond=None)
    residual = np.abs(out - design @ coef).max()
    require(bool(np.isfinite(residual)) and residual > 1e-3 * (1.0 + np.abs(out).max()),
            "θ2 is a linear function of x1: a straight line cannot bend the conditionals around the curves of the "
            "data. Put hidden Dense layers with a nonlinear activation (relu, tanh) before the output layer")


@check("log-likelihood of the autoregressive flow")
def ar_log_prob(fn: Any) -> None:
    """fn(x, conditioner) = log p(x1; θ1) + log p(x2; θ2(x1)) for a batch of points."""
    _callable(fn, "ar_log_prob")
    conditioner = _reference_conditioner()
    got = to_numpy(fn(tf.constant(_POINTS), conditioner), "ar_log_prob(x, conditioner)")
    require(got.shape == (len(_POINTS),),
            f"ar_log_prob of {len(_POINTS)} points has shape {got.shape}; expected ({len(_POINTS)},): one number per point "
            "(the two conditionals' log-densities added, not stacked)")
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
        raise CheckFailed("x2 was scored with θ1: its mixture's parameters are θ2(x1) = conditioner.conditional_params(x[:, :1])")
    require(bool(np.allclose(got, expected, atol=1e-4)),
            "ar_log_prob should be log p(x1; θ1) + log p(x2; θ2(x1)) (the uniform base adds log 1 = 0); the log-density "
            "of a mixture is MixtureCDF.from_params(θ).forward_log_det_jacobian(x, event_ndims=0)")


@check("sampling in order: x1, then x2 given x1")
def sample_in_order(fn: Any) -> None:
    """fn(n, conditioner, seed) returns n points whose latents F(x) are uniform on the unit square."""
    _callable(fn, "sample_in_order")
    conditioner = _reference_conditioner()
    samples = to_numpy(fn(2000, conditioner, seed=1), "sample_in_order(2000, conditioner, seed=1)")
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


@check("trained flow models the face")
def trained_face_flow(flow: Any, x_test: Any) -> None:
    """On held-out face points the flow scores well under 1.2 nats/dim (a Gaussian scores about 1.7)."""
    if is_stub(flow):
        raise CheckFailed("the flow is still a placeholder")
    require(isinstance(flow, tfd.Distribution), f"expected a TFP distribution, got {type(flow).__name__}")
    x = np.asarray(x_test, np.float32)
    nll = -float(np.mean(to_numpy(flow.log_prob(x), "flow.log_prob(x_test)"))) / 2
    require(bool(np.isfinite(nll)), "the test log-likelihood is not finite: did training diverge?")
    require(nll < 1.2, "the flow is not much better than a Gaussian on held-out points (1.2 nats/dim or more): "
            "was it trained with model.fit, and does its conditional network depend on x1?")
