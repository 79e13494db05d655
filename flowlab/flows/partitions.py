r"""How a coupling flow partitions the pixels matters: the lecture's good and bad partitions.

A coupling layer transforms the variables its mask marks 0 as a function of those marked 1.  What
it can learn depends on *which* variables condition which.  The two partitions compared here have
the same skeleton -- 10 couplings, each after an ActNorm, with a squeeze after the 4th and an
unsqueeze after the 7th -- the same conditioner networks and the same parameter count; only the
masks differ:

- **good** (RealNVP): checkerboard ×4; squeeze; channel ×3; unsqueeze; checkerboard ×3.  Every
  transformed pixel is conditioned on its direct neighbours, whose values predict it best.
- **bad**: half-image masks, top half; bottom half; left half; right half, repeated over the same
  10 couplings (on the squeezed 14×14 grid: the same halves of it, all channels).  A pixel near
  the middle of the top half is conditioned on pixels half an image away, and its own neighbours
  are transformed *with* it, so the layer cannot use them.

Example::

    good = build_good_partition_flow((28, 28, 1), filters=16)
    bad = build_bad_partition_flow((28, 28, 1), filters=16)     # the same, other masks

Reference: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016), 3.4-3.6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.actnorm import ActNorm
from flowlab.bijectors.coupling import AffineCoupling
from flowlab.bijectors.logit import Logit
from flowlab.bijectors.masks import channel_mask, checkerboard, validate_mask
from flowlab.bijectors.multiscale import _shape
from flowlab.bijectors.squeeze import Squeeze
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.flows.base import keras_dtype
from flowlab.flows.multiscale import image_base
from flowlab.validation import integer

__all__ = ["SQUEEZE", "UNSQUEEZE", "good_partition", "bad_partition", "half_mask", "build_partition_flow",
           "build_good_partition_flow", "build_bad_partition_flow"]

tfd, tfb = tfp.distributions, tfp.bijectors

SQUEEZE, UNSQUEEZE = "squeeze", "unsqueeze"


def half_mask(height: int, width: int, channels: int, half: str) -> np.ndarray:
    """A ``(height, width, channels)`` mask that reads the ``"top"``, ``"bottom"``, ``"left"`` or ``"right"`` half."""
    mask = np.zeros((height, width, channels), np.float32)
    if half == "top":
        mask[: height // 2] = 1.0
    elif half == "bottom":
        mask[height // 2 :] = 1.0
    elif half == "left":
        mask[:, : width // 2] = 1.0
    elif half == "right":
        mask[:, width // 2 :] = 1.0
    else:
        raise ValueError(f"half must be 'top', 'bottom', 'left' or 'right', got {half!r}")
    return validate_mask(mask)


def good_partition(height: int, width: int, channels: int) -> list:
    """Checkerboard ×4; squeeze; channel ×3; unsqueeze; checkerboard ×3 (masks alternate)."""
    squeezed = (height // 2, width // 2, 4 * channels)
    return ([checkerboard(height, width, channels, i % 2) for i in range(4)] + [SQUEEZE]
            + [channel_mask(*squeezed, half=i % 2) for i in range(3)] + [UNSQUEEZE]
            + [checkerboard(height, width, channels, (i + 1) % 2) for i in range(3)])


def bad_partition(height: int, width: int, channels: int) -> list:
    """Top half; bottom half; left half; right half, repeated on the good partition's skeleton."""
    squeezed = (height // 2, width // 2, 4 * channels)
    cycle = ["top", "bottom", "left", "right"]
    return ([half_mask(height, width, channels, cycle[i % 4]) for i in range(4)] + [SQUEEZE]
            + [half_mask(*squeezed, cycle[i % 4]) for i in range(3)] + [UNSQUEEZE]
            + [half_mask(height, width, channels, cycle[(i + 3) % 4]) for i in range(3)])


def build_partition_flow(image_shape: Sequence[int], partition: Callable[[int, int, int], list], filters: int = 32,
                         blocks: int = 1, alpha: float = 0.05, log_scale_bound: float = 2.0,
                         name: str = "partition_flow", dtype: Any = tf.float32) -> tfd.TransformedDistribution:
    """A single-scale coupling flow laid out by ``partition(H, W, C)``: masks, ``SQUEEZE`` and ``UNSQUEEZE``
    markers in data order; each mask becomes an ActNorm and an affine coupling with a ResNet conditioner.
    ``dtype``: float32 (default) or float64, the base's and every layer's."""
    h, w, c = _shape(image_shape)
    filters, blocks = integer(filters, "filters"), integer(blocks, "blocks", minimum=0)
    if h % 2 or w % 2:
        raise ValueError(f"the partition flows squeeze once: height and width must be even, got {h}x{w}")
    with keras_dtype(dtype) as dtype:
        layers: list[tfb.Bijector] = []
        shape = (h, w, c)
        for i, item in enumerate(partition(h, w, c)):
            if isinstance(item, str) and item == SQUEEZE:
                layers.append(tfb.Invert(Squeeze(name=f"squeeze{i}")))
                shape = (shape[0] // 2, shape[1] // 2, 4 * shape[2])
            elif isinstance(item, str) and item == UNSQUEEZE:
                layers.append(Squeeze(name=f"unsqueeze{i}"))
                shape = (shape[0] * 2, shape[1] * 2, shape[2] // 4)
            else:
                mask = validate_mask(item, shape)
                layers.append(ActNorm(shape[2], name=f"actnorm{i}"))
                net = ResNetConditioner(shape[2], filters=filters, blocks=blocks, name=f"resnet{i}")
                layers.append(AffineCoupling(mask, net, log_scale_bound=log_scale_bound, name=f"coupling{i}"))
    if shape != (h, w, c):
        raise ValueError(f"the partition does not end at the image's shape {(h, w, c)} (got {shape}): "
                         "every squeeze needs its unsqueeze")
    base = image_base((h, w, c), dtype)
    # Data order: a chain's inverse (data to latent) runs its list from the start.
    bijector = tfb.Chain([tfb.Invert(Logit(alpha))] + layers, name=name)
    return tfd.TransformedDistribution(base, bijector, name=name)


def build_good_partition_flow(image_shape: Sequence[int] = (28, 28, 1), **kwargs) -> tfd.TransformedDistribution:
    """:func:`build_partition_flow` with :func:`good_partition` (keywords: ``filters``, ``blocks``, ``alpha``,
    ``log_scale_bound``, ``dtype``).

    Raises:
        flowlab.validation.ArgumentError: a bad ``image_shape``, count or ``dtype``; ValueError: odd H or W.

    >>> import flowlab, numpy as np
    >>> flow = build_good_partition_flow((4, 4, 1), filters=2)
    >>> flow.log_prob(np.full((4, 4, 1), 0.5, np.float32)).shape
    TensorShape([])

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (ICLR 2017), 3.4-3.6.
    """
    return build_partition_flow(image_shape, good_partition, name="good_partition", **kwargs)


def build_bad_partition_flow(image_shape: Sequence[int] = (28, 28, 1), **kwargs) -> tfd.TransformedDistribution:
    """:func:`build_partition_flow` with :func:`bad_partition`: the same flow, other masks.

    >>> import flowlab, numpy as np
    >>> flow = build_bad_partition_flow((4, 4, 1), filters=2)
    >>> flow.log_prob(np.full((4, 4, 1), 0.5, np.float32)).shape
    TensorShape([])
    """
    return build_partition_flow(image_shape, bad_partition, name="bad_partition", **kwargs)
