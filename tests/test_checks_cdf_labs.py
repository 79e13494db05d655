"""The checks of labs 01 (1-D CDF flows) and 03 (face): ✔ for right answers written two ways, ✘ otherwise."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import flowlab.training
from flowlab.bijectors.autoregressive_cdf import build_autoregressive_mixture_cdf
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks import face, flows_1d
from flowlab.datasets import load_face
from flowlab.datasets.bimodal import bimodal_log_prob, load_bimodal

tfd, tfb = tfp.distributions, tfp.bijectors


def verdict(capsys, run):
    run()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # a check prints exactly one line
    return lines[0]


def passes(capsys, run):
    line = verdict(capsys, run)
    assert line.startswith("✔"), line


def fails(capsys, run, words=""):
    line = verdict(capsys, run)
    assert line.startswith("✘") and words in line, line


# ---- lab 01 ------------------------------------------------------------------------------------


def log_prob_direct(x, flow, base):
    return base.log_prob(flow.forward(x)) + flow.forward_log_det_jacobian(x, event_ndims=0)


def log_prob_tfp(x, flow, base):
    return tfd.TransformedDistribution(base, tfb.Invert(flow)).log_prob(x)


def test_flow_log_prob(capsys):
    passes(capsys, lambda: flows_1d.flow_log_prob(log_prob_direct))
    passes(capsys, lambda: flows_1d.flow_log_prob(log_prob_tfp))
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: b.log_prob(f.forward(x))), "log-det term is missing")
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: -log_prob_direct(x, f, b)), "sign")
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: b.log_prob(f.inverse(x))))
    fails(capsys, lambda: flows_1d.flow_log_prob(lambda x, f, b: ...), "placeholder")
    fails(capsys, lambda: flows_1d.flow_log_prob(...), "placeholder")


def _cdf():
    return MixtureCDF(tf.Variable([0.1, 0.0]), tf.Variable([-1.0, 1.0]), tf.Variable([-0.3, -0.5]))


def test_gaussian_flow(capsys):
    cdf = _cdf()
    passes(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([tfb.Invert(tfb.NormalCDF()), cdf]), cdf))
    passes(capsys, lambda: flows_1d.gaussian_flow(tfb.Invert(tfb.NormalCDF())(cdf), cdf))
    fails(capsys, lambda: flows_1d.gaussian_flow(cdf, cdf), "still the CDF")
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([cdf, tfb.Invert(tfb.NormalCDF())]), cdf))
    fails(capsys, lambda: flows_1d.gaussian_flow(tfb.Chain([tfb.NormalCDF(), cdf]), cdf))
    fails(capsys, lambda: flows_1d.gaussian_flow(..., cdf), "placeholder")


def test_inverse_cdf_samples(capsys):
    cdf = _cdf()
    train = np.asarray(cdf.inverse(tf.random.stateless_uniform([1000], seed=[0, 1])))
    u = tf.random.uniform([5000], seed=3)
    passes(capsys, lambda: flows_1d.inverse_cdf_samples(cdf.inverse(u), cdf, train))
    via_tfp = tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0), tfb.Invert(cdf)).sample(4000, seed=5)
    passes(capsys, lambda: flows_1d.inverse_cdf_samples(via_tfp, cdf, train))
    fails(capsys, lambda: flows_1d.inverse_cdf_samples(np.zeros(5000, np.float32), cdf, train))
    fails(capsys, lambda: flows_1d.inverse_cdf_samples(train, cdf, train), "training points")
    fails(capsys, lambda: flows_1d.inverse_cdf_samples(cdf.forward(u.numpy()), cdf, train), "not distributed")
    fails(capsys, lambda: flows_1d.inverse_cdf_samples(tf.random.normal([5000], seed=1), cdf, train))
    fails(capsys, lambda: flows_1d.inverse_cdf_samples(..., cdf, train), "placeholder")


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


# ---- lab 03 ------------------------------------------------------------------------------------


def mlp(k):
    return tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(32, activation="relu"),
                                tf.keras.layers.Dense(3 * k)])


def functional(k):
    inputs = tf.keras.Input(shape=(1,))
    hidden = tf.keras.layers.Dense(16, activation="tanh")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3 * k, kernel_initializer="zeros")(hidden))


def test_conditional_network(capsys):
    passes(capsys, lambda: face.conditional_network(mlp))
    passes(capsys, lambda: face.conditional_network(functional))
    fails(capsys, lambda: face.conditional_network(lambda k: tf.keras.Sequential([tf.keras.layers.Dense(3 * k)])), "linear")
    fails(capsys, lambda: face.conditional_network(lambda k: mlp(5)), "num_components")
    shared = mlp(5)
    fails(capsys, lambda: face.conditional_network(lambda k: shared if k == 5 else mlp(k)), "same network")
    fails(capsys, lambda: face.conditional_network(lambda k: ...), "placeholder")


def ar_log_prob_bijectors(x, conditioner):
    p1 = MixtureCDF.from_params(conditioner.marginal_params()).forward_log_det_jacobian(x[:, 0], event_ndims=0)
    p2 = MixtureCDF.from_params(conditioner.conditional_params(x[:, :1])).forward_log_det_jacobian(x[:, 1], event_ndims=0)
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
    fails(capsys, lambda: face.ar_log_prob(wrong_input))
    fails(capsys, lambda: face.ar_log_prob(lambda x, c: tf.stack([ar_log_prob_bijectors(x, c)] * 2, 1)), "shape")
    fails(capsys, lambda: face.ar_log_prob(lambda x, c: ...), "placeholder")


def sample_bijectors(n, conditioner, seed=0):
    u = tf.random.stateless_uniform([n, 2], seed=[seed, 0])
    x1 = MixtureCDF.from_params(conditioner.marginal_params()).inverse(u[:, 0])
    x2 = MixtureCDF.from_params(conditioner.conditional_params(x1[:, None])).inverse(u[:, 1])
    return tf.stack([x1, x2], axis=1)


def sample_distributions(n, conditioner, seed=0):
    rng = np.random.default_rng(seed)
    x1 = tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0), tfb.Invert(MixtureCDF.from_params(conditioner.marginal_params())))
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

    fails(capsys, lambda: face.sample_in_order(theta2_of_u1), "x2")
    fails(capsys, lambda: face.sample_in_order(same_u), "independent")
    fails(capsys, lambda: face.sample_in_order(theta1_twice), "x2")
    fails(capsys, lambda: face.sample_in_order(lambda n, c, seed=0: tf.zeros([n, 2])), "vary")
    fails(capsys, lambda: face.sample_in_order(lambda n, c, seed=0: tf.random.uniform([n, 2])))
    fails(capsys, lambda: face.sample_in_order(...), "placeholder")


def test_trained_face_flow(capsys):
    train, test = load_face(1000, 500)
    flow = build_autoregressive_mixture_cdf(2, num_components=5, hidden_units=(32, 32))
    fails(capsys, lambda: face.trained_face_flow(flow, test), "Gaussian")  # untrained: broad
    flowlab.training.fit(flow, train, epochs=12, batch_size=100, learning_rate=5e-3, verbose=0)
    passes(capsys, lambda: face.trained_face_flow(flow, test))
    kde = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(len(train))),
                                tfd.MultivariateNormalDiag(loc=train, scale_diag=tf.fill([len(train), 2], 0.2)))
    passes(capsys, lambda: face.trained_face_flow(kde, test))
    gaussian = tfd.MultivariateNormalTriL(loc=train.mean(0), scale_tril=np.linalg.cholesky(np.cov(train.T)).astype(np.float32))
    fails(capsys, lambda: face.trained_face_flow(gaussian, test), "Gaussian")
    fails(capsys, lambda: face.trained_face_flow(..., test), "placeholder")
