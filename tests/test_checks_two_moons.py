"""Lab 02's checks: ✘ with a hint for wrong answers, ✔ for differently written right ones."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.checks import two_moons as check
from flowlab.datasets import load_two_moons
from flowlab.flows import build_maf, made_layer
from flowlab.training import fit

tfd, tfb = tfp.distributions, tfp.bijectors


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __float__(self):
        return 0.0


def verdict(capsys, fn, *args):
    fn(*args)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one line, nothing else
    return out[0]


@pytest.mark.parametrize(
    "base, ok",
    [
        (tfd.MultivariateNormalDiag(loc=[0.0, 0.0]), True),
        (tfd.Independent(tfd.Normal(loc=[0.0, 0.0], scale=1.0), reinterpreted_batch_ndims=1), True),
        (tfd.Normal(loc=[0.0, 0.0], scale=1.0), False),
        (tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[2.0, 1.0]), False),
        (tfd.MultivariateNormalDiag(loc=[0.0, 0.0, 0.0]), False),
        (..., False),
        (AlwaysEqual(), False),
    ],
)
def test_base_distribution(capsys, base, ok):
    assert verdict(capsys, check.base_distribution, base).startswith("✔" if ok else "✘")


@pytest.mark.parametrize(
    "make, ok",
    [
        (lambda: tfb.Chain([tfb.Shift([0.5, 0.25]), tfb.Scale([1.0, 0.5])]), True),
        (lambda: tfb.Shift([0.5, 0.25])(tfb.Scale([1.0, 0.5])), True),
        (lambda: tfb.Chain([tfb.Shift([0.5, 0.25]), tfb.ScaleMatvecDiag([1.0, 0.5])]), True),
        (lambda: tfb.Chain([tfb.Scale([1.0, 0.5]), tfb.Shift([0.5, 0.25])]), False),
        (lambda: tfb.Shift([0.5, 0.25]), False),
        (lambda: "tfb.Shift", False),
    ],
)
def test_affine_bijector(capsys, make, ok):
    line = verdict(capsys, check.affine_bijector, make())
    assert line.startswith("✔" if ok else "✘"), line


def test_wrong_order_gets_the_chain_hint(capsys):
    line = verdict(capsys, check.affine_bijector, tfb.Chain([tfb.Scale([1.0, 0.5]), tfb.Shift([0.5, 0.25])]))
    assert "right to left" in line


def test_transformed_distribution(capsys):
    base = tfd.MultivariateNormalDiag(loc=[0.0, 0.0])
    affine = tfb.Shift([0.5, 0.25])(tfb.Scale([1.0, 0.5]))
    assert verdict(capsys, check.transformed_distribution, tfd.TransformedDistribution(base, affine)).startswith("✔")
    direct = tfd.MultivariateNormalDiag(loc=[0.5, 0.25], scale_diag=[1.0, 0.5])
    assert verdict(capsys, check.transformed_distribution, direct).startswith("✔")
    assert verdict(capsys, check.transformed_distribution, base).startswith("✘")


def _maf_chain(n, permute=True):
    bijectors = []
    for _ in range(n):
        bijectors.append(made_layer(2, (16,)))
        if permute:
            bijectors.append(tfb.Permute([1, 0]))
    return tfb.Chain(list(reversed(bijectors)))


def test_flow_bijector(capsys):
    assert verdict(capsys, check.flow_bijector, _maf_chain(3)).startswith("✔")
    assert verdict(capsys, check.flow_bijector, build_maf(2, n_layers=3, hidden_units=(8,)).bijector).startswith("✔")
    no_permute = verdict(capsys, check.flow_bijector, _maf_chain(3, permute=False))
    assert no_permute.startswith("✘") and "Permute" in no_permute
    assert verdict(capsys, check.flow_bijector, _maf_chain(1)).startswith("✘")
    assert verdict(capsys, check.flow_bijector, tfb.Shift([1.0, 2.0])).startswith("✘")


def test_keras_model_and_compile(capsys):
    flow = build_maf(2, n_layers=1, hidden_units=(8,))
    x_ = tf.keras.Input(shape=(2,))
    model = tf.keras.Model(x_, flow.log_prob(x_))
    assert verdict(capsys, check.keras_model, model, flow).startswith("✔")
    other = tf.keras.Model(x_, flow.distribution.log_prob(x_))
    assert verdict(capsys, check.keras_model, other, flow).startswith("✘")
    assert verdict(capsys, check.compiled_model, model).startswith("✘")  # not compiled yet
    nll = lambda _, log_prob: -log_prob  # noqa: E731
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=nll)
    assert verdict(capsys, check.compiled_model, model).startswith("✔")
    model.compile(optimizer=tf.keras.optimizers.Adam(clipnorm=0.5), loss=lambda y, lp: -tf.reduce_mean(lp))
    assert verdict(capsys, check.compiled_model, model).startswith("✔")
    model.compile(optimizer="adam", loss=nll)
    unclipped = verdict(capsys, check.compiled_model, model)
    assert unclipped.startswith("✘") and "clip" in unclipped
    model.compile(optimizer=tf.keras.optimizers.Adam(global_clipnorm=1.0), loss=lambda y, lp: lp)
    assert verdict(capsys, check.compiled_model, model).startswith("✘")
    model.compile(optimizer=tf.keras.optimizers.Adam(global_clipnorm=1.0), loss=lambda y, lp: -lp + tf.reduce_sum(y))
    assert verdict(capsys, check.compiled_model, model).startswith("✘")


def test_trained_flow_and_test_nll(capsys):
    train, test = load_two_moons(2000, 500, seed=0)
    flow = build_maf(2, n_layers=2, hidden_units=(32,))
    assert verdict(capsys, check.trained_flow, flow, test).startswith("✘")  # untrained
    fit(flow, train, epochs=10, batch_size=128, verbose=0)
    assert verdict(capsys, check.trained_flow, flow, test).startswith("✔")
    nll = -tf.reduce_mean(flow.log_prob(test))
    assert verdict(capsys, check.test_nll, nll, flow, test).startswith("✔")
    assert verdict(capsys, check.test_nll, float(-np.mean(flow.log_prob(test))), flow, test).startswith("✔")
    wrong_sign = verdict(capsys, check.test_nll, -nll, flow, test)
    assert wrong_sign.startswith("✘") and "opposite sign" in wrong_sign
    assert verdict(capsys, check.test_nll, AlwaysEqual(), flow, test).startswith("✘")
    assert verdict(capsys, check.test_nll, ..., flow, test).startswith("✘")
