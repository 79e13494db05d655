r"""A continuous normalizing flow: FFJORD (Grathwohl et al. 2019) on TFP's ``tfb.FFJORD``.

Instead of a stack of layers, the sample moves along the solution of an ODE whose velocity field is a
network :math:`v_\theta(x, t)`,

.. math:: \frac{dx}{dt} = v_\theta(x(t), t), \quad x(0) = z \sim \mathcal N(0, I), \qquad
          \log p(x(1)) = \log \mathcal N(z) - \int_0^1 \operatorname{tr} \frac{\partial v_\theta}{\partial x}(x(t), t)\, dt.

Any network will do -- no masks, no triangular Jacobian: the log-det is the integral of the trace of
the velocity's Jacobian (the instantaneous change of variables, Chen et al. 2018).  Computing that
trace exactly takes :math:`D` backward passes per function evaluation; FFJORD's Hutchinson estimator,
:math:`\operatorname{tr} A = \mathbb E[\varepsilon^\top A \varepsilon]` with one Gaussian
:math:`\varepsilon` per solve, takes one (an unbiased, noisy log-density: fine for training, use
``trace="exact"`` for a test NLL in low dimension).  The price is the solver: each ``log_prob`` or
``sample`` is an adaptive Dormand-Prince solve with tens of network evaluations (and the gradient
runs back through every one), where a coupling layer needs one.

Example::

    flow = build_ffjord(2, hidden_units=(64, 64))               # Hutchinson trace: for training
    exact = build_ffjord(2, velocity=flow_velocity(flow), trace="exact")   # same network, exact log-density
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows.base import built, check_dims, keras_dtype, standard_normal
from flowlab.validation import integers

__all__ = ["VelocityField", "build_ffjord", "flow_velocity"]

tfd, tfb = tfp.distributions, tfp.bijectors

TRACES = ("hutchinson", "exact")


class VelocityField(tf.keras.layers.Layer):
    r"""The velocity :math:`v_\theta(x, t)`: an MLP on :math:`(x, t)` with a smooth (tanh) activation.

    Smooth, because the solver's step size adapts to how fast :math:`v` changes: a ReLU network's
    kinks make it take many small steps.  The last layer starts at zero: the untrained flow is the
    identity.
    """

    def __init__(self, dims: int, hidden_units: Sequence[int] = (64, 64), activation: str = "tanh", **kwargs) -> None:
        super().__init__(**kwargs)
        self.dims = dims
        self.hidden = [tf.keras.layers.Dense(u, activation=activation) for u in integers(hidden_units, "hidden_units")]
        self.out = tf.keras.layers.Dense(dims, kernel_initializer="zeros", bias_initializer="zeros")

    def call(self, t: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        # Dense layers want one batch axis: flatten any (a single event has none) and restore it.
        flat = tf.reshape(x, [-1, self.dims])
        h = tf.concat([flat, tf.broadcast_to(tf.cast(t, flat.dtype), tf.shape(flat[:, :1]))], axis=-1)
        for layer in self.hidden:
            h = layer(h)
        return tf.reshape(self.out(h), tf.shape(x))


def _batched(augmentation: Any) -> Any:
    """A trace augmentation that also takes one unbatched event.

    TFP's exact trace reads the state's first axis as the batch (``diag_jacobian`` with
    ``sample_shape=[size0(state)]``): on a single event of shape ``(dims,)`` it would differentiate
    across the event's own variables and return a wrong log-density. Give such a state a batch axis.
    """
    def make(ode_fn: Any, state_shape: Any, dtype: Any) -> Any:
        augmented = augmentation(ode_fn, state_shape, dtype)

        def augmented_ode_fn(time: Any, state_log_det_jac: Any, **kwargs: Any) -> Any:
            state, log_det_jac = state_log_det_jac
            if state.shape.rank != 1:
                return augmented(time, state_log_det_jac, **kwargs)
            derivative, trace = augmented(time, (state[tf.newaxis], log_det_jac[tf.newaxis]), **kwargs)
            return derivative[0], trace[0]

        return augmented_ode_fn

    return make


def flow_velocity(flow: tfd.TransformedDistribution) -> VelocityField:
    """The velocity network of a flow from :func:`build_ffjord`."""
    return flow.bijector._state_time_derivative_fn


def build_ffjord(
    dims: int,
    hidden_units: Sequence[int] = (64, 64),
    trace: str = "hutchinson",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    velocity: VelocityField | None = None,
    dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """A FFJORD flow over ``dims``-vectors on a standard normal.

    Args:
      trace: ``"hutchinson"`` (one random projection per solve, FFJORD's choice) or ``"exact"``
        (``dims`` backward passes per evaluation).
      atol, rtol: the Dormand-Prince solver's tolerances: looser is faster and less exact.
      velocity: reuse an existing :class:`VelocityField` (e.g. a trained one, with the exact trace).
      dtype: float32 (default) or float64 (the velocity network's too, unless ``velocity`` is given).

    Raises:
        flowlab.validation.ArgumentError: a bad ``dims``, ``hidden_units`` or ``dtype``.
        ValueError: an unknown ``trace``.

    >>> import flowlab
    >>> flow = build_ffjord(2, hidden_units=(8,), trace="exact", atol=1e-3, rtol=1e-3)
    >>> flow.log_prob([0.5, -1.0]).shape                   # one ODE solve, with the trace alongside
    TensorShape([])

    Reference: Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud, "FFJORD: Free-form Continuous
    Dynamics for Scalable Reversible Generative Models" (ICLR 2019).
    """
    dims = check_dims(dims, 1, "FFJORD")
    if trace not in TRACES:
        raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
    with keras_dtype(dtype) as dtype:
        velocity = velocity if velocity is not None else VelocityField(dims, hidden_units)
        augment = _batched(tfb.ffjord.trace_jacobian_hutchinson if trace == "hutchinson"
                           else tfb.ffjord.trace_jacobian_exact)
        solver = tfp.math.ode.DormandPrince(atol=atol, rtol=rtol)
        bijector = tfb.FFJORD(state_time_derivative_fn=velocity, ode_solve_fn=solver.solve,
                              trace_augmentation_fn=augment, dtype=dtype, name="ffjord")
        return built(tfd.TransformedDistribution(standard_normal(dims, dtype), bijector, name="FFJORD"))
