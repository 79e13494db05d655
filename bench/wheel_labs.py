"""Run every lab's solution from flowlab's wheel, as a new user would, and time it.

Builds the wheel, installs it (``--no-deps --no-index``) in a fresh virtual environment outside the
repository that sees this stack through a ``.pth`` file (nothing is downloaded), copies the solutions
to an unrelated folder and executes each there in fast mode (MNIST from ``FLOWLAB_MNIST_DIR``).  A lab
passes when it runs without an error, every check prints the verdict stored in the solution, the
set-up cell prints nothing, no cell writes to stderr, and the kernel imported flowlab from the wheel.

    nice -n 10 .venv/bin/python bench/wheel_labs.py [LAB ...]     # results: bench/wheel_labs.md
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_wheel import clean_env, fresh_environment  # noqa: E402

from flowlab.grading.gradescope import build_wheel  # noqa: E402
from flowlab.labs import SETUP_ID  # noqa: E402
from flowlab.todo import CHECK_MARKER  # noqa: E402


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def run_lab(python: Path, solution: Path, course: Path, venv: Path) -> tuple[bool, float, str]:
    notebook = nbformat.read(solution, as_version=4)
    expected = {c.id: _text(c) for c in notebook.cells if c.cell_type == "code" and c.source.startswith(CHECK_MARKER)}
    probe = nbformat.v4.new_code_cell("import flowlab\nprint(flowlab.__file__)")
    probe.id = "where-from"
    notebook.cells.append(probe)
    path = course / solution.name
    nbformat.write(notebook, path)
    env = clean_env(FLOWLAB_MNIST_DIR=str(ROOT.parent / "shared" / "data" / "mnist"))
    start = time.perf_counter()
    run = subprocess.run([str(python), "-m", "flowlab.cli", "execute", "--fast", path.name], cwd=course, env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        return False, seconds, run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"
    cells = {c.id: c for c in nbformat.read(path, as_version=4).cells}
    problems = [f"{i}: {_text(cells[i]).strip()!r}" for i, text in expected.items() if _text(cells[i]) != text]
    if cells[SETUP_ID].outputs:
        problems.append("the set-up cell printed")
    if any(o.get("name") == "stderr" for c in cells.values() for o in c.get("outputs", [])):
        problems.append("stderr in an output")
    if not Path(_text(cells["where-from"]).strip()).is_relative_to(venv):
        problems.append(f"flowlab came from {_text(cells['where-from']).strip()}")
    return not problems, seconds, "; ".join(problems) or "every check as stored in the solution"


def main(labs: list[str]) -> int:
    solutions = sorted(p for p in (ROOT / "solutions").glob("*.ipynb")
                       if not labs or any(lab in p.stem for lab in labs))
    with tempfile.TemporaryDirectory(prefix="flowlab-new-user-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        wheel = build_wheel(tmp / "wheel")
        python = fresh_environment(tmp / "venv", wheel)
        print(f"wheel {wheel.name} built and installed in {time.perf_counter() - start:.0f} s", flush=True)
        course = tmp / "course"
        course.mkdir()
        failed = 0
        print("| lab | result | fast-mode seconds | note |\n|---|---|---|---|", flush=True)
        for solution in solutions:
            ok, seconds, note = run_lab(python, solution, course, tmp / "venv")
            failed += not ok
            print(f"| {solution.stem} | {'pass' if ok else 'FAIL'} | {seconds:.0f} | {note} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
