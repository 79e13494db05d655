r"""The multi-scale RealNVP for images (Dinh et al. 2016, section 3.6), scaled to 28×28×1 MNIST.

Read in the data-to-latent direction, for MNIST with two scales:

.. code-block:: text

    y in [0,1)^(28x28x1) --logit(alpha)--> 28x28x1
      scale 1: 3 checkerboard affine couplings --squeeze--> 14x14x4 --> 3 channel couplings
               factor out half: z1 = 14x14x2 goes to the base, 14x14x2 goes on
      scale 2: 3 checkerboard couplings --squeeze--> 7x7x8 --> 3 channel couplings
               factor out half: z2 = 7x7x4, 7x7x4 goes on
      final:   4 checkerboard couplings --> z3 = 7x7x4

Every coupling is preceded by an :class:`~flowlab.bijectors.actnorm.ActNorm` (Glow's data-
initialised normalisation, in place of RealNVP's batch norm) and conditioned by a zero-initialised
:class:`~flowlab.conditioners.resnet.ResNetConditioner`, so the untrained flow is the identity
after the logit.  Factoring out sends half of the variables straight to the Gaussian base: the
coarse scales spend their computation on fewer variables, and each latent scale holds structure
of a different size.  The latents are packed back into the image's shape, so the base is a
standard normal over ``image_shape`` and ``flow.sample`` / ``flow.log_prob`` work on images.

Example::

    flow = build_multiscale_realnvp((28, 28, 1))
    initialize_actnorm(flow, first_batch)           # data-dependent init, once
    model = flowlab.training.density_model(flow)    # output: log_prob, train with model.fit
    images = sample_images(flow, 64, temperature=0.7)

References: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016);
D. P. Kingma, P. Dhariwal, "Glow" (2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.actnorm import ActNorm
from flowlab.bijectors.cached_log_det import CachedLogDet
from flowlab.bijectors.coupling import AffineCoupling
from flowlab.bijectors.dequantize import Logit
from flowlab.bijectors.masks import channel_mask, checkerboard
from flowlab.bijectors.squeeze import Squeeze
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.validation import ArgumentError, integer, integers

__all__ = ["MultiScale", "build_multiscale_realnvp", "latents_by_scale", "bits_by_scale", "sample_images"]

tfd, tfb = tfp.distributions, tfp.bijectors


def _shape(shape: Any) -> tuple[int, int, int]:
    """``(height, width, channels)`` as three positive ints (a ``tf.TensorShape`` or a sequence)."""
    if isinstance(shape, tf.TensorShape):
        shape = shape.as_list() if shape.rank is not None else None
    dims = integers(shape, "image_shape") if shape is not None and not isinstance(shape, (str, bytes)) else ()
    if len(dims) != 3:
        raise ArgumentError(f"image_shape is (height, width, channels), got {shape!r}")
    return dims  # type: ignore[return-value]


class MultiScale(CachedLogDet, tfb.Bijector):
    r"""Multi-scale architecture: ``levels`` with half the channels factored out after each, then ``final``.

    In the generative (forward) direction each ``levels[k]`` maps ``(H/2, W/2, 4C)`` to ``(H, W, C)``
    (it ends with an unsqueeze), ``final`` maps the coarsest variables to themselves.  The latent
    ``z`` has the image's shape: the factored-out parts ``z_1, ..., z_K`` and ``final``'s latent,
    flattened and concatenated in that order.  :meth:`split_latents` undoes the packing.
    """

    def __init__(self, image_shape: Sequence[int], levels: Sequence[tfb.Bijector], final: tfb.Bijector,
                 validate_args: bool = False, name: str = "multiscale") -> None:
        parameters = dict(locals())
        self._image_shape = _shape(image_shape)
        self._levels = list(levels)
        self._final = final
        shapes, h = [], self._image_shape
        for k, level in enumerate(self._levels):
            out = _shape(level.inverse_event_shape(h))
            if out[2] % 2:
                raise ValueError(f"level {k} gives {out[2]} channels, an odd number: cannot factor out half")
            half = (out[0], out[1], out[2] // 2)
            shapes.append(half)
            h = half
        shapes.append(_shape(final.inverse_event_shape(h)))
        self._latent_shapes = shapes
        if sum(int(np.prod(s)) for s in shapes) != int(np.prod(self._image_shape)):
            raise ValueError(f"the latents {shapes} do not add up to the image {self._image_shape}")
        super().__init__(forward_min_event_ndims=3, validate_args=validate_args, parameters=parameters, name=name)

    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes of the latents, finest scale first, ``final``'s last."""
        return list(self._latent_shapes)

    def _check(self, x: tf.Tensor) -> None:
        if x.shape.rank is not None and (x.shape.rank < 3 or tuple(x.shape[-3:]) != self._image_shape):
            raise ValueError(f"{self.name}: expected images of shape (..., {', '.join(map(str, self._image_shape))}), "
                             f"got {tuple(x.shape)}")

    def split_latents(self, z: tf.Tensor) -> list[tf.Tensor]:
        """Unpack a latent of the image's shape into the per-scale latents."""
        self._check(z)
        batch = tf.shape(z)[:-3]
        flat = tf.reshape(z, tf.concat([batch, [-1]], 0))
        sizes = [int(np.prod(s)) for s in self._latent_shapes]
        return [tf.reshape(part, tf.concat([batch, list(s)], 0))
                for part, s in zip(tf.split(flat, sizes, axis=-1), self._latent_shapes)]

    def _pack(self, parts: list[tf.Tensor], batch: tf.Tensor) -> tf.Tensor:
        flat = tf.concat([tf.reshape(p, tf.concat([batch, [-1]], 0)) for p in parts], axis=-1)
        return tf.reshape(flat, tf.concat([batch, list(self._image_shape)], 0))

    def inverse_by_scale(self, x: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Latents and log-dets (of the data-to-latent map) of each scale, finest first, ``final``'s last."""
        self._check(x)
        h, parts, log_dets = x, [], []
        for level in self._levels:
            out = level.inverse(h)
            log_dets.append(level.inverse_log_det_jacobian(h, event_ndims=3))
            z, h = tf.split(out, 2, axis=-1)
            parts.append(z)
        parts.append(self._final.inverse(h))
        log_dets.append(self._final.inverse_log_det_jacobian(h, event_ndims=3))
        return parts, log_dets

    def _inverse(self, x: tf.Tensor) -> tf.Tensor:
        parts, log_dets = self.inverse_by_scale(x)
        self._cache.inverse_attributes(x)["ildj"] = tf.add_n(log_dets)
        return self._pack(parts, tf.shape(x)[:-3])

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        parts = self.split_latents(z)
        h = self._final.forward(parts[-1])
        fldj = self._final.forward_log_det_jacobian(parts[-1], event_ndims=3)
        for level, part in zip(reversed(self._levels), reversed(parts[:-1])):
            joined = tf.concat([part, h], axis=-1)
            h = level.forward(joined)
            fldj += level.forward_log_det_jacobian(joined, event_ndims=3)
        self._cache.forward_attributes(z)["ildj"] = -fldj
        return h



def _couplings(shape: tuple[int, int, int], count: int, kind: str, filters: int, blocks: int,
               log_scale_bound: float, actnorm: bool, prefix: str) -> list[tfb.Bijector]:
    """``count`` couplings in data order, the mask alternating between its two parities."""
    h, w, c = shape
    out: list[tfb.Bijector] = []
    for i in range(count):
        mask = checkerboard(h, w, c, parity=i % 2) if kind == "checkerboard" else channel_mask(h, w, c, half=i % 2)
        if actnorm:
            out.append(ActNorm(c, name=f"{prefix}_{kind}_actnorm{i}"))
        net = ResNetConditioner(c, filters=filters, blocks=blocks, name=f"{prefix}_resnet{i}")
        out.append(AffineCoupling(mask, net, log_scale_bound=log_scale_bound, name=f"{prefix}_{kind}{i}"))
    return out


def build_multiscale_realnvp(
    image_shape: Sequence[int] = (28, 28, 1),
    scales: int = 2,
    couplings: int = 3,
    final_couplings: int = 4,
    filters: int = 32,
    blocks: int = 1,
    alpha: float = 0.05,
    log_scale_bound: float = 2.0,
    actnorm: bool = True,
) -> tfd.TransformedDistribution:
    """A multi-scale RealNVP over images ``y in [0, 1)^image_shape`` (dequantized pixels / 256).

    Args:
      image_shape: ``(H, W, C)``; H and W must be divisible by ``2**scales``.
      scales: levels of (checkerboard couplings, squeeze, channel couplings, factor out half).
      couplings: checkerboard and channel couplings per level (each).
      final_couplings: checkerboard couplings on the coarsest variables.
      filters, blocks: width and depth of each :class:`ResNetConditioner`.
      alpha: the logit's boundary margin (RealNVP: 0.05).
      log_scale_bound: each coupling's log-scale bound.
      actnorm: put an :class:`ActNorm` before every coupling.

    Returns a ``tfd.TransformedDistribution`` whose ``log_prob`` is the density of ``y`` with every
    log-det counted (logit included): pass it to :func:`flowlab.bits_per_dim.bits_per_dim`.
    """
    h, w, c = _shape(image_shape)
    scales = integer(scales, "scales", minimum=0)
    couplings, final_couplings = integer(couplings, "couplings"), integer(final_couplings, "final_couplings")
    filters, blocks = integer(filters, "filters"), integer(blocks, "blocks", minimum=0)
    if h % 2**scales or w % 2**scales:
        raise ValueError(f"an image of {h}x{w} cannot be squeezed {scales} times: "
                         f"height and width must be divisible by {2**scales}")
    levels, shape = [], (h, w, c)
    for k in range(scales):
        hk, wk, ck = shape
        data_order = _couplings(shape, couplings, "checkerboard", filters, blocks, log_scale_bound, actnorm, f"s{k}")
        data_order.append(tfb.Invert(Squeeze(name=f"s{k}_squeeze")))
        data_order += _couplings((hk // 2, wk // 2, 4 * ck), couplings, "channel", filters, blocks,
                                 log_scale_bound, actnorm, f"s{k}")
        # tfb.Chain's inverse applies its list left to right: the data order.
        levels.append(tfb.Chain(data_order, name=f"scale{k}"))
        shape = (hk // 2, wk // 2, 2 * ck)
    final = tfb.Chain(_couplings(shape, final_couplings, "checkerboard", filters, blocks, log_scale_bound,
                                 actnorm, "final"), name="final")
    flow = MultiScale((h, w, c), levels, final)
    base = tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=[h, w, c], name="base")
    bijector = tfb.Chain([tfb.Invert(Logit(alpha)), flow], name="realnvp")
    return tfd.TransformedDistribution(base, bijector, name="MultiScaleRealNVP")


def _multiscale(flow: tfd.TransformedDistribution) -> tuple[tfb.Bijector, MultiScale]:
    chain = flow.bijector
    parts = [b for b in getattr(chain, "bijectors", []) if isinstance(b, MultiScale)]
    if not parts:
        raise TypeError("expected a flow from build_multiscale_realnvp (a chain holding a MultiScale bijector)")
    return chain, parts[0]


def latents_by_scale(flow: tfd.TransformedDistribution, y: Any) -> list[tf.Tensor]:
    """The latents of images ``y`` at each scale (finest first), e.g. to see where the bits go."""
    chain, multiscale = _multiscale(flow)
    z = chain.inverse(tf.convert_to_tensor(y, tf.float32))
    return multiscale.split_latents(z)


def bits_by_scale(flow: tfd.TransformedDistribution, y: Any, num_levels: int = 256) -> dict[str, float]:
    r"""Split the mean bits/dim of images ``y`` into what each part of the flow accounts for.

    Scale :math:`k` contributes :math:`(-\log \mathcal N(z_k) - \log|\det J_k|) / (D \ln 2)`: its
    latents' code length under the base minus the log-det of its own layers; the logit and the
    dequantization's rescaling (``+ log2(num_levels)``) contribute the rest.  The values add up to
    the bits/dim of ``flow.log_prob``.
    """
    chain, multiscale = _multiscale(flow)
    y = tf.convert_to_tensor(y, tf.float32)
    x, pre_log_det = y, 0.0
    for bijector in chain.bijectors:  # a chain's inverse runs its list from the start
        if bijector is multiscale:
            break
        pre_log_det += bijector.inverse_log_det_jacobian(x, event_ndims=3)
        x = bijector.inverse(x)
    if chain.bijectors[-1] is not multiscale:
        raise TypeError("bits_by_scale expects the MultiScale bijector last in the flow's chain (next to the base)")
    parts, log_dets = multiscale.inverse_by_scale(x)
    dims = float(np.prod(multiscale._image_shape))
    to_bits = lambda nats: float(tf.reduce_mean(nats)) / (dims * np.log(2.0))  # noqa: E731
    normal = tfd.Normal(0.0, 1.0)
    out = {"logit and rescaling": to_bits(-pre_log_det) + float(np.log2(num_levels))}
    for k, (z, log_det) in enumerate(zip(parts, log_dets)):
        name = f"scale {k + 1}" if k < len(parts) - 1 else "final scale"
        out[name] = to_bits(-tf.reduce_sum(normal.log_prob(z), axis=[-3, -2, -1]) - log_det)
    return out


def sample_images(flow: tfd.TransformedDistribution, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` images in pixel values 0..255 (uint8, ``(n, H, W, C)``), latents drawn from ``N(0, T^2 I)``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = temperature * flow.distribution.sample(int(n), seed=seed)
    y = flow.bijector.forward(z)
    return np.clip(np.floor(y.numpy() * 256.0), 0, 255).astype(np.uint8)
