"""Train any TFP distribution by maximum likelihood with Keras ``model.fit``.

A density model's output is ``log_prob(x)``; its loss is the negative log-likelihood, which needs
no labels.  :class:`DensityModel` trains, evaluates and saves without any (``model.fit(x)``,
``model.evaluate(x)``); :func:`fit` wraps a distribution in one, checks the arguments and the data
at the boundary, and stops with :class:`TrainingDiverged` when the loss turns NaN or explodes.

>>> import flowlab, tensorflow_probability as tfp
>>> model = density_model(tfp.distributions.Normal(0.0, 1.0))
>>> model.compile(optimizer="adam")                   # the loss defaults to the negative log-likelihood
>>> print(f"{model.evaluate(np.zeros(4, np.float32), verbose=0):.4f}")   # -log N(0; 0, 1)
0.9189
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab import saving
from flowlab.bijectors import batch_norm
from flowlab.keras2 import reject_keras3_layers
from flowlab.validation import ArgumentError, integer

__all__ = [
    "DensityModel",
    "LinearWarmup",
    "StopOnNaN",
    "TrainingDiverged",
    "WeightAverage",
    "density_model",
    "negative_log_likelihood",
    "fit",
]

tfd = tfp.distributions

# A training loss this many times its first value (in magnitude, beyond one nat) has diverged:
# RealNVP at learning rate 10 climbs from ~3 to 2.4e20 without ever becoming NaN.
EXPLOSION_FACTOR = 1e3


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite, or exploded by orders of magnitude."""


def negative_log_likelihood(y_true: tf.Tensor, log_prob: tf.Tensor) -> tf.Tensor:
    """Keras loss for density models: ``-log_prob``; the (dummy) labels are ignored.

    >>> import tensorflow as tf
    >>> negative_log_likelihood(None, tf.constant([-1.0, 2.0])).numpy()
    array([ 1., -2.], dtype=float32)
    """
    del y_true
    return -log_prob


