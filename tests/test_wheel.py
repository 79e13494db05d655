"""flowlab as a new user gets it: a wheel installed in a fresh virtual environment outside the
repository, and a lab run from an unrelated folder.

The fresh environment downloads nothing: it sees the pinned stack through a ``.pth`` file pointing at
this interpreter's site-packages (which does not process that folder's own ``.pth`` files, so the
repository's editable install of flowlab stays invisible) and gets flowlab from the wheel alone
(``pip install --no-deps --no-index``).  One cheap lab runs end to end there in fast mode; for every
lab, a static check that everything it imports from flowlab is in the wheel.  All four labs run from
the wheel in ``bench/wheel_labs.py`` (results in ``bench/wheel_labs.md``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from flowlab.grading.gradescope import build_wheel
from flowlab.labs import SETUP_ID
from flowlab.todo import CHECK_MARKER

ROOT = Path(__file__).resolve().parent.parent
CHEAP_LAB = "01_flows_1d"


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """A virtual environment in ``folder`` with flowlab from ``wheel`` and this stack; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    stack = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "the_stack.pth").write_text("\n".join(sorted(stack)) + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, env=clean_env())
    return python


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", **extra)  # a set-up cell that tried to install would fail loudly
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _modules_in(wheel: Path) -> set[str]:
    modules = set()
    for name in zipfile.ZipFile(wheel).namelist():
        if name.startswith("flowlab/") and name.endswith(".py"):
            module = name[:-3].replace("/", ".")
            modules.add(module.removesuffix(".__init__"))
    return modules


def _flowlab_imports(source: str) -> set[str]:
    """The flowlab modules a piece of code imports (a ``from m import x`` may import module ``m.x``)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    found = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "flowlab"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "flowlab":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}?" for a in node.names}  # "?": a submodule, if it is one
    return found


def _missing(imports: set[str], modules: set[str], tree: Path) -> list[str]:
    missing = []
    for name in imports:
        if name.endswith("?"):  # `from flowlab.x import y`: y must be in the wheel if it is a module here
            name = name[:-1]
            here = tree / Path(*name.split("."))
            if not (here.with_suffix(".py").exists() or (here / "__init__.py").exists()):
                continue
        if name not in modules:
            missing.append(name)
    return missing


def test_the_wheel_carries_every_file_of_the_package(wheel):
    """Modules and data files alike: what the labs and checks read at run time is in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    here = {str(p.relative_to(ROOT)) for p in (ROOT / "flowlab").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert here - names == set()


def test_everything_each_lab_and_the_package_import_from_flowlab_is_in_the_wheel(wheel):
    modules = _modules_in(wheel)
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    assert solutions
    for path in solutions:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert _missing(_flowlab_imports(code), modules, ROOT) == [], path.name
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("flowlab/") and name.endswith(".py"):
                source = archive.read(name).decode("utf-8")
                assert _missing(_flowlab_imports(source), modules, ROOT) == [], name


def test_a_new_user_runs_a_lab_from_the_wheel_in_an_unrelated_folder(wheel, tmp_path):
    python = fresh_environment(tmp_path / "venv", wheel)
    course = tmp_path / "my course"  # a space in the path, as on a student's laptop
    course.mkdir()
    notebook = nbformat.read(ROOT / "solutions" / f"{CHEAP_LAB}.ipynb", as_version=4)
    expected = {c.id: "".join(o.get("text", "") for o in c.outputs) for c in notebook.cells
                if c.cell_type == "code" and c.source.startswith(CHECK_MARKER)}
    probe = nbformat.v4.new_code_cell("import flowlab, sys\nprint(flowlab.__file__)\nprint(sys.executable)")
    probe.id = "where-from"
    notebook.cells.append(probe)
    nbformat.write(notebook, course / f"{CHEAP_LAB}.ipynb")
    env = clean_env(FLOWLAB_MNIST_DIR=str(ROOT.parent / "shared" / "data" / "mnist"))
    run = subprocess.run([str(python), "-m", "flowlab.cli", "execute", "--fast", f"{CHEAP_LAB}.ipynb"], cwd=course,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    executed = nbformat.read(course / f"{CHEAP_LAB}.ipynb", as_version=4)
    cells = {c.id: c for c in executed.cells}
    where, executable = "".join(o.get("text", "") for o in cells["where-from"].outputs).split()
    assert Path(where).is_relative_to(tmp_path / "venv") and Path(executable).parent == python.parent
    assert cells[SETUP_ID].outputs == [], "the set-up cell is silent where flowlab is installed"
    for cell_id, text in expected.items():
        assert "".join(o.get("text", "") for o in cells[cell_id].outputs) == text, cell_id
    stderr = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
    assert stderr == []


def test_the_set_up_cell_does_nothing_where_flowlab_is_installed(tmp_path):
    """It installs only where flowlab cannot be imported, never under the grader, and says nothing."""
    from flowlab.labs import course_config, setup_source

    source = setup_source(course_config(), ["mnist"])
    script = tmp_path / "setup_cell.py"
    script.write_text(source, encoding="utf-8")
    quiet = subprocess.run([sys.executable, str(script)], env=clean_env(), capture_output=True, text=True,
                           timeout=60)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    # Where flowlab is missing (python -I -S: no site-packages) it installs the requirement (here a
    # wheel that does not exist, so pip fails loudly)...
    from flowlab.labs import CourseConfig

    absent = setup_source(CourseConfig(requirement=str(tmp_path / "flowlab-9.9-py3-none-any.whl")), [])
    (tmp_path / "absent.py").write_text(absent, encoding="utf-8")
    missing = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "absent.py")], capture_output=True,
                             text=True, timeout=120, env=clean_env())
    assert missing.returncode != 0 and "flowlab-9.9" in missing.stderr
    # ...except under the grader.
    grader = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "absent.py")], capture_output=True,
                            text=True, timeout=60, env=clean_env(FLOWLAB_NO_INSTALL="1"))
    assert (grader.returncode, grader.stdout, grader.stderr) == (0, "", "")


def test_the_grader_runs_the_solutions_set_up_cell_never_a_students_edit():
    """The set-up cell is a locked cell: an edited copy (one that would install something) never runs."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "grading"))
    import students

    from flowlab.grading.assemble import assemble
    from flowlab.grading.roles import Role
    from flowlab.grading.runner import _environment
    from flowlab.labs import CourseConfig, make_lab, stamp

    solution = stamp(students.solution(), CourseConfig())
    lab = make_lab(solution)
    students.cell(lab, SETUP_ID).source = "import subprocess\nsubprocess.run(['pip', 'install', 'evil'])"
    assembly = assemble(solution, lab)
    ran = next(c for c, p in zip(assembly.notebook.cells, assembly.plan) if p.label == SETUP_ID)
    assert ran.source == students.cell(solution, SETUP_ID).source and "evil" not in nbformat.writes(assembly.notebook)
    assert [p.role for p in assembly.plan if p.label == SETUP_ID] == [Role.LOCKED]
    assert any(SETUP_ID in change and "was changed" in change for change in assembly.locked_changes)
    assert _environment(fast=True)["FLOWLAB_NO_INSTALL"] == "1"


def test_every_solution_is_stamped(root):
    """Each solution has its set-up cell and nbgrader's metadata as `flowlab stamp` writes them today."""
    from flowlab.cli import main

    assert main(["stamp", "--check", "--solutions", str(root / "solutions")]) == 0
