"""The checks of labs 01 (1-D CDF flows) and 03 (face): ✔ for right answers written two ways, ✘ otherwise.

Every wrong answer must get a ✘ whose hint names the idea to revisit, and no input -- a string, a
function that raises, a result of the wrong shape -- may make a check crash ("the check itself
failed").  The trained-flow checks are fed densities with known answers (the true bimodal mixture,
kernel density estimates, a Gaussian), so no training happens here; bench/check_margins.md
measures the trained models.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF, MixtureConditioner2D
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks import face, flows_1d
from flowlab.datasets import load_face, load_two_moons
from flowlab.datasets.bimodal import LOCS, SCALES, WEIGHTS, bimodal_log_prob, load_bimodal

tfd, tfb = tfp.distributions, tfp.bijectors

CRASH = "the check itself failed"


def verdict(capsys, run):
    run()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # a check prints exactly one line
    assert CRASH not in lines[0], lines[0]
    return lines[0]


def passes(capsys, run):
    line = verdict(capsys, run)
    assert line.startswith("✔"), line


def fails(capsys, run, *words):
    line = verdict(capsys, run)
    assert line.startswith("✘"), line
    for word in words:
        assert word in line, line


def raises(*args, **kwargs):
    raise RuntimeError("student bug")


# ---- lab 01: the change of variables ---------------------------------------------------------


def log_prob_direct(x, flow, base):
    return base.log_prob(flow.forward(x)) + flow.forward_log_det_jacobian(x, event_ndims=0)


def log_prob_tfp(x, flow, base):
    return tfd.TransformedDistribution(base, tfb.Invert(flow)).log_prob(x)


def log_prob_inverse_log_det(x, flow, base):
    z = flow.forward(x)
    return base.log_prob(z) - flow.inverse_log_det_jacobian(z, event_ndims=0)


def test_flow_log_prob(capsys):
    passes(capsys, lambda: flows_1d.flow_log_prob(log_prob_direct))
    passes(capsys, lambda: flows_1d.flow_log_prob(log_prob_tfp))
    passes(capsys, lambda: flows_1d.flow_log_prob(log_prob_inverse_log_det))
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: b.log_prob(f.forward(x))), "log-det term is missing")
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: -log_prob_direct(x, f, b)), "sign")
    minus = lambda x, f, b: b.log_prob(f.forward(x)) - f.forward_log_det_jacobian(x, event_ndims=0)  # noqa: E731
    fails(capsys, lambda: flows_1d.flow_log_prob(minus), "minus sign")
    inverse = lambda x, f, b: b.log_prob(f.inverse(x)) + f.forward_log_det_jacobian(x, event_ndims=0)  # noqa: E731
    fails(capsys, lambda: flows_1d.flow_log_prob(inverse), "flow.forward")
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: tf.reduce_sum(log_prob_direct(x, f, b))), "shape")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), (None, "placeholder"), ("log p", "function"), (raises, "raised RuntimeError: student bug"),
    (lambda x, f, b: ..., "placeholder"), (lambda x, f, b: "nope", "not a tensor"), (lambda x: x, "raised TypeError"),
    (lambda x, f, b: tf.zeros([3, 3]), "shape"),
])
def test_flow_log_prob_weird_answers(capsys, answer, words):
    fails(capsys, lambda: flows_1d.flow_log_prob(answer), words)


# ---- lab 01: the composition ------------------------------------------------------------------


def _cdf():
    return MixtureCDF(tf.Variable([0.1, 0.0]), tf.Variable([-1.0, 1.0]), tf.Variable([-0.3, -0.5]))


def test_gaussian_flow(capsys):
    cdf = _cdf()
    inverse_normal = tfb.Invert(tfb.NormalCDF())
    passes(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([inverse_normal, cdf]), cdf))
    passes(capsys, lambda: flows_1d.gaussian_flow(tfb.Invert(tfb.NormalCDF())(cdf), cdf))
    passes(capsys, lambda: flows_1d.gaussian_flow(tfb.Invert(tfb.Chain([tfb.Invert(cdf), tfb.NormalCDF()])), cdf))
    fails(capsys, lambda: flows_1d.gaussian_flow(cdf, cdf), "still the CDF")
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Invert(tfb.NormalCDF()), cdf), "Φ⁻¹ alone", "mixture CDF")
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([cdf, tfb.Invert(tfb.NormalCDF())]), cdf),
          "reversed", "right to left")
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([tfb.NormalCDF(), cdf]), cdf), "inverse")
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([tfb.Invert(tfb.NormalCDF()), _cdf(), tfb.Shift(0.3)]), cdf),
          "Φ⁻¹(cdf_gaussian(x))")


class RaisingBijector(tfb.Identity):
    def _forward(self, x):
        raise RuntimeError("student bug")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), ("Chain", "TFP bijector"), (lambda x: x, "TFP bijector"),
    (RaisingBijector(), "raised RuntimeError"), (tfb.Reshape([13, 1], [13]), "shape"),
])
def test_gaussian_flow_weird_answers(capsys, answer, words):
    fails(capsys, lambda: flows_1d.gaussian_flow(answer, _cdf()), words)


# ---- lab 01: sampling by inversion ------------------------------------------------------------


def bisection(cdf, u):
    lo, hi = tf.fill(tf.shape(u), -20.0), tf.fill(tf.shape(u), 20.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        below = cdf.forward(mid) < u
        lo, hi = tf.where(below, mid, lo), tf.where(below, hi, mid)
    return (lo + hi) / 2


def test_inverse_cdf_sampler(capsys):
    cdf = _cdf()
    passes(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: c.inverse(u), cdf))
    passes(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: tfb.Invert(c).forward(u), cdf))
    passes(capsys, lambda: flows_1d.inverse_cdf_sampler(bisection, cdf))
    # The observed false pass: samples drawn from the model, no inversion at all.
    mog = tfd.MixtureSameFamily(tfd.Categorical(logits=cdf.logits), tfd.Normal(cdf.locs, tf.exp(cdf.log_scales)))
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: mog.sample(tf.shape(u)[0], seed=1), cdf), "given")
    via_tfp = lambda c, u: tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0), tfb.Invert(c)).sample(tf.shape(u), seed=5)  # noqa: E731
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(via_tfp, cdf), "given")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: c.forward(u), cdf), "F(u)", "backwards")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: u, cdf), "unchanged")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: tfd.Normal(0.0, 1.0).quantile(u), cdf), "normal")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: tf.sort(c.inverse(u)), cdf), "given")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: _cdf().inverse(u * 0.9), cdf), "F⁻¹")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), ("inverse", "function"), (raises, "raised RuntimeError"), (lambda c, u: ..., "placeholder"),
    (lambda c, u: c.inverse(u)[:10], "shape"), (lambda c, u: tf.stack([u, u], 1), "shape"),
    (lambda c, u: "x", "not a tensor"), (lambda c, u: u * np.nan, "NaN"),
])
def test_inverse_cdf_sampler_weird_answers(capsys, answer, words):
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(answer, _cdf()), words)


def test_inverse_cdf_sampler_needs_the_flow(capsys):
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: c.inverse(u), ...), "placeholder")
    fails(capsys, lambda: flows_1d.inverse_cdf_sampler(lambda c, u: c.inverse(u), "cdf"), "MixtureCDF")


# ---- lab 01: the trained flows ----------------------------------------------------------------


def _true_cdf():
    return MixtureCDF(np.log(WEIGHTS).astype(np.float32), np.float32(LOCS), np.log(SCALES).astype(np.float32))


def _initial_cdf():
    return MixtureCDF(tf.zeros(5), np.linspace(-3.0, 3.0, 5).astype(np.float32),
                      tf.fill([5], np.float32(np.log(6 / 5))))


BASES = {"Uniform[0, 1]": tfd.Uniform(0.0, 1.0), "N(0, 1)": tfd.Normal(0.0, 1.0)}


class FlowModel:
    """The lab's FlowModel without Keras: a flow, a base, and the student's flow_log_prob as its output."""

    def __init__(self, flow, base, log_prob):
        self.flow, self.base, self.log_prob = flow, base, log_prob

    def __call__(self, x):
        return self.log_prob(x, self.flow, self.base)


def _models(make_cdf, log_prob=log_prob_direct, gaussian=True):
    flows = {"Uniform[0, 1]": make_cdf(),
             "N(0, 1)": tfb.Chain([tfb.Invert(tfb.NormalCDF()), make_cdf()]) if gaussian else make_cdf()}
    return {name: FlowModel(flows[name], BASES[name], log_prob) for name in flows}


def test_trained_cdf_flows(capsys):
    _, x_test = load_bimodal(5000, 2000, seed=0)
    passes(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf), x_test))
    passes(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf, log_prob_tfp), x_test))
    passes(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf, log_prob_inverse_log_det), x_test))
    fails(capsys, lambda: flows_1d.trained_cdf_flows(_models(_initial_cdf), x_test), "trained")
    missing = lambda x, f, b: b.log_prob(f.forward(x))  # noqa: E731
    fails(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf, missing), x_test),
          "integrate to 1", "log |f'(x)|")
    doubled = lambda x, f, b: log_prob_direct(x, f, b) + 0.5  # a lying log-det: a higher score than the truth  # noqa: E731
    fails(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf, doubled), x_test), "integrate to 1")
    fails(capsys, lambda: flows_1d.trained_cdf_flows(_models(_true_cdf, gaussian=False), x_test), "N(0, 1)", "Φ⁻¹")


def test_trained_cdf_flows_are_the_labs_flow_models(capsys):
    """The true density in place of a model, or behind a flow whose density it is not, fails."""
    x_test = flows_1d.bimodal_test_set()
    truth = lambda x: bimodal_log_prob(np.asarray(x))  # noqa: E731
    fails(capsys, lambda: flows_1d.trained_cdf_flows({"true": truth}, x_test), "not the lab's FlowModel")
    behind = _models(_initial_cdf, lambda x, f, b: bimodal_log_prob(np.asarray(x)))
    fails(capsys, lambda: flows_1d.trained_cdf_flows(behind, x_test), "of its own flow and base")


@pytest.mark.parametrize("models, words", [
    (..., "placeholder"), ({"Uniform[0, 1]": ...}, "placeholder"), ("models", "dict"), ({}, "dict"),
    ({"u": raises}, "raised RuntimeError"), ({"u": lambda x: tf.zeros([3])}, "shape"), ({"u": "model"}, "callable"),
    ({"u": lambda x: x * np.nan}, "integrate"),
])
def test_trained_cdf_flows_weird_answers(capsys, models, words):
    fails(capsys, lambda: flows_1d.trained_cdf_flows(models, flows_1d.bimodal_test_set()), words)


def test_trained_cdf_flows_are_measured_on_the_labs_test_set(capsys):
    """The true density passes on X_test; on X_test's easiest points, or X_test changed, the check fails."""
    x_test = flows_1d.bimodal_test_set()
    models = _models(_true_cdf)
    easiest = x_test[np.argsort(-bimodal_log_prob(x_test))[:200]]
    fails(capsys, lambda: flows_1d.trained_cdf_flows(models, easiest), "not the lab's test set", "200 rows")
    fails(capsys, lambda: flows_1d.trained_cdf_flows(models, np.sort(x_test)), "not the lab's test set", "changed")


