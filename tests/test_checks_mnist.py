"""Lab 04's checks: right answers written differently get ✔, plausible wrong ones ✘ with a hint that names
the idea, weird inputs ✘ (never a traceback, never "the check itself failed"), and the trained-flow check
cannot be passed by a log-det that lies."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from check_verdicts import fails, passes

from flowlab.bijectors.coupling import FunctionCoupling
from flowlab.bijectors.dequantize import FunctionLogit, Logit
from flowlab.bijectors.masks import channel_mask
from flowlab.bijectors.squeeze import Squeeze
from flowlab.checks import mnist as check
from flowlab.conditioners.resnet import ResNetConditioner

tfd, tfb = tfp.distributions, tfp.bijectors


def raises(*args, **kwargs):
    raise RuntimeError("boom")


# --- until_written ---------------------------------------------------------------------------------

def test_until_written_turns_the_stubs_into_placeholders():
    def stub(images):
        return ...

    def pair_stub(x, mask, conditioner):
        return ..., ...

    def documented_stub(y, alpha=0.05):
        """A docstring does not make it an answer."""
        return ...

    def answer(images):
        return images

    assert check.until_written(stub) is Ellipsis
    assert check.until_written(pair_stub) is Ellipsis
    assert check.until_written(documented_stub) is Ellipsis
    assert check.until_written(answer) is answer
    assert check.until_written(len) is len and check.until_written(...) is Ellipsis


# --- Exercise 1: dequantize ------------------------------------------------------------------------

def dequantize_tf(images):
    x = tf.cast(images, tf.float32)
    return (x + tf.random.uniform(tf.shape(x))) / 256.0


def dequantize_np(images):
    rng = np.random.default_rng()
    return ((np.asarray(images, np.float64) + rng.random(np.shape(images))) / 256).astype(np.float32)


def test_dequantize(capsys):
    passes(capsys, check.dequantize, dequantize_tf)
    passes(capsys, check.dequantize, dequantize_np)
    fails(capsys, check.dequantize, ..., hint="placeholder")
    fails(capsys, check.dequantize, lambda x: ..., hint="placeholder")
    fails(capsys, check.dequantize, lambda x: tf.cast(x, tf.float32) / 256.0, hint="no noise")
    fails(capsys, check.dequantize, lambda x: tf.cast(x, tf.float32) / 255.0, hint="no noise")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.uniform(x.shape)) / 255.0,
        hint="not by 255")
    fails(capsys, check.dequantize, lambda x: tf.cast(x, tf.float32) + tf.random.uniform(x.shape), hint="divide by 256")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.normal(x.shape)) / 256.0, hint="bin")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + 0.5) / 256.0, hint="same u")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.uniform([])) / 256.0, hint="same u")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.uniform(tf.shape(x)) ** 3) / 256.0,
        hint="uniform")
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + tf.random.uniform([len(x), 1, 1, 1])) / 256.0,
        hint="its own noise")
    fixed = tf.random.stateless_uniform([200, 4, 4, 1], seed=[1, 2])
    fails(capsys, check.dequantize, lambda x: (tf.cast(x, tf.float32) + fixed) / 256.0, hint="fresh noise")
    fails(capsys, check.dequantize, lambda x: (x + np.random.random(x.shape)) // 1, hint="")
    fails(capsys, check.dequantize, lambda x: 1 / 0, hint="dequantize(images) raised ZeroDivisionError")
    fails(capsys, check.dequantize, lambda x: "pixels", hint="not")
    fails(capsys, check.dequantize, lambda x: x[:5] / 256.0, hint="shape")
    fails(capsys, check.dequantize, "dequantize", hint="function")


# --- Exercise 2: the logit -------------------------------------------------------------------------

def logit_a(y, alpha=0.05):
    p = alpha + (1 - 2 * alpha) * y
    return tf.math.log(p) - tf.math.log(1 - p)


def log_det_a(y, alpha=0.05):
    p = alpha + (1 - 2 * alpha) * y
    return tf.math.log(1 - 2 * alpha) - tf.math.log(p) - tf.math.log(1 - p)


def logit_b(y, alpha=0.05):
    return -tf.math.log(1.0 / (alpha + (1 - 2 * alpha) * y) - 1.0)


def log_det_b(y, alpha=0.05):
    p = alpha + (1 - 2 * alpha) * tf.convert_to_tensor(y)
    return tf.math.log((1 - 2 * alpha) / (p * (1 - p)))


def test_logit(capsys):
    passes(capsys, check.logit, logit_a, log_det_a)
    passes(capsys, check.logit, logit_b, log_det_b)
    passes(capsys, check.logit, logit_a, log_det_b)
    fails(capsys, check.logit, ..., log_det_a, hint="placeholder")
    fails(capsys, check.logit, logit_a, lambda y, a: ..., hint="placeholder")
    fails(capsys, check.logit, logit_a, lambda y, a: -log_det_a(y, a), hint="wrong sign")
    fails(capsys, check.logit, logit_a, lambda y, a: log_det_a(y, a) - math.log(1 - 2 * a), hint="1 - 2 alpha")
    fails(capsys, check.logit, lambda y, a: tf.math.log(y) - tf.math.log(1 - y), log_det_a, hint="alpha")
    fails(capsys, check.logit, logit_a, lambda y, a: tf.reduce_sum(log_det_a(y, a)), hint="elementwise")
    fails(capsys, check.logit, logit_a, lambda y, a: tf.math.log(logit_a(y, a)), hint="")
    # NumPy answers are right on paper but cannot train: the model runs them inside tf.function.
    numpy_logit = lambda y, a: np.log(a + (1 - 2 * a) * np.asarray(y)) - np.log1p(-(a + (1 - 2 * a) * np.asarray(y)))  # noqa: E731
    fails(capsys, check.logit, numpy_logit, log_det_a, hint="TensorFlow ops")
    fails(capsys, check.logit, raises, log_det_a, hint="raised RuntimeError: boom")
    fails(capsys, check.logit, logit_a, lambda y, a: "log det", hint="not")
    fails(capsys, check.logit, 3, log_det_a, hint="function")


# --- Exercise 3: the checkerboard ------------------------------------------------------------------

def board_a(height, width, channels, parity):
    rows, cols = np.indices((height, width))
    return np.repeat(((rows + cols) % 2 == parity)[..., None], channels, axis=-1).astype(np.float32)


def board_b(height, width, channels, parity):
    out = [[[float((i + j + parity + 1) % 2)] * channels for j in range(width)] for i in range(height)]
    return tf.constant(out)


def board_bool(height, width, channels, parity):
    return np.fromfunction(lambda i, j, c: (i + j) % 2 == parity, (height, width, channels), dtype=int)


def test_checkerboard(capsys):
    passes(capsys, check.checkerboard_mask, board_a)
    passes(capsys, check.checkerboard_mask, board_b)
    passes(capsys, check.checkerboard_mask, board_bool)
    fails(capsys, check.checkerboard_mask, None, hint="placeholder")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: ..., hint="placeholder")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: board_a(h, w, c, 1 - p), hint="swapped")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: board_a(h, w, c, 0), hint="parit")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: board_a(h, w, c, p)[..., 0], hint="shape")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: np.ones((h, w, c)), hint="not a checkerboard")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: 2 * board_a(h, w, c, p), hint="0s and 1s")
    # rows alternate but columns do not: stripes
    fails(capsys, check.checkerboard_mask,
        lambda h, w, c, p: np.repeat(((np.indices((h, w))[0] % 2) == p)[..., None], c, axis=2), hint="checkerboard")
    fails(capsys, check.checkerboard_mask, raises, hint="raised RuntimeError")
    fails(capsys, check.checkerboard_mask, lambda h, w, c, p: "board", hint="not")


# --- Exercise 4: the affine coupling ---------------------------------------------------------------

def forward_a(x, mask, conditioner):
    shift, log_scale = conditioner(mask * x)
    y = mask * x + (1 - mask) * (x * tf.exp(log_scale) + shift)
    return y, tf.reduce_sum((1 - mask) * log_scale, axis=[1, 2, 3])


def inverse_a(y, mask, conditioner):
    shift, log_scale = conditioner(mask * y)
    return mask * y + (1 - mask) * (y - shift) * tf.exp(-log_scale)


def forward_b(x, mask, conditioner):
    keep = mask > 0.5
    shift, log_scale = conditioner(tf.where(keep, x, tf.zeros_like(x)))
    log_scale = tf.where(keep, tf.zeros_like(log_scale), log_scale)
    y = tf.where(keep, x, x * tf.exp(log_scale) + shift)
    flat = tf.reshape(log_scale, [tf.shape(x)[0], -1])
    return y, tf.reduce_sum(flat, axis=-1)


def inverse_b(y, mask, conditioner):
    keep = y * mask
    shift, log_scale = conditioner(keep)
    return keep + (1 - mask) * ((y - shift) / tf.exp(log_scale))


def test_affine_coupling(capsys):
    passes(capsys, check.affine_coupling, forward_a, inverse_a)
    passes(capsys, check.affine_coupling, forward_b, inverse_b)
    passes(capsys, check.affine_coupling, forward_b, inverse_a)
    fails(capsys, check.affine_coupling, ..., inverse_a, hint="placeholder")
    fails(capsys, check.affine_coupling, lambda x, m, c: (..., ...), inverse_a, hint="placeholder")
    fails(capsys, check.affine_coupling, lambda x, m, c: forward_a(x, m, c)[0], inverse_a, hint="two things")

    def unmasked_input(x, mask, conditioner):
        shift, log_scale = conditioner(x)
        return mask * x + (1 - mask) * (x * tf.exp(log_scale) + shift), tf.reduce_sum((1 - mask) * log_scale, [1, 2, 3])

    fails(capsys, check.affine_coupling, unmasked_input, inverse_a, hint="mask * x")

    def everywhere(x, mask, conditioner):
        shift, log_scale = conditioner(mask * x)
        return x * tf.exp(log_scale) + shift, tf.reduce_sum(log_scale, [1, 2, 3])

    fails(capsys, check.affine_coupling, everywhere, inverse_a, hint="unchanged")

    def per_pixel(x, mask, conditioner):
        y, _ = forward_a(x, mask, conditioner)
        return y, (1 - mask) * conditioner(mask * x)[1]

    fails(capsys, check.affine_coupling, per_pixel, inverse_a, hint="sum it")

    def all_log_scales(x, mask, conditioner):
        y, _ = forward_a(x, mask, conditioner)
        return y, tf.reduce_sum(conditioner(mask * x)[1], [1, 2, 3])

    fails(capsys, check.affine_coupling, all_log_scales, inverse_a, hint="copied pixels")

    def no_log_det(x, mask, conditioner):
        return forward_a(x, mask, conditioner)[0], tf.zeros(tf.shape(x)[:1])

    fails(capsys, check.affine_coupling, no_log_det, inverse_a, hint="log_det is 0")

    def minus_log_det(x, mask, conditioner):
        y, log_det = forward_a(x, mask, conditioner)
        return y, -log_det

    fails(capsys, check.affine_coupling, minus_log_det, inverse_a, hint="wrong sign")

    def mean_log_det(x, mask, conditioner):
        y, _ = forward_a(x, mask, conditioner)
        return y, tf.reduce_mean((1 - mask) * conditioner(mask * x)[1], [1, 2, 3])

    fails(capsys, check.affine_coupling, mean_log_det, inverse_a, hint="autodiff")
    fails(capsys, check.affine_coupling, forward_a, lambda y, m, c: y, hint="unchanged")
    fails(capsys, check.affine_coupling, forward_a, lambda y, m, c: forward_a(y, m, c)[0], hint="inverse")

    def numpy_forward(x, mask, conditioner):
        x, mask = np.asarray(x), np.asarray(mask)
        shift, log_scale = (np.asarray(t) * (1 - mask) for t in conditioner(x * mask))
        return x * np.exp(log_scale) + shift, log_scale.reshape(len(x), -1).sum(-1)

    fails(capsys, check.affine_coupling, numpy_forward, inverse_a, hint="TensorFlow")
    fails(capsys, check.affine_coupling, raises, inverse_a,
          hint="coupling_forward(x, mask, conditioner) raised RuntimeError")
    fails(capsys, check.affine_coupling, forward_a, raises, hint="coupling_inverse(y, mask, conditioner) raised")
    fails(capsys, check.affine_coupling, lambda x, m, c: ("y", "log det"), inverse_a, hint="not")
    fails(capsys, check.affine_coupling, lambda x, m, c: (x[:, :2], tf.zeros([5])), inverse_a, hint="shape")


# --- Exercise 5: one scale -------------------------------------------------------------------------

def coupling(mask):
    channels = int(np.shape(mask)[-1])
    return tfb.Chain([FunctionCoupling(mask, ResNetConditioner(channels, filters=4, blocks=0), forward_a, inverse_a)])


def squeeze():
    return tfb.Invert(Squeeze())


def scale_a(height, width, channels):
    layers = [coupling(board_a(height, width, channels, i % 2)) for i in range(3)]
    layers.append(squeeze())
    layers += [coupling(channel_mask(height // 2, width // 2, 4 * channels, i % 2)) for i in range(3)]
    return layers


def scale_b(h, w, c):
    out, parity = [], 0
    for _ in range(3):
        out.append(coupling(board_bool(h, w, c, parity)))
        parity = 1 - parity
    out.append(squeeze())
    for half in (0, 1, 0):
        out.append(coupling(channel_mask(h // 2, w // 2, 4 * c, half)))
    return tuple(out)


def test_scale_layers(capsys):
    passes(capsys, check.scale_layers, scale_a)
    passes(capsys, check.scale_layers, scale_b)
    fails(capsys, check.scale_layers, ..., hint="placeholder")
    fails(capsys, check.scale_layers, lambda h, w, c: ..., hint="placeholder")

    def same_parity(h, w, c):
        layers = [coupling(board_a(h, w, c, 0)) for _ in range(3)]
        return layers + [squeeze()] + [coupling(channel_mask(h // 2, w // 2, 4 * c, i % 2)) for i in range(3)]

    fails(capsys, check.scale_layers, same_parity, hint="alternate")

    def same_half(h, w, c):
        layers = [coupling(board_a(h, w, c, i % 2)) for i in range(3)]
        return layers + [squeeze()] + [coupling(channel_mask(h // 2, w // 2, 4 * c, 1)) for _ in range(3)]

    fails(capsys, check.scale_layers, same_half, hint="alternate")

    def shared(h, w, c):
        even, odd = coupling(board_a(h, w, c, 0)), coupling(board_a(h, w, c, 1))
        first, second = (coupling(channel_mask(h // 2, w // 2, 4 * c, k)) for k in (0, 1))
        return [even, odd, even, squeeze(), first, second, first]

    fails(capsys, check.scale_layers, shared, hint="own network")
    fails(capsys, check.scale_layers, lambda h, w, c: scale_a(h, w, c)[:3] + scale_a(h, w, c)[4:], hint="squeeze")
    fails(capsys, check.scale_layers, lambda h, w, c: scale_a(h, w, c)[:3] + [Squeeze()] + scale_a(h, w, c)[4:],
        hint="squeeze()")
    fails(capsys, check.scale_layers, lambda h, w, c: scale_a(h, w, c)[1:], hint="3 checkerboard")

    def channel_first(h, w, c):
        layers = scale_a(h, w, c)
        return layers[4:5] + layers[1:4] + layers[5:]

    fails(capsys, check.scale_layers, channel_first, hint="")

    def unsqueezed_shape(h, w, c):
        layers = scale_a(h, w, c)
        return layers[:4] + [coupling(board_a(h, w, c, i % 2)) for i in range(3)]

    fails(capsys, check.scale_layers, unsqueezed_shape, hint="squeeze")

    def checkerboards_after(h, w, c):
        layers = scale_a(h, w, c)
        return layers[:4] + [coupling(board_a(h // 2, w // 2, 4 * c, i % 2)) for i in range(3)]

    fails(capsys, check.scale_layers, checkerboards_after, hint="channel couplings after")
    fails(capsys, check.scale_layers, lambda h, w, c: tfb.Chain(scale_a(h, w, c)), hint="list")
    fails(capsys, check.scale_layers, lambda h, w, c: ["coupling"] * 7, hint="only bijectors")
    fails(capsys, check.scale_layers, raises, hint="scale_layers(28, 28, 1) raised RuntimeError")
    fails(capsys, check.scale_layers, "scale", hint="function")


# --- Exercise 6: bits per dim ----------------------------------------------------------------------

def test_bits_per_dim(capsys):
    passes(capsys, check.bits_per_dim, lambda lp, d: -lp / (d * math.log(2)) + 8)
    passes(capsys, check.bits_per_dim, lambda lp, d: -(np.asarray(lp) - d * np.log(256)) / d / np.log(2))
    passes(capsys, check.bits_per_dim, lambda lp, d: tf.math.log(256.0) / tf.math.log(2.0) - lp / d / tf.math.log(2.0))
    fails(capsys, check.bits_per_dim, ..., hint="placeholder")
    fails(capsys, check.bits_per_dim, lambda lp, d: ..., hint="placeholder")
    fails(capsys, check.bits_per_dim, lambda lp, d: -lp / (d * math.log(2)), hint="256")
    fails(capsys, check.bits_per_dim, lambda lp, d: -lp / d + math.log(256), hint="ln 2")
    fails(capsys, check.bits_per_dim, lambda lp, d: -lp / d + 8, hint="ln 2")
    fails(capsys, check.bits_per_dim, lambda lp, d: lp / (d * math.log(2)) + 8, hint="sign")
    fails(capsys, check.bits_per_dim, lambda lp, d: -lp / math.log(2) + 8, hint="num_dims")
    fails(capsys, check.bits_per_dim, lambda lp, d: tf.reduce_mean(-lp / (d * math.log(2)) + 8), hint="elementwise")
    fails(capsys, check.bits_per_dim, raises, hint="raised RuntimeError")
    fails(capsys, check.bits_per_dim, lambda lp, d: "8 bits", hint="not")


# --- Exercise 7: the trained flow ------------------------------------------------------------------

SHAPE = (28, 28, 1)


def _base():
    return tfd.Sample(tfd.Normal(0.0, 1.0), SHAPE)


def _net():
    """A fixed conditioner: a seeded 3x3 convolution (no training needed)."""
    conv = tf.keras.layers.Conv2D(2, 3, padding="same",
                                  kernel_initializer=tf.keras.initializers.RandomNormal(0, 0.3, seed=1),
                                  bias_initializer=tf.keras.initializers.Constant(0.1))

    def call(masked):
        out = conv(masked)
        return out[..., :1], out[..., 1:]

    return call


def _flow(forward=forward_a, inverse=inverse_a, log_det=log_det_a, scale=0.01):
    board = board_a(28, 28, 1, 0)
    couplings = [FunctionCoupling(board, _net(), forward, inverse),
                 FunctionCoupling(1 - board, _net(), forward, inverse)]
    logit = FunctionLogit(logit_a, log_det, alpha=0.05)
    # data direction: your logit, 1/scale (back to O(1) values), then the couplings
    return tfd.TransformedDistribution(_base(), tfb.Chain([tfb.Invert(logit), tfb.Scale(scale), *couplings]))


def _bpd(flow, y):
    return float(np.mean(-flow.log_prob(y).numpy() / (784 * math.log(2)) + 8))


class LyingLogDet(tfb.Bijector):
    """The identity, whose log-det claims it squeezes every image by e^-5000: a high log_prob for free."""

    def __init__(self):
        super().__init__(forward_min_event_ndims=3, name="lying")

    def _forward(self, x):
        return x

    def _inverse(self, y):
        return y

    def _inverse_log_det_jacobian(self, y):
        return tf.fill(tf.shape(y)[:-3], 5000.0)


@pytest.fixture
def lab_test_set(monkeypatch):
    """``use(y)``: the check measures on ``y`` as if it were the lab's test digits (these tests use synthetic
    ones; the real ``mnist_test_set`` is tested on its own below)."""
    def use(y):
        monkeypatch.setattr(check, "mnist_test_set", lambda: np.asarray(y, np.float64))
    return use


@pytest.fixture(scope="module")
def honest():
    flow = _flow()
    y = flow.sample(12, seed=3).numpy()
    return flow, y, _bpd(flow, y)


def test_trained_flow_passes_honest_flows(capsys, honest, lab_test_set):
    flow, y, value = honest
    assert value < check.TRAINED_BPD_THRESHOLD
    lab_test_set(y)
    passes(capsys, check.trained_flow, flow, y, value)
    passes(capsys, check.trained_flow, flow, y, tf.constant([value]))
    sharp = tfd.TransformedDistribution(_base(), tfb.Chain([tfb.Invert(Logit(0.05)), tfb.Shift(0.3), tfb.Scale(0.01)]))
    ys = sharp.sample(8, seed=2).numpy()
    lab_test_set(ys)
    passes(capsys, check.trained_flow, sharp, ys, np.float32(_bpd(sharp, ys)))


def test_trained_flow_catches_log_dets_that_lie(capsys, honest, lab_test_set):
    _, y, _ = honest
    lab_test_set(y)
    no_coupling_log_det = _flow(forward=lambda x, m, c: (forward_a(x, m, c)[0], tf.zeros(tf.shape(x)[:1])))
    fails(capsys, check.trained_flow, no_coupling_log_det, y, _bpd(no_coupling_log_det, y), hint="not the density")
    minus_logit = _flow(log_det=lambda y, a: -log_det_a(y, a))
    fails(capsys, check.trained_flow, minus_logit, y, _bpd(minus_logit, y), hint="not the density")
    # The regression: a bijector whose log-det lies makes any flow "beat its base" without training.
    liar = tfd.TransformedDistribution(_base(), tfb.Chain([tfb.Invert(Logit(0.05)), LyingLogDet()]))
    assert _bpd(liar, y) < check.TRAINED_BPD_THRESHOLD
    fails(capsys, check.trained_flow, liar, y, _bpd(liar, y), hint="not the density")


def test_trained_flow_catches_masks_that_do_not_alternate(capsys, honest, lab_test_set):
    _, y, _ = honest
    lab_test_set(y)
    board = board_a(28, 28, 1, 0)
    same = [FunctionCoupling(board, _net(), forward_a, inverse_a) for _ in range(2)]
    flow = tfd.TransformedDistribution(_base(), tfb.Chain([tfb.Invert(FunctionLogit(logit_a, log_det_a)),
                                                           tfb.Scale(0.01), *same]))
    fails(capsys, check.trained_flow, flow, y, _bpd(flow, y), hint="same mask")


def test_trained_flow_catches_a_sampler_that_does_not_invert(capsys, honest, lab_test_set):
    _, y, _ = honest
    lab_test_set(y)
    broken = _flow(inverse=lambda y, m, c: y)
    fails(capsys, check.trained_flow, broken, y, _bpd(broken, y), hint="sampling")


def test_trained_flow_needs_a_trained_model_and_the_right_number(capsys, honest, lab_test_set):
    flow, y, value = honest
    blurry = _flow(scale=0.3)  # an honest flow far from the data: like an untrained one
    yb = flow.sample(12, seed=4).numpy()
    assert _bpd(blurry, yb) > check.TRAINED_BPD_THRESHOLD
    lab_test_set(yb)
    fails(capsys, check.trained_flow, blurry, yb, _bpd(blurry, yb), hint="above 5 bits/dim")
    lab_test_set(y)
    fails(capsys, check.trained_flow, flow, y, ..., hint="placeholder")
    fails(capsys, check.trained_flow, flow, y, value - 8.0, hint="8 bits")
    fails(capsys, check.trained_flow, flow, y, value + 0.5, hint="mean of to_bits_per_dim")
    fails(capsys, check.trained_flow, flow, y, -value + 16.0, hint="mean of to_bits_per_dim")
    fails(capsys, check.trained_flow, flow, y, np.full(3, value), hint="one number")
    fails(capsys, check.trained_flow, flow, y, "1.5", hint="mean of")
    fails(capsys, check.trained_flow, flow, y, "one and a half", hint="not")
    fails(capsys, check.trained_flow, ..., y, 1.0, hint="placeholder")
    fails(capsys, check.trained_flow, "flow", y, 1.0, hint="Distribution")
    fails(capsys, check.trained_flow, tfd.Normal(0.0, 1.0), y, 1.0, hint="TransformedDistribution")
    fails(capsys, check.trained_flow, flow, y[..., 0], value, hint="not the lab's test set")


def test_trained_flow_is_measured_on_the_labs_test_digits(capsys, honest, lab_test_set):
    """The flow is measured on the lab's own y_test: its easiest digits, or digits changed, fail."""
    flow, y, value = honest
    lab_test_set(y)
    easiest = y[np.argsort(-flow.log_prob(y).numpy())[:4]]
    fails(capsys, check.trained_flow, flow, easiest, _bpd(flow, easiest), hint="not the lab's test set")
    fails(capsys, check.trained_flow, flow, np.clip(y * 1.01, 0, 1), value, hint="not the lab's test set")


