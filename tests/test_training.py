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
from flowlab.flows import build_maf, build_realnvp
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


# --- continued training, labels, metrics and Keras arguments (issue 15, item 2) ---------------------------

def _tiny_maf():
    return build_maf(2, n_layers=1, hidden_units=(8,))


def _gaussian_data(n=256, seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, 2)).astype(np.float32)


def test_fit_continues_training_a_model_with_its_optimizer_state():
    x = _gaussian_data()
    model, first = fit(_tiny_maf(), x, epochs=2, batch_size=64, verbose=0)
    optimizer = model.optimizer
    moments = [v.numpy().copy() for v in optimizer.variables if "/m/" in v.name or v.name.endswith("_m:0")]
    assert int(optimizer.iterations) == 8
    again, second = fit(model, x, epochs=2, batch_size=64, verbose=0)
    assert again is model and model.optimizer is optimizer  # the same Adam, moments and step count
    assert int(optimizer.iterations) == 16
    assert moments or len(optimizer.variables) > 1
    assert second.history["loss"][-1] < first.history["loss"][0]


def test_a_learning_rate_given_to_a_compiled_model_resets_the_rate_and_keeps_the_moments():
    x = _gaussian_data()
    model, _ = fit(_tiny_maf(), x, epochs=1, batch_size=64, learning_rate=1e-2, verbose=0)
    optimizer = model.optimizer
    fit(model, x, epochs=1, batch_size=64, learning_rate=1e-4, verbose=0)
    assert model.optimizer is optimizer and int(optimizer.iterations) == 8
    assert float(optimizer.learning_rate) == pytest.approx(1e-4)


def test_evaluate_needs_no_labels_and_returns_the_negative_log_likelihood():
    flow = _tiny_maf()
    x = _gaussian_data(300)
    model, _ = fit(flow, x, epochs=1, verbose=0)
    nll = model.evaluate(x, batch_size=100, verbose=0)
    assert nll == pytest.approx(_nll(flow, x), rel=1e-5)
    assert nll > 1.0  # two standard-normal coordinates: about 2.8 nats, never the old 0.0


def test_a_density_model_fits_without_labels_through_plain_keras():
    flow = _tiny_maf()
    model = density_model(flow)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=negative_log_likelihood)
    history = model.fit(_gaussian_data(), epochs=2, batch_size=64, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_metrics_callbacks_and_other_fit_arguments_are_passed_on():
    from flowlab.bits_per_dim import BitsPerDim

    x = _gaussian_data()
    seen = []
    callback = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    model, history = fit(_tiny_maf(), x, epochs=3, initial_epoch=1, batch_size=64, verbose=0,
                         metrics=[BitsPerDim(2, num_levels=1)], callbacks=[callback], validation_split=0.25)
    assert seen == [1, 2]  # initial_epoch reached model.fit
    bits = np.asarray(history.history["bits_per_dim"])
    np.testing.assert_allclose(bits, np.asarray(history.history["loss"]) / (2 * np.log(2)), rtol=1e-5)
    assert "val_bits_per_dim" in history.history
    # validation_split held out the last quarter: the validation loss is the NLL of exactly those points
    np.testing.assert_allclose(history.history["val_loss"][-1], _nll(model.distribution, x[192:]), rtol=1e-4)


def test_fit_accepts_arrays_lists_tensors_and_datasets():
    x = _gaussian_data(128) + np.float32([1.5, -1.0])  # away from the base: training has something to do
    flow = _tiny_maf()
    model, start = None, _nll(flow, x)
    kinds = (x.tolist(), tf.constant(x), x.astype(np.float64), tf.data.Dataset.from_tensor_slices(x).batch(32))
    for runs, data in enumerate(kinds, start=1):
        model, history = fit(model or flow, data, epochs=2, batch_size=32, learning_rate=1e-2, verbose=0)
        assert int(model.optimizer.iterations) == 8 * runs and np.isfinite(history.history["loss"]).all()
    assert _nll(flow, x) < start - 0.3, (start, _nll(flow, x))


def test_a_float64_distribution_trains_in_float64():
    loc = tf.Variable([0.0, 0.0], dtype=tf.float64)
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2, tf.float64)), tfb.Shift(loc))
    x = _gaussian_data(512) + np.float32(2.0)
    model, history = fit(flow, x, epochs=30, batch_size=128, learning_rate=0.1, verbose=0)
    assert model.dtype == "float64" and model(x[:3]).dtype == tf.float64
    np.testing.assert_allclose(loc.numpy(), x.mean(axis=0), atol=0.1)


