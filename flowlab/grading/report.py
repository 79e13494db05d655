"""Reports of a grading run: JSON (everything), a CSV gradebook, one feedback file per student.

The gradebook has one row per student (sorted), one column per check (in the solution's order,
prefixed by the lab when several labs are graded together), each lab's total, the overall total
and a status column; it depends on nothing but the verdicts, so grading twice, or with another
``--jobs``, writes the same file.

Only the grader writes here, once, at the end of the batch, after every kernel is gone: each file
is written to a new temporary file beside it and renamed over the old one (a rename replaces a
symlink planted there instead of following it), and ``feedback/`` is built as a new folder and
swapped in whole, so a file a submission planted in it does not survive.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from flowlab.checks.core import FAIL, PASS
from flowlab.grading.scoring import SubmissionResult, visible

__all__ = ["write_json", "write_gradebook", "write_feedback", "write_reports", "feedback_text", "ordered",
           "write_atomic", "REPORT_VERSION"]

REPORT_VERSION = 1  # ``flowlab_grade`` in report.json

FLAGGED = "⚑"  # a check that passed on a flagged submission: never shown as PASS


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` without following a symlink there: a new file, renamed over it."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"{path} is a folder; the grader writes a file there")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # O_EXCL: never a link
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def ordered(results: Iterable[SubmissionResult]) -> list[SubmissionResult]:
    return sorted(results, key=lambda r: (r.student, r.lab or "", r.path))


def _number(value: float) -> str:
    return f"{value:g}"


def write_json(results: list[SubmissionResult], path: Path, settings: dict,
               columns: dict[str, list[str]] | None = None) -> None:
    """``columns`` (lab id -> check titles) lets ``flowlab gradebook merge`` rebuild the gradebook."""
    data = {"flowlab_grade": REPORT_VERSION, "settings": settings, "columns": columns or {},
            "submissions": [r.to_dict() for r in ordered(results)]}
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_reports(results: list[SubmissionResult], columns: dict[str, list[str]], out: Path, settings: dict) -> None:
    """``report.json``, ``gradebook.csv`` and ``feedback/`` in ``out`` (the same for a run and a merge)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(results, out / "report.json", settings, columns)
    write_gradebook(results, columns, out / "gradebook.csv")
    write_feedback(results, out / "feedback")


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
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=header, restval="", extrasaction="ignore")
    writer.writeheader()
    for student in sorted(rows):
        writer.writerow(rows[student])
    write_atomic(path, handle.getvalue())


def _plain(text: str) -> str:
    """Text that came from the student's notebook or kernel: control characters made visible, and
    no pass mark, which on a card only the grader writes."""
    return visible(str(text)).replace(PASS, "(U+2714)")


def feedback_text(result: SubmissionResult) -> str:
    lines = [f"flowlab grade: {result.student}, lab {result.lab or '?'}", f"file: {result.path}", ""]
    if result.status == "invalid":
        lines += [f"Not graded: {_plain(result.reason)}", "Score: 0", ""]
        return "\n".join(lines)
    if result.status == "error":
        lines += [f"The grader failed on this file (not your fault): {result.reason.splitlines()[0]}", ""]
    for warning in result.warnings:
        lines.append(f"Note: {_plain(warning)}")
    if result.warnings:
        lines.append("")
    lines += [f"Score: {_number(result.total)} / {_number(result.max_points)} points", ""]
    for check in result.checks:
        score = f"({_number(check.earned)}/{_number(check.points)})"
        if check.passed and result.flags:
            # A check that passed on flagged code may have passed only through the tampering.
            why = "not counted until the instructor reviews the flagged code" if not check.counted \
                else "counted, but the code is flagged for review"
            lines.append(f"{FLAGGED} {check.title} {score}: {why}")
        elif check.passed:
            lines.append(f"{PASS} {check.title} {score}")
        else:
            lines.append(f"{FAIL} {check.title} {score}" + (f": {_plain(check.feedback)}" if check.feedback else ""))
    if result.flags:
        lines += ["", f"Flagged for review: {result.reason}"] + [f"  - {_plain(flag)}" for flag in result.flags]
    if result.changes:
        lines += ["", "Cells you changed or deleted that the grader does not use:"]
        lines += [f"  - {_plain(change)}" for change in result.changes]
    if result.notes:
        lines += ["", "What happened while your notebook ran:"] + [f"  - {_plain(note)}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "student"


def write_feedback(results: list[SubmissionResult], folder: Path) -> list[Path]:
    """One text file per student (all their labs), named after the student, in a new ``folder``
    that replaces the old one whole (what was there, a planted file or a symlink, is gone)."""
    folder = Path(folder)
    new = Path(tempfile.mkdtemp(prefix=".feedback-", dir=folder.parent))
    by_student: dict[str, list[SubmissionResult]] = {}
    for result in ordered(results):
        by_student.setdefault(result.student, []).append(result)
    written = []
    try:
        for student, items in by_student.items():
            name, number = f"{_file_name(student)}.txt", 1
            while (new / name).exists():  # "a b" and "a_b" make one file name
                number += 1
                name = f"{_file_name(student)}-{number}.txt"
            with open(new / name, "x", encoding="utf-8") as handle:  # a fresh folder: "x" never meets a link
                handle.write("\n".join(feedback_text(r) for r in items))
            written.append(folder / name)
        new.chmod(0o755)
        old = None
        if folder.is_symlink() or folder.exists():
            old = Path(tempfile.mkdtemp(prefix=".feedback-old-", dir=folder.parent))
            os.replace(folder, old / "feedback")  # renames a symlink itself, never its target
        os.replace(new, folder)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # rmtree does not follow symlinks
    return written
