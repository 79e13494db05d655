r"""The multi-scale RealNVP for images (Dinh et al. 2016, section 3.6), scaled to 28×28×1 MNIST.

Read in the data-to-latent direction, for MNIST with two scales:

.. code-block:: text

    y in [0,1)^(28x28x1) --logit(alpha)--> 28x28x1
      scale 1: 3 checkerboard affine couplings --squeeze--> 14x14x4 --> 3 channel couplings
               factor out half: z1 = 14x14x2 goes to the base, 14x14x2 goes on
      scale 2: 3 checkerboard couplings --squeeze--> 7x7x8 --> 3 channel couplings
               factor out half: z2 = 7x7x4, 7x7x4 goes on
      final:   4 checkerboard couplings --> z3 = 7x7x4

The :class:`~flowlab.bijectors.multiscale.MultiScale` bijector (in :mod:`flowlab.bijectors.multiscale`)
holds the levels; this module builds them.  Every coupling is preceded by an
:class:`~flowlab.bijectors.actnorm.ActNorm` (Glow's data-initialised normalisation, in place of
RealNVP's batch norm) and conditioned by a zero-initialised
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
from flowlab.bijectors.coupling import AffineCoupling
from flowlab.bijectors.logit import Logit
from flowlab.bijectors.masks import channel_mask, checkerboard
from flowlab.bijectors.multiscale import MultiScale, _shape  # moved: MultiScale is a bijector
from flowlab.bijectors.squeeze import Squeeze
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.flows.base import keras_dtype
from flowlab.validation import integer

__all__ = ["MultiScale", "build_multiscale_realnvp", "image_base", "latents_by_scale", "bits_by_scale", "sample_images"]

tfd, tfb = tfp.distributions, tfp.bijectors


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
    dtype: Any = tf.float32,
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
      dtype: float32 (default) or float64: the base's, the conditioners' and every variable's.

    Returns a ``tfd.TransformedDistribution`` whose ``log_prob`` is the density of ``y`` with every
    log-det counted (logit included): pass it to :func:`flowlab.bits_per_dim.bits_per_dim`.

    Raises:
        flowlab.validation.ArgumentError: a bad ``image_shape``, count or ``dtype``.
        ValueError: H or W not divisible by ``2**scales``.

    >>> import flowlab, numpy as np
    >>> flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4)
    >>> flow.log_prob(np.full((4, 4, 1), 0.5, np.float32)).shape, flow.sample(2).shape
    (TensorShape([]), TensorShape([2, 4, 4, 1]))

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (ICLR 2017), 3.6.
    """
    h, w, c = _shape(image_shape)
    scales = integer(scales, "scales", minimum=0)
    couplings, final_couplings = integer(couplings, "couplings"), integer(final_couplings, "final_couplings")
    filters, blocks = integer(filters, "filters"), integer(blocks, "blocks", minimum=0)
    if h % 2**scales or w % 2**scales:
        raise ValueError(f"an image of {h}x{w} cannot be squeezed {scales} times: "
                         f"height and width must be divisible by {2**scales}")
    with keras_dtype(dtype) as dtype:  # ResNets, ActNorms: made in the flow's dtype
        levels, shape = [], (h, w, c)
        for k in range(scales):
            hk, wk, ck = shape
            data_order = _couplings(shape, couplings, "checkerboard", filters, blocks, log_scale_bound, actnorm,
                                    f"s{k}")
            data_order.append(tfb.Invert(Squeeze(name=f"s{k}_squeeze")))
            data_order += _couplings((hk // 2, wk // 2, 4 * ck), couplings, "channel", filters, blocks,
                                     log_scale_bound, actnorm, f"s{k}")
            # tfb.Chain's inverse applies its list left to right: the data order.
            levels.append(tfb.Chain(data_order, name=f"scale{k}"))
            shape = (hk // 2, wk // 2, 2 * ck)
        final = tfb.Chain(_couplings(shape, final_couplings, "checkerboard", filters, blocks, log_scale_bound,
                                     actnorm, "final"), name="final")
    flow = MultiScale((h, w, c), levels, final)
    base = image_base((h, w, c), dtype)
    bijector = tfb.Chain([tfb.Invert(Logit(alpha)), flow], name="realnvp")
    return tfd.TransformedDistribution(base, bijector, name="MultiScaleRealNVP")


def image_base(image_shape: Sequence[int], dtype: Any = tf.float32) -> tfd.Distribution:
    """A standard normal over images of ``image_shape`` in ``dtype``: the base of the image flows."""
    dtype = tf.as_dtype(dtype)
    return tfd.Sample(tfd.Normal(tf.zeros([], dtype), tf.ones([], dtype)), sample_shape=list(image_shape), name="base")


def _multiscale(flow: tfd.TransformedDistribution) -> tuple[tfb.Bijector, MultiScale]:
    chain = flow.bijector
    parts = [b for b in getattr(chain, "bijectors", []) if isinstance(b, MultiScale)]
    if not parts:
        raise TypeError("expected a flow from build_multiscale_realnvp (a chain holding a MultiScale bijector)")
    return chain, parts[0]


def latents_by_scale(flow: tfd.TransformedDistribution, y: Any) -> list[tf.Tensor]:
    """The latents of images ``y`` at each scale (finest first), e.g. to see where the bits go.

    >>> import flowlab, numpy as np
    >>> flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4)
    >>> [tuple(z.shape) for z in latents_by_scale(flow, np.full((3, 4, 4, 1), 0.5, np.float32))]
    [(3, 2, 2, 2), (3, 2, 2, 2)]
    """
    chain, multiscale = _multiscale(flow)
    z = chain.inverse(tf.convert_to_tensor(y, flow.dtype))
    return multiscale.split_latents(z)


def bits_by_scale(flow: tfd.TransformedDistribution, y: Any, num_levels: int = 256) -> dict[str, float]:
    r"""Split the mean bits/dim of images ``y`` into what each part of the flow accounts for.

    Scale :math:`k` contributes :math:`(-\log \mathcal N(z_k) - \log|\det J_k|) / (D \ln 2)`: its
    latents' code length under the base minus the log-det of its own layers; the logit and the
    dequantization's rescaling (``+ log2(num_levels)``) contribute the rest.  The values add up to
    the bits/dim of ``flow.log_prob``.

    >>> import flowlab, numpy as np
    >>> flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4)
    >>> list(bits_by_scale(flow, np.full((3, 4, 4, 1), 0.5, np.float32)))
    ['logit and rescaling', 'scale 1', 'final scale']
    """
    chain, multiscale = _multiscale(flow)
    y = tf.convert_to_tensor(y, flow.dtype)
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
    normal = tfd.Normal(tf.zeros([], flow.dtype), 1.0)
    out = {"logit and rescaling": to_bits(-pre_log_det) + float(np.log2(num_levels))}
    for k, (z, log_det) in enumerate(zip(parts, log_dets)):
        name = f"scale {k + 1}" if k < len(parts) - 1 else "final scale"
        out[name] = to_bits(-tf.reduce_sum(normal.log_prob(z), axis=[-3, -2, -1]) - log_det)
    return out


def sample_images(flow: tfd.TransformedDistribution, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` images in pixel values 0..255 (uint8, ``(n, H, W, C)``), latents drawn from ``N(0, T^2 I)``.

    A temperature below 1 (Glow's 0.7) trades variety for cleaner samples.

    >>> import flowlab
    >>> flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4)
    >>> images = sample_images(flow, 2, temperature=0.7)
    >>> images.shape, images.dtype
    ((2, 4, 4, 1), dtype('uint8'))
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = temperature * flow.distribution.sample(int(n), seed=seed)
    y = flow.bijector.forward(z)
    return np.clip(np.floor(y.numpy() * 256.0), 0, 255).astype(np.uint8)
