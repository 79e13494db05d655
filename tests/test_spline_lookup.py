"""flowlab's spline looks up its bin by a one-hot sum (cheaper to trace and differentiate than TFP's
batched gathers): it must agree with TFP's ``tfb.RationalQuadraticSpline`` in values and gradients."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import flowlab  # noqa: F401  (Keras 2 first)
from flowlab.transformers import SplineTransformer, _RationalQuadraticSpline

tfb = tfp.bijectors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot_bin_lookup_matches_tfp_in_values_and_gradients(dtype):
    rng = np.random.default_rng(0)
    bins, bound = 6, 3.0
    params = tf.constant(rng.normal(scale=2.0, size=(64, 3, 3 * bins - 1)).astype(dtype))
    # points inside every bin, on the interval's ends, and outside it on both sides
    x = tf.constant(np.concatenate([rng.uniform(-4, 4, size=(60, 3)), [[-3, 3, 0]] * 4]).astype(dtype))
    transformer = SplineTransformer(bins, bound)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        ours = transformer(params)
        assert isinstance(ours, _RationalQuadraticSpline)
        theirs = tfb.RationalQuadraticSpline(ours.bin_widths, ours.bin_heights, ours.knot_slopes, range_min=-bound)
        values = {}
        for name, spline in (("ours", ours), ("theirs", theirs)):
            y = spline.forward(x)
            values[name] = [y, spline.inverse(x), spline.forward_log_det_jacobian(x, 0),
                            spline.inverse_log_det_jacobian(x, 0)]
        losses = {name: tf.add_n([tf.reduce_sum(v * w) for v, w in zip(vals, (1.0, 0.5, 2.0, -1.0))])
                  for name, vals in values.items()}
    for a, b in zip(values["ours"], values["theirs"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(values["ours"][0], x)  # the splines are not the identity: the comparison bites
    gradient = tape.gradient(losses["ours"], params)
    np.testing.assert_allclose(gradient, tape.gradient(losses["theirs"], params), rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
