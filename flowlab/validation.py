"""Checking integer arguments at the boundary: one rule, one message, for every public function.

``epochs=2.5`` or ``hidden_units=16`` reach NumPy or TensorFlow as raw errors ("'int' object is
not iterable") or, worse, run: ``range(np.int64(3))`` works but ``isinstance(np.int64(3), int)``
does not, and ``True`` is an ``int`` to Python.  Every flowlab function that takes a count
(``epochs``, ``batch_size``, ``n_layers``, ``dims``) or a list of counts (``hidden_units``) passes
it through :func:`integer` or :func:`integers` and gets back plain Python ints, or an
:class:`ArgumentError` that names the argument, what it must be and what it got.

>>> from flowlab.validation import integer, integers
>>> integer(3, "epochs")
3
>>> integers([64, 64], "hidden_units")
(64, 64)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["ArgumentError", "integer", "integers", "floating_dtype"]


class ArgumentError(TypeError, ValueError):
    """A bad argument value or type.

    Both a ``TypeError`` and a ``ValueError``, so that callers catching either (as the builders'
    tests of ``dims=2.5`` do) keep working whichever the old message was.
    """


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_integer(value: Any) -> bool:
    # numbers.Integral covers int and np.integer; bool is an int to Python but never a count.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _rule(minimum: int, plural: bool = False) -> str:
    if minimum == 1:
        return "positive integers" if plural else "a positive integer"
    if minimum == 0:
        return "non-negative integers" if plural else "a non-negative integer"
    return f"integers of at least {minimum}" if plural else f"an integer of at least {minimum}"


def integer(value: Any, name: str, *, minimum: int = 1, why: str | None = None) -> int:
    """Return ``value`` as a Python ``int`` if it is an integer of at least ``minimum``.

    Accepts ``int`` and NumPy integers; rejects ``bool``, floats (even ``3.0``: a count written as
    a float is usually a computed value that was meant to be rounded), strings and arrays.
    ``why``, if given, ends the message (say what needs the minimum).

    Raises:
        ArgumentError: naming ``name``, the rule and the value received.

    >>> import numpy as np
    >>> integer(np.int64(3), "dims", minimum=2)
    3
    >>> integer(2.5, "epochs")
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: epochs must be a positive integer, got 2.5 (float)
    >>> integer(True, "batch_size")
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: batch_size must be a positive integer, got True (bool)
    >>> integer(1, "dims", minimum=2)
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: dims must be an integer of at least 2, got 1 (int)
    >>> integer(-1, "n_test", minimum=0)
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: n_test must be a non-negative integer, got -1 (int)
    """
    if not _is_integer(value) or value < minimum:
        reason = f": {why}" if why else ""
        raise ArgumentError(f"{name} must be {_rule(minimum)}, got {_describe(value)}{reason}")
    return int(value)


def integers(value: Any, name: str, *, minimum: int = 1, allow_empty: bool = False) -> tuple[int, ...]:
    """Return a sequence of integers (each at least ``minimum``) as a tuple of Python ints.

    A list, tuple or 1-D NumPy array is accepted; a single integer is not (``hidden_units=16`` is
    ambiguous: one layer of 16, or 16 layers?) and the message says how to write one layer.

    Raises:
        ArgumentError: naming ``name`` and the offending entry.

    >>> integers((128, 128), "hidden_units")
    (128, 128)
    >>> integers(16, "hidden_units")
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: hidden_units must be a sequence of positive integers such as (16,), got 16 (int)
    >>> integers([64, 0], "hidden_units")
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: hidden_units[1] must be a positive integer, got 0 (int)
    """
    rule = _rule(minimum, plural=True)
    if _is_integer(value):
        raise ArgumentError(f"{name} must be a sequence of {rule} such as ({int(value)},), got {_describe(value)}")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__") \
            or getattr(value, "ndim", 1) != 1:
        raise ArgumentError(f"{name} must be a sequence of {rule}, got {_describe(value)}")
    entries = tuple(integer(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(value))
    if not entries and not allow_empty:
        raise ArgumentError(f"{name} must hold at least one integer, got {_describe(value)}")
    return entries


FLOATING_DTYPES = ("float32", "float64")


def floating_dtype(value: Any, name: str = "dtype") -> str:
    """The name of a float32 or float64 dtype given as a string, a NumPy or a TensorFlow dtype.

    A flow computes in one floating type: its base, its bijectors and the Keras layers of its
    conditioners. float32 is TensorFlow's default; float64 is for checking numerics (log-dets against
    brute-force Jacobians, densities integrated on a grid) where float32's rounding hides the answer.
    Half precision is refused: a log-det summed over many variables loses every digit in it.

    >>> import numpy as np
    >>> floating_dtype("float64"), floating_dtype(np.float32)
    ('float64', 'float32')
    >>> floating_dtype("float16")
    Traceback (most recent call last):
    ...
    flowlab.validation.ArgumentError: dtype must be float32 or float64, got 'float16' (str)
    """
    label = getattr(value, "name", None)  # tf.DType and np.dtype both have a name
    if not isinstance(label, str) and value is not None:  # np.dtype(None) is float64
        try:
            label = np.dtype(value).name
        except TypeError:
            label = None
    if label not in FLOATING_DTYPES:
        raise ArgumentError(f"{name} must be float32 or float64, got {_describe(value)}")
    return label
