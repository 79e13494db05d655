"""A quiet TensorFlow: its start-up log lines never reach a notebook, the CLI or the tests.

TensorFlow's C++ core writes to file descriptor 2 while it loads (absl's "All log messages before
absl::InitializeLog()", oneDNN's round-off notice, "Could not find cuda drivers") and again when it
first probes for devices ("failed call to cuInit" on a machine without a GPU). The first lines are
written before ``TF_CPP_MIN_LOG_LEVEL`` is read, so no setting hides them: the only place to stop
them is around the import itself. :func:`install` arranges that the first ``import tensorflow`` in
this process -- whoever makes it, flowlab or the notebook -- runs with descriptor 2 pointed at
``/dev/null`` until TensorFlow and its devices are up; then stderr is restored, so every later
warning or error TensorFlow reports is seen as usual. Importing flowlab does not load TensorFlow:
commands that never touch it (``flowlab make-labs``, ``flowlab grade``) start in a fraction of a
second.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator

__all__ = ["install", "silenced_stderr"]

# ERROR lines TensorFlow logs in healthy runs ("NodeDef mentions attribute use_unbounded_threadpool"
# from tf.data, the cuInit probe) are not errors of the user's program; a real error raises in Python.
LOG_LEVEL = "3"


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (C++ writers included).

    >>> import os
    >>> with silenced_stderr():
    ...     _ = os.write(2, b"a C++ log line nobody sees")
    """
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, and wraps its loading in :func:`silenced_stderr`."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # one import only; the real finders do the work
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module):  # noqa: ANN001
            with silenced_stderr():
                load(module)
                module.config.list_physical_devices()  # the device probe logs too

        spec.loader.exec_module = exec_module  # this spec's own loader instance
        return spec


class _NoRetracingNotice(logging.Filter):
    """Drops two TensorFlow warnings a healthy flowlab run triggers; other warnings pass.

    * "triggered tf.function retracing": every :func:`flowlab.training.fit` of a new flow traces a
      new training function, so a notebook that trains five flows gets it though nothing retraces in
      a loop;
    * "back_prop=False is deprecated": TFP's ODE solvers (FFJORD) still call ``tf.while_loop`` that
      way; nothing the user can change.
    """

    NOTICES = ("triggered tf.function retracing", "back_prop=False is deprecated")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in self.NOTICES)


def install() -> None:
    """Make the first ``import tensorflow`` of this process quiet (no-op once it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", LOG_LEVEL)
    tf_logger = logging.getLogger("tensorflow")  # TensorFlow's own logger; getting it loads nothing
    if not any(isinstance(f, _NoRetracingNotice) for f in tf_logger.filters):
        tf_logger.addFilter(_NoRetracingNotice())
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
