"""The machinery shared by every check: verdicts, requirements, safe conversion.

A check prints exactly one line, ``✔ title`` or ``✘ title: hint``, and returns ``None`` (a return
value would be displayed by Jupyter and compared by nbval).  Anything the student's object raises
becomes a ✘ with the exception's type and message, never a traceback, so an untouched lab runs to
the end.  Checks compare numbers computed on our side; they never call ``==`` on a student's
object, whose ``__eq__`` may lie.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any, Callable

import numpy as np

__all__ = ["PASS", "FAIL", "CheckFailed", "check", "require", "to_numpy", "is_stub"]

PASS = "✔"
FAIL = "✘"

# Bound once at import: a student who later replaces ``builtins.print`` does not change what a
# check writes. (The grader also flags such code; this is belt and braces.)
_print = builtins.print


class CheckFailed(Exception):
    """Raised inside a check to fail it with a hint for the student."""


def require(condition: Any, hint: str) -> None:
    """Fail the running check with ``hint`` unless ``condition`` is true.

    ``condition`` must be a plain Python or NumPy boolean computed by the check, not something the
    student's object returned.
    """
    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"require() needs a bool, got {type(condition).__name__}")
    if not condition:
        raise CheckFailed(hint)


def is_stub(obj: Any) -> bool:
    """True for the placeholders a lab starts with (``...``, ``None``, ``NotImplemented``)."""
    return obj is Ellipsis or obj is None or obj is NotImplemented


def to_numpy(value: Any, what: str = "the result") -> np.ndarray:
    """Convert a tensor or array-like to a float64 NumPy array, or fail with a hint."""
    if is_stub(value):
        raise CheckFailed(f"{what} is still a placeholder (`...`): fill in the TODO above")
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - any failure is the student's, and gets a hint
        raise CheckFailed(f"{what} is not a tensor or array ({type(value).__name__}): {err}") from None
    return array


def _write(line: str) -> None:
    _print(line, flush=True)


def check(title: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a function that raises :class:`CheckFailed` into a check that prints its verdict."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except CheckFailed as failed:
                _write(f"{FAIL} {title}: {failed}")
            except Exception as err:  # noqa: BLE001 - the student's code raised: explain, don't crash
                message = str(err).strip().splitlines()[0] if str(err).strip() else ""
                _write(f"{FAIL} {title}: your code raised {type(err).__name__}" + (f": {message}" if message else ""))
            else:
                _write(f"{PASS} {title}")
            return None

        run.check_title = title  # type: ignore[attr-defined]
        return run

    return decorate
