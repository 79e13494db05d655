"""Cell roles, read from the solution notebook, and the checksums that follow locked cells.

The solution decides what every cell is (see ``docs/notebooks.md``):

* a *check* cell's source starts with ``# NBVAL_CHECK_OUTPUT``; its stored output is the expected
  verdict, ``✔ title``;
* an *answer* cell holds ``### BEGIN SOLUTION``; the student's version of it is what gets graded;
* every other code cell is *locked*: setup and teaching code, always run as the solution has it.

A checksum of a locked cell's source (as nbgrader keeps in cell metadata) tells the grader whether a
student changed it; the student's change is reported and never run.  The markers, the roles and the
checksum are the notebook-format contract's (:mod:`flowlab.notebook_format`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowlab.notebook_format import CHECK_MARKER, PASS, Role, checksum, declared_points, role_of, stream_text

__all__ = ["CHECK_MARKER", "Role", "SolutionCell", "checksum", "role_of", "solution_cells", "check_title"]


def check_title(outputs: list[Any]) -> str | None:
    """The title in a solution check cell's ``✔ title`` line, or ``None`` when it holds no verdict."""
    for line in stream_text(outputs).splitlines():
        if line.startswith(PASS + " "):
            return line[len(PASS) + 1 :].strip()
    return None


@dataclass(frozen=True)
class SolutionCell:
    index: int  # position among the solution's cells
    cell_id: str | None
    role: str
    source: str
    checksum: str
    points: float = 0.0  # check cells only
    title: str | None = None  # check cells only


def _points(metadata: Any, where: str) -> float:
    value = declared_points(metadata)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{where}: metadata.flowlab.points must be a number >= 0, got {value!r}")
    return float(value)


def solution_cells(solution: Any, name: str = "solution") -> list[SolutionCell]:
    """The code cells of a solution notebook with their roles, points and check titles."""
    cells = []
    for index, cell in enumerate(solution.cells):
        if cell.cell_type != "code":
            continue
        role = role_of(cell.source)
        points, title = 0.0, None
        if role == Role.CHECK:
            where = f"{name}, cell {index}"
            points = _points(cell.metadata, where)
            title = check_title(cell.get("outputs", []))
            if title is None:
                raise ValueError(f"{where}: the check cell has no stored `{PASS} title` output; "
                                 "execute the solution (flowlab execute) before grading against it")
            if cell.get("execution_count") is None:
                raise ValueError(f"{where}: the check cell was never executed in the solution")
        cells.append(SolutionCell(index, cell.get("id"), role, cell.source, checksum(cell.source), points, title))
    return cells
