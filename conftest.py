"""Repository-wide pytest set-up: fast mode by default, and stderr left out of nbval comparisons.

The solution notebooks run under ``pytest --nbval-lax`` (see pyproject.toml), which compares the
outputs of the ``# NBVAL_CHECK_OUTPUT`` cells with those stored in the solution.  nbval compares
stderr like stdout, so a TensorFlow log line that happens to land in a check cell would fail it;
verdicts are printed on stdout, so stderr is dropped before comparing.
"""

import os

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
