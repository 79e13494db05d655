"""A class graded in shards (``flowlab grade --shard K/N``) and merged (``flowlab gradebook merge``)
gives the same reports as one run over the whole class.

Grading one notebook is replaced by a deterministic stand-in (the real grader is tested elsewhere),
so these tests cost a second: what is tested here is which submissions each shard grades and how the
shards' reports are joined."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import LAB  # noqa: E402

from flowlab import cli  # noqa: E402
from flowlab.grading import pipeline  # noqa: E402
from flowlab.grading.discover import Submission  # noqa: E402
from flowlab.grading.scoring import CheckResult, SubmissionResult  # noqa: E402
from flowlab.grading.shards import MergeError, Shard, merge_reports, parse_shard, select  # noqa: E402


def _fake_grade(sub, solutions, options):
    """Each check passes or fails by a hash of the file and the check, like a real class would."""
    lab = solutions.get(LAB)
    checks = []
    for check in lab.checks:
        passed = hashlib.sha256(f"{sub.path.name}/{check.title}".encode()).digest()[0] % 2 == 0
        checks.append(CheckResult(check.title, check.points, passed, check.points if passed else 0.0,
                                  "" if passed else f"wrong {check.title}"))
    status = "invalid" if sub.path.name.startswith("bad") else "graded"
    return SubmissionResult(str(sub.path), sub.student, LAB, status, "not JSON" if status == "invalid" else "",
                            checks=checks, seconds=1.0, peak_mb=10.0)


@pytest.fixture
def klass(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "grade_submission", _fake_grade)
    folder = tmp_path / "submissions"
    notebook = students.lab()
    names = [f"s{k:02d}_{LAB}.ipynb" for k in range(11)] + ["bad_x.ipynb"]
    for name in names:
        students.write(folder, name, notebook)
    # One student with two notebooks of one lab: two rows, on the same shard.
    students.write(folder / "zoe", "first.ipynb", notebook)
    students.write(folder / "zoe", "second.ipynb", notebook)
    return {"submissions": folder, "solutions": students.solutions_folder(tmp_path), "tmp": tmp_path}


def _grade(klass, out: Path, *extra: str) -> int:
    return cli.main(["grade", str(klass["submissions"]), "--solutions", str(klass["solutions"]), "--out", str(out),
                     "--sandbox", "none", "--quiet", "--jobs", "2", *extra])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("count", [3, 16])  # 16 > 14 notebooks: some shards are empty
def test_shards_merged_equal_one_run(klass, count, capsys):
    tmp = klass["tmp"]
    assert _grade(klass, tmp / "whole") == 0
    shards = [tmp / f"shard{k}" for k in range(1, count + 1)]
    for k, out in enumerate(shards, start=1):
        assert _grade(klass, out, "--shard", f"{k}/{count}") == 0
    graded = [len(json.loads((out / "report.json").read_text())["submissions"]) for out in shards]
    assert sum(graded) == 14 and max(graded) - min(graded) <= 2  # balanced by student (zoe has two)
    assert cli.main(["gradebook", "merge", *map(str, reversed(shards)), "--out", str(tmp / "merged")]) == 0
    assert _tree(tmp / "merged") == _tree(tmp / "whole")  # report.json, gradebook.csv, every feedback card


def test_a_shard_is_deterministic_disjoint_and_keeps_a_students_notebooks_together():
    subs = [Submission(Path(f"{name}/{k}.ipynb"), name) for name in "dacb" * 2 for k in range(2)]
    parts = [select(subs, Shard(k, 3)) for k in (1, 2, 3)]
    assert sorted(map(id, sum(parts, []))) == sorted(map(id, subs))
    assert [{s.student for s in part} for part in parts] == [{"a", "d"}, {"b"}, {"c"}]
    assert select(list(reversed(subs)), Shard(2, 3)) == list(reversed(parts[1]))  # the order found does not matter
    assert select(subs, None) == subs


@pytest.mark.parametrize("text, words", [("0/4", "from 1 to N"), ("5/4", "from 1 to N"), ("2of4", "K/N"),
                                         ("1/0", "from 1 to N")])
def test_a_bad_shard_is_a_usage_error(klass, text, words, capsys):
    assert _grade(klass, klass["tmp"] / "out", "--shard", text) == 2
    assert words in capsys.readouterr().err
    assert parse_shard(" 2 / 4 ") == Shard(2, 4)


def test_merge_refuses_what_is_not_one_batch_of_n_shards(klass):
    tmp = klass["tmp"]
    for k in (1, 2, 3):
        assert _grade(klass, tmp / f"s{k}", "--shard", f"{k}/3") == 0
    assert _grade(klass, tmp / "full", "--shard", "1/3", "--full") == 0
    assert _grade(klass, tmp / "whole") == 0
    with pytest.raises(MergeError, match="shard.s. 3 of 3 are missing"):
        merge_reports([tmp / "s1", tmp / "s2"])
    with pytest.raises(MergeError, match="given twice"):
        merge_reports([tmp / "s1", tmp / "s2", tmp / "s3", tmp / "s1"])
    with pytest.raises(MergeError, match="other settings"):
        merge_reports([tmp / "s2", tmp / "s3", tmp / "full"])
    with pytest.raises(MergeError, match="graded without --shard"):
        merge_reports([tmp / "whole"])
    with pytest.raises(MergeError, match="no such report"):
        merge_reports([tmp / "nowhere"])
    assert cli.main(["gradebook", "merge", str(tmp / "s1"), "--out", str(tmp / "m")]) == 2
