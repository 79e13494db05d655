"""The grader on a class of tiny-lab submissions: scores, feedback, bad files, reports, --jobs.

The tiny lab (tests/fixtures/grading) does not import TensorFlow, so a notebook grades in a few
seconds; ``test_grading_real_lab.py`` grades the two-moons lab.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import LAB, POINTS, WRONG  # noqa: E402

from flowlab import cli  # noqa: E402
from flowlab.grading import Limits, Options, grade  # noqa: E402
from flowlab.grading.assemble import assemble  # noqa: E402
from flowlab.grading.discover import lab_from_name, student_name  # noqa: E402
from flowlab.grading.roles import Role  # noqa: E402

TOTAL = sum(POINTS.values())


@pytest.fixture(scope="module", autouse=True)
def _watch_only_the_tiny_labs_checks():
    with students.watching(students.KERNEL_PATH):
        yield


@pytest.fixture(scope="module", autouse=True)
def _checks_importable():
    """The kernels import the tiny lab's checks from the fixtures folder."""
    with pytest.MonkeyPatch.context() as mp:
        path = [str(students.KERNEL_PATH), os.environ.get("PYTHONPATH")]
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
        yield


def make_class(folder: Path) -> dict[str, Path]:
    """Ten submissions: solved, untouched, one wrong answer each, old frontend, and three bad files."""
    paths = {
        "solution": students.write(folder, f"sol_{LAB}.ipynb", students.solution()),
        "untouched": students.write(folder, f"lab_{LAB}.ipynb", students.lab()),
        "wrong_square": students.write(folder, "ann.ipynb", students.student({"square": WRONG["square"]})),
        "wrong_mean": students.write(folder, "ben.ipynb", students.student({"mean": WRONG["mean"]})),
        "wrong_unit": students.write(folder / "cid", f"{LAB}.ipynb", students.student({"unit": WRONG["unit"]})),
        "no_ids": students.write(folder, "dee.ipynb", students.without_ids(students.student(
            {"mean": WRONG["mean"]}, extra_after={"square": "helper = 1  # a cell of my own"}))),
        "another_lab": students.write(folder, "eve.ipynb", _other_lab()),
    }
    (folder / "fay.ipynb").write_text("this is not JSON {", encoding="utf-8")
    (folder / "gus.ipynb").write_text(json.dumps({"cells": "nope", "hello": 1}), encoding="utf-8")
    (folder / "hal.ipynb").write_bytes(b"PK\x03\x04\x00\xff\xfe binary zip")
    paths.update(not_json=folder / "fay.ipynb", not_notebook=folder / "gus.ipynb", binary=folder / "hal.ipynb")
    return paths