class DensityModel(tf.keras.Model):
    """A Keras model whose output is ``distribution.log_prob(x)``.

    Subclassing (rather than ``tf.keras.Model(x, dist.log_prob(x))``) matters: the functional form
    only tracks variables that live in Keras layers, so a bijector holding a plain ``tf.Variable``
    would silently not train.  Here every variable of the distribution is the model's.

    Density models have no targets: ``fit(x)``, ``evaluate(x)`` (the mean negative log-likelihood)
    and metrics such as :class:`flowlab.bits_per_dim.BitsPerDim` work without labels, and labels
    that are given are ignored.  The model computes in the distribution's dtype (float64 flows
    stay float64).

    Saving: TF checkpoints (``save_weights("ckpt")``, ``tf.train.Checkpoint``), HDF5 weights
    (``save_weights("w.h5")``, ``"w.weights.h5"``, ``ModelCheckpoint("w.h5", save_weights_only=True)``)
    and SavedModel (``save("dir")``) all hold every weight of the flow; load weights into a flow
    rebuilt by the same builder call.  The ``.keras`` and whole-model ``.h5`` formats rebuild a
    model from its config, which a TFP distribution does not have: saving to them raises
    :class:`flowlab.saving.UnsupportedFormatError` naming the formats to use (:mod:`flowlab.saving`).
    """

    # The WeightAverage callbacks of the running fit, updated inside the traced training step; set on an
    # instance past Keras's attribute tracking (fit): callbacks are not the model's state, nor saved with it.
    _step_averages: tuple[WeightAverage, ...] = ()

    def __init__(self, distribution: tfd.Distribution, **kwargs: Any) -> None:
        if not isinstance(distribution, tfd.Distribution):
            raise TypeError(f"DensityModel needs a TFP distribution, got {type(distribution).__name__}")
        reject_keras3_layers(distribution, f"the distribution {distribution.name!r}")
        kwargs.setdefault("dtype", distribution.dtype)
        super().__init__(**kwargs)
        self.distribution = distribution

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.distribution.log_prob(x)

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, **kwargs: Any) -> None:
        """``tf.keras.Model.compile`` with :func:`negative_log_likelihood` as the default loss."""
        super().compile(optimizer=optimizer, loss=negative_log_likelihood if loss is None else loss, **kwargs)

    # Keras's loss and metric containers skip everything when there is no target (``evaluate(x)``
    # then reports a loss of 0.0) and ``fit(x)`` refuses to start: give them a target of the
    # batch's length, which the loss and the metrics ignore.
    def train_step(self, data: Any) -> Any:  # noqa: D102
        _refuse_ema_with_constraints(self)
        logs = super().train_step(_with_target(data))
        # after the optimizer applied the gradients and the constraints (tf.function orders the reads after
        # those writes): every step is averaged, also several per call with steps_per_execution
        for average in self._step_averages:
            average.update_in_step()
        return logs

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:  # noqa: D102 - tf.keras.Model.fit
        # WeightAverage callbacks update their average inside the training step instead of after each batch (no
        # Python call per step, and steps_per_execution > 1 averages every step). The step is traced with the
        # averages it updates: when they change, Keras must trace it again.
        listed = callbacks.callbacks if isinstance(callbacks, tf.keras.callbacks.CallbackList) else callbacks or ()
        # (under a tf.distribute strategy the step runs per replica: the callbacks update after each batch)
        averages = tuple(c for c in listed if isinstance(c, WeightAverage)
                         and getattr(self, "_distribution_strategy", None) is None)
        changed = [average.attach(self) for average in averages]
        if averages != self._step_averages or any(changed):
            object.__setattr__(self, "_step_averages", averages)
            self.train_function = None
        try:
            return super().fit(*args, callbacks=callbacks, **kwargs)
        finally:
            for average in averages:
                average.detach()

    def test_step(self, data: Any) -> Any:  # noqa: D102
        # Validation and evaluate() score the density of x alone: batch normalisations in evaluation mode (in
        # training mode each validation batch would be normalised with its own statistics and would move the
        # moving averages that evaluation uses). Read when the step is traced; training keeps its mode.
        with batch_norm.evaluation_mode(self.distribution):
            return super().test_step(_with_target(data))

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:  # noqa: D102 - see the class docstring
        saving.check_model_format(filepath, kwargs.get("save_format"))
        super().save(filepath, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Raises :class:`flowlab.saving.UnsupportedFormatError`: a flow has no config (see :mod:`flowlab.saving`).

        Keras's own config of a subclassed model would be ``{name, trainable, dtype}``: a ``.keras``
        file written from it saves, then fails to load ("missing ... 'distribution'").
        """
        raise saving.no_config(self)

    def save_weights(self, filepath: Any, overwrite: bool = True, save_format: str | None = None,
                     options: Any = None) -> None:  # noqa: D102
        if saving.is_hdf5(filepath, save_format):
            saving.save_hdf5_weights(self.weights, filepath, overwrite=overwrite)
        else:
            super().save_weights(filepath, overwrite=overwrite, save_format=save_format, options=options)

    def load_weights(self, filepath: Any, skip_mismatch: bool = False, by_name: bool = False,
                     options: Any = None) -> Any:  # noqa: D102
        if saving.is_hdf5(filepath) or saving.is_hdf5_file(filepath):
            if by_name or skip_mismatch:
                raise ValueError("by_name and skip_mismatch do not apply to a flow's weights: they are matched "
                                 "in order")
            saving.load_hdf5_weights(self.weights, filepath)
            return None
        return super().load_weights(filepath, skip_mismatch=skip_mismatch, by_name=by_name, options=options)


class ConditionalDensityModel(DensityModel):
    """A Keras model whose input is ``(x, context)`` and output ``flow.log_prob(x, context)``.

    For a :class:`flowlab.flows.conditional.ConditionalFlow`; :func:`fit` makes one when given
    ``context=``. Trains, evaluates and saves like :class:`DensityModel`.
    """

    def __init__(self, flow: Any, **kwargs: Any) -> None:
        reject_keras3_layers(flow, "the conditional flow")
        kwargs.setdefault("dtype", flow.dtype)
        tf.keras.Model.__init__(self, **kwargs)  # noqa: PLE1003 - DensityModel.__init__ wants a distribution
        self.flow = flow
        self.distribution = flow.distribution

    def call(self, inputs: Any) -> tf.Tensor:
        x, context = inputs
        return self.flow.log_prob(x, context)


def _refuse_ema_with_constraints(model: tf.keras.Model) -> None:
    """Keras's weight averaging (``use_ema=True``) averages the weights before their constraints apply.

    TFP's MADE (every MAF, IAF and autoregressive NSF) keeps its autoregressive masks as kernel
    constraints, so the averaged network is no longer autoregressive and its ``log_prob`` is not a
    density: a two-moons MAF "scored" 0.19 nats under a true density of 0.30. Refused while the training
    step is traced, before any step runs.
    """
    if not getattr(model.optimizer, "use_ema", False):
        return
    constrained = [v.name for v in model.trainable_variables if getattr(v, "constraint", None) is not None]
    if constrained:
        raise ValueError(
            f"the optimizer averages the weights (use_ema=True), but {len(constrained)} of this flow's weights "
            f"carry constraints (e.g. {constrained[0]!r}: MADE's autoregressive masks in a MAF, IAF or "
            "autoregressive NSF); Keras averages them unconstrained, so the averaged flow would not be a density. "
            "Train without use_ema and pass flowlab.training.WeightAverage(momentum) as a callback: it averages "
            "the constrained weights and applies each variable's constraint to the average.")


def _with_target(data: Any) -> Any:
    x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        y = tf.zeros(tf.shape(tf.nest.flatten(x)[0])[:1])
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def density_model(distribution: tfd.Distribution, name: str = "density_model") -> DensityModel:
    """Wrap ``distribution`` in a :class:`DensityModel` and build it for its event shape.

    >>> import flowlab, tensorflow_probability as tfp
    >>> model = density_model(tfp.distributions.MultivariateNormalDiag(loc=[0.0, 0.0]))
    >>> model(np.zeros((3, 2), np.float32)).shape
    TensorShape([3])
    """
    event_shape = _event_shape(distribution)
    model = DensityModel(distribution, name=name)
    # build() traces the model on a placeholder of Keras's float type: make it the flow's own.
    floatx = tf.keras.backend.floatx()
    tf.keras.backend.set_floatx(distribution.dtype.name if distribution.dtype.is_floating else floatx)
    try:
        model.build((None, *event_shape))
    finally:
        tf.keras.backend.set_floatx(floatx)
    # SavedModel needs the input signature, which Keras records on a model's first __call__ only.
    model._set_save_spec(tf.TensorSpec((None, *event_shape), distribution.dtype))
    return model


class StopOnNaN(tf.keras.callbacks.Callback):
    """Stop training with :class:`TrainingDiverged` when the loss is not finite or explodes.

    Keras's own ``TerminateOnNaN`` stops quietly; a student then plots a NaN curve and wonders.
    A loss that runs away without reaching infinity (``explosion_factor`` times the first batch's,
    beyond one nat) is the same failure caught a few steps earlier, and gets the same message.

    >>> import flowlab, numpy as np, tensorflow as tf, tensorflow_probability as tfp
    >>> log_scale = tf.Variable([0.0])
    >>> flow = tfp.distributions.TransformedDistribution(
    ...     tfp.distributions.MultivariateNormalDiag(loc=[0.0]), tfp.bijectors.Scale(log_scale=log_scale))
    >>> x = np.random.default_rng(0).normal(scale=0.5, size=(256, 1)).astype(np.float32)
    >>> fit(flow, x, epochs=2, batch_size=64, learning_rate=10.0, verbose=0)   # Adam steps log_scale by -10
    Traceback (most recent call last):
    ...
    flowlab.training.TrainingDiverged: the training loss became ... (1000 times its first value ...) at epoch 1, ...
    """

    def __init__(self, explosion_factor: float = EXPLOSION_FACTOR) -> None:
        super().__init__()
        if not explosion_factor > 1:
            raise ValueError(f"explosion_factor must be greater than 1, got {explosion_factor!r}")
        self.explosion_factor = float(explosion_factor)
        self._epoch = 0
        self._first: float | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss) and self._first is None:
            self._first = loss
        exploded = (math.isfinite(loss) and self._first is not None
                    and loss > self._first + self.explosion_factor * max(abs(self._first), 1.0))
        if not math.isfinite(loss) or exploded:
            why = f" ({self.explosion_factor:g} times its first value {self._first:.4g})" if exploded else ""
            raise TrainingDiverged(
                f"the training loss became {loss:.4g}{why} at epoch {self._epoch + 1}, batch {batch + 1}. "
                "Lower the learning rate, check the data for NaN/inf or extreme values (standardise it), "
                "or bound the flow's log-scales."
            )


class WeightAverage(tf.keras.callbacks.Callback):
    r"""Polyak averaging: an exponential moving average of the trainable weights, kept after every batch.

    .. math:: \bar\theta_0 = \theta_0, \qquad
              \bar\theta_t = m\,\bar\theta_{t-1} + (1 - m)\,\theta_t
              = m^t \theta_0 + (1 - m) \sum_{s=1}^{t} m^{t-s} \theta_s

    where :math:`\theta_t` are the weights after training step :math:`t`. The average forgets with a
    time constant of about :math:`1 / (1 - m)` steps (100 at the default ``momentum=0.99``).  It smooths
    out the noise of the last steps and can score better than the last weights, or worse while the
    weights still move fast (``bench/image_flows.md``: it never won there): score both.  Averaging the
    iterates is Polyak & Juditsky's (1992); Flow++ (Ho et al. 2019) evaluates such an average.

    Why not Keras's own ``Adam(use_ema=True)``: tf-keras updates its average inside the optimizer step,
    *before* it applies the variables' constraints.  TFP's MADE (every MAF, IAF and autoregressive NSF)
    keeps its autoregressive masks :math:`M` as kernel constraints, :math:`W \leftarrow M \odot W`; the
    gradient of a masked-out entry is not zero, so Keras's average of :math:`W` gathers the updates
    that the constraint then removes from the weights, the averaged network is not autoregressive and its
    ``log_prob`` is not a density (:func:`fit` refuses ``use_ema`` for such flows).  This callback reads
    the weights after the optimizer applied the constraints, so for a linear
    mask :math:`\bar W = \sum_s c_s (M \odot W_s) = M \odot \sum_s c_s W_s` is masked too.  Each
    variable's ``constraint`` is still applied whenever the average is written into the model: it costs
    nothing, and it makes the written weights valid even when the average started from weights that
    broke the constraint (the initial weights are not constrained by Keras).

    Only trainable weights are averaged; non-trainable state (batch-norm moving statistics) is the
    model's own.  The average lives in ``tf.Variable`` s held by the callback, not by the model:
    saving the model saves the weights in it.  Training a :class:`DensityModel` (:func:`fit`, or its
    ``fit``), the update runs inside the traced training step: no Python call per step (a 4-layer
    spline flow on two moons steps ~15 % faster with ``steps_per_execution=6``), and every step is
    averaged at any ``steps_per_execution``.  Any other Keras model (or one under a ``tf.distribute``
    strategy) is updated from ``on_train_batch_end``: after every ``k`` steps with
    ``steps_per_execution=k``.

    Args:
        momentum: :math:`m`, in ``[0, 1)``: 0.99-0.9999 are usual; 0 keeps the last weights.
        validate_average: the validation inside ``fit(validation_data=...)`` scores the average
            (``val_loss`` is the average's); the trained weights are swapped back after each
            validation, and a later plain ``model.evaluate`` scores whatever the model holds.  Callbacks
            that save weights at the end of an epoch (``ModelCheckpoint``, ``EarlyStopping``) still
            save the trained weights, judged by the average's ``val_loss``.
        apply_at_end: write the average into the model when training ends, as Keras's ``use_ema`` does
            (``True``, the default: after ``fit`` the model holds the average); ``False`` leaves the
            trained weights, and :meth:`swapped` or :meth:`apply` use the average when wanted.

    The first ``fit`` the callback is given to starts the average from the model's weights at
    ``on_train_begin``; later fits of the same model with the same callback continue it (as Keras's
    optimizer-held average does): :meth:`reset` starts over.

    Raises:
        flowlab.validation.ArgumentError: a momentum outside ``[0, 1)``, or a flag that is not a bool.

    >>> import flowlab, numpy as np
    >>> from flowlab.flows import build_maf
    >>> flowlab.seed(0)
    >>> x = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    >>> average = WeightAverage(0.9, apply_at_end=False)
    >>> model, history = fit(build_maf(2, n_layers=1, hidden_units=(8,)), x, epochs=3, batch_size=64,
    ...                      validation_data=x[:64], callbacks=[average], verbose=0)
    >>> with average.swapped():                          # the average in the model, masks applied
    ...     averaged = model.evaluate(x[:64], verbose=0)
    >>> bool(np.isclose(averaged, history.history["val_loss"][-1]))   # validation scored the average
    True
    >>> WeightAverage(momentum=1.0)
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: momentum must be a number in [0, 1), got 1.0 (float): ...
    """

    def __init__(self, momentum: float = 0.99, *, validate_average: bool = True, apply_at_end: bool = True) -> None:
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.integer, np.floating)) \
                or not 0 <= momentum < 1:
            raise ArgumentError(
                f"momentum must be a number in [0, 1), got {momentum!r} ({type(momentum).__name__}): the average "
                "is momentum * average + (1 - momentum) * weights, so 1 would never move from the initial weights "
                "(0.99 to 0.9999 are usual)")
        for name, flag in (("validate_average", validate_average), ("apply_at_end", apply_at_end)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ArgumentError(f"{name} must be True or False, got {flag!r} ({type(flag).__name__})")
        self.momentum = float(momentum)
        self.validate_average = bool(validate_average)
        self.apply_at_end = bool(apply_at_end)
        self._variables: tuple[tf.Variable, ...] = ()
        self._average: tuple[tf.Variable, ...] | None = None
        self._trained: tuple[tf.Variable, ...] | None = None  # the trained weights while the average is swapped in
        self._swapped_by: str | None = None  # "validation" or "swapped()"
        self._in_fit = False
        self._in_step = False  # updated inside a DensityModel's training step (attach), not after each batch

    def reset(self) -> None:
        """Forget the average: the next ``fit`` starts it again from the model's weights then."""
        self._restore_after_interrupted_validation()
        self._average = self._trained = None
        self._variables = ()

    def _start(self, variables: tuple[tf.Variable, ...]) -> None:
        if not variables:
            raise RuntimeError("WeightAverage: the model has no trainable weights yet, so there is nothing to "
                               "average; build the flow before fit (flowlab's builders do; else call its log_prob "
                               "once)")
        self._variables = variables
        self._average = tuple(tf.Variable(v.read_value(), trainable=False, name="weight_average")
                              for v in variables)
        self._trained = None
        # One graph for all the variables: a Python loop of assigns would dispatch one eager op per variable
        # after every batch.  The momentum is an argument so that the warm-up below can run the graph with
        # momentum 1, which leaves the average exactly as it is.
        update = self._update = tf.function(self._blend)
        # Tracing and the graph's first run (optimisation, placement) take tens of milliseconds: paid here rather
        # than in the first batch's hook, which Keras's timing check would then report as a slow callback.
        update(tf.constant(1.0, tf.float64))
        self._momentum = tf.constant(self.momentum, tf.float64)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._swapped_by == "swapped()":
            raise RuntimeError("fit inside WeightAverage.swapped(): it would train the average, and leaving the "
                               "block would throw that training away; call apply() first to train on from the average")
        self._restore_after_interrupted_validation()
        variables = tuple(self.model.trainable_variables)
        if self._averages_other_weights(variables):
            self._start(variables)
        self._in_fit = True

    def _averages_other_weights(self, variables: tuple[tf.Variable, ...]) -> bool:
        """No average yet, or one of other variables than ``variables`` (another model, or rebuilt)."""
        return self._average is None or [id(v) for v in variables] != [id(v) for v in self._variables]

    def _blend(self, momentum: Any) -> None:
        """``average = momentum * average + (1 - momentum) * weights``, for every variable."""
        for a, v in zip(self._average, self._variables):
            a.assign(tf.cast(momentum, a.dtype) * a + tf.cast(1.0 - momentum, a.dtype) * v)

    def attach(self, model: tf.keras.Model) -> bool:
        """Called by :meth:`DensityModel.fit` before Keras traces the training step, which then calls
        :meth:`update_in_step` after each step; returns whether the average was (re)started, i.e. whether a
        step traced before has to be traced again."""
        variables = tuple(model.trainable_variables)
        restart = self._averages_other_weights(variables)
        if restart and self._swapped_by is None:  # inside swapped(), on_train_begin refuses the fit
            self._start(variables)
        self._in_step = True
        return restart

    def detach(self) -> None:
        """The fit that :meth:`attach` served has ended: later fits update after each batch unless attached."""
        self._in_step = False

    def update_in_step(self) -> None:
        """The update, inside a traced training step (after the optimizer and the constraints)."""
        self._blend(self.momentum)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._in_step:  # any other Keras model: after each batch (every k steps with steps_per_execution=k)
            self._update(self._momentum)

    # In tf-keras's fit, validation is an evaluate() with the same callbacks, between the epoch's last batch
    # and on_epoch_end: the average is in the model for exactly that evaluation.
    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._in_fit and self.validate_average and self._swapped_by is None:
            self._swap_in("validation")

    def on_test_end(self, logs: dict | None = None) -> None:
        if self._swapped_by == "validation":
            self._swap_back()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._in_fit = False
        if self.apply_at_end:
            self.apply()

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Within the block the model holds the average (constraints applied); the trained weights come back
        on leaving it, exactly, also when the block raises.

        Raises:
            RuntimeError: before training, or inside another ``swapped()``.
        """
        self._check_started("swapped()")
        self._restore_after_interrupted_validation()
        if self._swapped_by is not None:
            raise RuntimeError("the average is already swapped into the model (swapped() inside swapped())")
        self._swap_in("swapped()")
        try:
            yield
        finally:
            self._swap_back()

    def apply(self) -> None:
        """Write the average into the model for good (constraints applied); the trained weights are dropped.

        Raises:
            RuntimeError: before training, or inside ``swapped()`` (which would put the trained weights back).
        """
        self._check_started("apply()")
        if self._swapped_by == "swapped()":
            raise RuntimeError("apply() inside swapped(): leaving the block would put the trained weights back; "
                               "call apply() after it")
        self._swapped_by = None  # an interrupted validation's average is the one to keep
        for a, v in zip(self._average, self._variables):
            v.assign(self._constrained(a, v))

    def get_weights(self) -> list[np.ndarray]:
        """The average as NumPy arrays, constraints applied, in the order of ``model.trainable_variables``."""
        self._check_started("get_weights()")
        return [self._constrained(a, v).numpy() for a, v in zip(self._average, self._variables)]

    @staticmethod
    def _constrained(average: tf.Variable, variable: tf.Variable) -> tf.Tensor:
        value = average.read_value()
        constraint = getattr(variable, "constraint", None)
        return value if constraint is None else tf.cast(constraint(value), variable.dtype)

    def _check_started(self, what: str) -> None:
        if self._average is None:
            raise RuntimeError(
                f"WeightAverage.{what} before training: there is no average yet. Pass the callback to fit "
                "(callbacks=[average]); the average starts from the weights when training begins")

    def _swap_in(self, by: str) -> None:
        if self._trained is None:
            self._trained = tuple(tf.Variable(v.read_value(), trainable=False, name="trained_weights")
                                  for v in self._variables)
        for t, a, v in zip(self._trained, self._average, self._variables):
            t.assign(v)
            v.assign(self._constrained(a, v))
        self._swapped_by = by

    def _swap_back(self) -> None:
        for t, v in zip(self._trained, self._variables):
            v.assign(t)
        self._swapped_by = None

    def _restore_after_interrupted_validation(self) -> None:
        # An exception (Ctrl-C) during fit's validation skips on_test_end: the average would stay in the model
        # and training would go on from it.
        if self._swapped_by == "validation":
            self._swap_back()


def _event_shape(distribution: tfd.Distribution) -> tuple[int, ...]:
    shape = distribution.event_shape
    if not shape.is_fully_defined():
        raise ValueError(f"the distribution's event shape {shape} must be fully known to build a model")
    return tuple(int(d) for d in shape)


def _is_pair(x: Any) -> bool:
    """``(x, y)`` as Keras users pass supervised data: a tuple of two arrays or tensors."""
    return isinstance(x, tuple) and len(x) == 2 and all(
        isinstance(part, (np.ndarray, tf.Tensor)) or hasattr(part, "__array__") for part in x)


_NO_LABELS = (
    "{what} is a pair (x, y), but a density model learns p(x) from x alone and takes no labels: "
    "pass x by itself{hint}"
)


def _check_data(x: Any, event_shape: tuple[int, ...], what: str, dtype: tf.DType = tf.float32) -> np.ndarray:
    if _is_pair(x):
        raise ValueError(_NO_LABELS.format(what=what, hint=" (validation_data=x_val, not (x_val, y_val))"
                                           if "validation" in what else ""))
    try:
        array = np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{what} must be a numeric array of shape (n, {', '.join(map(str, event_shape))}): "
                         f"{error}") from error
    if array.dtype.kind not in "biuf":
        kind = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers"}.get(
            array.dtype.kind, f"dtype {array.dtype}")
        raise TypeError(f"{what} must be real numbers, got {kind} (dtype {array.dtype}): convert it with np.asarray(x, "
                        "dtype=np.float32) after parsing")
    if array.ndim != 1 + len(event_shape) or tuple(array.shape[1:]) != event_shape:
        raise ValueError(
            f"{what} has shape {array.shape}, but the flow's events have shape {event_shape}: "
            f"expected (n, {', '.join(map(str, event_shape))})"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array.astype(dtype.as_numpy_dtype, copy=False)


def _prepare(x: Any, event_shape: tuple[int, ...], what: str, dtype: tf.DType, needs_labels: bool) -> tuple[Any, Any]:
    """``(inputs, labels)`` for ``model.fit``: dummy labels only for a model whose fit wants them."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if isinstance(spec, tuple) or not needs_labels:  # (x, y) or (x, y, w): Keras's own unpacking
            return x, None
        return x.map(lambda xb: (xb, tf.zeros(tf.shape(xb)[:1], xb.dtype))), None
    array = _check_data(x, event_shape, what, dtype)
    return array, (np.zeros((len(array),), dtype=array.dtype) if needs_labels else None)


class LinearWarmup(tf.keras.optimizers.schedules.LearningRateSchedule):
    r"""A learning rate that climbs linearly from ~0 to ``learning_rate`` over ``warmup_steps``, then stays.

    .. math:: \eta_t = \eta \cdot \min\!\left(1, \frac{t + 1}{T_\text{warm-up}}\right)

    Adam's first steps are its least reliable: its moment estimates rest on a handful of gradients,
    and a deep flow fresh from data-dependent initialisation (ActNorm) is at its most sensitive.  A
    short warm-up keeps those first updates small (Goyal et al. 2017; Glow, Kingma & Dhariwal 2018,
    warms up its learning rate the same way).

    >>> schedule = LinearWarmup(1e-3, warmup_steps=300)
    >>> round(float(schedule(149)), 6), round(float(schedule(10_000)), 6)
    (0.0005, 0.001)
    >>> optimizer = tf.keras.optimizers.Adam(schedule, global_clipnorm=1e4)
    """

    def __init__(self, learning_rate: float, warmup_steps: int) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = integer(warmup_steps, "warmup_steps")

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        fraction = (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps)
        return self.learning_rate * tf.minimum(1.0, fraction)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def _model_event_shape(model: tf.keras.Model) -> tuple[int, ...] | None:
    """A functional model's input event shape; ``None`` for a subclassed one (it has no input spec
    even after it has been called)."""
    if isinstance(model, DensityModel):
        return _event_shape(model.distribution)
    if not getattr(model, "inputs", None):
        return None
    shape = model.inputs[0].shape[1:]
    return tuple(int(d) for d in shape) if shape.is_fully_defined() else None


def _check_learning_rate(learning_rate: Any) -> Any:
    if isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        return learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.floating, np.integer)) \
            or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ArgumentError(
            f"learning_rate must be a positive number (or a LearningRateSchedule), got {learning_rate!r}: "
            "a negative rate would climb the loss instead of descending it")
    return float(learning_rate)


