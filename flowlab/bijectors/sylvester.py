r"""Sylvester normalizing flows (van den Berg et al. 2018): planar flows with M hidden units.

.. math::

    f(z) = z + Q R\, h(\tilde R Q^\top z + b), \qquad h = \tanh,

with :math:`Q \in \mathbb R^{D\times M}` of orthonormal columns and :math:`R, \tilde R \in \mathbb R^{M\times M}`
upper triangular.  Sylvester's determinant identity, :math:`\det(I_D + AB) = \det(I_M + BA)`, turns the
:math:`D\times D` determinant into that of a triangular :math:`M\times M` matrix:

.. math::

    \log\lvert\det J_f(z)\rvert = \sum_{i=1}^M \log\big\lvert 1 + R_{ii}\tilde R_{ii}\, h'\big(\tilde R Q^\top z + b\big)_i\big\rvert.

The flow is invertible when :math:`R_{ii}\tilde R_{ii} > -1/\lVert h'\rVert_\infty = -1`; with
``constrain=True`` (the default) both diagonals pass through :math:`\tanh`, so :math:`R_{ii}\tilde R_{ii}
\in (-1, 1)`.  Three ways to keep :math:`Q` orthogonal, one class each:

- :class:`OrthogonalSylvester`: :math:`Q` from a free :math:`D\times M` matrix by Björck's iterative
  orthogonalisation, :math:`Q_{k+1} = Q_k\big(I + \tfrac12(I - Q_k^\top Q_k)\big)` from
  :math:`Q_0 = A/\lVert A\rVert_F`, which converges to the orthogonal polar factor of :math:`A`.
- :class:`HouseholderSylvester`: :math:`Q = H_1\cdots H_H`, :math:`H_k = I - 2 v_k v_k^\top/\lVert v_k\rVert^2`
  (:math:`M = D`).
- :class:`TriangularSylvester`: :math:`Q` is the identity or the reversal permutation (``reverse=True``);
  alternate the two in a chain so that the triangular structure does not always favour one end.

The inverse: with :math:`v = Q^\top z`, :math:`Q^\top y = v + R\,h(\tilde R v + b)`, a triangular
system solved from the last coordinate up, each step one increasing scalar equation
(:func:`flowlab.bijectors.planar.solve_monotone`); then :math:`z = y - QR\,h(\tilde R v + b)`.

Parameters broadcast against ``z`` of shape ``(..., D)``: variables for one target, or an encoder's
outputs (amortised; van den Berg et al. amortise all of :math:`Q, R, \tilde R, b`).

>>> import flowlab, tensorflow as tf
>>> from flowlab.bijectors import HouseholderSylvester
>>> flow = HouseholderSylvester(v=[[1.0, 2.0]], r=[[2.0, 1.0], [0.0, -3.0]], r_tilde=[[-2.0, 0.5], [0.0, 1.0]],
...                             b=[0.1, -0.2])
>>> z = tf.constant([[0.3, -1.0], [2.0, 0.5]])
>>> bool(tf.reduce_all(tf.abs(flow.inverse(flow.forward(z)) - z) < 1e-5))
True

Reference: R. van den Berg, L. Hasenclever, J. M. Tomczak, M. Welling, "Sylvester normalizing flows
for variational inference", UAI 2018, sections 3-4.
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, tensor_util

from flowlab.bijectors.planar import solve_monotone

__all__ = ["Sylvester", "OrthogonalSylvester", "HouseholderSylvester", "TriangularSylvester", "bjorck_orthogonalize"]

tfb = tfp.bijectors


def bjorck_orthogonalize(a: tf.Tensor, iterations: int = 30) -> tf.Tensor:
    """The orthogonal polar factor of ``a`` (shape ``(..., D, M)``, ``M <= D``), by Björck's iteration."""
    q = a / tf.norm(a, ord="fro", axis=(-2, -1), keepdims=True)
    eye = tf.eye(int(a.shape[-1]), dtype=a.dtype)
    for _ in range(iterations):
        q = tf.matmul(q, eye + 0.5 * (eye - tf.matmul(q, q, transpose_a=True)))
    return q