# --- validation at the boundary (issue 15, item 4) ---------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": 2.5}, TypeError, r"epochs must be a positive integer, got 2\.5 \(float\)"),
        ({"epochs": 0}, ValueError, r"epochs must be a positive integer, got 0"),
        ({"epochs": 1, "batch_size": 0}, ValueError, r"batch_size must be a positive integer"),
        ({"epochs": 1, "batch_size": 32.0}, TypeError, r"batch_size must be a positive integer, got 32\.0"),
        ({"epochs": 1, "batch_size": True}, TypeError, r"batch_size .* True \(bool\)"),
        ({"epochs": 1, "learning_rate": -1e-3}, ValueError, r"learning_rate must be a positive number.*negative"),
        ({"epochs": 1, "learning_rate": 0.0}, ValueError, r"learning_rate must be a positive number"),
        ({"epochs": 1, "learning_rate": float("nan")}, ValueError, r"learning_rate must be a positive number"),
        ({"epochs": 1, "validation_split": 1.5}, ValueError, r"validation_split must be a fraction"),
        ({"epochs": 1, "global_clipnorm": -1.0}, ValueError, r"global_clipnorm must be a positive number"),
        ({"epochs": 1, "y": np.zeros(8)}, ValueError, r"takes no labels"),
    ],
)
def test_bad_arguments_are_clear_errors_before_training(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit(_tiny_maf(), _gaussian_data(8), verbose=0, **kwargs)


def test_string_data_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"the training data must be real numbers, got strings"):
        fit(_tiny_maf(), [["0.1", "x"], ["1", "2"]], epochs=1, verbose=0)


def test_a_pair_x_y_is_refused_with_the_reason():
    x = _gaussian_data(16)
    with pytest.raises(ValueError, match=r"the training data is a pair \(x, y\).*learns p\(x\) from x alone"):
        fit(_tiny_maf(), (x, np.zeros(16)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data=x_val, not \(x_val, y_val\)"):
        fit(_tiny_maf(), x, epochs=1, validation_data=(x, np.zeros(16)), verbose=0)


def test_validation_split_with_a_dataset_says_to_use_validation_data():
    dataset = tf.data.Dataset.from_tensor_slices(_gaussian_data(16)).batch(8)
    with pytest.raises(ValueError, match="pass validation_data instead"):
        fit(_tiny_maf(), dataset, epochs=1, validation_split=0.2, verbose=0)


def _keras3():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


def test_a_keras3_layer_as_conditioner_is_rejected_with_the_fix():
    keras = _keras3()
    network = keras.layers.Dense(2)  # Keras 3: invisible to flow.trainable_variables, would never train

    def shift_and_log_scale(x):
        params = network(x)
        return params, tf.zeros_like(params)

    maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale)
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), maf)
    with pytest.raises(TypeError, match=r"Keras 3 layer \(keras\.src.*Dense.*tf\.keras\.layers after `import flowlab`"):
        fit(flow, _gaussian_data(16), epochs=1, verbose=0)
    coupling = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=lambda x, n: (network(x)[..., :n], 0.0 * x))
    with pytest.raises(TypeError, match="Keras 3 layer"):
        density_model(tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), coupling))


def test_a_tf_keras_conditioner_is_not_mistaken_for_keras3():
    from flowlab.keras2 import find_keras3_layers

    assert find_keras3_layers(_tiny_maf()) == []


def test_a_loss_that_explodes_without_reaching_nan_stops_with_the_same_message():
    # Adam's first step moves the log-scale by the learning rate: at 10 the scale drops to e^-10 and the
    # NLL of the next batch is ~1e7, finite -- the case the NaN check alone let run (RealNVP at lr 10: 2.4e20).
    log_scale = tf.Variable([0.0, 0.0])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), tfb.Scale(log_scale=log_scale))
    x = _gaussian_data(256, scale=0.5)
    with pytest.raises(TrainingDiverged,
                       match=r"loss became .*times its first value.* at epoch 1, batch 2.*learning rate"):
        fit(flow, x, epochs=3, batch_size=64, learning_rate=10.0, verbose=0)


def test_a_normal_run_never_trips_the_explosion_guard():
    log_scale = tf.Variable([0.0, 0.0])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), tfb.Scale(log_scale=log_scale))
    _, history = fit(flow, _gaussian_data(256, scale=0.5), epochs=3, batch_size=64, learning_rate=0.1, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_a_flow_built_outside_the_strategy_scope_is_a_clear_error():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    flow = _tiny_maf()  # built outside strategy.scope()
    with pytest.raises(ValueError, match=r"created outside MirroredStrategy\.scope\(\): build the flow inside "
                                         r"strategy\.scope\(\)"):
        fit(flow, _gaussian_data(16), epochs=1, verbose=0, strategy=strategy)
    with strategy.scope():
        inside = _tiny_maf()
    model, history = fit(inside, _gaussian_data(64), epochs=1, batch_size=32, verbose=0, strategy=strategy)
    assert np.isfinite(history.history["loss"][0])


def test_keras_weight_averaging_is_refused_for_flows_with_masked_weights():
    # tf-keras averages the weights before applying constraints: MADE's masks would be lost in the average.
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    model = density_model(build_maf(2, n_layers=1, hidden_units=(8,)))
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3, use_ema=True))
    with pytest.raises(ValueError, match=r"use_ema=True.*constraints.*flowlab\.training\.WeightAverage\(momentum\)"):
        model.fit(x, epochs=1, batch_size=32, verbose=0)
    # A coupling flow has no constrained weights: averaging is allowed, and a MAF trains without it.
    coupling = density_model(build_realnvp(2, n_layers=2, hidden_units=(8,)))
    coupling.compile(optimizer=tf.keras.optimizers.Adam(1e-3, use_ema=True))
    coupling.fit(x, epochs=1, batch_size=32, verbose=0)
    fit(build_maf(2, n_layers=1, hidden_units=(8,)), x, epochs=1, batch_size=32, verbose=0)