def test_bimodal_dataset():
    train, test = load_bimodal(3000, 1000, seed=0)
    assert train.shape == (3000,) and test.shape == (1000,) and train.dtype == np.float32
    assert not np.intersect1d(train, test).size  # disjoint
    np.testing.assert_array_equal(load_bimodal(3000, 1000, seed=0)[0], train)
    assert not np.array_equal(load_bimodal(3000, 1000, seed=1)[0], train)
    xs = np.linspace(-6, 6, 20001)
    assert abs(np.trapezoid(np.exp(bimodal_log_prob(xs)), xs) - 1) < 1e-6
    assert np.all(np.abs(np.histogram(train, bins=[-5, -0.3, 5])[0] / 3000 - [0.35, 0.65]) < 0.03)
    with pytest.raises(ValueError, match="n_train"):
        load_bimodal(-1)


# ---- lab 03: the conditional network -----------------------------------------------------------


def mlp(k, output=None):
    return tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"),
                                tf.keras.layers.Dense(32, activation="relu"),
                                tf.keras.layers.Dense(3 * k, activation=output)])


def functional(k):
    inputs = tf.keras.Input(shape=(1,))
    hidden = tf.keras.layers.Dense(16, activation="tanh")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3 * k, kernel_initializer="zeros")(hidden))


