"""Planar, radial and Sylvester flows: invertible for *any* parameters, log-dets equal to autodiff's.

Parameters are drawn large (scale 3) so that about half the draws break the unconstrained forms
(w·u < -1, beta < -alpha, R_ii R~_ii < -1); the constrained bijectors must stay invertible there.
Inverses are called on fresh tensors so that TFP's forward/inverse cache cannot answer for them.
"""

import doctest

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors import HouseholderSylvester, OrthogonalSylvester, Planar, Radial, TriangularSylvester
from flowlab.bijectors import planar as planar_module
from flowlab.bijectors import radial as radial_module
from flowlab.bijectors import sylvester as sylvester_module

tfd, tfb = tfp.distributions, tfp.bijectors


def _make(kind, rng, d=3, scale=3.0, batch=()):
    n = lambda *shape: rng.normal(0.0, scale, size=(*batch, *shape))  # noqa: E731
    if kind == "planar":
        return Planar(n(d), n(d), n())
    if kind == "radial":
        return Radial(n(d), n(), n())
    if kind == "orthogonal":
        return OrthogonalSylvester(n(d, 2), n(2, 2), n(2, 2), n(2))  # M = 2 < D = 3
    if kind == "householder":
        return HouseholderSylvester(n(2, d), n(d, d), n(d, d), n(d))
    return TriangularSylvester(n(d, d), n(d, d), n(d), reverse=bool(rng.integers(2)))


KINDS = ["planar", "radial", "orthogonal", "householder", "triangular"]


def _fresh(x):
    return tf.constant(np.asarray(x))


# Round trips both ways, log-dets against autodiff with det J > 0, for a batch of large random
# parameters (one set per point): tests/test_bijectors.py.

def test_planar_inverse_reaches_1e_6_in_float32_and_constraint_holds():
    rng = np.random.default_rng(3)
    for _ in range(8):
        w, u = rng.normal(0, 3, 2), rng.normal(0, 3, 2)
        flow = Planar(w.astype(np.float32), u.astype(np.float32), np.float32(rng.normal()))
        assert float(tf.reduce_sum(flow.w * flow.u_hat())) > -1.0
        z = rng.normal(0, 2, (100, 2)).astype(np.float32)
        back = flow.inverse(_fresh(flow.forward(_fresh(z))))
        assert np.abs(np.asarray(back) - z).max() < 1e-5 * max(1.0, np.abs(z).max())


def test_unconstrained_planar_with_w_u_below_minus_one_folds_the_plane():
    w, u = np.array([1.0, 0.0], np.float32), np.array([-3.0, 0.0], np.float32)
    folded = Planar(w, u, 0.0, constrain=False)
    # Along w: alpha -> alpha - 3 tanh(alpha) is not monotone, so two points map to one.
    a = folded.forward(tf.constant([[0.0, 0.0]]))
    root = 3.0
    for _ in range(100):
        root = 3.0 * np.tanh(root)  # the positive fixed point of alpha = 3 tanh(alpha)
    b = folded.forward(tf.constant([[root, 0.0]], tf.float32))
    np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not invertible"):
        Planar(w, u, 0.0, constrain=False, validate_args=True).forward(tf.constant([[0.0, 0.0]]))
    fine = Planar(w, u, 0.0)  # the same parameters, constrained: w·û = softplus(-3) - 1 > -1
    z = tf.constant(np.linspace(-5, 5, 201)[:, None] * np.array([[1.0, 0.0]]), tf.float32)
    assert np.all(np.diff(np.asarray(fine.forward(z))[:, 0]) > 0)


def test_invalid_constrained_parameters_are_caught_with_validate_args():
    with pytest.raises(tf.errors.InvalidArgumentError, match="beta < -alpha"):
        Radial([0.0, 0.0], 1.0, -2.0, constrain=False, validate_args=True).forward(tf.constant([[1.0, 1.0]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not invertible"):
        TriangularSylvester([[2.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], constrain=False,
                            validate_args=True).forward(tf.constant([[1.0, 1.0]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must not be zero"):
        Planar([0.0, 0.0], [1.0, 1.0], 0.0, validate_args=True).forward(tf.constant([[1.0, 1.0]]))
    for flow in (Planar([1.0, 0.0], [1.0, 1.0], 0.0, validate_args=True),
                 Radial([0.0, 0.0], 1.0, 0.0, validate_args=True),
                 TriangularSylvester(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), [0.0, 0.0],
                                     validate_args=True)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
            flow.forward(tf.constant([[np.nan, 1.0]]))


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="same last dimension"):
        Planar([1.0, 0.0], [1.0, 0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="vectors"):
        Planar(1.0, 1.0, 0.0)
    with pytest.raises(TypeError, match="floating point"):
        Planar(np.array([1, 0]), np.array([1, 0]), 0)
    with pytest.raises(ValueError, match="square M x M"):
        TriangularSylvester(np.eye(2), np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="D >= M"):
        OrthogonalSylvester(np.ones((2, 3)), np.eye(3), np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="z0 must be a vector"):
        Radial(0.0, 1.0, 1.0)


@pytest.mark.parametrize("kind", ["orthogonal", "householder"])
def test_q_has_orthonormal_columns(kind):
    flow = _make(kind, np.random.default_rng(4))
    q = flow.q().numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-10)


def test_flow_density_integrates_to_one_on_a_grid():
    rng = np.random.default_rng(5)
    chain = tfb.Chain([_make(kind, rng, d=2, scale=1.5) for kind in ("planar", "radial", "householder", "triangular")])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2, tf.float64)), chain)
    step = 0.08
    axis = np.arange(-8.0 + step / 2, 8.0, step)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    mass = np.exp(flow.log_prob(grid).numpy()).sum() * step**2
    assert abs(mass - 1.0) < 2e-3, mass


def test_amortised_parameters_act_per_data_point():
    rng = np.random.default_rng(6)
    batched = _make("householder", rng, d=2, batch=(5,))
    z = rng.normal(size=(5, 2))
    y, log_det = batched.forward_and_log_det(tf.constant(z))
    for i in range(5):
        single = HouseholderSylvester(batched._v[i], batched._r[i], batched._r_tilde[i], batched._b[i])
        np.testing.assert_allclose(y[i], single.forward(z[i:i + 1])[0], atol=1e-12)
        np.testing.assert_allclose(log_det[i], single.forward_log_det_jacobian(z[i:i + 1], 1)[0], atol=1e-12)
    np.testing.assert_allclose(batched.inverse(_fresh(y)), z, atol=1e-8)
    planar = _make("planar", rng, d=2, batch=(5,))
    np.testing.assert_allclose(planar.inverse(_fresh(planar.forward(tf.constant(z)))), z, atol=1e-8)


def test_gradients_of_the_log_density_are_finite():
    variables = [tf.Variable(np.float32(v)) for v in ([0.5, -1.0], [-4.0, 2.0], 0.3)]
    radial = [tf.Variable(np.float32(v)) for v in ([0.1, 0.2], -3.0, -5.0)]
    chain = tfb.Chain([Planar(*variables), Radial(*radial)])
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2)), chain)
    with tf.GradientTape() as tape:
        z = flow.sample(256, seed=1)
        loss = -tf.reduce_mean(flow.log_prob(tf.stop_gradient(z)))
    grads = tape.gradient(loss, variables + radial)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_variables_are_tracked_for_training():
    w = tf.Variable([1.0, 0.0])
    flow = Planar(w, tf.Variable([0.0, 1.0]), tf.Variable(0.0))
    assert len(flow.trainable_variables) == 3


@pytest.mark.parametrize("module", [planar_module, radial_module, sylvester_module])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
