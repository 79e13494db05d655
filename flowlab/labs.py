"""Generate the student labs from the solution notebooks.

A solution's answer code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers).  In the lab the block is replaced by its *stub* lines -- the lines inside it that start
with ``#| `` (the prefix removed) -- or, when it has none, by ``# YOUR CODE HERE`` and
``raise NotImplementedError()``.  Outputs and execution counts are cleared; cell ids and metadata
(points) are kept, so the grader can follow a cell from the solution to a student's copy.
See ``docs/notebooks.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = [
    "BEGIN",
    "END",
    "STUB",
    "LabSyntaxError",
    "strip_solution",
    "make_lab",
    "write_labs",
    "stale_labs",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = "#|"
NBFORMAT_MINOR = 5  # cell ids exist from nbformat 4.5 on


class LabSyntaxError(ValueError):
    """A solution notebook's solution markers are malformed."""


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every solution block in ``source`` by its stubs (see the module docstring)."""
    out: list[str] = []
    stubs: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if stubs is not None:
                raise LabSyntaxError(f"{where}, line {number}: {BEGIN} inside another solution block")
            stubs, indent = [], line[: len(line) - len(line.lstrip())]
        elif stripped == END:
            if stubs is None:
                raise LabSyntaxError(f"{where}, line {number}: {END} without {BEGIN}")
            out.extend(stubs or [indent + "# YOUR CODE HERE", indent + "raise NotImplementedError()"])
            stubs = None
        elif stubs is not None:
            body = line.lstrip()
            if body == STUB or body.startswith(STUB + " "):
                stubs.append(line[: len(line) - len(body)] + body[len(STUB) + 1 :])
        else:
            out.append(line)
    if stubs is not None:
        raise LabSyntaxError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_lab(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student lab for a solution notebook (the solution is not modified)."""
    lab = copy.deepcopy(solution)
    lab.nbformat, lab.nbformat_minor = 4, max(NBFORMAT_MINOR, lab.get("nbformat_minor", 0))
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source, where=f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # timings from the solution's run
    lab.metadata.pop("widgets", None)
    return lab


@dataclass(frozen=True)
class LabFile:
    solution: Path
    lab: Path
    text: str  # the lab as it should be on disk


def _expected_labs(solutions: Path, labs: Path) -> list[LabFile]:
    files = []
    for path in sorted(solutions.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        lab = make_lab(solution, name=str(path))
        files.append(LabFile(path, labs / path.name, nbformat.writes(lab) + "\n"))
    return files


def write_labs(solutions: Path | str = "solutions", labs: Path | str = "labs") -> list[Path]:
    """Write ``labs/NAME.ipynb`` for every ``solutions/NAME.ipynb``; return the files written."""
    solutions, labs = Path(solutions), Path(labs)
    labs.mkdir(parents=True, exist_ok=True)
    written = []
    for item in _expected_labs(solutions, labs):
        if not item.lab.exists() or item.lab.read_text(encoding="utf-8") != item.text:
            item.lab.write_text(item.text, encoding="utf-8")
            written.append(item.lab)
    return written


def stale_labs(solutions: Path | str = "solutions", labs: Path | str = "labs") -> list[Path]:
    """The labs that are missing or differ from what :func:`write_labs` would write."""
    solutions, labs = Path(solutions), Path(labs)
    stale = [
        item.lab
        for item in _expected_labs(solutions, labs)
        if not item.lab.exists() or item.lab.read_text(encoding="utf-8") != item.text
    ]
    known = {p.name for p in solutions.glob("*.ipynb")}
    stale += [p for p in sorted(labs.glob("*.ipynb")) if p.name not in known]  # orphans
    return stale
