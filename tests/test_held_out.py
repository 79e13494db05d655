"""flowlab.checks.held_out: the held-out data a trained-model check measures on."""

import numpy as np
import pytest

import flowlab
from flowlab.checks.core import CheckFailed
from flowlab.checks.held_out import cached, held_out


def test_cached_builds_once_per_mode_and_hands_out_read_only_float64(monkeypatch):
    calls = []

    @cached
    def points(fast: bool):
        calls.append(fast)
        return np.arange(4 if fast else 8, dtype=np.float32).reshape(-1, 2)

    monkeypatch.setattr(flowlab, "FAST", True)
    fast = points()
    assert fast.shape == (2, 2) and fast.dtype == np.float64 and not fast.flags.writeable
    assert points() is fast
    monkeypatch.setattr(flowlab, "FAST", False)
    assert points().shape == (4, 2)
    assert calls == [True, False]
    with pytest.raises(ValueError):
        fast[0, 0] = 1.0


def test_cached_freezes_each_array_of_a_tuple_and_ignores_the_mode_without_a_parameter(monkeypatch):
    @cached
    def pair():
        return np.zeros(3), [1, 2]

    first = pair()
    monkeypatch.setattr(flowlab, "FAST", not flowlab.FAST)
    assert pair() is first
    assert all(a.dtype == np.float64 and not a.flags.writeable for a in first)


@pytest.mark.parametrize("tampered, said", [
    (lambda x: x[1:], "holds 2 rows where the data cell made 3"),
    (lambda x: x[::-1], "values were changed"),
    (lambda x: x * 1.001, "values were changed"),
    (lambda x: x.reshape(2, 3), "shape is (2, 3)"),
])
def test_held_out_refuses_anything_but_the_data_cells_array(tampered, said):
    def make():
        return np.arange(6.0).reshape(3, 2) + 0.5

    with pytest.raises(CheckFailed, match=said.replace("(", r"\(").replace(")", r"\)")):
        held_out(tampered(make()), "X_test", make)


def test_held_out_accepts_a_float32_round_trip_and_returns_its_own_copy():
    made = np.linspace(0.1, 1.0, 6).reshape(3, 2)
    passed = made.astype(np.float32)
    got = held_out(passed, "X_test", lambda: made)
    assert got is not made and np.array_equal(got, made) and got.flags.writeable
