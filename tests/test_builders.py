"""Every flow builder, as a TFP user calls it: single events, scalar sample(), float64, validated arguments."""

import numpy as np
import pytest
import tensorflow as tf

import flowlab
from flowlab.bijectors.actnorm import initialize_actnorm
from flowlab.bijectors.masks import channel_mask, checkerboard
from flowlab.flows import (
    build_autoregressive_mixture_cdf,
    build_conditional_maf,
    build_conditional_nsf,
    build_conditional_realnvp,
    build_coupling_flow,
    build_ffjord,
    build_glow,
    build_iaf,
    build_maf,
    build_multiscale_realnvp,
    build_nice,
    build_nsf,
    build_realnvp,
)
from flowlab.flows.base import built
from flowlab.flows.partitions import SQUEEZE, UNSQUEEZE, build_partition_flow
from flowlab.training import fit
from flowlab.transformers import MixtureCDFTransformer
from flowlab.validation import ArgumentError

SMALL = {"n_layers": 1, "hidden_units": (4,)}


def _small(build, *args, **fixed):
    """``build(dims, *args, **{small sizes, fixed, overrides})``: the test's keywords win."""
    return lambda dims, **kwargs: build(dims, *args, **{**SMALL, **fixed, **kwargs})


# name -> (builder of dims and keyword arguments, context_dims or None)
VECTOR = {
    "maf": (_small(build_maf), None),
    "iaf": (_small(build_iaf), None),
    "realnvp": (_small(build_realnvp), None),
    "nice": (_small(build_nice), None),
    "nsf": (_small(build_nsf, bins=3), None),
    "nsf coupling": (_small(build_nsf, bins=3, kind="coupling"), None),
    "mixture coupling": (_small(build_coupling_flow, MixtureCDFTransformer(2)), None),
    # The exact trace: Hutchinson's estimate is random, so one event and a batch would not agree.
    "ffjord": (lambda dims, **kwargs: build_ffjord(dims, **{"hidden_units": (4,), "trace": "exact", "atol": 1e-4,
                                                            "rtol": 1e-4, **kwargs}), None),
    # Built here: this builder leaves its Keras weights to the first log_prob (the labs' seeded runs).
    "autoregressive mixture cdf": (lambda dims, **kwargs: built(build_autoregressive_mixture_cdf(
        dims, **{"num_components": 2, "hidden_units": (4,), **kwargs})), None),
    "conditional maf": (_small(build_conditional_maf, 2), 2),
    "conditional nsf": (_small(build_conditional_nsf, 2, bins=3), 2),
    "conditional realnvp": (_small(build_conditional_realnvp, 2), 2),
}
CONTEXT = np.array([0.4, -0.7])


def _randomise(flow, seed=0):
    """Move every weight off its initial value (coupling layers start as the identity); MADE's masked zeros stay."""
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        value = variable.numpy()
        noise = 0.3 * rng.standard_normal(value.shape)
        variable.assign((noise if not value.any() else np.where(value != 0, noise, 0.0)).astype(value.dtype))


# FFJORD and the mixture CDF (sampled by bisection) only in float64: they cost seconds a case, and
# float64 is the harder case.
ONLY_FLOAT64 = ("ffjord", "autoregressive mixture cdf")


@pytest.mark.parametrize("name, dtype", [(name, dtype) for name in VECTOR for dtype in ("float32", "float64")
                                         if not (name in ONLY_FLOAT64 and dtype == "float32")])
def test_single_events_scalar_sample_and_dtype(name, dtype):
    build, context_dims = VECTOR[name]
    flow = build(3, dtype=dtype)
    _randomise(flow)
    assert flow.dtype == dtype and all(v.dtype == dtype for v in flow.trainable_variables)
    given = {} if context_dims is None else {"context": CONTEXT}
    x = np.array([[0.3, -1.1, 0.8], [1.5, 0.2, -0.4]], dtype)
    batched = flow.log_prob(x, **given)
    single = flow.log_prob(x[1], **given)  # one event of shape (3,): a scalar, as for any TFP distribution
    assert batched.dtype == dtype and batched.shape == (2,) and single.shape == ()
    np.testing.assert_allclose(single, batched[1], rtol=1e-5, atol=1e-5)
    one = flow.sample(**given) if context_dims else flow.sample(seed=1)
    assert one.shape == (3,) and one.dtype == dtype
    assert flow.sample(4, **given).shape == (4, 3)