class Subclassed(tf.keras.layers.Layer):
    def __init__(self, k):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(64, activation="relu")
        self.out = tf.keras.layers.Dense(3 * k)

    def call(self, x1):
        return self.out(self.hidden(x1))


def test_conditional_network(capsys):
    passes(capsys, lambda: face.conditional_network(mlp))
    passes(capsys, lambda: face.conditional_network(functional))
    passes(capsys, lambda: face.conditional_network(Subclassed))
    batch_norm = lambda k: tf.keras.Sequential([tf.keras.layers.Dense(64, activation="relu"),  # noqa: E731
                                                tf.keras.layers.BatchNormalization(),
                                                tf.keras.layers.Dense(64, activation="tanh"),
                                                tf.keras.layers.Dense(3 * k)])
    passes(capsys, lambda: face.conditional_network(batch_norm))
    fails(capsys, lambda: face.conditional_network(lambda k: tf.keras.Sequential([tf.keras.layers.Dense(3 * k)])),
          "linear")
    fails(capsys, lambda: face.conditional_network(lambda k: mlp(5)), "num_components")
    shared = mlp(5)
    fails(capsys, lambda: face.conditional_network(lambda k: shared if k == 5 else mlp(k)), "same network")
    zeros = lambda k: tf.keras.layers.Lambda(lambda x1: tf.zeros([tf.shape(x1)[0], 3 * k]))  # noqa: E731 - the stub
    fails(capsys, lambda: face.conditional_network(zeros), "no trainable weights")


