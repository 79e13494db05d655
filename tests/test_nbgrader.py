"""nbgrader, unchanged, on a flowlab solution: ``flowlab stamp`` gives its cells nbgrader's metadata,
``nbgrader generate_assignment`` makes the student version, ``nbgrader autograde`` grades a correct and a
wrong submission, and the gradebook holds the check cells' points (a ✘ check raises under nbgrader).

The tiny lab (tests/fixtures/grading) stands in for a real one: same check machinery, no TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import LAB, POINTS, SOLVED, WRONG  # noqa: E402

from flowlab.labs import SETUP_ID, CourseConfig, stamp  # noqa: E402

nbgrader = pytest.importorskip("nbgrader")  # requirements.txt installs it; a bare install may not have it

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "flowlab"
c.CourseDirectory.root = {root!r}
c.Execute.timeout = 120  # seconds per cell; a real lab's training cell needs more (docs/instructors.md)
"""


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(students.KERNEL_PATH),
                                                                    os.environ.get("PYTHONPATH")])),
               # nbgrader runs `alembic` from PATH: the environment's bin folder, as when it is activated
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"], cwd=course, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (args, run.stdout[-2000:], run.stderr[-3000:])
    return run


def _answer(notebook, answers: dict[str, str]):
    for cell in notebook.cells:
        if cell.get("id") in answers:
            cell.source = answers[cell.id]
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("nbgrader")
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course)), encoding="utf-8")
    source = course / "source" / LAB
    source.mkdir(parents=True)
    nbformat.write(stamp(students.solution(), CourseConfig()), source / f"{LAB}.ipynb")
    _nbgrader(course, "generate_assignment", LAB, "--force")
    release = nbformat.read(course / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    for student, answers in {"alice": SOLVED, "bob": {**SOLVED, "mean": WRONG["mean"]}}.items():
        folder = course / "submitted" / student / LAB
        folder.mkdir(parents=True)
        nbformat.write(_answer(nbformat.from_dict(release), answers), folder / f"{LAB}.ipynb")
    _nbgrader(course, "autograde", LAB, "--force")
    return course


def test_generate_assignment_strips_the_solutions_and_keeps_the_checks(course):
    release = nbformat.read(course / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    text = nbformat.writes(release)
    assert "BEGIN SOLUTION" not in text and "x * x" not in text
    cells = {c.get("id"): c for c in release.cells}
    assert cells[SETUP_ID].metadata["nbgrader"]["locked"] and cells["check-mean"].metadata["nbgrader"]["grade"]
    assert cells["check-mean"].source == students.cell(students.solution(), "check-mean").source


def test_autograde_scores_the_checks_with_their_points(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        alice = gradebook.find_submission(LAB, "alice")
        bob = gradebook.find_submission(LAB, "bob")
        assert alice.max_score == sum(POINTS.values()) == alice.score
        assert bob.score == sum(POINTS.values()) - POINTS["mean of the data"]
        grades = {g.name: g.score for g in gradebook.find_submission_notebook(LAB, f"{LAB}", "bob").grades}
    assert grades == {"check-square": 2.0, "check-mean": 0.0, "check-unit": 1.0}
    autograded = nbformat.read(course / "autograded" / "bob" / LAB / f"{LAB}.ipynb", as_version=4)
    failed = students.cell(autograded, "check-mean")
    assert any(o.get("output_type") == "error" and o.get("ename") == "AssertionError" for o in failed.outputs)
    assert "✘ mean of the data: mean should be the average of data" in "".join(
        o.get("text", "") for o in failed.outputs)
