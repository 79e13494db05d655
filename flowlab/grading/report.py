"""Reports of a grading run: JSON (everything), a CSV gradebook, one feedback file per student.

The gradebook has one row per student (sorted), one column per check (in the solution's order,
prefixed by the lab when several labs are graded together), each lab's total, the overall total
and a status column; it depends on nothing but the verdicts, so grading twice, or with another
``--jobs``, writes the same file.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterable

from flowlab.checks.core import FAIL, PASS
from flowlab.grading.scoring import SubmissionResult

__all__ = ["write_json", "write_gradebook", "write_feedback", "feedback_text", "ordered"]


def ordered(results: Iterable[SubmissionResult]) -> list[SubmissionResult]:
    return sorted(results, key=lambda r: (r.student, r.lab or "", r.path))


def _number(value: float) -> str:
    return f"{value:g}"


def write_json(results: list[SubmissionResult], path: Path, settings: dict) -> None:
    data = {"flowlab_grade": 1, "settings": settings, "submissions": [r.to_dict() for r in ordered(results)]}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_gradebook(results: list[SubmissionResult], columns: dict[str, list[str]], path: Path) -> None:
    """``columns``: lab id -> its check titles, in the solution's order."""
    labs = sorted(lab for lab in columns if any(r.lab == lab for r in results)) or sorted(columns)
    several = len(labs) > 1
    header = ["student"]
    for lab in labs:
        header += [f"{lab}: {title}" if several else title for title in columns[lab]]
        if several:
            header.append(f"{lab}: total")
    header += ["total", "max", "status"]

    rows: dict[str, dict[str, str]] = {}
    for result in ordered(results):
        row = rows.setdefault(result.student, {"student": result.student})
        lab = result.lab if result.lab in columns else None
        if lab is not None:
            earned = {c.title: c.earned for c in result.checks}
            for title in columns[lab]:
                row[f"{lab}: {title}" if several else title] = _number(earned.get(title, 0.0))
            if several:
                row[f"{lab}: total"] = _number(result.total)
        row["total"] = _number(float(row.get("total", 0)) + result.total)
        possible = sum(c.points for c in result.checks)
        row["max"] = _number(float(row.get("max", 0)) + possible)
        status = result.status if result.status == "graded" else f"{result.status}: {result.reason.splitlines()[0]}"
        label = f"{result.lab or '?'} {status}" if several else status
        row["status"] = "; ".join(filter(None, [row.get("status"), label]))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="", extrasaction="ignore")
        writer.writeheader()
        for student in sorted(rows):
            writer.writerow(rows[student])


def feedback_text(result: SubmissionResult) -> str:
    lines = [f"flowlab grade: {result.student}, lab {result.lab or '?'}", f"file: {result.path}", ""]
    if result.status == "invalid":
        lines += [f"Not graded: {result.reason}", "Score: 0", ""]
        return "\n".join(lines)
    if result.status == "error":
        lines += [f"The grader failed on this file (not your fault): {result.reason.splitlines()[0]}", ""]
    lines += [f"Score: {_number(result.total)} / {_number(result.max_points)} points", ""]
    for check in result.checks:
        mark = PASS if check.passed else FAIL
        line = f"{mark} {check.title} ({_number(check.earned)}/{_number(check.points)})"
        if not check.passed and check.feedback:
            line += f": {check.feedback}"
        lines.append(line)
    if result.flags:
        lines += ["", f"Flagged for review: {result.reason}"] + [f"  - {flag}" for flag in result.flags]
    if result.changes:
        lines += ["", "Cells you changed or deleted that the grader does not use:"]
        lines += [f"  - {change}" for change in result.changes]
    if result.notes:
        lines += ["", "What happened while your notebook ran:"] + [f"  - {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "student"


def write_feedback(results: list[SubmissionResult], folder: Path) -> list[Path]:
    """One text file per student (all their labs), named after the student."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[SubmissionResult]] = {}
    for result in ordered(results):
        by_student.setdefault(result.student, []).append(result)
    written = []
    for student, items in by_student.items():
        path = folder / f"{_file_name(student)}.txt"
        path.write_text("\n".join(feedback_text(r) for r in items), encoding="utf-8")
        written.append(path)
    return written
