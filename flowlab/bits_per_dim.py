r"""Bits per dimension: the unit image density models are compared in.

For an image of :math:`D` 8-bit values and a model of the dequantized, rescaled data
:math:`y = (x + u) / 256 \in [0, 1)^D` with log-density :math:`\log p(y)` (in nats),

.. math::

    \text{bits/dim} = \frac{-\big(\log p(y) - D \log 256\big)}{D \log 2}
                    = -\frac{\log p(y)}{D \log 2} + 8 .

The :math:`- D \log 256` is the log-det of dividing by 256 (see
:mod:`flowlab.bijectors.dequantize`): it turns the density on :math:`[0, 1)^D` back into a density
on pixel space :math:`[0, 256)^D`, whose unit-volume bins make it an upper bound on the discrete
code length.  A uniform model scores exactly 8 bits/dim; RealNVP reaches 1.06 on MNIST.

Example::

    bits_per_dim(flow.log_prob(y), num_dims=28 * 28)          # per image
    model.compile(optimizer, loss, metrics=[BitsPerDim(784)])
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from flowlab.validation import integer

__all__ = ["bits_per_dim", "BitsPerDim"]


def _check(num_dims: Any, num_levels: Any) -> tuple[int, int]:
    return (integer(num_dims, "num_dims", why="values per example"),
            integer(num_levels, "num_levels", why="1: the density is already in pixel space"))


def bits_per_dim(log_prob: Any, num_dims: int, num_levels: int = 256) -> tf.Tensor:
    """Bits per dimension of each example from its log-density (nats) of ``(x + u) / num_levels``.

    ``num_levels=1`` when ``log_prob`` is already a density of pixel values ``x + u``.

    >>> import flowlab
    >>> float(bits_per_dim(0.0, num_dims=784))           # a uniform density on [0, 1)^784: 8 bits/dim
    8.0
    >>> round(float(bits_per_dim(-784 * math.log(2.0), num_dims=784, num_levels=1)), 6)
    1.0
    """
    num_dims, num_levels = _check(num_dims, num_levels)
    log_prob = tf.convert_to_tensor(log_prob, dtype_hint=tf.float32)
    log_prob = tf.cast(log_prob, tf.float32) if not log_prob.dtype.is_floating else log_prob
    return -log_prob / (num_dims * math.log(2.0)) + math.log2(num_levels)


class BitsPerDim(tf.keras.metrics.Mean):
    """Keras metric: mean bits/dim of a density model whose output (``y_pred``) is ``log_prob``.

    >>> metric = BitsPerDim(784)
    >>> _ = metric.update_state(None, [0.0, 0.0])
    >>> float(metric.result())
    8.0
    """

    def __init__(self, num_dims: int, num_levels: int = 256, name: str = "bits_per_dim", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_dims, self.num_levels = _check(num_dims, num_levels)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        del y_true  # density models have no targets
        return super().update_state(bits_per_dim(y_pred, self.num_dims, self.num_levels), sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_dims": self.num_dims, "num_levels": self.num_levels}
