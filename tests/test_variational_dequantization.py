"""Variational dequantization: q(u|x) is a density on [0,1)^D, the bound never exceeds log P(x), it trains."""

import math

import flowlab  # noqa: F401

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.variational_dequantization import (
    DequantizedDensityModel,
    VariationalDequantizer,
    bound_bits_per_dim,
    variational_bound,
)
from flowlab.training import negative_log_likelihood

tfd, tfb = tfp.distributions, tfp.bijectors


def _perturb(layer, scale=0.3, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.trainable_variables:
        v.assign(v + rng.normal(0, scale, size=v.shape).astype(np.float32))


def _q(shape, seed=0, couplings=2, scale=0.1):
    q = VariationalDequantizer(shape, couplings=couplings, filters=4)
    q.sample_and_log_prob(tf.zeros([1, *shape]), seed=[0, 0])  # build
    _perturb(q, scale=scale, seed=seed)
    return q


def test_untrained_dequantizer_is_uniform():
    q = VariationalDequantizer((3, 3, 1), filters=4)
    x = tf.constant(np.random.default_rng(0).integers(0, 256, (500, 3, 3, 1)), tf.float32)
    u, log_q = q.sample_and_log_prob(x, seed=[1, 2])
    np.testing.assert_allclose(log_q.numpy(), 0.0, atol=1e-4)
    u = u.numpy().ravel()
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - math.sqrt(1 / 12)) < 0.02


def test_q_is_a_normalised_density_on_the_unit_square():
    q = _q((1, 2, 1), seed=1)
    x = tf.constant([[[[10.0], [200.0]]]])
    n = 200
    grid = (np.arange(n) + 0.5) / n
    uu = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2, 1).astype(np.float32)
    log_q = q.log_prob(uu, tf.repeat(x, len(uu), axis=0)).numpy()
    assert abs(np.exp(log_q).mean() - 1.0) < 0.02  # the integral over [0, 1)^2 by the midpoint rule


def test_log_prob_agrees_with_the_sampler():
    q = _q((2, 2, 2), seed=2)
    x = tf.constant(np.random.default_rng(1).integers(0, 256, (4, 2, 2, 2)), tf.float32)
    u, log_q = q.sample_and_log_prob(x, seed=[3, 4])
    np.testing.assert_allclose(q.log_prob(u, x).numpy(), log_q.numpy(), rtol=1e-3, atol=1e-2)


def test_conditioner_sees_the_image():
    q = _q((2, 2, 1), seed=3)
    u, _ = q.sample_and_log_prob(tf.zeros([1, 2, 2, 1]), seed=[5, 5])
    v, _ = q.sample_and_log_prob(tf.fill([1, 2, 2, 1], 255.0), seed=[5, 5])
    assert np.abs(u.numpy() - v.numpy()).max() > 1e-3


# A density over y in [0, 1): a logistic squashed by a sigmoid, whose CDF is known in closed form. Its
# peak sits inside the bin of pixel 3 and is narrower than the bin: far from flat there, so uniform
# dequantization is a loose bound and a learned q has room to tighten it.
LOC, SCALE = float(np.log(3.3 / 252.7)), 0.03


def _one_pixel_model():
    return tfd.TransformedDistribution(tfd.Sample(tfd.Logistic(LOC, SCALE), [1, 1, 1]), tfb.Sigmoid())


def _log_p_discrete(x):
    base = tfd.Logistic(LOC, SCALE)
    lo, hi = x / 256.0, (x + 1) / 256.0
    cdf = lambda y: float(base.cdf(np.log(y) - np.log1p(-y))) if y > 0 else 0.0  # noqa: E731
    return float(np.log(max(cdf(hi) - cdf(lo), 1e-300)))


@pytest.mark.parametrize("pixel", [2.0, 3.0, 4.0])
def test_bound_never_exceeds_the_true_log_likelihood(pixel):
    flow = _one_pixel_model()
    x = tf.fill([4000, 1, 1, 1], pixel)
    exact = _log_p_discrete(pixel)
    for q in (None, _q((1, 1, 1), seed=4, couplings=0, scale=0.5), _q((1, 1, 1), seed=5, couplings=0, scale=0.5)):
        bound = float(tf.reduce_mean(variational_bound(flow, q, x, seed=[6, 7])))
        assert bound <= exact + 0.02, (bound, exact)  # 0.02: Monte Carlo error of a 4000-sample mean


def test_training_q_tightens_the_bound():
    flowlab.seed(0)
    flow = _one_pixel_model()  # fixed: only q learns
    q = VariationalDequantizer((1, 1, 1), couplings=0, filters=4)
    x = tf.fill([512, 1, 1, 1], 3.0)
    exact = _log_p_discrete(3.0)
    start = float(tf.reduce_mean(variational_bound(flow, q, x, seed=[1, 1])))
    opt = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step(s):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(variational_bound(flow, q, x, seed=s))
        grads = tape.gradient(loss, q.trainable_variables)
        opt.apply_gradients(zip(grads, q.trainable_variables))
        return grads

    for i in range(150):
        grads = step(tf.constant([i, 0]))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads if g is not None)
    end = float(tf.reduce_mean(variational_bound(flow, q, x, seed=[2, 2])))
    assert end > start + 0.5 and end <= exact + 0.02, (start, end, exact)


def test_dequantized_density_model_trains_flow_and_q_together():
    flowlab.seed(1)
    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [2, 2, 1]),
                                       tfb.Chain([tfb.Sigmoid(), tfb.Shift(tf.Variable(tf.zeros([2, 2, 1])))]))
    q = VariationalDequantizer((2, 2, 1), couplings=1, filters=4)
    model = DequantizedDensityModel(flow, q)
    assert len(model.trainable_variables) > 1
    x = np.random.default_rng(0).integers(200, 256, (256, 2, 2, 1)).astype(np.float32)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss=negative_log_likelihood)
    first = model.evaluate(x, np.zeros(len(x)), verbose=0)
    model.fit(x, np.zeros(len(x)), batch_size=64, epochs=5, verbose=0)
    assert model.evaluate(x, np.zeros(len(x)), verbose=0) < first


def test_bits_per_dim_of_a_bound_and_bad_inputs():
    np.testing.assert_allclose(bound_bits_per_dim([-784 * 8 * math.log(2.0)], 784).numpy(), [8.0], rtol=1e-6)
    with pytest.raises(ValueError, match="num_dims"):
        bound_bits_per_dim([1.0], 0)
    with pytest.raises(ValueError, match="image shape"):
        VariationalDequantizer((28, 28))
    with pytest.raises(ValueError, match="couplings"):
        VariationalDequantizer((4, 4, 1), couplings=-1)
    q = VariationalDequantizer((4, 4, 1))
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 4, 4, 1\)"):
        q.sample_and_log_prob(tf.zeros([2, 5, 5, 1]))
    with pytest.raises(TypeError, match="bound must be callable"):
        DequantizedDensityModel(_one_pixel_model(), None, bound=3)


def test_logit_with_validate_args_names_inputs_outside_the_unit_interval():
    from flowlab.bijectors.dequantize import Logit

    checked = Logit(0.05, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"inputs must lie in \[0, 1\].*above 1"):
        checked.forward(1.7)
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative value"):
        checked.forward_log_det_jacobian(-0.2, event_ndims=0)
    np.testing.assert_allclose(float(checked.forward(0.5)), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(checked.forward(1.0)), float(Logit(0.05).forward(1.0)), rtol=1e-6)
