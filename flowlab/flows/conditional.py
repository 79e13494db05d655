r"""Conditional flows: a density :math:`p(x \mid c)` of an event :math:`x` given a context vector :math:`c`.

Each layer's conditioner -- the network that computes the transformer's parameters -- also reads
the context.  In an autoregressive layer a MADE network (Germain et al. 2015) sees :math:`x_{<i}`
and the context in every hidden layer (``tfb.AutoregressiveNetwork(conditional=True)``):

.. math:: x_i = \tau\big(z_i;\ \theta_i(x_{<i}, c)\big), \qquad
          \log p(x \mid c) = \log p_Z(z) - \sum_i \log \left|\frac{\partial \tau}{\partial z_i}\right|

with :math:`\tau` affine (conditional MAF, Papamakarios et al. 2017, section 3.4) or a monotone
rational-quadratic spline (conditional neural spline flow, Durkan et al. 2019).  In a coupling
layer (conditional RealNVP, as in Ardizzone et al. 2019's conditional invertible networks) an MLP
reads the copied half and the context, :math:`y_B = x_B e^{s(x_A, c)} + t(x_A, c)`.  Either way the
Jacobian stays triangular whatever the context does, so one flow models a whole family of densities
-- a simulator's outputs given its parameters (neural posterior/likelihood estimation), a
detector's response given the true energy.

Train with ``flowlab.training.fit(flow, x, context=c, ...)``; evaluate ``flow.log_prob(x, c)``;
draw ``flow.sample(n, context=c)``.

>>> import flowlab, numpy as np
>>> flowlab.seed(0)
>>> flow = build_conditional_maf(2, context_dims=1, n_layers=2, hidden_units=(8,))
>>> flow.log_prob(np.zeros((3, 2), np.float32), np.ones((3, 1), np.float32)).shape
TensorShape([3])
>>> flow.sample(5, context=[0.5]).shape
TensorShape([5, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.coupling import Coupling
from flowlab.conditioners.mlp import MLPConditioner
from flowlab.flows.base import keras_dtype
from flowlab.flows.realnvp import half_mask
from flowlab.transformers import AffineTransformer
from flowlab.validation import integer, integers

__all__ = ["ConditionalFlow", "ConditionalCoupling", "build_conditional_maf", "build_conditional_nsf",
           "build_conditional_realnvp"]

tfd, tfb = tfp.distributions, tfp.bijectors

# The smallest spline bin width, height and knot slope (as in flowlab.flows.nsf): strictly monotone.
_MIN = 1e-3


class ConditionalMADE(tf.keras.layers.Layer):
    r"""MADE with a context input, giving a shift and a softly bounded log-scale :math:`b\tanh(\alpha/b)`."""

    def __init__(self, dims: int, context_dims: int, hidden_units: Sequence[int], activation: str = "relu",
                 bound: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bound = float(bound)
        self.network = tfb.AutoregressiveNetwork(
            params=2, event_shape=[dims], conditional=True, conditional_event_shape=[context_dims],
            hidden_units=list(hidden_units), activation=activation)

    def call(self, x: tf.Tensor, conditional_input: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        shift, log_scale = tf.unstack(self.network(x, conditional_input=conditional_input), axis=-1)
        return shift, self.bound * tf.tanh(log_scale / self.bound)


class ConditionalSpline(tf.Module):
    """``bijector_fn`` of a ``tfb.MaskedAutoregressiveFlow``: MADE(x, context) -> a spline per variable."""

    def __init__(self, dims: int, context_dims: int, bins: int, bound: float, hidden_units: Sequence[int],
                 activation: str = "relu", name: str | None = None) -> None:
        super().__init__(name=name)
        self.bins, self.bound = bins, float(bound)
        self.network = tfb.AutoregressiveNetwork(
            params=3 * bins - 1, event_shape=[dims], conditional=True, conditional_event_shape=[context_dims],
            hidden_units=list(hidden_units), activation=activation)

    def __call__(self, x: tf.Tensor, conditional_input: tf.Tensor | None = None, **kwargs: Any) -> tfb.Bijector:
        params = self.network(x, conditional_input=conditional_input)
        k, width = self.bins, 2 * self.bound

        def sizes(logits: tf.Tensor) -> tf.Tensor:  # positive, at least _MIN, summing to the interval's width
            return tf.math.softmax(logits, axis=-1) * (width - k * _MIN) + _MIN

        return tfb.RationalQuadraticSpline(
            bin_widths=sizes(params[..., :k]), bin_heights=sizes(params[..., k:2 * k]),
            knot_slopes=tf.math.softplus(params[..., 2 * k:]) + _MIN, range_min=-self.bound)


class ConditionalCoupling(Coupling):
    r"""A coupling whose conditioner reads the copied variables and a context: :math:`h(b \odot x, c)`.

    ``conditioner`` maps the pair ``(b * x, context)``, shaped ``(batch, *event_shape)`` and
    ``(batch, context_dims)``, to the transformer's parameters, as a
    :class:`~flowlab.bijectors.coupling.Coupling`'s does from ``b * x`` alone.  The context comes in
    as the bijector keyword ``conditional_input`` (``flow.log_prob(x, bijector_kwargs={name:
    {"conditional_input": c}})``; :class:`ConditionalFlow` passes it), broadcast against the batch.
    """

    def _context_params(self, x: tf.Tensor, conditional_input: Any) -> tfb.Bijector:
        if conditional_input is None:
            raise ValueError(f"{self.name}: a conditional coupling needs its context (conditional_input)")
        self._check_shape(x)
        event = list(self._event_shape)
        batch_shape = tf.shape(x)[: tf.rank(x) - len(event)]
        context = tf.cast(conditional_input, x.dtype)
        context = tf.broadcast_to(context, tf.concat([batch_shape, tf.shape(context)[-1:]], axis=0))
        flat = tf.reshape(x * tf.constant(self._mask_np, dtype=x.dtype), [-1, *event])
        out = self._conditioner((flat, tf.reshape(context, [tf.shape(flat)[0], -1])))
        params = self._stacked(self._params_from(out), x.dtype)
        params = tf.reshape(params, tf.concat([batch_shape, event, [self._transformer.params_per_dim]], axis=0))
        return self._transformer(params)

    # As Coupling's, with the context: the log-det is stored in the cache entry of (input, context).
    def _forward(self, x: tf.Tensor, conditional_input: Any = None) -> tf.Tensor:
        tau = self._context_params(x, conditional_input)
        log_det = tf.broadcast_to(tau.forward_log_det_jacobian(x, event_ndims=0), tf.shape(x))
        self._cache.forward_attributes(x, conditional_input=conditional_input)["ildj"] = -self._sum_event(log_det)
        return tf.where(tf.constant(self._mask_np > 0), x, tau.forward(x))

    def _inverse(self, y: tf.Tensor, conditional_input: Any = None) -> tf.Tensor:
        tau = self._context_params(y, conditional_input)
        log_det = tf.broadcast_to(tau.inverse_log_det_jacobian(y, event_ndims=0), tf.shape(y))
        self._cache.inverse_attributes(y, conditional_input=conditional_input)["ildj"] = self._sum_event(log_det)
        return tf.where(tf.constant(self._mask_np > 0), y, tau.inverse(y))

    def _forward_log_det_jacobian(self, x: tf.Tensor, conditional_input: Any = None) -> tf.Tensor:
        attrs = self._cache.forward_attributes(x, conditional_input=conditional_input)
        if "ildj" not in attrs:
            self._forward(x, conditional_input)
        return -attrs["ildj"]

    def _inverse_log_det_jacobian(self, y: tf.Tensor, conditional_input: Any = None) -> tf.Tensor:
        attrs = self._cache.inverse_attributes(y, conditional_input=conditional_input)
        if "ildj" not in attrs:
            self._inverse(y, conditional_input)
        return attrs["ildj"]


class ContextMLP(tf.keras.layers.Layer):
    """``(b * x, context) -> `` an :class:`~flowlab.conditioners.mlp.MLPConditioner` on their concatenation."""

    def __init__(self, dims: int, hidden_units: Sequence[int], activation: str = "relu", params_per_dim: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlp = MLPConditioner(dims, hidden_units, activation, params_per_dim=params_per_dim)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> Any:
        masked, context = inputs
        return self.mlp(tf.concat([masked, tf.cast(context, masked.dtype)], axis=-1))


class ConditionalFlow(tf.Module):
    """A flow :math:`p(x \\mid c)`: a ``tfd.TransformedDistribution`` whose named layers read a context.

    ``log_prob(x, context)`` takes ``x`` of shape ``(n, dims)`` (or ``(dims,)``) and a context of
    shape ``(n, context_dims)``, or ``(context_dims,)`` for one context shared by every event.
    ``sample(n, context)``: ``n`` draws at one context ``(context_dims,)``, or one draw per row of
    a context ``(n, context_dims)``; ``sample(context=c)`` with one context: one event ``(dims,)``.
    """

    def __init__(self, distribution: tfd.TransformedDistribution, conditional_layers: Sequence[str],
                 context_dims: int, name: str = "ConditionalFlow") -> None:
        super().__init__(name=name)
        self.distribution = distribution
        self.conditional_layers = tuple(conditional_layers)
        self.context_dims = integer(context_dims, "context_dims")

    @property
    def event_shape(self) -> tf.TensorShape:
        return self.distribution.event_shape

    @property
    def dtype(self) -> tf.DType:
        return self.distribution.dtype

    def _kwargs(self, context: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        return {name: {"conditional_input": context} for name in self.conditional_layers}

    def _context(self, context: Any, rows: tf.Tensor | int | None) -> tf.Tensor:
        context = tf.convert_to_tensor(context, dtype_hint=self.dtype)
        context = tf.cast(context, self.dtype)
        if context.shape.rank is not None and context.shape.rank >= 1 and context.shape[-1] != self.context_dims:
            raise ValueError(f"the context has shape {tuple(context.shape)}, but this flow's contexts have "
                             f"{self.context_dims} values: expected (n, {self.context_dims}) or ({self.context_dims},)")
        if context.shape.rank == 1 and rows is not None:  # one context for every event
            context = tf.tile(context[tf.newaxis], tf.stack([rows, 1]))
        return context

    def log_prob(self, x: Any, context: Any) -> tf.Tensor:
        """:math:`\\log p(x \\mid c)` in nats, one value per event."""
        x = tf.cast(tf.convert_to_tensor(x, dtype_hint=self.dtype), self.dtype)
        if x.shape.rank == 1:
            return self.log_prob(x[tf.newaxis], context)[0]
        context = self._context(context, tf.shape(x)[0])
        return self.distribution.log_prob(x, bijector_kwargs=self._kwargs(context))

    def prob(self, x: Any, context: Any) -> tf.Tensor:
        return tf.exp(self.log_prob(x, context))

    def sample(self, n: int | None = None, context: Any = None, seed: Any = None) -> tf.Tensor:
        """Draws of :math:`x \\sim p(x \\mid c)`: ``(n, dims)``; for ``n=None`` and one context, one ``(dims,)``."""
        if context is None:
            raise ValueError("a conditional flow samples given a context: sample(n, context=c)")
        context = self._context(context, None)
        if context.shape.rank == 1 and n is None:  # one draw, unbatched, as a TFP distribution's sample()
            return self.sample(1, context, seed=seed)[0]
        if context.shape.rank == 1:
            n = integer(n, "n")
            context = tf.tile(context[tf.newaxis], [n, 1])
        elif n is not None and integer(n, "n") != context.shape[0]:
            raise ValueError(f"sample(n={n}) with a context of {context.shape[0]} rows: pass n=None (one draw per "
                             "row), or one context of shape (context_dims,) for n draws at it")
        return self.distribution.sample(tf.shape(context)[0], seed=seed, bijector_kwargs=self._kwargs(context))


def _build(dims: Any, context_dims: Any, n_layers: Any, make_layer: Any, name: str, dtype: Any = tf.float32,
           minimum_dims: int = 1) -> ConditionalFlow:
    what = f"a {name[len('Conditional'):]} flow" if minimum_dims > 1 else ""
    dims = integer(dims, "dims", minimum=minimum_dims,
                   why=f"{what} needs an event of at least {minimum_dims} dimensions" if what else None)
    context_dims = integer(context_dims, "context_dims")
    n_layers = integer(n_layers, "n_layers")
    with keras_dtype(dtype) as dtype:
        bijectors: list[tfb.Bijector] = []
        names = []
        for index in range(n_layers):
            names.append(f"{name.lower()}_layer_{index}")
            bijectors += [make_layer(dims, context_dims, names[-1]), tfb.Permute(list(reversed(range(dims))))]
        base = tfd.MultivariateNormalDiag(loc=tf.zeros([dims], dtype), scale_diag=tf.ones([dims], dtype))
        # tfb.Chain applies its list right to left: reverse it so the first layer built acts first on z.
        flow = ConditionalFlow(
            tfd.TransformedDistribution(base, tfb.Chain(list(reversed(bijectors))), name=name), names, context_dims,
            name=name)
        # Create the weights now, in the dtype and in any strategy scope the builder runs in.
        flow.log_prob(tf.zeros([1, dims], dtype), tf.zeros([1, context_dims], dtype))
    return flow


def build_conditional_maf(
    dims: int, context_dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu", log_scale_bound: float = 3.0, dtype: Any = tf.float32,
) -> ConditionalFlow:
    """A conditional MAF :math:`p(x \\mid c)` over ``dims``-vectors given ``context_dims``-vectors.

    ``n_layers`` conditional MADE layers (:class:`ConditionalMADE`, log-scales softly bounded by
    ``log_scale_bound``), each followed by a reversal. Papamakarios et al. 2017, "Masked
    Autoregressive Flow for Density Estimation", section 3.4.

    Raises:
        flowlab.validation.ArgumentError: a bad ``dims``, ``context_dims``, ``n_layers`` or ``hidden_units``.

    >>> import flowlab
    >>> flow = build_conditional_maf(1, context_dims=2, n_layers=1, hidden_units=(4,))
    >>> flow.sample(3, context=[0.0, 1.0]).shape
    TensorShape([3, 1])
    """
    hidden_units = integers(hidden_units, "hidden_units")
    if not log_scale_bound > 0:
        raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound!r}")

    def layer(dims: int, context_dims: int, name: str) -> tfb.Bijector:
        made = ConditionalMADE(dims, context_dims, hidden_units, activation, log_scale_bound)
        return tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made, name=name)

    return _build(dims, context_dims, n_layers, layer, "ConditionalMAF", dtype)


def build_conditional_nsf(
    dims: int, context_dims: int, n_layers: int = 3, bins: int = 8, bound: float = 4.0,
    hidden_units: Sequence[int] = (64, 64), activation: str = "relu", dtype: Any = tf.float32,
) -> ConditionalFlow:
    """A conditional autoregressive neural spline flow :math:`p(x \\mid c)` (Durkan et al. 2019).

    Each layer moves every variable by a rational-quadratic spline of ``bins`` pieces on
    ``[-bound, bound]`` (the identity outside), its parameters computed from :math:`x_{<i}` and the
    context by one MADE network; layers are separated by reversals.

    >>> import flowlab
    >>> flow = build_conditional_nsf(2, context_dims=1, n_layers=1, bins=4, hidden_units=(4,))
    >>> flow.log_prob([0.1, -0.2], context=[1.0]).shape
    TensorShape([])
    """
    hidden_units = integers(hidden_units, "hidden_units")
    bins = integer(bins, "bins", minimum=2)
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound!r}")

    def layer(dims: int, context_dims: int, name: str) -> tfb.Bijector:
        spline = ConditionalSpline(dims, context_dims, bins, bound, hidden_units, activation)
        return tfb.MaskedAutoregressiveFlow(bijector_fn=spline, name=name)

    return _build(dims, context_dims, n_layers, layer, "ConditionalNSF", dtype)


def build_conditional_realnvp(
    dims: int, context_dims: int, n_layers: int = 4, hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu", log_scale_bound: float = 3.0, dtype: Any = tf.float32,
) -> ConditionalFlow:
    r"""A conditional RealNVP :math:`p(x \mid c)` over ``dims``-vectors given ``context_dims``-vectors.

    ``n_layers`` affine couplings, each followed by a reversal: the first ``dims // 2`` variables
    are copied, the rest moved by :math:`x e^{s} + t` with :math:`(t, s)` computed by an MLP from
    the copied half and the context (:class:`ConditionalCoupling`, :class:`ContextMLP`, log-scales
    softly bounded by ``log_scale_bound``).  Density and sampling are one pass each, as in RealNVP
    (Dinh et al. 2017); with the context it is the conditional coupling flow of Ardizzone et al.
    2019 ("Guided image generation with conditional invertible neural networks").  The output
    layers start at zero: the untrained flow is its base at every context.

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``context_dims``, ``n_layers``,
        ``hidden_units`` or ``dtype``.

    >>> import flowlab
    >>> flow = build_conditional_realnvp(2, context_dims=1, n_layers=2, hidden_units=(8,))
    >>> flow.sample(4, context=[0.3]).shape, flow.log_prob([0.1, -0.2], context=[0.3]).shape
    (TensorShape([4, 2]), TensorShape([]))
    """
    hidden_units = integers(hidden_units, "hidden_units")
    if not log_scale_bound > 0:
        raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound!r}")
    transformer = AffineTransformer(log_scale_bound)

    def layer(dims: int, context_dims: int, name: str) -> tfb.Bijector:
        net = ContextMLP(dims, hidden_units, activation, params_per_dim=transformer.params_per_dim)
        return ConditionalCoupling(half_mask(dims), net, transformer, name=name)

    return _build(dims, context_dims, n_layers, layer, "ConditionalRealNVP", dtype, minimum_dims=2)
