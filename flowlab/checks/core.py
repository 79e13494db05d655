"""The machinery shared by every check: verdicts, requirements, the student's code, placeholders.

A check prints exactly one line, ``✔ title`` or ``✘ title: hint``, and returns ``None`` (a return
value would be displayed by Jupyter and compared by nbval).  Whose fault a failure is decides what
the hint says:

* :class:`CheckFailed` (raised by :func:`require` or directly): the answer is wrong; the hint
  names the idea to revisit.
* An exception raised by the *student's* code: the check runs every call into the student's
  objects inside :func:`student_code`, which turns the exception into a ✘ that says which call
  raised and what it said.
* Any other exception is a bug in the check, never the student's: the verdict says so, and that the
  answer could not be judged.

Checks compare numbers computed on our side; they never call ``==`` on a student's object, whose
``__eq__`` may lie.  Text that comes from the student's objects (a class name, an exception
message) is printed with its control characters escaped, so it cannot rewrite the verdict line.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from flowlab.notebook_format import FAIL, PASS  # the verdict symbols (the notebook-format contract)

__all__ = [
    "PASS", "FAIL", "CheckFailed", "check", "require", "to_numpy", "is_stub", "need", "need_function", "student_code",
    "placeholder_hint", "printable",
]

# Bound once at import: a student who later replaces ``builtins.print`` does not change what a
# check writes. (The grader also flags such code; this is belt and braces.)
_print = builtins.print
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class CheckFailed(Exception):
    """Raised inside a check to fail it with a hint for the student."""


def printable(text: Any, limit: int = 300) -> str:
    """``text`` on one line, control characters escaped (``\\r`` stays visible as ``\\r``), shortened."""
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def placeholder_hint(what: str) -> str:
    """The one hint for an answer that is still the lab's placeholder."""
    return f"{what} is still a placeholder (`...`): fill in its TODO (or the TODO it is built from)"


def need(obj: Any, what: str, kind: type | tuple[type, ...] | None = None) -> None:
    """Fail unless ``obj`` is filled in (and an instance of ``kind``, when given)."""
    if is_stub(obj):
        raise CheckFailed(placeholder_hint(what))
    if kind is not None and not isinstance(obj, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(f"{k.__module__.split('.')[0]} {k.__name__}" for k in kinds)
        raise CheckFailed(f"{what} should be a {names}, got {printable(type(obj).__name__)}")


def need_function(fn: Any, what: str) -> None:
    """Fail unless ``fn`` is filled in and callable."""
    need(fn, what)
    if not callable(fn):
        raise CheckFailed(f"{what} should be a function, got {printable(type(fn).__name__)}")


class _StudentRaised(CheckFailed):
    """The student's code raised inside :func:`student_code`."""


@contextlib.contextmanager
def student_code(what: str) -> Iterator[None]:
    """Run a call into the student's code; what it raises becomes a ✘ naming ``what``.

    >>> from flowlab.checks.core import student_code
    >>> with student_code("f(x)"):
    ...     1 / 0
    Traceback (most recent call last):
    flowlab.checks.core._StudentRaised: f(x) raised ZeroDivisionError: division by zero
    """
    try:
        yield
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the student's code raises is theirs
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise _StudentRaised(f"{what} raised {type(err).__name__}" + (f": {message}" if message else "")) from None


def to_numpy(value: Any, what: str = "the result") -> np.ndarray:
    """Convert a tensor or array-like to a float64 NumPy array, or fail with a hint."""
    if is_stub(value):
        raise CheckFailed(placeholder_hint(what))
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - any failure is the student's, and gets a hint
        raise CheckFailed(f"{what} is not a tensor or array ({printable(type(value).__name__)}): {err}") from None
    return array


def _write(line: str) -> None:
    _print(line, flush=True)


def under_nbgrader() -> bool:
    """True while nbgrader autogrades or validates the notebook (it sets ``NBGRADER_EXECUTION``)."""
    return os.environ.get("NBGRADER_EXECUTION", "").strip().lower() in {"autograde", "validate"}


def check(title: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a function that raises :class:`CheckFailed` into a check that prints its verdict.

    Under nbgrader (:func:`under_nbgrader`) a failing check also raises :class:`AssertionError`, after
    printing, because nbgrader gives a graded cell its points unless it raises."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            verdict = None
            try:
                fn(*args, **kwargs)
            except CheckFailed as failed:
                verdict = f"{FAIL} {title}: {printable(failed, limit=600)}"
            except Exception as err:  # noqa: BLE001 - the check's own bug: say so, never blame the student
                verdict = (f"{FAIL} {title}: the check itself failed ({type(err).__name__}: "
                           f"{printable(err, limit=200)}), so your answer could not be judged; this is a bug in "
                           "flowlab, not in your code: tell your instructor")
            _write(verdict or f"{PASS} {title}")
            if verdict is not None and under_nbgrader():
                raise AssertionError(verdict)  # nbgrader scores a test cell by whether it raised
            return None

        run.check_title = title  # type: ignore[attr-defined]
        return run

    return decorate