def _other_lab() -> nbformat.NotebookNode:
    notebook = students.student()
    notebook.metadata["flowlab"] = {"lab": "01_flows_1d"}
    return notebook


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class graded once through the command line, with one job."""
    tmp = tmp_path_factory.mktemp("class")
    paths = make_class(tmp / "submissions")
    out = tmp / "out"
    status = cli.main(["grade", str(tmp / "submissions"), "--solutions", str(students.solutions_folder(tmp)),
                       "--out", str(out), "--jobs", "1", "--quiet", "--cell-timeout", "60", "--timeout", "120"])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_path = {Path(s["path"]).resolve(): s for s in report["submissions"]}
    results = {name: by_path[path.resolve()] for name, path in paths.items()}
    return {"status": status, "out": out, "results": results, "tmp": tmp}


def verdicts(result: dict) -> dict[str, bool]:
    return {c["title"]: c["passed"] for c in result["checks"]}


def test_grading_succeeds_and_writes_reports(graded):
    assert graded["status"] == 0
    out = graded["out"]
    assert (out / "report.json").is_file() and (out / "gradebook.csv").is_file()
    assert {p.name for p in (out / "feedback").iterdir()} >= {"sol.txt", "lab.txt", "ann.txt", "cid.txt", "fay.txt"}


def test_solution_scores_full_marks(graded):
    result = graded["results"]["solution"]
    assert result["status"] == "graded" and result["flags"] == [] and result["changes"] == []
    assert result["total"] == TOTAL == result["max_points"]
    assert {c["title"]: c["points"] for c in result["checks"]} == POINTS


def test_untouched_lab_scores_zero_without_crashing(graded):
    result = graded["results"]["untouched"]
    assert result["status"] == "graded"
    assert result["total"] == 0 and not any(verdicts(result).values())
    feedback = {c["title"]: c["feedback"] for c in result["checks"]}
    assert "placeholder" in feedback["square function"]  # the check's own ✘ hint
    assert "NameError" in feedback["unit vector along (3, 4)"]  # raise NotImplementedError left `unit` undefined


@pytest.mark.parametrize("variant, title", [
    ("wrong_square", "square function"), ("wrong_mean", "mean of the data"), ("wrong_unit", "unit vector along (3, 4)"),
])
def test_one_wrong_answer_fails_exactly_its_check_with_its_hint(graded, variant, title):
    result = graded["results"][variant]
    assert verdicts(result) == {t: t != title for t in POINTS}
    assert result["total"] == TOTAL - POINTS[title]
    hint = next(c["feedback"] for c in result["checks"] if c["title"] == title)
    expected = {"square function": "x * x", "mean of the data": "average of data",
                "unit vector along (3, 4)": "length 1"}[title]
    assert expected in hint


def test_cells_without_ids_are_matched_by_content_and_place(graded):
    result = graded["results"]["no_ids"]
    assert result["status"] == "graded" and result["changes"] == []
    assert verdicts(result) == {t: t != "mean of the data" for t in POINTS}


@pytest.mark.parametrize("variant, words", [
    ("not_json", "not valid JSON"), ("not_notebook", "not a notebook"), ("binary", "not UTF-8"),
    ("another_lab", "'01_flows_1d', which has no solution"),
])
def test_a_bad_file_gets_a_clear_reason_and_a_zero(graded, variant, words):
    result = graded["results"][variant]
    assert result["status"] == "invalid" and words in result["reason"]
    assert result["total"] == 0


def test_gradebook_has_a_row_per_student_a_column_per_check_and_a_total(graded):
    rows = list(csv.DictReader((graded["out"] / "gradebook.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["student", *POINTS, "total", "max", "status"]
    names = [r["student"] for r in rows]
    assert names == sorted(names) and len(names) == 10
    row = {r["student"]: r for r in rows}
    assert row["sol"]["total"] == "4" and row["sol"]["square function"] == "2"
    assert row["ann"]["square function"] == "0" and row["ann"]["total"] == "2"
    assert row["cid"]["total"] == "3"  # alice/02_lab.ipynb style: the folder names the student
    assert row["fay"]["total"] == "0" and row["fay"]["status"].startswith("invalid: not a notebook")


def test_feedback_file_reads_as_a_report_card(graded):
    text = (graded["out"] / "feedback" / "ben.txt").read_text(encoding="utf-8")
    assert "Score: 3 / 4 points" in text
    assert "✔ square function (2/2)" in text
    assert "✘ mean of the data (0/1): mean should be the average of data" in text


def test_two_jobs_give_the_same_gradebook_as_one(graded):
    tmp = graded["tmp"]
    out = tmp / "out2"
    status = cli.main(["grade", str(tmp / "submissions"), "--solutions", str(tmp / "solutions"), "--out", str(out),
                       "--jobs", "2", "--quiet", "--cell-timeout", "60", "--timeout", "120"])
    assert status == 0
    assert (out / "gradebook.csv").read_bytes() == (graded["out"] / "gradebook.csv").read_bytes()


def test_missing_solutions_folder_is_a_usage_error(tmp_path, capsys):
    notebook = students.write(tmp_path, "a.ipynb", students.lab())
    assert cli.main(["grade", str(notebook), "--solutions", str(tmp_path / "nope")]) == 2
    assert "no solutions folder" in capsys.readouterr().err


def test_a_broken_solution_is_the_graders_failure(tmp_path):
    folder = tmp_path / "solutions"
    folder.mkdir()
    broken = students.solution()
    students.cell(broken, "check-mean").outputs = []  # never executed: no expected verdict
    nbformat.write(broken, folder / f"{LAB}.ipynb")
    notebook = students.write(tmp_path / "in", "a.ipynb", students.student())
    [result], _ = grade([notebook], solutions=folder, options=Options(Limits(cell_timeout=30, wall_clock=60)))
    assert result.status == "error" and "no stored `✔ title` output" in result.reason


def test_assembly_takes_locked_cells_and_expected_outputs_from_the_solution():
    notebook = students.student({"mean": WRONG["mean"]})
    students.cell(notebook, "check-mean").source = 'print("✔ mean of the data")'
    students.with_output(notebook, "check-mean", "✘ mean of the data: whatever\n")
    students.cell(notebook, "setup").source += "\nprint('changed')"
    assembly = assemble(students.solution(), notebook)
    roles = [p.role for p in assembly.plan]
    assert roles == [Role.LOCKED, Role.ANSWER, Role.CHECK, Role.LOCKED, Role.ANSWER, Role.CHECK, Role.ANSWER,
                     Role.CHECK]
    check_mean = assembly.notebook.cells[5]
    assert check_mean.source == "# NBVAL_CHECK_OUTPUT\ncheck.mean_value(mean, data)"
    assert check_mean.outputs[0]["text"] == "✔ mean of the data\n" and check_mean.execution_count is not None
    assert assembly.notebook.cells[4].source == WRONG["mean"]
    assert len(assembly.locked_changes) == 2 and all("solution's version ran" in c for c in assembly.locked_changes)
    assert all(c.outputs == [] for i, c in enumerate(assembly.notebook.cells) if roles[i] != Role.CHECK)


def test_lab_is_found_by_file_name_when_metadata_is_missing(tmp_path):
    labs = ["01_flows_1d", "02_two_moons"]
    assert lab_from_name(Path("alice_02_two_moons.ipynb"), labs) == "02_two_moons"
    assert lab_from_name(Path("alice/02_two_moons.ipynb"), labs) == "02_two_moons"
    assert lab_from_name(Path("bob-lab02.ipynb"), labs) == "02_two_moons"
    assert lab_from_name(Path("carol.ipynb"), labs) is None
    assert student_name(Path("x/alice_02_two_moons.ipynb"), Path("x"), labs) == "alice"
    assert student_name(Path("x/bob/02_two_moons.ipynb"), Path("x"), labs) == "bob"


def test_a_student_checks_their_lab_before_submitting(tmp_path, capsys):
    notebook = students.write(tmp_path / "me", f"{LAB}.ipynb", students.student({"unit": WRONG["unit"]}))
    status = cli.main(["grade", str(notebook), "--solutions", str(students.solutions_folder(tmp_path)),
                       "--out", str(tmp_path / "grades"), "--cell-timeout", "60"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Score: 3 / 4 points" in out and "✘ unit vector along (3, 4) (0/1): unit should have length 1" in out
    assert (tmp_path / "grades" / "feedback" / "me.txt").read_text(encoding="utf-8") == out


def test_a_kernel_that_cannot_start_is_the_graders_failure(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ipykernel_launcher.py").write_text("raise SystemExit(3)\n", encoding="utf-8")  # shadows the kernel
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(broken), str(students.KERNEL_PATH)]))
    notebook = students.write(tmp_path / "in", f"{LAB}.ipynb", students.student())
    status = cli.main(["grade", str(notebook), "--solutions", str(students.solutions_folder(tmp_path)),
                       "--out", str(tmp_path / "grades"), "--quiet"])
    assert status == 1
    report = json.loads((tmp_path / "grades" / "report.json").read_text(encoding="utf-8"))
    assert report["submissions"][0]["status"] == "error"
    assert "kernel did not start" in report["submissions"][0]["reason"]
