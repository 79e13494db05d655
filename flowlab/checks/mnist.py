"""Checks for lab 04, MNIST RealNVP: dequantization, logit, checkerboard mask, affine coupling, bits/dim, training."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.checks.core import CheckFailed, check, is_stub, require, to_numpy

__all__ = [
    "dequantize",
    "logit",
    "checkerboard_mask",
    "affine_coupling",
    "bits_per_dim",
    "trained_flow",
]

tfd = tfp.distributions

_DIMS = 784


def _callable(fn: Any, what: str) -> None:
    if is_stub(fn):
        raise CheckFailed(f"{what} is still a placeholder: fill in the TODO above")
    require(callable(fn), f"{what} should be a function, got {type(fn).__name__}")


def _pixels() -> np.ndarray:
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(200, 4, 4, 1)).astype(np.uint8)
    pixels[0, 0, 0, 0], pixels[0, 0, 1, 0] = 0, 255
    return pixels


@check("uniform dequantization (x + u) / 256")
def dequantize(fn: Callable) -> None:
    """Values in each pixel's own bin [x/256, (x+1)/256), uniform noise, new noise on every call."""
    _callable(fn, "dequantize")
    x = _pixels()
    result = fn(x)
    y = to_numpy(result, "dequantize(images)")
    require(y.shape == x.shape, f"dequantize(images) has shape {y.shape}, expected the images' shape {x.shape}")
    dtype = getattr(result, "dtype", None)
    is_float = dtype is not None and (getattr(dtype, "is_floating", False) or np.dtype(str(getattr(dtype, "name", dtype))).kind == "f")
    require(bool(is_float), "dequantize should return floats (tf.float32): cast the integer pixels first")
    u = y * 256.0 - x
    if np.all((y - x >= 0) & (y - x <= 1)) and y.max() > 1.0:
        raise CheckFailed("the values are x + u, in pixel units: divide by 256 so they lie in [0, 1)")
    if np.allclose(u, 0.0, atol=1e-6):
        raise CheckFailed("no noise was added: add u ~ U[0, 1) to each pixel before dividing by 256")
    require(bool(np.all((u >= -1e-4) & (u <= 1.0 + 1e-4))),
            "each value must stay in its pixel's bin [x/256, (x+1)/256): the noise should be uniform on [0, 1)")
    require(bool(abs(u.mean() - 0.5) < 0.05 and abs(u.std() - math.sqrt(1 / 12)) < 0.05),
            "the noise does not look uniform on [0, 1): use tf.random.uniform(shape) (minval 0, maxval 1)")
    require(float(np.std(u.reshape(len(x), -1), axis=1).mean()) > 0.1,
            "every pixel needs its own noise: draw u with the images' full shape")
    again = to_numpy(fn(x), "dequantize(images) called again")
    require(not bool(np.allclose(again, y)), "two calls gave the same noise: draw fresh noise on every call")


