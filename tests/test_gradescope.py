"""Gradescope: ``results.json`` in the format Gradescope documents, and the autograder zip, whose
``run_autograder`` is run end to end in a folder laid out like Gradescope's ``/autograder``.

The format (https://gradescope-autograders.readthedocs.io/en/latest/specs/) is written down below as a
JSON schema: a top-level ``score`` (or a score on every test), ``tests`` with ``name``, ``score``,
``max_score``, ``status``, ``output`` and ``visibility``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import LAB, POINTS, WRONG  # noqa: E402

from flowlab.grading.gradescope import build_autograder, results_json  # noqa: E402
from flowlab.grading.scoring import CheckResult, SubmissionResult  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
TEST = {
    "type": "object",
    "properties": {
        "score": {"type": "number"}, "max_score": {"type": "number"}, "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"}, "name_format": FORMAT, "number": {"type": "string"}, "output": {"type": "string"},
        "output_format": FORMAT, "tags": {"type": "array", "items": {"type": "string"}}, "visibility": VISIBILITY,
        "extra_data": {"type": "object"},
    },
    "additionalProperties": False,
}
GRADESCOPE_RESULTS = {
    "type": "object",
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number"}, "output": {"type": "string"},
        "output_format": FORMAT, "test_output_format": FORMAT, "test_name_format": FORMAT, "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"}, "tests": {"type": "array", "items": TEST},
        "leaderboard": {"type": "array"},
    },
    "additionalProperties": False,
    # The score is optional at the top "but required if not on each test case".
    "anyOf": [{"required": ["score"]}, {"properties": {"tests": {"items": {"required": ["score"]}}}}],
}


def _valid(data: dict) -> dict:
    jsonschema.validate(data, GRADESCOPE_RESULTS)
    assert sum(t["score"] for t in data["tests"]) == data["score"]
    return data


@pytest.fixture(scope="module", autouse=True)
def _tiny_lab_kernels():
    with students.watching(students.KERNEL_PATH), pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(students.KERNEL_PATH),
                                                              os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """Gradescope's layout: the zip unpacked in source/, run_autograder beside it, one submission."""
    tmp = tmp_path_factory.mktemp("gradescope")
    zip_path = tmp / "autograder.zip"
    names = build_autograder(LAB, zip_path, solutions=students.solutions_folder(tmp), requirement="flowlab==0.1.0",
                             visibility="after_published")
    root = tmp / "autograder"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root / "source")
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "run_autograder").chmod(0o755)
    students.write(root / "submission", "my_lab.ipynb", students.student({"mean": WRONG["mean"]}))
    env = dict(os.environ, FLOWLAB_AUTOGRADER_ROOT=str(root), FLOWLAB_AUTOGRADER_PYTHON=sys.executable)
    run = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    return {"root": root, "names": names, "modes": modes, "run": run, "env": env}


def test_the_zip_holds_setup_and_run_autograder_at_its_root(autograder):
    names = autograder["names"]
    assert {"setup.sh", "run_autograder", "requirements.txt", f"solutions/{LAB}.ipynb"} <= set(names)
    assert all(autograder["modes"][n] & stat.S_IXUSR for n in ("setup.sh", "run_autograder"))
    setup = (autograder["root"] / "source" / "setup.sh").read_text()
    assert "pip install --quiet -r requirements.txt" in setup and "flowlab==0.1.0" in setup
    assert "tensorflow==" in (autograder["root"] / "source" / "requirements.txt").read_text()  # the pinned stack


def test_run_autograder_grades_the_submission_into_results_json(autograder):
    run = autograder["run"]
    assert run.returncode == 0, run.stderr[-2000:]
    data = _valid(json.loads((autograder["root"] / "results" / "results.json").read_text(encoding="utf-8")))
    tests = {t["name"]: t for t in data["tests"]}
    assert list(tests) == list(POINTS) and data["score"] == sum(POINTS.values()) - POINTS["mean of the data"]
    assert {n: t["max_score"] for n, t in tests.items()} == POINTS
    wrong = tests["mean of the data"]
    assert wrong["status"] == "failed" and wrong["score"] == 0
    assert wrong["output"].startswith("✘ mean of the data: ") and "average of data" in wrong["output"]
    assert tests["square function"] == {"name": "square function", "score": 2.0, "max_score": 2.0, "status": "passed",
                                        "output": "✔ square function", "output_format": "text",
                                        "visibility": "after_published"}
    assert "Score: 3 / 4 points" in data["output"] and data["visibility"] == "after_published"


def test_an_upload_without_a_notebook_gets_a_reason_not_a_crash(autograder, tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("oops")
    (root / "source").symlink_to(autograder["root"] / "source")
    env = dict(autograder["env"], FLOWLAB_AUTOGRADER_ROOT=str(root))
    run = subprocess.run(["bash", str(autograder["root"] / "run_autograder")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0
    data = _valid(json.loads((root / "results" / "results.json").read_text(encoding="utf-8")))
    assert data["score"] == 0 and "no notebook" in data["output"]


def _result(status="graded", flags=(), passed=(True, False)) -> SubmissionResult:
    checks = [CheckResult("a", 2.0, passed[0], 2.0 if passed[0] and not flags else 0.0, "", counted=not flags),
              CheckResult("b", 1.0, passed[1], 0.0, "b should be 3\x1b[2K")]
    return SubmissionResult("s.ipynb", "s", LAB, status, checks=checks, flags=list(flags), seconds=12.4)


def test_results_json_says_what_happened_in_the_documented_format():
    plain = _valid(results_json([_result()]))
    assert plain["score"] == 2.0 and plain["execution_time"] == 12
    assert plain["tests"][1]["output"] == "✘ b: b should be 3\\x1b[2K"  # control characters shown, not obeyed
    flagged = _valid(results_json([_result("flagged", flags=["cell 3, line 1: replaces print"])], "hidden"))
    assert flagged["score"] == 0 and flagged["tests"][0]["status"] == "failed"
    assert flagged["tests"][0]["output"].startswith("⚑ a: not counted") and flagged["visibility"] == "hidden"
    two = _valid(results_json([_result(), _result()], lab=LAB))
    assert two["score"] == 0 and "exactly one notebook" in two["output"]
    with pytest.raises(ValueError, match="visibility"):
        results_json([_result()], "public")


def test_a_lab_that_reads_mnist_carries_its_data(tmp_path):
    names = build_autograder("04_mnist", tmp_path / "a.zip", solutions=ROOT / "solutions", requirement="flowlab")
    assert "data/mnist/t10k-images-idx3-ubyte.gz" in names and "solutions/04_mnist_realnvp.ipynb" in names


def test_the_same_inputs_make_the_same_zip(tmp_path):
    solutions = students.solutions_folder(tmp_path)
    for name in ("a.zip", "b.zip"):
        build_autograder(LAB, tmp_path / name, solutions=solutions, requirement="flowlab")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
