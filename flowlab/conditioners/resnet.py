r"""A small residual convolutional network: the conditioner of image coupling layers.

.. math::

    h_0 = \mathrm{conv}(x), \qquad h_{k+1} = h_k + \mathrm{conv}(\mathrm{relu}(\mathrm{conv}(\mathrm{relu}(h_k)))),
    \qquad (t, s) = \mathrm{conv}_0(\mathrm{relu}(h_K))

All convolutions are 3×3 with "same" padding, so the output has the input's height and width.
The last convolution :math:`\mathrm{conv}_0` starts at zero: a new coupling layer is the identity
(RealNVP, Dinh et al. 2016, uses deep ResNets like this one; zero initialisation is Glow's, Kingma &
Dhariwal 2018).  The coupling layer bounds the log-scale, not this network.

Example::

    net = ResNetConditioner(out_channels=1, filters=32, blocks=2)
    shift, log_scale = net(tf.zeros([8, 28, 28, 1]))        # each (8, 28, 28, 1)
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["ResNetConditioner"]


class ResNetConditioner(tf.keras.layers.Layer):
    """``(batch, H, W, C_in) -> (shift, log_scale)``, each ``(batch, H, W, out_channels)``."""

    def __init__(self, out_channels: int, filters: int = 32, blocks: int = 2, activation: str = "relu", **kwargs) -> None:
        super().__init__(**kwargs)
        for value, name in ((out_channels, "out_channels"), (filters, "filters")):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"blocks must be a non-negative integer, got {blocks!r}")
        self.out_channels = out_channels
        self.activation = tf.keras.activations.get(activation)
        conv = lambda units, **kw: tf.keras.layers.Conv2D(units, 3, padding="same", **kw)  # noqa: E731
        self.stem = conv(filters)
        self.blocks = [(conv(filters), conv(filters)) for _ in range(blocks)]
        self.head = conv(2 * out_channels, kernel_initializer="zeros", bias_initializer="zeros")

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if x.shape.rank != 4:
            raise ValueError(f"ResNetConditioner needs images (batch, height, width, channels), got shape {tuple(x.shape)}")
        h = self.stem(x)
        for first, second in self.blocks:
            h = h + second(self.activation(first(self.activation(h))))
        out = self.head(self.activation(h))
        shift, log_scale = tf.split(out, 2, axis=-1)
        return shift, log_scale
