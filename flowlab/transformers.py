r"""Transformers: the elementwise bijectors inside coupling and autoregressive layers.

A coupling or autoregressive layer is two pieces (Papamakarios et al. 2021, section 3.1): a
*conditioner* (a network) computes parameters :math:`h_i` from the variables the layer reads, and a
*transformer* :math:`\tau(\cdot; h_i)` -- a strictly monotone function of one variable -- moves
each transformed variable with its own parameters:

.. math:: y_i = \tau(z_i; h_i), \qquad \log\left|\det J\right| = \sum_i \log \tau'(z_i; h_i).

The structure (which variables condition which: a mask, or an autoregressive order) and the
transformer are independent choices.  A :class:`Transformer` here is a function from the
conditioner's outputs, shaped ``(..., params_per_dim)`` (one row per transformed variable), to an
elementwise TFP bijector, together with ``params_per_dim``, the number of parameters it needs per
variable.  Its ``forward`` goes from the base towards the data (TFP's convention); ``inverse`` is
the direction that evaluates densities.

===================================  ==================  =======================================
transformer                          parameters per dim  :math:`\tau(z; h)`
===================================  ==================  =======================================
:class:`AdditiveTransformer`         1                   :math:`z + t` (NICE; log-det 0)
:class:`AffineTransformer`           2                   :math:`z e^{s} + t`, :math:`s` bounded (RealNVP, MAF)
:class:`SplineTransformer`           :math:`3K - 1`      rational-quadratic spline of :math:`K` bins (NSF)
:class:`MixtureCDFTransformer`       :math:`3K + 2`      :math:`(\sigma^{-1}\!\circ F)^{-1}` of a :math:`K`-logistic
                                                         mixture, after an affine map (Flow++)
:class:`FunctionTransformer`         any                 your own function of the parameters
===================================  ==================  =======================================

Every transformer here is the identity when all its parameters are 0, so a zero-initialised
conditioner makes a new layer the identity and a deep flow starts as its base distribution.

The affine transformer's log-scale bound :math:`s \leftarrow c \tanh(s / c)` is
:func:`bound_log_scale`, the one place flowlab bounds a log-scale.

Example -- one coupling, four transformers (see :class:`flowlab.bijectors.coupling.Coupling`):

>>> import flowlab, tensorflow as tf
>>> from flowlab.bijectors.coupling import Coupling
>>> from flowlab.conditioners import MLPConditioner
>>> for transformer in [AdditiveTransformer(), AffineTransformer(), SplineTransformer(bins=8),
...                     MixtureCDFTransformer(components=4)]:
...     net = MLPConditioner(2, hidden_units=[16], params_per_dim=transformer.params_per_dim)
...     layer = Coupling([1.0, 0.0], net, transformer)
...     print(layer.forward(tf.constant([[0.5, -1.0]])).shape)
(1, 2)
(1, 2)
(1, 2)
(1, 2)

Write your own with :class:`FunctionTransformer`:

>>> import tensorflow_probability as tfp
>>> shift = FunctionTransformer(lambda h: tfp.bijectors.Shift(h[..., 0]), params_per_dim=1)
>>> float(shift(tf.constant([[2.0]])).forward(1.0)[0])
3.0

References: G. Papamakarios et al., "Normalizing flows for probabilistic modeling and inference"
(JMLR 2021); L. Dinh et al., "NICE" (2014) and "Real NVP" (2016); C. Durkan et al., "Neural spline
flows" (NeurIPS 2019); J. Ho et al., "Flow++" (ICML 2019).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.validation import integer

__all__ = [
    "Transformer",
    "AdditiveTransformer",
    "AffineTransformer",
    "SplineTransformer",
    "MixtureCDFTransformer",
    "FunctionTransformer",
    "bound_log_scale",
    "spline_parameters",
]

tfb = tfp.bijectors


def bound_log_scale(log_scale: tf.Tensor, bound: float | None) -> tf.Tensor:
    r"""The soft bound :math:`s \leftarrow c \tanh(s / c)`: one layer scales by at most :math:`e^{\pm c}`.

    Nearly the identity for :math:`|s| \ll c`; without it a deep flow can, on one unlucky batch,
    scale a variable by :math:`e^{20}` and turn the next gradient into NaN.  ``bound=None``: no bound.
    """
    if bound is None:
        return log_scale
    c = tf.constant(bound, log_scale.dtype)
    return c * tf.tanh(log_scale / c)


class Transformer:
    """A family of elementwise bijectors indexed by ``params_per_dim`` parameters per variable.

    Subclasses set ``params_per_dim`` and implement :meth:`bijector`; calling the transformer checks
    the parameters' last axis first, so a conditioner with the wrong number of outputs is a clear
    error rather than a broadcast.
    """

    params_per_dim: int = 0

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        raise NotImplementedError

    def __call__(self, params: Any) -> tfb.Bijector:
        params = tf.convert_to_tensor(params, dtype_hint=tf.float32)
        size = params.shape[-1] if params.shape.rank else None
        if params.shape.rank == 0 or (size is not None and size != self.params_per_dim):
            raise ValueError(
                f"{type(self).__name__} needs {self.params_per_dim} parameters per variable (a last axis of "
                f"{self.params_per_dim}), got parameters of shape {tuple(params.shape)}"
            )
        return self.bijector(params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params_per_dim={self.params_per_dim})"


class AdditiveTransformer(Transformer):
    r"""NICE: :math:`\tau(z; t) = z + t`.  Volume preserving: :math:`\tau' = 1`, log-det 0."""

    params_per_dim = 1

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        return tfb.Shift(params[..., 0])


class AffineTransformer(Transformer):
    r"""RealNVP / MAF: :math:`\tau(z; t, s) = z e^{s} + t`, log-det :math:`s`, parameters ``(t, s)``.

    ``log_scale_bound``: ``c`` of :func:`bound_log_scale`; ``None`` leaves the log-scale free (the
    lab sheet's MAF).  The bijector is ``tfb.Shift(t)(tfb.Scale(log_scale=s))``, the same chain TFP's
    ``MaskedAutoregressiveFlow`` builds from a ``shift_and_log_scale_fn``.
    """

    params_per_dim = 2

    def __init__(self, log_scale_bound: float | None = 3.0) -> None:
        if log_scale_bound is not None and not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive (or None for no bound), got {log_scale_bound!r}")
        self.log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        shift, log_scale = tf.unstack(params, num=2, axis=-1)
        log_scale = bound_log_scale(log_scale, self.log_scale_bound)
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)], validate_event_size=False)

    def __repr__(self) -> str:
        return f"AffineTransformer(log_scale_bound={self.log_scale_bound})"


# The smallest bin width, height and knot slope: keeps the spline strictly monotone and its inverse
# well conditioned.
_MIN_BIN = 1e-3
# softplus(_SLOPE_SHIFT) + _MIN_BIN == 1: a zero parameter gives slope 1, so zeros make the identity.
_SLOPE_SHIFT = math.log(math.expm1(1.0 - _MIN_BIN))


def spline_parameters(params: tf.Tensor, bins: int, bound: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    r"""Unconstrained ``params`` (last axis :math:`3K - 1`) -> bin widths, bin heights, interior knot slopes.

    Widths and heights: a softmax scaled to the interval's width :math:`2B`, each at least a small
    minimum, so they are positive and sum to :math:`2B` (the spline maps :math:`[-B, B]` onto itself).
    Slopes at the :math:`K - 1` interior knots: softplus, positive, so the spline is strictly
    increasing; the two boundary slopes are 1, matching the identity outside the interval.
    """
    k, width = bins, 2.0 * bound

    def sizes(logits: tf.Tensor) -> tf.Tensor:
        return tf.math.softmax(logits, axis=-1) * (width - k * _MIN_BIN) + _MIN_BIN

    return (sizes(params[..., :k]), sizes(params[..., k:2 * k]),
            tf.math.softplus(params[..., 2 * k:] + _SLOPE_SHIFT) + _MIN_BIN)


_SplineBin = collections.namedtuple("_SplineBin", "out_of_bounds x_k y_k d_k d_kp1 h_k w_k s_k")


class _RationalQuadraticSpline(tfb.RationalQuadraticSpline):
    """TFP's spline, its bin looked up by a one-hot sum instead of ``tf.gather(..., batch_dims)``.

    Same values and gradients (``tests/test_transformers.py``); TFP's six batched gathers per call
    (twice per ``log_prob``) have scatter gradients that take half of a spline flow's tracing time
    and ~10 % of each step (``bench/beyond_affine.md``).  Overrides TFP's ``_compute_shared``.
    """

    def _compute_shared(self, x=None, y=None):
        is_x = x is not None
        range_min = tf.convert_to_tensor(self.range_min, name="range_min")

        def knots(sizes: tf.Tensor) -> tf.Tensor:  # (..., K) bin sizes -> (..., K + 1) knot positions
            return range_min + tf.pad(tf.cumsum(sizes, axis=-1), [[0, 0]] * (sizes.shape.rank - 1) + [[1, 0]])

        kx, ky = knots(self.bin_widths), knots(self.bin_heights)
        slopes = tf.convert_to_tensor(self.knot_slopes)
        kd = tf.pad(slopes, [[0, 0]] * (slopes.shape.rank - 1) + [[1, 1]], constant_values=1.0)
        k = kx if is_x else ky
        v = x if is_x else y
        out_of_bounds = (v <= k[..., 0]) | (v >= k[..., -1])
        v = tf.where(out_of_bounds, k[..., 0], v)[..., tf.newaxis]
        onehot = tf.cast((k[..., :-1] <= v) & (v < k[..., 1:]), v.dtype)  # the bin holding v

        def pick(t: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(onehot * t, axis=-1)

        x_k, y_k, d_k = pick(kx[..., :-1]), pick(ky[..., :-1]), pick(kd[..., :-1])
        w_k, h_k, d_kp1 = pick(kx[..., 1:]) - x_k, pick(ky[..., 1:]) - y_k, pick(kd[..., 1:])
        return _SplineBin(out_of_bounds, x_k, y_k, d_k, d_kp1, h_k, w_k, h_k / w_k)


class SplineTransformer(Transformer):
    r"""A monotone rational-quadratic spline of ``bins`` pieces on :math:`[-B, B]`, the identity outside.

    Durkan et al. 2019: the knots :math:`(x_k, y_k)` come from cumulative bin widths and heights, each
    piece is a ratio of two quadratics with the given slopes at its ends, so the spline is smooth,
    strictly increasing and has a closed-form inverse (a quadratic equation).  :math:`K` widths,
    :math:`K` heights and :math:`K - 1` interior slopes make :math:`3K - 1` parameters per variable
    (:func:`spline_parameters` constrains them).  Uses TFP's ``tfb.RationalQuadraticSpline``.
    """

    def __init__(self, bins: int = 8, bound: float = 4.0) -> None:
        bins = integer(bins, "bins", minimum=2)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.bins, self.bound = bins, float(bound)
        self.params_per_dim = 3 * bins - 1

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        widths, heights, slopes = spline_parameters(params, self.bins, self.bound)
        return _RationalQuadraticSpline(bin_widths=widths, bin_heights=heights, knot_slopes=slopes,
                                        range_min=-self.bound)

    def __repr__(self) -> str:
        return f"SplineTransformer(bins={self.bins}, bound={self.bound})"


class MixtureCDFTransformer(Transformer):
    r"""Flow++'s transformer: :math:`\sigma^{-1}\big(F(x)\big) e^{a} + b = z`, :math:`F` a logistic mixture's CDF.

    In the data-to-latent direction (the one that evaluates densities) each variable goes through
    the CDF of a :math:`K`-component mixture of logistics (:class:`~flowlab.bijectors.MixtureCDF`), then
    the inverse sigmoid (back to the real line), then an affine map; log-det
    :math:`\log F'(x) - \log F(x) - \log(1 - F(x)) + a`, computed in log space
    (:class:`~flowlab.bijectors.logit_mixture_cdf.LogitMixtureCDF`).  Parameters per variable:
    :math:`K` logits, :math:`K` locations, :math:`K` log-scales, then :math:`b` and :math:`a`
    (:math:`3K + 2`).  The generative direction has no closed form: it bisects (sampling is slower).
    All zeros: one standard logistic, whose :math:`\sigma^{-1} \circ F` is the identity.

    ``min_log_scale`` clamps the components' log-scales from below (Flow++ clamps at -7): a
    component narrower than that would spike the density and its gradients.
    """

    def __init__(self, components: int = 4, log_scale_bound: float | None = 3.0,
                 min_log_scale: float = -7.0) -> None:
        components = integer(components, "components")
        self.components = components
        self.affine = AffineTransformer(log_scale_bound)
        self.min_log_scale = float(min_log_scale)
        self.params_per_dim = 3 * components + 2

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        from flowlab.bijectors.logit_mixture_cdf import LogitMixtureCDF  # here: flowlab.bijectors imports this module

        k = self.components
        logits, locs, log_scales = params[..., :k], params[..., k:2 * k], params[..., 2 * k:3 * k]
        log_scales = tf.maximum(log_scales, self.min_log_scale)
        cdf = LogitMixtureCDF(logits, locs, log_scales)
        # Generative direction: affine^-1 then (logit o F)^-1; Chain applies its list right to left.
        return tfb.Chain([tfb.Invert(cdf), tfb.Invert(self.affine(params[..., 3 * k:]))])

    def __repr__(self) -> str:
        return f"MixtureCDFTransformer(components={self.components})"


class FunctionTransformer(Transformer):
    """A transformer from a plain function ``fn(params) -> elementwise tfb.Bijector`` and its parameter count.

    ``params`` has shape ``(..., params_per_dim)``: ``params[..., 0]`` is every variable's first
    parameter.  The bijector must act elementwise (``forward_min_event_ndims == 0``), forward from the
    base towards the data.
    """

    def __init__(self, fn: Callable[[tf.Tensor], tfb.Bijector], params_per_dim: int, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"a transformer needs a function params -> bijector, got {type(fn).__name__}")
        params_per_dim = integer(params_per_dim, "params_per_dim")
        self.fn, self.params_per_dim = fn, params_per_dim
        self.name = name or getattr(fn, "__name__", "function")

    def bijector(self, params: tf.Tensor) -> tfb.Bijector:
        out = self.fn(params)
        if not isinstance(out, tfb.Bijector):
            raise TypeError(f"the transformer {self.name!r} must return a tfb.Bijector, got {type(out).__name__}")
        if out.forward_min_event_ndims != 0:
            raise ValueError(f"the transformer {self.name!r} must return an elementwise bijector "
                             f"(forward_min_event_ndims 0), got {out.forward_min_event_ndims}")
        return out

    def __repr__(self) -> str:
        return f"FunctionTransformer({self.name}, params_per_dim={self.params_per_dim})"
