"""pytest plugin for the grader's nbval run: it lives in pytest's process, never in the kernel.

Loaded by ``_pytest_main.py`` next to nbval (``pytest --nbval-lax``), it

* drops stderr from both sides of nbval's output comparison, so a TensorFlow warning that lands
  in a check cell changes no verdict (verdicts are printed on stdout);
* notices a dead kernel within a fraction of a second instead of waiting for the cell timeout
  (nbval only waits for the kernel's reply);
* keeps the kernel's ``execute_reply`` status, which says a cell raised even when the student
  silenced IPython's traceback display (nbval only watches for error messages);
* writes one JSON line per cell to ``--flowlab-results``, each signed with an HMAC key that pytest
  read from a pipe before the kernel started, so the kernel can neither forge nor edit a result.

This module must not import flowlab (that would load TensorFlow into pytest's process).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from queue import Empty

import pytest
from nbval import kernel as nbval_kernel
from nbval import plugin as nbval_plugin

POLL_SECONDS = 0.2
TEXT_LIMIT = 4000

_key: bytes = b""
_results = None


class KernelDied(RuntimeError):
    """The kernel process exited while a cell ran."""


def sign(key: bytes, record: dict) -> str:
    payload = json.dumps(record, sort_keys=True, ensure_ascii=True).encode("ascii")
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


_transform = nbval_plugin.transform_streams_for_comparison


def _without_stderr(outputs):
    return _transform([o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")])


def _execute_cell_input(self, cell_input, allow_stdin=None):
    self.flowlab_reply_status = None
    return self.kc.execute(cell_input, store_history=False, allow_stdin=allow_stdin, stop_on_error=False)


def _await_reply(self, msg_id, timeout=None):
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
        try:
            msg = self.get_message(stream="shell", timeout=wait)
        except Empty:
            if not self.is_alive():
                raise KernelDied("the kernel died while this cell ran (os._exit, a crash, or the memory limit)") from None
            if deadline is not None and time.monotonic() >= deadline:
                raise
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            self.flowlab_reply_status = msg["content"].get("status")
            return


def pytest_addoption(parser):
    group = parser.getgroup("flowlab", "flowlab grading")
    group.addoption("--flowlab-results", help="JSON-lines file for the per-cell results")
    group.addoption("--flowlab-key-fd", type=int, help="pipe to read the results' HMAC key from")


def pytest_configure(config):
    global _key, _results
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
    nbval_plugin.transform_streams_for_comparison = _without_stderr
    nbval_kernel.RunningKernel.await_reply = _await_reply
    nbval_kernel.RunningKernel.execute_cell_input = _execute_cell_input


def pytest_unconfigure(config):
    if _results is not None:
        _results.close()


def _text(value) -> str:
    value = value if isinstance(value, str) else str(value)
    return value if len(value) <= TEXT_LIMIT else value[:TEXT_LIMIT] + " [...]"


def _record(item, call) -> dict:
    outputs = getattr(item, "test_outputs", None) or []
    stdout = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    errors = [o for o in outputs if o.get("output_type") == "error"]
    kernel = getattr(item.parent, "kernel", None)
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
    }
    if call.excinfo is not None and isinstance(call.excinfo.value, KernelDied):
        record["kernel_died"] = True
    return record


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
