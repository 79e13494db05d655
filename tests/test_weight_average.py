"""flowlab.training.WeightAverage: the exponential moving average of the weights as a callback."""

import logging
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows import build_maf
from flowlab.training import WeightAverage, density_model, fit
from flowlab.validation import ArgumentError

tfd, tfb = tfp.distributions, tfp.bijectors


def _data(n=256, seed=0, shift=(1.5, -1.0)):
    return (np.random.default_rng(seed).normal(size=(n, 2)) + shift).astype(np.float32)


def _trained_maf(average, epochs=2, **kwargs):
    x = _data()
    model, history = fit(build_maf(2, n_layers=1, hidden_units=(8,)), x, epochs=epochs, batch_size=64,
                         learning_rate=1e-2, callbacks=[average], verbose=0, **kwargs)
    return model, history, x


def _shift_and_scale_model():
    """Two variables; SGD so that each step's weights are easy to record."""
    loc, log_scale = tf.Variable([0.0, 0.0]), tf.Variable([0.0, 0.0])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=[0.0, 0.0]),
                                       tfb.Chain([tfb.Shift(loc), tfb.Scale(log_scale=log_scale)]))
    model = density_model(flow)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05))
    return model


def _closed_form_ema(trajectory, momentum):
    """m^T w_0 + (1 - m) sum_t m^(T-t) w_t, in float64, from the recorded weights w_0..w_T."""
    steps = len(trajectory) - 1
    total = momentum ** steps * trajectory[0]
    for t in range(1, steps + 1):
        total = total + (1 - momentum) * momentum ** (steps - t) * trajectory[t]
    return total


def test_the_average_is_the_closed_form_ema_of_the_weight_trajectory_and_continues_across_fits():
    model = _shift_and_scale_model()
    trajectory = [np.concatenate([v.numpy() for v in model.trainable_variables]).astype(np.float64)]
    record = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trajectory.append(
        np.concatenate([v.numpy() for v in model.trainable_variables]).astype(np.float64)))
    average = WeightAverage(0.9, apply_at_end=False)
    x = _data(512)
    fit(model, x, epochs=2, batch_size=32, callbacks=[average, record], verbose=0)  # 32 steps
    assert len(trajectory) == 33
    got = np.concatenate(average.get_weights())
    np.testing.assert_allclose(got, _closed_form_ema(trajectory, 0.9), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, trajectory[-1], atol=1e-3)  # the average lags the weights: the check has teeth
    # A second fit with the same callback goes on averaging the same trajectory (Keras's use_ema does too),
    # on the one traced update.
    fit(model, x, epochs=1, batch_size=32, callbacks=[average, record], verbose=0)
    np.testing.assert_allclose(np.concatenate(average.get_weights()), _closed_form_ema(trajectory, 0.9),
                               rtol=1e-5, atol=1e-6)
    assert average._update.experimental_get_tracing_count() == 1
    # reset(): the next fit starts again from the weights it begins with.
    average.reset()
    restart = trajectory[-1:]
    fit(model, x[:64], epochs=1, batch_size=32, callbacks=[average, record], verbose=0)
    restart += trajectory[-2:]
    np.testing.assert_allclose(np.concatenate(average.get_weights()), _closed_form_ema(restart, 0.9),
                               rtol=1e-5, atol=1e-6)


