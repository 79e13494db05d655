r"""Squeeze: trade space for channels, :math:`H \times W \times C \to H/2 \times W/2 \times 4C`.

Each 2×2 block of pixels becomes one pixel with four times the channels (space-to-depth).  It only
moves numbers around, so it is a permutation: volume preserving, :math:`\log|\det J| = 0`.  RealNVP
(Dinh et al. 2016, section 3.6) squeezes between its checkerboard and channel-wise couplings, so
that the coarser scale's convolutions see a wider neighbourhood.

Example::

    squeeze = Squeeze()
    squeeze.forward(tf.zeros([8, 28, 28, 1])).shape    # (8, 14, 14, 4)
    squeeze.inverse(tf.zeros([8, 14, 14, 4])).shape    # (8, 28, 28, 1)

Reference: L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.run_time_checks import finite, with_assertions

__all__ = ["Squeeze"]

tfb = tfp.bijectors


class Squeeze(tfb.Bijector):
    """Space-to-depth with 2×2 blocks on images of event shape ``(H, W, C)``; ``H`` and ``W`` must be even.

    A permutation of the pixels: the log-det is 0.  Raises ``ValueError`` for odd ``H`` or ``W`` or
    inputs of fewer than three axes.  With ``validate_args=True`` it also checks at run time what the
    static shape may not tell inside ``tf.function`` -- three axes, even ``H`` and ``W`` (forward),
    channels a multiple of 4 (inverse) -- and that the inputs are finite: ``InvalidArgumentError``
    naming the problem instead of TensorFlow's ``space_to_depth`` error.

    >>> import flowlab, tensorflow as tf
    >>> x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
    >>> Squeeze().forward(x).shape, float(Squeeze().forward_log_det_jacobian(x, event_ndims=3))
    (TensorShape([1, 2, 2, 4]), 0.0)
    >>> bool(tf.reduce_all(Squeeze().inverse(Squeeze().forward(x)) == x))
    True

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (2017), section 3.6.
    """

    def __init__(self, validate_args: bool = False, name: str = "squeeze") -> None:
        parameters = dict(locals())
        super().__init__(
            forward_min_event_ndims=3,
            is_constant_jacobian=True,
            validate_args=validate_args,
            parameters=parameters,
            name=name,
        )

    @staticmethod
    def _static_event(shape: tf.TensorShape, what: str) -> tuple:
        shape = tf.TensorShape(shape)
        if shape.rank is not None and shape.rank < 3:
            raise ValueError(f"Squeeze needs images of shape (..., height, width, channels), "
                             f"got {what} of shape {tuple(shape)}")
        return tuple(shape[-3:]) if shape.rank is not None else (None, None, None)

    def _check_even(self, shape: tf.TensorShape) -> None:
        height, width, _ = self._static_event(shape, "an input")
        for size, name in ((height, "height"), (width, "width")):
            if size is not None and size % 2:
                raise ValueError(f"Squeeze needs an even {name} to make 2x2 blocks, got {name} {size} "
                                 f"(input shape {tuple(shape)}); pad or crop the images first")

    def _validated(self, x: tf.Tensor, divisors: tuple[tuple[int, int, str], ...], what: str) -> tf.Tensor:
        """``x`` with run-time checks when ``validate_args``: finite, 3+ axes, each axis ``(-k, d, name)`` divisible."""
        if not self.validate_args:
            return x
        x = finite(x, self.name, what)
        shape = tf.shape(x)
        assertions = [tf.debugging.assert_rank_at_least(
            x, 3, message=f"{self.name}: {what} needs shape (..., height, width, channels)")]
        for axis, divisor, name in divisors:
            if x.shape.rank is None or x.shape[axis] is None:  # a known size was checked statically
                assertions.append(tf.debugging.assert_equal(
                    shape[axis] % divisor, 0,
                    message=f"{self.name}: {what} needs its {name} divisible by {divisor}; pad or crop the images"))
        return with_assertions(x, assertions)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        self._check_even(x.shape)
        x = self._validated(x, ((-3, 2, "height"), (-2, 2, "width")), "the input to forward")
        shape = tf.shape(x)
        batch, (h, w, c) = shape[:-3], tf.unstack(shape[-3:])
        flat = tf.reshape(x, tf.concat([[-1], shape[-3:]], 0))
        y = tf.nn.space_to_depth(flat, 2)
        return tf.reshape(y, tf.concat([batch, [h // 2, w // 2, 4 * c]], 0))

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        _, _, channels = self._static_event(y.shape, "an input to the inverse")
        if channels is not None and channels % 4:
            raise ValueError(f"Squeeze's inverse needs a multiple of 4 channels, "
                             f"got {channels} (shape {tuple(y.shape)})")
        y = self._validated(y, ((-1, 4, "channels"),), "the input to inverse")
        shape = tf.shape(y)
        batch, (h, w, c) = shape[:-3], tf.unstack(shape[-3:])
        flat = tf.reshape(y, tf.concat([[-1], shape[-3:]], 0))
        x = tf.nn.depth_to_space(flat, 2)
        return tf.reshape(x, tf.concat([batch, [2 * h, 2 * w, c // 4]], 0))

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        return tf.zeros([], dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        return tf.zeros([], dtype=y.dtype)

    def _forward_event_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        self._check_even(input_shape)
        h, w, c = self._static_event(input_shape, "an event")
        half = lambda d: None if d is None else d // 2  # noqa: E731
        return tf.TensorShape([half(h), half(w), None if c is None else 4 * c])

    def _inverse_event_shape(self, output_shape: tf.TensorShape) -> tf.TensorShape:
        h, w, c = self._static_event(output_shape, "an event")
        if c is not None and c % 4:
            raise ValueError(f"Squeeze's inverse needs a multiple of 4 channels, got {c}")
        double = lambda d: None if d is None else 2 * d  # noqa: E731
        return tf.TensorShape([double(h), double(w), None if c is None else c // 4])

    def _forward_event_shape_tensor(self, input_shape: tf.Tensor) -> tf.Tensor:
        return tf.stack([input_shape[-3] // 2, input_shape[-2] // 2, 4 * input_shape[-1]])

    def _inverse_event_shape_tensor(self, output_shape: tf.Tensor) -> tf.Tensor:
        return tf.stack([2 * output_shape[-3], 2 * output_shape[-2], output_shape[-1] // 4])
