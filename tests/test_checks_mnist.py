"""The MNIST lab's checks: ✔ for right answers written two ways, ✘ with a hint for wrong ones, never a traceback."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.checks import mnist as check

tfd, tfb = tfp.distributions, tfp.bijectors


def verdict(capsys, fn, *args):
    fn(*args)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return out[0]


def ok(capsys, fn, *args):
    line = verdict(capsys, fn, *args)
    assert line.startswith("✔"), line


def bad(capsys, fn, *args, hint=""):
    line = verdict(capsys, fn, *args)
    assert line.startswith("✘"), line
    assert hint in line, line
    return line


# --- dequantize ------------------------------------------------------------------------------------

def dequantize_tf(images):
    x = tf.cast(images, tf.float32)
    return (x + tf.random.uniform(tf.shape(x))) / 256.0


def dequantize_np(images):
    rng = np.random.default_rng()
    return ((np.asarray(images, np.float64) + rng.random(np.shape(images))) / 256).astype(np.float32)


def test_dequantize(capsys):
    ok(capsys, check.dequantize, dequantize_tf)
    ok(capsys, check.dequantize, dequantize_np)
    bad(capsys, check.dequantize, ..., hint="placeholder")
    bad(capsys, check.dequantize, lambda x: tf.cast(x, tf.float32) / 256.0, hint="no noise")
    bad(capsys, check.dequantize, lambda x: tf.cast(x, tf.float32) + tf.random.uniform(x.shape), hint="divide by 256")
    bad(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.normal(x.shape)) / 256.0, hint="bin")
    bad(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + 0.5) / 256.0, hint="uniform")
    fixed = tf.random.stateless_uniform([200, 4, 4, 1], seed=[1, 2])
    bad(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + fixed) / 256.0, hint="fresh noise")
    bad(capsys, check.dequantize, lambda x: (x + np.random.random(x.shape)) // 1, hint="")
    bad(capsys, check.dequantize, lambda x: 1 / 0, hint="ZeroDivisionError")


# --- logit -----------------------------------------------------------------------------------------

def logit_a(y, alpha=0.05):
    p = alpha + (1 - 2 * alpha) * y
    return tf.math.log(p) - tf.math.log(1 - p)


def log_det_a(y, alpha=0.05):
    p = alpha + (1 - 2 * alpha) * y
    return tf.math.log(1 - 2 * alpha) - tf.math.log(p) - tf.math.log(1 - p)


def logit_b(y, alpha=0.05):
    y = np.asarray(y, np.float64)
    return -np.log(1.0 / (alpha + (1 - 2 * alpha) * y) - 1.0)


def log_det_b(y, alpha=0.05):
    y = tf.convert_to_tensor(y)
    p = alpha + (1 - 2 * alpha) * y
    return tf.math.log((1 - 2 * alpha) / (p * (1 - p)))


def test_logit(capsys):
    ok(capsys, check.logit, logit_a, log_det_a)
    ok(capsys, check.logit, logit_b, log_det_b)
    bad(capsys, check.logit, ..., log_det_a, hint="placeholder")
    bad(capsys, check.logit, logit_a, lambda y, a: -log_det_a(y, a), hint="sign")
    bad(capsys, check.logit, logit_a, lambda y, a: log_det_a(y, a) - math.log(1 - 2 * a), hint="1 - 2 alpha")
    bad(capsys, check.logit, lambda y, a: tf.math.log(y) - tf.math.log(1 - y), log_det_a, hint="")
    bad(capsys, check.logit, logit_a, lambda y, a: tf.reduce_sum(log_det_a(y, a)), hint="elementwise")


# --- checkerboard ----------------------------------------------------------------------------------

def board_a(height, width, channels, parity):
    rows, cols = np.indices((height, width))
    return np.repeat(((rows + cols) % 2 == parity)[..., None], channels, axis=-1).astype(np.float32)


def board_b(height, width, channels, parity):
    out = [[[float((i + j + parity + 1) % 2)] * channels for j in range(width)] for i in range(height)]
    return tf.constant(out)


def test_checkerboard(capsys):
    ok(capsys, check.checkerboard_mask, board_a)
    ok(capsys, check.checkerboard_mask, board_b)
    bad(capsys, check.checkerboard_mask, None, hint="placeholder")
    bad(capsys, check.checkerboard_mask, lambda h, w, c, p: board_a(h, w, c, 1 - p), hint="swapped")
    bad(capsys, check.checkerboard_mask, lambda h, w, c, p: board_a(h, w, c, p)[..., 0], hint="shape")
    bad(capsys, check.checkerboard_mask, lambda h, w, c, p: np.ones((h, w, c)), hint="not a checkerboard")
    bad(capsys, check.checkerboard_mask, lambda h, w, c, p: 2 * board_a(h, w, c, p), hint="0s and 1s")


# --- affine coupling -------------------------------------------------------------------------------

def forward_a(x, mask, conditioner):
    shift, log_scale = conditioner(mask * x)
    y = mask * x + (1 - mask) * (x * tf.exp(log_scale) + shift)
    return y, tf.reduce_sum((1 - mask) * log_scale, axis=[1, 2, 3])


def inverse_a(y, mask, conditioner):
    shift, log_scale = conditioner(mask * y)
    return mask * y + (1 - mask) * (y - shift) * tf.exp(-log_scale)


def forward_b(x, mask, conditioner):
    x, mask = np.asarray(x), np.asarray(mask)
    shift, log_scale = (np.asarray(t) * (1 - mask) for t in conditioner(x * mask))
    return x * np.exp(log_scale) + shift, log_scale.reshape(len(x), -1).sum(-1)


def inverse_b(y, mask, conditioner):
    keep = y * mask
    shift, log_scale = conditioner(keep)
    return keep + (1 - mask) * ((y - shift) / tf.exp(log_scale))


def test_affine_coupling(capsys):
    ok(capsys, check.affine_coupling, forward_a, inverse_a)
    ok(capsys, check.affine_coupling, forward_b, inverse_b)
    bad(capsys, check.affine_coupling, ..., inverse_a, hint="placeholder")
    bad(capsys, check.affine_coupling, lambda x, m, c: forward_a(x, m, c)[0], inverse_a, hint="two things")

    def unmasked_input(x, mask, conditioner):
        shift, log_scale = conditioner(x)
        return mask * x + (1 - mask) * (x * tf.exp(log_scale) + shift), tf.reduce_sum((1 - mask) * log_scale, [1, 2, 3])

    bad(capsys, check.affine_coupling, unmasked_input, inverse_a, hint="mask * x")

    def everywhere(x, mask, conditioner):
        shift, log_scale = conditioner(mask * x)
        return x * tf.exp(log_scale) + shift, tf.reduce_sum(log_scale, [1, 2, 3])

    bad(capsys, check.affine_coupling, everywhere, inverse_a, hint="unchanged")

    def per_pixel(x, mask, conditioner):
        y, _ = forward_a(x, mask, conditioner)
        return y, (1 - mask) * conditioner(mask * x)[1]

    bad(capsys, check.affine_coupling, per_pixel, inverse_a, hint="sum it")

    def all_log_scales(x, mask, conditioner):
        y, _ = forward_a(x, mask, conditioner)
        return y, tf.reduce_sum(conditioner(mask * x)[1], [1, 2, 3])

    bad(capsys, check.affine_coupling, all_log_scales, inverse_a, hint="copied pixels")
    bad(capsys, check.affine_coupling, forward_a, lambda y, m, c: y, hint="inverse")
    bad(capsys, check.affine_coupling, forward_a, lambda y, m, c: forward_a(y, m, c)[0], hint="inverse")


# --- bits per dim ----------------------------------------------------------------------------------

def test_bits_per_dim(capsys):
    ok(capsys, check.bits_per_dim, lambda lp, d: -lp / (d * math.log(2)) + 8)
    ok(capsys, check.bits_per_dim, lambda lp, d: -(np.asarray(lp) - d * np.log(256)) / d / np.log(2))
    bad(capsys, check.bits_per_dim, ..., hint="placeholder")
    bad(capsys, check.bits_per_dim, lambda lp, d: -lp / (d * math.log(2)), hint="256")
    bad(capsys, check.bits_per_dim, lambda lp, d: -lp / d + math.log(256), hint="ln 2")
    bad(capsys, check.bits_per_dim, lambda lp, d: lp / (d * math.log(2)) + 8, hint="sign")
    bad(capsys, check.bits_per_dim, lambda lp, d: tf.reduce_mean(-lp / (d * math.log(2)) + 8), hint="elementwise")


# --- the trained flow ------------------------------------------------------------------------------

def _mean_bpd(flow, y):
    return float(np.mean(-flow.log_prob(y).numpy() / (784 * math.log(2)) + 8))


def test_trained_flow(capsys):
    y = np.random.default_rng(0).uniform(size=(20, 28, 28, 1)).astype(np.float32)
    uniform = tfd.Independent(tfd.Uniform(tf.zeros([28, 28, 1]), tf.ones([28, 28, 1])), 3)
    bad(capsys, check.trained_flow, uniform, y, 8.0, hint="uniform model")
    sharp = tfd.Independent(tfd.TruncatedNormal(0.5 * tf.ones([28, 28, 1]), 0.01, 0.0, 1.0), 3)
    yy = np.clip(0.5 + 0.01 * np.random.default_rng(1).standard_normal((20, 28, 28, 1)), 0, 1).astype(np.float32)
    value = _mean_bpd(sharp, yy)
    ok(capsys, check.trained_flow, sharp, yy, value)
    ok(capsys, check.trained_flow, sharp, yy, tf.constant([value]))
    bad(capsys, check.trained_flow, sharp, yy, ..., hint="placeholder")
    bad(capsys, check.trained_flow, sharp, yy, value - 8.0, hint="8 bits")
    bad(capsys, check.trained_flow, sharp, yy, value + 0.5, hint="mean of to_bits_per_dim")
    bad(capsys, check.trained_flow, sharp, yy, np.full(3, value), hint="one number")
    bad(capsys, check.trained_flow, ..., y, 1.0, hint="placeholder")
    bad(capsys, check.trained_flow, "flow", y, 1.0, hint="TFP distribution")
