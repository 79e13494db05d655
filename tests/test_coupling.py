"""Coupling layers (NICE, RealNVP), their masks and ActNorm: invertible, exact log-dets, clear errors."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from bijector_harness import randomise

from flowlab.bijectors.actnorm import ActNorm, initialize_actnorm
from flowlab.bijectors.coupling import AdditiveCoupling, AffineCoupling
from flowlab.bijectors.masks import alternating_mask, channel_mask, checkerboard, validate_mask
from flowlab.conditioners.mlp import MLPConditioner
from flowlab.conditioners.resnet import ResNetConditioner

tfd, tfb = tfp.distributions, tfp.bijectors


def _random(layer, probe, seed=0):
    """New couplings are the identity (zero-initialised head), which hides bugs: give random weights."""
    layer.forward(tf.identity(probe))  # Keras layers build on first call
    return randomise(layer, seed=seed)


def _vector(kind, mask=(1.0, 0.0, 1.0, 0.0)):
    dims = len(mask)
    if kind == "affine":
        return AffineCoupling(mask, MLPConditioner(dims, hidden_units=(16,)))
    return AdditiveCoupling(mask, MLPConditioner(dims, hidden_units=(16,), shift_only=True))


def _image(kind, mask):
    net = ResNetConditioner(mask.shape[-1], filters=4, blocks=1)
    return AffineCoupling(mask, net) if kind == "affine" else AdditiveCoupling(mask, net)  # uses the shift


IMAGE_MASKS = {
    "checkerboard0": checkerboard(4, 4, 2, parity=0),
    "checkerboard1": checkerboard(4, 4, 2, parity=1),
    "channels0": channel_mask(4, 4, 2, half=0),
    "channels1": channel_mask(4, 4, 2, half=1),
}


# --- masks -----------------------------------------------------------------------------------------

def test_checkerboard_parities_are_complementary_and_alternate():
    even, odd = checkerboard(3, 4, 2, parity=0), checkerboard(3, 4, 2, parity=1)
    assert even.shape == (3, 4, 2)
    np.testing.assert_array_equal(even + odd, 1.0)
    np.testing.assert_array_equal(even[:2, :2, 0], [[1, 0], [0, 1]])
    # every pixel's horizontal and vertical neighbours are on the other side
    assert np.all(even[:, 1:] != even[:, :-1]) and np.all(even[1:, :] != even[:-1, :])


def test_channel_mask_halves():
    first, second = channel_mask(2, 2, 4, half=0), channel_mask(2, 2, 4, half=1)
    np.testing.assert_array_equal(first[0, 0], [1, 1, 0, 0])
    np.testing.assert_array_equal(second[1, 1], [0, 0, 1, 1])
    np.testing.assert_array_equal(alternating_mask(5, parity=1), [0, 1, 0, 1, 0])


@pytest.mark.parametrize(
    "mask, message",
    [
        ([1.0, 0.5, 0.0], "binary"),
        ([1.0, 1.0, 1.0], "all ones"),
        ([0.0, 0.0], "all zeros"),
        (1.0, "scalar"),
        ([1.0, np.nan], "binary"),
    ],
)
def test_bad_masks_are_refused(mask, message):
    with pytest.raises(ValueError, match=message):
        validate_mask(mask)
    with pytest.raises(ValueError, match=message):
        AffineCoupling(mask, MLPConditioner(2))


def test_bad_mask_helpers_are_refused():
    with pytest.raises(ValueError, match="0 or 1"):
        checkerboard(4, 4, parity=2)
    with pytest.raises(ValueError, match="at least 2 channels"):
        channel_mask(4, 4, 1)
    with pytest.raises(ValueError, match="two pixels"):
        checkerboard(1, 1)
    with pytest.raises(ValueError, match="shape"):
        validate_mask(checkerboard(4, 4), event_shape=(4, 4, 2))


# --- vectors ---------------------------------------------------------------------------------------

# Round trips, log-dets against autodiff, shapes with batch axes and finite gradients of the vector and
# image couplings: tests/test_bijectors.py. Here: what makes a coupling a coupling.

@pytest.mark.parametrize("kind", ["affine", "additive"])
def test_vector_coupling_copies_the_masked_half_and_changes_the_other(kind):
    layer = _vector(kind)
    x = tf.random.stateless_normal([2, 3, 4], seed=[1, 2])
    _random(layer, x)
    y = layer.forward(x)
    np.testing.assert_array_equal(y.numpy()[..., ::2], x.numpy()[..., ::2])
    assert np.abs(y.numpy()[..., 1::2] - x.numpy()[..., 1::2]).max() > 1e-3


def test_new_affine_coupling_is_identity_and_log_prob_is_exact():
    layer = AffineCoupling(alternating_mask(4), MLPConditioner(4, hidden_units=(8,)))
    x = tf.random.stateless_normal([5, 4], seed=[5, 6])
    np.testing.assert_allclose(layer.forward(x), x)
    _random(layer, x, seed=2)
    base = tfd.MultivariateNormalDiag(tf.zeros(4))
    flow = tfd.TransformedDistribution(base, layer)
    y = tf.identity(layer.forward(tf.identity(x)))
    expected = (base.log_prob(layer.inverse(tf.identity(y)))
                + layer.inverse_log_det_jacobian(tf.identity(y), event_ndims=1))
    np.testing.assert_allclose(flow.log_prob(y), expected, atol=1e-5)


def test_log_scale_is_bounded():
    layer = AffineCoupling([1.0, 0.0], lambda x: (tf.zeros_like(x), 100.0 * tf.ones_like(x)), log_scale_bound=2.0)
    x = tf.constant([[1.0, 1.0]])
    np.testing.assert_allclose(layer.forward_log_det_jacobian(x, event_ndims=1), [2.0], atol=1e-5)
    np.testing.assert_allclose(layer.forward(tf.identity(x)), [[1.0, np.exp(2.0)]], rtol=1e-5)


# --- images ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(IMAGE_MASKS))
@pytest.mark.parametrize("kind", ["affine", "additive"])
def test_image_coupling_couples_through_its_mask(kind, name):
    mask = IMAGE_MASKS[name]
    layer = _image(kind, mask)
    x = tf.random.stateless_normal([3, 4, 4, 2], seed=[9, 10])
    _random(layer, x, seed=3)
    x = tf.identity(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer.forward(x)
    jacobian = tape.batch_jacobian(y, x).numpy().reshape(3, 32, 32)
    # the transformed pixels depend on the copied ones (the coupling really couples)
    read, written = mask.reshape(-1) == 1, mask.reshape(-1) == 0
    assert np.abs(jacobian[:, written][:, :, read]).max() > 1e-4
    np.testing.assert_array_equal(jacobian[:, read][:, :, written], 0.0)


def test_mismatched_shapes_are_refused():
    layer = AffineCoupling(checkerboard(4, 4, 1), ResNetConditioner(1, filters=4))
    with pytest.raises(ValueError, match="mask's event shape"):
        layer.forward(tf.zeros([2, 6, 6, 1]))
    wrong = AffineCoupling([1.0, 0.0, 1.0], lambda x: (tf.zeros_like(x[..., :2]), tf.zeros_like(x[..., :2])))
    with pytest.raises(ValueError, match="the event's shape"):
        wrong.forward(tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="2 parameters per variable"):
        AffineCoupling([1.0, 0.0], lambda x: x).forward(tf.zeros([1, 2]))
    with pytest.raises(ValueError, match="returned 3 tensors"):
        AffineCoupling([1.0, 0.0], lambda x: (x, x, x)).forward(tf.zeros([1, 2]))
    with pytest.raises(TypeError, match="callable"):
        AffineCoupling([1.0, 0.0], "not a network")
    with pytest.raises(ValueError, match="images"):
        ResNetConditioner(1)(tf.zeros([2, 3]))


def test_coupling_trains_inside_a_keras_model():
    from flowlab.training import density_model

    layer = AffineCoupling(alternating_mask(2), MLPConditioner(2, hidden_units=(8,)))
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), layer)
    model = density_model(flow)
    assert len(model.trainable_variables) == len(flow.trainable_variables) > 0


# --- ActNorm ---------------------------------------------------------------------------------------

def test_actnorm_data_dependent_init_standardises_and_log_det_is_exact():
    norm = ActNorm(2)
    data = 3.0 + 2.0 * tf.random.stateless_normal([64, 4, 4, 2], seed=[13, 14])
    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [4, 4, 2]), norm)
    assert initialize_actnorm(flow, data) == 1
    z = norm.inverse(tf.identity(data)).numpy()
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    x = tf.random.stateless_normal([2, 4, 4, 2], seed=[15, 16])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = norm.forward(x)
    expected = np.linalg.slogdet(tape.batch_jacobian(y, x).numpy().reshape(2, 32, 32))[1]
    np.testing.assert_allclose(norm.forward_log_det_jacobian(x, event_ndims=3), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="channels"):
        norm.forward(tf.zeros([1, 4, 4, 3]))



def test_validate_args_refuses_non_finite_and_misshapen_inputs_at_run_time():
    bad = tf.constant([[0.3, np.inf, 2.0, 0.5]])
    checked = AffineCoupling(alternating_mask(4), MLPConditioner(4, hidden_units=[]), validate_args=True)
    unchecked = AffineCoupling(alternating_mask(4), MLPConditioner(4, hidden_units=[]))
    for direction in ("forward", "inverse"):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"the input to {direction} holds NaN"):
            getattr(checked, direction)(bad)
        # validate_args=False (the default): no check, the infinity goes through.
        assert not np.isfinite(getattr(unchecked, direction)(bad).numpy()).all()
    # A shape only known at run time (no static event size): a clear assertion, not a reshape error.
    forward = tf.function(checked.forward, input_signature=[tf.TensorSpec([None, None])])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"does not end in the event shape of the mask, \(4,\)"):
        forward(tf.zeros([2, 3]))
    assert forward(tf.zeros([2, 4])).shape == (2, 4)


def test_uniform_init_spreads_the_hidden_biases_and_keeps_the_identity_start():
    """MLPConditioner(init="uniform"): PyTorch's +-1/sqrt(fan-in) kernels and biases; the output layer stays zero."""
    import flowlab
    from flowlab.flows import build_coupling_flow, build_nice, build_realnvp
    from flowlab.transformers import SplineTransformer

    flowlab.seed(5)
    net = MLPConditioner(output_units=3, hidden_units=[32, 32], init="uniform")
    shift, log_scale = net(tf.ones([4, 3]))
    assert float(tf.reduce_max(tf.abs(shift))) == 0.0 and float(tf.reduce_max(tf.abs(log_scale))) == 0.0
    draws = []
    for layer, fan_in in zip(net.hidden, (3, 32)):  # 32 draws each: "> limit / 2" fails with odds 2^-32
        for values in (layer.kernel.numpy(), layer.bias.numpy()):
            limit = 1 / np.sqrt(fan_in)
            assert np.abs(values).max() <= limit and np.abs(values).max() > limit / 2
            assert np.unique(values).size == values.size  # Keras's default biases would all be 0
            draws.append(tuple(np.round(values.ravel()[:3] * np.sqrt(fan_in), 5)))
    assert len(set(draws)) == len(draws)  # every tensor its own draw
    glorot = MLPConditioner(output_units=3, hidden_units=[16, 8])
    glorot(tf.ones([1, 3]))
    assert all(float(tf.reduce_max(tf.abs(layer.bias))) == 0.0 for layer in glorot.hidden)

    x = tf.constant(np.random.default_rng(1).normal(size=(8, 2)).astype(np.float32))
    base = tfd.MultivariateNormalDiag(tf.zeros(2)).log_prob(x).numpy()
    for flow in (build_coupling_flow(2, SplineTransformer(bins=4), n_layers=2, hidden_units=(8,), init="uniform"),
                 build_realnvp(2, n_layers=2, hidden_units=(8,), init="uniform"),
                 build_nice(2, n_layers=2, hidden_units=(8,), init="uniform")):
        np.testing.assert_allclose(flow.log_prob(x).numpy(), base, atol=1e-5)  # still the identity at the start
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(x + 1.0))
        gradients = tape.gradient(loss, flow.trainable_variables)
        assert all(np.all(np.isfinite(g.numpy())) for g in gradients if g is not None)
    with pytest.raises(ValueError, match="init must be one of"):
        MLPConditioner(output_units=2, init="he_normal")
    with pytest.raises(ValueError, match="init must be one of"):
        build_realnvp(2, init=None)
