"""Static detection of code that tampers with grading.

The grader runs the solution's check cells with the solution's expected outputs, so a student
cannot edit a check; what remains is code, in the student's own cells, that changes what a check
does or what it prints: rebinding the check module or ``print``; assigning into a module
(``np.allclose = ...``, ``builtins.print = ...``, ``check.base_distribution = ...``); giving the
check module or a check another name (``c = check``, through which it is patched unnamed); writing
into a ``__dict__``; reaching a module by a name built from strings (``importlib.import_module``,
``getattr(check, ...)``); the check machinery's internals (``core._print``); touching
``sys.modules``, ``sys.stdout``, ``__builtins__`` or IPython's traceback display; printing the ``✔``
verdict itself; reading a solution, a notebook or ``/proc``; an ``__eq__`` that always says True;
running code built from strings.

It is a flagging aid, not the defence: the sandbox (:mod:`flowlab.grading.sandbox`) keeps a
submission from reaching anything outside its kernel whatever it writes, and code written to evade
the scan is possible (see ``docs/grading.md``, threat model).

The scan reads each cell's syntax tree (IPython magics translated first) and reports what it found
with its cell and line, so the instructor can judge a flagged submission.  A cell that does not
parse is not flagged: it fails when it runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from flowlab.checks.core import PASS

__all__ = ["Flag", "scan", "protected_names", "module_names"]

# Names that are modules (or module-like) in every lab's setup cell.
KNOWN_MODULES = frozenset({
    "np", "numpy", "tf", "tensorflow", "tfp", "tfd", "tfb", "keras", "flowlab", "check", "sys", "os",
    "builtins", "__builtin__", "IPython", "ipykernel", "plt", "matplotlib", "importlib", "types", "math",
    "gc", "inspect", "functools", "operator", "io", "contextlib", "sklearn", "plots",
})
# Attributes whose assignment anywhere silences or rewrites what a check shows.
SUSPECT_ATTRIBUTES = frozenset({
    "showtraceback", "_showtraceback", "showsyntaxerror", "showindentationerror", "stdout", "stderr",
    "displayhook", "excepthook", "display_pub", "display_formatter", "modules", "__stdout__", "__stderr__",
    "__eq__", "__code__", "__globals__", "__defaults__", "__kwdefaults__", "__builtins__",
})
FORBIDDEN_NAMES = {
    "__builtins__": "uses `__builtins__`",
    "InteractiveShell": "uses IPython's InteractiveShell (the traceback display)",
}
FORBIDDEN_IMPORTS = {
    "builtins": "imports `builtins` (to replace print or other built-ins)",
    "__builtin__": "imports `__builtin__`",
    "ctypes": "imports `ctypes` (raw memory access)",
    "signal": "imports `signal` (to interrupt a check while it runs)",
    "gc": "imports `gc` (reaching the grader's objects)",
    "IPython.core.interactiveshell": "imports IPython's InteractiveShell (the traceback display)",
}
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr"}
# importlib's ways to reach a module by a name built at run time, or to load one from a file.
IMPORTLIB_CALLS = {"import_module", "reload", "spec_from_file_location", "module_from_spec", "find_spec",
                   "exec_module", "load_module", "SourceFileLoader"}
# The shell's helpers a lab may use (``%magic`` and ``!shell`` lines become calls to them). Anything
# else reached through ``get_ipython()`` is the kernel's own machinery: its input and AST transformers,
# event callbacks and namespaces rewrite or read a check cell before it runs.
SHELL_HELPERS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput", "magic"})
# Attributes that reach a running frame, the interpreter's tracing or import machinery, or an object's
# type slots: through them code patches a check without naming it (``object.__setattr__(check, ...)``,
# ``inspect.currentframe().f_back.f_globals``, ``get_ipython().ast_transformers``).
INTROSPECTION = frozenset({
    "f_globals", "f_locals", "f_back", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame",
    "_getframe", "_current_frames", "currentframe", "settrace", "setprofile", "meta_path", "path_hooks",
    "__setattr__", "__delattr__", "__getattribute__", "__subclasses__", "__globals__", "__closure__",
    "ast_transformers", "input_transformers_post", "input_transformers_cleanup", "input_transformer_manager",
})
# Protocols through which an answer object decides what numpy's comparisons or isinstance say about it.
OVERRIDES = frozenset({"__array_function__", "__array_ufunc__", "__instancecheck__", "__subclasscheck__"})
# inspect's ways to reach the frames of running code (the checks' among them).
FRAME_FUNCTIONS = frozenset({"stack", "trace", "getouterframes", "getinnerframes", "currentframe"})
# Methods that change a container, an array or a model in place: called on an object the checks
# measure (``models.update(...)``, ``X_test.sort()``), they swap what the check sees.
MUTATORS = frozenset({
    "update", "clear", "pop", "popitem", "setdefault", "append", "extend", "insert", "remove", "sort", "reverse",
    "fill", "put", "itemset", "resize", "setflags", "assign", "assign_add", "assign_sub", "set_weights",
    "load_weights", "__setitem__", "__delitem__",
})
# The check machinery's own writer: replacing it rewrites every verdict.
PRIVATE_WRITERS = {"_print", "_write"}
# Calls that read files or list folders; with a path naming a solution, a notebook or /proc.
FILE_CALLS = {"open", "Path", "listdir", "scandir", "glob", "iglob", "walk", "read_text", "read_bytes", "loadtxt"}
SUSPECT_PATH_WORDS = ("solution", ".ipynb", "/proc")
PASS_BYTES = PASS.encode("utf-8")


@dataclass(frozen=True)
class Flag:
    where: str  # "cell base, line 3"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _python(source: str) -> str:
    """The cell as plain Python (``%magic`` and ``!shell`` lines become ``get_ipython()`` calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot transform fails when it runs
        return source


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(_python(source))
    except (SyntaxError, ValueError):
        return None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _root_name(node: ast.AST) -> str | None:
    root = _root(node)
    return root.id if isinstance(root, ast.Name) else None


def _top_level_bindings(tree: ast.Module) -> set[str]:
    """Names a cell binds at its top level by assignment, ``def`` or ``class`` (not loops or imports)."""
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _is_shell(node: ast.AST) -> bool:
    """``get_ipython()``, however reached (``IPython.get_ipython()`` too)."""
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "get_ipython")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "get_ipython"))


