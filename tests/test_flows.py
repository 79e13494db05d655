"""The flow builders: invertible, exact log-densities, the right shapes, clear errors."""

import numpy as np
import pytest
import tensorflow as tf

import functools

from flowlab.flows import build_iaf, build_maf, build_nsf, build_realnvp

bounded_maf = functools.partial(build_maf, log_scale_bound=3.0)
bounded_maf.__name__ = "bounded_maf"
BUILDERS = [build_maf, bounded_maf, build_iaf, build_realnvp, build_nsf]


def _randomise(flow, seed=0):
    """Give the weights random values: new RealNVP layers start as the identity, which hides bugs.

    MADE's masks live in its kernels as exact zeros (TFP masks by initialiser and constraint), so
    those zeros stay; an all-zero (zero-initialised) weight is filled everywhere."""
    flow.log_prob(tf.zeros([1, int(flow.event_shape[0])]))  # Keras layers build on first call
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        value = variable.numpy()
        noise = 0.3 * rng.standard_normal(value.shape).astype(np.float32)
        variable.assign(noise if not value.any() else np.where(value != 0, noise, 0.0))


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("dims", [2, 3])
def test_round_trip(build, dims):
    flow = build(dims, n_layers=2, hidden_units=(16,))
    _randomise(flow)
    z = tf.random.stateless_normal([64, dims], seed=[1, 2])
    x = flow.bijector.forward(z)
    np.testing.assert_allclose(flow.bijector.inverse(x), z, atol=1e-4)
    np.testing.assert_allclose(flow.bijector.forward(flow.bijector.inverse(x)), x, atol=1e-4)


@pytest.mark.parametrize("build", BUILDERS)
def test_log_prob_is_base_plus_autodiff_log_det(build):
    dims = 3
    flow = build(dims, n_layers=2, hidden_units=(16,))
    _randomise(flow, seed=1)
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


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("dims", [1, 0, 2.5])
def test_too_few_dims_is_a_clear_error(build, dims):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        build(dims)


@pytest.mark.parametrize("build", BUILDERS)
def test_no_layers_is_a_clear_error(build):
    with pytest.raises(ValueError, match="n_layers"):
        build(2, n_layers=0)
