"""Benchmark the grader: one lab graded vs a plain ``pytest --nbval-lax`` run, and throughput.

Run from the repository root (fast mode, as the grader and CI run notebooks):

    .venv/bin/python bench/grading.py --repeats 5 --class-size 4

* **one lab**: the median wall time of grading ``solutions/02_two_moons.ipynb`` as a submission
  (:func:`flowlab.grading.grade`: validation, assembly, the tamper scan, the nbval run with its
  kernel in the bubblewrap sandbox, the checks after the run, scoring) against the median of
  ``pytest --nbval-lax solutions/02_two_moons.ipynb`` in a subprocess with ``FLOWLAB_FAST=1`` (the
  CI command), and of the grader with ``--sandbox none``, interleaved so that load from other jobs on
  the machine falls on all three.  All start pytest and a fresh kernel; the grader's own one-off
  start (importing the grading code, once per batch; it never imports TensorFlow) is reported apart.
* **throughput**: notebooks graded per minute for a class of ``--class-size`` copies of the solution
  (every cell runs, training included: the slowest honest submission) with 1 and 2 jobs, sandboxed.
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
SCORES: set = set()  # (runner, outcome) of every run: one entry per runner when the runs agree


def plain_nbval() -> float:
    env = dict(os.environ, FLOWLAB_FAST="1", TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SOLUTION)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: a cell's output differed; every cell still ran
        raise SystemExit(f"bench: plain nbval run failed:\n{done.stdout[-2000:]}")
    SCORES.add(("plain nbval", done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""))
    return seconds


def graded(paths: list[Path], solutions: Path, jobs: int, sandbox) -> float:
    from flowlab.grading import Options, grade

    start = time.perf_counter()
    results, _ = grade(paths, solutions=solutions, options=Options(sandbox=sandbox), jobs=jobs)
    seconds = time.perf_counter() - start
    for r in results:
        if r.status != "graded":
            raise SystemExit(f"bench: the solution was not graded: {r.status}: {r.reason}")
        failed = ", ".join(c.title for c in r.checks if not c.passed)
        SCORES.add(("flowlab grade", f"{r.total:g} / {r.max_points:g}" + (f" (failed: {failed})" if failed else "")))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--class-size", type=int, default=4)
    args = parser.parse_args()

    start = time.perf_counter()
    import flowlab.grading  # noqa: F401 - once per `flowlab grade` (nbformat, not TensorFlow)
    from flowlab.grading import integrity
    from flowlab.grading.sandbox import probe

    import_seconds = time.perf_counter() - start
    # The grader flags a run during which its code on disk changed; on a machine where others edit
    # flowlab/checks meanwhile, watch the package's grading code only (hashing it costs milliseconds).
    package = Path(integrity.__file__).parent
    integrity.watched_folders = lambda env=None: [package]
    sandbox, unsandboxed = probe("bwrap"), probe("none")

    with tempfile.TemporaryDirectory() as tmp:
        solutions = Path(tmp) / "solutions"
        solutions.mkdir()
        shutil.copy(SOLUTION, solutions / SOLUTION.name)
        submissions = Path(tmp) / "class"
        submissions.mkdir()
        copies = [submissions / f"student{k:02d}_02_two_moons.ipynb" for k in range(args.class_size)]
        for path in copies:
            shutil.copy(SOLUTION, path)

        plain, grader, bare = [], [], []
        for _ in range(args.repeats):
            plain.append(plain_nbval())
            grader.append(graded(copies[:1], solutions, jobs=1, sandbox=sandbox))
            bare.append(graded(copies[:1], solutions, jobs=1, sandbox=unsandboxed))
        per_minute = {jobs: 60 * len(copies) / graded(copies, solutions, jobs=jobs, sandbox=sandbox)
                      for jobs in (1, 2)}

    median_plain, median_grader, median_bare = map(statistics.median, (plain, grader, bare))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"plain pytest --nbval-lax, s: {', '.join(f'{s:.1f}' for s in plain)}  median {median_plain:.1f}")
    print(f"flowlab grade, sandboxed, s: {', '.join(f'{s:.1f}' for s in grader)}  median {median_grader:.1f}")
    print(f"flowlab grade --sandbox none, s: {', '.join(f'{s:.1f}' for s in bare)}  median {median_bare:.1f}")
    print(f"ratio grade (sandboxed) / plain (medians): {median_grader / median_plain:.2f}")
    print(f"ratio sandboxed / --sandbox none (medians): {median_grader / median_bare:.2f}")
    print(f"grader start (import of the grading code, once per batch): {import_seconds:.1f} s")
    for who, said in sorted(SCORES):
        print(f"the solution under {who}: {said}")
    for jobs, rate in per_minute.items():
        print(f"throughput, {len(copies)} solutions, --jobs {jobs}: {rate:.1f} notebooks/minute")


if __name__ == "__main__":
    main()