@pytest.mark.parametrize("output", ["relu", "softplus", "sigmoid", "tanh"])
def test_conditional_network_output_activation(capsys, output):
    # The observed false pass: an output activation. The hint names the output layer, not conditioning.
    fails(capsys, lambda: face.conditional_network(lambda k: mlp(k, output)), "output layer", "no activation")


def test_conditional_network_output_activation_behaviour(capsys):
    # Activations the structure does not show: only the network's behaviour gives them away.
    relu_lambda = lambda k: tf.keras.Sequential([mlp(k), tf.keras.layers.Lambda(tf.nn.relu)])  # noqa: E731
    fails(capsys, lambda: face.conditional_network(relu_lambda), "output layer", "below zero")
    squashed = lambda k: tf.keras.Sequential([mlp(k), tf.keras.layers.Lambda(lambda t: 0.9 * tf.tanh(t))])  # noqa: E731
    fails(capsys, lambda: face.conditional_network(squashed), "output layer", "(-1, 1)")
    separate = lambda k: tf.keras.Sequential([mlp(k), tf.keras.layers.Activation("softplus")])  # noqa: E731
    fails(capsys, lambda: face.conditional_network(separate), "output layer", "softplus")


class RaisingLayer(tf.keras.layers.Layer):
    def call(self, x):
        raise RuntimeError("student bug")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), ("network", "function"), (raises, "raised RuntimeError"), (lambda k: ..., "placeholder"),
    (lambda k: "mlp", "Keras layer"), (lambda k: RaisingLayer(), "raised RuntimeError"),
    (lambda k: tf.keras.layers.Dense(2 * k), "shape"), (lambda: mlp(5), "raised TypeError"),
])
def test_conditional_network_weird_answers(capsys, answer, words):
    fails(capsys, lambda: face.conditional_network(answer), words)


# ---- lab 03: the log-likelihood ---------------------------------------------------------------


def ar_log_prob_bijectors(x, conditioner):
    p1 = MixtureCDF.from_params(conditioner.marginal_params()).forward_log_det_jacobian(x[:, 0], event_ndims=0)
    p2 = MixtureCDF.from_params(conditioner.conditional_params(x[:, :1])).forward_log_det_jacobian(
        x[:, 1], event_ndims=0)
    return p1 + p2


def _mixture(theta):
    logits, locs, log_scales = tf.split(theta, 3, axis=-1)
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), tfd.Normal(locs, tf.exp(log_scales)))


def ar_log_prob_distributions(x, conditioner):
    params = conditioner(x)  # [n, 2, 3K]: row 0 is theta1, row 1 is theta2(x1)
    return tf.reduce_sum(_mixture(params).log_prob(x), axis=-1)


