r"""Conditional flows: a density :math:`p(x \mid c)` of an event :math:`x` given a context vector :math:`c`.

Each layer is an autoregressive transform whose MADE network (Germain et al. 2015) also reads the
context, in every hidden layer (``tfb.AutoregressiveNetwork(conditional=True)``):

.. math:: x_i = \tau\big(z_i;\ \theta_i(x_{<i}, c)\big), \qquad
          \log p(x \mid c) = \log p_Z(z) - \sum_i \log \left|\frac{\partial \tau}{\partial z_i}\right|

with :math:`\tau` affine (conditional MAF, Papamakarios et al. 2017, section 3.4) or a monotone
rational-quadratic spline (conditional neural spline flow, Durkan et al. 2019). The Jacobian stays
triangular whatever the context does, so one flow models a whole family of densities -- a
simulator's outputs given its parameters (neural posterior/likelihood estimation), a detector's
response given the true energy.

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

from typing import Any, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.validation import integer, integers

__all__ = ["ConditionalFlow", "build_conditional_maf", "build_conditional_nsf"]

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


class ConditionalFlow(tf.Module):
    """A flow :math:`p(x \\mid c)`: a ``tfd.TransformedDistribution`` whose named layers read a context.

    ``log_prob(x, context)`` takes ``x`` of shape ``(n, dims)`` (or ``(dims,)``) and a context of
    shape ``(n, context_dims)``, or ``(context_dims,)`` for one context shared by every event.
    ``sample(n, context)``: ``n`` draws at one context ``(context_dims,)``, or one draw per row of
    a context ``(n, context_dims)``.
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
        """Draws of :math:`x \\sim p(x \\mid c)`: ``(n, dims)``."""
        if context is None:
            raise ValueError("a conditional flow samples given a context: sample(n, context=c)")
        context = self._context(context, None)
        if context.shape.rank == 1:
            n = integer(n, "n")
            context = tf.tile(context[tf.newaxis], [n, 1])
        elif n is not None and integer(n, "n") != context.shape[0]:
            raise ValueError(f"sample(n={n}) with a context of {context.shape[0]} rows: pass n=None (one draw per "
                             "row), or one context of shape (context_dims,) for n draws at it")
        return self.distribution.sample(tf.shape(context)[0], seed=seed, bijector_kwargs=self._kwargs(context))


def _build(dims: Any, context_dims: Any, n_layers: Any, make_layer: Any, name: str) -> ConditionalFlow:
    dims = integer(dims, "dims")
    context_dims = integer(context_dims, "context_dims")
    n_layers = integer(n_layers, "n_layers")
    bijectors: list[tfb.Bijector] = []
    names = []
    for index in range(n_layers):
        names.append(f"{name.lower()}_layer_{index}")
        bijectors += [make_layer(dims, context_dims, names[-1]), tfb.Permute(list(reversed(range(dims))))]
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([dims]), scale_diag=tf.ones([dims]))
    # tfb.Chain applies its list right to left: reverse it so the first layer built acts first on z.
    flow = ConditionalFlow(
        tfd.TransformedDistribution(base, tfb.Chain(list(reversed(bijectors))), name=name), names, context_dims,
        name=name)
    flow.log_prob(tf.zeros([1, dims]), tf.zeros([1, context_dims]))  # create the weights now (strategy scopes)
    return flow


def build_conditional_maf(
    dims: int, context_dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (64, 64),
    activation: str = "relu", log_scale_bound: float = 3.0,
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

    return _build(dims, context_dims, n_layers, layer, "ConditionalMAF")


def build_conditional_nsf(
    dims: int, context_dims: int, n_layers: int = 3, bins: int = 8, bound: float = 4.0,
    hidden_units: Sequence[int] = (64, 64), activation: str = "relu",
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

    return _build(dims, context_dims, n_layers, layer, "ConditionalNSF")
