"""Lab 02 graded end to end by `flowlab grade`: right answers in other styles pass, wrong ones fail.

The answers (``tests/fixtures/answers/two_moons.py``) replace the untouched lab's TODO cells, as a
student's saved notebook would; the grader runs them in fast mode inside the solution's frame.
"""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "answers"))
import two_moons  # noqa: E402


def _submission(answers: dict[str, str], path: Path) -> None:
    lab = nbformat.read(ROOT / "labs" / "02_two_moons.ipynb", as_version=4)
    found = set()
    for cell in lab.cells:
        if cell.get("id") in answers:
            cell.source = answers[cell["id"]].strip("\n")
            found.add(cell["id"])
    assert found == set(answers), f"answer cells missing from the lab: {set(answers) - found}"
    nbformat.write(lab, path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    _submission(two_moons.RIGHT, folder / "right_02_two_moons.ipynb")
    _submission(two_moons.WRONG, folder / "wrong_02_two_moons.ipynb")
    out = tmp_path_factory.mktemp("grades")
    flowlab = Path(sys.executable).with_name("flowlab")  # the console script, as an instructor runs it
    done = subprocess.run([str(flowlab), "grade", str(folder), "--out", str(out),
                           "--jobs", "2", "--quiet"], capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return {s["student"]: s for s in json.loads((out / "report.json").read_text())["submissions"]}


def test_right_answers_written_differently_score_full_marks(report):
    right = report["right"]
    assert right["status"] == "graded", right
    assert [c["title"] for c in right["checks"] if not c["passed"]] == []
    assert right["total"] == right["max_points"]


def test_wrong_answers_fail_with_a_hint_that_names_the_idea(report):
    wrong = report["wrong"]
    assert wrong["status"] == "graded", wrong
    verdicts = {c["title"]: c for c in wrong["checks"]}
    for title, phrase in two_moons.WRONG_HINTS.items():
        assert not verdicts[title]["passed"], title
        assert phrase in verdicts[title]["feedback"], (title, verdicts[title]["feedback"])
    assert verdicts["base distribution"]["passed"] and verdicts["Keras model of the log-likelihood"]["passed"]
