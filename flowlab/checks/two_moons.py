"""Checks for lab 02, two moons: base distribution, bijector, MAF chain, Keras model, training."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.checks.core import CheckFailed, check, is_stub, require, to_numpy

__all__ = [
    "base_distribution",
    "affine_bijector",
    "transformed_distribution",
    "flow_bijector",
    "keras_model",
    "compiled_model",
    "trained_flow",
    "test_nll",
]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate objects at, fixed so verdicts never depend on a random draw.
_POINTS = np.array([[0.0, 0.0], [1.0, -0.5], [-1.5, 2.0], [0.3, 0.7], [2.0, 1.0]], dtype=np.float32)
_SHIFT = np.array([0.5, 0.25])
_SCALE = np.array([1.0, 0.5])


def _gaussian_log_prob(x: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (x - loc) / scale
    return np.sum(-0.5 * z**2 - np.log(scale) - 0.5 * np.log(2 * np.pi), axis=-1)


def _need(obj: Any, kind: type, what: str) -> None:
    if is_stub(obj):
        raise CheckFailed(f"{what} is still a placeholder (`...`): fill in the TODO above")
    require(isinstance(obj, kind), f"{what} should be a {kind.__module__.split('.')[0]} {kind.__name__}, got {type(obj).__name__}")


def _shape(shape: Any) -> list[int]:
    return [int(d) for d in tf.TensorShape(shape)]


@check("base distribution")
def base_distribution(base: Any) -> None:
    """A standard normal over 2-vectors: event shape [2], batch shape []."""
    _need(base, tfd.Distribution, "base_distribution")
    event, batch = _shape(base.event_shape), _shape(base.batch_shape)
    require(batch == [], f"batch shape is {batch}: use one distribution over vectors, not a batch of scalars "
            "(tfd.MultivariateNormalDiag, or tfd.Independent over a tfd.Normal)")
    require(event == [2], f"event shape is {event}, expected [2]: one event is a point (x1, x2)")
    log_prob = to_numpy(base.log_prob(_POINTS), "base_distribution.log_prob(x)")
    require(log_prob.shape == (len(_POINTS),), f"log_prob of 5 points has shape {log_prob.shape}, expected (5,)")
    require(bool(np.allclose(log_prob, _gaussian_log_prob(_POINTS, 0.0, 1.0), atol=1e-4)),
            "log_prob does not match N(0, I): use zero means and unit scales")
    samples = to_numpy(base.sample(7, seed=1), "base_distribution.sample(7)")
    require(samples.shape == (7, 2), f"sample(7) has shape {samples.shape}, expected (7, 2)")


@check("affine bijector x = z * (1, 0.5) + (0.5, 0.25)")
def affine_bijector(bijector: Any) -> None:
    """Forward is the affine map; inverse undoes it; log-det is log(1 * 0.5)."""
    _need(bijector, tfb.Bijector, "bijector")
    forward = to_numpy(bijector.forward(_POINTS), "bijector.forward(z)")
    expected = _POINTS * _SCALE + _SHIFT
    if forward.shape == expected.shape and np.allclose(forward, (_POINTS + _SHIFT) * _SCALE, atol=1e-5):
        raise CheckFailed("forward shifts first and then scales; tfb.Chain applies its list right to left, "
                          "so tfb.Chain([shift, scale]) scales first (as does shift(scale))")
    require(forward.shape == expected.shape and bool(np.allclose(forward, expected, atol=1e-5)),
            "forward(z) should be z * (1, 0.5) + (0.5, 0.25): combine tfb.Shift([0.5, 0.25]) and tfb.Scale([1., 0.5])")
    inverse = to_numpy(bijector.inverse(expected), "bijector.inverse(x)")
    require(bool(np.allclose(inverse, _POINTS, atol=1e-5)), "inverse(forward(z)) does not give z back")
    log_det = to_numpy(bijector.forward_log_det_jacobian(_POINTS, event_ndims=1), "forward_log_det_jacobian")
    require(bool(np.allclose(log_det, np.log(0.5), atol=1e-5)),
            "forward_log_det_jacobian(z, event_ndims=1) should be log(1 * 0.5) at every point")


@check("transformed distribution")
def transformed_distribution(distribution: Any) -> None:
    """The base pushed through the affine bijector: N((0.5, 0.25), diag(1, 0.5)²)."""
    _need(distribution, tfd.Distribution, "the transformed distribution")
    event = _shape(distribution.event_shape)
    require(event == [2], f"event shape is {event}, expected [2]")
    log_prob = to_numpy(distribution.log_prob(_POINTS), "log_prob(x)")
    require(log_prob.shape == (len(_POINTS),), f"log_prob of 5 points has shape {log_prob.shape}, expected (5,)")
    require(bool(np.allclose(log_prob, _gaussian_log_prob(_POINTS, _SHIFT, _SCALE), atol=1e-4)),
            "log_prob should be that of N((0.5, 0.25), diag(1, 0.5)²): transform the standard normal base "
            "with the affine bijector (tfd.TransformedDistribution(base, bijector))")
    samples = to_numpy(distribution.sample(2000, seed=3), "sample(2000)")
    require(samples.shape == (2000, 2), f"sample(2000) has shape {samples.shape}, expected (2000, 2)")
    require(bool(np.allclose(samples.std(axis=0), _SCALE, atol=0.1)), "samples do not have the scales (1, 0.5)")


@check("MAF chain with permutations")
def flow_bijector(bijector: Any) -> None:
    """An invertible, trainable map of 2-vectors in which each variable depends on the other."""
    _need(bijector, tfb.Bijector, "flow_bijector")
    z = tf.constant(_POINTS)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = bijector.forward(z)
    x_np = to_numpy(x, "flow_bijector.forward(z)")
    require(x_np.shape == _POINTS.shape, f"forward maps shape {_POINTS.shape} to {x_np.shape}")
    # Keras layers create their weights on first call, so look for them only now.
    require(len(bijector.trainable_variables) > 0, "the bijector has no trainable variables: use "
            "tfb.MaskedAutoregressiveFlow layers with a tfb.AutoregressiveNetwork")
    back = to_numpy(bijector.inverse(x), "flow_bijector.inverse(x)")
    require(bool(np.allclose(back, _POINTS, atol=1e-3)), "inverse(forward(z)) does not give z back")
    jacobian = to_numpy(tape.batch_jacobian(x, z), "the Jacobian")
    coupled = np.abs(jacobian[:, 0, 1]).max() > 1e-6 and np.abs(jacobian[:, 1, 0]).max() > 1e-6
    require(bool(coupled), "each variable should depend on the other: one autoregressive layer only lets x2 "
            "depend on x1 — alternate MAF layers with tfb.Permute([1, 0]) in a tfb.Chain")
    mafs = _count(bijector, tfb.MaskedAutoregressiveFlow)
    require(mafs >= 3, f"found {mafs} tfb.MaskedAutoregressiveFlow layer(s); the lab asks for three")


def _count(bijector: tfb.Bijector, kind: type) -> int:
    inner = getattr(bijector, "bijectors", None) or ([bijector.bijector] if isinstance(bijector, tfb.Invert) else [])
    return int(isinstance(bijector, kind)) + sum(_count(b, kind) for b in inner)


@check("Keras model of the log-likelihood")
def keras_model(model: Any, distribution: Any) -> None:
    """A Keras model taking (batch, 2) points and returning the flow's log_prob of each."""
    _need(model, tf.keras.Model, "model")
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    require(shape == (None, 2), f"the model's input shape is {model.input_shape}, expected (None, 2): "
            "tf.keras.Input(shape=(2,))")
    out = to_numpy(model(_POINTS), "model(x)")
    expected = to_numpy(distribution.log_prob(_POINTS), "trainable_distribution.log_prob(x)")
    require(out.shape == expected.shape, f"the model's output has shape {out.shape}, expected {expected.shape}: "
            "one log-probability per point")
    require(bool(np.allclose(out, expected, atol=1e-4)),
            "the model's output should be trainable_distribution.log_prob(x) of its input")
    ids = {id(v) for v in model.trainable_variables}
    require(all(id(v) in ids for v in distribution.trainable_variables),
            "the model does not own the flow's variables: build it from trainable_distribution.log_prob of the Input")


