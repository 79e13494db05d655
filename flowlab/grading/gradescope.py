"""Gradescope: its ``results.json``, and the autograder zip that grades a lab there with flowlab.

Gradescope's autograder format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the
zip holds ``setup.sh`` (run once, as root, when Gradescope builds the image; it installs what the
autograder needs) and ``run_autograder`` (run for every submission, in ``/autograder``: the
submission is in ``/autograder/submission``, the zip's contents in ``/autograder/source``, and the
script writes ``/autograder/results/results.json``).  ``results.json`` holds the ``score`` and a list of
``tests``, each with ``name``, ``score``, ``max_score``, ``status`` (``passed`` or ``failed``), an
``output`` the student reads and a ``visibility`` (``visible``, ``hidden``, ``after_due_date``,
``after_published``).

Here each check cell is one test (its title, its points, ``✔ title`` or ``✘ title: hint``), and the
submission's report card (:func:`flowlab.grading.report.feedback_text`) is the top-level ``output``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from flowlab.checks.core import FAIL, PASS
from flowlab.grading.report import FLAGGED, _plain, feedback_text, write_atomic
from flowlab.grading.scoring import SubmissionResult

__all__ = ["VISIBILITIES", "results_json", "write_results", "no_submission", "build_autograder", "build_wheel",
           "RUN_AUTOGRADER"]

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
ROOT = Path(__file__).resolve().parents[2]
UNNEEDED = {"jupyter", "nbgrader"}  # in requirements.txt, not needed to grade on Gradescope


def _test(check, flagged: bool, visibility: str) -> dict:
    if check.passed and flagged:
        why = "not counted until the instructor reviews the flagged code" if not check.counted \
            else "counted, but the code is flagged for review"
        output = f"{FLAGGED} {check.title}: {why}"
    elif check.passed:
        output = f"{PASS} {check.title}"
    else:
        output = f"{FAIL} {check.title}" + (f": {_plain(check.feedback)}" if check.feedback else "")
    return {"name": check.title, "score": check.earned, "max_score": check.points,
            "status": "passed" if check.passed and check.counted else "failed",
            "output": output, "output_format": "text", "visibility": visibility}


def results_json(results: list[SubmissionResult], visibility: str = "visible", lab: str | None = None) -> dict:
    """Gradescope's results for one submission (``results`` holds exactly one; otherwise a zero that
    says what was wrong with the upload)."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}")
    if len(results) != 1:
        names = ", ".join(Path(r.path).name for r in results)
        return no_submission(f"upload exactly one notebook{f' of lab {lab}' if lab else ''}; "
                             f"this submission has {len(results)}: {names}", visibility)
    result = results[0]
    data = {
        "score": result.total,
        "execution_time": int(round(result.seconds)),
        "output": feedback_text(result),
        "output_format": "text",
        "visibility": visibility,
        "stdout_visibility": "hidden",  # the grader's own log, for the instructor
        "tests": [_test(c, bool(result.flags), visibility) for c in result.checks],
        "extra_data": {"flowlab": {"lab": result.lab, "status": result.status, "flags": result.flags}},
    }
    return data


def no_submission(reason: str, visibility: str = "visible") -> dict:
    return {"score": 0.0, "output": f"Not graded: {reason}", "output_format": "text", "visibility": visibility,
            "stdout_visibility": "hidden", "tests": []}


def write_results(results: list[SubmissionResult], path: Path, visibility: str = "visible",
                  lab: str | None = None) -> None:
    write_atomic(Path(path), json.dumps(results_json(results, visibility, lab), indent=2, ensure_ascii=False) + "\n")


# ``run_autograder``: everything under /autograder can be moved with FLOWLAB_AUTOGRADER_ROOT (a test,
# or a dry run on the instructor's machine), and the Python with FLOWLAB_AUTOGRADER_PYTHON.
RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. Built by `flowlab gradescope-autograder {lab}`.
set -uo pipefail
ROOT="${{FLOWLAB_AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{FLOWLAB_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
SOURCE="$ROOT/source"
mkdir -p "$ROOT/results"
if [ -d "$SOURCE/data/mnist" ]; then export FLOWLAB_MNIST_DIR="$SOURCE/data/mnist"; fi
export FLOWLAB_NO_INSTALL=1
cd "$ROOT"
"$PYTHON" -m flowlab.cli grade "$ROOT/submission" --lab {lab} --solutions "$SOURCE/solutions" \\
    --out "$ROOT/results" --format gradescope --gradescope-visibility {visibility} \\
    --jobs 1 --quiet {options}
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
  "$PYTHON" - "$ROOT/results/results.json" "$status" <<'EOF'
import json, sys
json.dump({{"score": 0.0, "tests": [], "output": "The autograder failed before it could grade this submission "
           f"(exit status {{sys.argv[2]}}); this is not your fault: tell the instructor."}}, open(sys.argv[1], "w"))
