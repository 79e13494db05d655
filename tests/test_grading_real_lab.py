"""The grader on a real lab, 02_two_moons (TensorFlow, model.fit, fast mode): the solution scores
full marks, the untouched lab, as ``flowlab make-labs`` wrote it, scores zero on its TODO checks, and
a lab that tries to copy the solution's answers from disk and to forge a verdict with a carriage
return in a class name scores zero too."""

from __future__ import annotations

import shutil
import json
import sys
from pathlib import Path

import nbformat
import pytest

from flowlab.grading import Limits, Options, grade
from flowlab.grading.pipeline import Lab

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "02_two_moons.ipynb"
LAB = ROOT / "labs" / "02_two_moons.ipynb"
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "grading"))

import students  # noqa: E402

# Runs every answer cell of the first solution notebook it can read (the grader's copy, or the
# repository's): in the sandbox it can read neither.
STEAL = """\
import json
for path in ({copy!r}, {repository!r}):
    try:
        with open(path) as handle:
            cells = json.load(handle)["cells"]
    except OSError:
        continue
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "BEGIN SOLUTION" in source:
            get_ipython().run_cell(source)
    break"""
# The check prints "✘ affine bijector ...: ... <class name>"; nbval's coalescing would keep only
# what follows the carriage return, "✔ affine bijector ...".
FORGE = "bijector = type(chr(13) + chr(10000 + 4) + ' affine bijector x = z * (1, 0.5) + (0.5, 0.25)', (), {})()"


def _attack(path: Path, solution_copy: Path) -> None:
    notebook = nbformat.read(LAB, as_version=4)
    for cell in notebook.cells:
        if cell.get("id") == "base":
            cell.source = STEAL.format(copy=str(solution_copy), repository=str(SOLUTION))
        elif cell.get("id") == "bijector":
            cell.source = FORGE
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not SOLUTION.exists() or not LAB.exists():
        pytest.skip("lab 02_two_moons is not written yet")
    tmp = tmp_path_factory.mktemp("two_moons")
    solutions = tmp / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions / SOLUTION.name)
    submitted = {"solution": tmp / "in" / "ada_02_two_moons.ipynb", "lab": tmp / "in" / "bo_02_two_moons.ipynb",
                 "attack": tmp / "in" / "cy_02_two_moons.ipynb"}
    submitted["solution"].parent.mkdir()
    shutil.copy(SOLUTION, submitted["solution"])
    shutil.copy(LAB, submitted["lab"])
    _attack(submitted["attack"], solutions / SOLUTION.name)
    # Watched for changes during each run: the grading code only this test's kernels could change
    # (other work on the repository edits flowlab/checks while tests run).
    with students.watching(ROOT / "flowlab" / "grading"):
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


def test_copying_the_solution_from_disk_or_forging_a_verdict_scores_nothing(results):
    result = results["attack"]
    assert not any(c.passed for c in result.checks), [(c.title, c.passed) for c in result.checks]
    assert result.total == 0
    feedback = {c.title: c.feedback for c in result.checks}
    assert "\\r" in feedback["affine bijector x = z * (1, 0.5) + (0.5, 0.25)"]  # the \r made visible
    assert json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]  # the solution is still there, unharmed
