"""MixtureCDF: a CDF (monotone, onto (0, 1)), exact inverse and log-det, finite in the tails, clear errors."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.mixture_cdf import MixtureCDF

tfd, tfb = tfp.distributions, tfp.bijectors

FAMILIES = ["gaussian", "logistic"]
LOGITS = [0.3, -0.2, 0.0]
LOCS = [-2.0, 0.5, 1.0]
LOG_SCALES = [-0.5, 0.2, -1.0]


def _mixture(family, dtype=np.float32, variables=False):
    params = [np.asarray(p, dtype) for p in (LOGITS, LOCS, LOG_SCALES)]
    if variables:
        params = [tf.Variable(p) for p in params]
    return MixtureCDF(*params, family=family)


def _reference(family):
    """The same mixture written with TFP's own distributions."""
    component = tfd.Normal if family == "gaussian" else tfd.Logistic
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=LOGITS), component(loc=LOCS, scale=np.exp(LOG_SCALES).astype(np.float32))
    )


def _fresh(t):
    # A new array: TFP caches forward/inverse pairs by tensor, which would make round trips trivial.
    return np.array(t)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_is_the_mixture_cdf_and_log_det_its_log_density(family):
    bijector, reference = _mixture(family), _reference(family)
    x = np.linspace(-4, 4, 41).astype(np.float32)
    np.testing.assert_allclose(bijector.forward(x), reference.cdf(x), atol=1e-6)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=0), reference.log_prob(x), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trips_both_ways(family):
    bijector = _mixture(family)
    x = tf.random.stateless_normal([500], seed=[1, 2]) * 2.0
    # u near 1 is only resolved to float32's spacing there (6e-8), which moves x by 6e-8 / F'(x).
    resolution = 1e-5 + 1.2e-7 / np.exp(bijector.forward_log_det_jacobian(x, 0))
    assert np.all(np.abs(bijector.inverse(_fresh(bijector.forward(x))) - x) <= resolution)
    u = tf.random.stateless_uniform([500], seed=[3, 4], minval=1e-4, maxval=1 - 1e-4)
    np.testing.assert_allclose(bijector.forward(_fresh(bijector.inverse(u))), u, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_tails(family):
    bijector = _mixture(family)
    scale = float(np.exp(max(LOG_SCALES)))
    left = np.float32(min(LOCS) - 10 * scale)
    # Left tail: F(x) is tiny but representable, and the log-space bisection finds x again.
    u_left = bijector.forward(left)
    assert 0 < float(u_left) < 1e-4
    np.testing.assert_allclose(bijector.inverse(_fresh(u_left)), left, rtol=1e-6)
    # Right tail: F(x) rounds to 1 in floating point; forward stays inside (0, 1), log-det exact.
    right = np.float32(max(LOCS) + 10 * scale)
    u_right = float(bijector.forward(right))
    assert 1 - 1e-4 < u_right < 1
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(right, 0), _reference(family).log_prob(right),
                               rtol=1e-4)
    # u at 1e-7 and 1 - 1e-7 round trip; u = 0 and u = 1 are clamped to finite quantiles.
    u = np.array([1e-7, 1 - 1e-7], np.float32)
    x = bijector.inverse(u)
    np.testing.assert_allclose(bijector.forward(_fresh(x)), u, rtol=1e-6, atol=0)
    ends = bijector.inverse(np.array([0.0, 1.0], np.float32)).numpy()
    assert np.all(np.isfinite(ends)) and ends[0] < float(left) < float(right) < ends[1] + 10


def test_right_tail_round_trip_in_float64():
    bijector = _mixture("gaussian", np.float64)
    # 1 - F(8) ~ 1e-15 is still resolved in float64 (to about 10%, hence the looser tolerance at 8).
    x = np.array([-30.0, -12.0, 6.0, 8.0], np.float64)
    error = np.abs(bijector.inverse(_fresh(bijector.forward(x))).numpy() - x) / np.abs(x)
    assert np.all(error <= [1e-10, 1e-10, 1e-8, 1e-6])


