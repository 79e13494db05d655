"""Tampering with grading: every route the issue lists ends with the wrong answer still failing.

Each submission below answers ``mean`` wrongly (``mean = 42.0``) and then tries a route around the
``mean of the data`` check.  Routes through the notebook file (an edited check cell or stored
output, a nulled execution count, a deleted marker) are closed by construction: checks and expected
outputs come from the solution, so the other answers still score.  Routes through code are flagged
by the static scan (the submission scores zero until reviewed) and, where the run itself can tell,
fail at run time too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import POINTS, WRONG  # noqa: E402

from flowlab.grading import Limits, Options, grade  # noqa: E402
from flowlab.grading.tamper import module_names, protected_names, scan  # noqa: E402

MEAN = "mean of the data"
WRONG_MEAN = {"mean": WRONG["mean"]}

SILENCE = "get_ipython().showtraceback = lambda *args, **kwargs: None"
SNEAKY_MEAN = '''\
class Sneaky:
    def __array__(self, *args, **kwargs):
        print("\\N{HEAVY CHECK MARK} mean of the data")
        raise SystemExit  # not an Exception: escapes the check, then the hidden traceback hides it
mean = Sneaky()'''
FAKE_MODULE = '''\
import sys, types
fake = types.ModuleType("tinylab_checks")
fake.square = fake.mean_value = fake.unit_vector = lambda *args: print("\\u2714 " + "passed")
sys.modules["tinylab_checks"] = fake'''
STDOUT_REWRITE = '''\
import sys
class Rewrite:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        return self.stream.write(text.replace(chr(0x2718), chr(0x2714)).split(":")[0] + "\\n" if chr(0x2718) in text else text)
    def flush(self):
        self.stream.flush()
sys.stdout = Rewrite(sys.stdout)'''  # noqa: E501 - a student's cell, as written
ALWAYS_EQUAL = '''\
class Yes:
    def __eq__(self, other):
        return True
mean = Yes()'''


def _variants():
    s = students
    no_marker = s.student(WRONG_MEAN)
    s.cell(no_marker, "check-mean").source = "check.mean_value(mean, data)"
    no_marker_no_ids = s.without_ids(no_marker)
    return {
        # Through the file: closed by construction (not flagged; the other answers keep their points).
        "edited_check": s.student(WRONG_MEAN, **{"check-mean": 'print("\u2714 mean of the data")'}),
        "edited_output": s.with_output(s.student(WRONG_MEAN), "check-mean",
                                       "\u2718 mean of the data: mean should be the average of data: data.mean()\n"),
        "null_count": s.with_output(s.student(WRONG_MEAN), "check-mean", None, execution_count=None),
        "no_marker": no_marker,
        "no_marker_no_ids": no_marker_no_ids,
        # Through code: flagged, and failing at run time wherever the run can tell.
        "silenced_tracebacks": s.student({"mean": SNEAKY_MEAN}, extra_after={"setup": SILENCE}),
        "patched_check": s.student(WRONG_MEAN, extra_after={
            "setup": 'check.mean_value = lambda *args: print("\u2714 mean of the data")'}),
        "patched_print": s.student(WRONG_MEAN, extra_after={
            "setup": "import builtins\nbuiltins.print = lambda *args, **kwargs: None"}),
        "rebound_print": s.student(WRONG_MEAN, extra_after={"setup": "print = lambda *args, **kwargs: None"}),
        "fake_module": s.student(WRONG_MEAN, extra_after={"": FAKE_MODULE}),
        "rewritten_stdout": s.student(WRONG_MEAN, extra_after={"setup": STDOUT_REWRITE}),
        "prints_verdict": s.student({"mean": 'mean = 42.0\nprint("\u2714 mean of the data")'}),
        "always_equal": s.student({"mean": ALWAYS_EQUAL}),
    }


CLOSED_BY_CONSTRUCTION = {"edited_check", "edited_output", "null_count", "no_marker", "no_marker_no_ids"}
FAIL_AT_RUN_TIME = CLOSED_BY_CONSTRUCTION | {"silenced_tracebacks", "patched_print", "rebound_print",
                                             "prints_verdict", "always_equal"}


@pytest.fixture(scope="module", autouse=True)
def _watch_only_the_tiny_labs_checks():
    with students.watching(students.KERNEL_PATH):
        yield


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tamper")
    variants = _variants()
    paths = {name: students.write(tmp / "in", f"{name}.ipynb", nb) for name, nb in variants.items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(students.KERNEL_PATH))
        graded, _ = grade(list(paths.values()), solutions=students.solutions_folder(tmp),
                          options=Options(Limits(cell_timeout=30, wall_clock=90), only_lab=students.LAB), jobs=2)
    by_path = {Path(r.path): r for r in graded}
    return {name: by_path[path] for name, path in paths.items()}


@pytest.mark.parametrize("route", sorted(_variants()))
def test_the_wrong_answer_still_fails(results, route):
    result = results[route]
    mean = next(c for c in result.checks if c.title == MEAN)
    assert mean.earned == 0
    if route in FAIL_AT_RUN_TIME:
        assert not mean.passed, "the run itself must catch this route"
    if route in CLOSED_BY_CONSTRUCTION:
        assert result.status == "graded" and not result.flags
        assert result.total == sum(POINTS.values()) - POINTS[MEAN]  # honest answers keep their points
    else:
        assert result.status == "flagged" and result.flags and result.total == 0


def test_changed_locked_cells_are_reported(results):
    assert any("check cell check-mean was changed" in c for c in results["edited_check"].changes)
    assert any("check cell check-mean was not found" in c for c in results["no_marker_no_ids"].changes)


@pytest.mark.parametrize("route, words", [
    ("silenced_tracebacks", "showtraceback"), ("patched_check", "check.mean_value"),
    ("patched_print", "builtins.print"), ("rebound_print", "`print`"), ("fake_module", "sys.modules"),
    ("rewritten_stdout", "sys.stdout"), ("prints_verdict", "pass mark (U+2714)"), ("always_equal", "__eq__"),
])
def test_flags_name_the_tampering(results, route, words):
    assert any(words in flag for flag in results[route].flags), results[route].flags


def _scan(source: str) -> list[str]:
    setup = ("import numpy as np\nimport tinylab_checks as check\nimport tensorflow_probability as tfp\n"
             "tfd = tfp.distributions")
    return [str(f) for f in scan([("answer", source)], modules=module_names([setup]),
                                 protected=protected_names(["# NBVAL_CHECK_OUTPUT\ncheck.square(square)"]))]


@pytest.mark.parametrize("source", [
    "def square(x):\n    return x * x",
    "import numpy as np\nmean = np.mean(data)\nprint('mean:', mean)",
    "model.trainable = False\nresults['a'] = 1\nclass A:\n    def __eq__(self, other):\n"
    "        return self.x == other.x",
    "%matplotlib inline\nx = [i ** 2 for i in range(3)]  # \u2714 in a comment is fine",
    "def f(:\n  broken syntax fails when it runs, it is not tampering",
])
def test_honest_code_is_not_flagged(source):
    assert _scan(source) == []


@pytest.mark.parametrize("source, words", [
    ("np.allclose = lambda *a, **k: True", "np.allclose"),
    ("tfd.Normal.log_prob = None", "tfd.Normal.log_prob"),
    ("setattr(check, 'square', print)", "setattr"),
    ("exec('check.square = print')", "exec"),
    ("check = None", "`check`"),
    ("from IPython.core.interactiveshell import InteractiveShell", "InteractiveShell"),
    ("del sys.modules['x']", "sys.modules"),
    ("x = chr(10004)", "pass mark"),
    ("__builtins__.print = None", "__builtins__"),
    ("f.__code__ = g.__code__", "__code__"),
])
def test_tampering_code_is_flagged(source, words):
    flags = _scan(source)
    assert any(words in f for f in flags), flags


@pytest.mark.parametrize("source, words", [
    ("c = check\nc.__dict__['square'] = print", "another name"),
    ("c = check\nc.__dict__['square'] = print", "__dict__"),
    ("f = check.square", "another name"),
    ("import importlib\nm = importlib.import_module('tinylab' + '_checks')", "importlib.import_module"),
    ("from importlib import import_module", "import_module"),
    ("check._core._print = None", "_print"),
    ("x = getattr(check, 'squ' + 'are')", "getattr"),
    ("text = open('/work/solutions/02_two_moons.ipynb').read()", "reads"),
    ("import os\nnames = os.listdir('/proc')", "/proc"),
])
def test_routes_around_the_checks_are_flagged(source, words):
    flags = _scan(source)
    assert any(words in f for f in flags), flags
