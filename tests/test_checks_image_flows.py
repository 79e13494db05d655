"""Lab 07's checks: right answers written differently get ✔, plausible wrong ones ✘ with a hint naming the idea,
odd inputs ✘ (never "the check itself failed"), and the trained-model checks see through a lying log-det."""

import math

import numpy as np
import pytest
import tensorflow as tf
from check_verdicts import fails, passes

from flowlab.bijectors.actnorm import initialize_actnorm
from flowlab.bijectors.conv1x1 import FunctionConv1x1, InvertibleConv1x1
from flowlab.bijectors.variational_dequantization import DequantizedDensityModel, VariationalDequantizer
from flowlab.checks import image_flows as check
from flowlab.flows.glow import build_glow

# --- Exercise 1: conv1x1 -----------------------------------------------------------------------------

def conv_einsum(x, w):
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return tf.einsum("bhwj,ij->bhwi", x, w), pixels * tf.linalg.slogdet(w)[1] * tf.ones(tf.shape(x)[:1])


def conv_conv2d(x, w):
    kernel = tf.reshape(tf.transpose(w), [1, 1, w.shape[0], w.shape[0]])  # conv2d kernel: [1, 1, in, out]
    z = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
    h, width = x.shape[1], x.shape[2]
    log_det = h * width * tf.math.log(tf.abs(tf.linalg.det(w)))
    return z, tf.fill([tf.shape(x)[0]], log_det)


def conv_matvec(x, w):
    z = tf.linalg.matvec(w, x)  # broadcasts W over batch, height and width
    _, log_abs = tf.linalg.slogdet(w)
    return z, tf.reduce_sum(tf.ones_like(x[..., 0]), axis=[1, 2]) * log_abs


def conv_transposed(x, w):
    return x @ w, conv_einsum(x, w)[1]


def conv_no_pixels(x, w):
    return conv_einsum(x, w)[0], tf.linalg.slogdet(w)[1] * tf.ones(tf.shape(x)[:1])


def conv_log_det_not_abs(x, w):
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return conv_einsum(x, w)[0], pixels * tf.math.log(tf.linalg.det(w)) * tf.ones(tf.shape(x)[:1])


def conv_scalar(x, w):
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return conv_einsum(x, w)[0], pixels * tf.linalg.slogdet(w)[1]


def conv_numpy(x, w):
    x, w = np.asarray(x), np.asarray(w)
    return np.einsum("bhwj,ij->bhwi", x, w), x.shape[1] * x.shape[2] * np.linalg.slogdet(w)[1] * np.ones(len(x))


@pytest.mark.parametrize("answer", [conv_einsum, conv_conv2d, conv_matvec])
def test_conv1x1_right_answers(capsys, answer):
    passes(capsys, check.conv1x1, answer)


@pytest.mark.parametrize("answer, hint", [
    (conv_transposed, "W^T x"),
    (conv_no_pixels, "multiply log|det W| by H * W"),
    (conv_log_det_not_abs, "log|det W|"),
    (conv_scalar, "one value per image"),
    (conv_numpy, "TensorFlow"),
    (lambda x, w: (x, tf.zeros(tf.shape(x)[:1])), "z is wrong"),
    (lambda x, w: x, "(z, log_det)"),
    (lambda x, w: 1 / 0, "ZeroDivisionError"),
    (..., "placeholder"),
])
def test_conv1x1_wrong_answers(capsys, answer, hint):
    fails(capsys, check.conv1x1, answer, hint=hint)


# --- Exercise 2: lu_weight ---------------------------------------------------------------------------

def lu_band(p, lower, upper, log_s, sign_s):
    eye = tf.eye(tf.shape(log_s)[0])
    l_mat = tf.linalg.band_part(lower, -1, 0) * (1 - eye) + eye
    u_mat = tf.linalg.band_part(upper, 0, -1) * (1 - eye) + tf.linalg.diag(sign_s * tf.exp(log_s))
    return p @ l_mat @ u_mat, tf.reduce_sum(log_s)


def lu_masks(p, lower, upper, log_s, sign_s):
    c = lower.shape[0]
    strict_lower = tf.constant(np.tril(np.ones((c, c)), -1), tf.float32)
    l_mat = lower * strict_lower + tf.eye(c)
    u_mat = upper * tf.transpose(strict_lower) + tf.linalg.diag(sign_s) @ tf.linalg.diag(tf.exp(log_s))
    return tf.matmul(p, tf.matmul(l_mat, u_mat)), tf.math.reduce_sum(tf.math.log(tf.abs(sign_s * tf.exp(log_s))))


def lu_full(p, lower, upper, log_s, sign_s):
    return p @ (lower + tf.eye(lower.shape[0])) @ (upper + tf.linalg.diag(sign_s * tf.exp(log_s))), tf.reduce_sum(log_s)