def test_ar_log_prob(capsys):
    passes(capsys, lambda: face.ar_log_prob(ar_log_prob_bijectors))
    passes(capsys, lambda: face.ar_log_prob(ar_log_prob_distributions))
    theta1_only = lambda x, c: tf.reduce_sum(_mixture(c.marginal_params()).log_prob(x), axis=-1)  # noqa: E731
    fails(capsys, lambda: face.ar_log_prob(theta1_only), "θ1")
    fails(capsys, lambda: face.ar_log_prob(lambda x, c: -ar_log_prob_bijectors(x, c)), "sign")
    fails(capsys, lambda: face.ar_log_prob(lambda x, c: _mixture(c.marginal_params()).log_prob(x[:, 0])), "only")
    wrong_input = lambda x, c: _mixture(c.marginal_params()).log_prob(x[:, 0]) + _mixture(  # noqa: E731
        c.conditional_params(x[:, 1:])).log_prob(x[:, 1])
    fails(capsys, lambda: face.ar_log_prob(wrong_input), "x1 only")
    fails(capsys, lambda: face.ar_log_prob(lambda x, c: tf.stack([ar_log_prob_bijectors(x, c)] * 2, 1)), "stacked")
    by_column = lambda x, c: tf.concat([_mixture(c.marginal_params()).log_prob(x[:, :1]),  # noqa: E731
                                        _mixture(c.conditional_params(x[:, :1])).log_prob(x[:, 1])[:, None]], 1)
    fails(capsys, lambda: face.ar_log_prob(by_column), "stacked")


def test_ar_log_prob_kept_columns(capsys):
    # The observed wrong blame: (n, 1) slices kept got "added, not stacked".
    columns = lambda x, c: (  # noqa: E731
        MixtureCDF.from_params(c.marginal_params()).forward_log_det_jacobian(x[:, :1], 0)
        + MixtureCDF.from_params(c.conditional_params(x[:, :1])).forward_log_det_jacobian(x[:, 1:], 0))
    fails(capsys, lambda: face.ar_log_prob(columns), "x[:, 0]", "(n, 1)")
    keepdims = lambda x, c: ar_log_prob_bijectors(x, c)[:, None]  # noqa: E731
    fails(capsys, lambda: face.ar_log_prob(keepdims), "x[:, 0]")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), ("log p", "function"), (raises, "raised RuntimeError"), (lambda x, c: ..., "placeholder"),
    (lambda x, c: "nope", "not a tensor"), (lambda x, c: tf.zeros([4]), "shape"), (lambda x: x, "raised TypeError"),
])
def test_ar_log_prob_weird_answers(capsys, answer, words):
    fails(capsys, lambda: face.ar_log_prob(answer), words)


# ---- lab 03: sampling in order ----------------------------------------------------------------


def sample_bijectors(n, conditioner, seed=0):
    u = tf.random.stateless_uniform([n, 2], seed=[seed, 0])
    x1 = MixtureCDF.from_params(conditioner.marginal_params()).inverse(u[:, 0])
    x2 = MixtureCDF.from_params(conditioner.conditional_params(x1[:, None])).inverse(u[:, 1])
    return tf.stack([x1, x2], axis=1)


def sample_distributions(n, conditioner, seed=0):
    rng = np.random.default_rng(seed)
    x1 = tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0),
                                     tfb.Invert(MixtureCDF.from_params(conditioner.marginal_params())))
    x1 = np.asarray(x1.sample(n, seed=seed))
    u2 = rng.uniform(size=n).astype(np.float32)
    x2 = MixtureCDF.from_params(conditioner.conditional_params(x1[:, None])).inverse(u2)
    return np.stack([x1, np.asarray(x2)], axis=1)


