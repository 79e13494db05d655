"""What every flowlab bijector must do, checked in one place: :func:`assert_bijective`.

zuko and flowjax test every transform in one loop; this is that loop's body. ``tests/test_bijectors.py``
runs it over every flowlab bijector; a bijector's own test file keeps only what is particular to it
(its formula against a reference, its tails, its errors).

Inputs are always fresh tensors (:func:`fresh`): TFP caches ``forward``/``inverse`` pairs by tensor,
so a round trip on the same tensor would hand back the input it remembers and could not fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["assert_bijective", "fresh", "randomise", "autodiff_log_det", "TRANSFORMERS"]


def fresh(value: Any) -> tf.Tensor:
    """A new tensor holding ``value`` (TFP's bijector cache cannot answer for it)."""
    return tf.constant(np.array(value))


def randomise(module: tf.Module, seed: int = 0, scale: float = 0.3,
              add_to: Callable[[tf.Variable], bool] | None = None) -> tf.Module:
    """Give ``module``'s trainable variables random values; build it (call it once) first.

    New flows are often the identity (zero-initialised output layers), which hides bugs. A variable
    that is all zeros is filled everywhere; in any other, exact zeros stay zero (MADE's masks live in
    its kernels as exact zeros, kept by TFP's constraint), and the rest are replaced by noise of
    standard deviation ``scale``. Variables for which ``add_to`` is true get the noise added instead."""
    rng = np.random.default_rng(seed)
    for variable in module.trainable_variables:
        value = variable.numpy()
        noise = (scale * rng.standard_normal(value.shape)).astype(value.dtype)
        if add_to is not None and add_to(variable):
            variable.assign(value + noise)
        else:
            variable.assign(noise if not value.any() else np.where(value != 0, noise, 0.0).astype(value.dtype))
    return module


def autodiff_log_det(fn: Callable[[tf.Tensor], tf.Tensor], x: Any, event_ndims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sign, log |det d fn(x) / dx|)`` per event of ``x`` (one batch axis), from autodiff (float64 slogdet).

    ``event_ndims = 0``: elementwise, the sign and log of each derivative."""
    x = fresh(x)
    n = int(x.shape[0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        flat = tf.reshape(y, [n, -1])  # on the tape: a reshape outside it would cut the gradient
    if event_ndims == 0:
        derivative = tape.gradient(y, x).numpy().astype(np.float64)
        return np.sign(derivative), np.log(np.abs(derivative))
    jacobian = tape.batch_jacobian(flat, x).numpy().reshape(n, -1, int(np.prod(x.shape[1:])))
    assert jacobian.shape[1] == jacobian.shape[2], f"a bijection keeps the dimension, got Jacobians {jacobian.shape}"
    sign, log_abs = np.linalg.slogdet(jacobian.astype(np.float64))
    assert np.all(sign != 0), "a singular Jacobian: the map is not invertible there"
    return sign, log_abs


def assert_bijective(bijector: Any, x: Any, event_ndims: int, *, y: Any = None, atol: float = 1e-5,
                     rtol: float = 1e-5, log_det_atol: float = 1e-4, log_det_rtol: float = 1e-5,
                     volume_preserving: bool = False, orientation_preserving: bool = False,
                     constant_jacobian: bool = False, gradients: bool = True) -> None:
    """Assert that ``bijector`` is a bijection with an exact log-det, on the inputs ``x``.

    ``x`` has at least one batch axis before its ``event_ndims`` event axes (more batch axes check
    that they broadcast; parameters with a batch shape must match ``x``'s single batch axis). Checks:

    * shapes: ``forward`` keeps the batch axes and gives ``forward_event_shape`` events, the log-dets
      have the batch shape (one per event; a ``constant_jacobian`` one, TFP-style, may broadcast to it);
    * round trips both ways: ``inverse(forward(x)) == x`` and ``forward(inverse(y)) == y`` for ``y``
      (default: ``forward(x)``; give points of the range where they differ, e.g. (0, 1) for CDFs);
    * ``forward_log_det_jacobian`` equals autodiff's ``log |det J|`` (``batch_jacobian`` + slogdet),
      and ``inverse_log_det_jacobian`` at ``forward(x)`` is its negative;
    * the log-det is not zero everywhere unless ``volume_preserving`` (then it is zero): a test
      whose log-det is 0 could not catch a missing term; with ``orientation_preserving``, det J > 0
      (an increasing map, for elementwise bijectors);
    * gradients of ``forward`` and its log-det with respect to ``x`` and the bijector's trainable
      variables are finite.
    """
    x = np.asarray(x)
    batch = x.shape[: x.ndim - event_ndims]
    assert len(batch) >= 1, "x needs a batch axis before its event axes"

    forward = bijector.forward(fresh(x))
    assert tuple(forward.shape[: len(batch)]) == batch, (forward.shape, batch)
    event_out = tuple(bijector.forward_event_shape(x.shape[len(batch):]))
    assert tuple(forward.shape[len(batch):]) == event_out, (forward.shape, event_out)
    forward = forward.numpy()
    assert np.all(np.isfinite(forward)), "forward gave non-finite values"

    np.testing.assert_allclose(bijector.inverse(fresh(forward)), x, atol=atol, rtol=rtol,
                               err_msg="inverse(forward(x)) != x")
    ys = forward if y is None else np.asarray(y)
    np.testing.assert_allclose(bijector.forward(fresh(bijector.inverse(fresh(ys)))), ys, atol=atol, rtol=rtol,
                               err_msg="forward(inverse(y)) != y")

    fldj = bijector.forward_log_det_jacobian(fresh(x), event_ndims=event_ndims).numpy()
    assert np.broadcast_shapes(fldj.shape, batch) == batch, (fldj.shape, batch)
    if event_ndims and not (volume_preserving or constant_jacobian):  # one per event, not broadcast
        assert fldj.shape == batch, (fldj.shape, batch)
    fldj = np.broadcast_to(fldj, batch)
    ildj = np.broadcast_to(bijector.inverse_log_det_jacobian(fresh(forward), event_ndims=event_ndims).numpy(), batch)
    np.testing.assert_allclose(ildj, -fldj, atol=log_det_atol, rtol=log_det_rtol,
                               err_msg="inverse log-det at forward(x) != -forward log-det at x")

    event_shape = x.shape[len(batch):]
    # One batch axis for batch_jacobian; elementwise maps keep theirs (parameters may have a batch shape).
    flat = x.reshape((-1, *event_shape)) if event_ndims else x
    sign, expected = autodiff_log_det(bijector.forward, flat, event_ndims)
    expected = expected.reshape(batch)
    if orientation_preserving:
        assert np.all(sign > 0), "det J <= 0 somewhere: the map does not preserve orientation (is not increasing)"
    np.testing.assert_allclose(fldj, expected, atol=log_det_atol, rtol=log_det_rtol,
                               err_msg="forward log-det != autodiff log |det J|")
    if volume_preserving:
        np.testing.assert_allclose(fldj, 0.0, atol=log_det_atol)
    else:
        assert np.abs(fldj).max() > 1e-3, "the log-det is ~0 everywhere: this test could not catch a missing term"

    if gradients:
        variables = list(getattr(bijector, "trainable_variables", ()))
        inputs = fresh(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = (tf.reduce_sum(bijector.forward(inputs))
                    + tf.reduce_sum(bijector.forward_log_det_jacobian(inputs, event_ndims=event_ndims)))
        grads = tape.gradient(loss, [inputs, *variables])
        assert grads[0] is not None, "no gradient with respect to x"
        for name, grad in zip(["x", *(v.name for v in variables)], grads):
            if grad is not None:
                assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy())), f"non-finite gradient for {name}"


def _softplus_scale(params: tf.Tensor) -> Any:
    """A transformer written as a plain function: z * softplus(a) + b."""
    import tensorflow_probability as tfp

    tfb = tfp.bijectors
    return tfb.Chain([tfb.Shift(params[..., 0]), tfb.Scale(tf.math.softplus(params[..., 1]) + 1e-3)])


def _transformers() -> dict[str, Any]:
    from flowlab.transformers import (
        AdditiveTransformer,
        AffineTransformer,
        FunctionTransformer,
        MixtureCDFTransformer,
        SplineTransformer,
    )

    return {
        "additive": AdditiveTransformer(),
        "affine": AffineTransformer(log_scale_bound=3.0),
        "affine_unbounded": AffineTransformer(log_scale_bound=None),
        "spline": SplineTransformer(bins=5, bound=3.0),
        "mixture_cdf": MixtureCDFTransformer(components=3),
        "function": FunctionTransformer(_softplus_scale, params_per_dim=2),
    }


# One of each flowlab transformer: the cases test_transformers and test_bijectors loop over.
TRANSFORMERS = _transformers()