def _autoregressive_violation(flow, x):
    """The largest |d output_i / d x_j| with j >= i over every MADE of the flow: 0 for an autoregressive one."""
    worst = 0.0
    for network in (m for m in flow.submodules if isinstance(m, tfb.AutoregressiveNetwork)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = network(x)  # (batch, dims, params)
        jacobian = tape.batch_jacobian(outputs, x).numpy()  # (batch, dims, params, dims)
        dims = jacobian.shape[1]
        forbidden = np.arange(dims)[None, :] >= np.arange(dims)[:, None]  # [i, j]: j >= i
        worst = max(worst, float(np.abs(jacobian.transpose(0, 2, 1, 3)[..., forbidden]).max()))
    return worst


@pytest.mark.parametrize("start_unmasked", [False, True])
def test_the_average_of_a_maf_keeps_its_autoregressive_masks(start_unmasked):
    flow = build_maf(2, n_layers=2, hidden_units=(8,))
    model = density_model(flow)
    kernels = [v for v in model.trainable_variables if getattr(v, "constraint", None) is not None]
    assert len(kernels) == 4
    masked_out = [v.constraint(tf.ones_like(v)).numpy() == 0 for v in kernels]
    if start_unmasked:
        # Weights that broke the mask when the average started (Keras constrains only after a step): the
        # average carries m^t of them, and only the constraint applied on writing the average removes them.
        for v, out in zip(kernels, masked_out):
            v.assign(v + 0.5 * out)
    average = WeightAverage(0.5, apply_at_end=False)
    fit(model, _data(), epochs=1, batch_size=64, learning_rate=1e-2, callbacks=[average], verbose=0)
    raw = {id(v): a.numpy() for v, a in zip(average._variables, average._average)}
    assert any(np.any(raw[id(v)][out] != 0) for v, out in zip(kernels, masked_out)) == start_unmasked
    x = tf.constant(_data(16, seed=3))
    with average.swapped():
        for v, out in zip(kernels, masked_out):
            assert np.all(v.numpy()[out] == 0)
        assert _autoregressive_violation(flow, x) == 0
        averaged = model.evaluate(x, verbose=0)
    assert np.isfinite(averaged)
    # The check can fail: the same network with its masked-out entries non-zero is not autoregressive.
    for v, out in zip(kernels, masked_out):
        v.assign(v + 0.5 * out)
    assert _autoregressive_violation(flow, x) > 1e-3


def test_swapped_restores_the_trained_weights_exactly_also_when_the_body_raises():
    average = WeightAverage(0.9, apply_at_end=False)
    model, _, x = _trained_maf(average)
    n_variables = len(model.variables)
    trained = [v.numpy().copy() for v in model.trainable_variables]
    averaged = average.get_weights()
    assert not all(np.array_equal(t, a) for t, a in zip(trained, averaged))
    with pytest.raises(KeyError, match="inside"):
        with average.swapped():
            for v, a in zip(model.trainable_variables, averaged):
                np.testing.assert_array_equal(v.numpy(), a)
            with pytest.raises(RuntimeError, match="already swapped"):
                with average.swapped():
                    pass
            with pytest.raises(RuntimeError, match=r"fit inside WeightAverage\.swapped\(\)"):
                fit(model, x, epochs=1, batch_size=64, callbacks=[average], verbose=0)
            raise KeyError("inside")
    for v, t in zip(model.trainable_variables, trained):
        np.testing.assert_array_equal(v.numpy(), t)
    assert len(model.variables) == n_variables  # the average is the callback's, not the model's
    average.apply()
    for v, a in zip(model.trainable_variables, averaged):
        np.testing.assert_array_equal(v.numpy(), a)


def test_validation_inside_fit_scores_the_average_when_asked():
    x_val = _data(128, seed=1)
    average = WeightAverage(0.9, apply_at_end=False)
    model, history, _ = _trained_maf(average, validation_data=x_val)
    live = model.evaluate(x_val, verbose=0, callbacks=[average])  # after fit: a plain evaluate, the live weights
    with average.swapped():
        averaged = model.evaluate(x_val, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(averaged, rel=1e-6)
    assert abs(live - averaged) > 1e-3
    assert model.evaluate(x_val, verbose=0) == pytest.approx(live, rel=1e-6)  # trained weights back after validation

    # Momentum close to 1: the average barely leaves the initial weights, and so does the validation loss.
    flow = build_maf(2, n_layers=1, hidden_units=(8,))
    initial = -float(tf.reduce_mean(flow.log_prob(x_val)))
    _, history = fit(flow, _data(), epochs=2, batch_size=64, learning_rate=1e-2, validation_data=x_val, verbose=0,
                     callbacks=[WeightAverage(1 - 1e-7, apply_at_end=False)])
    np.testing.assert_allclose(history.history["val_loss"], initial, rtol=1e-5)
    assert -float(tf.reduce_mean(flow.log_prob(x_val))) < initial - 0.05  # while the weights did train

    # validate_average=False: validation scores the trained weights.
    average = WeightAverage(0.9, validate_average=False, apply_at_end=False)
    model, history, _ = _trained_maf(average, validation_data=x_val)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x_val, verbose=0), rel=1e-6)