def lu_no_perm(p, lower, upper, log_s, sign_s):
    w, ld = lu_band(tf.eye(lower.shape[0]), lower, upper, log_s, sign_s)
    return w, ld


def lu_no_unit_diagonal(p, lower, upper, log_s, sign_s):
    l_mat = tf.linalg.band_part(lower, -1, 0) - tf.linalg.band_part(lower, 0, 0)
    u_mat = (tf.linalg.band_part(upper, 0, -1) - tf.linalg.band_part(upper, 0, 0)
             + tf.linalg.diag(sign_s * tf.exp(log_s)))
    return p @ l_mat @ u_mat, tf.reduce_sum(log_s)


def lu_no_sign(p, lower, upper, log_s, sign_s):
    return lu_band(p, lower, upper, log_s, tf.ones_like(sign_s))


def lu_exp_log_det(p, lower, upper, log_s, sign_s):
    return lu_band(p, lower, upper, log_s, sign_s)[0], tf.reduce_sum(tf.exp(log_s))


@pytest.mark.parametrize("answer", [lu_band, lu_masks])
def test_lu_weight_right_answers(capsys, answer):
    passes(capsys, check.lu_weight, answer)


@pytest.mark.parametrize("answer, hint", [
    (lu_full, "strict triangles"),
    (lu_no_perm, "permutation is missing"),
    (lu_no_unit_diagonal, "ones on its diagonal"),
    (lu_no_sign, "sign"),
    (lu_exp_log_det, "no exp"),
    (lambda *a: lu_band(*a)[0], "(weight, log_abs_det)"),
    (..., "placeholder"),
])
def test_lu_weight_wrong_answers(capsys, answer, hint):
    fails(capsys, check.lu_weight, answer, hint=hint)


# --- Exercise 3: dequantization_bound ----------------------------------------------------------------

def bound_ref(flow, q, x):
    u, log_q = q.sample_and_log_prob(x)
    return flow.log_prob((x + u) / 256.0) - 784 * math.log(256.0) - log_q


def bound_call(flow, q, x):
    u, log_q = q(x)
    d = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
    return flow.log_prob(x / 256.0 + u / 256.0) - log_q - d * tf.math.log(256.0)


@pytest.mark.parametrize("answer", [bound_ref, bound_call])
def test_bound_right_answers(capsys, answer):
    passes(capsys, check.dequantization_bound, answer)


def _bound_variant(**kw):
    def fn(flow, q, x):
        u, log_q = q.sample_and_log_prob(x)
        y = (x + kw.get("u_scale", 1.0) * u) / kw.get("divisor", 256.0)
        if kw.get("unscaled_u"):
            y = x / 256.0 + u
        out = flow.log_prob(y) - kw.get("levels", 784 * math.log(256.0)) + kw.get("q_sign", -1.0) * log_q
        if kw.get("mean"):
            out = tf.reduce_mean(out)
        if kw.get("bits"):
            out = -out / (784 * math.log(2.0))
        return out
    return fn


@pytest.mark.parametrize("answer, hint", [
    (_bound_variant(q_sign=1.0), "subtract log q"),
    (_bound_variant(levels=0.0), "D * log(256)"),
    (_bound_variant(u_scale=0.0), "add the noise"),
    (_bound_variant(divisor=255.0), "divide by 256"),
    (_bound_variant(unscaled_u=True), "x / 256 + u"),
    (_bound_variant(mean=True), "one bound per image"),
    (_bound_variant(bits=True), "nats"),
    (lambda flow, q, x: flow.log_prob(x / 256.0), "draw the noise"),
    (..., "placeholder"),
])
def test_bound_wrong_answers(capsys, answer, hint):
    fails(capsys, check.dequantization_bound, answer, hint=hint)


# --- The trained models ------------------------------------------------------------------------------

def _images(n, seed=0):
    from flowlab.datasets.mnist import load_mnist_splits

    train, _, _ = load_mnist_splits(64, 8, 8, seed=seed)
    return train[:n]


def _glow(lu_weight=lu_band, conv=conv_einsum):
    flow = build_glow((28, 28, 1), steps=1, final_steps=1, filters=4,
                      conv1x1=lambda c, name: FunctionConv1x1(c, conv, lu_weight=lu_weight, name=name))
    y = ((_images(32).astype(np.float32) + 0.5) / 256.0)
    initialize_actnorm(flow, y)
    for layer in flow.bijector.submodules:
        if isinstance(layer, InvertibleConv1x1):
            layer.log_s.assign(np.linspace(-0.3, 0.4, layer.channels).astype(np.float32))
    return flow, y


