"""In a notebook, a cell that needs an unfinished TODO (a name still bound to `...`) waits for it."""

import ast

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from flowlab.todo import WAITING, reads_and_binds


@pytest.mark.parametrize("source, reads, binds", [
    ("y = f(x)", {"f", "x"}, ["y"]),
    ("x = 1\ny = x + 1", set(), ["x", "y"]),  # a name the cell binds itself is never waited for
    ("def g(a):\n    return a + w\nimport numpy as np", {"w"}, ["g", "np"]),
    ("for i in range(3):\n    total = i\nwith open(p) as fh:\n    pass", {"range", "open", "p"}, ["i", "total", "fh"]),
    ("if ready:\n    model = make()\nelse:\n    other = 1", {"ready", "make"}, ["model", "other"]),
    ("a, (b, *c) = value", {"value"}, ["a", "b", "c"]),
    ("print([k for k in items])", {"print", "items"}, []),
])
def test_reads_and_binds(source, reads, binds):
    got_reads, got_binds = reads_and_binds(ast.parse(source))
    assert got_reads == reads
    assert sorted(got_binds) == sorted(binds)


def _run(sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False).execute()
    return ["".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream") for c in nb.cells]


def test_a_cell_waits_for_a_placeholder_and_checks_always_run():
    out = _run([
        "import flowlab\nanswer = ...  # TODO",
        "derived = answer + 1\nprint('ran')",                       # waits: it would raise
        "plot = derived * 2",                                       # waits for the waiting cell's names
        "# NBVAL_CHECK_OUTPUT\nprint('check sees', derived)",       # a check cell always runs
        "answer = 41",                                              # the student fills the TODO in
        "derived = answer + 1\nprint('ran', derived)",              # and the cell after it now runs
        "x = ...\nx = 3\nprint('own', x)",                          # a name the cell binds is not waited for
    ])
    assert out[1].startswith(WAITING) and "`answer`" in out[1] and "ran" not in out[1]
    assert out[2].startswith(WAITING) and "`derived`" in out[2]
    assert out[3] == "check sees Ellipsis\n"
    assert out[5] == "ran 42\n"
    assert out[6] == "own 3\n"


def test_outside_a_notebook_nothing_changes():
    from flowlab.todo import register_ipython

    assert register_ipython() is False  # pytest is not IPython


def test_a_name_the_cell_imports_is_not_waited_for():
    reads, binds = reads_and_binds(ast.parse("from flowlab.flows import build_maf\nflow = build_maf(2)"))
    assert reads == set() and binds == ["build_maf", "flow"]
