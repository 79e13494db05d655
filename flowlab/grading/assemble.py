"""Assemble the notebook the grader runs: the student's answers inside the solution's frame.

Every locked cell (setup, teaching code) and every check cell comes from the solution, with the
solution's markers and the solution's stored verdicts as the expected outputs, so editing a check,
its stored output, its execution count or its marker changes nothing.  The student contributes the
answer cells and any extra cells they added, run where they put them.

Cells are followed from the solution to the student's copy by their nbformat 4.5 ids (``flowlab
make-labs`` keeps them); where a frontend dropped the ids, locked cells are found by their content
and answer cells by their position between the cells found.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import nbformat

from flowlab.grading.roles import SolutionCell, solution_cells
from flowlab.notebook_format import Role, checksum, stream_text, without_stderr

__all__ = ["PlannedCell", "Assembly", "assemble"]


@dataclass(frozen=True)
class PlannedCell:
    """One code cell of the assembled notebook (nbval numbers them 0, 1, ... in this order)."""

    role: str  # check, answer, locked, or extra (a cell only the student has)
    origin: str  # "solution" or "student": whose source runs
    label: str  # the solution cell's id, or "student cell N"
    title: str | None = None
    points: float = 0.0
    expected: str = ""  # check cells: the solution's stored stdout, the verdict to print exactly
    source_sha: str = ""  # SHA-256 of the source sent to the kernel (pytest reports what it sent)


@dataclass
class Assembly:
    notebook: nbformat.NotebookNode
    plan: list[PlannedCell]
    locked_changes: list[str] = field(default_factory=list)  # what the student changed that does not run
    student_code: list[tuple[str, str]] = field(default_factory=list)  # (label, source) of what does run


def _label(cell: SolutionCell) -> str:
    return cell.cell_id or f"cell {cell.index}"


def _match(sol: list[SolutionCell], student: list[tuple[int, Any]]) -> dict[int, int]:
    """Map solution cell index -> position in ``student`` (its code cells)."""
    matched: dict[int, int] = {}
    used: set[int] = set()
    by_id: dict[str, int] = {}
    for pos, (_, cell) in enumerate(student):
        cid = cell.get("id")
        if isinstance(cid, str) and cid not in by_id:
            by_id[cid] = pos
    for cell in sol:
        pos = by_id.get(cell.cell_id) if cell.cell_id else None
        if pos is not None and pos not in used:
            matched[cell.index] = pos
            used.add(pos)
    # Frontends that drop ids: a locked or check cell is recognised by its content...
    sums = [checksum(c.source) for _, c in student]
    for cell in sol:
        if cell.index in matched or cell.role == Role.ANSWER:
            continue
        for pos, value in enumerate(sums):
            if pos not in used and value == cell.checksum:
                matched[cell.index] = pos
                used.add(pos)
                break
    # ...and an answer cell by its place: the first free student cell after the cell before it.
    for k, cell in enumerate(sol):
        if cell.index in matched or cell.role != Role.ANSWER:
            continue
        before = max((matched[c.index] for c in sol[:k] if c.index in matched), default=-1)
        after = min((matched[c.index] for c in sol[k + 1 :] if c.index in matched), default=len(student))
        for pos in range(before + 1, after):
            if pos not in used:
                matched[cell.index] = pos
                used.add(pos)
                break
    return matched


def _code_cell(source: str, *, metadata: dict | None = None, outputs: list | None = None,
               execution_count: int | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source=source, metadata=metadata or {})
    cell.outputs = outputs or []
    cell.execution_count = execution_count
    cell.pop("id", None)  # ids are regenerated below, unique by construction
    return cell


def assemble(solution: Any, student: Any, name: str = "solution", cells: list[SolutionCell] | None = None) -> Assembly:
    """Build the notebook to grade from a solution and a student's copy of its lab.

    ``cells``: the solution's :func:`~flowlab.grading.roles.solution_cells`, when the caller has them
    (the grader reads each solution once, :class:`~flowlab.grading.pipeline.Lab`)."""
    sol = solution_cells(solution, name) if cells is None else cells
    source_of = {c.index: solution.cells[c.index] for c in sol}
    student_cells = [(i, c) for i, c in enumerate(student.cells) if c.get("cell_type") == "code"]
    matched = _match(sol, student_cells)
    owner = {pos: index for index, pos in matched.items()}

    # Student-only cells run after the solution cell matched just before them.
    extras_after: dict[int | None, list[int]] = {}
    anchor: int | None = None
    for pos in range(len(student_cells)):
        if pos in owner:
            anchor = owner[pos]
        else:
            extras_after.setdefault(anchor, []).append(pos)

    cells: list[nbformat.NotebookNode] = []
    plan: list[PlannedCell] = []
    changes: list[str] = []
    student_code: list[tuple[str, str]] = []

    def add_extras(after: int | None) -> None:
        for pos in extras_after.get(after, []):
            index, cell = student_cells[pos]
            label = f"student cell {index}"
            cells.append(_code_cell(cell.source))
            plan.append(PlannedCell("extra", "student", label))
            student_code.append((label, cell.source))

    add_extras(None)
    for cell in sol:
        original = source_of[cell.index]
        label = _label(cell)
        theirs = student_cells[matched[cell.index]][1] if cell.index in matched else None
        metadata = copy.deepcopy(dict(original.metadata))
        metadata.pop("execution", None)
        metadata.setdefault("flowlab", {})
        metadata["flowlab"] = dict(metadata["flowlab"], role=cell.role, checksum=cell.checksum)
        if cell.role == Role.ANSWER:
            if theirs is None:
                changes.append(f"answer cell {label} is missing: nothing ran in its place")
            else:
                cells.append(_code_cell(theirs.source, metadata=metadata))
                plan.append(PlannedCell(Role.ANSWER, "student", label))
                student_code.append((label, theirs.source))
        else:
            if theirs is None:
                changes.append(f"{cell.role} cell {label} was not found (deleted, or edited and without its id): "
                               "the solution's version ran")
            elif checksum(theirs.source) != cell.checksum:
                changes.append(f"{cell.role} cell {label} was changed: the solution's version ran")
            if cell.role == Role.CHECK:
                expected = without_stderr(original.get("outputs", []))
                cells.append(_code_cell(original.source, metadata=metadata, outputs=copy.deepcopy(expected),
                                        execution_count=original.get("execution_count") or 1))
                stdout = stream_text(expected)
                plan.append(PlannedCell(Role.CHECK, "solution", label, cell.title, cell.points, stdout))
            else:
                cells.append(_code_cell(original.source, metadata=metadata))
                plan.append(PlannedCell(Role.LOCKED, "solution", label))
        add_extras(cell.index)

    notebook = nbformat.v4.new_notebook(metadata=copy.deepcopy(dict(solution.metadata)))
    notebook.nbformat_minor = 5
    for number, cell in enumerate(cells):
        cell["id"] = f"graded-{number}"
        plan[number] = replace(plan[number], source_sha=hashlib.sha256(cell.source.encode("utf-8")).hexdigest())
    notebook.cells = cells
    return Assembly(notebook, plan, changes, student_code)
