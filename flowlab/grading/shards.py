"""Grade a class across machines: ``flowlab grade --shard K/N`` and ``flowlab gradebook merge``.

Shard ``K`` of ``N`` (``1 <= K <= N``) grades the students whose place in the sorted list of every
student name found is ``K - 1`` modulo ``N``: the shards are disjoint, together they are the whole
class, their sizes differ by at most one student, and all of a student's notebooks land on the same
shard (their gradebook row is built in one place).  Every shard must be given the same submissions
(one shared folder), which is what a SLURM job array or a Kubernetes indexed job sees.

Each shard writes its own ``report.json`` (which records the shard and the gradebook's columns);
``flowlab gradebook merge`` reads the N reports, checks that they are the N shards of one batch
graded with the same settings, and writes the ``report.json``, ``gradebook.csv`` and ``feedback/`` a
single run over the whole class writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flowlab.grading.report import REPORT_VERSION
from flowlab.grading.scoring import SubmissionResult

__all__ = ["Shard", "parse_shard", "select", "MergeError", "merge_reports"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` with ``1 <= K <= N``, else :class:`ValueError` saying what is expected."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard takes K/N (shard K of N, K from 1 to N, e.g. 2/8), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard {text}: K must be from 1 to N (N >= 1); a 0-based array index i is "
                         "shard $((i + 1))/N")
    return Shard(index, count)


def select(submissions: Iterable[T], shard: Shard | None) -> list[T]:
    """The submissions of ``shard`` (each has a ``.student``), in their given order; all when ``None``."""
    submissions = list(submissions)
    if shard is None:
        return submissions
    names = sorted({s.student for s in submissions})
    mine = {name for place, name in enumerate(names) if place % shard.count == shard.index - 1}
    return [s for s in submissions if s.student in mine]


class MergeError(ValueError):
    """The reports given are not the N shards of one grading batch."""


def _read(folder: Path) -> dict:
    path = folder / "report.json" if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{path}: no such report (give the --out folders of the shards)") from None
    except (OSError, ValueError) as err:
        raise MergeError(f"{path}: not a readable report.json ({err})") from None
    if not isinstance(data, dict) or data.get("flowlab_grade") != REPORT_VERSION or "submissions" not in data:
        raise MergeError(f"{path}: not a report.json written by `flowlab grade`")
    return {"path": path, **data}


def merge_reports(folders: list[Path]) -> tuple[list[SubmissionResult], dict[str, list[str]], dict]:
    """Read the shards' reports; return ``(results, columns, settings)`` of the whole batch.

    Refuses (:class:`MergeError`) a set that is not shards 1..N of one N, each once, graded with the
    same settings, with no student on two shards."""
    reports = [_read(Path(f)) for f in folders]
    if not reports:
        raise MergeError("no reports to merge")
    shards: dict[int, Path] = {}
    count = None
    for report in reports:
        said = (report.get("settings") or {}).get("shard")
        if said is None:
            raise MergeError(f"{report['path']}: not a shard's report (graded without --shard)")
        shard = parse_shard(said)
        if count is not None and shard.count != count:
            raise MergeError(f"{report['path']} is shard {shard}, but another report is one of {count} shards")
        count = shard.count
        if shard.index in shards:
            raise MergeError(f"shard {shard} is given twice: {shards[shard.index]} and {report['path']}")
        shards[shard.index] = report["path"]
    missing = [str(k) for k in range(1, count + 1) if k not in shards]
    if missing:
        raise MergeError(f"shard(s) {', '.join(missing)} of {count} are missing: their students would have no "
                         "row (grade them, or give their report folders)")

    def without_shard(report: dict) -> dict:
        return {k: v for k, v in (report.get("settings") or {}).items() if k != "shard"}

    settings = without_shard(reports[0])
    for report in reports[1:]:
        if without_shard(report) != settings:
            raise MergeError(f"{report['path']} was graded with other settings than {reports[0]['path']} "
                             f"({without_shard(report)} vs {settings}): grade every shard the same way")
    columns: dict[str, list[str]] = {}
    for report in reports:
        for lab, titles in (report.get("columns") or {}).items():
            if columns.setdefault(lab, titles) != titles:
                raise MergeError(f"{report['path']}: lab {lab} has other checks than in another shard's report "
                                 "(were the solutions changed between shards?)")
    results: list[SubmissionResult] = []
    owner: dict[str, Path] = {}
    for report in reports:
        for item in report["submissions"]:
            result = SubmissionResult.from_dict(item)
            if owner.setdefault(result.student, report["path"]) != report["path"]:
                raise MergeError(f"student {result.student!r} is in two shards ({owner[result.student]} and "
                                 f"{report['path']}): were the shards given different submissions?")
            results.append(result)
    return results, dict(sorted(columns.items())), settings
