"""The held-out data a trained-model check measures on, as the lab's locked cells made it.

A trained-model check is only as honest as its test set. A notebook that rebinds ``X_test`` to its
hundred easiest points, sorts or scales it in place, or passes the training set instead, would clear
a likelihood threshold without a better flow. So every check that measures a trained flow takes the
array the notebook passes, compares it with the one the lab's data cell makes — rebuilt here from
the same loader, sizes and seed, for the mode the notebook runs in (:data:`flowlab.FAST`) — and
measures on its own copy.

>>> import numpy as np
>>> from flowlab.checks.held_out import held_out
>>> def points():
...     return np.arange(6.0).reshape(3, 2)
>>> held_out(points() + 0.0, "X_test", points).shape
(3, 2)
>>> try:
...     held_out(points()[:2], "X_test", points)
... except Exception as failed:
...     print(failed)
X_test is not the lab's test set: it holds 2 rows where the data cell made 3; ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from flowlab.checks.core import CheckFailed, to_numpy

__all__ = ["held_out", "cached"]


def cached(make: Callable[..., Any]) -> Callable[[], Any]:
    """``make``, computed once per process (and per mode) and handed out read-only (a check cannot spoil it).

    A ``make`` with a parameter is called with the mode the notebook runs in, ``bool(flowlab.FAST)``:
    the lab's data cell makes fewer points in fast mode, and the mode can change within one process
    (tests). ``make`` returns an array or a tuple of arrays; each comes back as a read-only float64 array.
    """
    takes_mode = bool(inspect.signature(make).parameters)

    @functools.cache
    def build(fast: bool) -> Any:
        made = make(fast) if takes_mode else make()
        return tuple(_frozen(a) for a in made) if isinstance(made, tuple) else _frozen(made)

    @functools.wraps(make)
    def current() -> Any:
        import flowlab

        return build(bool(flowlab.FAST) if takes_mode else False)

    return current


def _frozen(made: Any) -> np.ndarray:
    array = np.array(made, dtype=np.float64)
    array.setflags(write=False)
    return array


def held_out(value: Any, name: str, make: Callable[[], np.ndarray], atol: float = 1e-6) -> np.ndarray:
    """The lab's own held-out array (a fresh copy, float64) if ``value`` is that array, else a ✘.

    ``make`` rebuilds the array as the data cell does; ``atol`` allows for a float32 round trip.
    """
    got = to_numpy(value, name)
    expected = make()
    hint = (f"{name} is not the lab's test set: {{}}; the trained flow is measured on the points the lab "
            f"set aside, so run the data cell again and leave {name} as it made it")
    if got.ndim != expected.ndim or (got.ndim and got.shape[1:] != expected.shape[1:]):
        raise CheckFailed(hint.format(f"its shape is {got.shape}, the data cell made {expected.shape}"))
    if len(got) != len(expected):
        raise CheckFailed(hint.format(f"it holds {len(got)} rows where the data cell made {len(expected)}"))
    if not np.allclose(got, expected, rtol=0.0, atol=atol):
        raise CheckFailed(hint.format("its values were changed after the data cell made it"))
    return np.array(expected)
