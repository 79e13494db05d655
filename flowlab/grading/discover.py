"""Find the submissions to grade and the solution each one is graded against.

A submission names its lab in ``metadata.flowlab.lab`` (written by ``flowlab make-labs``); when a
student's frontend dropped the metadata, the file name decides (``alice_02_two_moons.ipynb``,
``alice/02_two_moons.ipynb``).  The student is named after the file: its stem without the lab id,
or its folder when the stem is just the lab id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Submission", "find_submissions", "find_solutions", "read_solutions", "lab_from_name", "student_name"]

_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git"}


@dataclass(frozen=True)
class Submission:
    path: Path
    student: str


def _notebooks(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*.ipynb")
        if p.is_file() and not any(part in _SKIP_DIRS for part in p.relative_to(folder).parts)
    )


def read_solutions(folder: Path) -> dict[str, tuple[Path, Any]]:
    """Map lab id -> (solution notebook's path, the notebook read, or ``None`` when it cannot be read)
    for every ``*.ipynb`` in ``folder``: its ``metadata.flowlab.lab``, else its stem, names the lab.
    Each file is read once; the grader keeps the notebook (:class:`~flowlab.grading.pipeline.Solutions`)."""
    from flowlab.grading.validate import InvalidSubmission, lab_id, read_submission

    solutions: dict[str, tuple[Path, Any]] = {}
    for path in sorted(folder.glob("*.ipynb")):
        try:
            notebook = read_submission(path)
        except InvalidSubmission:
            notebook = None
        solutions[(lab_id(notebook) if notebook is not None else None) or path.stem] = (path, notebook)
    return solutions


def find_solutions(folder: Path) -> dict[str, Path]:
    """Map lab id -> solution notebook for every ``*.ipynb`` in ``folder`` (see :func:`read_solutions`)."""
    return {lab: path for lab, (path, _) in read_solutions(folder).items()}


def lab_from_name(path: Path, labs: list[str]) -> str | None:
    """The lab whose id appears in the file name (or the folder names above it), longest id first."""
    text = "/".join(path.parts[-3:]).lower()
    for lab in sorted(labs, key=len, reverse=True):
        if lab.lower() in text:
            return lab
    # Students rename files: "lab02.ipynb", "02-two-moons.ipynb".
    for lab in labs:
        number = re.match(r"(\d+)_", lab)
        if number and re.search(rf"(?<!\d){number.group(1)}(?!\d)", path.stem):
            return lab
    return None


def student_name(path: Path, root: Path | None, labs: list[str]) -> str:
    stem = path.stem
    for lab in sorted(labs, key=len, reverse=True):
        if lab in stem:
            stem = stem.replace(lab, "")
            break
    stem = stem.strip(" _-.")
    if stem:
        return stem
    parent = path.parent
    if root is not None and parent.resolve() == root.resolve():
        return path.stem
    return parent.name or path.stem


def find_submissions(arguments: list[Path], labs: list[str]) -> list[Submission]:
    """Every notebook named or found under the folders named, in a stable order, without duplicates."""
    seen: set[Path] = set()
    found: list[Submission] = []
    for argument in arguments:
        if argument.is_dir():
            paths, root = _notebooks(argument), argument
        else:
            paths, root = [argument], None
        for path in paths:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(Submission(path, student_name(path, root, labs)))
    return found
