"""Reverse-KL training with model.fit, the ELBO estimator, the test energies and the flow-VAE."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab import variational as V
from flowlab.datasets.energies import density_grid, energy, energy_log_prob, log_normalizer
from flowlab.training import TrainingDiverged

tfd, tfb = tfp.distributions, tfp.bijectors


def _gaussian_flow(loc, scale):
    """N(loc, diag(scale²)) written as a flow (a base pushed through Shift o Scale): TFP's path."""
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(len(loc)))
    return tfd.TransformedDistribution(base, tfb.Chain([tfb.Shift(loc), tfb.Scale(scale)]))


def test_elbo_of_q_against_itself_is_minus_log_z_with_zero_variance():
    q = V.build_vi_flow("radial", dims=2, n_flows=3, seed=0)
    log_z = 3.0
    estimates = [float(V.negative_elbo(q, lambda z: q.log_prob(tf.identity(z)) + log_z, 64)) for _ in range(5)]
    np.testing.assert_allclose(estimates, -log_z, atol=1e-4)  # every sample gives log q - log p~ = -log Z


def test_monte_carlo_elbo_matches_closed_form_gaussian_kl():
    q = _gaussian_flow([0.5, -1.0], [0.7, 1.5])
    p = tfd.MultivariateNormalDiag([0.0, 0.3], [1.2, 0.8])
    exact = float(tfd.kl_divergence(tfd.MultivariateNormalDiag([0.5, -1.0], [0.7, 1.5]), p))
    samples = [float(V.negative_elbo(q, p.log_prob, 4000)) for _ in range(5)]
    standard_error = np.std(samples) / np.sqrt(len(samples))
    assert abs(np.mean(samples) - exact) < 4 * standard_error + 1e-3, (samples, exact)
    assert exact > 0.5  # the test would pass trivially for q = p


def test_fused_sampling_path_agrees_with_log_prob():
    q = V.build_vi_flow("planar", dims=2, n_flows=3, seed=1)
    z, log_q = V.sample_and_log_prob(q, 50, seed=2)
    np.testing.assert_allclose(log_q, q.log_prob(tf.constant(z.numpy())), atol=1e-4)
    for kind in ("householder", "iaf"):
        q = V.build_vi_flow(kind, dims=2, n_flows=2, hidden_units=(8,), seed=1)
        z, log_q = V.sample_and_log_prob(q, 50, seed=2)
        np.testing.assert_allclose(log_q, q.log_prob(tf.constant(z.numpy())), atol=1e-4)


def test_trained_planar_flow_beats_its_base_on_u1():
    target, log_z = energy_log_prob("U1"), log_normalizer("U1")
    q = V.build_vi_flow("planar", dims=2, n_flows=4, seed=0)
    before = V.exact_kl(q, target, log_z, 5000)
    base_kl = V.exact_kl(q.distribution, target, log_z, 5000)
    model, history = V.fit_variational(q, target, steps=300, learning_rate=1e-2, verbose=0)
    after = V.exact_kl(q, target, log_z, 5000)
    assert after < 0.5 * base_kl and after < before, (base_kl, before, after)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    assert {id(v) for v in q.trainable_variables} <= {id(v) for v in model.trainable_variables}


def test_exact_kl_is_kl_on_a_gaussian_target():
    p = tfd.MultivariateNormalDiag([0.0, 0.3], [1.2, 0.8])
    q = _gaussian_flow([0.5, -1.0], [0.7, 1.5])
    exact = float(tfd.kl_divergence(tfd.MultivariateNormalDiag([0.5, -1.0], [0.7, 1.5]), p))
    # p~ = p * e^2, so log Z = 2.
    assert abs(V.exact_kl(q, lambda z: p.log_prob(z) + 2.0, 2.0, 20000) - exact) < 0.05


def test_a_nan_target_stops_training_with_a_clear_error():
    q = V.build_vi_flow("radial", dims=2, n_flows=1, seed=0)
    with pytest.raises(TrainingDiverged, match="loss became nan"):
        V.fit_variational(q, lambda z: tf.reduce_sum(z, -1) * np.nan, steps=3, verbose=0)


