"""One rule for every count and list of counts: plain ints back, or an error naming the argument."""

import numpy as np
import pytest

from flowlab.validation import ArgumentError, floating_dtype, integer, integers


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_integer_accepts_python_and_numpy_integers_and_returns_a_python_int(value):
    result = integer(value, "dims", minimum=2)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    "value, message",
    [
        (2.5, r"epochs must be a positive integer, got 2\.5 \(float\)"),
        (3.0, r"got 3\.0 \(float\)"),
        (True, r"got True \(bool\)"),
        ("3", r"got '3' \(str\)"),
        (0, r"got 0 \(int\)"),
        (-1, r"got -1"),
        (np.array([3]), r"ndarray"),
        (None, r"NoneType"),
    ],
)
def test_integer_rejects_what_is_not_a_positive_integer(value, message):
    with pytest.raises(ArgumentError, match=message):
        integer(value, "epochs")


def test_the_error_is_both_a_type_error_and_a_value_error():
    # Callers that caught either before the helper existed keep working.
    with pytest.raises(TypeError):
        integer(2.5, "n_layers")
    with pytest.raises(ValueError):
        integer(0, "n_layers")


def test_minimum_is_named_in_the_message():
    with pytest.raises(ArgumentError, match="dims must be an integer of at least 2, got 1"):
        integer(1, "dims", minimum=2)
    assert integer(0, "padding", minimum=0) == 0


@pytest.mark.parametrize("value", [[64, 64], (64, 64), np.array([64, 64]), [np.int64(64), 64]])
def test_integers_accepts_lists_tuples_and_arrays(value):
    result = integers(value, "hidden_units")
    assert result == (64, 64) and all(type(v) is int for v in result)


@pytest.mark.parametrize(
    "value, message",
    [
        (16, r"hidden_units must be a sequence of positive integers such as \(16,\)"),
        (np.int64(16), r"such as \(16,\)"),
        ("64", r"sequence of positive integers, got '64'"),
        ([64, 0], r"hidden_units\[1\] must be a positive integer, got 0"),
        ([64, 2.5], r"hidden_units\[1\].*2\.5 \(float\)"),
        ([True], r"hidden_units\[0\].*bool"),
        ([], r"at least one integer"),
        (np.zeros((2, 2), int), r"sequence"),
        (None, r"NoneType"),
    ],
)
def test_integers_rejects_bad_sequences_naming_the_entry(value, message):
    with pytest.raises(ArgumentError, match=message):
        integers(value, "hidden_units")


def test_integers_may_allow_an_empty_sequence():
    assert integers((), "hidden_units", allow_empty=True) == ()


def test_minimum_zero_reads_non_negative_and_why_ends_the_message():
    with pytest.raises(ArgumentError, match=r"^n_test must be a non-negative integer, got -1 \(int\)$"):
        integer(-1, "n_test", minimum=0)
    with pytest.raises(ArgumentError, match=r"dims must be an integer of at least 2, got 1 \(int\): RealNVP needs two"):
        integer(1, "dims", minimum=2, why="RealNVP needs two")


@pytest.mark.parametrize("value", ["float64", np.float64, np.dtype("float64")])
def test_floating_dtype_names_float64_however_it_is_written(value):
    assert floating_dtype(value) == "float64"


@pytest.mark.parametrize("value", ["float16", "int32", np.int64, None, 64])
def test_floating_dtype_refuses_everything_but_float32_and_float64(value):
    with pytest.raises(ArgumentError, match=r"dtype must be float32 or float64"):
        floating_dtype(value)
