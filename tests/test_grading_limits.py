"""Limits: an infinite loop, a run past the wall clock, a dead kernel and a memory bomb each cost
their submission its points, within the limit, and nothing else; stderr changes no score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import POINTS  # noqa: E402

from flowlab.grading import Limits, Options, grade  # noqa: E402

CELL_TIMEOUT, WALL_CLOCK, MEMORY_MB = 4.0, 14.0, 600.0
SLACK = 8.0  # kernel start, pytest start, polling

LOOP = "while True:\n    pass"
VARIANTS = {
    "loop": {"mean": LOOP},
    "wall_clock": {"square": "def square(x):\n    return x ** 2\n" + LOOP, "mean": LOOP, "unit": LOOP},
    "dead_kernel": {"mean": "import os\nos._exit(1)"},
    "memory_bomb": {"mean": "blocks = []\nwhile True:\n    blocks.append(b'x' * 2**25)"},
    "stderr": {"square": "import sys, warnings\ndef square(x):\n    print('W0000 tensorflow/core: a warning', file=sys.stderr)\n"
                         "    warnings.warn('a library warning')\n    return x ** 2"},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    paths = {name: students.write(tmp / "in", f"{name}.ipynb", students.student(answers))
             for name, answers in VARIANTS.items()}
    limits = Limits(cell_timeout=CELL_TIMEOUT, wall_clock=WALL_CLOCK, memory_mb=MEMORY_MB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(students.KERNEL_PATH))
        graded, _ = grade(list(paths.values()), solutions=students.solutions_folder(tmp),
                          options=Options(limits, only_lab=students.LAB), jobs=2)
    by_path = {Path(r.path): r for r in graded}
    return {name: by_path[path] for name, path in paths.items()}


def _verdicts(result):
    return {c.title: c.passed for c in result.checks}


def test_an_infinite_loop_costs_its_cell_within_the_cell_timeout(results):
    result = results["loop"]
    assert result.status == "graded"
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": True}
    assert result.seconds < CELL_TIMEOUT + SLACK
    assert any("Timeout" in note for note in result.notes)


def test_a_run_past_the_wall_clock_is_stopped_at_it(results):
    result = results["wall_clock"]
    assert WALL_CLOCK <= result.seconds < WALL_CLOCK + 2
    # square is defined before its cell loops; nothing after the limit scores
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": False}
    assert any("wall-clock limit" in note for note in result.notes)


def test_a_dead_kernel_ends_the_run_at_once(results):
    result = results["dead_kernel"]
    assert result.seconds < CELL_TIMEOUT + SLACK / 2  # not a cell timeout per remaining cell
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": False}
    assert result.total == POINTS["square function"]
    assert any("kernel died" in note for note in result.notes)


def test_a_memory_bomb_is_stopped_at_the_memory_limit(results):
    result = results["memory_bomb"]
    assert result.seconds < CELL_TIMEOUT + SLACK / 2
    assert any("memory limit" in note for note in result.notes)
    assert MEMORY_MB < result.peak_mb < 4 * MEMORY_MB
    assert result.total == POINTS["square function"]


def test_a_warning_on_stderr_changes_no_score(results):
    result = results["stderr"]
    assert result.status == "graded" and result.total == sum(POINTS.values())
