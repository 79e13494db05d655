"""Score a run: each check cell is worth its points when it printed exactly the solution's verdict.

A check passes when nbval ran its cell and found the solution's ``✔ title`` line (stderr aside),
the kernel did not report the cell as raising (even with tracebacks silenced), **and** the cell's
raw stdout, as the kernel sent it before nbval coalesced the stream, is exactly that line: a
``\r``, a backspace or a terminal escape that would make nbval's coalesced text read ``✔ title``
leaves the raw text different, so the check fails.  A ``✘`` on stderr fails it too (a check that was
made to print its verdict there).  Everything else fails, and the student gets the most useful
reason there is: their ``✘`` hint, the exception the cell raised, the timeout, the dead kernel or the
limit that stopped the run.  Text from the kernel is only ever shown as feedback, with its control
characters made visible (:func:`visible`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from flowlab.checks.core import FAIL, PASS
from flowlab.grading.assemble import PlannedCell
from flowlab.grading.roles import Role
from flowlab.grading.runner import RunOutcome

__all__ = ["CheckResult", "SubmissionResult", "score_run"]

MAX_NOTES = 8


# Characters that move the cursor, erase, recolour or reorder text on a terminal or in a browser.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_TRAILING = re.compile(r"[ \t]+(\n|$)")  # the same tolerance as the grader's nbval sanitizer


def visible(text: str) -> str:
    """``text`` with every control character written as an escape (``\\r``, ``\\x1b``)."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1] if m.group() in "\r\x08\x1b\x00" else
                       f"\\u{ord(m.group()):04x}", text)


@dataclass
class CheckResult:
    title: str
    points: float
    passed: bool  # the check printed exactly its verdict (what the run showed, flagged or not)
    earned: float
    feedback: str = ""
    counted: bool = True  # False: the submission is flagged and this check scores zero until reviewed


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
    warnings: list[str] = field(default_factory=list)  # about the file itself (name, format)
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubmissionResult:
        """The result :meth:`to_dict` wrote (``report.json``), read back (``flowlab gradebook merge``)."""
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known and k != "checks"}
        checks = [CheckResult(**{k: v for k, v in c.items() if k in CheckResult.__dataclass_fields__})
                  for c in data.get("checks", [])]
        return cls(**fields, checks=checks)


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""


def _exception(record: dict[str, Any]) -> str:
    value = _first_line(record.get("evalue", ""))
    return f"{record['ename']}: {value}" if value else record["ename"]


def _failure(cell: PlannedCell, record: dict[str, Any] | None, outcome: RunOutcome) -> str:
    if record is None:
        return outcome.stopped or outcome.error or "this check did not run"
    if record.get("output_dropped"):
        return "this cell printed more than the grader keeps (output limit): not counted"
    raw = record.get("raw_stdout", record.get("stdout", ""))
    prefix = f"{FAIL} {cell.title}: "
    for line in raw.split("\n"):
        if line.startswith(prefix):
            return visible(line[len(prefix):].strip())
        if line.startswith(FAIL + " "):
            return visible(line[2:].strip())
    if CONTROL.search(raw):
        return ("the check's output held control characters (carriage returns, backspaces or terminal "
                f"escapes), which cannot make a verdict: {visible(raw.strip())[:300]}")
    if record.get("kernel_died") or "Kernel dead" in record.get("message", ""):
        return outcome.stopped or "the kernel died before this check ran (os._exit, a crash, or too much memory)"
    if "Timeout" in record.get("message", ""):
        return f"the check cell timed out: {_first_line(record['message'])}"
    if record.get("ename"):
        return f"the check cell raised {_exception(record)}"
    if record.get("reply") == "error":
        return "the check cell raised an exception (its traceback was hidden)"
    if record.get("limit"):
        return record["limit"]
    if "outputs differ" in record.get("message", "") or not _exact(cell, record):
        return "the check printed something other than its verdict"
    if FAIL in record.get("raw_stderr", ""):
        return "the check's verdict went to stderr"
    return visible(_first_line(record.get("message", ""))) or "the check failed"


def _normal(text: str) -> str:
    return _TRAILING.sub(r"\1", text)


def _exact(cell: PlannedCell, record: dict[str, Any]) -> bool:
    """The raw stdout is the solution's verdict, character for character (trailing blanks aside)."""
    raw = record.get("raw_stdout")
    if not cell.expected or raw is None:
        return True  # an old plan or record without the raw text: nbval's comparison decides alone
    return not CONTROL.search(raw) and _normal(raw) == _normal(cell.expected) and PASS in raw


def _passed(cell: PlannedCell, record: dict[str, Any] | None) -> bool:
    return (record is not None and record.get("phase") == "call" and not record.get("raised")
            and record.get("reply") != "error" and not record.get("output_dropped")
            and FAIL not in record.get("raw_stderr", "") and _exact(cell, record))


def _notes(plan: list[PlannedCell], outcome: RunOutcome) -> list[str]:
    notes: list[str] = []
    if outcome.stopped:
        notes.append(outcome.stopped)
    for number, cell in enumerate(plan):
        record = outcome.records.get(number)
        if cell.role != Role.CHECK and record is not None and record.get("output_dropped"):
            notes.append(f"{cell.label}: printed more than the grader keeps; the rest was dropped")
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
        elif record.get("limit") and record["limit"] in message:
            continue  # the limit is said once, first
        elif record.get("phase") == "setup":
            notes.append(f"the notebook could not start: {_first_line(message)}")
            break
    limits = {r.get("limit") for r in outcome.records.values() if r.get("limit")}
    notes[:0] = sorted(limits - set(notes))
    if outcome.forged:
        notes.append(f"{outcome.forged} result line(s) failed their signature and were ignored")
    return [visible(note) for note in notes[:MAX_NOTES]]


def score_run(plan: list[PlannedCell], outcome: RunOutcome, *,
              zero: bool = False) -> tuple[list[CheckResult], list[str]]:
    """The check results of a run (all earning zero when ``zero``), and notes on what went wrong."""
    checks = []
    for number, cell in enumerate(plan):
        if cell.role != Role.CHECK:
            continue
        record = outcome.records.get(number)
        passed = _passed(cell, record)
        checks.append(CheckResult(
            title=cell.title or cell.label,
            points=cell.points,
            passed=passed,
            earned=cell.points if passed and not zero else 0.0,
            feedback="" if passed else _failure(cell, record, outcome),
            counted=not zero,
        ))
    return checks, _notes(plan, outcome)