def test_by_default_the_model_holds_the_average_after_fit():
    average = WeightAverage(0.9)
    model, _, _ = _trained_maf(average)
    for v, a in zip(model.trainable_variables, average.get_weights()):
        np.testing.assert_array_equal(v.numpy(), a)


def test_many_steps_trace_the_update_once_and_keras_finds_no_slow_callback():
    messages = []

    class Capture(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Capture(level=logging.WARNING)
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        average = WeightAverage(0.99)
        x = _data(4096)
        fit(build_maf(2, n_layers=2, hidden_units=(32,)), x, epochs=2, batch_size=128, callbacks=[average], verbose=0)
        assert average._update.experimental_get_tracing_count() == 1  # 64 steps, one trace
        assert not [m for m in messages if "is slow compared to the batch time" in m], messages
        # The capture sees Keras's warning when a callback is slow.
        slow = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.05))
        fit(build_maf(2, n_layers=1, hidden_units=(8,)), x[:1024], epochs=1, batch_size=128, callbacks=[slow],
            verbose=0)
        assert [m for m in messages if "on_train_batch_end` is slow" in m], messages
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5, float("nan"), True, "0.9", None])
def test_a_bad_momentum_is_a_clear_argument_error(momentum):
    with pytest.raises(ArgumentError, match=r"momentum must be a number in \[0, 1\), got"):
        WeightAverage(momentum)


def test_bad_flags_are_argument_errors():
    with pytest.raises(ArgumentError, match="validate_average must be True or False, got 'yes'"):
        WeightAverage(0.9, validate_average="yes")
    with pytest.raises(ArgumentError, match="apply_at_end must be True or False"):
        WeightAverage(0.9, apply_at_end=1)


def test_using_the_average_before_training_is_a_clear_error():
    average = WeightAverage()
    with pytest.raises(RuntimeError, match=r"WeightAverage.swapped\(\) before training.*callbacks=\[average\]"):
        with average.swapped():
            pass
    with pytest.raises(RuntimeError, match=r"apply\(\) before training"):
        average.apply()
    with pytest.raises(RuntimeError, match=r"get_weights\(\) before training"):
        average.get_weights()


def _trajectory_recorder(model, trajectory):
    return tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trajectory.append(
        np.concatenate([v.numpy().ravel() for v in model.trainable_variables]).astype(np.float64)))


def test_a_density_model_averages_every_step_inside_the_step_also_with_steps_per_execution():
    """In a DensityModel the update is part of the traced step: k steps per call still average all k."""
    x = _data(512)
    averages = []
    for steps_per_execution in (1, 4):
        model = _shift_and_scale_model()
        model.compile(optimizer=tf.keras.optimizers.SGD(0.05), steps_per_execution=steps_per_execution)
        average = WeightAverage(0.9, apply_at_end=False)
        fit(model, x, epochs=1, batch_size=32, shuffle=False, callbacks=[average], verbose=0)  # 16 steps
        averages.append(np.concatenate(average.get_weights()))
    np.testing.assert_allclose(averages[1], averages[0], rtol=1e-5, atol=1e-6)
    # a model trained without the callback afterwards leaves the average alone (the step is traced again)
    before = np.concatenate(average.get_weights())
    fit(model, x, epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(np.concatenate(average.get_weights()), before)


def test_any_keras_model_is_averaged_after_each_batch():
    """Not a DensityModel: the callback's own after-batch update, the same closed form."""
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
    trajectory = [np.concatenate([v.numpy().ravel() for v in model.trainable_variables]).astype(np.float64)]
    average = WeightAverage(0.8, apply_at_end=False)
    x = _data(256)
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=32, epochs=1, verbose=0,
              callbacks=[average, _trajectory_recorder(model, trajectory)])
    assert len(trajectory) == 9
    np.testing.assert_allclose(np.concatenate([w.ravel() for w in average.get_weights()]),
                               _closed_form_ema(trajectory, 0.8), rtol=1e-5, atol=1e-6)
