"""The operating-system sandbox each grading kernel runs in (bubblewrap).

The student's code runs in a Jupyter kernel, and the kernel alone runs inside ``bwrap``; pytest,
nbval, the comparison and the reports stay outside.  Inside the sandbox the kernel sees:

* the system (``/usr``, ``/etc``), the Python installation, the virtual environment, the installed
  flowlab package, the ``PYTHONPATH`` entries and the lab's data (``FLOWLAB_MNIST_DIR``), all
  **read-only**, so no submission can edit a check module on disk for itself or the next one;
* one private, writable **work directory** (its current directory and ``HOME``), which also holds
  the kernel's IPC sockets and connection file (the kernel has no network, so no TCP);
* a private ``/tmp`` (a small tmpfs), a minimal ``/dev`` and a ``/proc`` of its own PID namespace.

It does not see the solutions folder, the output folder, other submissions, or the grader's private
folder (results file, signing key): none of them is mounted, and any of them that lies under a
mounted path is covered by an empty one.  It has no network (its own network namespace), its own
PID namespace (so it cannot see pytest's ``/proc/<pid>/mem``, and when the kernel exits every
process it started, daemons included, is killed), and it dies with pytest (``--die-with-parent``).
When the grader runs as root the kernel runs as ``nobody`` (65534) without capabilities.

When ``bwrap`` is missing or cannot create namespaces (macOS, some containers), the grader says what
is not protected and grades without it, as before: see :data:`UNPROTECTED`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sandbox", "SandboxUnavailable", "UNPROTECTED", "probe", "kernel_prefix", "NOBODY"]

NOBODY = 65534
TMP_BYTES = 256 * 2**20  # /tmp is memory the RSS watch cannot see: keep it small
SHM_BYTES = 64 * 2**20
FILE_BYTES = 2**30  # the largest file the kernel may write (RLIMIT_FSIZE)
PROCESSES = 4096  # RLIMIT_NPROC for the sandbox user (threads count): stops a fork bomb
# Environment variables a kernel may inherit; everything else (tokens, the grader's paths) stays out.
PASSED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
PASSED_PREFIXES = ("FLOWLAB_", "TF_CPP_", "TF_USE_", "TF_ENABLE_", "TF_NUM_", "TF_FORCE_")
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")

UNPROTECTED = ("the kernels run WITHOUT an operating-system sandbox: a submission can read and write "
               "whatever the grader's user can (the solutions, the output folder, other submissions, "
               "the installed check modules), reach the network, and leave processes running. "
               "The static scan and the checks done after each run still apply. Install bubblewrap "
               "(Debian/Ubuntu: apt-get install bubblewrap) or run the grader in a throwaway container.")


class SandboxUnavailable(RuntimeError):
    """``--sandbox bwrap`` was asked for and bubblewrap cannot run here."""


@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    bwrap: str | None = None
    user: int | None = None  # the uid the kernel runs as (the grader is root), else the grader's own
    warning: str | None = None  # said once at start when the kernels are not sandboxed
    hide: tuple[str, ...] = field(default_factory=tuple)  # paths no kernel may see (solutions, out, ...)

    @property
    def enabled(self) -> bool:
        return self.kind == "bwrap"

    def hiding(self, paths) -> Sandbox:
        extra = tuple(str(Path(p).resolve()) for p in paths)
        return Sandbox(self.kind, self.bwrap, self.user, self.warning, tuple(dict.fromkeys(self.hide + extra)))


def _namespaces(as_root: bool) -> list[str]:
    if as_root:
        # Root keeps the host's user namespace so that setpriv can become `nobody` for real (a uid
        # mapped inside a user namespace would still own root's files); no --unshare-user.
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all"]


def _drop_privileges(user: int | None) -> list[str]:
    if user is None:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def probe(choice: str = "auto") -> Sandbox:
    """The sandbox to use: ``auto`` (bwrap when it works, else none with a warning), ``bwrap``
    (raise :class:`SandboxUnavailable` when it does not work) or ``none``."""
    if choice == "none":
        return Sandbox("none", warning="--sandbox none: " + UNPROTECTED)
    bwrap = shutil.which("bwrap")
    problem = None
    user = NOBODY if os.geteuid() == 0 else None
    if bwrap is None:
        problem = "bubblewrap (bwrap) is not installed"
    elif user is not None and shutil.which("setpriv") is None:
        problem = "setpriv (util-linux) is missing, so the kernel could not drop root"
    elif shutil.which("prlimit") is None:
        problem = "prlimit (util-linux) is missing, so the kernel's limits could not be set"
    else:
        command = [bwrap, *_namespaces(user is not None), "--die-with-parent", "--new-session",
                   "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                   *_drop_privileges(user), "prlimit", "--core=0", "--", "true"]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as err:
            problem = f"bwrap does not run ({err})"
        else:
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                problem = f"bwrap cannot create a sandbox here ({why})"
    if problem is None:
        return Sandbox("bwrap", bwrap, user)
    if choice == "bwrap":
        raise SandboxUnavailable(f"--sandbox bwrap: {problem}")
    return Sandbox("none", warning=f"{problem}: {UNPROTECTED}")


def _resolved(path: str | os.PathLike) -> Path | None:
    try:
        resolved = Path(path).resolve()
    except OSError:
        return None
    return resolved if resolved.exists() else None


def _package_dirs() -> list[Path]:
    """Where flowlab's package is (an editable install maps it outside site-packages)."""
    spec = importlib.util.find_spec("flowlab")  # locates without importing (no TensorFlow)
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def _data_dirs(env: dict[str, str]) -> list[Path]:
    dirs = []
    if env.get("FLOWLAB_MNIST_DIR"):
        dirs.append(env["FLOWLAB_MNIST_DIR"])
    return [p for p in map(_resolved, dirs) if p is not None and p.is_dir()]


