r"""The planar flow of Rezende & Mohamed (2015): one hidden unit, a rank-one update of the identity.

.. math::

    f(z) = z + \hat u\, h(w^\top z + b), \qquad h = \tanh,

    \log\lvert\det J_f(z)\rvert = \log\lvert 1 + \hat u^\top w\, h'(w^\top z + b)\rvert
    \quad\text{(matrix determinant lemma)}.

:math:`f` is invertible iff :math:`w^\top\hat u \ge -1` (Rezende & Mohamed, appendix A): along
:math:`w` the map is :math:`\alpha \mapsto \alpha + w^\top\hat u\, h(\alpha + b)`, increasing when
:math:`1 + w^\top\hat u\, h' > 0` for every :math:`h' \in (0, 1]`.  With ``constrain=True`` (the
default) the free parameter :math:`u` is mapped onto that set,

.. math::

    \hat u = u + \big(m(w^\top u) - w^\top u\big)\frac{w}{\lVert w\rVert^2},
    \qquad m(x) = -1 + \operatorname{softplus}(x),

so that :math:`w^\top\hat u = m(w^\top u) > -1` whatever :math:`u` and :math:`w` are (we floor the
softplus at 1e-4, which float32 needs); with ``constrain=False`` :math:`\hat u = u` is used as given
(and ``validate_args`` checks the condition).

The inverse has no closed form.  Writing :math:`y = f(z)` and :math:`\alpha = w^\top z`,
:math:`w^\top y = \alpha + w^\top\hat u\,h(\alpha + b)`: one monotone scalar equation, whose root lies
within :math:`\lvert w^\top\hat u\rvert` of :math:`w^\top y` (as :math:`\lvert h\rvert \le 1`).
:func:`solve_monotone` brackets it there and runs Newton's method, falling back on bisection
whenever a step leaves the bracket, until a step changes it by less than 8 machine epsilons
(relative; float32: ~1e-6); then :math:`z = y - \hat u\,h(\alpha + b)`.

Parameters are tensors of shape ``(..., D)``, ``(..., D)`` and ``(...)``: ``tf.Variable`` s for a
flow fitted to one target, or an encoder's outputs (one flow per data point, *amortised*), which
broadcast against ``z`` of shape ``(..., D)``.

>>> import flowlab, tensorflow as tf
>>> from flowlab.bijectors import Planar
>>> flow = Planar(w=[1.0, 0.0], u=[-3.0, 1.0], b=0.5)   # unconstrained u would fold the plane
>>> z = tf.constant([[0.3, -1.0], [2.0, 0.5]])
>>> bool(tf.reduce_all(tf.abs(flow.inverse(flow.forward(z)) - z) < 1e-5))
True

Reference: D. J. Rezende, S. Mohamed, "Variational inference with normalizing flows", ICML 2015,
section 4.1 and appendix A.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties, tensor_util

__all__ = ["Planar", "constrain_planar_u", "solve_monotone"]

tfb = tfp.bijectors

_MARGIN = 1e-4


def constrain_planar_u(u: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """The invertible planar flow's :math:`\\hat u`: :math:`w^\\top\\hat u = -1 + \\operatorname{softplus}(w^\\top u)`."""  # noqa: E501
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    # softplus underflows to 0 for w·u < -88 (float32), and -1 + 1e-8 rounds to -1: keep a margin
    # so that 1 + w·û h' stays positive in any precision.
    m = -1.0 + tf.maximum(tf.math.softplus(wu), _MARGIN)
    return u + (m - wu) * w / tf.reduce_sum(tf.square(w), axis=-1, keepdims=True)


def solve_monotone(
    g: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]], lo: tf.Tensor, hi: tf.Tensor, iterations: int = 60,
) -> tf.Tensor:
    """The root of an increasing scalar function ``g`` (elementwise) bracketed by ``[lo, hi]``.

    ``g(x)`` returns ``(value, derivative)``.  Safeguarded Newton: a Newton step that leaves the
    current bracket is replaced by the midpoint, and the bracket shrinks around the root with every
    evaluation, so the iteration converges like Newton near the root and never worse than bisection
    (60 halvings reach float64 resolution from any bracket).
    """
    dtype = lo.dtype
    tol = 8.0 * float(tf.experimental.numpy.finfo(dtype.as_numpy_dtype).eps)

    def step(i: tf.Tensor, x: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, done: tf.Tensor) -> tuple[tf.Tensor, ...]:
        value, slope = g(x)
        # The root lies above x where g(x) < 0 (g increases).
        lo = tf.where(value < 0, x, lo)
        hi = tf.where(value < 0, hi, x)
        newton = x - value / tf.where(slope > 0, slope, tf.ones_like(slope))
        inside = (newton > lo) & (newton < hi) & (slope > 0)
        new = tf.where(inside, newton, 0.5 * (lo + hi))
        converged = tf.reduce_all(tf.abs(new - x) <= tol * (1.0 + tf.abs(x)))
        return i + 1, new, lo, hi, converged

    _, x, _, _, _ = tf.while_loop(
        lambda i, x, lo, hi, done: (i < iterations) & tf.logical_not(done), step,
        (tf.constant(0), 0.5 * (lo + hi), lo, hi, tf.constant(False)))
    return x


