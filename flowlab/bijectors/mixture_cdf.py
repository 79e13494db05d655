r"""The CDF of a mixture of Gaussians or logistics, as an elementwise bijector onto (0, 1).

A one-dimensional *CDF flow* maps a variable to the unit interval with a cumulative distribution
function; with a mixture of :math:`K` components the map is flexible yet cheap:

.. math::

    u = F(x) = \sum_{k=1}^K w_k \, \Phi\!\left(\frac{x - \mu_k}{\sigma_k}\right),
    \qquad w = \operatorname{softmax}(\text{logits}),\ \sigma_k = e^{\log\sigma_k},

with :math:`\Phi` the standard normal CDF (``family="gaussian"``) or the logistic sigmoid
(``family="logistic"``).  :math:`F` is strictly increasing, so it is invertible, and its
derivative is the mixture density,

.. math:: \log F'(x) = \operatorname{logsumexp}_k\big(\log w_k + \log \phi(z_k) - \log\sigma_k\big),
          \qquad z_k = (x - \mu_k)/\sigma_k,

which is what ``forward_log_det_jacobian`` returns.  A density model with a Uniform[0, 1] base
and this bijector (inverted, so that it maps data to the base) *is* the mixture density; composing
with another base's inverse CDF gives the same density with a different latent space (Ho et al.
2019, Flow++, use such mixture-CDF layers inside coupling flows).

Numerics.  The CDF is computed in log space, :math:`\log F = \operatorname{logsumexp}_k(\log w_k +
\log\Phi(z_k))`, and above the median from the survival function, so values and gradients stay
finite ten scales out in either tail.  ``forward`` clamps its result into the open interval
``[tiny, 1 - eps/2]`` (rounding would otherwise give exactly 1, outside a Beta base's support);
the log-det is computed from the log-density, never from the clamped value.  There is no closed
form inverse: ``inverse`` brackets the answer between the components' own quantiles (the mixture's
quantile lies between the smallest and the largest of them) and bisects, comparing in log space
(left half) or survival log space (right half), to the dtype's resolution (well below 1e-6).  Its
gradients come from the implicit function theorem, :math:`\partial x/\partial u = 1/F'(x)` and
:math:`\partial x/\partial\theta = -(\partial F/\partial\theta)/F'(x)`, not from unrolling the
bisection.  Inputs of ``inverse`` are clamped to the same open interval.

Example::

    cdf = MixtureCDF(logits=[0.0, 0.0], locs=[-1.0, 1.0], log_scales=[-1.0, -1.0])
    u = cdf.forward([-1.0, 0.0, 2.0])                # in (0, 1); u[1] = 0.5 by symmetry
    x = cdf.inverse(u)                               # back to [-1, 0, 2]
    flow = tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0), tfb.Invert(cdf))
    flow.log_prob(0.0)                               # = log of the mixture density at 0

References: Ho, Chen, Srinivas, Duan, Abbeel, "Flow++" (ICML 2019), section 3.1; the CDF flows of
the Berkeley CS294-158 lectures (Abbeel, Chen, Ho, Srinivas, 2019-2020), lecture 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import dtype_util, parameter_properties, special_math, tensor_util

__all__ = ["FAMILIES", "MixtureCDF"]

tfb = tfp.bijectors

FAMILIES = ("gaussian", "logistic")
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def _log_cdf_std(z: tf.Tensor, family: str) -> tf.Tensor:
    if family == "gaussian":
        return special_math.log_ndtr(z)
    return -tf.math.softplus(-z)  # log sigmoid(z)


def _log_pdf_std(z: tf.Tensor, family: str) -> tf.Tensor:
    if family == "gaussian":
        return -0.5 * tf.square(z) - _HALF_LOG_TWO_PI
    return -tf.math.softplus(-z) - tf.math.softplus(z)  # log sigmoid(z) + log sigmoid(-z)


def _quantile_std(u: tf.Tensor, family: str) -> tf.Tensor:
    if family == "gaussian":
        return tf.math.ndtri(u)
    return tf.math.log(u) - tf.math.log1p(-u)


def _static_components(shape: tf.TensorShape) -> int | None:
    return None if shape.rank is None else tf.compat.dimension_value(shape[-1])


class MixtureCDF(tfb.Bijector):
    r"""Elementwise CDF of a K-component Gaussian or logistic mixture: maps the real line onto (0, 1).

    Args:
      logits: mixture logits, shape ``[..., K]`` (unnormalised log-weights).
      locs: component locations :math:`\mu_k`, shape ``[..., K]``.
      log_scales: component log-scales :math:`\log\sigma_k`, shape ``[..., K]``.
        The three may be tensors or ``tf.Variable``\ s (then the bijector is trainable); their
        batch dimensions ``...`` broadcast against each other and against the input's shape.
      family: ``"gaussian"`` or ``"logistic"`` components.
      validate_args: check at run time that inputs of ``inverse`` lie in [0, 1] and inputs of
        ``forward`` are finite.
      name: name scope of the bijector's ops.

    Raises ``ValueError`` for an unknown family, K < 1, parameters whose component dimensions or
    batch dimensions do not match, and ``TypeError`` for non-float parameters.

    >>> import flowlab
    >>> cdf = MixtureCDF(logits=[0.0, 0.0], locs=[-1.0, 1.0], log_scales=[0.0, 0.0])
    >>> round(float(cdf.forward(0.0)), 6), round(float(cdf.inverse(cdf.forward(0.7))), 4)   # symmetric: F(0) = 1/2
    (0.5, 0.7)

    Reference: Ho, Chen, Srinivas, Duan, Abbeel, "Flow++" (ICML 2019), section 3.1.
    """

    def __init__(
        self,
        logits: Any,
        locs: Any,
        log_scales: Any,
        family: str = "gaussian",
        validate_args: bool = False,
        name: str = "MixtureCDF",
    ) -> None:
        parameters = dict(locals())
        if family not in FAMILIES:
            raise ValueError(f"MixtureCDF: family must be one of {FAMILIES}, got {family!r}")
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([logits, locs, log_scales], dtype_hint=tf.float32)
            if not dtype_util.is_floating(dtype):
                raise TypeError(f"MixtureCDF: parameters must be floating point, got {dtype_util.name(dtype)}")
            self._logits = tensor_util.convert_nonref_to_tensor(logits, dtype=dtype, name="logits")
            self._locs = tensor_util.convert_nonref_to_tensor(locs, dtype=dtype, name="locs")
            self._log_scales = tensor_util.convert_nonref_to_tensor(log_scales, dtype=dtype, name="log_scales")
            self._family = family
            self._check_static_shapes()
            super().__init__(
                forward_min_event_ndims=0,
                validate_args=validate_args,
                dtype=dtype,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def from_params(cls, params: Any, family: str = "gaussian", **kwargs: Any) -> MixtureCDF:
        """Split ``params`` of shape ``[..., 3K]`` into ``(logits, locs, log_scales)`` (in that order)."""
        params = tf.convert_to_tensor(params, dtype_hint=tf.float32)
        size = _static_components(params.shape)
        if size is not None and (size < 3 or size % 3 != 0):
            raise ValueError(
                f"MixtureCDF.from_params: the last axis holds {size} values; it must hold 3K "
                "(K logits, K locations, K log-scales) with K >= 1"
            )
        logits, locs, log_scales = tf.split(params, 3, axis=-1)
        return cls(logits, locs, log_scales, family=family, **kwargs)

    def _check_static_shapes(self) -> None:
        shapes = {"logits": self._logits.shape, "locs": self._locs.shape, "log_scales": self._log_scales.shape}
        for what, shape in shapes.items():
            if shape.rank == 0:
                raise ValueError(f"MixtureCDF: {what} must have a component axis (shape [..., K]), got a scalar")
        sizes = {what: _static_components(shape) for what, shape in shapes.items()}
        known = {what: k for what, k in sizes.items() if k is not None}
        if len(set(known.values())) > 1:
            raise ValueError(
                "MixtureCDF: logits, locs and log_scales must have the same number of components K "
                f"(last axis); got shapes {', '.join(f'{w} {list(s)}' for w, s in shapes.items())}"
            )
        if known and min(known.values()) < 1:
            raise ValueError("MixtureCDF needs at least one mixture component (K >= 1), got K = 0")
        batch = tf.TensorShape(None)
        try:
            batch = shapes["logits"][:-1] if shapes["logits"].rank is not None else batch
            for shape in (shapes["locs"], shapes["log_scales"]):
                if shape.rank is not None and batch.rank is not None:
                    batch = tf.broadcast_static_shape(batch, shape[:-1])
        except ValueError:
            raise ValueError(
                "MixtureCDF: the batch dimensions of logits, locs and log_scales do not broadcast; got shapes "
                f"{', '.join(f'{w} {list(s)}' for w, s in shapes.items())}"
            ) from None

    @classmethod
    def _parameter_properties(cls, dtype: Any) -> dict[str, parameter_properties.ParameterProperties]:
        return dict(
            logits=parameter_properties.ParameterProperties(event_ndims=1),
            locs=parameter_properties.ParameterProperties(event_ndims=1),
            log_scales=parameter_properties.ParameterProperties(event_ndims=1),
        )

    @property
    def logits(self) -> Any:
        return self._logits

    @property
    def locs(self) -> Any:
        return self._locs

    @property
    def log_scales(self) -> Any:
        return self._log_scales

    @property
    def family(self) -> str:
        return self._family

    @property
    def num_components(self) -> int | None:
        return _static_components(self._locs.shape)

    @classmethod
    def _is_increasing(cls) -> bool:
        return True

    # -- the mixture in log space ---------------------------------------------------------------

    def _params(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        logits = tf.convert_to_tensor(self._logits)
        locs = tf.convert_to_tensor(self._locs)
        log_scales = tf.convert_to_tensor(self._log_scales)
        if self.validate_args and _static_components(locs.shape) is None:
            with tf.control_dependencies(
                [
                    tf.debugging.assert_equal(tf.shape(logits)[-1], tf.shape(locs)[-1],
                                             message="MixtureCDF: logits and locs have different K"),
                    tf.debugging.assert_equal(tf.shape(log_scales)[-1], tf.shape(locs)[-1],
                                             message="MixtureCDF: log_scales and locs have different K"),
                    tf.debugging.assert_positive(tf.shape(locs)[-1], message="MixtureCDF needs K >= 1"),
                ]
            ):
                locs = tf.identity(locs)
        return tf.math.log_softmax(logits, axis=-1), locs, log_scales

    def _standardise(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        log_w, locs, log_scales = self._params()
        z = (x[..., tf.newaxis] - locs) * tf.exp(-log_scales)
        return log_w, z, log_scales

    def log_cdf(self, x: Any) -> tf.Tensor:
        """:math:`\\log F(x)`, accurate far into the left tail."""
        log_w, z, _ = self._standardise(tf.convert_to_tensor(x, dtype=self.dtype))
        return tf.reduce_logsumexp(log_w + _log_cdf_std(z, self._family), axis=-1)

    def log_survival(self, x: Any) -> tf.Tensor:
        """:math:`\\log(1 - F(x))`, accurate far into the right tail (both families are symmetric)."""
        log_w, z, _ = self._standardise(tf.convert_to_tensor(x, dtype=self.dtype))
        return tf.reduce_logsumexp(log_w + _log_cdf_std(-z, self._family), axis=-1)

    def log_density(self, x: Any) -> tf.Tensor:
        """:math:`\\log F'(x)`, the log of the mixture density."""
        log_w, z, log_scales = self._standardise(tf.convert_to_tensor(x, dtype=self.dtype))
        return tf.reduce_logsumexp(log_w + _log_pdf_std(z, self._family) - log_scales, axis=-1)

    def _bounds(self) -> tuple[float, float]:
        info = np.finfo(dtype_util.as_numpy_dtype(self.dtype))
        return float(info.tiny), float(1.0 - info.epsneg)  # 1 - epsneg: the largest float below 1

    def _cdf(self, x: tf.Tensor) -> tf.Tensor:
        log_cdf, log_sf = self.log_cdf(x), self.log_survival(x)
        # Above the median 1 - S(x) is the accurate form (not -expm1: TF's vectorised float32 expm1 is off by
        # percents for tiny arguments); both branches are finite, so `where` is safe.
        return tf.where(log_cdf > math.log(0.5), 1.0 - tf.exp(log_sf), tf.exp(log_cdf))

    # -- the bijector ----------------------------------------------------------------------------

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        if self.validate_args:
            x = tf.debugging.assert_all_finite(x, message="MixtureCDF.forward: x has NaN or infinite values")
        low, high = self._bounds()
        return tf.clip_by_value(self._cdf(x), low, high)

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        return self.log_density(x)

    def _inverse(self, u: tf.Tensor) -> tf.Tensor:
        if self.validate_args:
            u = tf.debugging.assert_all_finite(u, message="MixtureCDF.inverse: u has NaN or infinite values")
            with tf.control_dependencies(
                [
                    tf.debugging.assert_greater_equal(u, tf.zeros([], u.dtype),
                                                      message="MixtureCDF.inverse: u must lie in [0, 1]"),
                    tf.debugging.assert_less_equal(u, tf.ones([], u.dtype),
                                                   message="MixtureCDF.inverse: u must lie in [0, 1]"),
                ]
            ):
                u = tf.identity(u)
        low, high = self._bounds()
        u = tf.clip_by_value(u, low, high)
        x = tf.stop_gradient(self._bisect(tf.stop_gradient(u)))
        # Implicit differentiation: g has the gradients of x (du/p and -dF/dtheta / p) and adds 0.
        inv_density = tf.stop_gradient(tf.exp(-self.log_density(x)))
        g = (u - self._cdf(x)) * inv_density
        return x + (g - tf.stop_gradient(g))

    def _bisect(self, u: tf.Tensor) -> tf.Tensor:
        _, locs, log_scales = self._params()
        scales = tf.exp(log_scales)
        # The mixture's u-quantile lies between the smallest and largest component u-quantiles.
        q = locs + scales * _quantile_std(u, self._family)[..., tf.newaxis]
        lo, hi = tf.reduce_min(q, axis=-1), tf.reduce_max(q, axis=-1)
        pad = 1e-3 * (hi - lo) + 1e-3 * tf.reduce_max(scales, axis=-1)
        lo, hi = lo - pad, hi + pad
        left = u <= 0.5
        log_u, log_1mu = tf.math.log(u), tf.math.log1p(-u)
        steps = 64 if self.dtype == tf.float64 else 40

        def body(i: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            mid = 0.5 * (lo + hi)
            below = tf.where(left, self.log_cdf(mid) < log_u, self.log_survival(mid) > log_1mu)
            return i + 1, tf.where(below, mid, lo), tf.where(below, hi, mid)

        _, lo, hi = tf.while_loop(lambda i, lo, hi: i < steps, body, (tf.constant(0), lo, hi))
        return 0.5 * (lo + hi)
