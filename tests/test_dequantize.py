"""Dequantization and the logit: exact log-dets, bounded values at 0 and 1, fresh noise each epoch."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.dequantize import (
    Logit,
    dequantized_dataset,
    uniform_dequantize,
)
from flowlab.bits_per_dim import BitsPerDim, bits_per_dim

tfd, tfb = tfp.distributions, tfp.bijectors


def test_uniform_dequantize_stays_in_each_pixels_bin():
    x = np.array([[0, 1, 128, 255]] * 500, dtype=np.uint8)
    y = uniform_dequantize(x, seed=[1, 2]).numpy()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(np.floor(y * 256), x)
    assert 0.0 <= y.min() and y.max() < 1.0
    np.testing.assert_allclose((y * 256 - x).mean(), 0.5, atol=0.02)  # u ~ U[0, 1)
    with pytest.raises(ValueError, match="num_levels"):
        uniform_dequantize(x, num_levels=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="integer pixel values"):
        uniform_dequantize(np.array([0.5]))


def test_dataset_draws_fresh_noise_every_epoch_and_is_reproducible():
    images = np.random.default_rng(0).integers(0, 256, size=(32, 2, 2, 1))
    ds = dequantized_dataset(images, batch_size=32, seed=3, shuffle=False)
    first, second = next(iter(ds)).numpy(), next(iter(ds)).numpy()
    np.testing.assert_array_equal(np.floor(first * 256), images)
    assert np.abs(first - second).min() > 0  # a new u for every value in the new epoch
    again = next(iter(dequantized_dataset(images, batch_size=32, seed=3, shuffle=False))).numpy()
    np.testing.assert_array_equal(first, again)  # same seed, same noise


def test_dataset_refuses_scaled_images():
    with pytest.raises(ValueError, match="integers in 0..255"):
        dequantized_dataset(np.full((4, 2, 2), 0.5))
    with pytest.raises(ValueError, match="non-empty"):
        dequantized_dataset(np.zeros((0, 2, 2)))


# The logit's round trips and log-dets against autodiff (alpha 0 and 0.05): tests/test_bijectors.py.

def test_logit_with_alpha_maps_the_unit_interval_to_a_bounded_range():
    z = Logit(0.05).forward(tf.constant([0.0, 1.0])).numpy()
    np.testing.assert_allclose(z, [np.log(0.05 / 0.95), np.log(0.95 / 0.05)], rtol=1e-5)


def test_logit_is_finite_at_0_and_1_and_in_the_tails():
    logit = Logit(0.0)
    y = tf.constant([0.0, 1e-12, 1.0 - 1e-7, 1.0])
    with tf.GradientTape() as tape:
        tape.watch(y)
        z = logit.forward(y)
        ldj = logit.forward_log_det_jacobian(y, event_ndims=0)
        total = tf.reduce_sum(z) + tf.reduce_sum(ldj)
    assert np.all(np.isfinite(z.numpy())) and np.all(np.isfinite(ldj.numpy()))
    assert np.all(np.isfinite(tape.gradient(total, y).numpy()))
    far = tf.constant([-200.0, -30.0, 30.0, 200.0])
    ildj = logit.inverse_log_det_jacobian(far, event_ndims=0).numpy()
    np.testing.assert_allclose(ildj, -np.abs(far.numpy()), rtol=1e-5)  # log-space, no log(0)


def test_logit_refuses_bad_alpha():
    for alpha in (-0.1, 0.5, "a"):
        with pytest.raises(ValueError, match="alpha"):
            Logit(alpha)


def test_logistic_through_inverse_logit_is_uniform_and_scores_8_bits():
    """A uniform model over pixel values scores exactly 8 bits/dim, logit log-det included."""
    dims = 6
    base = tfd.Sample(tfd.Logistic(0.0, 1.0), [dims])
    uniform = tfd.TransformedDistribution(base, tfb.Invert(Logit(0.0)))
    pixels = np.random.default_rng(1).integers(0, 256, size=(100, dims))
    y = uniform_dequantize(pixels, seed=[6, 7])
    np.testing.assert_allclose(uniform.log_prob(y), 0.0, atol=2e-4)
    np.testing.assert_allclose(bits_per_dim(uniform.log_prob(y), dims), 8.0, atol=1e-4)
    alpha = 0.05  # with alpha, the model covers a slightly wider interval: density 1 - 2 alpha
    wider = tfd.TransformedDistribution(base, tfb.Invert(Logit(alpha)))
    np.testing.assert_allclose(bits_per_dim(wider.log_prob(y), dims), 8.0 - np.log2(1 - 2 * alpha), atol=1e-4)


def test_uniform_density_integrates_to_one_on_a_grid():
    uniform = tfd.TransformedDistribution(tfd.Logistic(0.0, 1.0), tfb.Invert(Logit(0.05)))
    edge = 0.05 / 0.9
    grid = np.linspace(-edge, 1 + edge, 20001, dtype=np.float32)[1:-1]
    density = np.exp(uniform.log_prob(grid).numpy())
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-3)


def test_bits_per_dim_conversion_and_metric():
    dims = 784
    assert float(bits_per_dim(0.0, dims)) == 8.0
    assert np.isclose(float(bits_per_dim(-dims * np.log(2.0), dims, num_levels=1)), 1.0)
    metric = BitsPerDim(dims)
    metric.update_state(None, tf.constant([0.0, -dims * np.log(2.0)]))
    np.testing.assert_allclose(metric.result(), 8.5)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(0.0, 0)
    with pytest.raises(ValueError, match="num_levels"):
        BitsPerDim(10, num_levels=0)
