"""pytest plugin for the grader's nbval run: it lives in pytest's process, never in the kernel.

Loaded by ``_pytest_main.py`` next to nbval (``pytest --nbval-lax``), it

* drops stderr from both sides of nbval's output comparison, so a TensorFlow warning that lands
  in a check cell changes no verdict (verdicts are printed on stdout);
* notices a dead kernel within a fraction of a second instead of waiting for the cell timeout
  (nbval only waits for the kernel's reply);
* keeps the kernel's ``execute_reply`` status, which says a cell raised even when the student
  silenced IPython's traceback display (nbval only watches for error messages);
* launches the kernel inside the grader's sandbox (``--flowlab-sandbox``: the bwrap command line
  that goes before the kernel's), talking to it over IPC sockets in the kernel's work directory
  (the sandbox has no network) and interrupting it by message (a signal to bwrap would not reach it);
* records each cell's **raw** stdout as it arrived, before nbval coalesces the stream (where a
  ``\r`` deletes the text before it), and the hash of the source pytest sent, so the grader can
  require the verdict line exactly as the check printed it;
* caps the output it buffers: past ``--flowlab-cell-output`` bytes a cell's further output is
  dropped (and the cell fails), past ``--flowlab-notebook-output`` the kernel is killed;
* writes one JSON line per cell to ``--flowlab-results``, each signed with an HMAC key that pytest
  read from a pipe before the kernel started, so the kernel can neither forge nor edit a result.

This module must not import the flowlab package (that would load TensorFlow into pytest's
process): the notebook-format contract, :mod:`flowlab.notebook_format` (standard library only), is
loaded from its file.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from queue import Empty

import pytest
from nbval import kernel as nbval_kernel
from nbval import plugin as nbval_plugin


def _notebook_format():
    # The contract module, from its file (see the module docstring).
    name = "flowlab.notebook_format" if "flowlab.notebook_format" in sys.modules else "flowlab_notebook_format"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "notebook_format.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


notebook_format = _notebook_format()

POLL_SECONDS = 0.2
TEXT_LIMIT = 4000

_key: bytes = b""
_results = None
_sandbox: dict | None = None  # {"prefix": [...], "work": path, "user": uid or None}
_cell_output = 1 << 20
_notebook_output = 10 << 20
_notebook_bytes = 0


class KernelDied(RuntimeError):
    """The kernel process exited while a cell ran."""


def sign(key: bytes, record: dict) -> str:
    payload = json.dumps(record, sort_keys=True, ensure_ascii=True).encode("ascii")
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _execute_cell_input(self, cell_input, allow_stdin=None):
    self.flowlab_reply_status = None
    self.flowlab_raw = {"stdout": [], "stderr": []}
    self.flowlab_bytes = 0
    self.flowlab_dropped = False
    self.flowlab_source_sha = hashlib.sha256(cell_input.encode("utf-8")).hexdigest()
    msg_id = self.kc.execute(cell_input, store_history=False, allow_stdin=allow_stdin, stop_on_error=False)
    self.flowlab_msg_id = msg_id
    return msg_id


class OutputLimit(RuntimeError):
    """The notebook printed more than the grader buffers; its kernel was killed."""


def _size(content) -> int:
    if isinstance(content, str):
        return len(content.encode("utf-8", errors="replace"))
    return len(json.dumps(content, ensure_ascii=False, default=str).encode("utf-8", errors="replace"))


def _kill_kernel(kernel) -> None:
    # jupyter_client's own SIGKILL of the kernel process (bwrap, whose PID namespace then dies whole).
    try:
        kernel.km._kill_kernel()
    except Exception:  # noqa: BLE001 - already gone; shutdown_kernel below covers an older client
        try:
            kernel.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass


def _get_kernel_message(self, timeout=None, stream="iopub"):
    """nbval's iopub read, keeping the raw stream text and holding the output to its caps."""
    global _notebook_bytes
    msg = self.kernel.get_message(stream, timeout=timeout)
    kernel = self.kernel
    if msg.get("parent_header", {}).get("msg_id") != getattr(kernel, "flowlab_msg_id", None):
        return msg
    kind, content = msg.get("msg_type"), msg.get("content", {})
    if kind not in ("stream", "display_data", "execute_result", "error", "update_display_data"):
        return msg
    size = _size(content.get("text", "") if kind == "stream" else content)
    _notebook_bytes += size
    kernel.flowlab_bytes += size
    if _notebook_bytes > _notebook_output:
        kernel.flowlab_limit = (f"output limit: the notebook printed more than {_notebook_output / 2**20:g} MB; "
                                "its kernel was stopped")
        _kill_kernel(kernel)
        raise OutputLimit(kernel.flowlab_limit)
    if kernel.flowlab_bytes > _cell_output:
        # Keep nothing more of this cell: pytest's memory must not hold what the student printed.
        kernel.flowlab_dropped = True
        if kind == "stream":
            content["text"] = ""
        else:
            content.clear()
            content.update(data={"text/plain": ""}, metadata={}, ename="", evalue="", traceback=[],
                           execution_count=None)
        return msg
    if kind == "stream" and content.get("name") in kernel.flowlab_raw:
        kernel.flowlab_raw[content["name"]].append(str(content.get("text", "")))
    return msg


def _await_reply(self, msg_id, timeout=None):
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
        try:
            msg = self.get_message(stream="shell", timeout=wait)
        except Empty:
            if not self.is_alive():
                raise KernelDied("the kernel died while this cell ran (os._exit, a crash, or the memory limit)"
                                 ) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            self.flowlab_reply_status = msg["content"].get("status")
            return


