r"""The autoregressive mixture-CDF flow: :func:`build_autoregressive_mixture_cdf` over a uniform base.

The bijector is :class:`~flowlab.bijectors.autoregressive_cdf.AutoregressiveMixtureCDF` (data to
the unit cube, each variable through a mixture CDF conditioned on those before it); its
conditioners are in :mod:`flowlab.conditioners.mixture`.  The base is :func:`uniform_base`,
Uniform[0, 1]^D, whose log-density is 0 inside the cube.

Example::

    flow = build_autoregressive_mixture_cdf(dims=2, num_components=5)
    model, history = flowlab.training.fit(flow, x_train, epochs=100)
    flow.log_prob(x_test); flow.sample(1000)

>>> uniform_base(2).event_shape
TensorShape([2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF
from flowlab.conditioners.mixture import MADEMixtureConditioner, MixtureConditioner2D
from flowlab.flows.base import check_dims, keras_dtype
from flowlab.validation import floating_dtype, integers

__all__ = ["uniform_base", "build_autoregressive_mixture_cdf"]

tfd, tfb = tfp.distributions, tfp.bijectors


def uniform_base(dims: int, dtype: Any = tf.float32) -> tfd.Distribution:
    """Uniform[0, 1]^dims as one distribution over vectors."""
    dtype = tf.as_dtype(floating_dtype(dtype))
    return tfd.Independent(tfd.Uniform(low=tf.zeros([dims], dtype), high=tf.ones([dims], dtype)),
                           reinterpreted_batch_ndims=1)


def build_autoregressive_mixture_cdf(
    dims: int = 2,
    num_components: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    family: str = "gaussian",
    network: tf.keras.layers.Layer | None = None,
    conditioner: Callable[[tf.Tensor], tf.Tensor] | None = None,
    loc_range: Sequence[float] = (-3.0, 3.0),
    activation: str = "relu",
    dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """A trainable autoregressive mixture-CDF flow over ``dims``-vectors with a Uniform[0, 1]^dims base.

    In 2-D the conditioner is :class:`MixtureConditioner2D` (``network``, when given, maps
    :math:`x_1` to :math:`\\theta_2`); in more dimensions a :class:`MADEMixtureConditioner`.  Pass
    ``conditioner`` to use your own.  ``loc_range`` should cover the data (standardise it
    otherwise).  ``dtype``: float32 (default) or float64, the base's and the conditioner's (a
    ``conditioner`` of your own must compute in it).  Events may be batched or single, as for any
    TFP distribution.  Train it with :func:`flowlab.training.fit`.

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``num_components``, ``hidden_units``
            or ``dtype``.
        ValueError: ``network=`` in more than two dimensions, or with ``conditioner=``.

    >>> import flowlab
    >>> flow = build_autoregressive_mixture_cdf(2, num_components=3, hidden_units=(8,))
    >>> flow.log_prob([0.5, -1.0]).shape, flow.log_prob([[0.5, -1.0], [0.0, 0.3]]).shape
    (TensorShape([]), TensorShape([2]))

    Reference: Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation"
    (NeurIPS 2017); Berkeley CS294-158 (2019-2020), homework 2.
    """
    dims = check_dims(dims, 2, "an autoregressive mixture-CDF flow")
    hidden_units = integers(hidden_units, "hidden_units")
    if conditioner is not None and network is not None:
        raise ValueError("pass either network= or conditioner=, not both")
    if dims > 2 and network is not None:
        raise ValueError("network= is the 2-D conditional network; in more dimensions pass conditioner=")
    with keras_dtype(dtype) as dtype:
        if conditioner is None:
            conditioner = (MixtureConditioner2D(num_components, network, hidden_units, activation, loc_range)
                           if dims == 2 else
                           MADEMixtureConditioner(dims, num_components, hidden_units, activation, loc_range))
        bijector = AutoregressiveMixtureCDF(conditioner, dims=dims, family=family)
        # Not built here (unlike the other builders): the Keras weights are made on the first
        # log_prob, where the labs' seeded runs have always made them.
        return tfd.TransformedDistribution(uniform_base(dims, dtype), tfb.Invert(bijector),
                                           name="AutoregressiveMixtureCDF")
