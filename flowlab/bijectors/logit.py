r"""The logit transform: RealNVP's map from pixels in ``[0, 1]`` to the real line, as a bijector.

Flows are built from maps of the whole real line; the data live in
:math:`[0, 1)`.  RealNVP (Dinh et al. 2016, section 4.1) models
:math:`\operatorname{logit}(\alpha + (1 - 2\alpha) y)` with :math:`\alpha = 0.05`, which keeps the
boundaries away from :math:`\pm\infty`.  :class:`Logit` is that map as a bijector, with the exact
log-det

.. math:: \log\left|\frac{dz}{dy}\right| = \log(1 - 2\alpha) - \log p - \log(1 - p),
    \qquad p = \alpha + (1 - 2\alpha) y,

so a flow in logit space still reports densities of :math:`y`.

Example::

    flow = tfd.TransformedDistribution(base, tfb.Chain([tfb.Invert(Logit(0.05)), realnvp]))

:class:`FunctionLogit` is the same bijector with the forward map and log-det given as functions
(the students' own, in the MNIST lab).  Dequantization lives in :mod:`flowlab.bijectors.dequantize`.

Reference: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["Logit", "FunctionLogit"]

tfb = tfp.bijectors


class Logit(tfb.Bijector):
    r"""RealNVP's preprocessing :math:`z = \operatorname{logit}(\alpha + (1 - 2\alpha) y)`: ``[0, 1]`` to the real line.

    Forward goes from data to logit space; use ``tfb.Invert(Logit(alpha))`` in a generative chain
    (base -> flow -> sigmoid).  With ``alpha = 0`` it is the plain logit; its inputs are then
    clamped to ``[eps, 1 - eps]`` so 0 and 1 give large finite values, not infinities.  Log-dets
    are computed in log-space (softplus), exact for every input.

    Args:
      alpha: in ``[0, 0.5)``; RealNVP (Dinh et al. 2016) uses 0.05.
      eps: the clamp for ``alpha = 0`` (ignored otherwise: the inputs already avoid 0 and 1).

    Example::

        logit = Logit(0.05)
        z = logit.forward(y)                                  # y in [0, 1]
        logit.forward_log_det_jacobian(y, event_ndims=3)      # sum over pixels

    >>> logit = Logit(0.05)
    >>> round(float(logit.forward(0.5)), 6), round(float(logit.inverse(logit.forward(0.25))), 6)
    (0.0, 0.25)
    """

    def __init__(self, alpha: float = 0.05, eps: float = 1e-6, validate_args: bool = False,
                 name: str = "logit") -> None:
        parameters = dict(locals())
        if not (isinstance(alpha, (int, float, np.floating)) and 0.0 <= float(alpha) < 0.5):
            raise ValueError(f"alpha must be a number in [0, 0.5), got {alpha!r}")
        if not 0.0 < float(eps) < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
        self._alpha = float(alpha)
        self._eps = float(eps)
        super().__init__(forward_min_event_ndims=0, validate_args=validate_args, parameters=parameters, name=name)

    @property
    def alpha(self) -> float:
        return self._alpha

    def _p(self, y: tf.Tensor) -> tf.Tensor:
        if self.validate_args:
            # Outside [0, 1] the logit of p is NaN (p > 1) or of the wrong branch: say so instead.
            y = tf.debugging.assert_all_finite(y, f"{self.name}: the input holds NaN or infinite values")
            with tf.control_dependencies([
                tf.debugging.assert_greater_equal(y, tf.zeros([], y.dtype), message=(
                    f"{self.name}: inputs must lie in [0, 1] (dequantized pixels / 256), got a negative value")),
                tf.debugging.assert_less_equal(y, tf.ones([], y.dtype), message=(
                    f"{self.name}: inputs must lie in [0, 1] (dequantized pixels / 256), got a value above 1; "
                    "did you divide by 256?")),
            ]):
                y = tf.identity(y)
        p = self._alpha + (1.0 - 2.0 * self._alpha) * y
        if self._alpha == 0.0:
            p = tf.clip_by_value(p, self._eps, 1.0 - self._eps)
        return p

    def _forward(self, y: tf.Tensor) -> tf.Tensor:
        p = self._p(y)
        return tf.math.log(p) - tf.math.log1p(-p)

    def _inverse(self, z: tf.Tensor) -> tf.Tensor:
        return (tf.sigmoid(z) - self._alpha) / (1.0 - 2.0 * self._alpha)

    def _forward_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        p = self._p(y)
        return np.log1p(-2.0 * self._alpha) - tf.math.log(p) - tf.math.log1p(-p)

    def _inverse_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        # d sigmoid(z)/dz = sigmoid(z) sigmoid(-z); in log-space: -softplus(-z) - softplus(z).
        return -tf.nn.softplus(-z) - tf.nn.softplus(z) - np.log1p(-2.0 * self._alpha)


class FunctionLogit(Logit):
    r"""The logit bijector with *your* forward map and log-det: ``transform(y, alpha)``, ``log_det(y, alpha)``.

    Both functions work elementwise on tensors (they run inside ``tf.function`` when a Keras model
    trains).  ``forward`` (data to logit space) is ``transform``; ``forward_log_det_jacobian`` is
    ``log_det`` summed over the event -- the log-det the flow's ``log_prob`` counts, unchecked.  The
    inverse (a sigmoid, for sampling) is :class:`Logit`'s.

    Example::

        logit = FunctionLogit(logit_transform, logit_log_det, alpha=0.05)
        flow = tfd.TransformedDistribution(base, tfb.Chain([tfb.Invert(logit), realnvp]))
    """

    def __init__(self, transform: Any, log_det: Any, alpha: float = 0.05, validate_args: bool = False,
                 name: str = "function_logit") -> None:
        for fn, what in ((transform, "transform"), (log_det, "log_det")):
            if not callable(fn):
                raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        self._transform = transform
        self._log_det = log_det
        super().__init__(alpha=alpha, validate_args=validate_args, name=name)

    def _forward(self, y: tf.Tensor) -> tf.Tensor:
        return tf.cast(self._transform(y, self._alpha), y.dtype)

    def _forward_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return tf.cast(self._log_det(y, self._alpha), y.dtype)

    def _inverse_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return -self._forward_log_det_jacobian(self._inverse(z))
