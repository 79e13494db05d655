"""Limits: an infinite loop, a run past the wall clock, a dead kernel, a memory bomb and a flood of
output each cost their submission its points, within the limit, and nothing else; stderr changes no
score."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import POINTS  # noqa: E402

from flowlab.grading import Limits, Options, grade  # noqa: E402

CELL_TIMEOUT, WALL_CLOCK, MEMORY_MB = 4.0, 25.0, 600.0
BATCH_WALL_CLOCK = 120.0  # for every variant but wall_clock, which runs alone with long cell timeouts


def _timeouts(result) -> int:
    """Cell timeouts the run waited for (said in the notes and the checks' feedback). Seconds are not
    compared: on a shared machine pytest's and the kernel's start vary more than the limits tested."""
    return sum("Timeout" in text for text in [*result.notes, *(c.feedback for c in result.checks)])


LOOP = "while True:\n    pass"
VARIANTS = {
    "loop": {"mean": LOOP},
    "wall_clock": {"mean": LOOP},  # graded alone, with cell timeouts longer than its wall clock
    "dead_kernel": {"mean": "import os\nos._exit(1)"},
    "memory_bomb": {"mean": "blocks = []\nwhile True:\n    blocks.append(b'x' * 2**27)"},  # over 600 MB within a second
    # 1.5 MB from one answer cell: the grader keeps 1 MB per cell; the checks are not affected.
    "chatty": {"square": "def square(x):\n    return x ** 2\nprint('x' * (3 * 2**19))"},
    # 12 MB in chunks: past the 10 MB per notebook the kernel is stopped.
    "flood": {"mean": "for _ in range(120):\n    print('y' * 100_000)\nmean = data.mean()"},
    "stderr": {"square": "import sys, warnings\ndef square(x):\n"
                         "    print('W0000 tensorflow/core: a warning', file=sys.stderr)\n"
                         "    warnings.warn('a library warning')\n    return x ** 2"},
}


@pytest.fixture(scope="module", autouse=True)
def _watch_only_the_tiny_labs_checks():
    with students.watching(students.KERNEL_PATH):
        yield


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    paths = {name: students.write(tmp / "in", f"{name}.ipynb", students.student(answers))
             for name, answers in VARIANTS.items()}
    limits = Limits(cell_timeout=CELL_TIMEOUT, wall_clock=BATCH_WALL_CLOCK, memory_mb=MEMORY_MB)
    # The wall-clock run: cells that never end and are never interrupted, so only the wall clock stops it.
    alone = Limits(cell_timeout=10 * WALL_CLOCK, wall_clock=WALL_CLOCK, memory_mb=MEMORY_MB)
    solutions = students.solutions_folder(tmp)
    batch = [p for name, p in paths.items() if name != "wall_clock"]
    with pytest.MonkeyPatch.context() as mp, ThreadPoolExecutor(2) as pool:
        mp.setenv("PYTHONPATH", str(students.KERNEL_PATH))
        clock = pool.submit(grade, [paths["wall_clock"]], solutions=solutions,
                            options=Options(alone, only_lab=students.LAB))
        graded, _ = grade(batch, solutions=solutions, options=Options(limits, only_lab=students.LAB), jobs=2)
        graded += clock.result()[0]
    by_path = {Path(r.path): r for r in graded}
    return {name: by_path[path] for name, path in paths.items()}


def _verdicts(result):
    return {c.title: c.passed for c in result.checks}


def test_an_infinite_loop_costs_its_cell_within_the_cell_timeout(results):
    result = results["loop"]
    assert result.status == "graded"
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": True}
    assert _timeouts(result) == 1  # the looping cell's, and no other
    assert any("Timeout" in note for note in result.notes)


def test_a_run_past_the_wall_clock_is_stopped_at_it(results):
    result = results["wall_clock"]
    assert WALL_CLOCK <= result.seconds < WALL_CLOCK + 5
    # square is answered before mean loops; nothing after the limit scores
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": False}
    assert any("wall-clock limit" in note for note in result.notes)


def test_a_dead_kernel_ends_the_run_at_once(results):
    result = results["dead_kernel"]
    assert _timeouts(result) == 0  # not a cell timeout per remaining cell
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": False}
    assert result.total == POINTS["square function"]
    assert any("kernel died" in note for note in result.notes)


def test_a_memory_bomb_is_stopped_at_the_memory_limit(results):
    result = results["memory_bomb"]
    assert _timeouts(result) == 0
    assert any("memory limit" in note for note in result.notes)
    assert MEMORY_MB < result.peak_mb < 4 * MEMORY_MB
    assert result.total == POINTS["square function"]


def test_a_warning_on_stderr_changes_no_score(results):
    result = results["stderr"]
    assert result.status == "graded" and result.total == sum(POINTS.values())


def test_a_cell_that_prints_too_much_loses_its_output_not_the_checks(results):
    result = results["chatty"]
    assert result.status == "graded" and result.total == sum(POINTS.values())
    assert any("printed more than the grader keeps" in note for note in result.notes), result.notes


def test_a_notebook_that_floods_its_output_is_stopped_at_the_output_limit(results):
    result = results["flood"]
    assert _verdicts(result) == {"square function": True, "mean of the data": False, "unit vector along (3, 4)": False}
    assert any("output limit" in note and "10 MB" in note for note in result.notes), result.notes
    assert result.peak_mb < MEMORY_MB  # pytest did not buffer the flood
