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

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.validation import floating_dtype, integer

__all__ = ["standard_normal", "reverse_permutation", "check_dims", "check_layers", "keras_dtype", "built", "stack"]

tfd, tfb = tfp.distributions, tfp.bijectors


def check_dims(dims: Any, minimum: int, flow: str) -> int:
    """``dims`` as an ``int`` of at least ``minimum`` (:func:`flowlab.validation.integer`), naming the flow."""
    return integer(dims, "dims", minimum=minimum, why=f"{flow} needs an event of at least {minimum} dimensions")


def check_layers(n_layers: Any) -> int:
    return integer(n_layers, "n_layers")


@contextlib.contextmanager
def keras_dtype(dtype: Any) -> Iterator[tf.DType]:
    """Make the Keras layers created in the block compute in ``dtype`` (float32 or float64).

    A Keras layer fixes its dtype policy when it is made, from ``tf.keras.backend.floatx()``, and
    casts its inputs to it: a float32 conditioner inside a float64 flow would silently round every
    input to float32. The builders make their conditioners in this block.
    """
    name = floating_dtype(dtype)
    previous = tf.keras.backend.floatx()
    tf.keras.backend.set_floatx(name)
    try:
        yield tf.as_dtype(name)
    finally:
        tf.keras.backend.set_floatx(previous)


def standard_normal(dims: int, dtype: Any = tf.float32) -> tfd.Distribution:
    """:math:`\\mathcal N(0, I_d)` as a distribution over vectors of ``dims`` values."""
    dtype = tf.as_dtype(floating_dtype(dtype))
    return tfd.MultivariateNormalDiag(loc=tf.zeros([dims], dtype), scale_diag=tf.ones([dims], dtype))


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
    last: Callable[[], tfb.Bijector] | tfb.Bijector | None = None,
    dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """``n_layers`` layers ``layer(i)`` over ``dims``-vectors, each followed by a reversal, on a standard normal.

    Args:
      layer: makes layer ``i`` (``0 <= i < n_layers``), in generative order (layer 0 acts first on
        the base sample).
      between: optionally makes a bijector that goes after layer ``i``'s reversal, e.g. a
        ``tfb.BatchNormalization`` (not after the last layer).
      last: optionally a bijector applied after everything (NICE's diagonal scaling), or a
        function of no arguments that makes it (then made in ``dtype``).
      dtype: float32 or float64: the base's, and the Keras layers' the factories make.

    Returns the flow with its Keras weights built (:func:`built`).

    >>> import flowlab
    >>> from flowlab.flows.maf import made_layer
    >>> flow = stack(lambda i: made_layer(2, hidden_units=(8,)), n_layers=2, dims=2, name="MAF")
    >>> len(flow.bijector.bijectors), flow.log_prob([0.5, -1.0]).shape      # layer, reversal, layer, reversal
    (4, TensorShape([]))
    """
    n_layers = check_layers(n_layers)
    with keras_dtype(dtype) as dtype:
        bijectors: list[tfb.Bijector] = []
        for i in range(n_layers):
            bijectors += [layer(i), reverse_permutation(dims)]
            if between is not None and i < n_layers - 1:
                bijectors.append(between(i))
        if last is not None:
            bijectors.append(last() if callable(last) and not isinstance(last, tfb.Bijector) else last)
        # tfb.Chain applies its list right to left: reverse it so the first layer built acts first on z.
        chain = tfb.Chain(list(reversed(bijectors)))
        return built(tfd.TransformedDistribution(standard_normal(dims, dtype), chain, name=name))