def _check_strategy(strategy: tf.distribute.Strategy | None, model: tf.keras.Model) -> None:
    """Every variable must belong to the strategy, or Keras fails deep inside ``fit``."""
    if strategy is None:
        if not tf.distribute.has_strategy():
            return
        strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
    outside = [v for v in model.variables if not strategy.extended.variable_created_in_scope(v)]
    if outside:
        raise ValueError(
            f"{len(outside)} of the flow's variables (such as {outside[0].name!r}) were created outside "
            f"{type(strategy).__name__}.scope(): build the flow inside strategy.scope() "
            "(`with strategy.scope(): flow = build_maf(...)`), then call fit(flow, x, strategy=strategy)"
        )


_OWN_ARGUMENTS = {"x", "y", "epochs", "batch_size", "validation_data", "validation_split", "callbacks", "verbose",
                  "shuffle"}


def fit(
    flow: tfd.Distribution | tf.keras.Model,
    x: Any,
    *,
    epochs: int,
    batch_size: int = 256,
    learning_rate: Any = None,
    global_clipnorm: float | None = None,
    validation_data: Any = None,
    validation_split: float = 0.0,
    callbacks: Iterable[tf.keras.callbacks.Callback] = (),
    metrics: Iterable[Any] | None = None,
    verbose: Any = "auto",
    shuffle: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    context: Any = None,
    **fit_kwargs: Any,
) -> tuple[tf.keras.Model, tf.keras.callbacks.History]:
    """Train ``flow`` by maximum likelihood on ``x`` with ``model.fit``; return ``(model, history)``.

    Args:
        flow: a TFP distribution (wrapped in a new :class:`DensityModel` compiled with Adam and the
            negative log-likelihood), or a Keras model whose output is a log-probability -- such as
            the model a previous ``fit`` returned: it continues training with its own optimizer
            and Adam moments (``learning_rate`` then re-sets the rate, keeping the moments).
        x: the data, an array-like of shape ``(n, *event_shape)`` (NumPy, nested lists, tensors)
            or a ``tf.data.Dataset`` of batches.  Labels are not needed; a pair ``(x, y)`` is refused.
        epochs, batch_size: positive integers (``batch_size`` is ignored for a dataset).
        learning_rate: Adam's rate, positive (default 1e-3), or a ``LearningRateSchedule``.
        global_clipnorm: caps the gradient's global norm, so that a rare huge gradient (lab 02 logs
            spikes 100-2,000x the usual norm) cannot throw the flow off.
        validation_data: validation points, as ``x``; ``validation_split``: or the last fraction of ``x``.
            They are scored with every batch normalisation in evaluation mode (moving averages, not updated).
        callbacks, metrics (e.g. ``[BitsPerDim(784)]``), verbose, shuffle, and any other
            ``model.fit`` argument (``initial_epoch``, ``steps_per_epoch``, ...): passed on.
        context: for a conditional flow (:mod:`flowlab.flows.conditional`), the context of each
            point, shape ``(n, context_dims)``; ``validation_data`` is then ``(x_val, context_val)``
            and a dataset yields ``(x, context)`` pairs.
        strategy: a ``tf.distribute`` strategy (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``)
            whose ``scope()`` the flow was built in; ``batch_size`` is then the global batch.

    Raises:
        flowlab.validation.ArgumentError: a bad count, rate or split.
        ValueError / TypeError: data of the wrong shape, type or with NaN; a flow built outside
            the strategy's scope; a Keras 3 layer in the flow (:mod:`flowlab.keras2`).
        TrainingDiverged: the loss became NaN or infinite, or exploded (:class:`StopOnNaN`).

    >>> import flowlab, numpy as np
    >>> from flowlab.flows import build_maf
    >>> flowlab.seed(0)
    >>> x = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    >>> flow = build_maf(2, n_layers=1, hidden_units=(8,))
    >>> model, history = fit(flow, x, epochs=2, verbose=0)
    >>> model, history = fit(model, x, epochs=2, verbose=0)     # continues: same model, same Adam state
    >>> int(model.optimizer.iterations)                         # one step of 256 an epoch, 4 epochs
    4
    >>> nll = model.evaluate(x, verbose=0)                      # no labels: the mean NLL in nats
    >>> bool(np.isclose(nll, -np.mean(flow.log_prob(x)), rtol=1e-5))
    True
    >>> fit(flow, x, epochs=2.5)
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: epochs must be a positive integer, got 2.5 (float)

    Reference: Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference",
    JMLR 2021, section 2.3.1 (fitting a flow by maximum likelihood).
    """
    epochs = integer(epochs, "epochs")
    batch_size = integer(batch_size, "batch_size")
    if learning_rate is not None:
        learning_rate = _check_learning_rate(learning_rate)
    if global_clipnorm is not None and (isinstance(global_clipnorm, bool) or not global_clipnorm > 0):
        raise ArgumentError(f"global_clipnorm must be a positive number, got {global_clipnorm!r}")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ArgumentError(f"validation_split must be a fraction in [0, 1), got {validation_split!r}")
    if validation_split and (isinstance(x, tf.data.Dataset) or validation_data is not None):
        raise ValueError("validation_split splits an array; with a tf.data.Dataset, or to use given "
                         "validation points, pass validation_data instead")
    if "y" in fit_kwargs:
        raise ValueError(_NO_LABELS.format(what="y was given", hint=""))
    clash = _OWN_ARGUMENTS & set(fit_kwargs)
    if clash:
        raise TypeError(f"fit got {sorted(clash)} twice")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, tf.keras.callbacks.Callback):
            raise TypeError(f"callbacks must be tf.keras callbacks, got {type(callback).__module__}."
                            f"{type(callback).__name__} (Keras 3 callbacks come from `import keras`; use tf.keras)")

    from flowlab.flows.conditional import ConditionalFlow

    conditional = isinstance(flow, (ConditionalFlow, ConditionalDensityModel))
    if conditional and context is None and not isinstance(x, tf.data.Dataset):
        raise ValueError("a conditional flow learns p(x | context): pass the context of each point, "
                         "fit(flow, x, context=c, ...)")
    if not conditional and context is not None:
        raise ValueError(f"context= is for conditional flows (flowlab.flows.conditional); this is "
                         f"{type(flow).__name__}, a density p(x)")
    scope = strategy.scope() if strategy is not None else nullcontext()
    with scope:
        if isinstance(flow, ConditionalFlow):
            model = ConditionalDensityModel(flow)
        elif isinstance(flow, tf.keras.Model):
            model = flow
            reject_keras3_layers(model, "the model")
        elif isinstance(flow, tfd.Distribution):
            model = density_model(flow)
        else:
            raise TypeError(f"fit needs a TFP distribution or a Keras model, got {type(flow).__name__}")
        _check_strategy(strategy, model)
        event_shape = _model_event_shape(model)
        if event_shape is None:
            event_shape = tuple(np.asarray(x).shape[1:]) if not isinstance(x, tf.data.Dataset) else ()
        _compile(model, learning_rate, global_clipnorm, metrics)

    dtype = model.distribution.dtype if isinstance(model, DensityModel) else tf.float32
    needs_labels = not isinstance(model, DensityModel)
    if conditional:
        inputs, labels = _prepare_conditional(x, context, model, "the training data")
        if validation_data is not None:
            if isinstance(validation_data, tf.data.Dataset):
                validation_data = _prepare_conditional(validation_data, None, model, "the validation data")[0]
            elif isinstance(validation_data, tuple) and len(validation_data) == 2:
                validation_data = (_prepare_conditional(*validation_data, model, "the validation data")[0],)
            else:
                raise ValueError("for a conditional flow, validation_data is a pair (x_val, context_val)")
    else:
        inputs, labels = _prepare(x, event_shape, "the training data", dtype, needs_labels)
    if validation_data is not None and not conditional:
        val_x, val_y = _prepare(validation_data, event_shape, "the validation data", dtype, needs_labels)
        validation_data = val_x if val_y is None and isinstance(val_x, tf.data.Dataset) else (val_x, val_y)
    is_dataset = isinstance(inputs, tf.data.Dataset)
    history = model.fit(
        inputs,
        labels,
        epochs=epochs,
        batch_size=None if is_dataset else batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        callbacks=[StopOnNaN(), *callbacks],
        verbose=verbose,
        shuffle=shuffle if not is_dataset else False,
        **fit_kwargs,
    )
    return model, history


