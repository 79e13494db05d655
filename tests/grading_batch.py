"""One graded batch shared by the grading tests on real labs (``grading_batch`` in tests/conftest.py).

Each ``flowlab grade`` of a real lab runs a TensorFlow kernel per submission, minutes of CI; the
tests that grade real labs therefore share one ``grade`` call (``jobs=2``, the CI machine's cores)
over every submission they judge:

* ``solution``: lab 02's solution, which must score full marks;
* ``lab``: lab 02 as ``flowlab make-labs`` wrote it, which must score zero on its TODO checks;
* ``attack``: lab 02 with a cell that copies the solution's answers from disk and one that forges a
  verdict with a carriage return in a class name, which must score zero;
* ``("right", name)`` and ``("wrong", name)`` for every answers fixture ``tests/fixtures/answers/NAME.py``:
  its ``RIGHT`` and ``WRONG`` answers (cell id -> source) in place of the untouched lab's TODO cells.

The batch writes the reports as ``flowlab grade`` does (``report.json``), and watches only
``flowlab/grading`` for changes during the run (other work on the repository edits ``flowlab/checks``
while tests run).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"
ANSWERS = ROOT / "tests" / "fixtures" / "answers"
ATTACKED = "02_two_moons"  # the lab graded as solution, untouched lab and attack

# Runs every answer cell of the first solution notebook it can read (the grader's copy, or the
# repository's): in the sandbox it can read neither.
STEAL = """\
import json
for path in ({copy!r}, {repository!r}):
    try:
        with open(path) as handle:
            cells = json.load(handle)["cells"]
    except OSError:
        continue
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "BEGIN SOLUTION" in source:
            get_ipython().run_cell(source)
    break"""
# The check prints "✘ affine bijector ...: ... <class name>"; nbval's coalescing would keep only
# what follows the carriage return, "✔ affine bijector ...".
FORGE = "bijector = type(chr(13) + chr(10000 + 4) + ' affine bijector x = z * (1, 0.5) + (0.5, 0.25)', (), {})()"


def _limits():
    from flowlab.grading import Limits

    # Generous: these tests judge verdicts, not limits (tests/test_grading_limits.py does), and a
    # training cell of lab 02 took over 300 s on a machine shared by five jobs.
    return Limits(cell_timeout=900, wall_clock=1800)


def answer_fixtures() -> list[str]:
    """The names of the answers fixtures, ``tests/fixtures/answers/NAME.py``."""
    return sorted(p.stem for p in ANSWERS.glob("*.py") if not p.stem.startswith("_"))


def load_answers(name: str) -> ModuleType:
    """The answers fixture ``name`` (``RIGHT``, ``WRONG``, ``WRONG_HINTS``; optionally ``LAB``)."""
    spec = importlib.util.spec_from_file_location(f"answers_{name}", ANSWERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lab_of(name: str, module: ModuleType | None = None) -> str | None:
    """The lab an answers fixture answers: its ``LAB``, else the one solution whose id contains its name."""
    said = getattr(module or load_answers(name), "LAB", None)
    if said:
        return said
    found = [p.stem for p in sorted(SOLUTIONS.glob("*.ipynb")) if name in p.stem]
    return found[0] if len(found) == 1 else None


def _present(lab: str | None) -> bool:
    return lab is not None and (SOLUTIONS / f"{lab}.ipynb").exists() and (LABS / f"{lab}.ipynb").exists()


def write_answers(lab: str, answers: dict[str, str], path: Path) -> None:
    """The untouched lab with ``answers`` (cell id -> source) in place of its cells, as a student saves it."""
    notebook = nbformat.read(LABS / f"{lab}.ipynb", as_version=4)
    found = set()
    for cell in notebook.cells:
        if cell.get("id") in answers:
            cell.source = answers[cell["id"]].strip("\n")
            found.add(cell["id"])
    assert found == set(answers), f"answer cells missing from lab {lab}: {set(answers) - found}"
    nbformat.write(notebook, path)


def write_attack(path: Path, solution_copy: Path) -> None:
    notebook = nbformat.read(LABS / f"{ATTACKED}.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.get("id") == "base":
            cell.source = STEAL.format(copy=str(solution_copy), repository=str(SOLUTIONS / f"{ATTACKED}.ipynb"))
        elif cell.get("id") == "bijector":
            cell.source = FORGE
    nbformat.write(notebook, path)


@dataclass
class Batch:
    results: dict[Any, Any]  # key -> flowlab.grading.scoring.SubmissionResult
    reports: dict[Any, dict]  # key -> its entry in report.json
    missing: dict[Any, str]  # key -> why it was not graded (its lab is not written yet)

    def result(self, key):
        import pytest

        if key in self.missing:
            pytest.skip(self.missing[key])
        return self.results[key]

    def report(self, key) -> dict:
        self.result(key)
        return self.reports[key]


def grade_batch(tmp: Path) -> Batch:
    """Grade every submission above in one ``grade`` call; see the module docstring."""
    from flowlab.grading import Options, grade
    from flowlab.grading.report import write_reports

    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "grading"))
    import students

    solutions, submissions, out = tmp / "solutions", tmp / "in", tmp / "grades"
    solutions.mkdir()
    submissions.mkdir()
    paths: dict[Any, Path] = {}
    missing: dict[Any, str] = {}

    def use(lab: str) -> None:
        if not (solutions / f"{lab}.ipynb").exists():
            shutil.copy(SOLUTIONS / f"{lab}.ipynb", solutions / f"{lab}.ipynb")

    if _present(ATTACKED):
        use(ATTACKED)
        paths["solution"] = submissions / f"ada_{ATTACKED}.ipynb"
        paths["lab"] = submissions / f"bo_{ATTACKED}.ipynb"
        paths["attack"] = submissions / f"cy_{ATTACKED}.ipynb"
        shutil.copy(SOLUTIONS / f"{ATTACKED}.ipynb", paths["solution"])
        shutil.copy(LABS / f"{ATTACKED}.ipynb", paths["lab"])
        write_attack(paths["attack"], solutions / f"{ATTACKED}.ipynb")
    else:
        for key in ("solution", "lab", "attack"):
            missing[key] = f"lab {ATTACKED} is not written yet"
    for name in answer_fixtures():
        module = load_answers(name)
        lab = lab_of(name, module)
        for kind in ("right", "wrong"):
            key = (kind, name)
            if not _present(lab):
                missing[key] = f"the lab of tests/fixtures/answers/{name}.py ({lab}) is not written yet"
                continue
            use(lab)
            paths[key] = submissions / f"{kind}-{name}_{lab}.ipynb"
            write_answers(lab, getattr(module, kind.upper()), paths[key])

    results: dict[Any, Any] = {}
    reports: dict[Any, dict] = {}
    if paths:
        with students.watching(ROOT / "flowlab" / "grading"):
            graded, columns = grade(list(paths.values()), solutions=solutions,
                                    options=Options(_limits()), jobs=2, hide=[out])
        write_reports(graded, columns, out, {"fast": True})
        by_path = {Path(r.path): r for r in graded}
        written = {Path(s["path"]): s for s in json.loads((out / "report.json").read_text())["submissions"]}
        results = {key: by_path[path] for key, path in paths.items()}
        reports = {key: written[path] for key, path in paths.items()}
    return Batch(results, reports, missing)
