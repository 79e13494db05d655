r"""ActNorm (Glow): a per-channel affine map whose initial values standardise the data.

.. math:: y = x \odot e^{s} + b, \qquad \log|\det J| = (\text{pixels}) \cdot \sum_c s_c

per channel :math:`c`, shared over the spatial positions (event shape ``(H, W, C)``) or, for
vectors (``(D,)``), per variable.  It plays batch normalisation's role in a flow without depending
on the batch: after **data-dependent initialisation** -- :math:`b` and :math:`s` set so that the
first batch comes out of the layer (in the data-to-latent direction) with zero mean and unit
variance -- it is an ordinary trainable affine layer.  Before initialisation it is the identity.

Example::

    norm = ActNorm(channels=4)
    flow = tfd.TransformedDistribution(base, tfb.Chain([..., norm, ...]))
    initialize_actnorm(flow, x_batch)   # once, eagerly, before training

Reference: D. P. Kingma, P. Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions" (2018).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.run_time_checks import finite
from flowlab.validation import floating_dtype, integer

__all__ = ["ActNorm", "initialize_actnorm"]

tfb = tfp.bijectors


class ActNorm(tfb.Bijector):
    """Per-channel ``y = x * exp(log_scale) + loc`` on events of ``event_ndims`` axes (last axis: channels).

    ``dtype``: the variables' float type, float32 or float64; by default Keras's ``floatx()``
    (float32 unless set), like a Keras layer's, so the image builders' ``dtype=`` reaches it.
    ``validate_args``: also check at run time that the inputs are finite.

    >>> import flowlab, numpy as np
    >>> norm = ActNorm(2, event_ndims=1, validate_args=True)
    >>> initialize_actnorm(norm, np.array([[0.0, 10.0], [2.0, 30.0]], np.float32))
    1
    >>> norm.inverse(np.array([[0.0, 10.0], [2.0, 30.0]], np.float32)).numpy().round(3)   # standardised
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> norm.inverse(np.array([[np.nan, 1.0]], np.float32))
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ... actnorm: the data holds NaN or infinite values ...

    Reference: Kingma, Dhariwal, "Glow" (NeurIPS 2018), section 3.1.
    """

    def __init__(self, channels: int, event_ndims: int = 3, validate_args: bool = False, name: str = "actnorm",
                 dtype: Any = None) -> None:
        parameters = dict(locals())
        channels = integer(channels, "channels")
        if event_ndims not in (1, 3):
            raise ValueError(f"event_ndims must be 1 (vectors) or 3 (images), got {event_ndims!r}")
        dtype = tf.as_dtype(floating_dtype(tf.keras.backend.floatx() if dtype is None else dtype))
        self._channels = channels
        self._ndims = event_ndims
        self._pending_init = False
        with tf.name_scope(name):
            self.loc = tf.Variable(tf.zeros([channels], dtype), name="loc")
            self.log_scale = tf.Variable(tf.zeros([channels], dtype), name="log_scale")
        super().__init__(forward_min_event_ndims=event_ndims, validate_args=validate_args,
                         parameters=parameters, name=name)

    def _check(self, x: tf.Tensor) -> None:
        if x.shape.rank is not None and (x.shape.rank < self._ndims or x.shape[-1] not in (None, self._channels)):
            raise ValueError(f"{self.name}: expected events of {self._ndims} axes ending in {self._channels} channels, "
                             f"got shape {tuple(x.shape)}")

    def _pixels(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)[tf.rank(x) - self._ndims : -1]
        return tf.cast(tf.reduce_prod(shape), x.dtype)

    def _checked(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """``x`` after the static shape check and, with ``validate_args``, a run-time finiteness check."""
        self._check(x)
        if self.validate_args:
            x = finite(x, self.name, what)
        return x

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        x = self._checked(x, "the latent")
        return x * tf.exp(self.log_scale) + self.loc

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        y = self._checked(y, "the data")
        if self._pending_init:
            axes = list(range(y.shape.rank - 1))
            mean, variance = tf.nn.moments(y, axes=axes)
            self.loc.assign(mean)
            self.log_scale.assign(0.5 * tf.math.log(variance + 1e-6))
            self._pending_init = False
        return (y - self.loc) * tf.exp(-self.log_scale)

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        return self._pixels(x) * tf.reduce_sum(self.log_scale)

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return -self._pixels(y) * tf.reduce_sum(self.log_scale)


def initialize_actnorm(distribution_or_bijector: Any, x: Any) -> int:
    """Data-dependent initialisation of every :class:`ActNorm` inside a flow; returns how many.

    Runs ``x`` (a batch of data) once through the flow in the data-to-latent direction, eagerly:
    each ActNorm, when the batch reaches it, sets its parameters so the batch leaves it
    standardised per channel.  Call it once before training.

    Args:
      distribution_or_bijector: a flow (``tfd.TransformedDistribution``, whose ``bijector`` is
        searched) or a bijector (a chain, or one ``ActNorm``).
      x: a batch of data, shape ``(batch, *event_shape)``; converted to the ActNorms' dtype.

    Raises ``RuntimeError`` inside ``tf.function`` (it must run eagerly).

    >>> import flowlab, numpy as np, tensorflow as tf, tensorflow_probability as tfp
    >>> tfb, tfd = tfp.bijectors, tfp.distributions
    >>> chain = tfb.Chain([tfb.Shift([1.0, 2.0]), ActNorm(2, event_ndims=1)])
    >>> flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), chain)
    >>> data = np.array([[0.0, 10.0], [4.0, 30.0]], np.float32)
    >>> initialize_actnorm(flow, data)
    1
    >>> flow.bijector.inverse(data).numpy().round(3)      # the data leaves the flow standardised
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> tf.function(lambda: initialize_actnorm(flow, data), autograph=False)()
    Traceback (most recent call last):
    ...
    RuntimeError: initialize_actnorm must run eagerly (not inside tf.function)

    Reference: Kingma, Dhariwal, "Glow" (NeurIPS 2018), section 3.1.
    """
    if not tf.executing_eagerly():
        raise RuntimeError("initialize_actnorm must run eagerly (not inside tf.function)")
    bijector = getattr(distribution_or_bijector, "bijector", distribution_or_bijector)
    layers = [m for m in bijector.submodules if isinstance(m, ActNorm)]
    if isinstance(bijector, ActNorm):
        layers.append(bijector)
    dtype = layers[0].loc.dtype if layers else tf.float32
    for layer in layers:
        layer._pending_init = True
    try:
        # A fresh tensor: the bijector caches results per input tensor.
        bijector.inverse(tf.identity(tf.convert_to_tensor(x, dtype=dtype)))
    finally:
        for layer in layers:
            layer._pending_init = False
    return len(layers)
