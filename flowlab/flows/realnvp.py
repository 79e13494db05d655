r"""RealNVP for vectors: affine coupling layers (Dinh et al. 2017) built on ``tfb.RealNVP``.

Each layer leaves the first :math:`d` variables alone and transforms the rest with a shift and a
log-scale computed from them:

.. math:: y_{1:d} = x_{1:d}, \qquad y_{d+1:D} = x_{d+1:D} \exp(s(x_{1:d})) + t(x_{1:d})

Both directions are one network pass, so density evaluation and sampling are fast.  Layers are
separated by reversals so each half is transformed in turn.  The conditioner is a Keras layer
(:class:`~flowlab.conditioners.MLPConditioner`): ``tfb.real_nvp_default_template`` uses legacy
``tf.layers`` and fails inside Keras models on TensorFlow 2.16+.

Example::

    flow = build_realnvp(2, n_layers=6)
"""

from __future__ import annotations

from typing import Sequence

import tensorflow_probability as tfp

from flowlab.conditioners.mlp import MLPConditioner
from flowlab.flows.base import built, check_dims, reverse_permutation, standard_normal

__all__ = ["build_realnvp"]

tfd, tfb = tfp.distributions, tfp.bijectors


def build_realnvp(
    dims: int,
    n_layers: int = 6,
    hidden_units: Sequence[int] = (128, 128),
    activation: str = "relu",
    log_scale_bound: float = 3.0,
) -> tfd.TransformedDistribution:
    """A RealNVP over ``dims``-vectors: ``n_layers`` affine couplings, each followed by a reversal."""
    check_dims(dims, 2, "RealNVP")
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    num_masked = dims // 2
    bijectors: list[tfb.Bijector] = []
    for _ in range(n_layers):
        conditioner = MLPConditioner(dims - num_masked, hidden_units, activation, log_scale_bound)
        bijectors += [tfb.RealNVP(num_masked=num_masked, shift_and_log_scale_fn=conditioner), reverse_permutation(dims)]
    flow = tfd.TransformedDistribution(standard_normal(dims), tfb.Chain(list(reversed(bijectors))), name="RealNVP")
    return built(flow)
