"""Generate the student labs from the solution notebooks.

A solution's answer code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers).  In the lab the block is replaced by its *stub* lines -- the lines inside it that start
with ``#| `` (the prefix removed) -- or, when it has none, by ``# YOUR CODE HERE`` and
``raise NotImplementedError()``.  Outputs and execution counts are cleared; cell ids and metadata
(points) are kept, so the grader can follow a cell from the solution to a student's copy.
See ``docs/notebooks.md``.

:func:`stamp` prepares a solution to run anywhere and to grade anywhere (``flowlab stamp``): a first
code cell that installs flowlab where it is missing (Colab, a bare JupyterHub) and fetches the data
the lab reads, and nbgrader's cell metadata (answer cells, locked cells, graded check cells with
their points).  It is deterministic and idempotent; the course's repository and the pinned
requirement come from ``[tool.flowlab]`` in ``pyproject.toml`` (:func:`course_config`).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from flowlab.notebook_format import BEGIN, END, STUB, declared_points, is_answer, is_check

__all__ = [
    "BEGIN",
    "END",
    "STUB",
    "LabSyntaxError",
    "strip_solution",
    "make_lab",
    "write_labs",
    "stale_labs",
    "SETUP_ID",
    "CourseConfig",
    "course_config",
    "colab_url",
    "lab_data",
    "setup_source",
    "stamp",
    "stamp_files",
]

NBFORMAT_MINOR = 5  # cell ids exist from nbformat 4.5 on


class LabSyntaxError(ValueError):
    """A solution notebook's solution markers are malformed."""


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every solution block in ``source`` by its stubs (see the module docstring)."""
    out: list[str] = []
    stubs: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if stubs is not None:
                raise LabSyntaxError(f"{where}, line {number}: {BEGIN} inside another solution block")
            stubs, indent = [], line[: len(line) - len(line.lstrip())]
        elif stripped == END:
            if stubs is None:
                raise LabSyntaxError(f"{where}, line {number}: {END} without {BEGIN}")
            out.extend(stubs or [indent + "# YOUR CODE HERE", indent + "raise NotImplementedError()"])
            stubs = None
        elif stubs is not None:
            body = line.lstrip()
            if body == STUB or body.startswith(STUB + " "):
                stubs.append(line[: len(line) - len(body)] + body[len(STUB) + 1 :])
        else:
            out.append(line)
    if stubs is not None:
        raise LabSyntaxError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_lab(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student lab for a solution notebook (the solution is not modified)."""
    lab = copy.deepcopy(solution)
    lab.nbformat, lab.nbformat_minor = 4, max(NBFORMAT_MINOR, lab.get("nbformat_minor", 0))
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source, where=f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # timings from the solution's run
    lab.metadata.pop("widgets", None)
    return lab


@dataclass(frozen=True)
class LabFile:
    solution: Path
    lab: Path
    text: str  # the lab as it should be on disk