class Sylvester(tfb.Bijector):
    """:math:`f(z) = z + QR\\tanh(\\tilde R Q^\\top z + b)`; subclasses say how :math:`Q` is parametrised.

    Args:
      r, r_tilde: ``(..., M, M)``; only the upper triangle is used.
      b: ``(..., M)``.
      constrain: pass both diagonals through tanh, so that :math:`R_{ii}\\tilde R_{ii} > -1`.
      validate_args: check at run time that inputs are finite and (``constrain=False``) the diagonal condition.
    """

    def __init__(self, r: Any, r_tilde: Any, b: Any, extra: dict[str, Any], constrain: bool, validate_args: bool,
                 parameters: dict[str, Any], name: str) -> None:
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([r, r_tilde, b, *extra.values()], dtype_hint=tf.float32)
            if not dtype_util.is_floating(dtype):
                raise TypeError(f"{type(self).__name__}: parameters must be floating point, "
                                f"got {dtype_util.name(dtype)}")
            self._r = tensor_util.convert_nonref_to_tensor(r, dtype=dtype, name="r")
            self._r_tilde = tensor_util.convert_nonref_to_tensor(r_tilde, dtype=dtype, name="r_tilde")
            self._b = tensor_util.convert_nonref_to_tensor(b, dtype=dtype, name="b")
            for key, value in extra.items():
                setattr(self, f"_{key}", tensor_util.convert_nonref_to_tensor(value, dtype=dtype, name=key))
            self._constrain = bool(constrain)
            shapes = [self._r.shape, self._r_tilde.shape]
            if any(s.rank is not None and s.rank < 2 for s in shapes) or self._b.shape.rank == 0:
                raise ValueError(f"{type(self).__name__}: r and r_tilde must be (..., M, M) matrices and b (..., M)")
            m = {int(d) for s in shapes for d in s[-2:]} | {int(self._b.shape[-1])}
            if len(m) != 1:
                raise ValueError(f"{type(self).__name__}: r, r_tilde must be square M x M and b of length M; "
                                 f"got shapes {shapes[0]}, {shapes[1]}, {self._b.shape}")
            self._m = m.pop()
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             dtype=dtype, name=name)

    def q(self) -> tf.Tensor:
        """:math:`Q`, shape ``(..., D, M)`` with orthonormal columns."""
        raise NotImplementedError

    def triangular(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """:math:`(R, \\tilde R, b)` as used: upper triangular, diagonals constrained when ``constrain=True``."""
        r = tf.linalg.band_part(tf.convert_to_tensor(self._r), 0, -1)
        r_tilde = tf.linalg.band_part(tf.convert_to_tensor(self._r_tilde), 0, -1)
        if self._constrain:
            r = tf.linalg.set_diag(r, tf.tanh(tf.linalg.diag_part(r)))
            r_tilde = tf.linalg.set_diag(r_tilde, tf.tanh(tf.linalg.diag_part(r_tilde)))
        return r, r_tilde, tf.convert_to_tensor(self._b)

    def _finite(self, x: tf.Tensor) -> tf.Tensor:
        if self.validate_args:
            x = tf.debugging.assert_all_finite(
                x, message=f"{type(self).__name__}: input contains NaN or infinite values")
        return x

    def _preactivation(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        q = self.q()
        r, r_tilde, b = self.triangular()
        a = tf.linalg.matvec(r_tilde, tf.linalg.matvec(q, self._finite(z), adjoint_a=True)) + b
        return q, r, r_tilde, a

    def forward_and_log_det(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(f(z), log|det J_f(z)|)`` from one evaluation of :math:`Q, R, \\tilde R` and of :math:`h`."""
        q, r, r_tilde, a = self._preactivation(tf.convert_to_tensor(z, dtype=self.dtype))
        h = tf.tanh(a)
        diag = tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde)
        log_det = tf.reduce_sum(tf.math.log(tf.abs(1.0 + diag * (1.0 - tf.square(h)))), axis=-1)
        return z + tf.linalg.matvec(q, tf.linalg.matvec(r, h)), log_det

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[0]

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return self.forward_and_log_det(z)[1]

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        q = self.q()
        r, r_tilde, b = self.triangular()
        c = tf.linalg.matvec(q, self._finite(y), adjoint_a=True)
        shape = tf.broadcast_dynamic_shape(tf.shape(c), tf.shape(b))
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(r)[:-1])
        c, b = tf.broadcast_to(c, shape), tf.broadcast_to(b, shape)
        r = tf.broadcast_to(r, tf.concat([shape, shape[-1:]], 0))
        r_tilde = tf.broadcast_to(r_tilde, tf.concat([shape, shape[-1:]], 0))
        v: list[tf.Tensor] = [None] * self._m  # type: ignore[list-item]
        h: list[tf.Tensor] = [None] * self._m  # type: ignore[list-item]
        for i in reversed(range(self._m)):  # back-substitution: coordinate i needs only those after it
            s = b[..., i] + sum((r_tilde[..., i, k] * v[k] for k in range(i + 1, self._m)), tf.zeros_like(b[..., i]))
            t = c[..., i] - sum((r[..., i, j] * h[j] for j in range(i + 1, self._m)), tf.zeros_like(b[..., i]))
            k_ii, m_ii = r[..., i, i], r_tilde[..., i, i]

            def g(x: tf.Tensor, k_ii=k_ii, m_ii=m_ii, s=s, t=t) -> tuple[tf.Tensor, tf.Tensor]:
                th = tf.tanh(m_ii * x + s)
                return x + k_ii * th - t, 1.0 + k_ii * m_ii * (1.0 - tf.square(th))

            v[i] = solve_monotone(g, t - tf.abs(k_ii) - 1.0, t + tf.abs(k_ii) + 1.0)
            h[i] = tf.tanh(m_ii * v[i] + s)
        return y - tf.linalg.matvec(q, tf.linalg.matvec(r, tf.stack(h, axis=-1)))

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return -self._forward_log_det_jacobian(self._inverse(y))

    def _parameter_control_dependencies(self, is_init: bool) -> list[tf.Operation]:
        if not self.validate_args or self._constrain:
            return []
        if is_init == (tensor_util.is_ref(self._r) or tensor_util.is_ref(self._r_tilde)):
            return []
        r, r_tilde, _ = self.triangular()
        return [tf.debugging.assert_greater(
            tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde), tf.constant(-1.0, r.dtype),
            message=f"{type(self).__name__}: R_ii * R~_ii <= -1, so the flow is not invertible; use constrain=True")]


class OrthogonalSylvester(Sylvester):
    """Sylvester flow with :math:`Q` = Björck-orthogonalised ``q`` (shape ``(..., D, M)``, ``M <= D``)."""

    def __init__(self, q: Any, r: Any, r_tilde: Any, b: Any, iterations: int = 30, constrain: bool = True,
                 validate_args: bool = False, name: str = "orthogonal_sylvester") -> None:
        parameters = dict(locals())
        self._iterations = int(iterations)
        super().__init__(r, r_tilde, b, {"q_raw": q}, constrain, validate_args, parameters, name)
        if self._q_raw.shape.rank is None or self._q_raw.shape.rank < 2 or int(self._q_raw.shape[-1]) != self._m:
            raise ValueError(f"OrthogonalSylvester: q must have shape (..., D, {self._m}), got {self._q_raw.shape}")
        if int(self._q_raw.shape[-2]) < self._m:
            raise ValueError(f"OrthogonalSylvester: M = {self._m} columns need D >= M, got D = {self._q_raw.shape[-2]}")

    def q(self) -> tf.Tensor:
        return bjorck_orthogonalize(tf.convert_to_tensor(self._q_raw), self._iterations)


class HouseholderSylvester(Sylvester):
    """Sylvester flow with :math:`Q = H_1 \\cdots H_H` from reflection vectors ``v`` (shape ``(..., H, D)``)."""

    def __init__(self, v: Any, r: Any, r_tilde: Any, b: Any, constrain: bool = True, validate_args: bool = False,
                 name: str = "householder_sylvester") -> None:
        parameters = dict(locals())
        super().__init__(r, r_tilde, b, {"v": v}, constrain, validate_args, parameters, name)
        if self._v.shape.rank is None or self._v.shape.rank < 2 or int(self._v.shape[-1]) != self._m:
            raise ValueError(f"HouseholderSylvester: v must have shape (..., H, {self._m}) (M = D), "
                             f"got {self._v.shape}")

    def q(self) -> tf.Tensor:
        v = tf.convert_to_tensor(self._v)
        v = v / tf.norm(v, axis=-1, keepdims=True)
        q = tf.eye(self._m, dtype=v.dtype)
        for k in range(int(v.shape[-2])):
            vk = v[..., k, :]
            q = q - 2.0 * tf.linalg.matvec(q, vk)[..., :, tf.newaxis] * vk[..., tf.newaxis, :]  # Q (I - 2 v vᵀ)
        return q


class TriangularSylvester(Sylvester):
    """Sylvester flow with :math:`Q` the identity, or the reversal permutation when ``reverse=True``."""

    def __init__(self, r: Any, r_tilde: Any, b: Any, reverse: bool = False, constrain: bool = True,
                 validate_args: bool = False, name: str = "triangular_sylvester") -> None:
        parameters = dict(locals())
        self._reverse = bool(reverse)
        super().__init__(r, r_tilde, b, {}, constrain, validate_args, parameters, name)

    def q(self) -> tf.Tensor:
        eye = tf.eye(self._m, dtype=self.dtype)
        return tf.reverse(eye, axis=[-1]) if self._reverse else eye
