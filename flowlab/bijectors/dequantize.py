r"""Dequantization and the logit transform: turning 8-bit pixels into something a flow can model.

**Why dequantize.**  Pixels take 256 values.  A continuous density can put an arbitrarily tall,
narrow spike on each of them, so its log-likelihood on raw integers is unbounded and training
chases it to infinity instead of learning the images.  Adding uniform noise,
:math:`y = (x + u) / 256` with :math:`u \sim U[0, 1)^D`, spreads each value over its own bin, and
then (Theis et al. 2016)

.. math:: \log P(x) \ge \mathbb{E}_u\big[\log p(y)\big] - D \log 256,

so the continuous model's likelihood bounds the discrete one.  The :math:`- D\log 256` is the
log-det of dividing by 256; :func:`flowlab.bits_per_dim.bits_per_dim` adds it back, so a uniform
density on :math:`[0, 1)^D` scores exactly 8 bits per dimension.  Draw fresh noise every epoch
(:func:`dequantized_dataset`), or the model overfits one draw of it.

**Why the logit.**  Flows are built from maps of the whole real line; the data live in
:math:`[0, 1)`.  RealNVP (Dinh et al. 2016, section 4.1) models
:math:`\operatorname{logit}(\alpha + (1 - 2\alpha) y)` with :math:`\alpha = 0.05`, which keeps the
boundaries away from :math:`\pm\infty`.  :class:`~flowlab.bijectors.logit.Logit` (in
:mod:`flowlab.bijectors.logit`) is that map as a bijector, with the exact
log-det

.. math:: \log\left|\frac{dz}{dy}\right| = \log(1 - 2\alpha) - \log p - \log(1 - p),
    \qquad p = \alpha + (1 - 2\alpha) y,

so a flow in logit space still reports densities of :math:`y`.

Example::

    ds = dequantized_dataset(images_uint8, batch_size=64, seed=0)        # fresh u every epoch
    flow = tfd.TransformedDistribution(base, tfb.Chain([tfb.Invert(Logit(0.05)), realnvp]))
    bits_per_dim(flow.log_prob(batch), num_dims=784)

References: L. Theis, A. van den Oord, M. Bethge, "A note on the evaluation of generative models"
(2016); L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.logit import FunctionLogit, Logit  # moved: the logit is its own bijector module
from flowlab.validation import integer

__all__ = ["NUM_LEVELS", "uniform_dequantize", "dequantized_dataset", "Logit", "FunctionLogit"]

tfb = tfp.bijectors

NUM_LEVELS = 256


def _levels(num_levels: Any) -> int:
    return integer(num_levels, "num_levels", minimum=2)


def uniform_dequantize(
    x: Any, seed: Any = None, num_levels: int = NUM_LEVELS, generator: tf.random.Generator | None = None
) -> tf.Tensor:
    """``(x + u) / num_levels`` with ``u ~ U[0, 1)``: integer pixels in ``{0, ..., num_levels-1}`` to ``[0, 1)``.

    Noise comes from ``generator`` if given (a new draw every call, also inside ``tf.data``), else
    from a stateless draw with ``seed`` (a pair of ints), else from TensorFlow's global RNG.
    Raises ``InvalidArgumentError`` for pixel values that are not integers.

    >>> import flowlab, numpy as np
    >>> y = uniform_dequantize(np.array([0, 128, 255]), seed=(1, 2)).numpy()
    >>> bool(np.all((np.array([0, 128, 255]) / 256 <= y) & (y < np.array([1, 129, 256]) / 256)))   # each in its bin
    True
    """
    num_levels = _levels(num_levels)
    x = tf.convert_to_tensor(x)
    if x.dtype.is_floating:
        tf.debugging.assert_equal(x, tf.round(x), message="uniform_dequantize expects integer pixel values")
    x = tf.cast(x, tf.float32)
    if generator is not None:
        u = generator.uniform(tf.shape(x), dtype=tf.float32)
    elif seed is not None:
        u = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=tf.float32)
    else:
        u = tf.random.uniform(tf.shape(x), dtype=tf.float32)
    return (x + u) / float(num_levels)


def dequantized_dataset(
    images: Any,
    batch_size: int = 64,
    seed: int = 0,
    shuffle: bool = True,
    num_levels: int = NUM_LEVELS,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of dequantized batches with **fresh noise every epoch**.

    ``images`` are integer pixels ``(n, ...)``.  The noise comes from a seeded
    ``tf.random.Generator`` whose state advances with every batch, so each pass over the data
    sees new ``u`` (a stateful op seeded once would repeat the same noise each epoch) and the run
    is still reproducible.  Each batch is :func:`uniform_dequantize`'s ``(x + u) / num_levels``,
    ``u ~ U[0, 1)``: continuous values in ``[0, 1)`` whose floor recovers the pixels.

    Args:
      images: integer pixels in ``0..num_levels - 1``, shape ``(n, ...)`` (e.g. ``(n, 28, 28, 1)``).
      batch_size: images per batch (the last batch may be smaller).
      seed: seeds the noise generator and the shuffle.
      shuffle: reshuffle the images every epoch.
      num_levels: pixel levels (256 for 8-bit images).

    Raises ``ValueError`` for an empty array, an array of one axis, or values that are not integers
    in ``0..num_levels - 1`` (images already scaled to ``[0, 1]``); ``flowlab.validation.ArgumentError``
    for a ``batch_size`` or ``num_levels`` that is not a positive integer.

    >>> import flowlab, numpy as np
    >>> pixels = np.array([[0, 255], [17, 128]], np.uint8)
    >>> data = dequantized_dataset(pixels, batch_size=2, shuffle=False)
    >>> first, second = next(iter(data)).numpy(), next(iter(data)).numpy()   # two epochs
    >>> first.shape, bool(((first >= 0) & (first < 1)).all())
    ((2, 2), True)
    >>> bool((np.floor(first * 256) == pixels).all()), bool((first != second).all())   # new noise each epoch
    (True, True)
    >>> dequantized_dataset(pixels / 255.0)
    Traceback (most recent call last):
    ...
    ValueError: images must hold integers in 0..255; did you scale them already?

    Reference: Theis, van den Oord, Bethge, "A note on the evaluation of generative models" (ICLR 2016);
    Ho et al., "Flow++" (ICML 2019), section 3.1.
    """
    num_levels = _levels(num_levels)
    array = np.asarray(images)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"images must be a non-empty array (n, ...), got shape {array.shape}")
    if array.min() < 0 or array.max() > num_levels - 1 or not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f"images must hold integers in 0..{num_levels - 1}; did you scale them already?")
    batch_size = integer(batch_size, "batch_size")
    generator = tf.random.Generator.from_seed(int(seed))
    ds = tf.data.Dataset.from_tensor_slices(array.astype(np.uint8))
    if shuffle:
        ds = ds.shuffle(len(array), seed=int(seed), reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x: uniform_dequantize(x, num_levels=num_levels, generator=generator))
    return ds.prefetch(2)
