"""Run an assembled notebook under nbval, its kernel in the sandbox, within limits.

Each run gets a fresh temporary folder with three parts: ``notebook/`` (the assembled notebook,
read by pytest only), ``private/`` (pytest's configuration and the results file) and ``work/`` (the
kernel's working directory and IPC sockets: the only folder the sandboxed kernel can write, see
:mod:`flowlab.grading.sandbox`).  pytest (with nbval and :mod:`flowlab.grading.nbval_plugin`)
runs outside the sandbox in its own process group, in fast mode (``FLOWLAB_FAST=1``), with a
per-cell timeout (nbval's), a wall-clock limit, output caps and a memory limit enforced from here.

The memory limit watches the resident memory of pytest itself (which buffers the notebook's output)
and of all its descendants (the sandbox, the kernel and whatever it starts) rather than setting
``RLIMIT_AS``: TensorFlow reserves far more virtual memory than it ever touches, so an
address-space limit breaks honest labs.  Over the limit, the kernel is killed; pytest notices
within a fraction of a second and finishes the remaining cells as failed (and when pytest's own
memory is over the limit, it is killed too).  Past the wall-clock limit, the whole process group is
killed.

The per-cell results come back as JSON lines signed with a key the kernel never sees; nothing is
unpickled, and a line that fails its signature is discarded and reported.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from flowlab.grading.sandbox import Sandbox, kernel_prefix, prepare_work

__all__ = ["Limits", "RunOutcome", "run_notebook", "nbval_command"]

ENTRY = Path(__file__).resolve().parent / "_pytest_main.py"
SANITIZE = """\
# What may vary between runs of a check cell without changing its verdict.
regex: [ \\t]+(\\n|$)
replace: \\1
"""
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 300.0  # seconds per cell (nbval interrupts the kernel)
    wall_clock: float = 900.0  # seconds for the whole notebook
    memory_mb: float = 4096.0  # resident memory of pytest, the kernel and its children
    startup_timeout: float = 120.0  # seconds for the kernel to start
    cell_output_mb: float = 1.0  # output kept per cell (more is dropped and the cell fails)
    notebook_output_mb: float = 10.0  # output per notebook (more stops the kernel)


@dataclass
class RunOutcome:
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # nbval cell number -> result
    stopped: str | None = None  # a limit the student's code hit
    error: str | None = None  # the grader's own failure (not the student's)
    seconds: float = 0.0
    peak_mb: float = 0.0
    forged: int = 0  # result lines whose signature did not verify
    log: str = ""
    sandboxed: bool = False


def nbval_command(notebook: Path, *, cell_timeout: float, startup_timeout: float, extra: list[str] = ()) -> list[str]:
    """The pytest command line (without the grading plugin's own options)."""
    folder = notebook.parent
    return [
        sys.executable, str(ENTRY), str(notebook),
        "--nbval-lax", "--nbval-current-env",
        f"--nbval-cell-timeout={cell_timeout:g}", f"--nbval-kernel-startup-timeout={startup_timeout:g}",
        "-o", "addopts=", f"--rootdir={folder}", f"--confcutdir={folder}",
        "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--no-header", "-rN",
        "-W", "ignore::DeprecationWarning", *extra,
    ]


def _environment(fast: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        FLOWLAB_FAST="1" if fast else "0",
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        FLOWLAB_NO_INSTALL="1",  # the labs' set-up cell never installs anything under the grader
    )
    if env.get("PYTHONPATH"):  # the kernel runs in a temporary folder: relative entries would move
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


def _children(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _process(pid: int) -> Any:
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _resident_mb(processes: list[Any]) -> float:
    import psutil

    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _kill(processes: list[Any]) -> None:
    import psutil

    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _read_records(path: Path, key: bytes, outcome: RunOutcome) -> None:
    from flowlab.grading.nbval_plugin import sign

    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            mac = record.pop("mac")
            cell = record["cell"]
        except (ValueError, KeyError, TypeError):
            outcome.forged += 1
            continue
        if not isinstance(mac, str) or not hmac.compare_digest(mac, sign(key, record)) or not isinstance(cell, int):
            outcome.forged += 1
            continue
        outcome.records[cell] = record  # a later phase of the same cell wins


def run_notebook(notebook: nbformat.NotebookNode, limits: Limits = Limits(), *, fast: bool = True,
                 sandbox: Sandbox | None = None) -> RunOutcome:
    """Run ``notebook`` under nbval in a temporary folder; return the per-cell results."""
    sandbox = sandbox or Sandbox("none")
    outcome = RunOutcome(sandboxed=sandbox.enabled)
    with tempfile.TemporaryDirectory(prefix="flowlab-grade-") as tmp:
        work, private, folder = Path(tmp) / "work", Path(tmp) / "private", Path(tmp) / "notebook"
        for made in (work, private, folder):
            made.mkdir(mode=0o700)
        # Unsandboxed, the kernel starts in the notebook's folder (nbval's default), as before.
        path = folder / "submission.ipynb"
        nbformat.write(notebook, path)
        (private / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (private / "sanitize.cfg").write_text(SANITIZE, encoding="utf-8")
        results, log_path = private / "results.jsonl", private / "pytest.log"
        env = _environment(fast)
        extra = ["-c", str(private / "pytest.ini"), f"--nbval-sanitize-with={private / 'sanitize.cfg'}",
                 f"--flowlab-cell-output={int(limits.cell_output_mb * 2**20)}",
                 f"--flowlab-notebook-output={int(limits.notebook_output_mb * 2**20)}"]
        if sandbox.enabled:
            prepare_work(sandbox, work)
            config = {"prefix": kernel_prefix(sandbox.hiding([private, folder]), work, env),
                      "work": str(work.resolve()), "user": sandbox.user}
            (private / "sandbox.json").write_text(json.dumps(config), encoding="utf-8")
            extra.append(f"--flowlab-sandbox={private / 'sandbox.json'}")
        key = secrets.token_bytes(32)
        read_fd, write_fd = os.pipe()
        command = nbval_command(
            path, cell_timeout=limits.cell_timeout, startup_timeout=limits.startup_timeout,
            extra=[*extra, f"--flowlab-results={results}", f"--flowlab-key-fd={read_fd}"],
        )
        start = time.monotonic()
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, pass_fds=(read_fd,),
                                        start_new_session=True)
            finally:
                os.close(read_fd)
            try:
                os.write(write_fd, key)
            finally:
                os.close(write_fd)
            seen: dict[int, Any] = {}  # every descendant met, to kill the ones that outlive pytest
            pytest_process = _process(proc.pid)
            try:
                while proc.poll() is None:
                    time.sleep(POLL_SECONDS)
                    elapsed = time.monotonic() - start
                    children = _children(proc.pid)
                    seen.update((child.pid, child) for child in children)
                    own = _resident_mb([pytest_process]) if pytest_process is not None else 0.0
                    resident = own + _resident_mb(children)
                    outcome.peak_mb = max(outcome.peak_mb, resident)
                    if resident > limits.memory_mb:
                        outcome.stopped = outcome.stopped or (
                            f"memory limit: the notebook used {resident:.0f} MB, more than "
                            f"{limits.memory_mb:.0f} MB, and was stopped")
                        _kill(children)
                        if own > limits.memory_mb:
                            break  # pytest itself holds it (the notebook's output): stop everything
                    if elapsed > limits.wall_clock:
                        outcome.stopped = outcome.stopped or (
                            f"wall-clock limit: the notebook ran for more than {limits.wall_clock:.0f} s and was "
                            "stopped")
                        break
            finally:
                # The kernel runs in a session of its own (jupyter_client starts it so): kill it by
                # process, then pytest's group with whatever else the student's code started in it.
                _kill(_children(proc.pid) + list(seen.values()))
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        outcome.seconds = time.monotonic() - start
        outcome.log = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        _read_records(results, key, outcome)
        code = proc.returncode
        if outcome.records and all(r.get("phase") == "setup" for r in outcome.records.values()):
            # No student code runs before the kernel is up: a kernel that cannot start is ours to fix.
            first = next(iter(outcome.records.values()))
            outcome.error = f"the kernel did not start: {str(first.get('message', '')).strip()[:500]}"
        elif outcome.stopped is None:
            if code < 0:
                outcome.stopped = f"the grading run was killed by signal {-code} from inside the notebook"
            elif code not in (0, 1):
                outcome.error = f"pytest --nbval-lax exited with status {code}:\n{outcome.log[-1500:]}"
    return outcome
