"""Lab 06 checks: each passes several right answers written differently and fails plausible wrong ones with a hint."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from check_verdicts import fails, passes

import flowlab  # noqa: F401  (Keras 2 first)
from flowlab.checks import beyond_affine as check
from flowlab.datasets import load_two_moons
from flowlab.transformers import bound_log_scale

tfd, tfb = tfp.distributions, tfp.bijectors


# --- additive coupling ------------------------------------------------------------------------------

def fwd_mult(x, mask, t):
    return mask * x + (1.0 - mask) * (x + t(mask * x))


def inv_mult(z, mask, t):
    return mask * z + (1.0 - mask) * (z - t(mask * z))


def logdet_zeros(x, mask, t):
    return tf.zeros(tf.shape(x)[:-1])


def fwd_where(x, mask, t):
    return tf.where(mask > 0, x, x + t(x * mask))


def inv_where(z, mask, t):
    keep = tf.cast(mask, tf.bool)
    return tf.where(keep, z, z - t(tf.where(keep, z, 0.0)))


def logdet_sum(x, mask, t):
    return tf.reduce_sum(0.0 * x, axis=-1)


@pytest.mark.parametrize("answer", [(fwd_mult, inv_mult, logdet_zeros), (fwd_where, inv_where, logdet_sum)])
def test_additive_coupling_right_answers(capsys, answer):
    passes(capsys, check.additive_coupling, *answer)


def test_additive_coupling_wrong_answers(capsys):
    fails(capsys, check.additive_coupling, ..., inv_mult, logdet_zeros, hint="placeholder")
    reads_all = lambda x, m, t: m * x + (1 - m) * (x + t(x))  # noqa: E731
    fails(capsys, check.additive_coupling, reads_all, inv_mult, logdet_zeros, hint="mask * x")
    shifts_all = lambda x, m, t: x + t(m * x)  # noqa: E731
    fails(capsys, check.additive_coupling, shifts_all, inv_mult, logdet_zeros, hint="where mask is 1")
    adds_again = lambda z, m, t: m * z + (1 - m) * (z + t(m * z))  # noqa: E731
    fails(capsys, check.additive_coupling, fwd_mult, adds_again, logdet_zeros, hint="adds the shift again")
    per_variable = lambda x, m, t: tf.zeros_like(x)  # noqa: E731
    fails(capsys, check.additive_coupling, fwd_mult, inv_mult, per_variable, hint="one number per")
    shift_sum = lambda x, m, t: tf.reduce_sum((1 - m) * t(m * x), axis=-1)  # noqa: E731
    fails(capsys, check.additive_coupling, fwd_mult, inv_mult, shift_sum, hint="ones on")
    numpy_forward = lambda x, m, t: np.asarray(x) * 2  # noqa: E731
    fails(capsys, check.additive_coupling, numpy_forward, inv_mult, logdet_zeros, hint="additive_forward")


# --- the spline --------------------------------------------------------------------------------------

def test_spline_count(capsys):
    passes(capsys, check.spline_parameter_count, lambda k: 3 * k - 1)
    passes(capsys, check.spline_parameter_count, lambda k: np.int64(k + k + (k - 1)))
    fails(capsys, check.spline_parameter_count, lambda k: 3 * k + 1, hint="both ends")
    fails(capsys, check.spline_parameter_count, lambda k: 3 * k, hint="K - 1 interior")
    fails(capsys, check.spline_parameter_count, lambda k: 2 * k, hint="leaves out the knot slopes")
    fails(capsys, check.spline_parameter_count, ..., hint="placeholder")


def spline_softmax(raw, k, b):
    w = 1e-3 + (2 * b - k * 1e-3) * tf.math.softmax(raw[..., :k], -1)
    h = 1e-3 + (2 * b - k * 1e-3) * tf.math.softmax(raw[..., k:2 * k], -1)
    return w, h, 1e-3 + tf.math.softplus(raw[..., 2 * k:])


def spline_exp(raw, k, b):
    def norm(v):
        e = tf.exp(v - tf.reduce_max(v, axis=-1, keepdims=True))
        return 2 * b * e / tf.reduce_sum(e, axis=-1, keepdims=True)
    widths, heights, slopes = tf.split(raw, [k, k, k - 1], axis=-1)
    return norm(widths), norm(heights), tf.exp(tf.clip_by_value(slopes, -10.0, 10.0))


@pytest.mark.parametrize("answer", [spline_softmax, spline_exp])
def test_spline_parameters_right_answers(capsys, answer):
    passes(capsys, check.spline_parameters, answer)


def test_spline_parameters_wrong_answers(capsys):
    unit = lambda r, k, b: (tf.math.softmax(r[..., :k]), tf.math.softmax(r[..., k:2 * k]),  # noqa: E731
                            tf.math.softplus(r[..., 2 * k:]))
    fails(capsys, check.spline_parameters, unit, hint="sum to 1")
    raw_slopes = lambda r, k, b: (*spline_softmax(r, k, b)[:2], r[..., 2 * k:])  # noqa: E731
    fails(capsys, check.spline_parameters, raw_slopes, hint="slopes are not positive")
    unnormalised = lambda r, k, b: (tf.exp(r[..., :k]), tf.exp(r[..., k:2 * k]), tf.exp(r[..., 2 * k:]))  # noqa: E731
    fails(capsys, check.spline_parameters, unnormalised, hint="2B")
    too_many = lambda r, k, b: (*spline_softmax(r, k, b)[:2], tf.math.softplus(r[..., 2 * k - 2:]))  # noqa: E731
    fails(capsys, check.spline_parameters, too_many, hint="K - 1 slopes")
    fails(capsys, check.spline_parameters, ..., hint="placeholder")


# --- a transformer ----------------------------------------------------------------------------------

def affine_chain(params):
    return tfb.Chain([tfb.Shift(params[..., 0]), tfb.Scale(log_scale=bound_log_scale(params[..., 1], 3.0))])


def affine_call(params):
    shift, raw = tf.unstack(params, axis=-1)
    return tfb.Shift(shift)(tfb.Scale(scale=tf.exp(2.0 * tf.tanh(raw / 2.0))))


@pytest.mark.parametrize("answer", [affine_chain, affine_call])
def test_transformer_right_answers(capsys, answer):
    passes(capsys, check.transformer, answer, 2)


def test_transformer_wrong_answers(capsys):
    unbounded = lambda p: tfb.Chain([tfb.Shift(p[..., 0]), tfb.Scale(log_scale=p[..., 1])])  # noqa: E731
    fails(capsys, check.transformer, unbounded, 2, hint="not bounded")
    raw_scale = lambda p: tfb.Chain([tfb.Shift(p[..., 0]), tfb.Scale(scale=p[..., 1])])  # noqa: E731
    fails(capsys, check.transformer, raw_scale, 2, hint="identity")
    shift_only = lambda p: tfb.Shift(p[..., 0])  # noqa: E731
    fails(capsys, check.transformer, shift_only, 2, hint="ignores one of its two parameters")
    fails(capsys, check.transformer, affine_chain, 3, hint="2 parameters")
    hard_clip = lambda p: tfb.Chain([tfb.Shift(p[..., 0]),  # noqa: E731
                                     tfb.Scale(log_scale=tf.clip_by_value(p[..., 1], -3.0, 3.0) * 0.5)])
    fails(capsys, check.transformer, hard_clip, 2, hint="almost unchanged")
    matrix = lambda p: tfb.ScaleMatvecDiag(tf.exp(p[..., 1]))  # noqa: E731
    fails(capsys, check.transformer, matrix, 2, hint="elementwise")
    fails(capsys, check.transformer, ..., 2, hint="placeholder")


# --- trained flows (stand-ins: a kernel density fitted to moons, the base, an unnormalised density) ---

@pytest.fixture(scope="module")
def moons():
    return load_two_moons(1000, seed=0)[0], check.moons_test_set()


def _kde(x, scale):
    n = len(x)
    return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(n)),
                                 tfd.MultivariateNormalDiag(loc=x, scale_diag=tf.fill([n, 2], scale)))


@pytest.mark.parametrize("scale", [0.06, 0.1])
def test_trained_flow_right_answers(capsys, moons, scale):
    x, x_test = moons
    for kind in check.NLL_LIMITS:
        passes(capsys, check.trained_flow, _kde(x, scale), x_test, kind)


class _Inflated:
    """A density times e: integrates to e, scores better than it should."""

    def __init__(self, distribution):
        self.distribution = distribution

    def log_prob(self, x):
        return self.distribution.log_prob(x) + 1.0


def test_trained_flow_wrong_answers(capsys, moons):
    x, x_test = moons
    base = tfd.MultivariateNormalDiag(tf.zeros(2))
    fails(capsys, check.trained_flow, base, x_test, "spline", hint="does not fit two moons")
    fails(capsys, check.trained_flow, _Inflated(_kde(x, 0.1)), x_test, "coupling", hint="more than 1")
    fails(capsys, check.trained_flow, ..., x_test, "NICE", hint="placeholder")
    # a flow that never trained is its base, N(0, I): above every kind's limit
    fails(capsys, check.trained_flow, base, x_test, "NICE", hint="additive coupling")
    shifted = tfd.MultivariateNormalDiag(tf.constant([0.5, 0.25]), tf.constant([0.9, 0.6]))  # a Gaussian fit
    fails(capsys, check.trained_flow, shifted, x_test, "coupling", hint="affine_transformer")


def test_trained_flow_is_measured_on_the_labs_test_set(capsys, moons):
    """A good density on X_moons_test's best-fitting points, or on the points moved, fails."""
    x, x_test = moons
    good = _kde(x, 0.1)
    best = x_test[np.argsort(-good.log_prob(x_test.astype(np.float32)).numpy())[:100]]
    fails(capsys, check.trained_flow, good, best, "spline", hint="not the lab's test set")
    fails(capsys, check.trained_flow, good, x_test * 0.5, "spline", hint="not the lab's test set")
