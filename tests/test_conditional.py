"""Conditional flows p(x | c): trained with fit(flow, x, context=c), sampled with sample(n, context=c)."""

import numpy as np
import pytest
import tensorflow as tf

from flowlab.flows.conditional import build_conditional_maf, build_conditional_nsf, build_conditional_realnvp
from flowlab.training import ConditionalDensityModel, fit


def _simulate(theta, rng):
    """A simulator with one parameter: x | theta ~ N((theta, -theta), 0.1^2 I)."""
    return (np.concatenate([theta, -theta], axis=1) + 0.1 * rng.normal(size=(len(theta), 2))).astype(np.float32)


def _data(n, seed):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    return _simulate(theta, rng), theta


def test_a_conditional_maf_learns_the_simulator_and_samples_at_a_context():
    x, theta = _data(2048, 0)
    x_test, theta_test = _data(512, 1)
    flow = build_conditional_maf(2, context_dims=1, n_layers=2, hidden_units=(32, 32))
    model, history = fit(flow, x, context=theta, epochs=8, batch_size=128, learning_rate=3e-3, verbose=0,
                         validation_data=(x_test, theta_test))
    nll = -float(tf.reduce_mean(flow.log_prob(x_test, theta_test)))
    # The true conditional NLL is log(2 pi 0.01) = -2.77 nats; no density that ignores theta can go below
    # the marginal's entropy, about +0.15 nats: well below it, the flow must be using the context.
    assert nll < -1.0, nll
    np.testing.assert_allclose(history.history["val_loss"][-1], nll, rtol=1e-4)
    samples = flow.sample(2000, context=[0.5], seed=1).numpy()
    np.testing.assert_allclose(samples.mean(axis=0), [0.5, -0.5], atol=0.1)
    assert isinstance(model, ConditionalDensityModel)
    assert model.evaluate([x_test, theta_test], verbose=0) == pytest.approx(nll, rel=1e-4)


def test_a_conditional_realnvp_learns_the_simulator_and_its_samples_follow_the_context():
    x, theta = _data(1024, 5)
    x_test, theta_test = _data(512, 6)
    flow = build_conditional_realnvp(2, context_dims=1, n_layers=2, hidden_units=(32,))
    fit(flow, x, context=theta, epochs=6, batch_size=64, learning_rate=1e-2, verbose=0)
    nll = -float(tf.reduce_mean(flow.log_prob(x_test, theta_test)))
    # Any density that ignores theta has an NLL of at least the marginal's entropy, about +0.15 nats
    # (the true conditional's is -2.77); measured -1.48 to -1.54 over seeds 0-2.
    assert nll < -1.0, nll
    shuffled = -float(tf.reduce_mean(flow.log_prob(x_test, theta_test[::-1])))
    assert shuffled > nll + 5.0, (shuffled, nll)  # the wrong parameter for each point: far less likely
    for context in (0.5, -0.5):
        samples = flow.sample(2000, context=[context], seed=1).numpy()
        np.testing.assert_allclose(samples.mean(axis=0), [context, -context], atol=0.1)
        np.testing.assert_allclose(samples.std(axis=0), [0.1, 0.1], atol=0.05)


def test_a_conditional_coupling_inverts_and_its_log_det_is_the_autodiff_one_at_every_context():
    flow = build_conditional_realnvp(3, context_dims=2, n_layers=2, hidden_units=(8,))
    for v in flow.trainable_variables:  # the output layers start at zero: the identity
        v.assign(0.4 * tf.random.stateless_normal(v.shape, seed=[3, 4]))
    x = tf.random.stateless_normal([6, 3], seed=[5, 6])
    context = tf.random.stateless_normal([6, 2], seed=[7, 8])
    layers = flow._kwargs(context)
    z = flow.distribution.bijector.inverse(x, **layers)
    np.testing.assert_allclose(flow.distribution.bijector.forward(tf.identity(z), **layers), x, atol=1e-5)
    x = tf.identity(x)  # a new tensor: TFP's bijector cache would hand back z without a gradient path
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = flow.distribution.bijector.inverse(x, **layers)
    log_det = np.linalg.slogdet(tape.batch_jacobian(z, x).numpy().astype(np.float64))[1]
    assert np.abs(log_det).max() > 0.1  # not the identity: the test can fail
    expected = flow.distribution.distribution.log_prob(z).numpy() + log_det
    np.testing.assert_allclose(flow.log_prob(x, context), expected, atol=1e-4)
    assert not np.allclose(flow.log_prob(x, context), flow.log_prob(x, -context))


