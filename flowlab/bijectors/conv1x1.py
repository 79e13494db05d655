r"""Glow's invertible 1×1 convolution: one learned ``C × C`` matrix applied to every pixel's channels.

A RealNVP coupling transforms half of the channels and copies the other half; between couplings
something must mix them, or the same half is read every time.  RealNVP alternates fixed masks
(a *reversal*); Glow (Kingma & Dhariwal 2018) learns the mixing.  In the data-to-latent direction,
at every pixel :math:`(i, j)`,

.. math:: z_{ij} = W x_{ij}, \qquad
          \log\left|\det\frac{\partial z}{\partial x}\right| = H \cdot W_{\mathrm{img}} \cdot \log|\det W| ,

because the Jacobian is block diagonal with the same block :math:`W` at each of the
:math:`H \cdot W_{\mathrm{img}}` pixels.  ``log|det W|`` costs :math:`O(C^3)`; Glow's **LU
parameterisation** makes it :math:`O(C)`:

.. math:: W = P\, L\, (U + \operatorname{diag}(s)), \qquad \log|\det W| = \textstyle\sum_c \log|s_c| ,

with :math:`P` a fixed permutation, :math:`L` lower triangular with ones on the diagonal, :math:`U`
strictly upper triangular and :math:`s` a vector; :math:`\det P = \pm 1`, :math:`\det L = 1`.  The
trained parameters are :math:`L`'s and :math:`U`'s free entries and :math:`\log|s|` (the sign of
:math:`s` is fixed at initialisation, so :math:`W` can never become singular).  Both variants start
at the same random rotation (:math:`\log|\det W| = 0`): an untrained layer only mixes channels.

TFP's :class:`tfp.bijectors.ScaleMatvecLU` is the same map on vectors (``forward`` is
:math:`W x`); this bijector applies it to images, with the log-det counted over the pixels and
Glow's direction: ``inverse`` (data to latent, what ``log_prob`` runs) multiplies by :math:`W`,
``forward`` (sampling) by :math:`W^{-1}`.

Example:

>>> import flowlab, tensorflow as tf
>>> conv = InvertibleConv1x1(channels=4, seed=0)
>>> x = tf.random.stateless_normal([2, 6, 6, 4], seed=[1, 2])
>>> float(tf.reduce_max(tf.abs(conv.forward(conv.inverse(x)) - x))) < 1e-4
True
>>> conv.inverse_log_det_jacobian(x, event_ndims=3).shape    # one value per image: 36 * log|det W|
TensorShape([2])

Reference: D. P. Kingma, P. Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions" (2018).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.cached_log_det import CachedLogDet
from flowlab.bijectors.run_time_checks import finite
from flowlab.validation import floating_dtype, integer

__all__ = ["InvertibleConv1x1", "FunctionConv1x1", "random_rotation", "lu_parameters"]

tfb = tfp.bijectors


def random_rotation(channels: int, seed: int | None = None) -> np.ndarray:
    """A random ``channels × channels`` orthogonal matrix (QR of a Gaussian), Glow's initial ``W``."""
    rng = np.random.default_rng(seed) if seed is not None else np.random
    q, r = np.linalg.qr(rng.standard_normal((channels, channels)))
    return (q * np.sign(np.diag(r))).astype(np.float64)  # signs fixed: a Haar-distributed rotation