def readable_paths(env: dict[str, str]) -> list[Path]:
    """Everything mounted read-only besides the system: Python, the environment, flowlab, data."""
    found = [sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix, Path(sys.executable).parent]
    found += _package_dirs()
    found += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    found += _data_dirs(env)
    paths: list[Path] = []
    for path in map(_resolved, found):
        if path is not None and path.is_dir() and path != Path("/") and path not in paths:
            paths.append(path)
    # A folder inside another one is mounted with it.
    return [p for p in paths if not any(q != p and q in p.parents for q in paths)]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def kernel_environment(env: dict[str, str], work: Path) -> dict[str, str]:
    kept = {k: v for k, v in env.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    python_bin = str(Path(sys.executable).parent)
    kept.update(
        PATH=os.pathsep.join([python_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        HOME=str(work), MPLCONFIGDIR=str(work / ".matplotlib"), TMPDIR="/tmp",
        LANG=env.get("LANG") or "C.UTF-8",
    )
    if env.get("PYTHONPATH"):
        kept["PYTHONPATH"] = env["PYTHONPATH"]
    if env.get("FLOWLAB_MNIST_DIR") and _resolved(env["FLOWLAB_MNIST_DIR"]):
        kept["FLOWLAB_MNIST_DIR"] = str(_resolved(env["FLOWLAB_MNIST_DIR"]))  # the kernel starts elsewhere
    return kept


def kernel_prefix(sandbox: Sandbox, work: Path, env: dict[str, str]) -> list[str]:
    """The command that goes before the kernel's own (``python -m ipykernel_launcher -f ...``)."""
    if not sandbox.enabled:
        return []
    assert sandbox.bwrap is not None
    work = work.resolve()
    args = [sandbox.bwrap, *_namespaces(sandbox.user is not None), "--die-with-parent", "--new-session"]
    mounted: list[Path] = []
    made: set[Path] = set()

    def parents(path: Path) -> list[str]:
        # bwrap makes missing mount points 0700 (root's): nobody could not walk to /root/.pyenv/...
        out = []
        for parent in reversed(path.parents):
            if parent != Path("/") and parent not in made and not _inside(parent, mounted):
                made.add(parent)
                out += ["--perms", "0755", "--dir", str(parent)]
        return out

    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]  # merged /usr: /bin -> usr/bin
        elif path.is_dir():
            args += ["--ro-bind", name, name]
            mounted.append(path)
    # /tmp before the folders mounted from the host: a PYTHONPATH folder under /tmp stays visible.
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]  # POSIX semaphores need it
    made.add(Path("/tmp"))
    for path in readable_paths(env):
        if not _inside(path, mounted):
            args += [*parents(path), "--ro-bind", str(path), str(path)]
            mounted.append(path)
    # What must stay out of sight even where it lies under a mounted folder: an empty tmpfs over a
    # folder, /dev/null over a file.
    for name in sandbox.hide:
        path = Path(name)
        if path != work and _inside(path, mounted) and path.exists() and work not in path.parents:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            else:
                args += ["--ro-bind", "/dev/null", str(path)]
    args += [*parents(work), "--bind", str(work), str(work), "--chdir", str(work), "--clearenv"]
    for key, value in sorted(kernel_environment(env, work).items()):
        args += ["--setenv", key, value]
    args += ["--", *_drop_privileges(sandbox.user)]
    limits = [f"--fsize={FILE_BYTES}", "--core=0"]
    if sandbox.user is not None:  # RLIMIT_NPROC counts per user: only for the sandbox's own user
        limits.append(f"--nproc={PROCESSES}")
    args += ["prlimit", *limits, "--"]
    return args


def prepare_work(sandbox: Sandbox, work: Path) -> None:
    """Make the work directory the kernel's own (it runs as ``nobody`` when the grader is root)."""
    if sandbox.enabled and sandbox.user is not None:
        os.chown(work, sandbox.user, sandbox.user)
        work.chmod(0o700)
