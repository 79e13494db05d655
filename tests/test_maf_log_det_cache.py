"""The autoregressive layers' log-det comes from the same MADE pass as the inverse (flowlab.flows.maf).

TFP's ``MaskedAutoregressiveFlow`` calls ``bijector_fn`` once for the inverse and once more for the
log-det; flowlab's layer stores the log-det with the inverse.  Same values and gradients as TFP's
layer with the same network, one network pass per ``log_prob``, and a log-det asked for on its own
(a cache miss) still right.  ``zero_init=True`` starts every layer as the identity.
"""

import flowlab  # noqa: F401  (selects Keras 2 first)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows import build_nsf
from flowlab.flows.maf import MADETransformer, autoregressive_layer, build_autoregressive
from flowlab.transformers import AffineTransformer, SplineTransformer

tfd, tfb = tfp.distributions, tfp.bijectors


class CountingMADE(MADETransformer):
    calls = 0

    def __call__(self, x, **kwargs):
        CountingMADE.calls += 1
        return super().__call__(x, **kwargs)


def randomise(module: tf.Module, seed: int) -> None:
    """Non-zero weights everywhere (keeping MADE's masks), so the layer is far from the identity."""
    rng = np.random.default_rng(seed)
    for variable in module.trainable_variables:
        values = 0.3 * rng.standard_normal(variable.shape).astype(np.float32)
        variable.assign(values * (variable.numpy() != 0) if variable.shape.rank == 2 else values)


@pytest.mark.parametrize("transformer", [SplineTransformer(bins=5, bound=3.0), AffineTransformer(2.0)],
                         ids=["spline", "affine"])