def _expected_labs(solutions: Path, labs: Path) -> list[LabFile]:
    files = []
    for path in sorted(solutions.glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        lab = make_lab(solution, name=str(path))
        files.append(LabFile(path, labs / path.name, nbformat.writes(lab) + "\n"))
    return files


def write_labs(solutions: Path | str = "solutions", labs: Path | str = "labs") -> list[Path]:
    """Write ``labs/NAME.ipynb`` for every ``solutions/NAME.ipynb``; return the files written."""
    solutions, labs = Path(solutions), Path(labs)
    labs.mkdir(parents=True, exist_ok=True)
    written = []
    for item in _expected_labs(solutions, labs):
        if not item.lab.exists() or item.lab.read_text(encoding="utf-8") != item.text:
            item.lab.write_text(item.text, encoding="utf-8")
            written.append(item.lab)
    return written


def stale_labs(solutions: Path | str = "solutions", labs: Path | str = "labs") -> list[Path]:
    """The labs that are missing or differ from what :func:`write_labs` would write."""
    solutions, labs = Path(solutions), Path(labs)
    stale = [
        item.lab
        for item in _expected_labs(solutions, labs)
        if not item.lab.exists() or item.lab.read_text(encoding="utf-8") != item.text
    ]
    known = {p.name for p in solutions.glob("*.ipynb")}
    stale += [p for p in sorted(labs.glob("*.ipynb")) if p.name not in known]  # orphans
    return stale



# --- Running anywhere, grading anywhere: the set-up cell and nbgrader's metadata -------------------

SETUP_ID = "flowlab-setup"
NBGRADER_SCHEMA = 3  # nbgrader's cell-metadata schema version (nbgrader 0.6 and later)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPOSITORY = "https://github.com/flowlab-course/flowlab"


@dataclass(frozen=True)
class CourseConfig:
    """Where the course lives (``[tool.flowlab]`` in ``pyproject.toml``), set once by the instructor.

    ``repository``: the GitHub repository the "Open in Colab" links point to; ``branch``: the branch
    they open; ``requirement``: what the labs' set-up cell installs when flowlab is missing (a pip
    requirement: pin a tag or a version so every student gets the same checks)."""

    repository: str = DEFAULT_REPOSITORY
    branch: str = "main"
    requirement: str = ""

    @property
    def pip_requirement(self) -> str:
        from flowlab import __version__

        return self.requirement or f"flowlab @ git+{self.repository}@v{__version__}"


def course_config(pyproject: Path | str | None = None) -> CourseConfig:
    """The ``[tool.flowlab]`` table of ``pyproject`` (default: this checkout's), or the defaults."""
    path = Path(pyproject) if pyproject is not None else ROOT / "pyproject.toml"
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        return CourseConfig()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("flowlab", {})
    except FileNotFoundError:
        return CourseConfig()
    known = {k: str(v) for k, v in table.items() if k in CourseConfig.__dataclass_fields__}
    return CourseConfig(**known)


def colab_url(lab: str, config: CourseConfig | None = None, folder: str = "labs") -> str:
    """The "Open in Colab" link of ``labs/<lab>.ipynb`` in the course repository (GitHub)."""
    config = config or course_config()
    match = re.fullmatch(r"https?://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", config.repository)
    if not match:
        raise ValueError(f"[tool.flowlab] repository must be a GitHub URL (https://github.com/OWNER/NAME), "
                         f"got {config.repository!r}")
    return f"https://colab.research.google.com/github/{match.group(1)}/blob/{config.branch}/{folder}/{lab}.ipynb"


# What a lab's code reads -> the data the set-up cell fetches where flowlab had to be installed.
DATA_PATTERNS = {
    "mnist": re.compile(r"flowlab\.datasets\.mnist|\bload_mnist\w*\(|from flowlab\.datasets import .*\bmnist\b"),
}
FETCH = {"mnist": ["from flowlab.datasets.mnist import load_mnist_split",
                   "load_mnist_split(0, 0)  # downloads MNIST once (Keras caches it in ~/.keras/datasets)"]}


def lab_data(notebook: Any) -> list[str]:
    """The downloadable data sets a lab reads (``["mnist"]`` or ``[]``), from its code."""
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code" and c.get("id") != SETUP_ID)
    return [name for name, pattern in DATA_PATTERNS.items() if pattern.search(code)]


def setup_source(config: CourseConfig, data: list[str] = ()) -> str:
    """The set-up cell: a no-op where flowlab is installed; elsewhere it installs it and fetches data.

    It runs before ``import flowlab`` and selects Keras 2 itself, because installing can import
    TensorFlow; it never installs under a grader (``FLOWLAB_NO_INSTALL``, which ``flowlab grade``
    sets), and prints nothing unless it installs."""
    lines = [
        "# Set-up: where flowlab is missing (Colab, a fresh JupyterHub) this installs it and fetches the lab's",
        "# data, once; where it is installed it does nothing. Run it first and leave it as it is.",
        "import importlib.util, os, subprocess, sys",
        'os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Keras 2 for TensorFlow Probability, before TensorFlow loads',
        'if importlib.util.find_spec("flowlab") is None and not os.environ.get("FLOWLAB_NO_INSTALL"):',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",',
        f"                    {json.dumps(config.pip_requirement)}], check=True)",
        "    importlib.invalidate_caches()",
    ]
    lines += [f"    {line}" for name in data for line in FETCH.get(name, [])]
    return "\n".join(lines)


def _grade_id(cell: Any, index: int, used: set[str]) -> str:
    # nbgrader's grade ids: letters, digits, "-" and "_", unique within the notebook.
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", str(cell.get("id") or "")).strip("-") or f"cell-{index}"
    grade_id, number = base, 1
    while grade_id in used:
        number += 1
        grade_id = f"{base}-{number}"
    used.add(grade_id)
    return grade_id


def _nbgrader(cell: Any, grade_id: str) -> dict:
    meta = {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": NBGRADER_SCHEMA,
            "solution": False, "task": False}
    if cell.cell_type != "code":
        return meta
    source = cell.source
    if is_check(source):
        meta.update(grade=True, points=declared_points(cell.metadata))
    elif is_answer(source):
        meta.update(locked=False, solution=True)
    return meta


def stamp(solution: nbformat.NotebookNode, config: CourseConfig | None = None) -> nbformat.NotebookNode:
    """The solution with its set-up cell (inserted before the first code cell, or refreshed) and
    nbgrader's metadata on every cell; the rest (sources, outputs, ids) is untouched.  Idempotent."""
    config = config or course_config()
    notebook = copy.deepcopy(solution)
    notebook.nbformat, notebook.nbformat_minor = 4, max(NBFORMAT_MINOR, notebook.get("nbformat_minor", 0))
    source = setup_source(config, lab_data(notebook))
    existing = [c for c in notebook.cells if c.get("id") == SETUP_ID]
    if existing:
        existing[0].source = source
    else:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = SETUP_ID
        first_code = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"), len(notebook.cells))
        notebook.cells.insert(first_code, cell)
    used: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        cell.metadata["nbgrader"] = _nbgrader(cell, _grade_id(cell, index, used))
        if cell.get("id") == SETUP_ID:
            cell.metadata["tags"] = ["flowlab-setup"]
    return notebook


def stamp_files(paths: list[Path], config: CourseConfig | None = None, check: bool = False) -> list[Path]:
    """Stamp the solution notebooks ``paths`` in place; return those changed (with ``check``: those
    that would change, writing nothing)."""
    config = config or course_config()
    changed = []
    for path in map(Path, paths):
        text = path.read_text(encoding="utf-8")
        stamped = nbformat.writes(stamp(nbformat.reads(text, as_version=4), config)) + "\n"
        if stamped != text:
            changed.append(path)
            if not check:
                path.write_text(stamped, encoding="utf-8")
    return changed