def _aliases(trees: list[tuple[str, ast.AST]], modules: set[str]) -> set[str]:
    """Names the student binds to a module or a module's attribute (``o = np``, ``tfkl = tf.keras.layers``)."""
    found: set[str] = set()
    changed = True
    while changed:  # o = np; p = o.testing
        changed = False
        for _, tree in trees:
            for node in ast.walk(tree):
                if not isinstance(node, ast.Assign):
                    continue
                for target in node.targets:
                    pairs = (list(zip(target.elts, node.value.elts))
                             if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                             else [(target, node.value)])
                    for name, value in pairs:
                        if isinstance(name, ast.Name) and name.id not in found | modules \
                                and isinstance(value, (ast.Name, ast.Attribute)) \
                                and _root_name(value) in modules | found:
                            found.add(name.id)
                            changed = True
    return found


def _bound_by_import(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update((a.asname or a.name) for a in node.names if a.name != "*")
    return names


def module_names(locked_sources: list[str]) -> set[str]:
    """Names that hold modules in the solution's locked cells (imports, and aliases like ``tfd``)."""
    names = set(KNOWN_MODULES)
    trees = [t for t in map(_parse, locked_sources) if t is not None]
    for tree in trees:
        names |= _bound_by_import(tree)
    for tree in trees:  # tfd, tfb = tfp.distributions, tfp.bijectors
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                pairs = []
                for target in node.targets:
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs += list(zip(target.elts, node.value.elts))
                    else:
                        pairs.append((target, node.value))
                for target, value in pairs:
                    if (isinstance(target, ast.Name) and isinstance(value, ast.Attribute)
                            and _root_name(value) in names):
                        names.add(target.id)
    return names


def protected_names(check_sources: list[str], locked_sources: list[str] = (),
                    answer_sources: list[str] = ()) -> set[str]:
    """``print``, the names the solution's check cells call through (``check`` in ``check.f(x)``), and
    the lab's own objects the checks measure: a name a check cell passes (``X_test``, ``models``,
    ``trainable_distribution``) that a locked cell binds and no answer cell does. Rebinding or changing
    one of those puts another object under the check than the one the lab built from the answers."""
    names = {"print", "get_ipython", "__builtins__"}
    passed: set[str] = set()
    for tree in filter(None, map(_parse, check_sources)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _root_name(node.func)
                if name:
                    names.add(name)
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    root = _root(arg)
                    if isinstance(root, ast.Name):
                        passed.add(root.id)
    locked = set().union(*(_top_level_bindings(t) for t in filter(None, map(_parse, locked_sources))))
    answers = set().union(*(_top_level_bindings(t) for t in filter(None, map(_parse, answer_sources))))
    return names | (passed & locked) - answers


class _Scanner(ast.NodeVisitor):
    def __init__(self, where: str, modules: set[str], protected: set[str], inspect: set[str] = frozenset()):
        self.where, self.modules, self.protected, self.inspect = where, modules, protected, inspect
        self.flags: list[Flag] = []

    def flag(self, node: ast.AST, what: str) -> None:
        self.flags.append(Flag(f"{self.where}, line {getattr(node, 'lineno', '?')}", what))

    # --- what gets (re)bound -------------------------------------------------------------------
    def _target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element, verb)
        elif isinstance(target, ast.Starred):
            self._target(target.value, verb)
        elif isinstance(target, ast.Name):
            if target.id in self.protected:
                self.flag(target, f"{verb} `{target.id}`, which the checks use")
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            text = ast.unparse(target)
            root = _root(target)
            if any(isinstance(n, ast.Attribute) and n.attr == "__dict__" for n in ast.walk(target)):
                self.flag(target, f"{verb} `{text}` (into an object's or module's namespace)")
            elif isinstance(target, ast.Attribute) and target.attr in SUSPECT_ATTRIBUTES:
                self.flag(target, f"{verb} `{text}`")
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) \
                    and target.value.attr == "rcParams":
                pass  # matplotlib's settings: a figure's size or fonts change no verdict
            elif isinstance(root, ast.Name) and root.id in self.modules:
                self.flag(target, f"{verb} `{text}` inside a module the grading relies on")
            elif isinstance(root, ast.Name) and root.id in self.protected:
                self.flag(target, f"{verb} `{text}`, inside what a check uses or measures")
            elif isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id in {
                    "globals", "vars", "locals", "get_ipython"}:
                self.flag(target, f"{verb} `{text}`")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, "assigns")
        self._always_true_eq(node)
        self._alias(node.value)
        self.generic_visit(node)

    def _alias(self, value: ast.AST) -> None:
        """``c = check`` (or ``p = print``, ``f = check.mean_value``): a second name for something the
        checks use, through which it can be patched without naming it."""
        values = value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value]
        for item in values:
            if isinstance(item, (ast.Name, ast.Attribute)) and _root_name(item) in self.protected \
                    and not isinstance(_root(item), ast.Call):
                self.flag(item, f"gives `{ast.unparse(item)}`, which the checks use, another name")
            elif isinstance(item, ast.Attribute) and item.attr in SUSPECT_ATTRIBUTES:
                self.flag(item, f"gives `{ast.unparse(item)}` another name")
            elif _is_shell(item):
                self.flag(item, "keeps a handle on the kernel's shell (`get_ipython()`)")

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, "assigns")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, "assigns")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, "deletes")
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._target(node.target, "assigns")
        self.generic_visit(node)

    def _defines(self, node: ast.AST, name: str) -> None:
        if name in self.protected:
            self.flag(node, f"redefines `{name}`, which the checks use")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._defines(node, node.name)
        if node.name == "__eq__" and self._returns_only_true(node.body):
            self.flag(node, "defines an `__eq__` that always says True")
        elif node.name in OVERRIDES:
            self.flag(node, f"defines `{node.name}` (an object that answers for numpy or isinstance)")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._defines(node, node.name)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._defines(node, alias.asname or alias.name.split(".")[0])
            if alias.name in FORBIDDEN_IMPORTS:
                self.flag(node, FORBIDDEN_IMPORTS[alias.name])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self._defines(node, alias.asname or alias.name)
            if module == "inspect" and alias.name in FRAME_FUNCTIONS | {"*"}:
                self.flag(node, f"imports `{alias.name}` from inspect (the frames of running code)")
            if module.split(".")[0] in {"IPython", "ipykernel"} and module != "IPython.display":
                self.flag(node, f"imports `{alias.name}` from `{module}` (the kernel's own machinery)")
            full = f"{module}.{alias.name}"
            if module.startswith("importlib") and alias.name in IMPORTLIB_CALLS:
                self.flag(node, f"imports `{alias.name}` (imports a module by a name built at run time)")
            if module in FORBIDDEN_IMPORTS or full in FORBIDDEN_IMPORTS or alias.name == "InteractiveShell":
                self.flag(node, FORBIDDEN_IMPORTS.get(module) or FORBIDDEN_IMPORTS.get(full)
                          or FORBIDDEN_NAMES["InteractiveShell"])

    # --- what gets used ------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self.flag(node, FORBIDDEN_NAMES[node.id])
        elif node.id in IMPORTLIB_CALLS:  # from importlib import import_module
            self.flag(node, f"uses `{node.id}` (imports a module by a name built at run time)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        text = ast.unparse(node)
        if _is_shell(node.value) and node.attr not in SHELL_HELPERS:
            self.flag(node, f"uses `{text}` (the kernel's own machinery, which runs the checks)")
        elif node.attr in INTROSPECTION:
            self.flag(node, f"uses `{text}` (reaches running code or patches an object unnamed)")
        elif node.attr in FRAME_FUNCTIONS and _root_name(node) in self.inspect:
            self.flag(node, f"uses `{text}` (the frames of running code)")
        elif node.attr == "modules" and _root_name(node) == "sys":
            self.flag(node, "uses `sys.modules`")
        elif node.attr in {"showtraceback", "_showtraceback", "showsyntaxerror", "set_custom_exc"}:
            self.flag(node, f"uses `{text}` (IPython's error display)")
        elif node.attr in {"_getframe", "settrace", "setprofile"} and _root_name(node) == "sys":
            self.flag(node, f"uses `{text}`")
        elif node.attr == "register" and isinstance(node.value, ast.Attribute) and node.value.attr == "events":
            self.flag(node, "registers IPython event callbacks")
        elif node.attr == "__dict__" and (_root_name(node) in self.modules or _root_name(node) in self.protected):
            self.flag(node, f"uses `{text}` (a module's namespace)")
        elif node.attr in {"update", "setdefault", "__setitem__"} and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "__dict__":
            self.flag(node, f"writes into `{ast.unparse(node.value)}`")
        elif node.attr in IMPORTLIB_CALLS and _root_name(node) in {"importlib", "util", "machinery"}:
            self.flag(node, f"uses `{text}` (imports a module by a name built at run time)")
        elif node.attr in PRIVATE_WRITERS or (node.attr.startswith("_") and not node.attr.startswith("__")
                                               and _root_name(node) in self.protected):
            self.flag(node, f"uses `{text}`, the check machinery's internals")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in DYNAMIC_CODE:
                self.flag(node, f"calls `{func.id}()`, which can rewrite the grading at run time")
            if func.id == "chr" and node.args and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value == ord(PASS):
                self.flag(node, "writes the pass mark (U+2714) itself")
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if isinstance(func, ast.Attribute) and name in MUTATORS and _root_name(func.value) in self.protected \
                and _root_name(func.value) not in self.modules:
            self.flag(node, f"changes `{ast.unparse(func.value)}`, which a check measures, in place")
        if name in FILE_CALLS:
            for arg in ast.walk(node):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                        and any(word in arg.value.lower() for word in SUSPECT_PATH_WORDS):
                    self.flag(node, f"reads `{arg.value[:80]}` (a solution, a notebook or another process)")
                    break
        if name in {"import_module", "__import__"} or (name == "getattr" and len(node.args) >= 2 and (
                _root_name(node.args[0]) in self.protected or _root_name(node.args[0]) in {"sys", "builtins"})):
            self.flag(node, f"calls `{ast.unparse(func)}()` on what the checks use")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if (isinstance(value, str) and PASS in value) or (isinstance(value, bytes) and PASS_BYTES in value):
            self.flag(node, "writes the pass mark (U+2714) itself")

    # --- always-equal objects ------------------------------------------------------------------
    @staticmethod
    def _returns_only_true(body: list[ast.stmt]) -> bool:
        returns = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Return)]
        return bool(returns) and all(isinstance(r.value, ast.Constant) and r.value.value is True for r in returns)

    def _always_true_eq(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if "__eq__" in names and isinstance(node.value, ast.Lambda) \
                and isinstance(node.value.body, ast.Constant) and node.value.body.value is True:
            self.flag(node, "defines an `__eq__` that always says True")


def scan(cells: list[tuple[str, str]], *, modules: set[str], protected: set[str]) -> list[Flag]:
    """Flags for the student's code: ``cells`` are ``(label, source)`` of what the grader runs."""
    flags: list[Flag] = []
    parsed = [(label, tree) for label, tree in ((label, _parse(source)) for label, source in cells) if tree is not None]
    # What the student imports, and names given to it, is a module like the lab's own: assigning into
    # ``import flowlab.checks.two_moons as m`` patches the check as surely as assigning into ``check``.
    modules = set(modules) | {"inspect"}
    inspect = {"inspect"}
    for _, tree in parsed:
        modules |= _bound_by_import(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                inspect |= {a.asname for a in node.names if a.name == "inspect" and a.asname}
    modules |= _aliases(parsed, modules)
    for label, tree in parsed:
        scanner = _Scanner(f"cell {label}", modules, protected, inspect)
        scanner.visit(tree)
        flags += scanner.flags
    # One flag per place and reason is enough for a reader.
    return list(dict.fromkeys(flags))
