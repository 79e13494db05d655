"""The notebook-format contract: what a solution, a lab, a check cell and its verdict look like.

One definition, read by lab generation (:mod:`flowlab.labs`), the checks (:mod:`flowlab.checks.core`),
the untouched-lab waiting (:mod:`flowlab.todo`), the grader (:mod:`flowlab.grading`) and the test
configuration (the root ``conftest.py``).  See ``docs/notebooks.md`` for how an author uses it.

* **Solution markers**: the answer code of a solution cell sits between :data:`BEGIN` and
  :data:`END` (nbgrader's markers); the lab keeps only the block's *stub* lines, those starting with
  :data:`STUB` (the prefix removed).
* **Check cells** start with :data:`CHECK_MARKER` (nbval compares their output with the stored one)
  and print exactly one verdict line: ``✔ title`` (:data:`PASS`) or ``✘ title: hint`` (:data:`FAIL`).
* **Cell roles** (:class:`Role`, :func:`role_of`): a check cell, an answer cell (it holds
  :data:`BEGIN`), or a locked cell (everything else: set-up and teaching code).
* **Checksums** (:func:`checksum`) of a cell's source, blind to trailing whitespace, tell whether a
  student changed a locked cell.
* **Outputs compared**: verdicts are printed on stdout; stderr (TensorFlow's log lines) is left out
  of every comparison (:func:`without_stderr`, :func:`compare_without_stderr`).
* **Points**: ``metadata.flowlab.points`` of a check cell, :data:`DEFAULT_POINTS` when absent.

This module imports nothing but the standard library: the grader's pytest process loads it from
its file without importing flowlab (and TensorFlow).

>>> role_of("# NBVAL_CHECK_OUTPUT\\ncheck_base(base)"), role_of("x = 1\\n### BEGIN SOLUTION\\n### END SOLUTION")
('check', 'answer')
>>> checksum("x = 1  \\n\\n") == checksum("x = 1")
True
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = [
    "BEGIN", "END", "STUB", "CHECK_MARKER", "PASS", "FAIL", "DEFAULT_POINTS", "Role", "role_of", "is_check",
    "is_answer", "checksum", "declared_points", "is_stderr", "without_stderr", "stream_text",
    "compare_without_stderr",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "#|"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
PASS = "✔"
FAIL = "✘"
DEFAULT_POINTS = 1


class Role:
    CHECK = "check"
    ANSWER = "answer"
    LOCKED = "locked"


def is_check(source: str) -> bool:
    """A check cell: its source starts with :data:`CHECK_MARKER`."""
    return source.lstrip().startswith(CHECK_MARKER)


def is_answer(source: str) -> bool:
    """A cell with a solution block: a line that is :data:`BEGIN`."""
    return any(line.strip() == BEGIN for line in source.splitlines())


def role_of(source: str) -> str:
    """The role of a solution's code cell (a check cell with a solution block is a check cell)."""
    if is_check(source):
        return Role.CHECK
    if is_answer(source):
        return Role.ANSWER
    return Role.LOCKED


def _normalized(source: str) -> str:
    # Trailing whitespace and blank lines are not edits a student meant to make.
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def checksum(source: str) -> str:
    """SHA-256 of a cell's source, blind to trailing whitespace."""
    return hashlib.sha256(_normalized(source).encode("utf-8")).hexdigest()


def declared_points(metadata: Any) -> Any:
    """A check cell's ``metadata.flowlab.points`` as written (:data:`DEFAULT_POINTS` when absent)."""
    return (metadata.get("flowlab") or {}).get("points", DEFAULT_POINTS)


def is_stderr(output: Any) -> bool:
    return output.get("output_type") == "stream" and output.get("name") == "stderr"


def without_stderr(outputs: list[Any]) -> list[Any]:
    """``outputs`` without their stderr streams (never part of a comparison)."""
    return [o for o in outputs if not is_stderr(o)]


def stream_text(outputs: list[Any], name: str = "stdout") -> str:
    """The text ``outputs`` wrote on the stream ``name``, in order."""
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == name)


def compare_without_stderr(nbval_plugin: Any) -> None:
    """Make nbval (its ``plugin`` module) leave stderr out of both sides of its output comparison.

    nbval 0.11 compares outputs after ``transform_streams_for_comparison``; a wrapper around it drops
    stderr first. Idempotent: wrapping twice drops nothing more."""
    transform = nbval_plugin.transform_streams_for_comparison
    if getattr(transform, "flowlab_without_stderr", False):
        return

    def compared(outputs):
        return transform(without_stderr(outputs))

    compared.flowlab_without_stderr = True
    nbval_plugin.transform_streams_for_comparison = compared
