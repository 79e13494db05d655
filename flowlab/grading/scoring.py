"""Score a run: each check cell is worth its points when nbval found the solution's verdict.

A check passes when nbval ran its cell and found exactly the solution's ``✔ title`` line (stderr
aside), and the kernel did not report the cell as raising (even with tracebacks silenced).
Everything else fails, and the student gets the most useful reason there is: their ``✘`` hint,
the exception the cell raised, the timeout, the dead kernel or the limit that stopped the run.
The kernel's output is only ever shown as feedback text; verdicts come from nbval's comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from flowlab.checks.core import FAIL
from flowlab.grading.assemble import PlannedCell
from flowlab.grading.roles import Role
from flowlab.grading.runner import RunOutcome

__all__ = ["CheckResult", "SubmissionResult", "score_run"]

MAX_NOTES = 8


@dataclass
class CheckResult:
    title: str
    points: float
    passed: bool
    earned: float
    feedback: str = ""


@dataclass
class SubmissionResult:
    path: str
    student: str
    lab: str | None
    status: str  # graded | flagged | invalid | error
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_mb: float = 0.0

    @property
    def total(self) -> float:
        return sum(c.earned for c in self.checks)

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(total=self.total, max_points=self.max_points)
        return data


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""


def _exception(record: dict[str, Any]) -> str:
    value = _first_line(record.get("evalue", ""))
    return f"{record['ename']}: {value}" if value else record["ename"]


def _failure(cell: PlannedCell, record: dict[str, Any] | None, outcome: RunOutcome) -> str:
    if record is None:
        return outcome.stopped or outcome.error or "this check did not run"
    prefix = f"{FAIL} {cell.title}: "
    for line in record.get("stdout", "").splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
        if line.startswith(FAIL + " "):
            return line[2:].strip()
    if record.get("kernel_died") or "Kernel dead" in record.get("message", ""):
        return outcome.stopped or "the kernel died before this check ran (os._exit, a crash, or too much memory)"
    if "Timeout" in record.get("message", ""):
        return f"the check cell timed out: {_first_line(record['message'])}"
    if record.get("ename"):
        return f"the check cell raised {_exception(record)}"
    if record.get("reply") == "error":
        return "the check cell raised an exception (its traceback was hidden)"
    if "outputs differ" in record.get("message", ""):
        return "the check printed something other than its verdict"
    return _first_line(record.get("message", "")) or "the check failed"


def _passed(record: dict[str, Any] | None) -> bool:
    return (record is not None and record.get("phase") == "call" and not record.get("raised")
            and record.get("reply") != "error")


def _notes(plan: list[PlannedCell], outcome: RunOutcome) -> list[str]:
    notes: list[str] = []
    if outcome.stopped:
        notes.append(outcome.stopped)
    for number, cell in enumerate(plan):
        record = outcome.records.get(number)
        if cell.role == Role.CHECK or record is None or not record.get("raised"):
            continue
        message = record.get("message", "")
        if "Kernel dead" in message:
            continue  # said once, where it died
        if record.get("kernel_died"):
            notes.append(f"{cell.label}: the kernel died while this cell ran")
        elif "Timeout" in message:
            notes.append(f"{cell.label}: {_first_line(message)} (interrupted)")
        elif record.get("ename"):
            notes.append(f"{cell.label}: raised {_exception(record)}")
        elif record.get("phase") == "setup":
            notes.append(f"the notebook could not start: {_first_line(message)}")
            break
    if outcome.forged:
        notes.append(f"{outcome.forged} result line(s) failed their signature and were ignored")
    return notes[:MAX_NOTES]


def score_run(plan: list[PlannedCell], outcome: RunOutcome, *, zero: bool = False) -> tuple[list[CheckResult], list[str]]:
    """The check results of a run (all earning zero when ``zero``), and notes on what went wrong."""
    checks = []
    for number, cell in enumerate(plan):
        if cell.role != Role.CHECK:
            continue
        record = outcome.records.get(number)
        passed = _passed(record)
        checks.append(CheckResult(
            title=cell.title or cell.label,
            points=cell.points,
            passed=passed,
            earned=cell.points if passed and not zero else 0.0,
            feedback="" if passed else _failure(cell, record, outcome),
        ))
    return checks, _notes(plan, outcome)
