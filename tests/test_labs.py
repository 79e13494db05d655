"""Labs are generated from the solutions: markers, stubs, clean outputs, and always in sync."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from flowlab.cli import main
from flowlab.labs import LabSyntaxError, make_lab, stale_labs, strip_solution, write_labs

SOLUTION = """\
def f(x):
    ### BEGIN SOLUTION
    y = 2 * x
    #| y = ...  # TODO
    ### END SOLUTION
    return y
"""


def test_solution_block_becomes_its_stub_with_its_indentation():
    assert strip_solution(SOLUTION) == "def f(x):\n    y = ...  # TODO\n    return y"


def test_block_without_stub_becomes_nbgrader_placeholder():
    source = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION"
    assert strip_solution(source) == "a = 1\n# YOUR CODE HERE\nraise NotImplementedError()"


def test_stub_comment_is_inert_in_the_solution():
    namespace = {}
    exec(SOLUTION, namespace)
    assert namespace["f"](3) == 6


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_malformed_markers_are_clear_errors(source, message):
    with pytest.raises(LabSyntaxError, match=message):
        strip_solution(source, where="lab.ipynb, cell 3")


def _solution() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"flowlab": {"lab": "99_demo"}})
    answer = new_code_cell("### BEGIN SOLUTION\nx = 41 + 1\n#| x = ...\n### END SOLUTION", execution_count=3)
    answer.outputs = [new_output("stream", name="stdout", text="42\n")]
    check = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x == 42)", metadata={"flowlab": {"points": 2}})
    nb.cells = [new_markdown_cell("# Demo"), answer, check]
    return nb


def test_make_lab_clears_outputs_keeps_ids_and_metadata():
    solution = _solution()
    lab = make_lab(solution)
    assert [c.id for c in lab.cells] == [c.id for c in solution.cells]
    assert lab.cells[1].source == "x = ..."
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert lab.cells[2].metadata["flowlab"]["points"] == 2
    assert lab.metadata["flowlab"]["lab"] == "99_demo"
    assert solution.cells[1].outputs, "the solution itself is left alone"


def test_write_labs_and_stale_labs(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    nbformat.write(_solution(), solutions / "99_demo.ipynb")
    assert stale_labs(solutions, labs) == [labs / "99_demo.ipynb"]
    assert write_labs(solutions, labs) == [labs / "99_demo.ipynb"]
    assert stale_labs(solutions, labs) == []
    assert write_labs(solutions, labs) == [], "an up-to-date lab is not rewritten"
    (labs / "old.ipynb").write_text("{}")
    assert stale_labs(solutions, labs) == [labs / "old.ipynb"], "a lab without a solution is stale"


def test_the_repository_labs_are_in_sync_with_the_solutions(root, capsys):
    code = main(["make-labs", "--check", "--solutions", str(root / "solutions"), "--labs", str(root / "labs")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (root / "labs").glob("*.ipynb")) == sorted(
        p.name for p in (root / "solutions").glob("*.ipynb")
    )


def test_labs_ship_without_outputs_or_solutions(root):
    for path in sorted((root / "labs").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and '"output_type"' not in text, path


def _stderr(notebook) -> list[str]:
    return [
        f"cell {cell.get('id')}: {''.join(o.get('text', ''))[:200]!r}"
        for cell in notebook.cells if cell.cell_type == "code"
        for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"
    ]


def test_executed_solutions_hold_no_stderr(root):
    """A healthy run is quiet: no TensorFlow log line (CUDA, oneDNN, NodeDef) reaches a student."""
    for path in sorted((root / "solutions").glob("*.ipynb")):
        assert _stderr(nbformat.read(path, as_version=4)) == [], path.name


# Every generated lab, so a new lab is covered the day it is added.
UNTOUCHED_LABS = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "labs").glob("*.ipynb"))


@pytest.mark.parametrize("lab", UNTOUCHED_LABS)
def test_untouched_lab_runs_top_to_bottom_with_every_check_failing(root, lab, tmp_path, monkeypatch):
    """The student's first "Run all": no cell errors, and each check prints ✘ with a hint about its own TODO."""
    from nbclient import NotebookClient

    from flowlab.grading.roles import CHECK_MARKER

    monkeypatch.setenv("FLOWLAB_FAST", "1")
    notebook = nbformat.read(root / "labs" / f"{lab}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert _stderr(notebook) == []
    checks = [c for c in notebook.cells if c.cell_type == "code" and c.source.lstrip().startswith(CHECK_MARKER)]
    assert checks
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("✘ "), (cell.get("id"), text)
        assert "the check itself failed" not in lines[0] and "raised NameError" not in lines[0], lines[0]
