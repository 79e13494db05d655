r"""A small residual convolutional network: the conditioner of image coupling layers.

.. math::

    h_0 = \mathrm{conv}(x), \qquad h_{k+1} = h_k + \mathrm{conv}(\mathrm{relu}(\mathrm{conv}(\mathrm{relu}(h_k)))),
    \qquad (h^{(1)}, \dots, h^{(p)}) = \mathrm{conv}_0(\mathrm{relu}(h_K))

All convolutions are 3×3 with "same" padding, so the output has the input's height and width.
The last convolution :math:`\mathrm{conv}_0` starts at zero: a new coupling layer is the identity
(RealNVP, Dinh et al. 2016, uses deep ResNets like this one; zero initialisation is Glow's, Kingma &
Dhariwal 2018).  The outputs are raw: the coupling's transformer constrains them (the affine one
bounds the log-scale).  ``params_per_dim`` is the transformer's parameter count (2 for
``(shift, log_scale)``).

Example::

    net = ResNetConditioner(out_channels=1, filters=32, blocks=2)
    shift, log_scale = net(tf.zeros([8, 28, 28, 1]))        # each (8, 28, 28, 1)
"""

from __future__ import annotations

import tensorflow as tf

from flowlab.validation import integer

__all__ = ["ResNetConditioner"]


class ResNetConditioner(tf.keras.layers.Layer):
    """``(batch, H, W, C_in) ->`` ``params_per_dim`` tensors ``(batch, H, W, out_channels)`` (one if 1).

    Args:
      out_channels: channels of each output tensor (the event's channels).
      filters: channels of the hidden 3x3 convolutions.
      blocks: residual blocks (0: stem and head only).
      activation: a Keras activation name or callable.
      params_per_dim: the transformer's parameters per variable (2 for ``(shift, log_scale)``).

    Raises ``flowlab.validation.ArgumentError`` (a ``ValueError`` and a ``TypeError``) for counts that
    are not positive integers (``blocks`` may be 0), and ``ValueError`` for inputs that are not
    images ``(batch, height, width, channels)``.

    >>> import flowlab, tensorflow as tf
    >>> net = ResNetConditioner(out_channels=1, filters=4, blocks=1)
    >>> shift, log_scale = net(tf.ones([2, 6, 6, 1]))
    >>> shift.shape, float(tf.reduce_max(tf.abs(log_scale)))     # zero-initialised head: the identity
    (TensorShape([2, 6, 6, 1]), 0.0)
    >>> net(tf.ones([2, 36]))
    Traceback (most recent call last):
    ...
    ValueError: ...ResNetConditioner needs images (batch, height, width, channels), got shape (2, 36)
    ...

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (ICLR 2017), section 4.1;
    He, Zhang, Ren, Sun, "Deep residual learning for image recognition" (CVPR 2016).
    """

    def __init__(self, out_channels: int, filters: int = 32, blocks: int = 2, activation: str = "relu",
                 params_per_dim: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        out_channels, filters = integer(out_channels, "out_channels"), integer(filters, "filters")
        params_per_dim, blocks = integer(params_per_dim, "params_per_dim"), integer(blocks, "blocks", minimum=0)
        self.out_channels = out_channels
        self.params_per_dim = params_per_dim
        self.activation = tf.keras.activations.get(activation)
        conv = lambda units, **kw: tf.keras.layers.Conv2D(units, 3, padding="same", **kw)  # noqa: E731
        self.stem = conv(filters)
        self.blocks = [(conv(filters), conv(filters)) for _ in range(blocks)]
        self.head = conv(params_per_dim * out_channels, kernel_initializer="zeros", bias_initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
        if x.shape.rank != 4:
            raise ValueError(f"ResNetConditioner needs images (batch, height, width, channels), "
                             f"got shape {tuple(x.shape)}")
        h = self.stem(x)
        for first, second in self.blocks:
            h = h + second(self.activation(first(self.activation(h))))
        out = self.head(self.activation(h))
        if self.params_per_dim == 1:
            return out
        return tuple(tf.split(out, self.params_per_dim, axis=-1))