EOF
fi
exit 0
"""

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# Built by `flowlab gradescope-autograder {lab}`.
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap >/dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --quiet --upgrade pip
/autograder/venv/bin/python -m pip install --quiet -r requirements.txt
/autograder/venv/bin/python -m pip install --quiet --no-deps {flowlab}
# Grading downloads nothing: check now that the kernel will import what the lab needs.
/autograder/venv/bin/python -c "import flowlab, tensorflow_probability; print('flowlab', flowlab.__version__)"
"""


def _requirements() -> str:
    """The pinned stack: this checkout's requirements.txt, else the versions installed here."""
    if (ROOT / "requirements.txt").is_file():
        lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        # What only a person at a desk needs (Jupyter's front ends, nbgrader) stays out of the image.
        kept = [line for line in lines if re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
                not in UNNEEDED]
        return "\n".join(kept) + "\n"
    from importlib import metadata

    lines = ["# The stack flowlab was installed with when this autograder was built."]
    for name in ("tensorflow", "tf-keras", "tensorflow-probability", "numpy", "scikit-learn", "matplotlib",
                 "nbformat", "nbclient", "ipykernel", "nbval", "pytest", "psutil"):
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def build_wheel(folder: Path, root: Path = ROOT) -> Path:
    """Build flowlab's wheel from the checkout ``root`` into ``folder``; return its path.

    Built from a copy of the package's sources, so a ``build/`` folder in the checkout (stale files of
    an earlier build) never reaches the wheel; with the build back end installed here (no download)."""
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError("flowlab is not running from a source checkout: pass --requirement "
                                "(e.g. 'flowlab @ git+https://...@v0.1.0') instead of building a wheel")
    folder = Path(folder)
    source = folder / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(root / "flowlab", source / "flowlab", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).is_file():
            shutil.copy2(root / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--wheel-dir", str(folder), str(source)], capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(f"building flowlab's wheel failed:\n{built.stderr[-2000:]}")
    shutil.rmtree(source, ignore_errors=True)
    wheels = sorted(folder.glob("flowlab-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"building flowlab's wheel gave {len(wheels)} files in {folder}")
    return wheels[0]


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same zip for the same inputs
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_autograder(lab: str, out: Path, *, solutions: Path, requirement: str | None = None,
                     visibility: str = "visible", grade_options: str = "",
                     mnist_dir: Path | None = None) -> list[str]:
    """Write Gradescope's autograder zip for ``lab`` to ``out``; return the names it holds.

    ``requirement``: what ``setup.sh`` installs as flowlab (a pip requirement); by default a wheel
    of this checkout, carried in the zip.  The zip also carries the executed solution and, when the
    lab reads MNIST, the official test set's IDX files (from ``mnist_dir`` or ``$FLOWLAB_MNIST_DIR``), so
    grading needs no network."""
    from flowlab.grading.pipeline import Solutions
    from flowlab.labs import lab_data

    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}")
    found = Solutions.read(Path(solutions))  # each solution read once
    known = found.paths
    if lab not in known:
        matches = [k for k in known if lab in k]
        if len(matches) != 1:
            raise ValueError(f"no single solution for lab {lab!r} in {solutions} (labs: {', '.join(known) or 'none'})")
        lab = matches[0]
    solution = found.get(lab)  # refuses a solution that was never executed
    needs = lab_data(solution.notebook)
    files: dict[str, tuple[bytes, bool]] = {
        "run_autograder": (RUN_AUTOGRADER.format(lab=lab, visibility=visibility, options=grade_options).encode(), True),
        "requirements.txt": (_requirements().encode(), False),
        f"solutions/{known[lab].name}": (known[lab].read_bytes(), False),
    }
    with tempfile.TemporaryDirectory(prefix="flowlab-wheel-") as tmp:
        if requirement is None:
            wheel = build_wheel(Path(tmp))
            files[wheel.name] = (wheel.read_bytes(), False)
            flowlab = wheel.name
        else:
            flowlab = f"'{requirement}'"
    files["setup.sh"] = (SETUP_SH.format(lab=lab, flowlab=flowlab).encode(), True)
    if "mnist" in needs:
        from flowlab.datasets.mnist import ENV_VAR, FILES

        candidates = [mnist_dir, os.environ.get(ENV_VAR) or None]
        folder = next((Path(c) for c in candidates if c and all((Path(c) / f).is_file() for f in FILES["test"])), None)
        if folder is None:
            raise FileNotFoundError(f"lab {lab} reads MNIST: give the folder of its IDX files "
                                    f"({', '.join(FILES['test'])}) with --mnist-dir or {ENV_VAR}")
        for name in FILES["test"]:
            files[f"data/mnist/{name}"] = ((folder / name).read_bytes(), False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            data, executable = files[name]
            _add(archive, name, data, executable)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_bytes(buffer.getvalue())
    os.replace(tmp_out, out)
    return sorted(files)
