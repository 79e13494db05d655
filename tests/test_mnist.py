"""MNIST: the loader (real files, corrupt and missing ones), bits/dim, and the multi-scale RealNVP."""

import gzip
import struct

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.actnorm import initialize_actnorm
from flowlab.bijectors.dequantize import Logit, uniform_dequantize
from flowlab.bits_per_dim import bits_per_dim
from flowlab.datasets import mnist
from flowlab.flows.multiscale import bits_by_scale, build_multiscale_realnvp, latents_by_scale, sample_images

tfd, tfb = tfp.distributions, tfp.bijectors


@pytest.fixture(scope="module")
def shared(request):
    from pathlib import Path

    folder = Path(request.config.rootpath) / ".." / "shared" / "data" / "mnist"
    if not folder.is_dir():
        pytest.skip(f"the shared MNIST test set is not at {folder}")
    return folder.resolve()


def _write_idx(path, array, magic):
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fake_dir(tmp_path, n=5):
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        images, labels = mnist.FILES[part]
        _write_idx(tmp_path / images, rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(tmp_path / labels, rng.integers(0, 10, (n,)), 2049)
    return tmp_path


# --- the loader ------------------------------------------------------------------------------------

def test_reads_the_shared_test_set_and_splits_it(shared):
    images, labels = mnist.load_mnist_dir(shared, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
    assert set(np.unique(labels)) == set(range(10))
    train, test = mnist.load_mnist_split(9000, 1000, directory=shared)
    assert train.shape == (9000, 28, 28, 1) and test.shape == (1000, 28, 28, 1)
    rows = {img.tobytes() for img in train}
    assert sum(img.tobytes() in rows for img in test) < 5  # disjoint (a few duplicate digits exist)
    again, _ = mnist.load_mnist_split(9000, 1000, directory=shared)
    np.testing.assert_array_equal(train, again)  # seeded


def test_environment_variable_and_full_dataset_from_a_directory(tmp_path, monkeypatch):
    folder = _fake_dir(tmp_path)
    monkeypatch.setenv(mnist.ENV_VAR, str(folder))
    (x_train, y_train), (x_test, y_test) = mnist.load_mnist(download=False)
    assert x_train.shape == (5, 28, 28) and y_test.shape == (5,)
    train, test = mnist.load_mnist_split(3, 2)
    assert train.shape == (3, 28, 28, 1) and test.shape == (2, 28, 28, 1)
    with pytest.raises(ValueError, match="only 5"):
        mnist.load_mnist_split(4, 2)


def test_corrupt_files_get_clear_errors(tmp_path):
    folder = _fake_dir(tmp_path)
    images = folder / mnist.FILES["test"][0]
    good = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(good[:-100]))
    with pytest.raises(mnist.CorruptIDXError, match="truncated or corrupt"):
        mnist.load_mnist_dir(folder, "test")
    images.write_bytes(gzip.compress(good)[:-50])  # a cut-off download
    with pytest.raises(mnist.CorruptIDXError, match="gzip"):
        mnist.load_mnist_dir(folder, "test")
    images.write_bytes(gzip.compress(struct.pack(">I", 2049) + good[4:]))
    with pytest.raises(mnist.CorruptIDXError, match="magic number"):
        mnist.load_mnist_dir(folder, "test")
    images.write_bytes(b"<html>not found</html>")
    with pytest.raises(mnist.CorruptIDXError, match="magic number"):
        mnist.load_mnist_dir(folder, "test")
    _write_idx(images, np.zeros((4, 28, 28)), 2051)
    with pytest.raises(mnist.CorruptIDXError, match="4 images"):
        mnist.load_mnist_dir(folder, "test")


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(mnist.MNISTNotFoundError, match="FLOWLAB_MNIST_DIR"):
        mnist.load_mnist_dir(tmp_path, "test")
    with pytest.raises(mnist.MNISTNotFoundError, match="not a directory"):
        mnist.load_mnist(tmp_path / "nowhere")
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    with pytest.raises(mnist.MNISTNotFoundError, match="download=False"):
        mnist.load_mnist(download=False)

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tf.keras.datasets.mnist, "load_data", offline)
    with pytest.raises(mnist.MNISTNotFoundError, match="could not download MNIST.*internet"):
        mnist.load_mnist()
    with pytest.raises(ValueError, match="part"):
        mnist.load_mnist_dir(tmp_path, "validation")


# --- bits per dimension ----------------------------------------------------------------------------