def _sandboxed_manager(base):
    """nbval's KernelManager, launching the kernel through the sandbox over IPC sockets."""

    class SandboxedKernelManager(base):
        def __init__(self, *args, **kwargs):
            work = _sandbox["work"]
            super().__init__(*args, transport="ipc", ip=os.path.join(work, "kernel"), **kwargs)
            self.connection_file = os.path.join(work, "kernel.json")
            # SIGINT to bwrap's process group never reaches the kernel in its own session and PID
            # namespace; ipykernel interrupts itself on an interrupt_request message.
            self.kernel_spec.interrupt_mode = "message"

        def write_connection_file(self, **kwargs):
            super().write_connection_file(**kwargs)
            if _sandbox.get("user") is not None:
                os.chown(self.connection_file, _sandbox["user"], _sandbox["user"])

        def format_kernel_cmd(self, extra_arguments=None):
            return list(_sandbox["prefix"]) + super().format_kernel_cmd(extra_arguments)

    return SandboxedKernelManager


def pytest_addoption(parser):
    group = parser.getgroup("flowlab", "flowlab grading")
    group.addoption("--flowlab-results", help="JSON-lines file for the per-cell results")
    group.addoption("--flowlab-key-fd", type=int, help="pipe to read the results' HMAC key from")
    group.addoption("--flowlab-sandbox", help="JSON file: the sandbox command before the kernel's, and its work dir")
    group.addoption("--flowlab-cell-output", type=int, default=1 << 20, help="bytes of output kept per cell")
    group.addoption("--flowlab-notebook-output", type=int, default=10 << 20, help="bytes of output per notebook")


def pytest_configure(config):
    global _key, _results, _sandbox, _cell_output, _notebook_output
    fd = config.getoption("flowlab_key_fd")
    if fd is not None:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        os.close(fd)  # before any kernel starts: the student's process never holds the key
        _key = b"".join(chunks)
    path = config.getoption("flowlab_results")
    if path:
        _results = open(path, "a", encoding="utf-8")
    _cell_output = config.getoption("flowlab_cell_output")
    _notebook_output = config.getoption("flowlab_notebook_output")
    sandbox = config.getoption("flowlab_sandbox")
    if sandbox:
        with open(sandbox, encoding="utf-8") as handle:
            _sandbox = json.load(handle)
        nbval_kernel.KernelManager = _sandboxed_manager(nbval_kernel.KernelManager)
    notebook_format.compare_without_stderr(nbval_plugin)
    # nbval's internals, on purpose: read from nbval 0.11.0 (pinned in requirements.txt), whose only
    # public interface is its command-line options -- it defines no pytest hooks and documents no
    # classes. Nothing public launches the kernel through another command (the sandbox), reports an
    # ``execute_reply``'s status, or sees a stream message before ``coalesce_streams``; so the
    # grader replaces ``kernel.KernelManager``, ``RunningKernel.await_reply`` and
    # ``execute_cell_input``, ``IPyNbFile.get_kernel_message`` and
    # ``plugin.transform_streams_for_comparison``. tests/test_grading_sandbox.py and
    # tests/test_grading_limits.py fail when a new nbval changes them; re-read them before unpinning.
    nbval_kernel.RunningKernel.await_reply = _await_reply
    nbval_kernel.RunningKernel.execute_cell_input = _execute_cell_input
    nbval_plugin.IPyNbFile.get_kernel_message = _get_kernel_message


def pytest_unconfigure(config):
    if _results is not None:
        _results.close()


def _text(value) -> str:
    value = value if isinstance(value, str) else str(value)
    return value if len(value) <= TEXT_LIMIT else value[:TEXT_LIMIT] + " [...]"


def _record(item, call) -> dict:
    outputs = getattr(item, "test_outputs", None) or []
    stdout = notebook_format.stream_text(outputs)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    kernel = getattr(item.parent, "kernel", None)
    raw = getattr(kernel, "flowlab_raw", None) if call.when == "call" else None
    record = {
        "cell": int(getattr(item, "cell_num", -1)),
        "phase": call.when,
        "raised": call.excinfo is not None,
        "message": _text(call.excinfo.value) if call.excinfo is not None else "",
        "timed_out": bool(getattr(item.parent, "timed_out", False)),
        "stdout": _text(stdout),
        "ename": _text(errors[0].get("ename", "")) if errors else "",
        "evalue": _text(errors[0].get("evalue", "")) if errors else "",
        "reply": getattr(kernel, "flowlab_reply_status", None) if call.when == "call" else None,
        # As the kernel sent it, before nbval's coalescing: what the verdict must equal.
        "raw_stdout": _text("".join(raw["stdout"])) if raw else "",
        "raw_stderr": _text("".join(raw["stderr"])) if raw else "",
        "source_sha": getattr(kernel, "flowlab_source_sha", "") if call.when == "call" else "",
        "output_dropped": bool(getattr(kernel, "flowlab_dropped", False)) if call.when == "call" else False,
        "limit": getattr(kernel, "flowlab_limit", "") or "",
    }
    if call.excinfo is not None and isinstance(call.excinfo.value, KernelDied):
        record["kernel_died"] = True
    return record


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    # A cell that never reached the kernel (it was dead already) must not report the last one's.
    kernel = getattr(item.parent, "kernel", None)
    if kernel is not None:
        kernel.flowlab_reply_status = None
        kernel.flowlab_raw = {"stdout": [], "stderr": []}
        kernel.flowlab_bytes = 0
        kernel.flowlab_dropped = False
        kernel.flowlab_source_sha = ""
        kernel.flowlab_msg_id = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if _results is not None and hasattr(item, "cell_num") and (
            call.when == "call" or (call.when == "setup" and call.excinfo is not None)):
        record = _record(item, call)
        record["mac"] = sign(_key, record)
        _results.write(json.dumps(record, ensure_ascii=True) + "\n")
        _results.flush()
    return report
