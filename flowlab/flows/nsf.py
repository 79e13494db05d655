r"""Neural spline flows (Durkan et al. 2019): autoregressive layers with rational-quadratic splines.

A MAF layer moves each variable by an affine map, :math:`x_i = z_i e^{\alpha_i} + \mu_i`: one
stretch and one shift per variable, so it takes many layers (and a lucky initialisation) to fold the
plane around two thin moons. A spline layer replaces the affine map by a monotone rational-quadratic
spline of ``bins`` pieces on :math:`[-B, B]` (the identity outside), its bin widths, heights and
knot slopes computed from :math:`x_{<i}` by the same MADE network:

.. math:: x_i = \mathrm{RQS}\big(z_i;\ \theta_i(x_{<i})\big),\qquad
          \log\left|\det J\right| = \sum_i \log \mathrm{RQS}'\big(z_i;\ \theta_i\big)

The Jacobian is still triangular, and the spline (TFP's ``tfb.RationalQuadraticSpline``) has a
closed-form inverse. Layers are separated by reversals, as in MAF.

>>> import flowlab
>>> flow = build_nsf(2, n_layers=2, bins=4, hidden_units=(8,))
>>> flow.log_prob([[0.1, -0.2]]).shape
TensorShape([1])
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows.base import built, check_dims, reverse_permutation, standard_normal

__all__ = ["SplineConditioner", "build_nsf"]

tfd, tfb = tfp.distributions, tfp.bijectors

# The smallest bin width, height and knot slope: keeps the spline strictly monotone and its
# inverse well conditioned.
_MIN = 1e-3


class SplineConditioner(tf.Module):
    """``bijector_fn`` of a ``tfb.MaskedAutoregressiveFlow``: MADE outputs -> a spline per variable.

    A ``tf.Module`` holding the Keras MADE network, so the flow's ``trainable_variables`` find its
    weights.
    """

    def __init__(self, dims: int, bins: int = 8, bound: float = 4.0, hidden_units: Sequence[int] = (128, 128),
                 activation: str = "relu", name: str | None = None) -> None:
        super().__init__(name=name)
        if not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins must be an integer of at least 2, got {bins!r}")
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.bins, self.bound = bins, float(bound)
        self.network = tfb.AutoregressiveNetwork(
            params=3 * bins - 1, event_shape=[dims], hidden_units=list(hidden_units), activation=activation
        )

    def __call__(self, x: tf.Tensor, **kwargs) -> tfb.Bijector:
        params = self.network(x)
        k, width = self.bins, 2 * self.bound

        def sizes(logits):  # positive, at least _MIN, summing to the interval's width
            return tf.math.softmax(logits, axis=-1) * (width - k * _MIN) + _MIN

        return tfb.RationalQuadraticSpline(
            bin_widths=sizes(params[..., :k]),
            bin_heights=sizes(params[..., k:2 * k]),
            knot_slopes=tf.math.softplus(params[..., 2 * k:]) + _MIN,
            range_min=-self.bound,
        )


def build_nsf(
    dims: int, n_layers: int = 3, bins: int = 8, bound: float = 4.0,
    hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
) -> tfd.TransformedDistribution:
    """An autoregressive neural spline flow over ``dims``-vectors, each layer followed by a reversal."""
    check_dims(dims, 2, "a neural spline flow")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    bijectors: list[tfb.Bijector] = []
    for _ in range(n_layers):
        layer = tfb.MaskedAutoregressiveFlow(bijector_fn=SplineConditioner(dims, bins, bound, hidden_units, activation))
        bijectors += [layer, reverse_permutation(dims)]
    chain = tfb.Chain(list(reversed(bijectors)))
    return built(tfd.TransformedDistribution(standard_normal(dims), chain, name="NSF"))