def lu_parameters(weight: Any) -> dict[str, np.ndarray]:
    """``W = P L (U + diag(s))`` split into ``permutation``, ``lower``, ``upper``, ``sign_s``, ``log_s``.

    ``lower`` is strictly lower triangular (the unit diagonal is implied), ``upper`` strictly upper
    triangular; ``s = sign_s * exp(log_s)``.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"weight must be a square matrix, got shape {w.shape}")
    p, lower, u = scipy.linalg.lu(w)
    s = np.diag(u)
    if np.any(s == 0):
        raise ValueError("weight is singular: it has no LU parameterisation with an invertible W")
    return {"permutation": p, "lower": np.tril(lower, -1), "upper": np.triu(u, 1), "sign_s": np.sign(s),
            "log_s": np.log(np.abs(s))}


def _channels(value: Any) -> int:
    return integer(value, "channels")


class InvertibleConv1x1(tfb.Bijector):
    r"""Invertible 1×1 convolution on images ``(..., H, W, C)``: data to latent ``z = W x`` at every pixel.

    Args:
      channels: ``C``.
      lu_decomposed: train ``W = P L (U + diag(s))`` (log-det :math:`H W \sum\log|s|`, Glow's
        default) or ``W`` itself (log-det by ``slogdet``, :math:`O(C^3)`).
      seed: for the initial random rotation (NumPy's global generator if ``None``).
      validate_args: also check at run time that the inputs are finite and ``W`` is invertible.
      dtype: float32 or float64, the parameters'; by default Keras's ``floatx()`` (float32 unless
        set), like a Keras layer's, so the image builders' ``dtype=`` reaches it.

    ``weight`` is the current ``W``; ``log_abs_det_weight`` its :math:`\log|\det W|`.
    """

    def __init__(self, channels: int, lu_decomposed: bool = True, seed: int | None = None,
                 validate_args: bool = False, name: str = "conv1x1", dtype: Any = None) -> None:
        parameters = dict(locals())
        self._channels = _channels(channels)
        self._lu = bool(lu_decomposed)
        self._float = tf.as_dtype(floating_dtype(tf.keras.backend.floatx() if dtype is None else dtype))
        w0 = random_rotation(self._channels, seed)
        numpy_dtype = self._float.as_numpy_dtype
        with tf.name_scope(name):
            if self._lu:
                lu = lu_parameters(w0)
                # Not trained, but drawn at random like W: as (non-trainable) variables they travel with
                # the weights in every format, so a flow rebuilt by the same call and loaded is the same flow.
                self.permutation = tf.Variable(lu["permutation"].astype(numpy_dtype), trainable=False,
                                               name="permutation")
                self.sign_s = tf.Variable(lu["sign_s"].astype(numpy_dtype), trainable=False, name="sign_s")
                self.lower = tf.Variable(lu["lower"].astype(numpy_dtype), name="lower")
                self.upper = tf.Variable(lu["upper"].astype(numpy_dtype), name="upper")
                self.log_s = tf.Variable(lu["log_s"].astype(numpy_dtype), name="log_s")
            else:
                self.plain_weight = tf.Variable(w0.astype(numpy_dtype), name="weight")
        super().__init__(forward_min_event_ndims=3, validate_args=validate_args, parameters=parameters, name=name)

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def lu_decomposed(self) -> bool:
        return self._lu

    def _triangles(self) -> tuple[tf.Tensor, tf.Tensor]:
        # The variables are full matrices; the masks keep only the free entries, so gradients on the
        # others are zero and W stays P L (U + diag(s)) whatever the optimiser does.
        c = self._channels
        strictly_lower = tf.constant(np.tril(np.ones((c, c)), -1), self._float)
        lower = self.lower * strictly_lower + tf.eye(c, dtype=self._float)
        upper = self.upper * tf.transpose(strictly_lower) + tf.linalg.diag(self.sign_s * tf.exp(self.log_s))
        return lower, upper

    @property
    def weight(self) -> tf.Tensor:
        """``W``, ``(C, C)``."""
        if not self._lu:
            return tf.convert_to_tensor(self.plain_weight)
        lower, upper = self._triangles()
        return self.permutation @ lower @ upper

    @property
    def log_abs_det_weight(self) -> tf.Tensor:
        r""":math:`\log|\det W|`: :math:`\sum\log|s|` with the LU parameterisation, else ``slogdet``."""
        if self._lu:
            return tf.reduce_sum(self.log_s)
        return tf.linalg.slogdet(self.plain_weight)[1]

    def inverse_weight(self) -> tf.Tensor:
        """``W^{-1}``: triangular solves with the LU parameterisation, a general inverse otherwise."""
        if not self._lu:
            return tf.linalg.inv(self.plain_weight)
        lower, upper = self._triangles()
        # W^{-1} = (U + diag s)^{-1} L^{-1} P^T, P^T = P^{-1} for a permutation.
        l_inv_pt = tf.linalg.triangular_solve(lower, tf.transpose(self.permutation), lower=True)
        return tf.linalg.triangular_solve(upper, l_inv_pt, lower=False)

    def _check(self, x: tf.Tensor, what: str) -> list[Any]:
        shape = x.shape
        if shape.rank is not None and (shape.rank < 3 or shape[-1] not in (None, self._channels)):
            raise ValueError(f"{self.name}: expected images (..., height, width, {self._channels}) for {what}, "
                             f"got shape {tuple(shape)}")
        assertions = []
        if self.validate_args:
            assertions.append(finite(x, self.name, what))
            if not self._lu:
                assertions.append(tf.debugging.assert_greater(
                    tf.abs(tf.linalg.det(self.plain_weight)), 0.0, message=f"{self.name}: W is singular"))
        return assertions

    @staticmethod
    def _per_pixel(x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
        # out[..., i] = sum_j M[i, j] x[..., j]: the 1x1 convolution with kernel M.
        return tf.einsum("...j,ij->...i", x, tf.cast(matrix, x.dtype))

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        with tf.control_dependencies(self._check(y, "the data")):
            return self._per_pixel(y, self.weight)

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        with tf.control_dependencies(self._check(z, "the latent")):
            return self._per_pixel(z, self.inverse_weight())

    def _log_det(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        pixels = tf.cast(shape[-3] * shape[-2], x.dtype)
        return tf.fill(shape[:-3], pixels * tf.cast(self.log_abs_det_weight, x.dtype))

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        self._check(y, "the data")
        return self._log_det(y)

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        self._check(z, "the latent")
        return -self._log_det(z)


class FunctionConv1x1(CachedLogDet, InvertibleConv1x1):
    r"""The 1×1 convolution with *your* functions: the lab's way to train your answers.

    ``conv1x1(x, weight) -> (z, log_det)`` is the data-to-latent map on a batch of images
    ``(batch, H, W, C)`` (``log_det`` one value per image).  With ``lu_weight`` (the LU variant),
    ``lu_weight(permutation, lower, upper, log_s, sign_s) -> (weight, log_abs_det)`` builds ``W``
    from the layer's parameters (``lower``/``upper`` are full matrices: keep their strict triangles)
    and the log-det used is :math:`H W \cdot` ``log_abs_det``; without it ``W`` is trained directly
    and the log-det is ``conv1x1``'s.  The inverse (sampling) is :class:`InvertibleConv1x1`'s, with
    ``W^{-1}`` of the ``W`` your functions build.

    Example::

        conv = FunctionConv1x1(4, conv1x1, lu_weight=lu_weight)
        z = conv.inverse(x); conv.inverse_log_det_jacobian(x, event_ndims=3)
    """

    def __init__(self, channels: int, conv1x1: Callable, lu_weight: Callable | None = None, seed: int | None = None,
                 validate_args: bool = False, name: str = "function_conv1x1") -> None:
        for fn, what in ((conv1x1, "conv1x1"), (lu_weight, "lu_weight")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        if conv1x1 is None:
            raise TypeError("conv1x1 must be callable, got None")
        self._conv1x1 = conv1x1
        self._lu_weight = lu_weight
        super().__init__(channels, lu_decomposed=lu_weight is not None, seed=seed, validate_args=validate_args,
                         name=name)

    def _student_lu(self) -> tuple[tf.Tensor, tf.Tensor]:
        out = self._lu_weight(tf.convert_to_tensor(self.permutation), self.lower, self.upper, self.log_s,
                              tf.convert_to_tensor(self.sign_s))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{self.name}: lu_weight must return (weight, log_abs_det), got {type(out).__name__}")
        return tf.cast(out[0], self._float), tf.cast(out[1], self._float)

    @property
    def weight(self) -> tf.Tensor:
        return self._student_lu()[0] if self._lu else tf.convert_to_tensor(self.plain_weight)

    @property
    def log_abs_det_weight(self) -> tf.Tensor:
        return self._student_lu()[1] if self._lu else tf.linalg.slogdet(self.plain_weight)[1]

    def inverse_weight(self) -> tf.Tensor:
        return tf.linalg.inv(self.weight)

    def _apply(self, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self._check(y, "the data")
        batch = tf.shape(y)[:-3]
        flat = tf.reshape(y, tf.concat([[-1], tf.shape(y)[-3:]], 0))
        if self._lu:
            weight, log_abs_det = self._student_lu()
        else:
            weight, log_abs_det = self.weight, None
        out = self._conv1x1(flat, weight)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{self.name}: conv1x1 must return (z, log_det), got {type(out).__name__}")
        z = tf.reshape(tf.cast(out[0], y.dtype), tf.shape(y))
        if log_abs_det is None:
            log_det = tf.reshape(tf.cast(out[1], y.dtype), batch)
        else:
            pixels = tf.cast(tf.shape(y)[-3] * tf.shape(y)[-2], y.dtype)
            log_det = tf.fill(batch, pixels * log_abs_det)
        return z, log_det

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        z, log_det = self._apply(y)
        self._cache.inverse_attributes(y)["ildj"] = log_det
        return z

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return -self._apply(self._forward(z))[1]
