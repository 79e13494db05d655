"""Glow builder and the partition builders: shapes, exact densities on small images, training helps."""

import flowlab  # noqa: F401

# isort: split
import numpy as np
import pytest
import tensorflow as tf

from flowlab.bijectors.actnorm import initialize_actnorm
from flowlab.bijectors.conv1x1 import InvertibleConv1x1
from flowlab.flows.glow import build_glow, conv_weights, glow_step
from flowlab.flows.multiscale import bits_by_scale, sample_images
from flowlab.flows.partitions import (
    bad_partition,
    build_bad_partition_flow,
    build_good_partition_flow,
    good_partition,
    half_mask,
)


def _images(n, h=8, w=8, seed=0):
    rng = np.random.default_rng(seed)
    blobs = np.zeros((n, h, w, 1), np.float32)
    blobs[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 0.8
    return np.clip(blobs + rng.uniform(0, 0.2, size=blobs.shape), 0, 0.999).astype(np.float32)


def _brute_force_log_prob(flow, y):
    y = tf.identity(tf.constant(y))
    with tf.GradientTape() as tape:
        tape.watch(y)
        z = tf.reshape(flow.bijector.inverse(y), [y.shape[0], -1])
    j = tape.batch_jacobian(z, y).numpy().reshape(y.shape[0], z.shape[1], -1).astype(np.float64)
    log_det = np.linalg.slogdet(j)[1]
    d = z.shape[1]
    return -0.5 * np.sum(z.numpy().astype(np.float64) ** 2, 1) - 0.5 * d * np.log(2 * np.pi) + log_det


def _perturb(flow, scale=0.05, seed=0):
    rng = np.random.default_rng(seed)
    for v in flow.trainable_variables:
        v.assign(v + rng.normal(0, scale, size=v.shape).astype(np.float32))


def test_glow_log_prob_is_the_density_of_its_map():
    flow = build_glow((4, 4, 1), scales=2, steps=1, final_steps=1, filters=4)
    y = _images(2, 4, 4)
    initialize_actnorm(flow, _images(16, 4, 4, seed=1))
    _perturb(flow)  # zero-initialised couplings would make the test blind to a coupling log-det
    np.testing.assert_allclose(flow.log_prob(y).numpy(), _brute_force_log_prob(flow, y), rtol=1e-4, atol=2e-2)


def test_glow_round_trip_and_samples():
    flow = build_glow((8, 8, 1), scales=1, steps=2, final_steps=2, filters=8)
    initialize_actnorm(flow, _images(16))
    _perturb(flow, seed=1)
    y = tf.constant(_images(3, seed=2))
    z = flow.bijector.inverse(y)
    np.testing.assert_allclose(flow.bijector.forward(tf.identity(z)).numpy(), y.numpy(), atol=1e-4)
    images = sample_images(flow, 5, temperature=0.7)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    parts = bits_by_scale(flow, y)
    lp = flow.log_prob(tf.identity(y)).numpy()
    np.testing.assert_allclose(sum(parts.values()), np.mean(-lp / (64 * np.log(2)) + 8), atol=1e-3)


def test_glow_step_order_and_conv_weights():
    layers = glow_step((4, 4, 4), filters=4, name="t")
    assert [type(b).__name__ for b in layers] == ["ActNorm", "InvertibleConv1x1", "AffineCoupling"]
    flow = build_glow((8, 8, 1), scales=2, steps=2, final_steps=3, filters=4)
    weights = conv_weights(flow)
    assert [w.shape for _, w in weights] == [(4, 4)] * 2 + [(8, 8)] * 2 + [(4, 4)] * 3
    for _, w in weights:
        np.testing.assert_allclose(w @ w.T, np.eye(len(w)), atol=1e-5)  # starts at a rotation


def test_glow_with_a_custom_conv_factory():
    made = []

    def plain(channels, name):
        made.append(channels)
        return InvertibleConv1x1(channels, lu_decomposed=False, name=name)

    build_glow((8, 8, 1), scales=1, steps=2, final_steps=1, filters=4, conv1x1=plain)
    assert made == [4, 4, 2]


def test_glow_bad_arguments():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_glow((6, 6, 1), scales=2)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        build_glow((8, 8, 1), steps=0)
    with pytest.raises(ValueError, match="at least 2 channels"):
        glow_step((4, 4, 1))


def test_glow_trains_below_its_untrained_density():
    flowlab.seed(0)
    flow = build_glow((4, 4, 1), scales=1, steps=2, final_steps=1, filters=8)
    data = _images(256, 4, 4, seed=3)
    initialize_actnorm(flow, data[:64])
    opt = tf.keras.optimizers.Adam(1e-2)

    @tf.function
    def step(y):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(y))
        grads = tape.gradient(loss, flow.trainable_variables)
        opt.apply_gradients(zip(grads, flow.trainable_variables))
        return loss, grads

    before = float(-tf.reduce_mean(flow.log_prob(data)))
    for i in range(40):
        loss, grads = step(tf.constant(data[(i % 4) * 64 : (i % 4 + 1) * 64]))
        assert all(np.all(np.isfinite(g.numpy())) for g in grads if g is not None)
    after = float(-tf.reduce_mean(flow.log_prob(tf.constant(data))))
    assert after < before - 5.0, (before, after)  # nats per 16-pixel image


def test_partitions_differ_only_in_masks():
    good, bad = good_partition(8, 8, 1), bad_partition(8, 8, 1)
    assert len(good) == len(bad) == 12
    for g, b in zip(good, bad):
        assert isinstance(g, str) == isinstance(b, str)
        if isinstance(g, str):
            assert g == b
        else:
            assert g.shape == b.shape and g.sum() == b.sum()  # same shapes, half of the variables each
    assert not any(np.array_equal(g, b) for g, b in zip(good, bad) if not isinstance(g, str))
    np.testing.assert_array_equal(half_mask(4, 4, 1, "top")[:, :, 0], [[1] * 4] * 2 + [[0] * 4] * 2)
    with pytest.raises(ValueError, match="half must be"):
        half_mask(4, 4, 1, "middle")


def test_partition_flows_have_equal_parameters_and_exact_densities():
    good = build_good_partition_flow((4, 4, 1), filters=4)
    bad = build_bad_partition_flow((4, 4, 1), filters=4)
    y = _images(2, 4, 4)
    for flow in (good, bad):
        initialize_actnorm(flow, _images(16, 4, 4, seed=4))
    counts = [sum(int(np.prod(v.shape)) for v in f.trainable_variables) for f in (good, bad)]
    assert counts[0] == counts[1] > 0
    _perturb(bad, seed=5)
    np.testing.assert_allclose(bad.log_prob(y).numpy(), _brute_force_log_prob(bad, y), rtol=1e-4, atol=2e-2)


def test_flowpp_coupling_in_glow_is_exact_and_inverts_by_bisection():
    from flowlab.flows.glow import flowpp_coupling

    flow = build_glow((4, 4, 1), scales=2, steps=1, final_steps=1, coupling=flowpp_coupling(3, filters=4))
    assert any(type(b).__name__ == "Coupling" for b in flow.bijector.submodules)
    y = _images(2, 4, 4)
    initialize_actnorm(flow, _images(16, 4, 4, seed=1))
    _perturb(flow, seed=6)
    np.testing.assert_allclose(flow.log_prob(y).numpy(), _brute_force_log_prob(flow, y), rtol=1e-4, atol=2e-2)
    z = flow.bijector.inverse(tf.constant(y))
    np.testing.assert_allclose(flow.bijector.forward(tf.identity(z)).numpy(), y, atol=1e-4)