def test_bad_arguments_raise_clear_errors():
    q = V.build_vi_flow("radial", dims=2, n_flows=1, seed=0)
    with pytest.raises(TypeError, match="target_log_prob must be a function"):
        V.fit_variational(q, "U1", steps=3, verbose=0)
    with pytest.raises(ValueError, match=r"steps must be a positive integer, got 0 \(int\)"):
        V.fit_variational(q, energy_log_prob("U1"), steps=0, verbose=0)
    with pytest.raises(TypeError, match=r"n_samples must be a positive integer, got 2\.5 \(float\)"):
        V.ReverseKL(q, energy_log_prob("U1"), n_samples=2.5)
    with pytest.raises(ValueError, match=r"annealing_steps must be a non-negative integer, got -1"):
        V.ReverseKL(q, energy_log_prob("U1"), annealing_steps=-1)
    with pytest.raises(ValueError, match=r"n_flows must be a positive integer, got 0 \(int\)"):
        V.build_vi_flow("radial", dims=2, n_flows=0)
    with pytest.raises(TypeError, match="TFP distribution"):
        V.ReverseKL(lambda n: n, energy_log_prob("U1"))
    with pytest.raises(ValueError, match="unknown flow type"):
        V.build_vi_flow("spline", dims=2, n_flows=2)
    with pytest.raises(ValueError, match="unknown energy"):
        energy_log_prob("U5")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        energy("U1")(tf.zeros([4, 3]))
    with pytest.raises(ValueError, match="same features"):
        V.feature_kl(np.zeros((10, 3)), np.zeros((10, 2)))


def test_energies_are_normalised_by_their_grid_log_z():
    for name in ("U1", "U3"):
        z1, z2, p = density_grid(name, limit=5.0, n=400)
        step = z1[0, 1] - z1[0, 0]
        assert abs(p.sum() * step**2 - 1.0) < 5e-3, name
    assert abs(log_normalizer("U2") - log_normalizer("U2", step=0.02)) < 1e-6


def test_flow_vae_loss_and_training():
    x = V.lecture_data()
    assert x.shape == (100, 3) and abs(x.mean() - 1.0) < 0.1 and abs(x.std() - 0.5) < 0.05
    np.testing.assert_allclose(V.flow_vae_loss(1.0, 0.5, -2.0, -3.0), 1.0 - 0.5 + 2.0 + 3.0)
    for flow, k in ((None, 0), ("planar", 2)):
        vae = V.FlowVAE(3, latent_dim=2, flow=flow, n_flows=k)
        first = float(np.mean(vae(x)))
        history = V.fit_vae(vae, x, epochs=8, verbose=0)
        assert history.history["loss"][-1] < first, flow
        assert vae.generate(20).shape == (20, 3)
    with pytest.raises(ValueError, match="needs a flow type"):
        V.FlowVAE(3, flow=None, n_flows=2)


def test_feature_kl_tells_matching_from_shifted_samples():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.5, (100, 3))
    same = V.feature_kl(x, rng.normal(1.0, 0.5, (20000, 3)))
    shifted = V.feature_kl(x, rng.normal(1.5, 0.5, (20000, 3)))
    assert 0 <= same < 0.5 < shifted


def test_the_iaf_of_build_vi_flow_bounds_every_layers_stretch():
    """Whatever its weights, each IAF layer scales each coordinate by at most e^IAF_LOG_SCALE_BOUND."""
    q = V.build_vi_flow("iaf", dims=2, n_flows=3, hidden_units=(8,))
    z = tf.random.stateless_normal([64, 2], seed=[5, 6])
    q.log_prob(z)  # builds the MADE networks
    for variable in q.trainable_variables:
        variable.assign(variable * 100.0)  # log-scales far beyond any bound, were they free
    log_det = q.bijector.forward_log_det_jacobian(z, event_ndims=1).numpy()
    assert np.all(np.isfinite(log_det))
    assert np.max(np.abs(log_det)) <= 3 * 2 * V.IAF_LOG_SCALE_BOUND + 1e-5
    assert np.max(np.abs(log_det)) > 0.5 * V.IAF_LOG_SCALE_BOUND  # the weights did move it
