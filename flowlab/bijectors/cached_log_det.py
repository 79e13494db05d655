"""Log-determinants that come free with a transformation, kept in TFP's bijector cache.

A coupling layer (or a stack of them) computes its log-determinant while it transforms: the
log-scales are in hand anyway.  ``_forward``/``_inverse`` store ``ildj`` (the inverse
log-det-Jacobian) in the cache entry of their input; the log-det methods read it back and only
re-run the transformation on a cache miss, so ``log_prob`` runs each conditioner once, not twice.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["CachedLogDet"]


class CachedLogDet:
    """Mixin for a ``tfb.Bijector`` whose ``_forward``/``_inverse`` store ``ildj`` in the cache.

    A bijector whose log-det comes only with its inverse (the student's ``FunctionCoupling`` and
    ``FunctionConv1x1``: a function returns ``(z, log_det)``) stores it in ``_inverse`` and defines
    its own ``_forward_log_det_jacobian``.
    """

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        attrs = self._cache.forward_attributes(x)
        if "ildj" not in attrs:
            self._forward(x)
        return -attrs["ildj"]

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        attrs = self._cache.inverse_attributes(y)
        if "ildj" not in attrs:
            self._inverse(y)
        return attrs["ildj"]
