r"""NICE (Dinh, Krueger & Bengio 2014): additive couplings and a final diagonal scaling.

An additive coupling moves the transformed half by a shift computed from the other half,

.. math:: y_{1:d} = x_{1:d}, \qquad y_{d+1:D} = x_{d+1:D} + t(x_{1:d}),

so its Jacobian is triangular with ones on the diagonal: :math:`\log|\det J| = 0`, the layer
preserves volume.  A stack of them can only *move* probability mass, never concentrate it: the
density of :math:`x` is the base density at :math:`f^{-1}(x)`, at most :math:`(2\pi)^{-D/2}`, so
in 2-D no point is ever more likely than :math:`1/(2\pi)` -- a negative log-likelihood of at least
:math:`\log 2\pi \approx 1.84` nats, far from two moons' 0.30.  NICE therefore ends with a
diagonal scaling :math:`x \mapsto e^{s} \odot x` (trainable :math:`s`, log-det :math:`\sum_i s_i`), the
only place the model can change volume -- one global stretch per variable, the same everywhere.

Example::

    flow = build_nice(2, n_layers=4)                   # with the scaling
    flow = build_nice(2, n_layers=4, scaling=False)    # volume preserving: NLL >= log(2 pi)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows.base import check_dims
from flowlab.flows.realnvp import build_coupling_flow
from flowlab.transformers import AdditiveTransformer

__all__ = ["build_nice"]

tfd, tfb = tfp.distributions, tfp.bijectors


def build_nice(
    dims: int,
    n_layers: int = 4,
    hidden_units: Sequence[int] = (128, 128),
    activation: str = "relu",
    scaling: bool = True,
    dtype: Any = tf.float32,
    init: str = "glorot",
) -> tfd.TransformedDistribution:
    """NICE over ``dims``-vectors: ``n_layers`` additive couplings (each followed by a reversal), then a scaling.

    ``scaling=False`` leaves the flow volume preserving (log-det 0 everywhere).  ``dtype``: float32
    (default) or float64.  ``init``: the conditioners' hidden layers, ``"glorot"`` or ``"uniform"``
    (:func:`~flowlab.flows.realnvp.build_coupling_flow`).

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``n_layers``, ``hidden_units`` or ``dtype``.

    >>> import flowlab
    >>> flow = build_nice(2, n_layers=2, hidden_units=(8,), scaling=False)
    >>> float(flow.bijector.forward_log_det_jacobian([0.5, -1.0], event_ndims=1))   # volume preserving
    0.0

    Reference: Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation" (2015).
    """
    dims = check_dims(dims, 2, "NICE")

    def scale() -> tfb.Bijector:  # made by the builder, in the flow's dtype
        log_scale = tf.Variable(tf.zeros([dims], tf.keras.backend.floatx()), name="nice_log_scale")
        return tfb.Scale(log_scale=log_scale, name="scaling")

    return build_coupling_flow(dims, AdditiveTransformer(), n_layers, hidden_units, activation, name="NICE",
                               last=scale if scaling else None, dtype=dtype, init=init)