@pytest.fixture
def lab_data(monkeypatch):
    """``use(y=..., images=...)``: the checks measure on these as if they were the lab's test digits
    (synthetic here; the real providers are tested on their own below)."""
    def use(y=None, images=None):
        if y is not None:
            monkeypatch.setattr(check, "lab_y_test", lambda: np.asarray(y, np.float64))
        if images is not None:
            monkeypatch.setattr(check, "lab_test_images", lambda: np.asarray(images, np.float64))
    return use


def test_trained_glow_passes_with_right_functions(capsys, monkeypatch, lab_data):
    monkeypatch.setattr(check, "GLOW_BPD_THRESHOLD", 9.0)  # untrained: the structure is what is tested here
    flow, y = _glow()
    lab_data(y=y)
    passes(capsys, check.trained_glow, flow, y)
    flow, y = _glow(lu_weight=lu_masks, conv=conv_matvec)
    lab_data(y=y)
    passes(capsys, check.trained_glow, flow, y)


def test_trained_glow_threshold_fails_an_untrained_flow(capsys, lab_data):
    flow, y = _glow()
    lab_data(y=y)
    fails(capsys, check.trained_glow, flow, y, hint="bits/dim")


def test_trained_glow_sees_a_lying_log_det(capsys, monkeypatch, lab_data):
    monkeypatch.setattr(check, "GLOW_BPD_THRESHOLD", 9.0)
    flow, y = _glow(lu_weight=lambda *a: (lu_band(*a)[0], 2.0 * lu_band(*a)[1]))
    lab_data(y=y)
    fails(capsys, check.trained_glow, flow, y, hint="H * W * log|det W|")


def test_trained_glow_needs_your_convolutions(capsys, lab_data):
    flow = build_glow((28, 28, 1), steps=1, final_steps=1, filters=4)
    y = _images(4).astype(np.float32) / 256.0
    lab_data(y=y)
    fails(capsys, check.trained_glow, flow, y, hint="not built from your conv1x1")
    fails(capsys, check.trained_glow, ..., np.zeros((1, 28, 28, 1)), hint="placeholder")


def test_variational_check(capsys, monkeypatch, lab_data):
    flow, _ = _glow()
    q = VariationalDequantizer((28, 28, 1), couplings=1, filters=4)
    model = DequantizedDensityModel(flow, q, bound=bound_ref)
    x = _images(16).astype(np.float32)
    lab_data(images=x)
    fails(capsys, check.variational_dequantization, model, x, hint="bits/dim")  # untrained
    monkeypatch.setattr(check, "VARIATIONAL_BPD_THRESHOLD", 9.0)
    passes(capsys, check.variational_dequantization, model, x)
    lying = DequantizedDensityModel(flow, q, bound=_bound_variant(levels=0.0))
    fails(capsys, check.variational_dequantization, lying, x, hint="train it with your")
    uniform = DequantizedDensityModel(flow, None)  # uniform noise: the library bound with log q = 0
    fails(capsys, check.variational_dequantization, uniform, x, hint="VariationalDequantizer")
    fails(capsys, check.variational_dequantization, ..., x, hint="placeholder")


def test_trained_checks_measure_on_the_labs_test_digits(capsys, monkeypatch, lab_data):
    """Glow on its easiest digits, or on digits changed; the bound on a subset of test_images: all fail."""
    monkeypatch.setattr(check, "GLOW_BPD_THRESHOLD", 9.0)
    flow, y = _glow()
    lab_data(y=y)
    easiest = y[np.argsort(-flow.log_prob(y).numpy())[:8]]
    fails(capsys, check.trained_glow, flow, easiest, hint="not the lab's test set")
    fails(capsys, check.trained_glow, flow, np.clip(y * 1.01, 0, 1), hint="not the lab's test set")
    q = VariationalDequantizer((28, 28, 1), couplings=1, filters=4)
    x = _images(16).astype(np.float32)
    lab_data(images=x)
    fails(capsys, check.variational_dequantization, DequantizedDensityModel(flow, q, bound=bound_ref), x[:4],
          hint="not the lab's test set")


def test_the_labs_test_digits_are_the_data_cells(monkeypatch):
    """The providers rebuild the data cell's test_images and y_test (fast sizes, dequantized with [3, 4])."""
    import flowlab
    from flowlab.bijectors.dequantize import uniform_dequantize
    from flowlab.datasets.mnist import load_mnist_splits

    images = load_mnist_splits(400, 200, 200, seed=0)[2]
    monkeypatch.setattr(flowlab, "FAST", True)  # the data cell's sizes in fast mode
    got_images, got_y = check.lab_test_images(), check.lab_y_test()
    assert got_images.shape == (200, 28, 28, 1) and np.array_equal(got_images, images)
    assert np.array_equal(got_y, uniform_dequantize(images, seed=[3, 4]).numpy().astype(np.float64))
    assert not got_images.flags.writeable and not got_y.flags.writeable
