r"""The radial flow of Rezende & Mohamed (2015): contract or expand space around a point :math:`z_0`.

.. math::

    f(z) = z + \beta\, h(\alpha, r)\,(z - z_0), \qquad r = \lVert z - z_0\rVert,\quad h(\alpha, r) = \frac{1}{\alpha + r},

    \log\lvert\det J_f(z)\rvert = (D - 1)\log\big(1 + \beta h\big) + \log\big(1 + \beta h + \beta h'(\alpha, r)\, r\big)
    = (D - 1)\log\Big(1 + \frac{\beta}{\alpha + r}\Big) + \log\Big(1 + \frac{\alpha\beta}{(\alpha + r)^2}\Big).

:math:`f` moves each point along its ray from :math:`z_0`; the new radius
:math:`r' = r\,(1 + \beta/(\alpha + r))` increases with :math:`r` iff :math:`\beta \ge -\alpha`
(:math:`\alpha > 0`).  With ``constrain=True`` (the default) the free parameters are mapped onto that set,
:math:`\alpha = \operatorname{softplus}(\tilde\alpha)`, :math:`\beta = -\alpha + \operatorname{softplus}(\tilde\beta)`;
with ``constrain=False`` they are used as given (``validate_args`` checks :math:`\alpha > 0`, :math:`\beta \ge -\alpha`).

The inverse is closed form: :math:`r` solves :math:`r^2 + (\alpha + \beta - r')\,r - \alpha r' = 0`, whose
positive root is :math:`r = \tfrac12\big(-(\alpha + \beta - r') + \sqrt{(\alpha + \beta - r')^2 + 4\alpha r'}\big)`,
and :math:`z - z_0 = (y - z_0)/(1 + \beta/(\alpha + r))`.

Parameters broadcast: ``z0`` of shape ``(..., D)``, ``alpha`` and ``beta`` of shape ``(...)`` --
variables for one target, or an encoder's outputs (amortised).

>>> import flowlab, tensorflow as tf
>>> from flowlab.bijectors import Radial
>>> flow = Radial(z0=[0.5, -0.5], alpha=0.3, beta=-2.0)
>>> z = tf.constant([[0.3, -1.0], [2.0, 0.5]])
>>> bool(tf.reduce_all(tf.abs(flow.inverse(flow.forward(z)) - z) < 1e-5))
True

Reference: D. J. Rezende, S. Mohamed, "Variational inference with normalizing flows", ICML 2015,
section 4.1 and appendix A.2.
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties, tensor_util

__all__ = ["Radial"]

tfb = tfp.bijectors


class Radial(tfb.Bijector):
    """Radial flow :math:`f(z) = z + \\beta (z - z_0)/(\\alpha + \\lVert z - z_0\\rVert)` (see the module docstring).

    Args:
      z0: float tensor or variable of shape ``(..., D)``, the centre.
      alpha, beta: float tensors or variables of shape ``(...)``; unconstrained when ``constrain=True``.
      constrain: map them to :math:`\\alpha > 0`, :math:`\\beta \\ge -\\alpha` (always invertible).
      validate_args: check at run time that inputs are finite and (``constrain=False``) the constraint.
    """

    def __init__(
        self, z0: Any, alpha: Any, beta: Any, constrain: bool = True, validate_args: bool = False,
        name: str = "radial",
    ) -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([z0, alpha, beta], dtype_hint=tf.float32)
            if not dtype_util.is_floating(dtype):
                raise TypeError(f"Radial: parameters must be floating point, got {dtype_util.name(dtype)}")
            self._z0 = tensor_util.convert_nonref_to_tensor(z0, dtype=dtype, name="z0")
            self._alpha = tensor_util.convert_nonref_to_tensor(alpha, dtype=dtype, name="alpha")
            self._beta = tensor_util.convert_nonref_to_tensor(beta, dtype=dtype, name="beta")
            if self._z0.shape.rank == 0:
                raise ValueError("Radial: z0 must be a vector (shape (..., D)), got a scalar")
            self._constrain = bool(constrain)
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             dtype=dtype, name=name)

    @classmethod
    def _parameter_properties(cls, dtype: Any) -> dict[str, parameter_properties.ParameterProperties]:
        return dict(
            z0=parameter_properties.ParameterProperties(event_ndims=1),
            alpha=parameter_properties.ParameterProperties(event_ndims=0),
            beta=parameter_properties.ParameterProperties(event_ndims=0),
        )

    def alpha_beta(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The constrained :math:`(\\alpha, \\beta)` actually used."""
        alpha, beta = tf.convert_to_tensor(self._alpha), tf.convert_to_tensor(self._beta)
        if not self._constrain:
            return alpha, beta
        alpha = tf.math.softplus(alpha)
        return alpha, -alpha + tf.math.softplus(beta)

    def _finite(self, x: tf.Tensor) -> list[tf.Operation]:
        if not self.validate_args:
            return []
        return [tf.debugging.assert_all_finite(x, message="Radial: input contains NaN or infinite values")]

    def _radius(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.control_dependencies(self._finite(z)):
            diff = z - tf.convert_to_tensor(self._z0)
        return diff, tf.norm(diff, axis=-1)

    def forward_and_log_det(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(f(z), log|det J_f(z)|)`` from one evaluation of the parameters and of :math:`h`."""
        z = tf.convert_to_tensor(z, dtype=self.dtype)
        alpha, beta = self.alpha_beta()
        diff, r = self._radius(z)
        d = tf.cast(tf.shape(z)[-1], z.dtype)
        h = 1.0 / (alpha + r)
        log_det = (d - 1.0) * tf.math.log1p(beta * h) + tf.math.log1p(alpha * beta * tf.square(h))
        return z + (beta * h)[..., tf.newaxis] * diff, log_det

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[0]

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[1]

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        alpha, beta = self.alpha_beta()
        diff, r_new = self._radius(y)
        c = alpha + beta - r_new
        r = 0.5 * (-c + tf.sqrt(tf.square(c) + 4.0 * alpha * r_new))
        return tf.convert_to_tensor(self._z0) + diff / (1.0 + beta / (alpha + r))[..., tf.newaxis]

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return -self._forward_log_det_jacobian(self._inverse(y))

    def _parameter_control_dependencies(self, is_init: bool) -> list[tf.Operation]:
        if not self.validate_args or self._constrain:
            return []
        if is_init == (tensor_util.is_ref(self._alpha) or tensor_util.is_ref(self._beta)):
            return []
        alpha, beta = self.alpha_beta()
        return [
            tf.debugging.assert_positive(alpha, message="Radial: alpha must be positive"),
            tf.debugging.assert_greater_equal(beta, -alpha, message="Radial: beta < -alpha, so the flow is not "
                                              "invertible; use constrain=True"),
        ]