def test_uniform_model_over_pixel_values_scores_exactly_8_bits_per_dim(shared):
    _, test = mnist.load_mnist_split(0, 64, directory=shared)
    y = uniform_dequantize(test, seed=[1, 2])
    uniform = tfd.Independent(tfd.Uniform(tf.zeros([28, 28, 1]), tf.ones([28, 28, 1])), 3)
    np.testing.assert_array_equal(bits_per_dim(uniform.log_prob(y), 784).numpy(), 8.0)
    # the same density as a flow: logistic base, inverse logit -- only right if every log-det is
    logistic = tfd.TransformedDistribution(tfd.Sample(tfd.Logistic(0.0, 1.0), [28, 28, 1]), tfb.Invert(Logit(0.0)))
    np.testing.assert_allclose(bits_per_dim(logistic.log_prob(y), 784), 8.0, atol=1e-3)


# --- the multi-scale flow --------------------------------------------------------------------------

def _tiny_flow(seed=0):
    flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=2, final_couplings=2, filters=4, blocks=1)
    y = tf.random.stateless_uniform([16, 4, 4, 1], seed=[seed, 1], minval=0.05, maxval=0.95)
    initialize_actnorm(flow, y)
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:  # zero-initialised heads make the identity: randomise
        variable.assign(variable + 0.2 * rng.standard_normal(variable.shape).astype(np.float32))
    return flow


def test_multiscale_round_trip_and_shapes():
    flow = _tiny_flow()
    y = tf.random.stateless_uniform([2, 3, 4, 4, 1], seed=[3, 4], minval=0.01, maxval=0.99)
    z = flow.bijector.inverse(y)
    assert z.shape == (2, 3, 4, 4, 1)
    np.testing.assert_allclose(flow.bijector.forward(tf.identity(z)), y, atol=1e-4)
    assert flow.log_prob(tf.identity(y)).shape == (2, 3)
    scales = latents_by_scale(flow, tf.identity(y))
    assert [tuple(s.shape) for s in scales] == [(2, 3, 2, 2, 2), (2, 3, 2, 2, 2)]
    images = sample_images(flow, 5, temperature=0.7)
    assert images.shape == (5, 4, 4, 1) and images.dtype == np.uint8


def test_multiscale_log_prob_is_base_plus_autodiff_log_det():
    flow = _tiny_flow(seed=1)
    y = tf.random.stateless_uniform([3, 4, 4, 1], seed=[5, 6], minval=0.02, maxval=0.98)
    with tf.GradientTape() as tape:
        tape.watch(y)
        z = flow.bijector.inverse(y)
    jacobian = tape.batch_jacobian(z, y).numpy().reshape(3, 16, 16)
    log_det = np.linalg.slogdet(jacobian)[1]
    expected = flow.distribution.log_prob(z).numpy() + log_det
    np.testing.assert_allclose(flow.log_prob(tf.identity(y)), expected, rtol=1e-4, atol=1e-3)
    # a flow whose latents all go through couplings: no variable is left out
    assert np.all(np.abs(jacobian).sum(axis=1) > 0)


def test_bits_by_scale_add_up_to_the_bits_per_dim():
    flow = _tiny_flow(seed=2)
    y = tf.random.stateless_uniform([8, 4, 4, 1], seed=[9, 10], minval=0.01, maxval=0.99)
    parts = bits_by_scale(flow, y)
    assert list(parts) == ["logit and rescaling", "scale 1", "final scale"]
    total = float(tf.reduce_mean(bits_per_dim(flow.log_prob(tf.identity(y)), 16)))
    np.testing.assert_allclose(sum(parts.values()), total, rtol=1e-4)


def test_new_multiscale_flow_is_the_logit_of_its_input():
    flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4, actnorm=False)
    y = tf.random.stateless_uniform([2, 4, 4, 1], seed=[7, 8])
    z = flow.bijector.inverse(y)
    logits = Logit(0.05).forward(y)
    assert sorted(z.numpy().ravel()) == pytest.approx(sorted(logits.numpy().ravel()), abs=1e-5)


def test_multiscale_refuses_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 8"):
        build_multiscale_realnvp((28, 28, 1), scales=3)
    with pytest.raises(ValueError, match="scales"):
        build_multiscale_realnvp((28, 28, 1), scales=-1)
    flow = build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1, filters=4)
    with pytest.raises(ValueError, match="expected images of shape"):
        flow.log_prob(tf.zeros([2, 8, 8, 1]))
