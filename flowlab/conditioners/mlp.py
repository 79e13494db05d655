"""A multilayer perceptron conditioner for vector coupling layers (RealNVP, NICE)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["MLPConditioner"]


class MLPConditioner(tf.keras.layers.Layer):
    r"""Map the conditioning half :math:`x_{1:d}` to a shift and a bounded log-scale.

    .. math:: (t, s) = \mathrm{MLP}(x_{1:d}), \qquad \log\sigma = b \tanh(s / b)

    The output layer starts at zero, so a new coupling layer is the identity and a deep flow starts
    as its base distribution (Kingma & Dhariwal 2018, "zero initialisation").  The soft bound ``b``
    on the log-scale keeps early training from blowing up.

    Called as ``conditioner(x, output_units)``, the signature ``tfb.RealNVP`` expects of its
    ``shift_and_log_scale_fn``.  ``shift_only=True`` returns a zero log-scale (NICE, volume
    preserving).

    Example::

        fn = MLPConditioner(output_units=1, hidden_units=[64, 64])
        bijector = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=fn)
    """

    def __init__(
        self,
        output_units: int,
        hidden_units: Sequence[int] = (128, 128),
        activation: str = "relu",
        log_scale_bound: float = 3.0,
        shift_only: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if output_units < 1:
            raise ValueError(f"output_units must be at least 1, got {output_units}")
        if log_scale_bound <= 0:
            raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound}")
        self.output_units = int(output_units)
        self.log_scale_bound = float(log_scale_bound)
        self.shift_only = shift_only
        self.hidden = [tf.keras.layers.Dense(int(units), activation=activation) for units in hidden_units]
        self.out = tf.keras.layers.Dense(
            self.output_units * (1 if shift_only else 2), kernel_initializer="zeros", bias_initializer="zeros"
        )

    def call(self, x: tf.Tensor, output_units: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        if output_units is not None and int(output_units) != self.output_units:
            raise ValueError(
                f"this conditioner was built for {self.output_units} output units, "
                f"but the coupling layer asks for {output_units}"
            )
        h = x
        for layer in self.hidden:
            h = layer(h)
        params = self.out(h)
        if self.shift_only:
            return params, tf.zeros_like(params)
        shift, raw = tf.split(params, 2, axis=-1)
        return shift, self.log_scale_bound * tf.tanh(raw / self.log_scale_bound)
