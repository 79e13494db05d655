"""Training with model.fit: a trained flow beats its base, strategies work, NaN stops clearly."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.datasets import load_two_moons
from flowlab.flows import build_maf
from flowlab.training import (
    DensityModel,
    LinearWarmup,
    TrainingDiverged,
    density_model,
    fit,
    negative_log_likelihood,
)

tfd, tfb = tfp.distributions, tfp.bijectors


def _nll(distribution, x):
    return -float(tf.reduce_mean(distribution.log_prob(x)))


def test_trained_moons_flow_beats_its_gaussian_base_by_a_clear_margin():
    train, test = load_two_moons(3000, 1000, seed=0)
    flow = build_maf(2, n_layers=3, hidden_units=(64, 64))
    before = _nll(flow, test)
    model, history = fit(flow, train, epochs=12, batch_size=128, validation_data=test, verbose=0)
    after = _nll(flow, test)
    base = _nll(flow.distribution, test)
    assert after < base - 0.7, (before, after, base)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(history.history["val_loss"][-1], after, rtol=1e-3)
    assert isinstance(model, DensityModel)


def test_density_model_trains_plain_variables_the_functional_api_would_miss():
    loc = tf.Variable([0.0, 0.0])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), tfb.Shift(loc))
    model = density_model(flow)
    assert [id(v) for v in model.trainable_variables] == [id(loc)]
    x = np.random.default_rng(0).normal([2.0, -1.0], 1.0, size=(512, 2)).astype(np.float32)
    model, _ = fit(flow, x, epochs=40, learning_rate=0.1, global_clipnorm=1.0, verbose=0)
    np.testing.assert_allclose(loc.numpy(), x.mean(axis=0), atol=0.1)
    assert model.optimizer.global_clipnorm == 1.0


def test_nll_loss_ignores_labels():
    log_prob = tf.constant([-1.0, 2.0])
    np.testing.assert_allclose(negative_log_likelihood(tf.zeros((2, 0)), log_prob), [1.0, -2.0])


def test_fit_accepts_a_dataset_and_a_compiled_keras_model():
    train, _ = load_two_moons(512, 0, seed=1)
    flow = build_maf(2, n_layers=1, hidden_units=(8,))
    x_ = tf.keras.Input(shape=(2,))
    model = tf.keras.Model(x_, flow.log_prob(x_))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=negative_log_likelihood)
    before = _nll(flow, train)
    fit(model, tf.data.Dataset.from_tensor_slices(train).batch(64), epochs=3, verbose=0)
    assert _nll(flow, train) < before


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((10, 3), np.float32), r"shape \(10, 3\).*expected \(n, 2\)"),
        (np.zeros((10,), np.float32), r"shape \(10,\)"),
        (np.full((10, 2), np.nan, np.float32), "NaN or infinite"),
        (np.zeros((0, 2), np.float32), "empty"),
    ],
)
def test_bad_training_data_is_a_clear_error(data, message):
    with pytest.raises(ValueError, match=message):
        fit(build_maf(2, n_layers=1, hidden_units=(4,)), data, epochs=1, verbose=0)


def test_fit_rejects_what_is_not_a_flow():
    with pytest.raises(TypeError, match="TFP distribution or a Keras model"):
        fit("maf", np.zeros((4, 2)), epochs=1)


def test_nan_loss_stops_training_with_a_clear_message():
    scale = tf.Variable([1.0, 1.0])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), tfb.Scale(scale))
    x = np.ones((64, 2), np.float32)
    scale.assign([0.0, 1.0])  # a singular map: log_prob is -inf/NaN from the first batch
    with pytest.raises(TrainingDiverged, match=r"loss became .* at epoch 1, batch 1.*learning rate"):
        fit(flow, x, epochs=3, batch_size=32, verbose=0)


def test_fit_in_a_mirrored_strategy_on_two_cpu_devices():
    """What a user does to move to several GPUs, on two logical CPUs (a fresh process: the
    logical devices must be set before TensorFlow starts)."""
    code = textwrap.dedent(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import flowlab
        from flowlab.datasets import load_two_moons
        from flowlab.flows import build_maf
        from flowlab.training import fit
        flowlab.seed(0)
        train, test = load_two_moons(1024, 512, seed=2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            flow = build_maf(2, n_layers=2, hidden_units=(32,))
        before = -float(tf.reduce_mean(flow.log_prob(test)))
        model, history = fit(flow, train, epochs=4, batch_size=128, verbose=0, strategy=strategy)
        after = -float(tf.reduce_mean(flow.log_prob(test)))
        assert strategy.num_replicas_in_sync == 2
        assert after < before - 0.2, (before, after)
        print("ok", before, after)
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_linear_warmup_climbs_to_the_learning_rate_then_stays():
    schedule = LinearWarmup(1e-3, warmup_steps=300)
    rates = [float(schedule(step)) for step in (0, 149, 298, 299, 300, 10_000)]
    np.testing.assert_allclose(rates, [1e-3 / 300, 0.5e-3, 1e-3 * 299 / 300, 1e-3, 1e-3, 1e-3], rtol=1e-5)
    clone = LinearWarmup.from_config(schedule.get_config())
    assert float(clone(10)) == pytest.approx(float(schedule(10)))


def test_linear_warmup_makes_adams_first_step_small():
    # Adam's first update is lr * g / |g| per coordinate: its size is the scheduled rate.
    variable = tf.Variable([1.0, -2.0])
    optimizer = tf.keras.optimizers.Adam(LinearWarmup(0.1, warmup_steps=100))
    optimizer.apply_gradients([(tf.constant([3.0, -0.5]), variable)])
    np.testing.assert_allclose(variable.numpy(), [1.0 - 1e-3, -2.0 + 1e-3], rtol=0, atol=1e-6)


@pytest.mark.parametrize("args, message", [((0.0, 10), "learning_rate"), ((1e-3, 0), "warmup_steps"),
                                           ((1e-3, 2.5), "warmup_steps")])
def test_linear_warmup_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        LinearWarmup(*args)


def test_fit_trains_a_subclassed_model_even_after_it_was_called():
    """A subclassed model has no input shape, called or not; fit reads the event shape from the data."""
    from flowlab.flows import build_maf

    class LogLikelihood(tf.keras.Model):
        def __init__(self, flow):
            super().__init__()
            self.flow = flow

        def call(self, x):
            return self.flow.log_prob(x)

    flow = build_maf(2, n_layers=1, hidden_units=(8,))
    model = LogLikelihood(flow)
    x = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    before = [v.numpy().copy() for v in flow.trainable_variables]
    model(x[:4])  # called once, as a notebook cell that plots it would
    trained, history = fit(model, x, epochs=2, batch_size=64, verbose=0)
    assert trained is model and len(history.history["loss"]) == 2
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, flow.trainable_variables))
