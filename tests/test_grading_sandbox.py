"""Submissions written to cheat or to reach outside, graded in one batch through the command line.

Each route answers ``mean`` wrongly (``mean = 42.0``) and then tries to get the ``mean of the data``
check passed anyway, or to reach something outside its kernel: the solution notebook, the grader's
processes and results file, the installed check modules, the output folder, another submission,
a daemon that outlives its kernel.  The attack code knows every path (as a student who guessed
them would).  Every route must end with the wrong answer still failing (or the submission flagged,
scoring zero, with no ✔ on its card), and nothing outside the submission's work folder changed:
the solutions, the check modules, the submissions, the output folder (but for what the grader
wrote) and a file elsewhere are hashed before and after.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))

import students  # noqa: E402
from students import LAB, POINTS, WRONG  # noqa: E402

from flowlab import cli  # noqa: E402
from flowlab.grading import (  # noqa: E402
    Limits,
    Options,
    grade,
    integrity,  # noqa: E402
)
from flowlab.grading.integrity import digest  # noqa: E402
from flowlab.grading.report import feedback_text  # noqa: E402
from flowlab.grading.sandbox import probe  # noqa: E402
from flowlab.grading.scoring import CheckResult, SubmissionResult  # noqa: E402

SANDBOX = probe()
pytestmark = pytest.mark.skipif(not SANDBOX.enabled, reason=f"no usable bubblewrap here: {SANDBOX.warning}")

MEAN = "mean of the data"
MARKER = f"flowlab-daemon-{uuid.uuid4().hex}"
OTHER_LAB = "01_other"

# The answer cell of `mean` in each route; {sol}, {out}, ... are filled in with the real paths.
READ_SOLUTION = '''\
import os
mean = 42.0
places = [{sol!r}, {fixture_solution!r}]
for top in ("/work", "/root", "/home", "/tmp", os.path.expanduser("~"), {subs!r}):
    for root, dirs, files in os.walk(top):
        places += [os.path.join(root, f) for f in files if f.endswith(".ipynb")]
for place in places:
    try:
        with open(place) as handle:
            if "data.mean()" in handle.read():
                mean = data.mean()  # a solution was readable: copy its answer
    except OSError:
        pass'''
SNOOP_PROC = '''\
import os, json
mean = 42.0
seen = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as handle:
            args = handle.read().decode(errors="replace").split("\\0")
    except OSError:
        continue
    seen += args
    for arg in args:
        if arg.endswith(".ipynb") or "--solutions" in arg:
            try:
                if "data.mean()" in open(arg).read():
                    mean = data.mean()
            except OSError:
                pass
        if arg.startswith("--flowlab-results="):  # forge a passing record for every cell
            with open(arg.split("=", 1)[1], "a") as results:
                for cell in range(12):
                    results.write(json.dumps({{"cell": cell, "phase": "call", "raised": False, "mac": "0" * 64}}) + "\\n")
    for name in ("mem", "environ"):  # pytest's memory holds the results' signing key
        try:
            open(f"/proc/{{pid}}/{{name}}", "rb").read(1)
            seen.append(f"read /proc/{{pid}}/{{name}}")
        except OSError:
            pass
print("processes seen:", len([p for p in os.listdir("/proc") if p.isdigit()]))'''  # noqa: E501 - a student's cell, as written
EDIT_CHECKS = '''\
import tinylab_checks
mean = 42.0
for target in (tinylab_checks.__file__,):
    try:
        with open(target, "a") as handle:
            handle.write("\\nraise SystemExit('edited by a submission')\\n")
    except OSError:
        pass'''
WRITE_OUT = '''\
import os
mean = 42.0
for action in (
    lambda: os.makedirs({out!r} + "/feedback", exist_ok=True),
    lambda: open({out!r} + "/feedback/evil.txt", "w").write("planted"),
    lambda: os.symlink({target!r}, {out!r} + "/feedback/zed.txt"),
    lambda: open({out!r} + "/gradebook.csv", "w").write("student,total\\nme,999\\n"),
    lambda: open({honest!r}, "w").write("{{}}"),
    lambda: open({target!r}, "w").write("overwritten"),
):
    try:
        action()
    except OSError:
        pass'''
DAEMON = '''\
import os, sys
mean = 42.0
code = """
import os, time
for _ in range(300):
    for path in ({out!r} + "/gradebook.csv", {out!r} + "/report.json", {host_tmp!r}):
        try:
            with open(path, "w") as handle:
                handle.write("rewritten by a daemon")
        except OSError:
            pass
    time.sleep(0.2)
