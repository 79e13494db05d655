r"""What every flow builder shares: a standard-normal base, reversals, and :func:`stack`, the layer stacker.

A flow of :math:`L` layers over vectors is

.. math:: x = f_L \circ \pi \circ f_{L-1} \circ \cdots \circ \pi \circ f_1(z), \qquad z \sim \mathcal N(0, I),

each layer :math:`f_l` followed by a permutation :math:`\pi` (a reversal) so that the variables a
layer leaves alone or conditions on come next in line.  The builders (MAF, IAF, RealNVP, NICE, NSF)
differ only in :math:`f_l`: they hand :func:`stack` a function that makes one layer.

Example::

    flow = stack(lambda i: made_layer(2), n_layers=3, dims=2, name="MAF")
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["standard_normal", "reverse_permutation", "check_dims", "check_layers", "built", "stack"]

tfd, tfb = tfp.distributions, tfp.bijectors


def check_dims(dims: int, minimum: int, flow: str) -> int:
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < minimum:
        raise ValueError(f"{flow} needs an event of at least {minimum} dimensions, got dims={dims!r}")
    return dims


def check_layers(n_layers: int) -> int:
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    return n_layers


def standard_normal(dims: int) -> tfd.Distribution:
    """:math:`\\mathcal N(0, I_d)` as a distribution over vectors of ``dims`` values."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros([dims]), scale_diag=tf.ones([dims]))


def reverse_permutation(dims: int) -> tfb.Permute:
    """Reverse the order of the variables, so the next layer conditions the other way round."""
    return tfb.Permute(permutation=list(reversed(range(dims))))


def built(flow: tfd.TransformedDistribution) -> tfd.TransformedDistribution:
    """Create the Keras conditioners' weights now, by one call of ``log_prob``.

    Keras layers make their weights on first call. Doing it here puts them in whatever
    ``tf.distribute`` strategy scope the builder runs in, and makes ``trainable_variables``
    complete as soon as the flow exists, before anyone evaluates it outside the scope.
    """
    flow.log_prob(tf.zeros([1, *flow.event_shape], dtype=flow.dtype))
    return flow


def stack(
    layer: Callable[[int], tfb.Bijector],
    n_layers: int,
    dims: int,
    name: str,
    between: Callable[[int], tfb.Bijector] | None = None,
    last: tfb.Bijector | None = None,
) -> tfd.TransformedDistribution:
    """``n_layers`` layers ``layer(i)`` over ``dims``-vectors, each followed by a reversal, on a standard normal.

    Args:
      layer: makes layer ``i`` (``0 <= i < n_layers``), in generative order (layer 0 acts first on
        the base sample).
      between: optionally makes a bijector that goes after layer ``i``'s reversal, e.g. a
        ``tfb.BatchNormalization`` (not after the last layer).
      last: optionally a bijector applied after everything (NICE's diagonal scaling).

    Returns the flow with its Keras weights built (:func:`built`).
    """
    check_layers(n_layers)
    bijectors: list[tfb.Bijector] = []
    for i in range(n_layers):
        bijectors += [layer(i), reverse_permutation(dims)]
        if between is not None and i < n_layers - 1:
            bijectors.append(between(i))
    if last is not None:
        bijectors.append(last)
    # tfb.Chain applies its list right to left: reverse it so the first layer built acts first on z.
    chain = tfb.Chain(list(reversed(bijectors)))
    return built(tfd.TransformedDistribution(standard_normal(dims), chain, name=name))
