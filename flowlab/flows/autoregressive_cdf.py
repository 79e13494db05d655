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

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF
from flowlab.conditioners.mixture import MADEMixtureConditioner, MixtureConditioner2D, _check_dims

__all__ = ["uniform_base", "build_autoregressive_mixture_cdf"]

tfd, tfb = tfp.distributions, tfp.bijectors


def uniform_base(dims: int) -> tfd.Distribution:
    """Uniform[0, 1]^dims as one distribution over vectors."""
    return tfd.Independent(tfd.Uniform(low=tf.zeros([dims]), high=tf.ones([dims])), reinterpreted_batch_ndims=1)


def build_autoregressive_mixture_cdf(
    dims: int = 2,
    num_components: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    family: str = "gaussian",
    network: tf.keras.layers.Layer | None = None,
    conditioner: Callable[[tf.Tensor], tf.Tensor] | None = None,
    loc_range: Sequence[float] = (-3.0, 3.0),
    activation: str = "relu",
) -> tfd.TransformedDistribution:
    """A trainable autoregressive mixture-CDF flow over ``dims``-vectors with a Uniform[0, 1]^dims base.

    In 2-D the conditioner is :class:`MixtureConditioner2D` (``network``, when given, maps
    :math:`x_1` to :math:`\\theta_2`); in more dimensions a :class:`MADEMixtureConditioner`.  Pass
    ``conditioner`` to use your own.  ``loc_range`` should cover the data (standardise it
    otherwise).  Train it with :func:`flowlab.training.fit`.
    """
    dims = _check_dims(dims, 2)
    if conditioner is None:
        if dims == 2:
            conditioner = MixtureConditioner2D(num_components, network, hidden_units, activation, loc_range)
        else:
            if network is not None:
                raise ValueError("network= is the 2-D conditional network; in more dimensions pass conditioner=")
            conditioner = MADEMixtureConditioner(dims, num_components, hidden_units, activation, loc_range)
    elif network is not None:
        raise ValueError("pass either network= or conditioner=, not both")
    bijector = AutoregressiveMixtureCDF(conditioner, dims=dims, family=family)
    return tfd.TransformedDistribution(uniform_base(dims), tfb.Invert(bijector), name="AutoregressiveMixtureCDF")
