r"""The multi-scale architecture (Dinh et al. 2016, section 3.6) as one bijector: :class:`MultiScale`.

In the generative direction the latent, packed in the image's shape, is unpacked into one part per
scale; the coarsest part goes through ``final``, and each level joins the part factored out at its
scale to what comes from below (half the channels each) and maps the result up to the next, finer
scale.  In the data-to-latent direction (:meth:`MultiScale.inverse_by_scale`) each level maps its
input down and sends half of the channels straight to the base.  The builder that fills the levels
with couplings, :func:`~flowlab.flows.multiscale.build_multiscale_realnvp`, and the helpers that read
a trained flow by scale (``bits_by_scale``, ``latents_by_scale``, ``sample_images``) live in
:mod:`flowlab.flows.multiscale`; Glow (:mod:`flowlab.flows.glow`) uses the same bijector.

References: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016);
D. P. Kingma, P. Dhariwal, "Glow" (2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.cached_log_det import CachedLogDet
from flowlab.bijectors.run_time_checks import ending_in, finite, with_assertions
from flowlab.validation import ArgumentError, integers

__all__ = ["MultiScale"]

tfb = tfp.bijectors


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

    Raises ``ValueError`` for a level that leaves an odd number of channels, latents that do not add
    up to the image, or inputs not of the image's shape.  With ``validate_args=True`` it also checks
    at run time (inside ``tf.function`` too) that the inputs are finite and, where the shape is only
    known then, that they end in ``image_shape``: ``InvalidArgumentError`` naming the problem.

    >>> import tensorflow_probability as tfp
    >>> from flowlab.bijectors.squeeze import Squeeze
    >>> unsqueeze = tfp.bijectors.Invert(Squeeze())      # one level: (2, 2, 4) -> (4, 4, 1)
    >>> MultiScale((4, 4, 1), [unsqueeze], tfp.bijectors.Identity()).latent_shapes
    [(2, 2, 2), (2, 2, 2)]
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
        # Sizes unknown at trace time (None) are left to validate_args's run-time check.
        if x.shape.rank is not None and (x.shape.rank < 3 or not x.shape[-3:].is_compatible_with(self._image_shape)):
            raise ValueError(f"{self.name}: expected images of shape (..., {', '.join(map(str, self._image_shape))}), "
                             f"got {tuple(x.shape)}")

    def _validated(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """``x`` with run-time checks when ``validate_args``: finite and ending in ``image_shape``."""
        if not self.validate_args:
            return x
        x = finite(x, self.name, what)
        needs = f"{self.name}: {what} needs shape (..., {', '.join(map(str, self._image_shape))})"
        return with_assertions(x, ending_in(x, self._image_shape, rank_message=needs, shape_message=needs))

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
        h, parts, log_dets = self._validated(x, "the image"), [], []
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
        self._check(z)
        parts = self.split_latents(self._validated(z, "the latent"))
        h = self._final.forward(parts[-1])
        fldj = self._final.forward_log_det_jacobian(parts[-1], event_ndims=3)
        for level, part in zip(reversed(self._levels), reversed(parts[:-1])):
            joined = tf.concat([part, h], axis=-1)
            h = level.forward(joined)
            fldj += level.forward_log_det_jacobian(joined, event_ndims=3)
        self._cache.forward_attributes(z)["ildj"] = -fldj
        return h
