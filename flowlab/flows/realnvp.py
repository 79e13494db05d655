r"""Coupling flows for vectors: RealNVP (affine coupling, Dinh et al. 2017) and any other transformer.

Each layer leaves the first :math:`d` variables alone and transforms the rest with a shift and a
log-scale computed from them:

.. math:: y_{1:d} = x_{1:d}, \qquad y_{d+1:D} = x_{d+1:D} \exp(s(x_{1:d})) + t(x_{1:d})

Both directions are one network pass, so density evaluation and sampling are fast.  Layers are
separated by reversals so each half is transformed in turn.  The layer is flowlab's
:class:`~flowlab.bijectors.coupling.Coupling` with a mask and an affine transformer;
:func:`build_coupling_flow` swaps the transformer (NICE's additive one, a spline, Flow++'s mixture
CDF).  The conditioner is a Keras layer (:class:`~flowlab.conditioners.MLPConditioner`):
``tfb.real_nvp_default_template`` uses legacy ``tf.layers`` and fails inside Keras models on
TensorFlow 2.16+.

Example::

    flow = build_realnvp(2, n_layers=6)
    flow = build_coupling_flow(2, MixtureCDFTransformer(components=8), n_layers=6)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.coupling import Coupling
from flowlab.conditioners.mlp import MLPConditioner
from flowlab.flows.base import check_dims, stack
from flowlab.transformers import AffineTransformer, Transformer
from flowlab.validation import integers

__all__ = ["build_realnvp", "build_coupling_flow", "half_mask"]

tfd, tfb = tfp.distributions, tfp.bijectors


def half_mask(dims: int) -> np.ndarray:
    """``[1, ..., 1, 0, ..., 0]``: the first ``dims // 2`` variables condition, the rest are transformed."""
    return (np.arange(dims) < dims // 2).astype(np.float32)


def build_coupling_flow(
    dims: int,
    transformer: Transformer,
    n_layers: int = 6,
    hidden_units: Sequence[int] = (128, 128),
    activation: str = "relu",
    name: str = "CouplingFlow",
    between=None,
    last: Any = None,
    dtype: Any = tf.float32,
    init: str = "glorot",
) -> tfd.TransformedDistribution:
    """``n_layers`` couplings with ``transformer`` over ``dims``-vectors, each followed by a reversal.

    ``between`` and ``last``: see :func:`flowlab.flows.base.stack` (batch normalisation between
    layers, a final scaling).  ``dtype``: float32 (default) or float64.  ``init``: the conditioners'
    hidden layers, ``"glorot"`` or ``"uniform"`` (:class:`~flowlab.conditioners.MLPConditioner`); every
    layer starts as the identity either way (zero output layers).

    >>> import flowlab
    >>> from flowlab.transformers import SplineTransformer
    >>> flow = build_coupling_flow(2, SplineTransformer(bins=4), n_layers=2, hidden_units=(8,))
    >>> flow.log_prob([0.5, -1.0]).shape, flow.sample().shape
    (TensorShape([]), TensorShape([2]))
    """
    dims = check_dims(dims, 2, "a coupling flow")
    hidden_units = integers(hidden_units, "hidden_units")
    mask = half_mask(dims)

    def layer(i: int) -> tfb.Bijector:
        net = MLPConditioner(dims, hidden_units, activation, params_per_dim=transformer.params_per_dim, init=init)
        return Coupling(mask, net, transformer, name=f"coupling{i}")

    return stack(layer, n_layers, dims, name, between=between, last=last, dtype=dtype)


def build_realnvp(
    dims: int,
    n_layers: int = 6,
    hidden_units: Sequence[int] = (128, 128),
    activation: str = "relu",
    log_scale_bound: float = 3.0,
    dtype: Any = tf.float32,
    init: str = "glorot",
) -> tfd.TransformedDistribution:
    """A RealNVP over ``dims``-vectors: ``n_layers`` affine couplings, each followed by a reversal.

    ``init``: the conditioners' hidden layers, ``"glorot"`` or ``"uniform"`` (:func:`build_coupling_flow`).

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``n_layers``, ``hidden_units`` or ``dtype``.

    >>> import flowlab
    >>> flow = build_realnvp(3, n_layers=2, hidden_units=(8,))
    >>> flow.sample().shape, flow.sample(5).shape, flow.log_prob([0.1, 0.2, 0.3]).shape
    (TensorShape([3]), TensorShape([5, 3]), TensorShape([]))
    """
    dims = check_dims(dims, 2, "RealNVP")
    return build_coupling_flow(dims, AffineTransformer(log_scale_bound), n_layers, hidden_units, activation,
                               name="RealNVP", dtype=dtype, init=init)
