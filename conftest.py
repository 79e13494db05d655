"""Repository-wide pytest set-up: fast mode by default, and stderr left out of nbval comparisons.

The solution notebooks run under ``pytest --nbval-lax`` (see pyproject.toml), which compares the
outputs of the ``# NBVAL_CHECK_OUTPUT`` cells with those stored in the solution.  nbval compares
stderr like stdout, so a TensorFlow log line that happens to land in a check cell would fail it;
verdicts are printed on stdout, so stderr is dropped before comparing.
"""

import functools
import os
from pathlib import Path

import pytest

os.environ.setdefault("FLOWLAB_FAST", "1")  # kernels started by nbval inherit it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # flowlab.quiet.LOG_LEVEL, for nbval kernels too
# The package does not know where a machine keeps MNIST (it downloads into Keras's cache); the course
# machines and CI keep the official test set beside the repository. Set before any kernel starts.
_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "shared", "data", "mnist")
if not os.environ.get("FLOWLAB_MNIST_DIR") and os.path.isdir(_MNIST):
    os.environ["FLOWLAB_MNIST_DIR"] = os.path.realpath(_MNIST)

from flowlab.notebook_format import compare_without_stderr  # noqa: E402 - after FLOWLAB_FAST is set

try:
    from nbval import plugin as _nbval
except ImportError:  # pragma: no cover - nbval is in requirements.txt
    _nbval = None

if _nbval is not None:
    compare_without_stderr(_nbval)


# `make test` runs the suite on two pytest-xdist workers (``-n 2 --dist loadfile``): a file's tests run
# in one process, in order (a notebook's cells share its kernel, a module its fixtures). One thing is
# wider than a file: the ``grading_batch`` session fixture (tests/conftest.py) grades every real-lab
# submission in minutes, for tests in more than one file; those files form one unit so it runs once.
# (``--dist loadgroup`` would say this with marks, but pytest 9 no longer reports xdist's group suffix.)
_BATCH = "grading_batch"
_ROOT = Path(__file__).resolve().parent


@functools.cache
def _uses_batch(path: str) -> bool:
    """Whether the test file ``path`` (a node id's file part, relative to this directory) asks for the batch."""
    if not path.endswith(".py"):
        return False
    try:
        return _BATCH in (_ROOT / path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: pytest without it runs the suite in one process
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files that share the grading batch as one unit."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByFile(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return _BATCH if _uses_batch(path) else path

    return ByFile(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The grading batch first, then the solution notebooks, then the rest (each file in its order).

    Longest first: the two workers then do not end with one long unit running alone. The order is
    kept by ``--no-loadscope-reorder``; without xdist it is simply the order the suite runs in.
    """

    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return 0 if _uses_batch(path) else 1 if path.endswith(".ipynb") else 2

    items.sort(key=rank)  # stable
