"""The grader on a real lab, 02_two_moons (TensorFlow, model.fit, fast mode): the solution scores
full marks and the untouched lab, as ``flowlab make-labs`` wrote it, scores zero on its TODO checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowlab.grading import Limits, Options, grade
from flowlab.grading.pipeline import Lab

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "02_two_moons.ipynb"
LAB = ROOT / "labs" / "02_two_moons.ipynb"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not SOLUTION.exists() or not LAB.exists():
        pytest.skip("lab 02_two_moons is not written yet")
    tmp = tmp_path_factory.mktemp("two_moons")
    solutions = tmp / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions / SOLUTION.name)
    submitted = {"solution": tmp / "in" / "ada_02_two_moons.ipynb", "lab": tmp / "in" / "bo_02_two_moons.ipynb"}
    submitted["solution"].parent.mkdir()
    shutil.copy(SOLUTION, submitted["solution"])
    shutil.copy(LAB, submitted["lab"])
    graded, _ = grade(list(submitted.values()), solutions=solutions,
                      options=Options(Limits(cell_timeout=300, wall_clock=600)), jobs=2)
    by_path = {Path(r.path): r for r in graded}
    return {name: by_path[path] for name, path in submitted.items()}


def test_the_solution_scores_full_marks(results):
    result = results["solution"]
    assert result.status == "graded" and not result.flags and not result.changes, result
    assert all(c.passed for c in result.checks), [(c.title, c.feedback) for c in result.checks if not c.passed]
    assert result.total == result.max_points == sum(c.points for c in Lab.load("02_two_moons", SOLUTION).checks)


def test_the_untouched_lab_scores_zero_on_its_todo_checks(results):
    result = results["lab"]
    assert result.status == "graded" and not result.flags and not result.changes
    assert result.total == 0 and len(result.checks) >= 5
    assert all(c.feedback for c in result.checks)  # every failed check tells the student something