def test_sample_in_order(capsys):
    passes(capsys, lambda: face.sample_in_order(sample_bijectors))
    passes(capsys, lambda: face.sample_in_order(sample_distributions))

    def theta2_of_u1(n, c, seed=0):
        u = tf.random.stateless_uniform([n, 2], seed=[seed, 0])
        x1 = MixtureCDF.from_params(c.marginal_params()).inverse(u[:, 0])
        return tf.stack([x1, MixtureCDF.from_params(c.conditional_params(u[:, :1])).inverse(u[:, 1])], axis=1)

    def same_u(n, c, seed=0):
        u = tf.random.stateless_uniform([n], seed=[seed, 0])
        x1 = MixtureCDF.from_params(c.marginal_params()).inverse(u)
        return tf.stack([x1, MixtureCDF.from_params(c.conditional_params(x1[:, None])).inverse(u)], axis=1)

    def theta1_twice(n, c, seed=0):
        u = tf.random.stateless_uniform([n, 2], seed=[seed, 0])
        return MixtureCDF.from_params(c.marginal_params()).inverse(u)

    fails(capsys, lambda: face.sample_in_order(theta2_of_u1), "x2", "x1 you just sampled")
    fails(capsys, lambda: face.sample_in_order(same_u), "independent")
    fails(capsys, lambda: face.sample_in_order(theta1_twice), "x2")
    fails(capsys, lambda: face.sample_in_order(lambda n, c, seed=0: tf.zeros([n, 2])), "vary")
    fails(capsys, lambda: face.sample_in_order(lambda n, c, seed=0: tf.random.uniform([n, 2])), "x1")


@pytest.mark.parametrize("answer, words", [
    (..., "placeholder"), ("samples", "function"), (raises, "raised RuntimeError"),
    (lambda n, c, seed=0: ..., "placeholder"),
    (lambda n, c: tf.zeros([n, 2]), "raised TypeError"), (lambda n, c, seed=0: tf.zeros([n]), "shape"),
    (lambda n, c, seed=0: tf.fill([n, 2], np.nan), "NaN"),
])
def test_sample_in_order_weird_answers(capsys, answer, words):
    fails(capsys, lambda: face.sample_in_order(answer), words)


# ---- lab 03: the trained flows ----------------------------------------------------------------


class Density:
    """A stand-in for the notebook's trained model: anything with log_prob(x)."""

    def __init__(self, log_prob):
        self.log_prob = log_prob


def mixture_fit(points, components):
    """A Gaussian mixture fitted by EM (scikit-learn): a good density of the data, no flow trained."""
    from sklearn.mixture import GaussianMixture

    fitted = GaussianMixture(components, covariance_type="full", random_state=0).fit(points)
    return tfd.MixtureSameFamily(tfd.Categorical(probs=fitted.weights_.astype(np.float32)),
                                 tfd.MultivariateNormalTriL(loc=fitted.means_.astype(np.float32),
                                                            scale_tril=np.linalg.cholesky(fitted.covariances_).astype(np.float32)))


def gaussian_fit(points):
    return tfd.MultivariateNormalTriL(loc=points.mean(0),
                                     scale_tril=np.linalg.cholesky(np.cov(points.T)).astype(np.float32))


class ARFlow:
    """The notebook's AutoregressiveFlow: a conditioner and a log_prob (by default the mixture density of
    that conditioner, log p(x1; θ1) + log p(x2; θ2(x1)), computed through the library's bijector)."""

    def __init__(self, conditioner, log_prob=None):
        self.conditioner = conditioner
        self._log_prob = log_prob

    def log_prob(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        if self._log_prob is not None:
            return self._log_prob(x)
        return AutoregressiveMixtureCDF(self.conditioner).forward_log_det_jacobian(x, event_ndims=1)


def lab_log_prob(conditioner):
    """The same density written as the lab's solution writes ar_log_prob: two MixtureCDFs."""
    def log_prob(x):
        first = MixtureCDF.from_params(conditioner.marginal_params())
        second = MixtureCDF.from_params(conditioner.conditional_params(x[:, :1]))
        return (first.forward_log_det_jacobian(x[:, 0], event_ndims=0)
                + second.forward_log_det_jacobian(x[:, 1], event_ndims=0))
    return log_prob


def fit_conditioner(points, steps, seed=0):
    """A MixtureConditioner2D (K = 5, two hidden layers) trained by maximum likelihood, as the lab's fit cell does."""
    tf.keras.utils.set_random_seed(seed)
    conditioner = MixtureConditioner2D(5, loc_range=(-3.0, 3.0))
    conditioner(tf.zeros([1, 2]))
    flow, optimizer = AutoregressiveMixtureCDF(conditioner), tf.keras.optimizers.Adam(5e-3)
    data, rng = tf.constant(points, tf.float32), np.random.default_rng(seed)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.forward_log_det_jacobian(batch, event_ndims=1))
        optimizer.apply_gradients(zip(tape.gradient(loss, conditioner.trainable_variables),
                                      conditioner.trainable_variables))

    for _ in range(steps):
        step(tf.gather(data, rng.integers(0, len(points), 256)))
    return conditioner


