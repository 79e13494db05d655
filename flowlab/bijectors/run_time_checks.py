"""Run-time input checks a bijector attaches when ``validate_args=True`` (TFP's convention).

A bijector checks what it can when it is called: static shapes. Inside a ``tf.function`` a shape may be
known only at run time, and values are never known before; with ``validate_args=True`` these helpers
attach ``tf.debugging`` assertions to the input, so a bad input stops with an ``InvalidArgumentError``
that names the problem instead of NaN passed on or a raw reshape error. Without ``validate_args`` a
bijector does not call them: no op is added.

>>> import tensorflow as tf
>>> x = finite(tf.constant([[1.0, 2.0]]), "layer", "the input")
>>> with_assertions(x, ending_in(x, (2,), "layer: too few axes", "layer: wrong shape")).shape
TensorShape([1, 2])
>>> try:
...     finite(tf.constant([float("nan")]), "layer", "the input")
... except tf.errors.InvalidArgumentError as failed:
...     print("holds NaN or infinite values" in failed.message)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = ["finite", "ending_in", "with_assertions"]


def finite(x: tf.Tensor, name: str, what: str) -> tf.Tensor:
    """``x``, asserted finite at run time: "NAME: WHAT holds NaN or infinite values" otherwise."""
    return tf.debugging.assert_all_finite(x, f"{name}: {what} holds NaN or infinite values")


def ending_in(x: tf.Tensor, shape: Sequence[int], rank_message: str, shape_message: str) -> list[tf.Operation]:
    """Assertions that ``x``'s shape ends in ``shape``; none when its static shape already settles it."""
    ndims = len(shape)
    tail = x.shape[-ndims:] if x.shape.rank is not None and x.shape.rank >= ndims else None
    if tail is not None and tail.is_fully_defined():  # the bijector's static check has settled it
        return []
    return [
        tf.debugging.assert_rank_at_least(x, ndims, message=rank_message),
        tf.debugging.assert_equal(tf.shape(x)[tf.rank(x) - ndims:], tf.constant(tuple(shape), tf.int32),
                                  message=shape_message),
    ]


def with_assertions(x: tf.Tensor, assertions: Sequence[tf.Operation]) -> tf.Tensor:
    """``x``, evaluated only after ``assertions`` have passed (``x`` itself when there are none)."""
    if not assertions:
        return x
    with tf.control_dependencies(assertions):
        return tf.identity(x)