class Planar(tfb.Bijector):
    """Planar flow :math:`f(z) = z + \\hat u \\tanh(w^\\top z + b)` on vectors (see the module docstring).

    Args:
      w, u: float tensors or variables of shape ``(..., D)``.
      b: float tensor or variable of shape ``(...)``.
      constrain: map ``u`` to :math:`\\hat u` with :math:`w^\\top\\hat u > -1` (always invertible).
      validate_args: check at run time that :math:`w \\ne 0`, that inputs are finite, and (with
        ``constrain=False``) that :math:`w^\\top u \\ge -1`.

    Raises ``ValueError`` when the last dimensions of ``w`` and ``u`` differ, ``TypeError`` for
    non-float parameters.
    """

    def __init__(
        self, w: Any, u: Any, b: Any, constrain: bool = True, validate_args: bool = False, name: str = "planar",
    ) -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([w, u, b], dtype_hint=tf.float32)
            if not dtype_util.is_floating(dtype):
                raise TypeError(f"Planar: parameters must be floating point, got {dtype_util.name(dtype)}")
            self._w = tensor_util.convert_nonref_to_tensor(w, dtype=dtype, name="w")
            self._u = tensor_util.convert_nonref_to_tensor(u, dtype=dtype, name="u")
            self._b = tensor_util.convert_nonref_to_tensor(b, dtype=dtype, name="b")
            self._constrain = bool(constrain)
            dw, du = self._w.shape[-1:], self._u.shape[-1:]
            if self._w.shape.rank == 0 or self._u.shape.rank == 0:
                raise ValueError("Planar: w and u must be vectors (shape (..., D)), got scalars")
            if dw.is_fully_defined() and du.is_fully_defined() and dw != du:
                raise ValueError(f"Planar: w and u must have the same last dimension, got {dw[0]} and {du[0]}")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             dtype=dtype, name=name)

    @classmethod
    def _parameter_properties(cls, dtype: Any) -> dict[str, parameter_properties.ParameterProperties]:
        return dict(
            w=parameter_properties.ParameterProperties(event_ndims=1),
            u=parameter_properties.ParameterProperties(event_ndims=1),
            b=parameter_properties.ParameterProperties(event_ndims=0),
        )

    @property
    def w(self) -> tf.Tensor:
        return self._w

    @property
    def u(self) -> tf.Tensor:
        return self._u

    @property
    def b(self) -> tf.Tensor:
        return self._b

    def u_hat(self) -> tf.Tensor:
        """:math:`\\hat u`, the ``u`` actually used (``u`` itself when ``constrain=False``)."""
        w, u = tf.convert_to_tensor(self._w), tf.convert_to_tensor(self._u)
        return constrain_planar_u(u, w) if self._constrain else u

    def _params(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        w = tf.convert_to_tensor(self._w)
        return w, self.u_hat(), tf.convert_to_tensor(self._b)

    def forward_and_log_det(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(f(z), log|det J_f(z)|)`` sharing one evaluation of the parameters and of :math:`h`.

        Half the graph of ``forward`` and ``forward_log_det_jacobian`` called apart, which matters when
        tracing a chain of 32 flows (:func:`flowlab.variational.sample_and_log_prob` uses it).
        """
        z = tf.convert_to_tensor(z, dtype=self.dtype)
        w, u_hat, b = self._params()
        with tf.control_dependencies(self._maybe_finite(z)):
            h = tf.tanh(tf.reduce_sum(w * z, axis=-1) + b)
        psi = tf.reduce_sum(w * u_hat, axis=-1) * (1.0 - tf.square(h))
        return z + u_hat * h[..., tf.newaxis], tf.math.log(tf.abs(1.0 + psi))

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[0]

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[1]

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        w, u_hat, b = self._params()
        wu = tf.reduce_sum(w * u_hat, axis=-1)
        with tf.control_dependencies(self._maybe_finite(y)):
            wy = tf.reduce_sum(w * y, axis=-1)
        wu, wy, b = [tf.broadcast_to(t, tf.broadcast_dynamic_shape(tf.shape(wu), tf.shape(wy))) for t in (wu, wy, b)]

        def g(alpha: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            t = tf.tanh(alpha + b)
            return alpha + wu * t - wy, 1.0 + wu * (1.0 - tf.square(t))

        alpha = solve_monotone(g, wy - tf.abs(wu) - 1.0, wy + tf.abs(wu) + 1.0)
        return y - u_hat * tf.tanh(alpha + b)[..., tf.newaxis]

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return -self._forward_log_det_jacobian(self._inverse(y))

    def _parameter_control_dependencies(self, is_init: bool) -> list[tf.Operation]:
        if not self.validate_args:
            return []
        assertions = []
        w = tf.convert_to_tensor(self._w)
        if is_init != tensor_util.is_ref(self._w):
            assertions.append(tf.debugging.assert_positive(
                tf.reduce_sum(tf.square(w), axis=-1), message="Planar: w must not be zero"))
        if not self._constrain and (is_init != (tensor_util.is_ref(self._w) or tensor_util.is_ref(self._u))):
            assertions.append(tf.debugging.assert_greater_equal(
                tf.reduce_sum(w * tf.convert_to_tensor(self._u), axis=-1), tf.constant(-1.0, w.dtype),
                message="Planar: w·u < -1, so the flow is not invertible; use constrain=True"))
        return assertions

    def _maybe_finite(self, x: tf.Tensor) -> list[tf.Operation]:
        if not self.validate_args:
            return []
        return [tf.debugging.assert_all_finite(x, message=f"{self.name}: input contains NaN or infinite values")]