@check("compiled with the negative log-likelihood")
def compiled_model(model: Any) -> None:
    """Compiled with a gradient-clipping optimizer and a loss that is -log_prob whatever the labels."""
    _need(model, tf.keras.Model, "model")
    optimizer = getattr(model, "optimizer", None)
    require(optimizer is not None, "call model.compile(optimizer=..., loss=...) first")
    # Any of Keras's three clipping arguments tames the rare huge gradient the lab warns about.
    clips = [getattr(optimizer, name, None) for name in ("global_clipnorm", "clipnorm", "clipvalue")]
    require(any(c is not None for c in clips),
            "the optimizer does not clip gradients: pass global_clipnorm=1.0 to Adam, so that the rare "
            "huge gradient cannot throw the flow off")
    loss = getattr(model, "loss", None)
    require(callable(loss), "model.loss should be a function of (y_true, y_pred)")
    log_prob = tf.constant([-1.0, 0.5, 2.0])
    values = []
    for labels in (tf.zeros((3, 0)), tf.zeros((3,)), 7.0 * tf.ones((3,))):
        values.append(float(np.mean(to_numpy(loss(labels, log_prob), "loss(y_true, log_prob)"))))
    require(bool(np.allclose(values, values[0], atol=1e-6)),
            "the loss changes with the labels: it should ignore y_true (the labels are dummies)")
    require(bool(np.isclose(values[0], -np.mean(log_prob.numpy()), atol=1e-5)),
            "the loss should be the negative log-likelihood: -log_prob (the model's output)")


@check("trained flow beats its Gaussian base")
def trained_flow(distribution: Any, x_test: Any) -> None:
    """On held-out moons, the trained flow's NLL is at least 0.5 nats below the base's."""
    _need(distribution, tfd.Distribution, "trainable_distribution")
    x = np.asarray(x_test, dtype=np.float32)
    nll = -float(np.mean(to_numpy(distribution.log_prob(x), "log_prob(x_test)")))
    base = -float(np.mean(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]).log_prob(x)))
    require(bool(np.isfinite(nll)), "the test log-likelihood is not finite: did training diverge?")
    require(nll < base - 0.5, "the trained flow is not clearly better than the N(0, I) base on test data: "
            "was the model trained (model.fit), and is it built from trainable_distribution?")


@check("test negative log-likelihood")
def test_nll(value: Any, distribution: Any, x_test: Any) -> None:
    """The mean negative log-likelihood of the test points, in nats."""
    got = to_numpy(value, "test_nll")
    require(got.size == 1, f"test_nll should be one number (the mean over test points), got shape {got.shape}")
    expected = -float(np.mean(to_numpy(distribution.log_prob(np.asarray(x_test, np.float32)), "log_prob(x_test)")))
    if np.isclose(float(got.reshape(())), -expected, rtol=1e-4, atol=1e-4):
        raise CheckFailed("that is the log-likelihood; the negative log-likelihood has the opposite sign")
    require(bool(np.isclose(float(got.reshape(())), expected, rtol=1e-4, atol=1e-4)),
            "test_nll should be the mean of -log_prob over X_test")