def test_the_labs_test_digits_are_the_data_cells(monkeypatch):
    """``mnist_test_set`` rebuilds the data cell's y_test: test split, dequantized with seed [3, 4]."""
    import flowlab
    from flowlab.bijectors.dequantize import uniform_dequantize
    from flowlab.datasets.mnist import load_mnist_splits

    test_images = load_mnist_splits(2000, 500, 500, seed=0)[2]
    expected = uniform_dequantize(test_images, seed=[3, 4]).numpy()
    monkeypatch.setattr(flowlab, "FAST", True)  # the data cell's sizes in fast mode
    got = check.mnist_test_set()
    assert got.shape == (500, 28, 28, 1) and np.array_equal(got, expected.astype(np.float64))
    assert not got.flags.writeable


# --- the lab's data: train / validation / test -----------------------------------------------------

def test_three_way_split_is_disjoint_seeded_and_keeps_the_test_part(tmp_path):
    import gzip
    import struct

    from flowlab.datasets import mnist

    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        images, labels = mnist.FILES[part]
        pixels = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
        (tmp_path / images).write_bytes(gzip.compress(struct.pack(">IIII", 2051, 40, 28, 28) + pixels.tobytes()))
        (tmp_path / labels).write_bytes(gzip.compress(struct.pack(">II", 2049, 40) + bytes(40)))
    train, validation, test = mnist.load_mnist_splits(20, 8, 10, directory=tmp_path)
    assert train.shape == (20, 28, 28, 1) and validation.shape == (8, 28, 28, 1) and test.shape == (10, 28, 28, 1)
    seen = {image.tobytes() for image in train}
    assert not any(image.tobytes() in seen for image in np.concatenate([validation, test]))
    assert not {image.tobytes() for image in validation} & {image.tobytes() for image in test}
    _, two_way_test = mnist.load_mnist_split(28, 10, directory=tmp_path)
    np.testing.assert_array_equal(test, two_way_test)  # the reported test images do not move
    again = mnist.load_mnist_splits(20, 8, 10, directory=tmp_path)
    np.testing.assert_array_equal(validation, again[1])
    with pytest.raises(ValueError, match="n_validation"):
        mnist.load_mnist_splits(20, -1, 10, directory=tmp_path)
