"""Every transformer, alone and inside a coupling: invertible, exact log-dets, monotone, finite gradients."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from bijector_harness import TRANSFORMERS, randomise

import flowlab  # noqa: F401  (Keras 2 first)
from flowlab.bijectors.coupling import Coupling
from flowlab.bijectors.logit_mixture_cdf import LogitMixtureCDF
from flowlab.bijectors.masks import alternating_mask
from flowlab.conditioners import MLPConditioner
from flowlab.flows import autoregressive_layer
from flowlab.transformers import (
    AffineTransformer,
    FunctionTransformer,
    MixtureCDFTransformer,
    SplineTransformer,
    bound_log_scale,
    spline_parameters,
)

tfd, tfb = tfp.distributions, tfp.bijectors


NAMES = sorted(TRANSFORMERS)


def _params(transformer, shape, seed, scale=1.0):
    return scale * tf.random.stateless_normal([*shape, transformer.params_per_dim], seed=[seed, 1])


def _inputs(shape, seed):
    # spread wide enough that splines see both their interval and the identity tails
    return 2.5 * tf.random.stateless_normal(shape, seed=[seed, 2])


@pytest.mark.parametrize("name", [n for n in NAMES if n != "function"])  # the example scales by softplus(0)
def test_zero_parameters_are_the_identity(name):
    transformer = TRANSFORMERS[name]
    tau = transformer(tf.zeros([10, 2, transformer.params_per_dim]))
    x = _inputs([10, 2], seed=5)
    np.testing.assert_allclose(tau.forward(x), x, atol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(tau.forward_log_det_jacobian(x, event_ndims=0), x.shape), 0.0,
                               atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite_also_in_the_tails(name):
    transformer = TRANSFORMERS[name]
    params = _params(transformer, [6, 2], seed=6)
    x = tf.constant([[-40.0, -3.0], [-0.5, 0.0], [0.7, 2.9], [3.1, 8.0], [40.0, 1e-3], [-1e-3, 15.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([params, x])
        tau = transformer(params)
        forward = tf.reduce_sum(tau.forward(x) + tau.forward_log_det_jacobian(x, event_ndims=0))
        inverse = tf.reduce_sum(tau.inverse(x) + tau.inverse_log_det_jacobian(x, event_ndims=0))
    for loss in (forward, inverse):
        assert np.isfinite(loss.numpy())
        for grad in tape.gradient(loss, [params, x]):
            assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_number_of_parameters_is_a_clear_error(name):
    transformer = TRANSFORMERS[name]
    with pytest.raises(ValueError, match=f"needs {transformer.params_per_dim} parameters per variable"):
        transformer(tf.zeros([4, 2, transformer.params_per_dim + 1]))


# --- inside a coupling -----------------------------------------------------------------------------

# Round trips, log-dets against autodiff and finite gradients of every transformer, alone and in a
# coupling: tests/test_bijectors.py. Here: what a coupling does with any transformer.

def _random(layer, probe, seed=0):
    layer.forward(tf.identity(probe))  # Keras layers build on first call
    # Small weights: large raw spline parameters make ill-conditioned (not wrong) float32 inverses.
    return randomise(layer, seed=seed, scale=0.2)


@pytest.mark.parametrize("name", NAMES)
def test_a_coupling_copies_its_masked_half_and_couples_the_other(name):
    transformer = TRANSFORMERS[name]
    mask = alternating_mask(4)
    layer = Coupling(mask, MLPConditioner(4, (16,), params_per_dim=transformer.params_per_dim), transformer)
    x = _inputs([16, 4], seed=7)
    _random(layer, x)
    x = tf.identity(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer.forward(x)
    jacobian = tape.batch_jacobian(y, x).numpy()
    np.testing.assert_array_equal(y.numpy()[:, mask == 1], x.numpy()[:, mask == 1])  # copied exactly
    assert np.abs(jacobian[:, mask == 0][:, :, mask == 1]).max() > 1e-3  # the coupling couples


@pytest.mark.parametrize("name", ["additive", "affine", "spline", "mixture_cdf"])
def test_coupling_density_integrates_to_one(name):
    transformer = TRANSFORMERS[name]
    layers = [Coupling(alternating_mask(2, parity=p),
                       MLPConditioner(2, (8,), params_per_dim=transformer.params_per_dim), transformer) for p in (0, 1)]
    chain = tfb.Chain(layers)
    _random(chain, tf.zeros([1, 2]), seed=4)
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), chain)
    grid = np.linspace(-9.0, 9.0, 301, dtype=np.float32)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    density = np.exp(flow.log_prob(points).numpy())
    mass = density.sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass - 1.0) < 0.02


@pytest.mark.parametrize("name", ["affine", "spline", "mixture_cdf"])
def test_autoregressive_layer_with_any_transformer(name):
    transformer = TRANSFORMERS[name]
    layer = autoregressive_layer(3, transformer, hidden_units=(16,))
    x = _inputs([8, 3], seed=9)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = layer.inverse(x)
    np.testing.assert_allclose(layer.forward(tf.identity(z)), x, atol=5e-4)
    jacobian = tape.batch_jacobian(z, x).numpy().astype(np.float64)
    np.testing.assert_allclose(layer.inverse_log_det_jacobian(x, event_ndims=1), np.linalg.slogdet(jacobian)[1],
                               atol=5e-4)
    assert np.allclose(np.triu(jacobian, k=1), 0.0)  # autoregressive: z_i depends on x_<=i only


# --- the spline's constraints and its tails ---------------------------------------------------------

def test_spline_parameters_sum_to_the_interval_and_slopes_are_positive():
    raw = 5.0 * tf.random.stateless_normal([7, 3 * 6 - 1], seed=[10, 1])
    widths, heights, slopes = spline_parameters(raw, bins=6, bound=2.5)
    assert widths.shape == (7, 6) and heights.shape == (7, 6) and slopes.shape == (7, 5)
    np.testing.assert_allclose(tf.reduce_sum(widths, -1), 5.0, rtol=1e-5)
    np.testing.assert_allclose(tf.reduce_sum(heights, -1), 5.0, rtol=1e-5)
    assert np.all(widths.numpy() > 0) and np.all(heights.numpy() > 0) and np.all(slopes.numpy() > 0)
    assert SplineTransformer(bins=6).params_per_dim == 17


def test_spline_is_monotone_inside_and_the_identity_outside():
    transformer = SplineTransformer(bins=8, bound=3.0)
    tau = transformer(3.0 * tf.random.stateless_normal([1, transformer.params_per_dim], seed=[11, 1]))
    x = tf.constant(np.linspace(-6.0, 6.0, 4001, dtype=np.float32))[:, None]
    y = tau.forward(x).numpy()[:, 0]
    assert np.all(np.diff(y) > 0)
    outside = np.abs(x.numpy()[:, 0]) > 3.0
    np.testing.assert_allclose(y[outside], x.numpy()[outside, 0], atol=1e-5)
    np.testing.assert_allclose(tau.forward_log_det_jacobian(x[outside], event_ndims=0), 0.0, atol=1e-6)
    # the interval maps onto itself: the ends are fixed, so the spline joins the identity continuously
    np.testing.assert_allclose(tau.forward(tf.constant([[-3.0], [3.0]])), [[-3.0], [3.0]], atol=1e-5)
    inside = ~outside
    assert np.abs(y[inside] - x.numpy()[inside, 0]).max() > 0.1  # the spline really bends


def test_logit_mixture_cdf_is_exact_far_in_the_tails():
    b = LogitMixtureCDF(logits=[0.3, -0.2], locs=[-1.0, 2.0], log_scales=[-0.5, 0.2])
    x = tf.constant([-60.0, -20.0, 0.0, 20.0, 60.0])
    y = b.forward(x)
    assert np.all(np.isfinite(y.numpy())) and np.all(np.diff(y.numpy()) > 0)
    np.testing.assert_allclose(b.inverse(y), x, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(b.forward_log_det_jacobian(x, event_ndims=0).numpy()))


def test_bound_log_scale_is_the_one_bound():
    s = tf.constant([-100.0, -0.01, 0.0, 0.01, 100.0])
    bounded = bound_log_scale(s, 2.0).numpy()
    np.testing.assert_allclose(bounded[[0, -1]], [-2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(bounded[1:4], [-0.01, 0.0, 0.01], atol=1e-6)
    tau = AffineTransformer(2.0)(tf.constant([[0.0, 100.0]]))
    np.testing.assert_allclose(tau.forward_log_det_jacobian(tf.constant([1.0]), event_ndims=0), [2.0], atol=1e-6)


def test_bad_transformers_are_refused():
    with pytest.raises(ValueError, match="bins"):
        SplineTransformer(bins=1)
    with pytest.raises(ValueError, match="log_scale_bound"):
        AffineTransformer(log_scale_bound=0.0)
    with pytest.raises(ValueError, match="components"):
        MixtureCDFTransformer(components=0)
    with pytest.raises(TypeError, match="function params -> bijector"):
        FunctionTransformer("shift", params_per_dim=1)
    with pytest.raises(TypeError, match="must return a tfb.Bijector"):
        FunctionTransformer(lambda h: h, params_per_dim=1)(tf.zeros([2, 1]))
    with pytest.raises(ValueError, match="elementwise"):
        FunctionTransformer(lambda h: tfb.Permute([1, 0]), params_per_dim=1)(tf.zeros([2, 1]))
    with pytest.raises(TypeError, match="transformer"):
        Coupling([1.0, 0.0], MLPConditioner(2), "affine")
