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
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows.base import built, check_dims, standard_normal

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
        self.hidden = [tf.keras.layers.Dense(int(u), activation=activation) for u in hidden_units]
        self.out = tf.keras.layers.Dense(dims, kernel_initializer="zeros", bias_initializer="zeros")

    def call(self, t: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        h = tf.concat([x, tf.broadcast_to(tf.cast(t, x.dtype), tf.shape(x[..., :1]))], axis=-1)
        for layer in self.hidden:
            h = layer(h)
        return self.out(h)


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
) -> tfd.TransformedDistribution:
    """A FFJORD flow over ``dims``-vectors on a standard normal.

    Args:
      trace: ``"hutchinson"`` (one random projection per solve, FFJORD's choice) or ``"exact"``
        (``dims`` backward passes per evaluation).
      atol, rtol: the Dormand-Prince solver's tolerances: looser is faster and less exact.
      velocity: reuse an existing :class:`VelocityField` (e.g. a trained one, with the exact trace).
    """
    check_dims(dims, 1, "FFJORD")
    if trace not in TRACES:
        raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
    velocity = velocity if velocity is not None else VelocityField(dims, hidden_units)
    augment = tfb.ffjord.trace_jacobian_hutchinson if trace == "hutchinson" else tfb.ffjord.trace_jacobian_exact
    solver = tfp.math.ode.DormandPrince(atol=atol, rtol=rtol)
    bijector = tfb.FFJORD(state_time_derivative_fn=velocity, ode_solve_fn=solver.solve, trace_augmentation_fn=augment,
                          name="ffjord")
    return built(tfd.TransformedDistribution(standard_normal(dims), bijector, name="FFJORD"))
