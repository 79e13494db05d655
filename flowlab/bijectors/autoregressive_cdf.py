r"""Autoregressive mixture-CDF flows: each variable through a mixture CDF conditioned on those before it.

In two dimensions (the lectures' "2-D autoregressive flow"),

.. math::

    z_1 = F(x_1;\ \theta_1), \qquad z_2 = F(x_2;\ \theta_2(x_1)),

with :math:`F(\cdot;\theta)` the CDF of a :math:`K`-component mixture (:class:`MixtureCDF`),
:math:`\theta_1` free parameters and :math:`\theta_2` the output of a Keras network of
:math:`x_1`.  The base is Uniform[0, 1]², whose log-density is 0 inside the square, and the
Jacobian is triangular, so the log-likelihood is the sum of the two conditional log-densities:

.. math:: \log p(x) = \log p(x_1;\theta_1) + \log p(x_2;\theta_2(x_1)).

Density evaluation is one network pass; sampling inverts :math:`z_1` first, then :math:`z_2`
given :math:`x_1` -- one pass per dimension, as in any autoregressive flow.  In ``D`` dimensions
the parameters of variable :math:`i` come from a MADE network (Germain et al. 2015) that sees
only :math:`x_{<i}`; for :math:`i = 1` it sees nothing, so :math:`\theta_1` is its bias.

Pieces:

- :class:`AutoregressiveMixtureCDF`, the bijector ``x -> z`` (data to the unit cube) for any
  *conditioner*: a callable mapping ``x`` of shape ``[..., D]`` to parameters of shape
  ``[..., D, 3K]`` whose row ``i`` depends on ``x[..., :i]`` only;
- :class:`MixtureConditioner2D` (free :math:`\theta_1`, a Keras network for :math:`\theta_2`) and
  :class:`MADEMixtureConditioner` (``D`` dimensions), both Keras layers;
- :func:`build_autoregressive_mixture_cdf`, the trainable ``tfd.TransformedDistribution``.

Example::

    flow = build_autoregressive_mixture_cdf(dims=2, num_components=5)
    model, history = flowlab.training.fit(flow, x_train, epochs=100)
    flow.log_prob(x_test); flow.sample(1000)

References: Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation"
(NeurIPS 2017); Germain et al., "MADE" (ICML 2015); Berkeley CS294-158 Deep Unsupervised Learning
(2019-2020), lecture 2 and homework 2 (autoregressive flow on 2-D data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.mixture_cdf import FAMILIES, MixtureCDF

__all__ = [
    "AutoregressiveMixtureCDF",
    "MixtureConditioner2D",
    "MADEMixtureConditioner",
    "initial_mixture_params",
    "uniform_base",
    "build_autoregressive_mixture_cdf",
]

tfd, tfb = tfp.distributions, tfp.bijectors


def _check_components(num_components: Any) -> int:
    if not isinstance(num_components, (int, np.integer)) or isinstance(num_components, bool) or num_components < 1:
        raise ValueError(f"the mixture needs at least one component: num_components must be an integer >= 1, "
                         f"got {num_components!r}")
    return int(num_components)


def _check_dims(dims: Any, minimum: int = 1) -> int:
    if not isinstance(dims, (int, np.integer)) or isinstance(dims, bool) or dims < minimum:
        raise ValueError(f"dims must be an integer >= {minimum}, got {dims!r}")
    return int(dims)


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
    :math:`\theta_2(x_1)`), the layout :class:`AutoregressiveMixtureCDF` expects;
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
        r""":math:`\theta_2(x_1)`, shape ``[n, 3K]``, for ``x1`` of shape ``[n, 1]``."""
        x1 = tf.convert_to_tensor(x1, dtype=self.marginal.dtype)
        if x1.shape.rank is not None and (x1.shape.rank < 2 or x1.shape[-1] not in (None, 1)):
            raise ValueError(f"conditional_params needs x1 of shape (n, 1), got {x1.shape}")
        # Keras networks are built for (n, 1) inputs: flatten any sample/batch dimensions around the call.
        out = tf.convert_to_tensor(self.network(tf.reshape(x1, [-1, 1])))
        expected = 3 * self.num_components
        if out.shape.rank != 2 or out.shape[-1] != expected:
            raise ValueError(
                f"the conditional network returned {out.shape[-1] if out.shape.rank else '?'} values per point "
                f"(shape {out.shape}); it must return 3K = {expected}: K logits, K locations, K log-scales"
            )
        out = tf.reshape(out, tf.concat([tf.shape(x1)[:-1], [expected]], axis=0))
        return out + self._init

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
        return self.made(x) + self._init


class AutoregressiveMixtureCDF(tfb.Bijector):
    r"""The bijector ``x -> z``: :math:`z_i = F(x_i;\ \theta_i(x_{<i}))` with mixture CDFs :math:`F`.

    Args:
      conditioner: maps ``x`` of shape ``[..., D]`` to parameters of shape ``[..., D, 3K]``
        (``[logits, locs, log_scales]`` on the last axis), row ``i`` depending on ``x[..., :i]``
        only -- e.g. :class:`MixtureConditioner2D` or :class:`MADEMixtureConditioner`.  Keep its
        weights in Keras layers so that a Keras model that owns the flow trains them.
      dims: ``D``; taken from ``conditioner.dims`` when not given.
      family: ``"gaussian"`` or ``"logistic"`` mixture components.

    ``forward`` (density direction) is one conditioner pass; ``inverse`` (sampling) takes ``D``
    passes, solving for :math:`x_1` first, then :math:`x_2` given :math:`x_1`, and so on.
    ``forward_log_det_jacobian`` is :math:`\sum_i \log p(x_i \mid x_{<i})`.  As a flow over a
    Uniform[0, 1]^D base it is used inverted: ``tfd.TransformedDistribution(uniform, tfb.Invert(b))``.
    """

    def __init__(
        self,
        conditioner: Callable[[tf.Tensor], tf.Tensor],
        dims: int | None = None,
        family: str = "gaussian",
        validate_args: bool = False,
        name: str = "AutoregressiveMixtureCDF",
    ) -> None:
        parameters = dict(locals())
        if not callable(conditioner):
            raise TypeError(f"conditioner must be callable (a Keras layer), got {type(conditioner).__name__}")
        if family not in FAMILIES:
            raise ValueError(f"AutoregressiveMixtureCDF: family must be one of {FAMILIES}, got {family!r}")
        dims = dims if dims is not None else getattr(conditioner, "dims", None)
        if dims is None:
            raise ValueError("AutoregressiveMixtureCDF needs dims: pass dims=D or "
                             "give the conditioner a .dims attribute")
        self._dims = _check_dims(dims)
        self._conditioner = conditioner
        self._family = family
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters, name=name)

    @property
    def conditioner(self) -> Callable[[tf.Tensor], tf.Tensor]:
        return self._conditioner

    @property
    def dims(self) -> int:
        return self._dims

    @classmethod
    def _is_increasing(cls) -> bool:
        return True

    def _check_event(self, x: tf.Tensor, what: str) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.shape.rank == 0 or (x.shape.rank is not None and x.shape[-1] not in (None, self._dims)):
            raise ValueError(
                f"AutoregressiveMixtureCDF.{what}: expected events of {self._dims} values "
                f"(shape [..., {self._dims}]), got shape {x.shape}")
        return x

    def _params(self, x: tf.Tensor) -> tf.Tensor:
        params = tf.convert_to_tensor(self._conditioner(x), dtype=x.dtype)
        if params.shape.rank is not None and (
            params.shape.rank < 2 or params.shape[-2] != self._dims
            or (params.shape[-1] or 0) % 3 or not params.shape[-1]
        ):
            raise ValueError(
                f"the conditioner returned parameters of shape {params.shape}; expected [..., {self._dims}, 3K] "
                "(K logits, K locations, K log-scales per variable)"
            )
        return params

    def mixtures(self, x: Any) -> MixtureCDF:
        """The elementwise :class:`MixtureCDF` of every variable given the others (batch ``[..., D]``)."""
        x = self._check_event(x, "mixtures")
        return MixtureCDF.from_params(self._params(x), family=self._family, validate_args=self.validate_args)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self.mixtures(x).forward(self._check_event(x, "forward"))

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        x = self._check_event(x, "forward_log_det_jacobian")
        return tf.reduce_sum(self.mixtures(x).forward_log_det_jacobian(x, event_ndims=0), axis=-1)

    def _inverse(self, z: tf.Tensor) -> tf.Tensor:
        z = self._check_event(z, "inverse")
        columns = [tf.zeros_like(z[..., 0]) for _ in range(self._dims)]
        for i in range(self._dims):
            # Row i of the parameters depends only on x_{<i}, which is already solved for.
            params = self._params(tf.stack(columns, axis=-1))[..., i, :]
            mixture = MixtureCDF.from_params(params, family=self._family, validate_args=self.validate_args)
            columns[i] = mixture.inverse(z[..., i])
        return tf.stack(columns, axis=-1)


def uniform_base(dims: int) -> tfd.Distribution:
    """Uniform[0, 1]^dims as one distribution over vectors."""
    return tfd.Independent(tfd.Uniform(low=tf.zeros([dims]), high=tf.ones([dims])), reinterpreted_batch_ndims=1)


def build_autoregressive_mixture_cdf(
    dims: int = 2,
    num_components: int = 5,
    hidden_units: Sequence[int] = (64, 64),
    family: str = "gaussian",
    network: tf.keras.layers.Layer | None = None,
    conditioner: Callable[[tf.Tensor], tf.Tensor] | None = None,
    loc_range: Sequence[float] = (-3.0, 3.0),
    activation: str = "relu",
) -> tfd.TransformedDistribution:
    """A trainable autoregressive mixture-CDF flow over ``dims``-vectors with a Uniform[0, 1]^dims base.

    In 2-D the conditioner is :class:`MixtureConditioner2D` (``network``, when given, maps
    :math:`x_1` to :math:`\\theta_2`); in more dimensions a :class:`MADEMixtureConditioner`.  Pass
    ``conditioner`` to use your own.  ``loc_range`` should cover the data (standardise it
    otherwise).  Train it with :func:`flowlab.training.fit`.
    """
    dims = _check_dims(dims, 2)
    if conditioner is None:
        if dims == 2:
            conditioner = MixtureConditioner2D(num_components, network, hidden_units, activation, loc_range)
        else:
            if network is not None:
                raise ValueError("network= is the 2-D conditional network; in more dimensions pass conditioner=")
            conditioner = MADEMixtureConditioner(dims, num_components, hidden_units, activation, loc_range)
    elif network is not None:
        raise ValueError("pass either network= or conditioner=, not both")
    bijector = AutoregressiveMixtureCDF(conditioner, dims=dims, family=family)
    return tfd.TransformedDistribution(uniform_base(dims), tfb.Invert(bijector), name="AutoregressiveMixtureCDF")