def _prepare_conditional(x: Any, context: Any, model: ConditionalDensityModel, what: str) -> tuple[Any, None]:
    """``[x, context]`` arrays of one length, or a dataset of ``(x, context)`` as Keras's one input."""
    flow = model.flow
    if isinstance(x, tf.data.Dataset):
        if context is not None:
            raise ValueError(f"{what} is a dataset: let it yield (x, context) pairs instead of passing context=")
        if not (isinstance(x.element_spec, tuple) and len(x.element_spec) == 2):
            raise ValueError(f"{what}: a dataset for a conditional flow yields (x, context) pairs")
        return x.map(lambda xb, cb: ((xb, cb),)), None
    dtype = flow.dtype
    points = _check_data(x, tuple(int(d) for d in flow.event_shape), what, dtype)
    contexts = _check_data(context, (flow.context_dims,), f"the context of {what}", dtype)
    if len(points) != len(contexts):
        raise ValueError(f"{what} has {len(points)} points but {len(contexts)} contexts: one context per point")
    return [points, contexts], None


def _compile(model: tf.keras.Model, learning_rate: Any, global_clipnorm: float | None, metrics: Any) -> None:
    """Compile a new model; keep a compiled one's optimizer (and its Adam moments)."""
    if not getattr(model, "_is_compiled", False):
        model.compile(
            optimizer=tf.keras.optimizers.Adam(1e-3 if learning_rate is None else learning_rate,
                                               global_clipnorm=global_clipnorm),
            loss=negative_log_likelihood,
            metrics=list(metrics) if metrics is not None else None,
        )
        return
    optimizer = model.optimizer
    if global_clipnorm is not None and getattr(optimizer, "global_clipnorm", None) != global_clipnorm:
        raise ValueError(
            "this model is already compiled, and its optimizer's global_clipnorm is "
            f"{getattr(optimizer, 'global_clipnorm', None)!r}: compile it yourself with the clipping you want")
    if learning_rate is not None:
        current = optimizer.learning_rate
        if isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule) or not isinstance(
                current, tf.Variable):
            raise ValueError("this model is already compiled with a learning-rate schedule: compile it yourself "
                             "to change the schedule, or pass no learning_rate to keep it")
        current.assign(learning_rate)
    if metrics is not None:
        model.compile(optimizer=optimizer, loss=model.loss, metrics=list(metrics))