def test_a_conditional_flow_trains_from_a_dataset_of_pairs():
    x, theta = _data(512, 2)
    flow = build_conditional_maf(2, context_dims=1, n_layers=1, hidden_units=(16,))
    before = -float(tf.reduce_mean(flow.log_prob(x, theta)))
    dataset = tf.data.Dataset.from_tensor_slices((x, theta)).batch(128)
    fit(flow, dataset, epochs=3, learning_rate=1e-2, verbose=0)
    assert -float(tf.reduce_mean(flow.log_prob(x, theta))) < before - 0.3


def test_shapes_one_context_for_all_events_one_draw_per_context_and_single_events():
    flow = build_conditional_maf(2, context_dims=3, n_layers=1, hidden_units=(4,))
    x = np.zeros((5, 2), np.float32)
    shared = flow.log_prob(x, [0.1, 0.2, 0.3])
    per_row = flow.log_prob(x, np.tile([[0.1, 0.2, 0.3]], (5, 1)).astype(np.float32))
    np.testing.assert_allclose(shared, per_row, rtol=1e-6)
    assert flow.log_prob([0.0, 0.0], [0.1, 0.2, 0.3]).shape == ()
    assert flow.sample(None, context=np.zeros((4, 3), np.float32)).shape == (4, 2)
    assert flow.sample(6, context=[1.0, 0.0, 0.0]).shape == (6, 2)


def test_the_context_changes_the_density():
    flow = build_conditional_maf(2, context_dims=1, n_layers=1, hidden_units=(4,))
    for v in flow.trainable_variables:
        v.assign(v + 0.5 * tf.random.stateless_normal(v.shape, seed=[0, 1]))
    x = np.ones((3, 2), np.float32)
    assert not np.allclose(flow.log_prob(x, [0.0]), flow.log_prob(x, [2.0]))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda f, x, c: fit(f, x, epochs=1, verbose=0), ValueError, r"pass the context of each point"),
        (lambda f, x, c: fit(f, x, context=c[:5], epochs=1, verbose=0), ValueError, r"16 points but 5 contexts"),
        (lambda f, x, c: fit(f, x, context=np.zeros((16, 2)), epochs=1, verbose=0), ValueError,
         r"context of the training data has shape \(16, 2\).*expected \(n, 1\)"),
        (lambda f, x, c: fit(f, x, context=c, validation_data=x, epochs=1, verbose=0), ValueError,
         r"validation_data is a pair \(x_val, context_val\)"),
        (lambda f, x, c: f.sample(3), ValueError, r"sample\(n, context=c\)"),
        (lambda f, x, c: f.sample(3, context=np.zeros((4, 1))), ValueError, r"one draw per row"),
        (lambda f, x, c: f.log_prob(x, np.zeros((16, 3))), ValueError, r"expected \(n, 1\)"),
        (lambda f, x, c: build_conditional_maf(2, context_dims=0), ValueError, r"context_dims must be a positive"),
        (lambda f, x, c: build_conditional_nsf(2, 1, hidden_units=16), TypeError, r"such as \(16,\)"),
        (lambda f, x, c: build_conditional_realnvp(1, 1), ValueError, r"dims must be an integer of at least 2"),
        (lambda f, x, c: build_conditional_realnvp(2, 1, hidden_units=[0]), ValueError, r"hidden_units\[0\]"),
    ],
)
def test_bad_contexts_and_arguments_are_clear_errors(call, error, message):
    flow = build_conditional_maf(2, context_dims=1, n_layers=1, hidden_units=(4,))
    x, theta = _data(16, 3)
    with pytest.raises(error, match=message):
        call(flow, x, theta)


def test_context_for_an_unconditional_flow_is_refused():
    from flowlab.flows import build_maf

    x, theta = _data(16, 3)
    with pytest.raises(ValueError, match=r"context= is for conditional flows"):
        fit(build_maf(2, n_layers=1, hidden_units=(4,)), x, context=theta, epochs=1, verbose=0)


def test_a_conditional_flow_round_trips_through_hdf5_weights(tmp_path):
    x, theta = _data(16, 4)
    model = ConditionalDensityModel(build_conditional_nsf(2, context_dims=1, n_layers=1, bins=3, hidden_units=(4,)))
    for v in model.weights:
        v.assign(v + 0.3 * tf.random.stateless_normal(v.shape, seed=[1, 2]))
    model.save_weights(str(tmp_path / "c.weights.h5"))
    copy = ConditionalDensityModel(build_conditional_nsf(2, context_dims=1, n_layers=1, bins=3, hidden_units=(4,)))
    copy.load_weights(str(tmp_path / "c.weights.h5"))
    np.testing.assert_array_equal(copy.flow.log_prob(x, theta).numpy(), model.flow.log_prob(x, theta).numpy())
