"""What every flow builder shares: a standard-normal base and a reversing permutation."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["standard_normal", "reverse_permutation", "check_dims", "built"]

tfd, tfb = tfp.distributions, tfp.bijectors


def check_dims(dims: int, minimum: int, flow: str) -> int:
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < minimum:
        raise ValueError(f"{flow} needs an event of at least {minimum} dimensions, got dims={dims!r}")
    return dims


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
