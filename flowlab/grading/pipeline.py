"""Grade one submission: validate, find its solution, assemble, scan, run (sandboxed), verify, score."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowlab.grading.assemble import assemble
from flowlab.grading.discover import Submission, lab_from_name, read_solutions
from flowlab.grading.integrity import cells_that_differ, changed_files, digest
from flowlab.grading.roles import Role, SolutionCell, solution_cells
from flowlab.grading.runner import Limits, run_notebook
from flowlab.grading.sandbox import Sandbox
from flowlab.grading.scoring import CheckResult, SubmissionResult, score_run
from flowlab.grading.tamper import module_names, protected_names, scan
from flowlab.grading.validate import InvalidSubmission, lab_id, read_submission

__all__ = ["Lab", "Solutions", "Options", "grade_submission"]


@dataclass(frozen=True)
class Lab:
    """A solution notebook, read once and shared by every submission of its lab."""

    lab: str
    path: Path
    notebook: Any
    cells: list[SolutionCell]
    modules: frozenset[str]
    protected: frozenset[str]

    @property
    def checks(self) -> list[SolutionCell]:
        return [c for c in self.cells if c.role == Role.CHECK]

    @classmethod
    def load(cls, lab: str, path: Path, notebook: Any = None) -> Lab:
        """The solution ``path`` of ``lab`` (``notebook``: the file as already read, to read it once)."""
        notebook = read_submission(path) if notebook is None else notebook
        cells = solution_cells(notebook, str(path))
        if not any(c.role == Role.CHECK for c in cells):
            raise ValueError(f"{path}: the solution has no check cells (`# NBVAL_CHECK_OUTPUT`)")
        titles = [c.title for c in cells if c.role == Role.CHECK]
        if len(set(titles)) != len(titles):
            raise ValueError(f"{path}: two check cells print the same title; the gradebook needs distinct ones")
        locked = [c.source for c in cells if c.role == Role.LOCKED]
        checks = [c.source for c in cells if c.role == Role.CHECK]
        answers = [c.source for c in cells if c.role == Role.ANSWER]
        return cls(lab, path, notebook, cells, frozenset(module_names(locked)),
                   frozenset(protected_names(checks, locked, answers)))


class Solutions:
    """The solutions folder: lab id -> :class:`Lab`, loaded on first use (thread-safe).

    ``notebooks`` (lab id -> the solution as already read, see :meth:`read`) spares reading a file
    again; a lab without one is read when first used."""

    def __init__(self, paths: dict[str, Path], notebooks: dict[str, Any] | None = None):
        self.paths = dict(sorted(paths.items()))
        self._notebooks = {lab: nb for lab, nb in (notebooks or {}).items() if nb is not None}
        self._labs: dict[str, Lab | Exception] = {}
        self._lock = threading.Lock()

    @classmethod
    def read(cls, folder: Path) -> Solutions:
        """Every solution in ``folder``, each file read once (:func:`~flowlab.grading.discover.read_solutions`)."""
        found = read_solutions(folder)
        return cls({lab: path for lab, (path, _) in found.items()}, {lab: nb for lab, (_, nb) in found.items()})

    @property
    def ids(self) -> list[str]:
        return list(self.paths)

    def get(self, lab: str) -> Lab:
        with self._lock:
            if lab not in self._labs:
                try:
                    self._labs[lab] = Lab.load(lab, self.paths[lab], self._notebooks.pop(lab, None))
                except (InvalidSubmission, ValueError) as err:
                    self._labs[lab] = err
            found = self._labs[lab]
        if isinstance(found, Exception):
            raise found
        return found


@dataclass(frozen=True)
class Options:
    limits: Limits = Limits()
    fast: bool = True
    only_lab: str | None = None  # --lab: every submission must be this lab
    zero_flagged: bool = True
    # What the kernels run in: "auto", "bwrap" or "none" (probed by grade()), or a probed Sandbox.
    sandbox: str | Sandbox = "auto"
    # The grading code on disk when the batch started (:func:`flowlab.grading.integrity.digest`).
    watched: tuple[Path, ...] = ()
    baseline: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class _SolutionError(Exception):
    """The grader's own problem: a solution that cannot be graded against."""