def test_same_log_prob_and_gradients_as_tfp_layer_with_one_network_pass(transformer):
    made = CountingMADE(3, transformer, hidden_units=(16,))
    ours = autoregressive_layer(3, transformer, hidden_units=(16,))
    ours._bijector_fn = made  # the same network in both layers
    theirs = tfb.MaskedAutoregressiveFlow(bijector_fn=made)
    x = tf.constant(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    made(x)  # build
    randomise(made, seed=1)
    base = tfd.MultivariateNormalDiag(tf.zeros(3))

    results = []
    for layer in (ours, theirs):
        CountingMADE.calls = 0
        with tf.GradientTape() as tape:
            log_prob = tfd.TransformedDistribution(base, layer).log_prob(x)
        gradients = tape.gradient(log_prob, made.trainable_variables)
        results.append((log_prob.numpy(), [g.numpy() for g in gradients], CountingMADE.calls))
    (ours_lp, ours_grads, ours_calls), (tfp_lp, tfp_grads, tfp_calls) = results
    np.testing.assert_allclose(ours_lp, tfp_lp, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours_grads, tfp_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert (ours_calls, tfp_calls) == (1, 2)
    assert np.ptp(ours_lp) > 0.1  # a layer far from the identity: the comparison means something


def test_log_det_alone_is_the_autodiff_log_det():
    layer = autoregressive_layer(2, SplineTransformer(bins=4, bound=3.0), hidden_units=(8,))
    y = tf.constant(np.random.default_rng(2).normal(size=(32, 2)).astype(np.float32))
    layer.inverse(y)  # build
    randomise(layer, seed=3)
    y = tf.identity(y)  # a new tensor: nothing cached for it
    ildj = layer.inverse_log_det_jacobian(y, event_ndims=1)
    with tf.GradientTape() as tape:
        tape.watch(y)
        x = layer.inverse(y)
    _, log_abs_det = tf.linalg.slogdet(tape.batch_jacobian(x, y))
    np.testing.assert_allclose(ildj.numpy(), log_abs_det.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.forward(x).numpy(), y.numpy(), atol=1e-4)


@pytest.mark.parametrize("build", [
    lambda zero_init: build_nsf(2, n_layers=2, bins=4, hidden_units=(8,), zero_init=zero_init),
    lambda zero_init: build_autoregressive(3, AffineTransformer(2.0), n_layers=2, hidden_units=(8,),
                                           zero_init=zero_init),
], ids=["nsf", "affine"])
def test_zero_init_starts_as_the_base_and_still_learns(build):
    flow, default = build(True), build(False)
    dims = int(flow.event_shape[0])
    x = tf.constant(np.random.default_rng(4).normal(size=(16, dims)).astype(np.float32))
    base = tfd.MultivariateNormalDiag(tf.zeros(dims)).log_prob(x)
    np.testing.assert_allclose(flow.log_prob(x).numpy(), base.numpy(), atol=1e-5)
    assert np.abs(default.log_prob(x).numpy() - base.numpy()).max() > 1e-3  # Glorot's start is not the identity
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(flow.log_prob(x + 1.0))
    gradients = tape.gradient(loss, flow.trainable_variables)
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    # the zeroed output layers get gradients (the hidden ones do not until those move): the flow can learn
    assert sum(np.abs(g.numpy()).max() > 0 for g in gradients) >= 2


def made_networks(flow):
    return [b._bijector_fn.network for b in flow.bijector.bijectors if hasattr(b, "_bijector_fn")]


@pytest.mark.parametrize("zero_init", [False, True])
def test_uniform_init_spreads_the_biases_and_keeps_the_masks(zero_init):
    """``init="uniform"``: kernels and biases on +-1/sqrt(fan-in) (PyTorch's), MADE's masks kept."""
    flowlab.seed(3)
    flow = build_nsf(3, n_layers=2, bins=4, hidden_units=(16, 16), zero_init=zero_init, init="uniform")
    glorot = build_nsf(3, n_layers=2, bins=4, hidden_units=(16, 16), zero_init=zero_init)
    for network, reference in zip(made_networks(flow), made_networks(glorot)):
        variables, masks = network.trainable_variables, [v.numpy() != 0 for v in reference.trainable_variables]
        last = len(variables) - 2 if zero_init else len(variables)
        for i in range(0, last, 2):
            kernel, bias = variables[i].numpy(), variables[i + 1].numpy()
            limit = 1 / np.sqrt(kernel.shape[0])
            assert np.abs(kernel).max() <= limit and np.abs(bias).max() <= limit
            assert np.abs(kernel).max() > limit / 2 and np.abs(bias).max() > limit / 2  # drawn on the whole range
            assert np.unique(bias).size == bias.size  # every unit its own bend (Glorot's biases are all 0)
            np.testing.assert_array_equal(kernel != 0, masks[i])  # the autoregressive masks, as TFP's
    # every layer, of every network, draws its own numbers (one reused unseeded Keras initializer would repeat them)
    draws = [v.numpy().ravel()[:3] * np.sqrt(v.shape[0]) for network in made_networks(flow)
             for v in network.trainable_variables[0:4:2]]
    assert len({tuple(np.round(d, 5)) for d in draws}) == len(draws)
    # still autoregressive: the inverse's Jacobian is triangular, so the layer's log-det is its diagonal's
    layer = next(b for b in flow.bijector.bijectors if hasattr(b, "_bijector_fn"))
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = layer.inverse(x)
    jacobian = tape.batch_jacobian(z, x).numpy()
    np.testing.assert_allclose(np.triu(jacobian, 1), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.log(np.abs(np.diagonal(jacobian, axis1=1, axis2=2))).sum(-1),
                               layer.inverse_log_det_jacobian(x, event_ndims=1).numpy(), rtol=1e-4, atol=1e-4)
    if zero_init:  # the uniform hidden layers do not change the identity start
        base = tfd.MultivariateNormalDiag(tf.zeros(3)).log_prob(x)
        np.testing.assert_allclose(flow.log_prob(x).numpy(), base.numpy(), atol=1e-5)


def test_a_bad_init_is_a_clear_error():
    with pytest.raises(ValueError, match="init must be one of"):
        build_nsf(2, n_layers=1, bins=4, hidden_units=(8,), init="he")
    with pytest.raises(ValueError, match="coupling"):
        build_nsf(2, n_layers=1, bins=4, hidden_units=(8,), kind="coupling", zero_init=True)
