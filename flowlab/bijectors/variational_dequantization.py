r"""Variational dequantization (Flow++, Ho et al. 2019): learn the noise instead of drawing it uniformly.

Uniform dequantization (:mod:`flowlab.bijectors.dequantize`) models :math:`y = (x + u)/256` with
:math:`u \sim U[0,1)^D`, and the flow's continuous density :math:`p` must then be flat across
every bin -- a density with hard walls at the bin edges, which a smooth flow can only approximate,
and the bound is loose by what it misses.  Variational dequantization draws :math:`u` from a
learned distribution :math:`q(u \mid x)` on :math:`[0, 1)^D` instead.  For any such :math:`q`,
by Jensen's inequality,

.. math::

    \log P(x) = \log \int_{[0,1)^D} p(x + u)\, du
              = \log \mathbb E_{q(u|x)}\!\left[\frac{p(x + u)}{q(u \mid x)}\right]
              \ge \mathbb E_{q(u|x)}\big[\log p(x + u) - \log q(u \mid x)\big],

with equality when :math:`q(u \mid x)` is :math:`p(x + u)` normalised on the bin.  With
:math:`p(x + u) = p_Y((x + u)/256)\, 256^{-D}` for the flow's density :math:`p_Y` over
:math:`[0,1)^D`, the bound per image in nats is
:math:`\log p_Y(y) - D \log 256 - \log q(u \mid x)`, and

.. math:: \text{bits/dim} = -\frac{\log p_Y(y) - D\log 256 - \log q(u \mid x)}{D \ln 2} .

Uniform dequantization is the special case :math:`q = U[0,1)^D`, :math:`\log q = 0`.

**The dequantizer.**  :math:`q(u \mid x)` is itself a conditional flow whose conditioners see the
image: :math:`\varepsilon \sim \text{Logistic}(0, 1)^D`; an elementwise affine map and
``couplings`` checkerboard affine couplings, every conditioner reading the image's features
(a small conv net of :math:`x`) next to its masked input; then :math:`u = \sigma(h)`.  The heads
start at zero, and the sigmoid of a standard logistic is uniform on :math:`(0, 1)`, so an
untrained dequantizer *is* uniform dequantization: training can only tighten the bound.

.. math:: \log q(u \mid x) = \log \text{Logistic}(\varepsilon) - \log\left|\det\frac{\partial h}{\partial \varepsilon}\right|
          - \sum_d \log \sigma'(h_d)

Example:

>>> import flowlab, numpy as np, tensorflow as tf
>>> q = VariationalDequantizer((4, 4, 1), filters=8)
>>> x = tf.constant(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))
>>> u, log_q = q.sample_and_log_prob(x, seed=[1, 2])
>>> bool(tf.reduce_all((u >= 0) & (u <= 1))), tuple(log_q.shape)
(True, (1,))
>>> abs(float(log_q[0])) < 1e-4          # untrained: exactly uniform, log q = 0
True

Reference: J. Ho, X. Chen, A. Srinivas, Y. Duan, P. Abbeel, "Flow++: Improving flow-based generative
models with variational dequantization and architecture design" (2019).
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.masks import checkerboard
from flowlab.validation import integer

__all__ = ["VariationalDequantizer", "variational_bound", "bound_bits_per_dim", "DequantizedDensityModel"]

tfd = tfp.distributions


def _image_shape(shape: Any) -> tuple[int, int, int]:
    dims = tuple(int(d) for d in tf.TensorShape(shape))
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"an image shape is (height, width, channels), got {shape!r}")
    return dims  # type: ignore[return-value]


def _conv(units: int, zero: bool = False) -> tf.keras.layers.Layer:
    init = {"kernel_initializer": "zeros", "bias_initializer": "zeros"} if zero else {}
    return tf.keras.layers.Conv2D(units, 3, padding="same", **init)


class VariationalDequantizer(tf.keras.layers.Layer):
    r"""The learned noise distribution :math:`q(u \mid x)` on :math:`[0, 1)^{H \times W \times C}`.

    Args:
      image_shape: ``(H, W, C)`` of the integer images.
      couplings: conditional checkerboard affine couplings after the elementwise affine map.
      filters: width of the image-feature net and of each conditioner.
      log_scale_bound: log-scales are bounded softly, :math:`c \tanh(s / c)`.
      num_levels: pixel values (256): the image features read ``x / num_levels - 1/2``.

    ``sample_and_log_prob(x)`` draws :math:`u` (reparameterised: gradients reach the parameters)
    and returns :math:`\log q(u \mid x)` per image; ``log_prob(u, x)`` evaluates a given :math:`u`.
    """

    def __init__(self, image_shape: Sequence[int], couplings: int = 2, filters: int = 16,
                 log_scale_bound: float = 2.0, num_levels: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_shape = _image_shape(image_shape)
        h, w, c = self.image_shape
        couplings = integer(couplings, "couplings", minimum=0)
        if couplings and h * w < 2:
            raise ValueError(f"checkerboard couplings need at least two pixels, got {h}x{w}")
        filters = integer(filters, "filters")
        if not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound}")
        self.num_levels = integer(num_levels, "num_levels", minimum=2)
        self.log_scale_bound = float(log_scale_bound)
        self.features = [_conv(filters), _conv(filters)]
        self.elementwise = _conv(2 * c, zero=True)
        self.masks = [tf.constant(checkerboard(h, w, c, i % 2)) for i in range(couplings)]
        self.conditioners = [(_conv(filters), _conv(2 * c, zero=True)) for _ in range(couplings)]

    def _check(self, x: tf.Tensor, what: str) -> None:
        if x.shape.rank is not None and (x.shape.rank != 4 or tuple(x.shape[1:]) != self.image_shape):
            raise ValueError(f"{self.name}: expected {what} of shape (batch, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")

    def _context(self, x: tf.Tensor) -> tf.Tensor:
        h = tf.cast(x, tf.float32) / float(self.num_levels) - 0.5
        for conv in self.features:
            h = tf.nn.relu(conv(h))
        return h

    def _bounded(self, out: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shift, log_scale = tf.split(out, 2, axis=-1)
        return shift, self.log_scale_bound * tf.tanh(log_scale / self.log_scale_bound)

    def _steps(self, context: tf.Tensor) -> list[Callable]:
        """Each step maps ``h`` to ``(shift, log_scale)``; the elementwise step ignores ``h``."""
        steps = [lambda h: self._bounded(self.elementwise(context))]
        for mask, (hidden, head) in zip(self.masks, self.conditioners):
            def step(h, mask=mask, hidden=hidden, head=head):
                shift, log_scale = self._bounded(head(tf.nn.relu(hidden(tf.concat([h * mask, context], -1)))))
                return shift * (1.0 - mask), log_scale * (1.0 - mask)
            steps.append(step)
        return steps

    @staticmethod
    def _log_sigmoid_derivative(h: tf.Tensor) -> tf.Tensor:
        return -tf.nn.softplus(-h) - tf.nn.softplus(h)  # log(sigma(h) sigma(-h)), stable in both tails

    def _log_q(self, eps: tf.Tensor, h: tf.Tensor, log_det: tf.Tensor) -> tf.Tensor:
        base = tf.reduce_sum(tfd.Logistic(0.0, 1.0).log_prob(eps), axis=[1, 2, 3])
        return base - log_det - tf.reduce_sum(self._log_sigmoid_derivative(h), axis=[1, 2, 3])

    def sample_and_log_prob(self, x: Any, seed: Any = None) -> tuple[tf.Tensor, tf.Tensor]:
        r"""``(u, log q(u | x))`` for integer images ``x`` ``(batch, H, W, C)``; ``seed`` a pair of ints or ``None``."""
        x = tf.convert_to_tensor(x)
        self._check(x, "images")
        x = tf.cast(x, tf.float32)
        shape = tf.shape(x)
        # A logistic sample by inverse CDF, clipped so that it stays finite.
        uniform = (tf.random.stateless_uniform(shape, seed=seed) if seed is not None else tf.random.uniform(shape))
        uniform = tf.clip_by_value(uniform, 1e-6, 1.0 - 1e-6)
        eps = tf.math.log(uniform) - tf.math.log1p(-uniform)
        context = self._context(x)
        h, log_det = eps, tf.zeros(shape[:1])
        for step in self._steps(context):
            shift, log_scale = step(h)
            h = h * tf.exp(log_scale) + shift
            log_det += tf.reduce_sum(log_scale, axis=[1, 2, 3])
        return tf.sigmoid(h), self._log_q(eps, h, log_det)

    def call(self, x: Any, seed: Any = None) -> tuple[tf.Tensor, tf.Tensor]:
        return self.sample_and_log_prob(x, seed)

    def log_prob(self, u: Any, x: Any) -> tf.Tensor:
        r""":math:`\log q(u \mid x)` of given noise ``u`` in ``(0, 1)``: the flow run backwards."""
        u = tf.convert_to_tensor(u, tf.float32)
        x = tf.convert_to_tensor(x)
        self._check(x, "images")
        self._check(u, "noise u")
        u = tf.clip_by_value(u, 1e-7, 1.0 - 1e-7)
        h = tf.math.log(u) - tf.math.log1p(-u)
        context = self._context(tf.cast(x, tf.float32))
        steps = self._steps(context)
        eps, log_det = h, tf.zeros(tf.shape(u)[:1])
        # The couplings' conditioners read the copied half, unchanged by the step: run them backwards.
        for step in reversed(steps):
            shift, log_scale = step(eps)
            eps = (eps - shift) * tf.exp(-log_scale)
            log_det += tf.reduce_sum(log_scale, axis=[1, 2, 3])
        return self._log_q(eps, h, log_det)


def variational_bound(flow: Any, dequantizer: VariationalDequantizer | None, x: Any, num_levels: int = 256,
                      seed: Any = None) -> tf.Tensor:
    r"""One-sample estimate of the lower bound on :math:`\log P(x)`, in nats per image.

    :math:`\log p_Y((x + u)/L) - D\log L - \log q(u \mid x)`, :math:`u \sim q(\cdot \mid x)`, with
    ``flow`` a density over :math:`[0, 1)^D` (``flow.log_prob``) and :math:`L` = ``num_levels``.
    ``dequantizer=None`` is uniform dequantization (:math:`\log q = 0`).
    """
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if x.shape.rank is not None and x.shape.rank < 2:
        raise ValueError(f"x must be a batch of integer images (batch, ...), got shape {tuple(x.shape)}")
    dims = int(np.prod(x.shape[1:]))
    if dequantizer is None:
        u = tf.random.stateless_uniform(tf.shape(x), seed=seed) if seed is not None else tf.random.uniform(tf.shape(x))
        log_q = tf.zeros(tf.shape(x)[:1])
    else:
        u, log_q = dequantizer.sample_and_log_prob(x, seed=seed)
    y = (x + u) / float(num_levels)
    return flow.log_prob(y) - dims * math.log(num_levels) - log_q


def bound_bits_per_dim(bound: Any, num_dims: int) -> tf.Tensor:
    """Bits/dim from a lower bound on ``log P(x)`` in nats (already in pixel space: no ``+ 8``)."""
    num_dims = integer(num_dims, "num_dims")
    return -tf.convert_to_tensor(bound, tf.float32) / (float(num_dims) * math.log(2.0))


class DequantizedDensityModel(tf.keras.Model):
    r"""A Keras model over *integer* images whose output is a lower bound on :math:`\log P(x)` per image.

    ``bound(flow, dequantizer, x)`` computes it (default :func:`variational_bound`; the lab passes
    yours); train with ``flowlab.training.negative_log_likelihood`` as the loss: the flow and the
    dequantizer are trained together, the flow to fit the data, :math:`q` to tighten the bound.

    Example::

        model = DequantizedDensityModel(flow, VariationalDequantizer((28, 28, 1)))
        model.compile(optimizer="adam", loss=negative_log_likelihood)
        model.fit(images.astype("float32"), np.zeros(len(images)), batch_size=64)
    """

    def __init__(self, flow: Any, dequantizer: VariationalDequantizer | None,
                 bound: Callable | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if bound is not None and not callable(bound):
            raise TypeError(f"bound must be callable, got {type(bound).__name__}")
        self.flow = flow
        self.dequantizer = dequantizer
        self._bound = bound or variational_bound
        event = tuple(int(d) for d in flow.event_shape)
        self.build((None, *event))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(self._bound(self.flow, self.dequantizer, x), tf.float32), [-1])
