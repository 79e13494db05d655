"""Train any TFP distribution by maximum likelihood with Keras ``model.fit``.

A density model's output is ``log_prob(x)``; its loss is the negative log-likelihood, which needs
no labels.  Keras's ``fit`` still expects a target for every input, so we pass dummy labels and
the loss ignores them -- the classic TFP lab sheet's trick.

Example::

    flow = flowlab.flows.build_maf(2)
    model, history = flowlab.training.fit(flow, x_train, epochs=20)
    flow.log_prob(x_test)            # the flow itself was trained: the model shares its variables
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Iterable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = [
    "DensityModel",
    "LinearWarmup",
    "StopOnNaN",
    "TrainingDiverged",
    "density_model",
    "negative_log_likelihood",
    "fit",
]

tfd = tfp.distributions


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


def negative_log_likelihood(y_true: tf.Tensor, log_prob: tf.Tensor) -> tf.Tensor:
    """Keras loss for density models: ``-log_prob``; the (dummy) labels are ignored."""
    del y_true
    return -log_prob


class DensityModel(tf.keras.Model):
    """A Keras model whose output is ``distribution.log_prob(x)``.

    Subclassing (rather than ``tf.keras.Model(x, dist.log_prob(x))``) matters: the functional form
    only tracks variables that live in Keras layers, so a bijector holding a plain ``tf.Variable``
    would silently not train.  Here every variable of the distribution is the model's.
    """

    def __init__(self, distribution: tfd.Distribution, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.distribution = distribution

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.distribution.log_prob(x)


def density_model(distribution: tfd.Distribution, name: str = "density_model") -> DensityModel:
    """Wrap ``distribution`` in a :class:`DensityModel` and build it for its event shape."""
    event_shape = _event_shape(distribution)
    model = DensityModel(distribution, name=name)
    model.build((None, *event_shape))
    return model


class StopOnNaN(tf.keras.callbacks.Callback):
    """Stop training with :class:`TrainingDiverged` as soon as the loss is not finite.

    Keras's own ``TerminateOnNaN`` stops quietly; a student then plots a NaN curve and wonders.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"the training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}. "
                "Lower the learning rate, check the data for NaN/inf or extreme values (standardise it), "
                "or bound the flow's log-scales."
            )


def _event_shape(distribution: tfd.Distribution) -> tuple[int, ...]:
    shape = distribution.event_shape
    if not shape.is_fully_defined():
        raise ValueError(f"the distribution's event shape {shape} must be fully known to build a model")
    return tuple(int(d) for d in shape)


def _check_data(x: Any, event_shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == object:
        raise TypeError(f"{what} must be a numeric array, got objects")
    if array.ndim != 1 + len(event_shape) or tuple(array.shape[1:]) != event_shape:
        raise ValueError(
            f"{what} has shape {array.shape}, but the flow's events have shape {event_shape}: "
            f"expected (n, {', '.join(map(str, event_shape))})"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array.astype(np.float32, copy=False)


def _with_dummy_labels(x: Any, event_shape: tuple[int, ...], what: str) -> tuple[Any, Any]:
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if isinstance(spec, tuple):  # already (x, y): keep the user's labels
            return x, None
        return x.map(lambda xb: (xb, tf.zeros(tf.shape(xb)[:1]))), None
    array = _check_data(x, event_shape, what)
    return array, np.zeros((len(array),), dtype=np.float32)


class LinearWarmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    r"""A learning rate that climbs linearly from ~0 to ``learning_rate`` over ``warmup_steps``, then stays.

    .. math:: \eta_t = \eta \cdot \min\!\left(1, \frac{t + 1}{T_\text{warm-up}}\right)

    Adam's first steps are its least reliable: its moment estimates rest on a handful of gradients,
    and a deep flow fresh from data-dependent initialisation (ActNorm) is at its most sensitive.  A
    short warm-up keeps those first updates small (Goyal et al. 2017; Glow, Kingma & Dhariwal 2018,
    warms up its learning rate the same way).

    Example::

        optimizer = tf.keras.optimizers.Adam(LinearWarmup(1e-3, warmup_steps=300), global_clipnorm=1e4)
    """

    def __init__(self, learning_rate: float, warmup_steps: int) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = warmup_steps

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        fraction = (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps)
        return self.learning_rate * tf.minimum(1.0, fraction)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def _model_event_shape(model: tf.keras.Model) -> tuple[int, ...] | None:
    """A functional model's input event shape; ``None`` for a subclassed one (it has no input spec
    even after it has been called)."""
    if not getattr(model, "inputs", None):
        return None
    shape = model.inputs[0].shape[1:]
    return tuple(int(d) for d in shape) if shape.is_fully_defined() else None


def fit(
    flow: tfd.Distribution | tf.keras.Model,
    x: Any,
    *,
    epochs: int,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    global_clipnorm: float | None = None,
    validation_data: Any = None,
    callbacks: Iterable[tf.keras.callbacks.Callback] = (),
    verbose: Any = "auto",
    shuffle: bool = True,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[tf.keras.Model, tf.keras.callbacks.History]:
    """Train ``flow`` by maximum likelihood on ``x`` with ``model.fit``; return ``(model, history)``.

    ``flow`` is a TFP distribution (wrapped in a :class:`DensityModel` compiled with Adam and the
    negative log-likelihood) or a Keras model whose output is a log-probability (compiled the
    same way unless already compiled).  ``x`` is an array of shape ``(n, *event_shape)`` or a
    ``tf.data.Dataset`` of batches; ``validation_data`` likewise.  ``global_clipnorm`` caps the
    gradient's global norm, so that a rare huge gradient (lab 02 logs spikes 100-2,000x the usual
    norm) cannot throw the flow off.  Under a ``tf.distribute`` strategy, build the flow inside
    ``strategy.scope()`` and pass ``strategy`` (or call ``fit`` inside the scope).  Training stops
    with :class:`TrainingDiverged` if the loss turns NaN.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    scope = strategy.scope() if strategy is not None else nullcontext()
    with scope:
        if isinstance(flow, tf.keras.Model):
            model = flow
            event_shape = _model_event_shape(model)
        elif isinstance(flow, tfd.Distribution):
            model = density_model(flow)
            event_shape = _event_shape(flow)
        else:
            raise TypeError(f"fit needs a TFP distribution or a Keras model, got {type(flow).__name__}")
        if event_shape is None:
            event_shape = tuple(np.asarray(x).shape[1:]) if not isinstance(x, tf.data.Dataset) else ()
        if not getattr(model, "_is_compiled", False):
            model.compile(
                optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=global_clipnorm),
                loss=negative_log_likelihood,
            )
    inputs, labels = _with_dummy_labels(x, event_shape, "the training data")
    if validation_data is not None:
        val_x, val_y = _with_dummy_labels(validation_data, event_shape, "the validation data")
        validation_data = val_x if val_y is None else (val_x, val_y)
    is_dataset = isinstance(inputs, tf.data.Dataset)
    history = model.fit(
        inputs,
        labels,
        epochs=epochs,
        batch_size=None if is_dataset else batch_size,
        validation_data=validation_data,
        callbacks=[StopOnNaN(), *callbacks],
        verbose=verbose,
        shuffle=shuffle if not is_dataset else False,
    )
    return model, history
