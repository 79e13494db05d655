"""``flowlab grade``: grade submissions (files or folders) against their solutions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

__all__ = ["add_arguments", "main", "grade", "merge_main"]

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders searched for *.ipynb")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions", help="folder of solution notebooks")
    parser.add_argument("--lab", help="grade every submission as this lab (default: each notebook's metadata, "
                                      "else its file name)")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="folder for report.json, gradebook.csv and feedback/ (default: grades)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at once (default: all cores)")
    parser.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (default 300)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    parser.add_argument("--memory", type=float, default=4096, help="MB of memory per notebook (default 4096)")
    parser.add_argument("--full", action="store_true", help="run in full mode instead of fast mode")
    parser.add_argument("--keep-flagged-scores", action="store_true",
                        help="score flagged submissions as they ran (default: zero until reviewed)")
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                        help="run each kernel in a bubblewrap sandbox: auto (when bwrap works here, else "
                             "warn and run without), bwrap (required), none")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("--shard", metavar="K/N",
                        help="grade shard K of N (K = 1..N): a deterministic 1/N of the students, by name; join "
                             "the shards' --out folders with `flowlab gradebook merge`")
    parser.add_argument("--format", choices=["flowlab", "gradescope"], default="flowlab",
                        help="gradescope: also write Gradescope's results.json in --out (one submission)")
    parser.add_argument("--gradescope-visibility", default="visible",
                        choices=["visible", "hidden", "after_due_date", "after_published"],
                        help="visibility of the score and the tests in results.json (default visible)")


def prepare(options, *, hide: list[Path] = ()):
    """``options`` with the sandbox chosen (probed once per batch) and the grading code's hashes."""
    from flowlab.grading.integrity import digest, watched_folders
    from flowlab.grading.sandbox import Sandbox, probe

    sandbox = options.sandbox if isinstance(options.sandbox, Sandbox) else probe(options.sandbox)
    if sandbox.warning:
        print(f"flowlab grade: WARNING: {sandbox.warning}", file=sys.stderr)
    watched = watched_folders()
    return replace(options, sandbox=sandbox.hiding(hide), watched=tuple(watched), baseline=digest(watched))


def changed_since_start(options) -> list[str]:
    from flowlab.grading.integrity import changed_files, digest

    return changed_files(options.baseline, digest(list(options.watched))) if options.watched else []


def grade(paths: list[Path], *, solutions: Path, options, jobs: int = 1, progress: bool = False,
          hide: list[Path] = (), shard=None):
    """Grade ``paths`` (files or folders); return ``(results, lab columns)``. The library entry point.

    ``shard`` (a :class:`~flowlab.grading.shards.Shard`): grade only its students.
    No kernel sees ``solutions``, the submissions or the folders in ``hide`` (the output folder)."""
    from flowlab.grading import pipeline
    from flowlab.grading.discover import find_submissions
    from flowlab.grading.pipeline import Solutions
    from flowlab.grading.progress import Progress
    from flowlab.grading.shards import select

    options = prepare(options, hide=[solutions, *paths, *hide])
    known = Solutions.read(solutions)
    submissions = select(find_submissions(paths, known.ids), shard)
    grade_submission = pipeline.grade_submission
    bar = Progress(len(submissions), enabled=progress)

    def one(sub):
        result = grade_submission(sub, known, options)
        bar.update(f"{sub.student}: {result.total:g}/{result.max_points:g}"
                   + ("" if result.status == "graded" else f" ({result.status})"))
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, submissions))
    changed = changed_since_start(options)
    if changed:
        print(f"flowlab grade: WARNING: the grading code on disk changed during this batch ({', '.join(changed[:3])}"
              f"{' ...' if len(changed) > 3 else ''}); submissions graded after the change ran against it: "
              "restore the package and grade again", file=sys.stderr)
    columns = {}
    for lab in sorted({r.lab for r in results if r.lab in known.paths}):
        try:
            columns[lab] = [c.title for c in known.get(lab).checks]
        except ValueError:
            continue
    return _distinct(results), columns


def _distinct(results):
    # Two submissions of one lab by one student (alice/a.ipynb, alice/b.ipynb) stay two rows.
    seen: dict[tuple, int] = {}
    for r in results:
        seen[(r.student, r.lab)] = seen.get((r.student, r.lab), 0) + 1
    for r in results:
        if seen[(r.student, r.lab)] > 1:
            r.student = str(Path(r.path).with_suffix(""))
    return results


