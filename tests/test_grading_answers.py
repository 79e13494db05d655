"""Real labs graded end to end by ``flowlab grade``: right answers in other styles pass, wrong ones fail.

Every answers fixture ``tests/fixtures/answers/NAME.py`` (``RIGHT``, ``WRONG``, ``WRONG_HINTS``) is
a test case: its answers replace the untouched lab's TODO cells, as a student's saved notebook
would, and the grader runs them in fast mode inside the solution's frame, in the batch shared with
``tests/test_grading_real_lab.py`` (``tests/grading_batch.py``).
"""

import pytest
from grading_batch import answer_fixtures, load_answers

# Checks that must pass for WRONG as well: its other answers are right, so each wrong answer is
# judged on its own rather than through a cascade (a fixture may say so itself, as WRONG_PASSES).
WRONG_PASSES = {"two_moons": ("base distribution", "Keras model of the log-likelihood")}


@pytest.mark.parametrize("name", answer_fixtures())
def test_right_answers_written_differently_score_full_marks(grading_batch, name):
    right = grading_batch.report(("right", name))
    assert right["status"] == "graded", right
    assert [c["title"] for c in right["checks"] if not c["passed"]] == []
    assert right["total"] == right["max_points"]


@pytest.mark.parametrize("name", answer_fixtures())
def test_wrong_answers_fail_with_a_hint_that_names_the_idea(grading_batch, name):
    answers = load_answers(name)
    wrong = grading_batch.report(("wrong", name))
    assert wrong["status"] == "graded", wrong
    verdicts = {c["title"]: c for c in wrong["checks"]}
    assert answers.WRONG_HINTS
    for title, phrase in answers.WRONG_HINTS.items():
        assert not verdicts[title]["passed"], title
        assert phrase in verdicts[title]["feedback"], (title, verdicts[title]["feedback"])
    for title in getattr(answers, "WRONG_PASSES", WRONG_PASSES.get(name, ())):
        assert verdicts[title]["passed"], title
