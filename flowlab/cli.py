"""The ``flowlab`` command: run the labs, regenerate them from the solutions, grade submissions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def _solution(name: str, solutions: Path) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path
    matches = sorted(solutions.glob(f"*{name}*.ipynb"))
    if len(matches) != 1:
        known = ", ".join(p.stem for p in sorted(solutions.glob("*.ipynb"))) or "none"
        raise SystemExit(f"flowlab: no single solution matches {name!r} (solutions: {known})")
    return matches[0]


def _execute(path: Path, args: argparse.Namespace):
    """Execute one notebook; return ``(notebook, seconds)``, or ``None`` after saying why it failed."""
    from flowlab.execute import NotebookError, execute_notebook

    start = time.perf_counter()
    try:
        notebook = execute_notebook(path, fast=args.fast, timeout=args.timeout)
    except NotebookError as err:
        print(f"flowlab: {err}", file=sys.stderr)
        return None
    return notebook, time.perf_counter() - start


def _cmd_run(args: argparse.Namespace) -> int:
    import nbformat

    from flowlab.execute import save_figures

    out = Path(args.out)
    names = args.labs or ["02_two_moons"]
    for name in names:
        path = _solution(name, Path(args.solutions))
        print(f"flowlab: running {path} ({'fast' if args.fast else 'full'} mode) ...", flush=True)
        executed_in = _execute(path, args)
        if executed_in is None:
            return 1
        notebook, seconds = executed_in
        out.mkdir(parents=True, exist_ok=True)
        executed = out / path.name
        nbformat.write(notebook, executed)
        figures = save_figures(notebook, out, path.stem)
        print(f"flowlab: {path.stem} ran in {seconds:.0f} s; wrote {executed} and {len(figures)} figures in {out}/")
    return 0


def _cmd_execute(args: argparse.Namespace) -> int:
    import nbformat

    for name in args.notebooks:
        path = Path(name)
        executed_in = _execute(path, args)
        if executed_in is None:
            return 1
        nbformat.write(executed_in[0], path)
        print(f"flowlab: executed {path} in {executed_in[1]:.0f} s")
    return 0


def _cmd_make_labs(args: argparse.Namespace) -> int:
    from flowlab.labs import LabSyntaxError, stale_labs, write_labs

    try:
        if args.check:
            stale = stale_labs(args.solutions, args.labs)
            for path in stale:
                print(f"flowlab: {path} is out of date: run `flowlab make-labs`", file=sys.stderr)
            return 1 if stale else 0
        for path in write_labs(args.solutions, args.labs):
            print(f"flowlab: wrote {path}")
    except LabSyntaxError as err:
        print(f"flowlab: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_stamp(args: argparse.Namespace) -> int:
    from flowlab.labs import LabSyntaxError, stamp_files

    paths = [Path(p) for p in args.notebooks] or sorted(Path(args.solutions).glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        print(f"flowlab stamp: no such notebook: {', '.join(missing) or args.solutions + '/*.ipynb'}", file=sys.stderr)
        return 2
    try:
        changed = stamp_files(paths, check=args.check)
    except LabSyntaxError as err:
        print(f"flowlab stamp: {err}", file=sys.stderr)
        return 1
    for path in changed:
        if args.check:
            print(f"flowlab: {path} lacks its set-up cell or nbgrader metadata: run `flowlab stamp {path}`",
                  file=sys.stderr)
        else:
            print(f"flowlab: stamped {path}")
    return 1 if args.check and changed else 0


def _cmd_badges(args: argparse.Namespace) -> int:
    from flowlab.labs import colab_url

    print("| lab | open |\n|---|---|")
    for path in sorted(Path(args.labs).glob("*.ipynb")):
        badge = "https://colab.research.google.com/assets/colab-badge.svg"
        print(f"| {path.stem} | [![Open In Colab]({badge})]({colab_url(path.stem)}) |")
    return 0


def _cmd_gradescope(args: argparse.Namespace) -> int:
    from flowlab.grading.gradescope import build_autograder

    try:
        names = build_autograder(args.lab, args.out, solutions=args.solutions, requirement=args.requirement,
                                 visibility=args.visibility, mnist_dir=args.mnist_dir)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"flowlab gradescope-autograder: {err}", file=sys.stderr)
        return 2
    print(f"flowlab: wrote {args.out} ({', '.join(names)}); upload it as the assignment's autograder "
          "(Configure Autograder > Zip file upload)")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from flowlab import grading

    return grading.main(args)


def _cmd_gradebook_merge(args: argparse.Namespace) -> int:
    from flowlab.grading.command import merge_main

    return merge_main(args)


def build_parser(grade_arguments: bool = True) -> argparse.ArgumentParser:
    """The ``flowlab`` parser; ``grade_arguments=False`` leaves ``grade``'s own options out.

    Those come from :mod:`flowlab.grading`, whose import (nbformat, jsonschema, numpy, the grading
    pipeline) is most of the start-up of every other command; :func:`main` only asks for them when
    the command line names ``grade``.
    """
    parser = argparse.ArgumentParser(prog="flowlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute solution notebooks end to end and save their figures")
    run.add_argument("labs", nargs="*", help="lab names or notebook paths (default: 02_two_moons)")
    run.add_argument("--fast", action="store_true", help="fast mode: fewer epochs and points")
    run.add_argument("--out", default="runs", help="folder for the executed notebook and figures")
    run.add_argument("--solutions", default=str(ROOT / "solutions"))
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    run.set_defaults(func=_cmd_run)

    execute = sub.add_parser("execute", help="execute notebooks in place (refresh a solution's outputs)")
    execute.add_argument("notebooks", nargs="+")
    execute.add_argument("--fast", action="store_true")
    execute.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    execute.set_defaults(func=_cmd_execute)

    make_labs = sub.add_parser("make-labs", help="write labs/ from solutions/ (or --check they are in sync)")
    make_labs.add_argument("--solutions", default="solutions")
    make_labs.add_argument("--labs", default="labs")
    make_labs.add_argument("--check", action="store_true", help="exit 1 if a lab is out of date")
    make_labs.set_defaults(func=_cmd_make_labs)

    stamp = sub.add_parser("stamp", help="give solutions the set-up cell (Colab) and nbgrader's cell metadata")
    stamp.add_argument("notebooks", nargs="*", help="solution notebooks (default: every one in --solutions)")
    stamp.add_argument("--solutions", default="solutions")
    stamp.add_argument("--check", action="store_true", help="exit 1 if a notebook is not stamped (write nothing)")
    stamp.set_defaults(func=_cmd_stamp)

    badges = sub.add_parser("badges", help="print the README's Open-in-Colab table ([tool.flowlab] repository)")
    badges.add_argument("--labs", default="labs")
    badges.set_defaults(func=_cmd_badges)

    gradescope = sub.add_parser("gradescope-autograder", help="build Gradescope's autograder zip for a lab")
    gradescope.add_argument("lab", help="lab id (02_two_moons) or a unique part of it")
    gradescope.add_argument("--out", type=Path, default=Path("autograder.zip"))
    gradescope.add_argument("--solutions", type=Path, default=ROOT / "solutions", help="the executed solutions")
    gradescope.add_argument("--requirement", help="what setup.sh installs as flowlab (default: a wheel of this "
                                                  "checkout, carried in the zip)")
    gradescope.add_argument("--visibility", default="visible",
                            choices=["visible", "hidden", "after_due_date", "after_published"],
                            help="when students see their score and tests (default visible)")
    gradescope.add_argument("--mnist-dir", type=Path, help="MNIST IDX files for labs that read MNIST "
                                                           "(default $FLOWLAB_MNIST_DIR)")
    gradescope.set_defaults(func=_cmd_gradescope)

    grade = sub.add_parser("grade", help="grade lab submissions against their solutions")
    if grade_arguments:
        from flowlab.grading.command import add_arguments

        add_arguments(grade)
    grade.set_defaults(func=_cmd_grade)

    gradebook = sub.add_parser("gradebook", help="work with graded batches (merge the shards of a class)")
    books = gradebook.add_subparsers(dest="gradebook_command", required=True)
    merge = books.add_parser("merge", help="join the reports of `flowlab grade --shard K/N` runs into one gradebook")
    merge.add_argument("reports", nargs="+", type=Path, help="the shards' --out folders (or their report.json)")
    merge.add_argument("--out", type=Path, default=Path("grades"), help="where the merged reports go (default grades)")
    merge.set_defaults(func=_cmd_gradebook_merge)
    return parser


def _skip_slow_optional_imports() -> None:
    """Keep ``jsonschema`` (imported by ``nbformat``) from loading its slowest optional format checkers.

    ``rfc3987_syntax`` (IRIs) compiles a Lark grammar at import: about 1.5 s on an idle 2-core
    machine (5.9 s under load, ``bench/import_time.md``), more than the rest of every command's
    start-up together; ``isoduration`` (durations, it imports ``arrow``) and ``rfc3986_validator``
    (URIs) cost about 0.2 s more under load.  No notebook schema uses a ``format`` at all, so nothing
    is lost; ``jsonschema`` treats the modules as absent.
    """
    for name in ("rfc3987_syntax", "isoduration", "rfc3986_validator"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    _skip_slow_optional_imports()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(grade_arguments="grade" in argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
