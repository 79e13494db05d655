r"""Conditioners of the autoregressive mixture-CDF flow: Keras layers that output mixture parameters.

Both map ``x`` of shape ``[..., D]`` to parameters of shape ``[..., D, 3K]`` (``[logits, locs,
log_scales]`` of a ``K``-component mixture per variable) whose row ``i`` depends on ``x[..., :i]``
only, the layout :class:`~flowlab.bijectors.autoregressive_cdf.AutoregressiveMixtureCDF` expects:

- :class:`MixtureConditioner2D`: free :math:`\theta_1` and a Keras network for :math:`\theta_2(x_1)`
  (the lectures' 2-D autoregressive flow);
- :class:`MADEMixtureConditioner`: ``D`` dimensions, a MADE network (Germain et al. 2015).

Both start at :func:`initial_mixture_params`, a broad mixture spread over ``loc_range``.

>>> initial_mixture_params(3, (-1.0, 1.0)).reshape(3, 3)[1]   # the locations
array([-1.,  0.,  1.], dtype=float32)

The flow builder is :func:`flowlab.flows.autoregressive_cdf.build_autoregressive_mixture_cdf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.validation import integer

__all__ = ["MixtureConditioner2D", "MADEMixtureConditioner", "initial_mixture_params"]

tfb = tfp.bijectors


def _check_components(num_components: Any) -> int:
    return integer(num_components, "num_components", why="the mixture needs at least one component")


def _check_dims(dims: Any, minimum: int = 1) -> int:
    return integer(dims, "dims", minimum=minimum)


def initial_mixture_params(num_components: int, loc_range: Sequence[float] = (-3.0, 3.0)) -> np.ndarray:
    """Parameters ``[logits, locs, log_scales]`` (shape ``[3K]``) of a mixture spread over ``loc_range``.

    Equal weights, locations evenly spaced over the range, scales one component spacing wide: a
    broad, smooth starting density that covers the data instead of piling all components at 0.
    """
    k = _check_components(num_components)
    low, high = (float(v) for v in loc_range)
    if not high > low:
        raise ValueError(f"loc_range must be (low, high) with low < high, got {tuple(loc_range)}")
    locs = np.linspace(low, high, k) if k > 1 else np.array([0.5 * (low + high)])
    log_scales = np.full(k, np.log((high - low) / k))
    return np.concatenate([np.zeros(k), locs, log_scales]).astype(np.float32)


class MixtureConditioner2D(tf.keras.layers.Layer):
    r"""Parameters of the 2-D autoregressive mixture-CDF flow: free :math:`\theta_1`, and :math:`\theta_2(x_1)`.

    ``network`` is any Keras layer mapping :math:`x_1` of shape ``(n, 1)`` to ``(n, 3K)`` numbers
    (default: an MLP whose output layer starts at zero).  Its output is added to
    :func:`initial_mixture_params`, so a network that outputs zeros gives a broad mixture.

    ``call(x)`` returns parameters of shape ``[..., 2, 3K]`` (rows: :math:`\theta_1`,
    :math:`\theta_2(x_1)`), the layout :class:`~flowlab.bijectors.autoregressive_cdf.AutoregressiveMixtureCDF` expects;
    :meth:`marginal_params` and :meth:`conditional_params` give the two rows on their own.
    """

    dims = 2

    def __init__(
        self,
        num_components: int = 5,
        network: tf.keras.layers.Layer | None = None,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "relu",
        loc_range: Sequence[float] = (-3.0, 3.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_components = _check_components(num_components)
        self._init = initial_mixture_params(self.num_components, loc_range)
        if network is None:
            network = tf.keras.Sequential(
                [tf.keras.layers.Dense(int(units), activation=activation) for units in hidden_units]
                + [tf.keras.layers.Dense(3 * self.num_components, kernel_initializer="zeros", bias_initializer="zeros")]
            )
        elif not callable(network):
            raise TypeError(f"network must be a Keras layer (a callable), got {type(network).__name__}")
        self.network = network
        self.marginal = self.add_weight(
            name="theta1", shape=[3 * self.num_components], initializer=tf.keras.initializers.Constant(self._init)
        )

    def marginal_params(self) -> tf.Tensor:
        r""":math:`\theta_1`, shape ``[3K]``: ``[logits, locs, log_scales]`` of :math:`x_1`'s mixture."""
        return tf.convert_to_tensor(self.marginal)

    def conditional_params(self, x1: Any) -> tf.Tensor:
        r""":math:`\theta_2(x_1)`, shape ``[..., 3K]``, for ``x1`` of shape ``[..., 1]``."""
        x1 = tf.convert_to_tensor(x1, dtype=self.marginal.dtype)
        # (1,) is one unbatched event, as TFP distributions take them: parameters of shape (3K,).
        if x1.shape.rank is not None and (x1.shape.rank < 1 or x1.shape[-1] not in (None, 1)):
            raise ValueError(f"conditional_params needs x1 of shape (n, 1) or (1,), got {x1.shape}")
        # Keras networks are built for (n, 1) inputs: flatten any sample/batch dimensions around the call.
        out = tf.convert_to_tensor(self.network(tf.reshape(x1, [-1, 1])))
        expected = 3 * self.num_components
        if out.shape.rank != 2 or out.shape[-1] != expected:
            raise ValueError(
                f"the conditional network returned {out.shape[-1] if out.shape.rank else '?'} values per point "
                f"(shape {out.shape}); it must return 3K = {expected}: K logits, K locations, K log-scales"
            )
        out = tf.reshape(out, tf.concat([tf.shape(x1)[:-1], [expected]], axis=0))
        return out + tf.cast(self._init, out.dtype)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        theta2 = self.conditional_params(x[..., :1])
        theta1 = tf.broadcast_to(self.marginal_params(), tf.shape(theta2))
        return tf.stack([theta1, theta2], axis=-2)


class MADEMixtureConditioner(tf.keras.layers.Layer):
    r"""Parameters for ``dims`` mixture CDFs from a MADE network: row ``i`` depends on :math:`x_{<i}`.

    Wraps ``tfb.AutoregressiveNetwork(params=3K)`` (its output layer shrunk a hundredfold, so the
    flow starts close to the broad mixture of :func:`initial_mixture_params` in every dimension).
    """

    def __init__(
        self,
        dims: int,
        num_components: int = 5,
        hidden_units: Sequence[int] = (64, 64),
        activation: str = "relu",
        loc_range: Sequence[float] = (-3.0, 3.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dims = _check_dims(dims, 2)
        self.num_components = _check_components(num_components)
        self._init = initial_mixture_params(self.num_components, loc_range)
        self.made = tfb.AutoregressiveNetwork(
            params=3 * self.num_components,
            event_shape=[self.dims],
            hidden_units=list(hidden_units),
            activation=activation,
        )

    def build(self, input_shape: Any) -> None:
        self.made.build(input_shape)
        # Shrink the output layer so the flow starts near the broad mixture. Scaling (not zeroing) keeps
        # MADE's mask, which TFP stores as exact zeros in the kernel, visible in the weights.
        *_, last_kernel, last_bias = self.made.trainable_variables
        last_kernel.assign(1e-2 * last_kernel)
        last_bias.assign(tf.zeros_like(last_bias))
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.made(x) + tf.cast(self._init, x.dtype)
