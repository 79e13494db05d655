"""The autoregressive mixture-CDF flow: invertible, autoregressive, exact density, trainable with fit."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from bijector_harness import randomise

import flowlab.training
from flowlab.bijectors.autoregressive_cdf import (
    AutoregressiveMixtureCDF,
    MADEMixtureConditioner,
    MixtureConditioner2D,
    build_autoregressive_mixture_cdf,
    initial_mixture_params,
)
from flowlab.datasets import load_face

tfd, tfb = tfp.distributions, tfp.bijectors


def _flow(dims, seed=0, family="gaussian"):
    """Random weights: a new flow's output layers are zero, which would hide conditioning bugs."""
    flow = build_autoregressive_mixture_cdf(dims, num_components=3, hidden_units=(16,), family=family)
    flow.log_prob(tf.zeros([1, dims]))  # build the Keras layers
    return randomise(flow, seed=seed, add_to=lambda v: v.shape.rank == 1 and "theta1" in v.name)


def _bijector(flow):
    return flow.bijector.bijector  # the flow holds Invert(AutoregressiveMixtureCDF): x -> z inside


# Round trips both ways, the log-det against autodiff, finite gradients: tests/test_bijectors.py.

@pytest.mark.parametrize("dims", [2, 3])
def test_log_prob_is_autodiff_log_det_and_jacobian_is_triangular(dims):
    flow = _flow(dims, seed=1)
    x = tf.random.stateless_normal([16, dims], seed=[5, 6])
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = _bijector(flow).forward(x)
    jacobian = tape.batch_jacobian(z, x).numpy()
    # Autoregressive: z_i depends on x_j only for j <= i, and it does depend on the earlier ones.
    assert np.all(jacobian[:, np.triu_indices(dims, 1)[0], np.triu_indices(dims, 1)[1]] == 0)
    assert np.all(np.abs(jacobian[:, np.tril_indices(dims, -1)[0], np.tril_indices(dims, -1)[1]]).max(axis=0) > 1e-4)
    _, log_det = np.linalg.slogdet(jacobian.astype(np.float64))
    np.testing.assert_allclose(flow.log_prob(x), log_det, atol=1e-3)  # the uniform base adds log 1 = 0


def test_density_integrates_to_one_on_a_grid():
    flow = _flow(2, seed=2)
    xs = np.linspace(-30, 30, 801)  # random conditioner weights give wide conditionals far out
    grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2).astype(np.float32)
    density = np.exp(flow.log_prob(grid).numpy().astype(np.float64))
    assert np.all(np.isfinite(density))
    assert abs(density.sum() * (xs[1] - xs[0]) ** 2 - 1) < 1e-2


def test_samples_are_ordered_inverse_cdfs():
    flow = _flow(2, seed=3)
    samples = flow.sample(4000, seed=7).numpy()
    assert samples.shape == (4000, 2) and np.all(np.isfinite(samples))
    z = np.sort(_bijector(flow).forward(samples).numpy(), axis=0)
    ks = np.abs(z - (np.arange(1, 4001)[:, None] - 0.5) / 4000).max(axis=0)
    assert np.all(ks < 0.03)  # both latents uniform, so x2 was drawn given the right x1
    assert flow.sample([3, 5], seed=1).shape == (3, 5, 2)


def test_conditioners_are_autoregressive_and_start_broad():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 3.0, -2.0]], np.float32)
    made = MADEMixtureConditioner(3, num_components=2, hidden_units=(8,))
    params = made(x).numpy()
    assert params.shape == (2, 3, 6)
    np.testing.assert_allclose(params, np.broadcast_to(initial_mixture_params(2), params.shape), atol=0.1)
    two_d = MixtureConditioner2D(num_components=4)
    params = two_d(x[:, :2]).numpy()
    assert params.shape == (2, 2, 12)
    np.testing.assert_allclose(params[:, 0], np.broadcast_to(two_d.marginal_params(), (2, 12)))
    np.testing.assert_allclose(params[:, 1], two_d.conditional_params(x[:, :1]))
    np.testing.assert_allclose(initial_mixture_params(3, (-1, 1))[3:6], [-1, 0, 1])


def test_trains_with_keras_fit_and_beats_its_start():
    flowlab.seed(0)
    train, test = load_face(1000, 500)
    flow = build_autoregressive_mixture_cdf(2, num_components=5, hidden_units=(32, 32))
    before = -float(np.mean(flow.log_prob(test)))
    model, history = flowlab.training.fit(flow, train, epochs=8, batch_size=100, learning_rate=5e-3, verbose=0)
    after = -float(np.mean(flow.log_prob(test)))
    assert {id(v) for v in flow.trainable_variables} <= {id(v) for v in model.trainable_variables}
    assert len(flow.trainable_variables) == 7  # theta1 + three Dense layers (kernel, bias)
    assert np.isfinite(after) and after < before - 0.5


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: build_autoregressive_mixture_cdf(2, num_components=0), ValueError, "at least one component"),
        (lambda: build_autoregressive_mixture_cdf(1), ValueError, "dims must be an integer of at least 2, got 1"),
        (lambda: build_autoregressive_mixture_cdf(2, loc_range=(1, -1)), ValueError, "low < high"),
        (lambda: build_autoregressive_mixture_cdf(3, network=tf.keras.layers.Dense(9)), ValueError, "conditioner="),
        (lambda: AutoregressiveMixtureCDF("not a network", dims=2), TypeError, "callable"),
        (lambda: AutoregressiveMixtureCDF(lambda x: x), ValueError, "needs dims"),
        (lambda: AutoregressiveMixtureCDF(MixtureConditioner2D(), family="cauchy"), ValueError, "family"),
    ],
)
def test_bad_construction_raises_clear_errors(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_bad_inputs_raise_clear_errors():
    flow = build_autoregressive_mixture_cdf(2, num_components=5)
    with pytest.raises(ValueError, match=r"events of 2 values"):
        flow.log_prob(np.zeros((4, 3), np.float32))
    wrong = build_autoregressive_mixture_cdf(2, num_components=5, network=tf.keras.layers.Dense(7))
    with pytest.raises(ValueError, match="3K = 15"):
        wrong.log_prob(np.zeros((4, 2), np.float32))
    bad = AutoregressiveMixtureCDF(lambda x: tf.zeros([4, 2, 6]), dims=3)  # parameters for 2 variables, not 3
    with pytest.raises(ValueError, match=r"expected \[..., 3, 3K\]"):
        bad.forward(np.zeros((4, 3), np.float32))
