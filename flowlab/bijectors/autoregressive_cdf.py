r"""Autoregressive mixture-CDF flows: each variable through a mixture CDF conditioned on those before it.

In two dimensions (the lectures' "2-D autoregressive flow"),

.. math::

    z_1 = F(x_1;\ \theta_1), \qquad z_2 = F(x_2;\ \theta_2(x_1)),

with :math:`F(\cdot;\theta)` the CDF of a :math:`K`-component mixture (:class:`MixtureCDF`),
:math:`\theta_1` free parameters and :math:`\theta_2` the output of a Keras network of
:math:`x_1`.  The base is Uniform[0, 1]², whose log-density is 0 inside the square, and the
Jacobian is triangular, so the log-likelihood is the sum of the two conditional log-densities:

.. math:: \log p(x) = \log p(x_1;\theta_1) + \log p(x_2;\theta_2(x_1)).

Density evaluation is one network pass; sampling inverts :math:`z_1` first, then :math:`z_2`
given :math:`x_1` -- one pass per dimension, as in any autoregressive flow.  In ``D`` dimensions
the parameters of variable :math:`i` come from a MADE network (Germain et al. 2015) that sees
only :math:`x_{<i}`; for :math:`i = 1` it sees nothing, so :math:`\theta_1` is its bias.

Pieces:

- :class:`AutoregressiveMixtureCDF`, the bijector ``x -> z`` (data to the unit cube) for any
  *conditioner*: a callable mapping ``x`` of shape ``[..., D]`` to parameters of shape
  ``[..., D, 3K]`` whose row ``i`` depends on ``x[..., :i]`` only;
- :class:`~flowlab.conditioners.mixture.MixtureConditioner2D` (free :math:`\theta_1`, a Keras
  network for :math:`\theta_2`) and :class:`~flowlab.conditioners.mixture.MADEMixtureConditioner`
  (``D`` dimensions), both Keras layers, in :mod:`flowlab.conditioners.mixture`;
- :func:`~flowlab.flows.autoregressive_cdf.build_autoregressive_mixture_cdf`, the trainable
  ``tfd.TransformedDistribution``, in :mod:`flowlab.flows.autoregressive_cdf`.

The conditioners, :func:`initial_mixture_params`, the builder and :func:`uniform_base` are still
importable from here (their old home).

Example::

    flow = build_autoregressive_mixture_cdf(dims=2, num_components=5)
    model, history = flowlab.training.fit(flow, x_train, epochs=100)
    flow.log_prob(x_test); flow.sample(1000)

References: Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation"
(NeurIPS 2017); Germain et al., "MADE" (ICML 2015); Berkeley CS294-158 Deep Unsupervised Learning
(2019-2020), lecture 2 and homework 2 (autoregressive flow on 2-D data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.mixture_cdf import FAMILIES, MixtureCDF

# moved: the conditioners are Keras layers (flowlab.conditioners.mixture); re-exported, same objects.
from flowlab.conditioners.mixture import (  # noqa: F401  (_check_components: old private name)
    MADEMixtureConditioner,
    MixtureConditioner2D,
    _check_components,
    _check_dims,
    initial_mixture_params,
)

__all__ = [
    "AutoregressiveMixtureCDF",
    "MixtureConditioner2D",
    "MADEMixtureConditioner",
    "initial_mixture_params",
    "uniform_base",  # noqa: F822  (resolved by __getattr__ below)
    "build_autoregressive_mixture_cdf",  # noqa: F822
]

tfd, tfb = tfp.distributions, tfp.bijectors

# moved: the flow builder and its base live in flowlab.flows.autoregressive_cdf. flows imports
# bijectors, so importing it here at the top would be a cycle: resolve the old names on first use.
_MOVED_TO_FLOWS = ("uniform_base", "build_autoregressive_mixture_cdf")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_FLOWS:
        from flowlab.flows import autoregressive_cdf

        return getattr(autoregressive_cdf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MOVED_TO_FLOWS))


class AutoregressiveMixtureCDF(tfb.Bijector):
    r"""The bijector ``x -> z``: :math:`z_i = F(x_i;\ \theta_i(x_{<i}))` with mixture CDFs :math:`F`.

    Args:
      conditioner: maps ``x`` of shape ``[..., D]`` to parameters of shape ``[..., D, 3K]``
        (``[logits, locs, log_scales]`` on the last axis), row ``i`` depending on ``x[..., :i]``
        only -- e.g. :class:`MixtureConditioner2D` or :class:`MADEMixtureConditioner`.  Keep its
        weights in Keras layers so that a Keras model that owns the flow trains them.
      dims: ``D``; taken from ``conditioner.dims`` when not given.
      family: ``"gaussian"`` or ``"logistic"`` mixture components.

    ``forward`` (density direction) is one conditioner pass; ``inverse`` (sampling) takes ``D``
    passes, solving for :math:`x_1` first, then :math:`x_2` given :math:`x_1`, and so on.
    ``forward_log_det_jacobian`` is :math:`\sum_i \log p(x_i \mid x_{<i})`.  As a flow over a
    Uniform[0, 1]^D base it is used inverted: ``tfd.TransformedDistribution(uniform, tfb.Invert(b))``.

    Raises ``TypeError`` for a conditioner that is not callable, ``ValueError`` for an unknown
    family, a missing ``dims``, events of the wrong size or parameters of the wrong shape.

    >>> import flowlab, tensorflow as tf
    >>> from flowlab.conditioners.mixture import MADEMixtureConditioner
    >>> cdf = AutoregressiveMixtureCDF(MADEMixtureConditioner(3, num_components=2, hidden_units=(8,)))
    >>> z = cdf.forward(tf.constant([[0.3, -1.0, 2.0]]))                       # into the unit cube
    >>> bool(tf.reduce_all((z > 0) & (z < 1))), cdf.inverse(z).shape
    (True, TensorShape([1, 3]))
    """

    def __init__(
        self,
        conditioner: Callable[[tf.Tensor], tf.Tensor],
        dims: int | None = None,
        family: str = "gaussian",
        validate_args: bool = False,
        name: str = "AutoregressiveMixtureCDF",
    ) -> None:
        parameters = dict(locals())
        if not callable(conditioner):
            raise TypeError(f"conditioner must be callable (a Keras layer), got {type(conditioner).__name__}")
        if family not in FAMILIES:
            raise ValueError(f"AutoregressiveMixtureCDF: family must be one of {FAMILIES}, got {family!r}")
        dims = dims if dims is not None else getattr(conditioner, "dims", None)
        if dims is None:
            raise ValueError("AutoregressiveMixtureCDF needs dims: pass dims=D or "
                             "give the conditioner a .dims attribute")
        self._dims = _check_dims(dims)
        self._conditioner = conditioner
        self._family = family
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters, name=name)

    @property
    def conditioner(self) -> Callable[[tf.Tensor], tf.Tensor]:
        return self._conditioner

    @property
    def dims(self) -> int:
        return self._dims

    @classmethod
    def _is_increasing(cls) -> bool:
        return True

    def _check_event(self, x: tf.Tensor, what: str) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.shape.rank == 0 or (x.shape.rank is not None and x.shape[-1] not in (None, self._dims)):
            raise ValueError(
                f"AutoregressiveMixtureCDF.{what}: expected events of {self._dims} values "
                f"(shape [..., {self._dims}]), got shape {x.shape}")
        return x

    def _params(self, x: tf.Tensor) -> tf.Tensor:
        params = tf.convert_to_tensor(self._conditioner(x), dtype=x.dtype)
        if params.shape.rank is not None and (
            params.shape.rank < 2 or params.shape[-2] != self._dims
            or (params.shape[-1] or 0) % 3 or not params.shape[-1]
        ):
            raise ValueError(
                f"the conditioner returned parameters of shape {params.shape}; expected [..., {self._dims}, 3K] "
                "(K logits, K locations, K log-scales per variable)"
            )
        return params

    def mixtures(self, x: Any) -> MixtureCDF:
        """The elementwise :class:`MixtureCDF` of every variable given the others (batch ``[..., D]``)."""
        x = self._check_event(x, "mixtures")
        return MixtureCDF.from_params(self._params(x), family=self._family, validate_args=self.validate_args)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self.mixtures(x).forward(self._check_event(x, "forward"))

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        x = self._check_event(x, "forward_log_det_jacobian")
        return tf.reduce_sum(self.mixtures(x).forward_log_det_jacobian(x, event_ndims=0), axis=-1)

    def _inverse(self, z: tf.Tensor) -> tf.Tensor:
        z = self._check_event(z, "inverse")
        columns = [tf.zeros_like(z[..., 0]) for _ in range(self._dims)]
        for i in range(self._dims):
            # Row i of the parameters depends only on x_{<i}, which is already solved for.
            params = self._params(tf.stack(columns, axis=-1))[..., i, :]
            mixture = MixtureCDF.from_params(params, family=self._family, validate_args=self.validate_args)
            columns[i] = mixture.inverse(z[..., i])
        return tf.stack(columns, axis=-1)