@pytest.mark.parametrize("family", FAMILIES)
def test_log_det_matches_autodiff(family):
    bijector = _mixture(family)
    x = tf.constant(np.linspace(-5, 4, 37), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        u = bijector.forward(x)
    np.testing.assert_allclose(np.log(tape.gradient(u, x)), bijector.forward_log_det_jacobian(x, 0), atol=1e-4)
    # The inverse's log-det is minus the forward's at the inverse point (computed by TFP from ours).
    u = tf.constant([0.01, 0.3, 0.9], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(u)
        back = bijector.inverse(u)
    np.testing.assert_allclose(np.log(tape.gradient(back, u)), bijector.inverse_log_det_jacobian(u, 0), atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_density_integrates_to_one_and_cdf_is_monotone(family):
    bijector = _mixture(family)
    x = np.linspace(-40, 40, 40001)
    density = np.exp(bijector.forward_log_det_jacobian(x.astype(np.float32), 0).numpy().astype(np.float64))
    assert abs(np.trapezoid(density, x) - 1) < 1e-2
    u = bijector.forward(np.linspace(-6, 6, 2001).astype(np.float32)).numpy()
    assert np.all(np.diff(u) >= 0) and np.all(np.diff(u[300:-300]) > 0)
    assert np.all((u > 0) & (u < 1))


@pytest.mark.parametrize("base", [tfd.Uniform(0.0, 1.0), tfd.Beta(5.0, 5.0)])
def test_flow_densities_integrate_to_one(base):
    flow = tfd.TransformedDistribution(base, tfb.Invert(_mixture("gaussian")))
    x = np.linspace(-12, 8, 20001)
    density = np.exp(flow.log_prob(x.astype(np.float32)).numpy().astype(np.float64))
    assert np.all(np.isfinite(density))
    assert abs(np.trapezoid(density, x) - 1) < 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_are_finite_in_the_tails(family):
    bijector = _mixture(family, variables=True)
    params = list(bijector.trainable_variables)
    assert len(params) == 3
    x = tf.constant([-60.0, -10.0, 0.0, 10.0, 60.0])
    u = tf.constant([0.0, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, u])
        outputs = {
            "forward": bijector.forward(x),
            "log_det": bijector.forward_log_det_jacobian(x, 0),
            "inverse": bijector.inverse(u),
        }
    for name, value in outputs.items():
        assert np.all(np.isfinite(value)), name
        for grad in tape.gradient(value, [x if name != "inverse" else u, *params]):
            assert grad is not None and np.all(np.isfinite(grad)), name


def test_inverse_gradients_follow_the_implicit_function_theorem():
    bijector = _mixture("gaussian", variables=True)
    loc = bijector.locs  # d x / d mu_k = -(dF/dmu_k) / F'(x)
    u = tf.constant([0.2, 0.7])
    with tf.GradientTape() as tape:
        x = bijector.inverse(u)
    got = tape.jacobian(x, loc)
    with tf.GradientTape() as tape:
        cdf = bijector.forward(tf.constant(x.numpy()))
    expected = -tape.jacobian(cdf, loc) / np.exp(bijector.forward_log_det_jacobian(x.numpy(), 0))[:, None]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)


def test_batch_shapes_broadcast():
    rng = np.random.default_rng(0)
    logits, locs = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    bijector = MixtureCDF(logits, locs, np.zeros(3, np.float32))  # log_scales shared across the batch
    assert bijector.experimental_batch_shape() == [4]
    x = rng.normal(size=(7, 4)).astype(np.float32)
    u = bijector.forward(x)
    assert u.shape == (7, 4) and bijector.forward_log_det_jacobian(x, 0).shape == (7, 4)
    np.testing.assert_allclose(bijector.inverse(_fresh(u)), x, atol=1e-5)
    for row in range(4):  # each batch member is its own mixture
        single = MixtureCDF(logits[row], locs[row], np.zeros(3, np.float32))
        np.testing.assert_allclose(u[:, row], single.forward(x[:, row]), atol=1e-6)
    params = np.concatenate([logits, locs, np.zeros((4, 3), np.float32)], axis=-1)
    np.testing.assert_allclose(MixtureCDF.from_params(params).forward(x), u, atol=1e-6)
    one = MixtureCDF([0.0], [1.0], [0.0])  # K = 1 is a plain Gaussian CDF
    np.testing.assert_allclose(one.forward([1.0, 2.0]), tfd.Normal(1.0, 1.0).cdf([1.0, 2.0]), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(logits=np.zeros(0), locs=np.zeros(0), log_scales=np.zeros(0)), ValueError, "K >= 1"),
        (dict(logits=np.zeros(3), locs=np.zeros(2), log_scales=np.zeros(3)), ValueError, "same number of components"),
        (dict(logits=np.zeros((2, 3)), locs=np.zeros((4, 3)), log_scales=np.zeros(3)), ValueError, "do not broadcast"),
        (dict(logits=0.0, locs=0.0, log_scales=0.0), ValueError, "component axis"),
        (dict(logits=[0.0], locs=[0.0], log_scales=[0.0], family="cauchy"), ValueError, "family"),
        (dict(logits=np.zeros(2, np.int32), locs=np.zeros(2, np.int32), log_scales=np.zeros(2, np.int32)),
         TypeError, "floating"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, error, words):
    with pytest.raises(error, match=words):
        MixtureCDF(**kwargs)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="3K"):
        MixtureCDF.from_params(np.zeros(4, np.float32))
    bijector = MixtureCDF([0.0, 0.0], [-1.0, 1.0], [0.0, 0.0], validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"u must lie in \[0, 1\]"):
        bijector.inverse(np.array([0.5, 1.5], np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        bijector.forward(np.array([np.nan], np.float32))
