"""Squeeze: a volume-preserving rearrangement of 2x2 blocks into channels."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.squeeze import Squeeze

tfb = tfp.bijectors


# Round trips (exact), batch axes, a zero log-det equal to autodiff's: tests/test_bijectors.py.

def test_event_shapes_both_ways_static_and_dynamic():
    assert Squeeze().forward(tf.zeros([2, 3, 6, 4, 2])).shape == (2, 3, 3, 2, 8)
    squeeze = Squeeze()
    assert squeeze.forward_event_shape([6, 4, 2]) == (3, 2, 8)
    assert squeeze.inverse_event_shape([3, 2, 8]) == (6, 4, 2)
    np.testing.assert_array_equal(squeeze.forward_event_shape_tensor([6, 4, 2]), [3, 2, 8])
    np.testing.assert_array_equal(squeeze.inverse_event_shape_tensor([3, 2, 8]), [6, 4, 2])


def test_each_2x2_block_becomes_one_pixel():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = Squeeze().forward(x).numpy()
    np.testing.assert_array_equal(y[0, 0, 0], [0, 1, 4, 5])      # the top-left block
    np.testing.assert_array_equal(y[0, 1, 1], [10, 11, 14, 15])  # the bottom-right block
    assert sorted(y.ravel()) == list(range(16))                  # a permutation: nothing lost


def test_in_a_chain_and_inverted():
    chain = tfb.Chain([tfb.Invert(Squeeze()), tfb.Scale(2.0)])
    x = tf.random.stateless_normal([3, 2, 2, 4], seed=[5, 6])
    assert chain.forward(x).shape == (3, 4, 4, 1)
    np.testing.assert_allclose(chain.forward_log_det_jacobian(x, event_ndims=3), 16 * np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 5, 4, 1), (1, 4, 7, 2), (28, 28, 3, 1)])
def test_odd_sizes_are_refused(shape):
    with pytest.raises(ValueError, match="even"):
        Squeeze().forward(tf.zeros(shape))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="even height"):
        Squeeze().forward_event_shape([7, 4, 1])
    with pytest.raises(ValueError, match="multiple of 4"):
        Squeeze().inverse(tf.zeros([1, 2, 2, 3]))
    with pytest.raises(ValueError, match="height, width, channels"):
        Squeeze().forward(tf.zeros([4, 4]))


def test_validate_args_checks_at_run_time_what_the_static_shape_hides():
    # Inside tf.function with unknown spatial sizes only a run-time assertion can refuse an odd width.
    checked = Squeeze(validate_args=True)
    forward = tf.function(checked.forward, input_signature=[tf.TensorSpec([None, None, None, 1])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="width divisible by 2"):
        forward(tf.zeros([1, 4, 5, 1]))
    assert forward(tf.ones([2, 4, 6, 1])).shape == (2, 2, 3, 4)
    inverse = tf.function(checked.inverse, input_signature=[tf.TensorSpec([None, 2, 2, None])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="channels divisible by 4"):
        inverse(tf.zeros([1, 2, 2, 6]))
    nan = tf.fill([1, 4, 4, 1], np.nan)
    with pytest.raises(tf.errors.InvalidArgumentError, match="squeeze: the input to forward holds NaN"):
        checked.forward(nan)
    # validate_args=False (the default): no check, NaN passes through the permutation untouched.
    assert np.isnan(Squeeze().forward(nan).numpy()).all()
