"""The flow builders: invertible, exact log-densities, the right shapes, clear errors."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from bijector_harness import randomise

from flowlab.flows import build_coupling_flow, build_ffjord, build_iaf, build_maf, build_nice, build_nsf, build_realnvp
from flowlab.flows.ffjord import flow_velocity
from flowlab.transformers import MixtureCDFTransformer


def _named(fn, name, **kwargs):
    partial = functools.partial(fn, **kwargs)
    partial.__name__ = name
    return partial


bounded_maf = _named(build_maf, "bounded_maf", log_scale_bound=3.0)
nsf_coupling = _named(build_nsf, "nsf_coupling", kind="coupling", bins=4)
mixture_coupling = _named(build_coupling_flow, "mixture_coupling", transformer=MixtureCDFTransformer(3))
BUILDERS = [build_maf, bounded_maf, build_iaf, build_realnvp, build_nice, build_nsf, nsf_coupling, mixture_coupling]


def _random(flow, seed=0):
    """Random weights (tests/bijector_harness.py): new RealNVP layers start as the identity, which hides bugs."""
    flow.log_prob(tf.zeros([1, int(flow.event_shape[0])]))  # Keras layers build on first call
    return randomise(flow, seed=seed)


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("dims", [2, 3])
def test_round_trip(build, dims):
    flow = build(dims, n_layers=2, hidden_units=(16,))
    _random(flow)
    z = tf.random.stateless_normal([64, dims], seed=[1, 2])
    x = flow.bijector.forward(z)
    # tf.identity: new tensors, so TFP's bijector cache cannot hand back the inputs it remembers
    np.testing.assert_allclose(flow.bijector.inverse(tf.identity(x)), z, atol=1e-4)
    np.testing.assert_allclose(flow.bijector.forward(tf.identity(flow.bijector.inverse(tf.identity(x)))), x, atol=1e-4)


@pytest.mark.parametrize("build", BUILDERS)
def test_log_prob_is_base_plus_autodiff_log_det(build):
    dims = 3
    flow = build(dims, n_layers=2, hidden_units=(16,))
    _random(flow, seed=1)
    x = tf.random.stateless_normal([8, dims], seed=[3, 4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = flow.bijector.inverse(x)
    jacobian = tape.batch_jacobian(z, x)
    _, log_abs_det = np.linalg.slogdet(jacobian.numpy().astype(np.float64))
    expected = flow.distribution.log_prob(z).numpy() + log_abs_det
    np.testing.assert_allclose(flow.log_prob(x), expected, atol=1e-4)


@pytest.mark.parametrize("build", BUILDERS)
def test_shapes(build):
    flow = build(2, n_layers=1, hidden_units=(8,))
    assert flow.event_shape == [2] and flow.batch_shape == []
    assert flow.sample([5, 3], seed=1).shape == [5, 3, 2]
    assert flow.log_prob(tf.zeros([5, 3, 2])).shape == [5, 3]


# Bad dims, n_layers, hidden_units and dtype for every builder: tests/test_builders.py.


def test_nsf_kind_is_checked():
    with pytest.raises(ValueError, match="kind"):
        build_nsf(2, kind="spline")


def test_nice_without_scaling_preserves_volume_and_cannot_beat_log_two_pi():
    flow = build_nice(2, n_layers=2, hidden_units=(8,), scaling=False)
    _random(flow)
    x = 3.0 * tf.random.stateless_normal([256, 2], seed=[5, 6])
    np.testing.assert_allclose(flow.bijector.inverse_log_det_jacobian(x, event_ndims=1), 0.0, atol=1e-6)
    assert np.max(flow.log_prob(x)) <= -np.log(2 * np.pi) + 1e-6
    scaled = build_nice(2, n_layers=1, hidden_units=(8,))
    assert len(scaled.trainable_variables) == len(build_nice(2, n_layers=1, hidden_units=(8,), scaling=False)
                                                  .trainable_variables) + 1


def test_ffjord_round_trip_and_exact_log_prob():
    # Tight tolerances so that finite differences of the solve are a fair reference (autodiff's batch
    # Jacobian through the adaptive solver takes minutes).
    flow = build_ffjord(2, hidden_units=(8,), trace="exact", atol=1e-6, rtol=1e-6)
    _random(flow, seed=2)
    x = tf.random.stateless_normal([8, 2], seed=[7, 8]).numpy()
    h = 2e-2
    steps = np.array([[0, 0], [h, 0], [-h, 0], [0, h], [0, -h]], np.float32)
    z = flow.bijector.inverse(tf.constant((x[None] + steps[:, None]).reshape(-1, 2))).numpy().reshape(5, 8, 2)
    jacobian = np.stack([(z[1] - z[2]) / (2 * h), (z[3] - z[4]) / (2 * h)], axis=-1).astype(np.float64)
    log_det = np.linalg.slogdet(jacobian)[1]
    assert np.abs(log_det).max() > 1e-2  # a flow that does nothing could not fail this test
    np.testing.assert_allclose(flow.log_prob(x), flow.distribution.log_prob(z[0]).numpy() + log_det, atol=2e-3)
    np.testing.assert_allclose(flow.bijector.forward(tf.constant(z[0])), x, atol=1e-4)
    # Hutchinson's estimate is unbiased: averaged over 100 draws (one per copy of a point) it is the exact value
    noisy = build_ffjord(2, velocity=flow_velocity(flow), atol=1e-6, rtol=1e-6)
    draws = noisy.log_prob(np.repeat(x[:4], 100, axis=0)).numpy().reshape(4, 100)
    assert draws.std(axis=1).max() > 1e-3  # really noisy, really an estimate
    np.testing.assert_allclose(draws.mean(axis=1), flow.log_prob(x[:4]), atol=0.05)
    with pytest.raises(ValueError, match="trace"):
        build_ffjord(2, trace="approximate")