def _which_lab(notebook: Any, path: Path, solutions: Solutions, only: str | None) -> str:
    """The one decision of a submission's lab: ``--lab``, else its metadata, else its path's names."""
    said = lab_id(notebook)
    if only is not None:
        if said is not None and said != only:
            raise InvalidSubmission(f"this notebook is lab {said!r}, not {only!r}: was the wrong file submitted?")
        return only
    if said is not None:
        if said not in solutions.paths:
            known = ", ".join(solutions.ids) or "none"
            raise InvalidSubmission(f"this notebook is lab {said!r}, which has no solution here (labs: {known})")
        return said
    guessed = lab_from_name(path, solutions.ids)  # no metadata: the file name (or its folder) decides
    if guessed is None:
        raise InvalidSubmission("cannot tell which lab this is: the notebook has no metadata.flowlab.lab and "
                                "its file name names no lab (" + ", ".join(solutions.ids) + ")")
    return guessed


def _zeros(lab: Lab | None) -> list[CheckResult]:
    if lab is None:
        return []
    return [CheckResult(c.title or c.cell_id or "", c.points, False, 0.0, "not graded") for c in lab.checks]


def grade_submission(sub: Submission, solutions: Solutions, options: Options) -> SubmissionResult:
    """Grade one file; never raises: a problem becomes the result's status and reason."""
    result = SubmissionResult(str(sub.path), sub.student, None, "graded")
    lab: Lab | None = None
    try:
        # A file that cannot be read is put on a lab's row only on evidence: --lab, or its own name
        # (not the folder it sits in).
        named = lab_from_name(Path(sub.path.name), solutions.ids)
        guess = options.only_lab or named
        if guess in solutions.paths:
            result.lab = guess
        student = read_submission(sub.path, result.warnings)
        result.lab = _which_lab(student, sub.path, solutions, options.only_lab)
        if named is not None and named != result.lab:
            result.warnings.append(f"the file name names lab {named}, but the notebook says it is lab "
                                   f"{result.lab} (its metadata): graded as {result.lab}; was the wrong file "
                                   "submitted?")
        try:
            lab = solutions.get(result.lab)
        except (InvalidSubmission, ValueError) as err:
            raise _SolutionError(f"the solution of lab {result.lab} cannot be graded against: {err}") from None
        assembly = assemble(lab.notebook, student, str(lab.path), cells=lab.cells)
        result.changes = assembly.locked_changes
        flags = scan(assembly.student_code, modules=set(lab.modules), protected=set(lab.protected))
        result.flags = [str(f) for f in flags]
        sandbox = options.sandbox if isinstance(options.sandbox, Sandbox) else None
        before = digest(list(options.watched)) if options.watched else {}
        outcome = run_notebook(assembly.notebook, options.limits, fast=options.fast, sandbox=sandbox)
        result.seconds, result.peak_mb = round(outcome.seconds, 2), round(outcome.peak_mb, 1)
        result.flags += _verify(assembly.plan, outcome.records, options, before)
        flags = result.flags
        zero = bool(flags) and options.zero_flagged
        result.checks, result.notes = score_run(assembly.plan, outcome, zero=zero)
        if outcome.error:
            result.status, result.reason = "error", outcome.error
        elif flags:
            result.status = "flagged"
            result.reason = (f"{len(flags)} place(s) in the code tamper with grading; "
                             + ("every check scores zero until the instructor reviews it" if zero else "review them"))
    except InvalidSubmission as err:
        result.status, result.reason = "invalid", str(err)
        result.checks = _zeros(_safe_lab(solutions, result.lab))
    except _SolutionError as err:
        result.status, result.reason = "error", str(err)
    except Exception as err:  # noqa: BLE001 - one submission's surprise must not stop the class
        result.status = "error"
        result.reason = f"the grader failed: {type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"
        result.checks = _zeros(lab)
    return result


def _verify(plan, records, options: Options, before: dict[str, str]) -> list[str]:
    """Flags from the checks made outside the kernel after it ran (see :mod:`flowlab.grading.integrity`)."""
    flags = []
    differ = cells_that_differ(plan, records)
    if differ:
        flags.append("the code that ran is not the assembled notebook's in " + ", ".join(differ[:5]))
    if options.watched:
        # Changed while this notebook ran: this run is the suspect (the batch as a whole is compared
        # with its start by the command, which warns that later submissions need grading again).
        changed = changed_files(before, digest(list(options.watched)))
        if changed:
            flags.append("the grading code on disk changed while this notebook ran (" + ", ".join(changed[:3])
                         + (" ..." if len(changed) > 3 else "") + ")")
    return flags


def _safe_lab(solutions: Solutions, lab: str | None) -> Lab | None:
    if lab is None or lab not in solutions.paths:
        return None
    try:
        return solutions.get(lab)
    except (InvalidSubmission, ValueError):
        return None

