"""A multilayer perceptron conditioner for vector coupling layers (NICE, RealNVP, spline and mixture couplings)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from flowlab.conditioners.initializers import FanInUniform, check_init
from flowlab.validation import integer

__all__ = ["MLPConditioner"]


class MLPConditioner(tf.keras.layers.Layer):
    r"""Map the masked input to a transformer's parameters: ``params_per_dim`` tensors of ``output_units``.

    .. math:: (h^{(1)}, \dots, h^{(p)}) = \mathrm{MLP}(b \odot x)

    The output layer starts at zero, so a new coupling layer is the identity (every transformer in
    :mod:`flowlab.transformers` is the identity at zero parameters) and a deep flow starts as its base
    distribution (Kingma & Dhariwal 2018, "zero initialisation").  The outputs are raw: the
    transformer constrains them (the affine transformer bounds the log-scale,
    :func:`flowlab.transformers.bound_log_scale`).

    Returns a tuple of ``params_per_dim`` tensors ``(batch, output_units)`` (``(shift, log_scale)``
    for the default 2); one tensor for ``params_per_dim=1``.  ``shift_only=True`` is
    ``params_per_dim=1`` (NICE).  Also callable as ``conditioner(x, output_units)``, the signature
    ``tfb.RealNVP`` expects of its ``shift_and_log_scale_fn``.

    Args:
      output_units: the event's size ``D`` (one parameter of each kind per variable).
      hidden_units: widths of the hidden ``Dense`` layers.
      activation: the hidden layers' activation (a Keras name or callable).
      params_per_dim: the transformer's parameters per variable (2 for ``(shift, log_scale)``).
      shift_only: NICE's shift alone (``params_per_dim=1``).
      init: the hidden layers' start, ``"glorot"`` (Keras's: zero biases) or ``"uniform"`` (PyTorch's:
        kernels and biases on :math:`\pm 1/\sqrt{\text{fan-in}}`; random biases spread the units' bends
        over the data, which matters when the network reads one or two variables:
        :mod:`flowlab.conditioners.initializers`).

    Raises ``flowlab.validation.ArgumentError`` (a ``ValueError`` and a ``TypeError``) for an
    ``output_units`` or ``params_per_dim`` that is not a positive integer, and ``ValueError`` for an
    unknown ``init`` or when a coupling layer asks for a different ``output_units`` than it was built with.

    >>> import flowlab, tensorflow as tf
    >>> net = MLPConditioner(output_units=3, hidden_units=[8])
    >>> shift, log_scale = net(tf.ones([5, 3]))
    >>> shift.shape, float(tf.reduce_max(tf.abs(log_scale)))     # zero-initialised head: the identity
    (TensorShape([5, 3]), 0.0)
    >>> MLPConditioner(output_units=2, params_per_dim=23, hidden_units=[8])(tf.ones([1, 2]))[0].shape
    TensorShape([1, 2])
    >>> MLPConditioner(output_units=0)
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: output_units ...

    In a coupling layer: ``Coupling(alternating_mask(2), MLPConditioner(2, [64, 64], params_per_dim=23),
    SplineTransformer(bins=8))``.

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (ICLR 2017), section 3.3;
    zero initialisation: Kingma, Dhariwal, "Glow" (NeurIPS 2018), section 3.3.
    """

    def __init__(
        self,
        output_units: int,
        hidden_units: Sequence[int] = (128, 128),
        activation: str = "relu",
        params_per_dim: int = 2,
        shift_only: bool = False,
        init: str = "glorot",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        init = check_init(init)
        output_units = integer(output_units, "output_units")
        if shift_only:
            params_per_dim = 1
        params_per_dim = integer(params_per_dim, "params_per_dim")
        self.output_units = output_units
        self.params_per_dim = params_per_dim
        self.hidden = []
        fan_in = None  # the first layer's: the input's size, known in build()
        for units in hidden_units:
            start = {} if init == "glorot" else {"kernel_initializer": FanInUniform(),
                                                 "bias_initializer": FanInUniform(fan_in)}
            self.hidden.append(tf.keras.layers.Dense(int(units), activation=activation, **start))
            fan_in = int(units)
        self.out = tf.keras.layers.Dense(
            self.output_units * params_per_dim, kernel_initializer="zeros", bias_initializer="zeros"
        )

    def build(self, input_shape: tf.TensorShape) -> None:  # noqa: D102
        first = self.hidden[0].bias_initializer if self.hidden else None
        if isinstance(first, FanInUniform):
            first.fan_in = int(tf.TensorShape(input_shape)[-1])
        super().build(input_shape)

    def call(self, x: tf.Tensor, output_units: int | None = None) -> tf.Tensor | tuple[tf.Tensor, ...]:
        if output_units is not None and int(output_units) != self.output_units:
            raise ValueError(
                f"this conditioner was built for {self.output_units} output units, "
                f"but the coupling layer asks for {output_units}"
            )
        h = x
        for layer in self.hidden:
            h = layer(h)
        params = self.out(h)
        if self.params_per_dim == 1:
            return params
        return tuple(tf.split(params, self.params_per_dim, axis=-1))
