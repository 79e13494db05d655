"""The grader on a real lab, 02_two_moons (TensorFlow, model.fit, fast mode): the solution scores
full marks, the untouched lab, as ``flowlab make-labs`` wrote it, scores zero on its TODO checks, and
a lab that tries to copy the solution's answers from disk and to forge a verdict with a carriage
return in a class name scores zero too. Graded in the shared batch (``tests/grading_batch.py``)."""

from __future__ import annotations

import json

from grading_batch import ATTACKED, SOLUTIONS

from flowlab.grading.pipeline import Lab

SOLUTION = SOLUTIONS / f"{ATTACKED}.ipynb"


def test_the_solution_scores_full_marks(grading_batch):
    result = grading_batch.result("solution")
    assert result.status == "graded" and not result.flags and not result.changes, result
    assert all(c.passed for c in result.checks), [(c.title, c.feedback) for c in result.checks if not c.passed]
    assert result.total == result.max_points == sum(c.points for c in Lab.load(ATTACKED, SOLUTION).checks)


def test_the_untouched_lab_scores_zero_on_its_todo_checks(grading_batch):
    result = grading_batch.result("lab")
    assert result.status == "graded" and not result.flags and not result.changes
    assert result.total == 0 and len(result.checks) >= 5
    assert all(c.feedback for c in result.checks)  # every failed check tells the student something


def test_copying_the_solution_from_disk_or_forging_a_verdict_scores_nothing(grading_batch):
    result = grading_batch.result("attack")
    assert not any(c.passed for c in result.checks), [(c.title, c.passed) for c in result.checks]
    assert result.total == 0
    feedback = {c.title: c.feedback for c in result.checks}
    assert "\\r" in feedback["affine bijector x = z * (1, 0.5) + (0.5, 0.25)"]  # the \r made visible
    assert json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]  # the solution is still there, unharmed