@pytest.mark.parametrize("name", ["maf", "realnvp", "conditional realnvp"])
def test_float64_log_densities_match_brute_force_jacobians_to_float64_precision(name):
    """float32 could not pass this: its rounding alone is ~1e-6 on these values."""
    build, context_dims = VECTOR[name]
    flow = build(2, dtype="float64")
    _randomise(flow, seed=3)
    x = tf.constant(np.random.default_rng(4).normal(size=(6, 2)))
    distribution = flow if context_dims is None else flow.distribution
    layers = {} if context_dims is None else flow._kwargs(tf.constant(np.tile(CONTEXT, (6, 1))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = distribution.bijector.inverse(x, **layers)
    log_det = np.linalg.slogdet(tape.batch_jacobian(z, x).numpy())[1]
    expected = distribution.distribution.log_prob(z).numpy() + log_det
    log_prob = flow.log_prob(x) if context_dims is None else flow.log_prob(x, CONTEXT)
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["maf", "conditional realnvp"])
def test_fit_trains_in_float64(name):
    build, context_dims = VECTOR[name]
    flow = build(2, dtype=np.float64)
    x = np.random.default_rng(5).normal(2.0, 0.5, size=(64, 2))
    given = {} if context_dims is None else {"context": np.zeros((64, 2))}
    before = -float(tf.reduce_mean(flow.log_prob(x, **given)))
    model, _ = fit(flow, x, epochs=4, batch_size=16, learning_rate=0.02, verbose=0, **given)
    assert model.dtype == "float64"
    assert -float(tf.reduce_mean(flow.log_prob(x, **given))) < before - 0.5


IMAGES = {
    "glow": lambda **kw: build_glow((4, 4, 1), scales=1, steps=1, final_steps=1, filters=4, **kw),
    "multiscale realnvp": lambda **kw: build_multiscale_realnvp((4, 4, 1), scales=1, couplings=1, final_couplings=1,
                                                                filters=4, **kw),
    # The good partition's layout cut to three couplings (build_good_partition_flow has ten).
    "partition": lambda **kw: build_partition_flow(
        (4, 4, 1), lambda h, w, c: [checkerboard(h, w, c, 0), SQUEEZE, channel_mask(h // 2, w // 2, 4 * c, 0),
                                    UNSQUEEZE, checkerboard(h, w, c, 1)], filters=4, **kw),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_flows_take_single_images_and_float64_the_float32_flow_to_its_precision_and_train(name):
    y = np.random.default_rng(8).uniform(0.05, 0.95, size=(8, 4, 4, 1))
    flowlab.seed(0)  # the 1x1 convolutions' initial rotations (NumPy) come out the same in both flows
    single = IMAGES[name]()
    flowlab.seed(0)
    double = IMAGES[name](dtype="float64")
    assert initialize_actnorm(double, y) > 0 and double.dtype == "float64"
    y32 = y.astype(np.float32)
    single.log_prob(y32[:1])  # Keras layers build on first call
    assert {v.dtype for v in double.variables} == {tf.float64} and {v.dtype for v in single.variables} == {tf.float32}
    rng = np.random.default_rng(9)
    for s32, s64 in zip(single.variables, double.variables, strict=True):
        noise = 0.1 * rng.standard_normal(s64.shape) if s64.trainable else 0.0  # not the 1x1 convs' P and signs
        value = (s64.numpy() + noise).astype(np.float32)
        s32.assign(value)
        s64.assign(value.astype(np.float64))
    log_prob = double.log_prob(y)
    assert log_prob.dtype == tf.float64 and log_prob.shape == (8,)
    np.testing.assert_allclose(log_prob, single.log_prob(y32), rtol=1e-5, atol=1e-3)
    # Single images, as for any TFP distribution: a scalar log_prob, one sample of the image's shape.
    np.testing.assert_allclose(double.log_prob(y[3]), log_prob[3], rtol=0, atol=1e-10)
    np.testing.assert_allclose(single.log_prob(y32[3]), single.log_prob(y32)[3], rtol=1e-5)
    assert single.log_prob(y32[3]).shape == () and single.sample(seed=1).shape == (4, 4, 1)
    # A fresh tensor each way (TFP's bijector cache would hand back the input); float32 is ~1e-7 off.
    back = double.bijector.forward(tf.identity(double.bijector.inverse(tf.constant(y))))
    np.testing.assert_allclose(back, y, rtol=0, atol=1e-12)
    assert double.sample(seed=1).dtype == tf.float64 and double.sample(2, seed=1).shape == (2, 4, 4, 1)
    if name == "glow":  # one fit: ActNorm, 1x1 convolution and coupling all train in float64
        before = -float(tf.reduce_mean(double.log_prob(y)))
        model, history = fit(double, y, epochs=3, batch_size=8, learning_rate=1e-2, verbose=0)
        assert model.dtype == "float64" and history.history["loss"][-1] < before - 0.1


@pytest.mark.parametrize("name", list(VECTOR))
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dims": 2.5}, r"dims must be (a positive integer|an integer of at least 2), got 2\.5 \(float\)"),
        ({"dims": True}, r"dims must be .* got True \(bool\)"),
        ({"dims": 1}, r"dims must be an integer of at least 2, got 1 \(int\): .* needs an event of at least 2"),
        ({"n_layers": 2.5}, r"n_layers must be a positive integer, got 2\.5"),
        ({"n_layers": 0}, r"n_layers must be a positive integer, got 0 \(int\)"),
        ({"hidden_units": 16}, r"hidden_units must be a sequence of positive integers such as \(16,\)"),
        ({"hidden_units": [8, 0]}, r"hidden_units\[1\] must be a positive integer, got 0"),
        ({"dtype": "float16"}, r"dtype must be float32 or float64"),
    ],
)
def test_bad_arguments_are_argument_errors_naming_the_argument(name, kwargs, message):
    kwargs = dict(kwargs)
    if name == "ffjord" and ("n_layers" in kwargs or kwargs.get("dims") == 1):
        pytest.skip("FFJORD has no layers, and one dimension is a valid FFJORD")
    if name == "autoregressive mixture cdf" and "n_layers" in kwargs:
        pytest.skip("one autoregressive mixture-CDF layer: no n_layers")
    if name.startswith("conditional") and name != "conditional realnvp" and kwargs.get("dims") == 1:
        pytest.skip("an autoregressive conditional flow of one variable is valid")
    with pytest.raises(ArgumentError, match=message):
        VECTOR[name][0](kwargs.pop("dims", 2), **kwargs)


def test_numpy_integers_are_counts_everywhere():
    flow = build_realnvp(np.int64(3), n_layers=np.int32(1), hidden_units=np.array([4, 4]))
    assert flow.event_shape == [3]
    assert build_nsf(2, n_layers=1, bins=np.int64(3), hidden_units=(4,)).event_shape == [2]
    assert build_conditional_realnvp(np.int64(2), np.int64(1), n_layers=np.int8(1), hidden_units=[4]).context_dims == 1
    flow = build_glow((np.int64(4), 4, 1), scales=np.int64(1), steps=1, final_steps=1, filters=np.int64(4))
    assert flow.event_shape == [4, 4, 1]
    with pytest.raises(ArgumentError, match=r"image_shape is \(height, width, channels\)"):
        build_multiscale_realnvp((4, 4))
    with pytest.raises(ArgumentError, match=r"scales must be a positive integer, got True"):
        build_glow((4, 4, 1), scales=True)