def main(args: argparse.Namespace) -> int:
    from flowlab.grading.pipeline import Options
    from flowlab.grading.report import feedback_text, ordered, write_reports
    from flowlab.grading.runner import Limits
    from flowlab.grading.sandbox import SandboxUnavailable, probe

    if not args.solutions.is_dir():
        print(f"flowlab grade: no solutions folder {args.solutions} (use --solutions)", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        print(f"flowlab grade: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("flowlab grade: --jobs must be at least 1", file=sys.stderr)
        return 2
    shard = None
    if args.shard is not None:
        from flowlab.grading.shards import parse_shard

        try:
            shard = parse_shard(args.shard)
        except ValueError as err:
            print(f"flowlab grade: {err}", file=sys.stderr)
            return 2
    try:
        sandbox = probe(args.sandbox)
    except SandboxUnavailable as err:
        print(f"flowlab grade: {err}", file=sys.stderr)
        return 2
    limits = Limits(cell_timeout=args.cell_timeout, wall_clock=args.timeout, memory_mb=args.memory)
    options = Options(limits=limits, fast=not args.full, only_lab=args.lab, zero_flagged=not args.keep_flagged_scores,
                      sandbox=sandbox)
    results, columns = grade(args.submissions, solutions=args.solutions, options=options, jobs=args.jobs,
                             progress=not args.quiet, hide=[args.out], shard=shard)
    gradescope = args.format == "gradescope"
    if not results and shard is None:
        print(f"flowlab grade: no notebooks found in {', '.join(map(str, args.submissions))}", file=sys.stderr)
        if gradescope:  # Gradescope shows the student this, instead of a failed autograder
            from flowlab.grading.gradescope import no_submission
            from flowlab.grading.report import write_atomic

            args.out.mkdir(parents=True, exist_ok=True)
            write_atomic(args.out / "results.json", json.dumps(no_submission(
                "no notebook (.ipynb) was found in the submission", args.gradescope_visibility)) + "\n")
        return 2

    # Written once, now that every kernel of the batch is gone.
    settings = {"fast": options.fast, "limits": asdict(limits), "solutions": str(args.solutions),
                "sandbox": sandbox.kind + ("" if sandbox.enabled else f" ({sandbox.warning})")}
    if shard is not None:
        settings["shard"] = str(shard)  # an empty shard (more shards than students) writes empty reports
    write_reports(results, columns, args.out, settings)
    if gradescope:
        from flowlab.grading.gradescope import write_results

        write_results(results, args.out / "results.json", args.gradescope_visibility, lab=args.lab)

    results = ordered(results)
    if len(results) == 1:
        print(feedback_text(results[0]), end="")
    else:
        for r in results:
            extra = "" if r.status == "graded" else f"  [{r.status}: {r.reason.splitlines()[0]}]"
            print(f"{r.student:<24} {r.lab or '?':<18} {r.total:>6g} / {r.max_points:g}{extra}")
    errors = [r for r in results if r.status == "error"]
    print(f"flowlab grade: {len(results)} notebook(s)" + (f" (shard {shard})" if shard else "")
          + f"; wrote {args.out}/report.json, gradebook.csv, feedback/" + (", results.json" if gradescope else "")
          + (f"; the grader failed on {len(errors)}" if errors else "")
          + ("" if sandbox.enabled else "; WITHOUT a sandbox (see the warning above)"), file=sys.stderr)
    return 1 if errors else 0


def merge_main(args: argparse.Namespace) -> int:
    """``flowlab gradebook merge SHARD_OUT... --out DIR``: the gradebook of the whole class."""
    from flowlab.grading.report import write_reports
    from flowlab.grading.shards import MergeError, merge_reports

    try:
        results, columns, settings = merge_reports(args.reports)
    except (MergeError, ValueError) as err:
        print(f"flowlab gradebook merge: {err}", file=sys.stderr)
        return 2
    write_reports(results, columns, args.out, settings)
    errors = sum(r.status == "error" for r in results)
    print(f"flowlab gradebook merge: {len(args.reports)} shard(s), {len(results)} notebook(s); wrote "
          f"{args.out}/report.json, gradebook.csv, feedback/"
          + (f"; the grader failed on {errors} (see their rows)" if errors else ""), file=sys.stderr)
    return 1 if errors else 0
