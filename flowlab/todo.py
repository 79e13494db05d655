"""In a notebook, a cell that needs an unfinished TODO waits for it instead of failing.

A lab starts with placeholders: ``flow_bijector = ...  # TODO``. The teaching code after an exercise
uses the student's answer (``tfd.TransformedDistribution(base, flow_bijector)``), and with the
placeholder still there it would raise -- and "Run all" stops at the first error, so the student
never sees the later exercises' checks. Once ``import flowlab`` has run in IPython, a code cell
that *reads* a name whose value is the placeholder ``...`` (and does not assign that name itself)
is not run: it prints one line saying what it waits for, and the names it would have defined
become placeholders too, so the cells after it wait as well. Check cells (``# NBVAL_CHECK_OUTPUT``)
always run: they print ``✘ title: ... is still a placeholder``.

A cell whose names are all ready runs exactly as written; nothing else about IPython changes.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

from flowlab.notebook_format import CHECK_MARKER, is_check

__all__ = ["WAITING", "CHECK_MARKER", "reads_and_binds", "register_ipython"]

WAITING = "⏸ waiting for"


def _bound(target: ast.AST, names: set[str]) -> None:
    if isinstance(target, ast.Name):
        names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            _bound(element, names)
    elif isinstance(target, ast.Starred):
        _bound(target.value, names)


def reads_and_binds(tree: ast.Module) -> tuple[set[str], list[str]]:
    """The global names a cell reads, and those it binds at its top level (in order)."""
    reads: set[str] = set()
    stores: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, ast.arg):  # a parameter shadows a global of the same name
            stores.add(node.arg)
    binds: set[str] = set()
    order: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            found: set[str] = set()
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                found |= {(a.asname or a.name.split(".")[0]) for a in stmt.names if a.name != "*"}
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    _bound(target, found)
            elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
                _bound(stmt.target, found)
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                _bound(stmt.target, found)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    if item.optional_vars is not None:
                        _bound(item.optional_vars, found)
            for name in sorted(found - binds):
                binds.add(name)
                order.append(name)
            for field in ("body", "orelse", "finalbody"):
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(getattr(stmt, field, []) or [])
            for handler in getattr(stmt, "handlers", []) or []:
                visit(handler.body)

    visit(tree.body)
    for node in ast.walk(tree):  # walrus targets bind at the top level too
        if isinstance(node, ast.NamedExpr) and node.target.id not in binds:
            binds.add(node.target.id)
            order.append(node.target.id)
    return reads - stores - binds, order


def _wait(names: list[str], binds: list[str], namespace: dict[str, Any]) -> None:
    """What a waiting cell runs instead of its code."""
    listed = ", ".join(f"`{n}`" for n in names)
    verb, pronoun = ("is", "it") if len(names) == 1 else ("are", "they")
    print(f"{WAITING} {listed}: still `...` (a TODO above). This cell runs once {pronoun} {verb} done.")
    for name in binds:
        namespace[name] = Ellipsis


class _WaitForTodos(ast.NodeTransformer):
    def __init__(self, shell: Any):
        self.shell = shell
        self.raw_cell = ""

    def pre_run_cell(self, info: Any) -> None:
        self.raw_cell = getattr(info, "raw_cell", "") or ""

    def visit_Module(self, node: ast.Module) -> ast.AST:  # noqa: N802 - NodeTransformer's protocol
        # IPython drops a transformer that raises, so a surprise here must leave the cell as it is.
        try:
            return self._transform(node)
        except Exception:  # noqa: BLE001
            return node

    def _transform(self, node: ast.Module) -> ast.AST:
        if is_check(self.raw_cell):
            return node
        namespace = self.shell.user_ns
        reads, binds = reads_and_binds(node)
        waiting = sorted(n for n in reads if n in namespace and namespace[n] is Ellipsis)
        if not waiting:
            return node
        call = f"__import__('flowlab.todo', fromlist=['_wait'])._wait({waiting!r}, {binds!r}, globals())"
        return ast.parse(call)


def register_ipython() -> bool:
    """Install the waiting rule in the running IPython shell, once; False outside IPython."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "ast_transformers"):
        return False
    if any(isinstance(t, _WaitForTodos) for t in shell.ast_transformers):
        return True
    transformer = _WaitForTodos(shell)
    shell.events.register("pre_run_cell", transformer.pre_run_cell)
    shell.ast_transformers.append(transformer)
    return True