def _logit_reference(y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    p = alpha + (1 - 2 * alpha) * y
    return np.log(p) - np.log1p(-p), np.log1p(-2 * alpha) - np.log(p) - np.log1p(-p)


@check("logit transform and its log-determinant")
def logit(transform: Callable, log_det: Callable) -> None:
    """z = logit(alpha + (1 - 2 alpha) y) and log|dz/dy| elementwise, for alpha = 0.05 and alpha = 0."""
    _callable(transform, "logit_transform")
    _callable(log_det, "logit_log_det")
    edges = np.array([0.0, 1e-3, 0.25, 0.5, 0.9, 1.0 - 1e-3, 1.0], dtype=np.float32)
    inner = edges[1:-1]
    for alpha, y in ((0.05, edges), (0.0, inner)):
        z = to_numpy(transform(tf.constant(y), alpha), "logit_transform(y, alpha)")
        ldj = to_numpy(log_det(tf.constant(y), alpha), "logit_log_det(y, alpha)")
        ref_z, ref_ldj = _logit_reference(y.astype(np.float64), alpha)
        require(z.shape == y.shape and ldj.shape == y.shape,
                f"for {len(y)} values got shapes {z.shape} and {ldj.shape}: both functions work elementwise")
        require(bool(np.all(np.isfinite(z)) and np.all(np.isfinite(ldj))),
                f"non-finite values at alpha={alpha}: with alpha > 0, y = 0 and y = 1 must give finite logits")
        require(bool(np.allclose(z, ref_z, rtol=1e-4, atol=1e-4)),
                f"logit_transform is wrong at alpha={alpha}: z = log(p) - log(1 - p) with p = alpha + (1 - 2 alpha) y")
        if np.allclose(ldj, -ref_ldj, rtol=1e-4, atol=1e-4):
            raise CheckFailed("the log-det has the wrong sign: dz/dy is positive and large near 0 and 1")
        if alpha > 0 and np.allclose(ldj, ref_ldj - np.log1p(-2 * alpha), rtol=1e-4, atol=1e-4):
            raise CheckFailed("the log-det misses log(1 - 2 alpha): the chain rule through p = alpha + (1 - 2 alpha) y")
        require(bool(np.allclose(ldj, ref_ldj, rtol=1e-4, atol=1e-4)),
                f"logit_log_det is wrong at alpha={alpha}: log|dz/dy| = log(1 - 2 alpha) - log(p) - log(1 - p)")


@check("checkerboard mask")
def checkerboard_mask(fn: Callable) -> None:
    """(height, width, channels) array of 0/1; 1 where (row + column) % 2 == parity."""
    _callable(fn, "checkerboard_mask")
    for h, w, c, parity in ((4, 4, 1, 0), (4, 4, 1, 1), (3, 5, 2, 0), (28, 28, 1, 1)):
        mask = to_numpy(fn(h, w, c, parity), f"checkerboard_mask({h}, {w}, {c}, {parity})")
        require(mask.shape == (h, w, c), f"checkerboard_mask({h}, {w}, {c}, {parity}) has shape {mask.shape}, "
                f"expected ({h}, {w}, {c})")
        require(bool(np.all((mask == 0) | (mask == 1))), "a mask holds only 0s and 1s")
        rows, cols = np.indices((h, w))
        expected = np.repeat(((rows + cols) % 2 == parity)[:, :, None], c, axis=2)
        if np.array_equal(mask, 1 - expected):
            raise CheckFailed("the parities are swapped: parity=0 puts a 1 at the top-left pixel, (row + col) even")
        require(bool(np.array_equal(mask, expected)),
                f"checkerboard_mask({h}, {w}, {c}, {parity}) is not a checkerboard: 1 where (row + col) % 2 == parity, "
                "the same in every channel")


_MASK = np.repeat(((np.indices((4, 4)).sum(axis=0) % 2) == 0)[:, :, None], 1, axis=2).astype(np.float32)


def _conditioner(xm: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """A fixed 'network': shift and log-scale from the neighbours (never zero where the mask is 1)."""
    xm = tf.convert_to_tensor(xm, tf.float32)
    neighbour = tf.roll(xm, 1, axis=2) + tf.roll(xm, -1, axis=1) + 0.7 * xm  # the centre: 0 unless copied
    return 0.5 * neighbour + 0.1, 0.4 * tf.tanh(neighbour) + 0.2


def _coupling_reference(x: np.ndarray, conditioner_input: np.ndarray, masked: bool = True) -> tuple[np.ndarray, np.ndarray]:
    shift, log_scale = (t.numpy().astype(np.float64) for t in _conditioner(conditioner_input))
    b = _MASK if masked else np.zeros_like(_MASK)
    y = b * x + (1 - b) * (x * np.exp(log_scale) + shift)
    return y, ((1 - b) * log_scale).sum(axis=(1, 2, 3))


@check("affine coupling: forward, log-det and inverse")
def affine_coupling(forward: Callable, inverse: Callable) -> None:
    """forward(x, mask, conditioner) -> (y, log_det); inverse(y, mask, conditioner) -> x."""
    _callable(forward, "coupling_forward")
    _callable(inverse, "coupling_inverse")
    x = np.random.default_rng(5).standard_normal((5, 4, 4, 1)).astype(np.float32)
    out = forward(tf.constant(x), tf.constant(_MASK), _conditioner)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise CheckFailed("coupling_forward should return two things: (y, log_det)")
    y = to_numpy(out[0], "y from coupling_forward")
    log_det = to_numpy(out[1], "log_det from coupling_forward")
    y_ref, ld_ref = _coupling_reference(x.astype(np.float64), x * _MASK)
    require(y.shape == x.shape, f"y has shape {y.shape}, expected {x.shape}")
    if np.allclose(y, _coupling_reference(x, x)[0], atol=1e-4):
        raise CheckFailed("the conditioner must read only the copied half: call it on mask * x, not x")
    if np.allclose(y, _coupling_reference(x, x * _MASK, masked=False)[0], atol=1e-4):
        raise CheckFailed("the pixels where the mask is 1 must pass through unchanged: y = b*x + (1-b)*(x*exp(s) + t)")
    require(bool(np.allclose(y, y_ref, atol=1e-4)), "y is wrong: y = mask*x + (1-mask)*(x*exp(log_scale) + shift), "
            "with (shift, log_scale) = conditioner(mask*x)")
    if log_det.shape == x.shape:
        raise CheckFailed("log_det has one value per pixel: sum it over height, width and channels (one per image)")
    require(log_det.shape == (len(x),), f"log_det has shape {log_det.shape}, expected ({len(x)},): one per image")
    if np.allclose(log_det, _coupling_reference(x, x * _MASK, masked=False)[1], atol=1e-3):
        raise CheckFailed("the log-det counts the copied pixels too: sum (1 - mask) * log_scale")
    require(bool(np.allclose(log_det, ld_ref, atol=1e-3)), "log_det is wrong: the sum of (1 - mask) * log_scale")
    back = to_numpy(inverse(tf.constant(y_ref.astype(np.float32)), tf.constant(_MASK), _conditioner),
                    "coupling_inverse(y, mask, conditioner)")
    require(back.shape == x.shape, f"coupling_inverse returned shape {back.shape}, expected {x.shape}")
    require(bool(np.allclose(back, x, atol=1e-4)), "coupling_inverse(coupling_forward(x)) is not x: recompute "
            "(shift, log_scale) from mask*y (the same as mask*x) and undo: x = mask*y + (1-mask)*(y - shift)*exp(-log_scale)")


@check("bits per dimension")
def bits_per_dim(fn: Callable) -> None:
    """-log_prob / (D ln 2) + 8 for densities of (x + u) / 256."""
    _callable(fn, "to_bits_per_dim")
    log_prob = np.array([0.0, -_DIMS * math.log(2.0), -3000.0, 1000.0], dtype=np.float32)
    got = to_numpy(fn(tf.constant(log_prob), _DIMS), "to_bits_per_dim(log_prob, num_dims)")
    expected = -log_prob.astype(np.float64) / (_DIMS * math.log(2.0)) + 8.0
    require(got.shape == log_prob.shape, f"got shape {got.shape} for {len(log_prob)} log-probabilities: work elementwise")
    if np.allclose(got, expected - 8.0, atol=1e-4):
        raise CheckFailed("add the log-det of dividing by 256: log2(256) = 8 bits per dimension "
                          "(a uniform density on [0, 1) must score 8 bits/dim)")
    if np.allclose(got, (expected - 8.0) * math.log(2.0) + math.log(256.0), atol=1e-4):
        raise CheckFailed("that is nats per dimension: divide by ln 2 to get bits")
    if np.allclose(got, -(expected - 8.0) + 8.0, atol=1e-4):
        raise CheckFailed("mind the sign: bits/dim is the NEGATIVE log-likelihood per dimension")
    require(bool(np.allclose(got, expected, atol=1e-4)),
            "bits/dim = -log_prob / (num_dims * ln 2) + log2(256)")


@check("test bits/dim of the trained RealNVP")
def trained_flow(flow: Any, y_test: Any, test_bpd: Any) -> None:
    """``test_bpd`` is the flow's mean bits/dim on ``y_test`` (every log-det counted), and it is below 5."""
    if is_stub(flow):
        raise CheckFailed("flow is still a placeholder")
    require(isinstance(flow, tfd.Distribution), f"flow should be a TFP distribution, got {type(flow).__name__}")
    from flowlab.bits_per_dim import bits_per_dim as reference

    y = np.asarray(y_test, dtype=np.float32)
    values = [to_numpy(flow.log_prob(tf.constant(y[i : i + 250])), "flow.log_prob(y_test)") for i in range(0, len(y), 250)]
    expected = float(np.mean(reference(np.concatenate(values), _DIMS)))
    require(bool(np.isfinite(expected)), "the test log-likelihood is not finite: did training diverge?")
    got = to_numpy(test_bpd, "test_bpd")
    require(got.size == 1, f"test_bpd should be one number (the mean over the test images), got shape {got.shape}")
    value = float(got.reshape(()))
    if np.isclose(value, expected - 8.0, atol=1e-3):
        raise CheckFailed("test_bpd misses the 8 bits of the rescaling by 256: use your to_bits_per_dim")
    require(bool(np.isclose(value, expected, rtol=1e-3, atol=1e-3)),
            "test_bpd should be the mean of to_bits_per_dim(log_prob, 784) over y_test, log_prob from the trained model")
    require(expected < 5.0, "the flow is not clearly better than a uniform model (8 bits/dim) on test images: "
            "was model.fit run on the dequantized data?")
