"""Benchmark the grader: one lab graded vs a plain ``pytest --nbval-lax`` run, and throughput.

Run from the repository root (fast mode, as the grader and CI run notebooks):

    .venv/bin/python bench/grading.py --repeats 5 --class-size 4

* **one lab**: the median wall time of grading ``solutions/02_two_moons.ipynb`` as a submission
  (:func:`flowlab.grading.grade`: validation, assembly, the tamper scan, the sandboxed nbval run,
  scoring) against the median of ``pytest --nbval-lax solutions/02_two_moons.ipynb`` in a
  subprocess with ``FLOWLAB_FAST=1`` (the CI command), alternating the two so that load from other
  jobs on the machine falls on both.  Both start pytest and a fresh kernel; the grader's own
  one-off start (``import flowlab`` loads TensorFlow, once per batch) is reported apart.
* **throughput**: notebooks graded per minute for a class of ``--class-size`` copies of the solution
  (every cell runs, training included: the slowest honest submission) with 1 and 2 jobs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "02_two_moons.ipynb"


def plain_nbval() -> float:
    env = dict(os.environ, FLOWLAB_FAST="1", TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SOLUTION)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench: plain nbval run failed:\n{done.stdout[-2000:]}")
    return seconds


def graded(paths: list[Path], solutions: Path, jobs: int) -> float:
    from flowlab.grading import Options, grade

    start = time.perf_counter()
    results, _ = grade(paths, solutions=solutions, options=Options(), jobs=jobs)
    seconds = time.perf_counter() - start
    bad = [r for r in results if r.total != r.max_points]
    if bad:
        raise SystemExit(f"bench: the solution did not score full marks: {bad[0]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--class-size", type=int, default=4)
    args = parser.parse_args()

    start = time.perf_counter()
    import flowlab.grading  # noqa: F401 - TensorFlow loads here, once per `flowlab grade`
    import_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        solutions = Path(tmp) / "solutions"
        solutions.mkdir()
        shutil.copy(SOLUTION, solutions / SOLUTION.name)
        submissions = Path(tmp) / "class"
        submissions.mkdir()
        copies = [submissions / f"student{k:02d}_02_two_moons.ipynb" for k in range(args.class_size)]
        for path in copies:
            shutil.copy(SOLUTION, path)

        plain, grader = [], []
        for _ in range(args.repeats):
            plain.append(plain_nbval())
            grader.append(graded(copies[:1], solutions, jobs=1))
        per_minute = {jobs: 60 * len(copies) / graded(copies, solutions, jobs=jobs) for jobs in (1, 2)}

    median_plain, median_grader = statistics.median(plain), statistics.median(grader)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"plain pytest --nbval-lax, s: {', '.join(f'{s:.1f}' for s in plain)}  median {median_plain:.1f}")
    print(f"flowlab grade (one lab), s: {', '.join(f'{s:.1f}' for s in grader)}  median {median_grader:.1f}")
    print(f"ratio grade / plain (medians): {median_grader / median_plain:.2f}")
    print(f"grader start (import flowlab, once per batch): {import_seconds:.1f} s")
    for jobs, rate in per_minute.items():
        print(f"throughput, {len(copies)} solutions, --jobs {jobs}: {rate:.1f} notebooks/minute")


if __name__ == "__main__":
    main()
