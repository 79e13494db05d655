"""InvertibleConv1x1: round trips, log-det against autodiff Jacobians, LU and plain agreeing, TFP agreeing."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import flowlab  # noqa: F401
from flowlab.bijectors.conv1x1 import FunctionConv1x1, InvertibleConv1x1, lu_parameters, random_rotation

tfb = tfp.bijectors


def _perturbed(conv: InvertibleConv1x1, seed: int = 0) -> InvertibleConv1x1:
    """Move the parameters away from the initial rotation (log|det W| = 0 would hide a missing factor)."""
    rng = np.random.default_rng(seed)
    c = conv.channels
    if conv.lu_decomposed:
        conv.lower.assign(rng.normal(size=(c, c)).astype(np.float32))
        conv.upper.assign(rng.normal(size=(c, c)).astype(np.float32))
        conv.log_s.assign(rng.normal(0.0, 0.5, size=c).astype(np.float32))
    else:
        scales = np.exp(np.linspace(0.2, 0.5, c) * rng.choice([-1.0, 1.0]))
        conv.plain_weight.assign((conv.plain_weight.numpy() @ np.diag(scales)).astype(np.float32))
    return conv


# Round trips both ways and log-dets against autodiff Jacobians, LU and plain: tests/test_bijectors.py.

def test_lu_and_plain_agree_on_the_same_matrix():
    lu = _perturbed(InvertibleConv1x1(5, lu_decomposed=True, seed=4), seed=5)
    plain = InvertibleConv1x1(5, lu_decomposed=False, seed=0)
    plain.plain_weight.assign(lu.weight)
    x = tf.random.stateless_normal([2, 4, 4, 5], seed=[4, 5])
    np.testing.assert_allclose(plain.inverse(x).numpy(), lu.inverse(tf.identity(x)).numpy(), atol=1e-5)
    np.testing.assert_allclose(float(lu.log_abs_det_weight), float(plain.log_abs_det_weight), atol=1e-4)
    np.testing.assert_allclose(plain.inverse_log_det_jacobian(x, event_ndims=3).numpy(),
                               lu.inverse_log_det_jacobian(x, event_ndims=3).numpy(), rtol=1e-5)


def test_same_seed_starts_both_variants_at_the_same_rotation():
    lu, plain = InvertibleConv1x1(6, seed=7), InvertibleConv1x1(6, lu_decomposed=False, seed=7)
    w = lu.weight.numpy()
    np.testing.assert_allclose(w, plain.weight.numpy(), atol=1e-5)
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-5)
    assert abs(float(lu.log_abs_det_weight)) < 1e-5


def test_matches_tfp_scale_matvec_lu():
    conv = _perturbed(InvertibleConv1x1(4, seed=8), seed=9)
    lower = np.tril(conv.lower.numpy(), -1)
    upper = np.triu(conv.upper.numpy(), 1) + np.diag(conv.sign_s.numpy() * np.exp(conv.log_s.numpy()))
    perm = np.argmax(conv.permutation.numpy(), axis=0)  # TFP: W = P_tfp^T L U, (P_tfp x)[i] = x[perm[i]]
    reference = tfb.ScaleMatvecLU(lower_upper=tf.constant(lower + upper), permutation=tf.constant(perm))
    np.testing.assert_allclose(reference.forward(tf.eye(4)).numpy().T, conv.weight.numpy(), atol=1e-5)
    x = tf.random.stateless_normal([2, 3, 3, 4], seed=[8, 9])
    np.testing.assert_allclose(conv.inverse(x).numpy(), reference.forward(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.ravel(reference.forward_log_det_jacobian(x, event_ndims=1).numpy())[0],
                               float(conv.log_abs_det_weight), atol=1e-5)


def test_lu_parameters_rebuild_the_matrix():
    w = random_rotation(5, seed=3) @ np.diag([1.0, 2.0, 0.5, 3.0, 1.5])
    p = lu_parameters(w)
    rebuilt = p["permutation"] @ (p["lower"] + np.eye(5)) @ (p["upper"] + np.diag(p["sign_s"] * np.exp(p["log_s"])))
    np.testing.assert_allclose(rebuilt, w, atol=1e-10)
    with pytest.raises(ValueError, match="singular"):
        lu_parameters(np.zeros((3, 3)))


def test_gradients_are_finite_and_reach_every_parameter():
    conv = _perturbed(InvertibleConv1x1(4, seed=10))
    x = tf.random.stateless_normal([2, 4, 4, 4], seed=[1, 1])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(conv.inverse(x) ** 2) - tf.reduce_sum(conv.inverse_log_det_jacobian(x, event_ndims=3))
    grads = tape.gradient(loss, conv.trainable_variables)
    assert len(grads) == 3 and all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_lower_and_upper_stay_triangular_under_any_update():
    conv = InvertibleConv1x1(4, seed=11)
    conv.lower.assign(tf.ones([4, 4]) * 5.0)  # entries outside the strict triangle must not matter
    conv.upper.assign(tf.ones([4, 4]) * 5.0)
    expected = (conv.permutation.numpy() @ (np.tril(np.full((4, 4), 5.0), -1) + np.eye(4))
                @ (np.triu(np.full((4, 4), 5.0), 1) + np.diag(conv.sign_s.numpy() * np.exp(conv.log_s.numpy()))))
    np.testing.assert_allclose(conv.weight.numpy(), expected, rtol=1e-5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        InvertibleConv1x1(0)
    conv = InvertibleConv1x1(4)
    with pytest.raises(ValueError, match="expected images"):
        conv.inverse(tf.zeros([2, 3, 3, 3]))
    with pytest.raises(ValueError, match="expected images"):
        conv.forward(tf.zeros([4]))
    checked = InvertibleConv1x1(2, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        checked.inverse(tf.constant(np.full((1, 2, 2, 2), np.nan, np.float32)))


def _conv1x1(x, w):
    z = tf.einsum("bhwj,ij->bhwi", x, w)
    return z, tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32) * tf.linalg.slogdet(w)[1] * tf.ones(tf.shape(x)[:1])


def _lu_weight(p, lower, upper, log_s, sign_s):
    lower = tf.linalg.band_part(lower, -1, 0) - tf.linalg.band_part(lower, 0, 0) + tf.eye(4)
    diagonal = tf.linalg.diag(sign_s * tf.exp(log_s))
    upper = tf.linalg.band_part(upper, 0, -1) - tf.linalg.band_part(upper, 0, 0) + diagonal
    return p @ lower @ upper, tf.reduce_sum(log_s)


@pytest.mark.parametrize("lu_weight", [_lu_weight, None])
def test_function_conv1x1_with_correct_functions_equals_the_library(lu_weight):
    mine = FunctionConv1x1(4, _conv1x1, lu_weight=lu_weight, seed=12)
    ref = InvertibleConv1x1(4, lu_decomposed=lu_weight is not None, seed=12)
    _perturbed(mine, 1), _perturbed(ref, 1)
    x = tf.random.stateless_normal([2, 3, 3, 4], seed=[5, 5])
    np.testing.assert_allclose(mine.inverse(x).numpy(), ref.inverse(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(mine.inverse_log_det_jacobian(x, event_ndims=3).numpy(),
                               ref.inverse_log_det_jacobian(x, event_ndims=3).numpy(), rtol=1e-5)
    z = tf.identity(mine.inverse(x))
    np.testing.assert_allclose(mine.forward(z).numpy(), x.numpy(), atol=1e-4)