@pytest.fixture(scope="module")
def trained_conditioners():
    return {"moons": fit_conditioner(load_two_moons(4000, seed=0)[0], 800),
            "face": fit_conditioner(load_face(2000, seed=0)[0], 800)}


@pytest.mark.parametrize("data, check, components", [
    ("moons", face.trained_moons_flow, 30), ("face", face.trained_face_flow, 20),
])
def test_trained_flows(capsys, trained_conditioners, data, check, components):
    train = load_two_moons(2000, seed=0)[0] if data == "moons" else load_face(2000, seed=0)[0]
    test = face.moons_test_set() if data == "moons" else face.face_test_set()
    conditioner = trained_conditioners[data]
    passes(capsys, lambda: check(ARFlow(conditioner), test))
    passes(capsys, lambda: check(ARFlow(conditioner, lab_log_prob(conditioner)), test.tolist()))
    # The untrained flow: the broad initial mixtures.
    fails(capsys, lambda: check(ARFlow(MixtureConditioner2D(5, loc_range=(-3.0, 3.0))), test), "does not fit")
    # A good density that is not the lab's flow, on its own or behind the lab's conditioner.
    good = mixture_fit(train, components)
    fails(capsys, lambda: check(Density(lambda x: good.log_prob(x)), test), "not the lab's autoregressive flow")
    fails(capsys, lambda: check(ARFlow(conditioner, good.log_prob), test), "of its own conditioner")
    # A density that lies about its normalisation -- it scores better than the truth -- must fail.
    fails(capsys, lambda: check(ARFlow(conditioner, lambda x: lab_log_prob(conditioner)(x) + 1.0), test),
          "of its own conditioner")
    # The x1 term only: one conditional is missing, so the "density" is not one.
    x1_density = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(50)), tfd.Normal(train[:50, 0], 0.1))
    fails(capsys, lambda: check(ARFlow(conditioner, lambda x: x1_density.log_prob(x[:, 0])), test),
          "of its own conditioner")
    # Measured on the lab's own held-out points: its best-fitting hundred, or the points moved, fail.
    best = test[np.argsort(-ARFlow(conditioner).log_prob(test).numpy())[:100]]
    fails(capsys, lambda: check(ARFlow(conditioner), best), "not the lab's test set", "100 rows")
    fails(capsys, lambda: check(ARFlow(conditioner), test * 0.5), "not the lab's test set", "changed")


@pytest.mark.parametrize("model, words", [
    (..., "placeholder"), ("flow", "log_prob method"), (Density(raises), "raised RuntimeError"),
    (Density(lambda x: tf.zeros([3])), "one number per point"), (Density(lambda x: "p"), "not a tensor"),
    (Density(lambda x: tf.fill(tf.shape(x)[:1], np.nan)), "not finite"),
])
def test_trained_flows_weird_answers(capsys, model, words):
    fails(capsys, lambda: face.trained_face_flow(model, face.face_test_set()), words)


# ---- answers that work on numbers but not inside model.fit -----------------------------------


def test_numpy_answers_fail_where_model_fit_runs_them(capsys):
    def numpy_log_prob(x, flow, base):
        x = np.asarray(x)
        return np.asarray(base.log_prob(flow.forward(x))) + np.asarray(flow.forward_log_det_jacobian(x, event_ndims=0))

    fails(capsys, lambda: flows_1d.flow_log_prob(numpy_log_prob), "model.fit", "NumPy")

    def numpy_ar_log_prob(x, conditioner):
        return np.asarray(ar_log_prob_bijectors(tf.constant(np.asarray(x)), conditioner))

    fails(capsys, lambda: face.ar_log_prob(numpy_ar_log_prob), "model.fit", "NumPy")

    def stopped(x, conditioner):
        return tf.stop_gradient(ar_log_prob_bijectors(x, conditioner))

    fails(capsys, lambda: face.ar_log_prob(stopped), "gradient", "θ1")