"""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", code, {marker!r}])
    os._exit(0)'''
CR_CLASS_NAME = "mean = type(chr(13) + chr(10000 + 4) + ' mean of the data', (), {{}})()"
ALIAS_DICT = '''\
mean = 42.0
c = check
c.__dict__["mean_value"] = lambda *args: print(chr(10000 + 4) + " mean of the data")'''
IMPORTLIB_STRINGS = '''\
import importlib
mean = 42.0
module = importlib.import_module("tinylab" + "_checks")
module.mean_value = lambda *args: print(chr(10000 + 4) + " mean of the data")'''
CORE_PRINT = '''\
mean = 42.0
c = check
original = c._core._print
c._core._print = lambda line, **kw: original(line.split(":")[0].replace(chr(10008), chr(10004)), **kw)'''

ROUTES = {
    "read_solution": READ_SOLUTION, "snoop_proc": SNOOP_PROC, "edit_checks": EDIT_CHECKS,
    "write_out": WRITE_OUT, "daemon": DAEMON, "cr_class_name": CR_CLASS_NAME,
    "alias_dict": ALIAS_DICT, "importlib_strings": IMPORTLIB_STRINGS, "core_print": CORE_PRINT,
}
FLAGGED = {"alias_dict": "c.__dict__", "importlib_strings": "importlib.import_module", "core_print": "_print"}


def _hash_tree(*paths: Path) -> dict[str, str]:
    found = {}
    for top in paths:
        items = [top] if top.is_file() else sorted(p for p in top.rglob("*"))
        for path in items:
            if path.is_symlink():
                found[str(path)] = "symlink -> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _marked_processes() -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if MARKER in " ".join(proc.info.get("cmdline") or []):
            found.append(proc)
    return found


@pytest.fixture(scope="module", autouse=True)
def _watch_only_the_tiny_labs_checks():
    with students.watching(students.KERNEL_PATH):
        yield


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    solutions = students.solutions_folder(tmp)
    other = students.solution()
    other.metadata["flowlab"] = {"lab": OTHER_LAB}
    students.write(solutions, f"{OTHER_LAB}.ipynb", other)
    subs, out = tmp / "submissions", tmp / "out"
    out.mkdir()  # exists before the batch, as when an instructor grades again
    target = tmp / "elsewhere" / "instructor-notes.txt"
    target.parent.mkdir()
    target.write_text("the instructor's own file\n", encoding="utf-8")
    host_tmp = Path("/tmp") / f"{MARKER}.txt"
    honest = students.write(subs, "zed.ipynb", students.student())
    paths = {
        "sol": str(solutions / f"{LAB}.ipynb"), "fixture_solution": str(students.SOLUTION), "subs": str(subs),
        "out": str(out), "target": str(target), "honest": str(honest), "marker": MARKER,
        "host_tmp": str(host_tmp),
    }
    files = {"honest": honest}
    for name, source in ROUTES.items():
        files[name] = students.write(subs, f"{name}.ipynb", students.student({"mean": source.format(**paths)}))
    files["misnamed"] = students.write(subs, f"x_{OTHER_LAB}.ipynb", students.student())
    (subs / OTHER_LAB).mkdir()
    files["unreadable_in_lab_folder"] = subs / OTHER_LAB / "fay.ipynb"
    files["unreadable_in_lab_folder"].write_text('{"cells": [{"source": "trunc', encoding="utf-8")

    # The kernels import the tiny lab's checks from a copy: were the sandbox broken, the route that
    # edits them would damage the copy, not the repository.
    env_path = str(shutil.copytree(students.KERNEL_PATH, tmp / "kernel_path"))
    watched = [Path(env_path), Path(integrity.__file__).parent]
    with pytest.MonkeyPatch.context() as mp, students.watching(*watched):
        mp.setenv("PYTHONPATH", env_path)
        before = {"checks": digest(watched), "solutions": _hash_tree(solutions), "target": _hash_tree(target),
                  "submissions": _hash_tree(subs)}
        status = cli.main(["grade", str(subs), "--solutions", str(solutions), "--out", str(out), "--jobs", "2",
                           "--quiet", "--cell-timeout", "60", "--timeout", "120", "--sandbox", "bwrap"])
        ended = time.monotonic()
        written = _hash_tree(out)
        time.sleep(1.5)  # a surviving daemon rewrites every 0.2 s
        after = {"checks": digest(watched), "solutions": _hash_tree(solutions), "target": _hash_tree(target),
                 "submissions": _hash_tree(subs)}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_path = {Path(s["path"]).resolve(): s for s in report["submissions"]}
    return {"status": status, "out": out, "results": {k: by_path[p.resolve()] for k, p in files.items()},
            "before": before, "after": after, "written": written, "rewritten": _hash_tree(out),
            "ended": ended, "host_tmp": host_tmp, "settings": report["settings"]}


def _check(result: dict, title: str = MEAN) -> dict:
    return next(c for c in result["checks"] if c["title"] == title)


def test_the_batch_ran_in_the_sandbox(batch):
    assert batch["status"] == 0
    assert batch["settings"]["sandbox"] == "bwrap"
    assert batch["results"]["honest"]["total"] == sum(POINTS.values())


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_the_wrong_answer_still_fails_or_is_flagged(batch, route):
    result = batch["results"][route]
    mean = _check(result)
    assert mean["earned"] == 0
    if route in FLAGGED:
        # In-kernel tampering: the patched check may print ✔, but the submission is flagged and zero.
        assert result["status"] == "flagged" and result["total"] == 0
        assert any(FLAGGED[route] in flag for flag in result["flags"]), result["flags"]
    else:
        # Stopped at run time, by the sandbox or the raw-stdout comparison (the scan may flag it too).
        assert not mean["passed"], mean
        if result["status"] == "graded":
            assert result["total"] == sum(POINTS.values()) - POINTS[MEAN], result


def test_no_route_reaches_the_solutions_the_checks_or_other_submissions(batch):
    for what in ("checks", "solutions", "submissions", "target"):
        assert batch["after"][what] == batch["before"][what], what


def test_forged_results_never_reach_the_results_file(batch):
    # Had the kernel found pytest's results file, its forged lines would have been counted here.
    notes = batch["results"]["snoop_proc"]["notes"]
    assert not any("signature" in note for note in notes), notes


def test_the_output_folder_holds_only_what_the_grader_wrote(batch):
    out = batch["out"]
    assert not (out / "feedback" / "evil.txt").exists()
    assert not any(p.is_symlink() for p in out.rglob("*"))
    zed = (out / "feedback" / "zed.txt").read_text(encoding="utf-8")
    assert "Score: 4 / 4 points" in zed and "flowlab grade: zed" in zed
    rows = list(csv.DictReader((out / "gradebook.csv").open(encoding="utf-8")))
    assert {r["student"] for r in rows} >= {"zed", *ROUTES}


def test_a_daemon_is_gone_when_grading_ends(batch):
    assert _marked_processes() == []
    assert batch["rewritten"] == batch["written"]  # nothing rewrote the reports after the grader
    assert not batch["host_tmp"].exists()


def test_a_flagged_card_shows_no_pass_mark(batch):
    for route in FLAGGED:
        result = batch["results"][route]
        assert any(c["passed"] for c in result["checks"])  # square and unit did pass...
        card = (batch["out"] / "feedback" / f"{route}.txt").read_text(encoding="utf-8")
        assert "✔" not in card  # ...but the card does not say so
        assert "not counted until the instructor reviews" in card


def test_a_file_named_after_another_lab_is_graded_by_its_metadata_with_a_warning(batch):
    result = batch["results"]["misnamed"]
    assert result["lab"] == LAB and result["total"] == sum(POINTS.values())
    assert any(f"names lab {OTHER_LAB}" in w for w in result["warnings"]), result["warnings"]


def test_an_unreadable_file_is_not_put_on_a_lab_by_its_folder(batch):
    result = batch["results"]["unreadable_in_lab_folder"]
    assert result["status"] == "invalid" and result["lab"] is None
    assert "is the file truncated?" in result["reason"] and "at at" not in result["reason"]


def test_without_bwrap_the_grader_says_so_and_still_grades(tmp_path, monkeypatch, capsys):
    notebook = students.write(tmp_path / "in", "ann.ipynb", students.student({"mean": WRONG["mean"]}))
    monkeypatch.setenv("PYTHONPATH", str(students.KERNEL_PATH))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no bwrap on it
    status = cli.main(["grade", str(notebook), "--solutions", str(students.solutions_folder(tmp_path)),
                       "--out", str(tmp_path / "grades"), "--quiet", "--lab", LAB])
    captured = capsys.readouterr()
    assert status == 0
    assert "bubblewrap (bwrap) is not installed" in captured.err
    assert "WITHOUT an operating-system sandbox" in captured.err
    report = json.loads((tmp_path / "grades" / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["sandbox"].startswith("none")
    assert report["submissions"][0]["total"] == sum(POINTS.values()) - POINTS[MEAN]


def test_without_the_sandbox_an_edited_check_module_flags_the_run_that_edited_it(tmp_path, monkeypatch):
    checks = Path(shutil.copytree(students.KERNEL_PATH, tmp_path / "kernel_path"))
    notebook = students.write(tmp_path / "in", "eve.ipynb", students.student({"mean": EDIT_CHECKS.format()}))
    monkeypatch.setenv("PYTHONPATH", str(checks))
    with students.watching(checks):
        [result], _ = grade([notebook], solutions=students.solutions_folder(tmp_path),
                            options=Options(Limits(cell_timeout=60, wall_clock=120), sandbox="none"))
    assert "edited by a submission" in (checks / "tinylab_checks.py").read_text(encoding="utf-8")  # it could
    assert result.status == "flagged" and result.total == 0
    assert any("grading code on disk changed while this notebook ran" in f for f in result.flags), result.flags


def test_sandbox_bwrap_without_bwrap_is_a_usage_error(tmp_path, monkeypatch, capsys):
    notebook = students.write(tmp_path / "in", "ann.ipynb", students.student())
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    status = cli.main(["grade", str(notebook), "--solutions", str(students.solutions_folder(tmp_path)),
                       "--out", str(tmp_path / "grades"), "--sandbox", "bwrap"])
    assert status == 2 and "bwrap" in capsys.readouterr().err
    assert not (tmp_path / "grades").exists()


def test_a_flagged_card_never_shows_a_pass_mark_even_with_kept_scores():
    result = SubmissionResult("a.ipynb", "a", LAB, "flagged", "1 place(s) tamper", flags=["cell x, line 1: ..."],
                              checks=[CheckResult("square function", 2, True, 2.0, counted=True)])
    card = feedback_text(result)
    assert "✔" not in card and "⚑ square function (2/2): counted, but the code is flagged" in card


def test_the_grader_process_never_imports_tensorflow():
    code = ("import sys, flowlab.grading.command, flowlab.grading.pipeline, flowlab.grading.report; "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


# --- the pieces, without a kernel -------------------------------------------------------------------

def test_the_kernel_sees_the_package_read_only_and_not_the_hidden_folders(tmp_path):
    from flowlab.grading.sandbox import kernel_prefix

    work, hidden = tmp_path / "work", students.HERE  # the fixtures folder holds the tiny lab's solution
    work.mkdir()
    env = {"PYTHONPATH": str(students.HERE.parent), "FLOWLAB_FAST": "1", "SECRET_TOKEN": "x"}
    args = kernel_prefix(SANDBOX.hiding([hidden]), work, env)
    pairs = list(zip(args, args[1:]))
    package = str(Path(integrity.__file__).resolve().parents[1])
    assert ("--ro-bind", package) in pairs and ("--bind", package) not in pairs
    assert ("--ro-bind", str(students.HERE.parent)) in pairs
    assert ("--tmpfs", str(hidden)) in pairs  # under a mounted folder, so covered
    assert ("--bind", str(work.resolve())) in pairs
    assert "--unshare-pid" in args or "--unshare-all" in args
    assert "--die-with-parent" in args and "--clearenv" in args
    assert "SECRET_TOKEN" not in args and ("--setenv", "FLOWLAB_FAST") in pairs


def _plan_and_outcome(raw_stdout: str, nbval_passed: bool = True, raw_stderr: str = ""):
    from flowlab.grading.assemble import PlannedCell
    from flowlab.grading.runner import RunOutcome

    plan = [PlannedCell("check", "solution", "check-mean", MEAN, 1.0, expected=f"\u2714 {MEAN}\n")]
    record = {"cell": 0, "phase": "call", "raised": not nbval_passed, "message": "", "stdout": "",
              "raw_stdout": raw_stdout, "raw_stderr": raw_stderr, "reply": "ok", "ename": "", "evalue": ""}
    return plan, RunOutcome(records={0: record})


@pytest.mark.parametrize("raw", [
    f"\u2718 {MEAN}: got <class '\r\u2714 {MEAN}'>\n",  # nbval's coalescing reads "✔ mean of the data"
    f"\u2718 {MEAN}: no" + "\x08" * 23 + f"\u2714 {MEAN}\n",
    f"\x1b[2K\u2714 {MEAN}\n",
    f"\u2714 {MEAN}\u202e\n",
    f"\u2714 {MEAN}\n\u2714 {MEAN}\n",
])
def test_a_verdict_forged_with_control_characters_does_not_count(raw):
    from flowlab.grading.scoring import score_run

    plan, outcome = _plan_and_outcome(raw)  # as if nbval had found the verdict after coalescing
    [check], _ = score_run(plan, outcome)
    assert not check.passed and check.earned == 0
    assert "\r" not in check.feedback and "\x1b" not in check.feedback and "\x08" not in check.feedback


def test_the_exact_verdict_counts_and_one_on_stderr_does_not():
    from flowlab.grading.scoring import score_run

    [check], _ = score_run(*_plan_and_outcome(f"\u2714 {MEAN}  \n"))
    assert check.passed and check.earned == 1.0
    [check], _ = score_run(*_plan_and_outcome(f"\u2714 {MEAN}\n", raw_stderr=f"\u2718 {MEAN}: wrong\n"))
    assert not check.passed and "stderr" in check.feedback


def test_a_truncated_file_gets_a_readable_reason(tmp_path):
    from flowlab.grading.validate import InvalidSubmission, read_submission

    path = tmp_path / "a.ipynb"
    path.write_text('{"cells": [{"source": "x = 1', encoding="utf-8")
    with pytest.raises(InvalidSubmission) as err:
        read_submission(path)
    assert str(err.value) == ("not a notebook: the file is not valid JSON (unterminated string at line 1, "
                              "column 23; is the file truncated?)")


def test_nbformat_warnings_name_the_file(tmp_path):
    from flowlab.grading.validate import read_submission

    notebook = json.loads(students.SOLUTION.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        cell.pop("id", None)  # nbformat 4.5 without ids: MissingIDFieldWarning
    path = tmp_path / "no_ids.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    notes: list[str] = []
    with pytest.warns(Warning) as caught:
        read_submission(path, notes)
    assert any(str(path) in str(w.message) for w in caught)
    assert notes and all(note.startswith("nbformat: ") for note in notes)


def test_a_report_is_written_over_a_planted_symlink_not_through_it(tmp_path):
    from flowlab.grading.report import write_atomic, write_feedback

    target = tmp_path / "target.txt"
    target.write_text("keep me\n", encoding="utf-8")
    out = tmp_path / "out"
    (out / "feedback").mkdir(parents=True)
    (out / "report.json").symlink_to(target)
    (out / "feedback" / "a.txt").symlink_to(target)
    (out / "feedback" / "planted.txt").write_text("planted\n", encoding="utf-8")
    write_atomic(out / "report.json", "{}\n")
    result = SubmissionResult("a.ipynb", "a", LAB, "graded", checks=[CheckResult("square function", 2, True, 2.0)])
    write_feedback([result], out / "feedback")
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert not (out / "report.json").is_symlink() and (out / "report.json").read_text(encoding="utf-8") == "{}\n"
    assert sorted(p.name for p in (out / "feedback").iterdir()) == ["a.txt"]
    assert not (out / "feedback" / "a.txt").is_symlink()


def test_inside_the_sandbox_there_is_no_network_no_host_process_and_no_writable_package(tmp_path):
    from flowlab.grading.sandbox import kernel_prefix, prepare_work

    work = tmp_path / "work"
    work.mkdir()
    prepare_work(SANDBOX, work)
    package = Path(integrity.__file__).resolve().parents[1]
    code = f"""
import os, socket
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    print("network: yes")
except OSError:
    print("network: no")
print("pids:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
try:
    open({str(package / "checks" / "core.py")!r}, "a")
    print("package: writable")
except OSError:
    print("package: read-only")
print("home:", os.environ["HOME"] == os.getcwd() == {str(work.resolve())!r})
"""
    done = subprocess.run([*kernel_prefix(SANDBOX, work, dict(os.environ)), sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "network: no" and lines[2] == "package: read-only" and lines[3] == "home: True"
    assert len(eval(lines[1].split(":", 1)[1])) <= 3  # bwrap's init, python (and setpriv/prlimit exec'd away)
