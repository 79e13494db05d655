"""Batch normalisation between flow layers (flowlab.bijectors.batch_norm).

TFP's ``tfb.BatchNormalization`` gives ``log_prob`` in training mode the moving averages' log-det
next to the batch's normalisation; these tests hold flowlab's subclass to the batch's log-det, in
value and in gradient, and to a trained flow that is a good density in evaluation mode.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import flowlab
from flowlab.bijectors.batch_norm import BatchNormalization, batch_normalizations, refresh_statistics, set_training
from flowlab.datasets import load_two_moons
from flowlab.flows import build_coupling_flow
from flowlab.training import fit
from flowlab.transformers import AffineTransformer

tfd, tfb = tfp.distributions, tfp.bijectors
EPS = 1e-3  # the Keras layer's default epsilon


def _standard_normal():
    return tfd.MultivariateNormalDiag(loc=[0.0, 0.0])


def _points(n=300, seed=0):
    return np.random.default_rng(seed).normal([3.0, -1.0], [2.0, 0.5], size=(n, 2)).astype(np.float32)


def _normalised_log_prob(x, mean, variance):
    """log N(z; 0, I) + log|dz/dx| for z = (x - mean) / sqrt(variance + eps) (gamma 1, beta 0)."""
    z = (x - mean) / np.sqrt(variance + EPS)
    return (-0.5 * (z ** 2).sum(axis=1) - np.log(2 * np.pi) - 0.5 * np.log(variance + EPS).sum()).astype(np.float32)


def _bn_flow(n_layers=3, hidden=(16, 16)):
    return build_coupling_flow(2, AffineTransformer(3.0), n_layers, hidden, name="RealNVP_BN",
                               between=lambda i: BatchNormalization(name=f"bn{i}"))


def test_training_mode_log_prob_uses_the_batch_statistics_for_both_the_map_and_its_log_det():
    x = _points()
    flow = tfd.TransformedDistribution(_standard_normal(), BatchNormalization())
    np.testing.assert_allclose(flow.log_prob(x), _normalised_log_prob(x, x.mean(0), x.var(0)), rtol=1e-4, atol=1e-4)
    # A point alone has batch variance 0: its log-det is -1/2 log(eps) per variable, as the map's.
    np.testing.assert_allclose(flow.log_prob(x[:1]), -np.log(2 * np.pi) - np.log(EPS), rtol=1e-5)


def test_evaluation_mode_log_prob_uses_the_moving_averages_and_inverts_forward():
    x = _points()
    norm = BatchNormalization(training=False)
    flow = tfd.TransformedDistribution(_standard_normal(), norm)
    flow.log_prob(x)  # builds the layer: moving mean 0, variance 1
    norm.batchnorm.moving_mean.assign([3.0, -1.0])
    norm.batchnorm.moving_variance.assign([4.0, 0.25])
    expected = _normalised_log_prob(x, np.float32([3.0, -1.0]), np.float32([4.0, 0.25]))
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.forward(norm.inverse(x)), x, rtol=1e-5, atol=1e-5)
    assert not norm.training


def test_training_mode_log_det_has_the_batch_variance_gradient():
    # Data to latent: divide by exp(s), then normalise. The normalisation takes the scaling back out, so
    # log_prob hardly depends on s (only through eps). With the moving averages' log-det it fell by 2 per
    # unit of s (the Scale's own log-det, -2 s): shrinking looked costly and stretching free, and training
    # with model.fit stretched every layer below a normalisation to its bound.
    s = tf.Variable(0.5)
    flow = tfd.TransformedDistribution(_standard_normal(),
                                       tfb.Chain([tfb.Scale(log_scale=s), BatchNormalization()]))
    x = _points()
    with tf.GradientTape() as tape:
        log_prob = flow.log_prob(x)
        mean = tf.reduce_mean(log_prob)
    assert abs(float(tape.gradient(mean, s))) < 0.05
    scaled = x * np.exp(-0.5)
    np.testing.assert_allclose(log_prob, _normalised_log_prob(scaled, scaled.mean(0), scaled.var(0)) - 2 * 0.5,
                               rtol=1e-4, atol=1e-4)


def test_log_prob_in_a_chain_is_the_sum_of_the_layers_log_dets_in_both_modes():
    flow = _bn_flow()
    x = tf.constant(load_two_moons(200, 0, seed=1)[0])
    for training in (True, False):
        set_training(flow, training)
        log_prob = flow.log_prob(x)  # first: the walk below fills the bijector cache that log_prob reads
        y, log_det = x, 0.0
        for bijector in flow.bijector.bijectors:  # data to latent: the chain's list in order
            log_det += bijector.inverse_log_det_jacobian(y, event_ndims=1)
            y = bijector.inverse(y)
        np.testing.assert_allclose(log_prob, flow.distribution.log_prob(y) + log_det, rtol=1e-5, atol=1e-5)


def test_set_training_switches_every_normalisation_and_forgets_cached_values():
    flow = _bn_flow()
    x = tf.constant(_points(50))
    assert [norm.name for norm in set_training(flow, True)] == ["bn1", "bn0"]
    in_training = flow.log_prob(x)
    assert all(not norm.training for norm in set_training(flow, False))
    # The same tensor again: a stale cache would hand back the training-mode value.
    assert not np.allclose(flow.log_prob(x), in_training)
    assert batch_normalizations(flow) == batch_normalizations(flow.bijector)
    with pytest.raises(ValueError, match="holds no tfb.BatchNormalization"):
        set_training(build_coupling_flow(2, AffineTransformer(), 2, (8,)), False)
    with pytest.raises(TypeError, match="expected a flow"):
        set_training(np.zeros(2), False)


def test_refreshed_evaluation_mode_is_the_training_mode_density_of_the_whole_set():
    flow = _bn_flow()
    x = load_two_moons(500, 0, seed=2)[0]
    set_training(flow, True)
    whole_batch = flow.log_prob(x).numpy()
    momenta = [norm.batchnorm.momentum for norm in batch_normalizations(flow)]
    refresh_statistics(flow, x)
    assert not any(norm.training for norm in batch_normalizations(flow))
    assert [norm.batchnorm.momentum for norm in batch_normalizations(flow)] == momenta
    np.testing.assert_allclose(flow.log_prob(x), whole_batch, rtol=1e-4, atol=1e-4)


def test_trained_flow_with_batch_normalisation_is_a_good_density_in_evaluation_mode():
    x, x_test = load_two_moons(1024, 1000, seed=0)
    flow = _bn_flow()
    fit(flow, x, epochs=30, batch_size=256, learning_rate=2e-3, global_clipnorm=10.0, verbose=0)  # 120 steps
    refresh_statistics(flow, x)
    nll = -float(tf.reduce_mean(flow.log_prob(x_test)))
    # The best Gaussian for the test points (1.88 nats): a trained flow must beat it clearly. This flow
    # scored 1.44-1.50 on seeds 0-3; with TFP's tfb.BatchNormalization, trained on the wrong log-det, 1.9-2.1.
    centred = x_test - x_test.mean(0)
    gaussian = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * centred.T @ centred / len(x_test)))
    assert nll < gaussian - 0.2, (nll, gaussian)
    # Evaluation mode is a density: it integrates to ~1 over a grid that holds the moons.
    grid = np.stack(np.meshgrid(np.linspace(-3, 4, 281), np.linspace(-2.5, 3, 221)), -1).reshape(-1, 2)
    mass = float(tf.reduce_sum(flow.prob(grid.astype(np.float32)))) * (7 / 280) * (5.5 / 220)
    assert 0.97 < mass < 1.01, mass


def test_validation_in_fit_scores_in_evaluation_mode_and_leaves_the_moving_averages_to_the_training_data():
    x, far = _points(512, seed=1), _points(256, seed=2) + np.float32([50.0, 50.0])
    runs = []
    for validation in (None, far):  # the same seeded run, with and without validation passes
        flowlab.seed(0)
        flow = _bn_flow(n_layers=2)
        _, history = fit(flow, x, epochs=2, batch_size=128, validation_data=validation, verbose=0)
        runs.append((flow, history))
    (plain, _), (flow, history) = runs
    norms = batch_normalizations(flow)
    assert all(norm.training for norm in norms)  # training mode is back after the validation passes
    # Validation points 50 standard deviations away leave every moving average where training alone put it.
    for norm, twin in zip(norms, batch_normalizations(plain)):
        np.testing.assert_allclose(norm.batchnorm.moving_mean, twin.batchnorm.moving_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norm.batchnorm.moving_variance, twin.batchnorm.moving_variance, rtol=1e-5)
    # And the reported validation loss is the evaluation-mode density of those points, far below the base's.
    set_training(flow, False)
    expected = -np.mean(flow.log_prob(far).numpy())
    np.testing.assert_allclose(history.history["val_loss"][-1], expected, rtol=1e-4)
    assert expected > 100.0
