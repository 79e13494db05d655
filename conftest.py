"""Repository-wide pytest set-up: fast mode by default, and stderr left out of nbval comparisons.

The solution notebooks run under ``pytest --nbval-lax`` (see pyproject.toml), which compares the
outputs of the ``# NBVAL_CHECK_OUTPUT`` cells with those stored in the solution.  nbval compares
stderr like stdout, so a TensorFlow log line that happens to land in a check cell would fail it;
verdicts are printed on stdout, so stderr is dropped before comparing.
"""

import os

os.environ.setdefault("FLOWLAB_FAST", "1")  # kernels started by nbval inherit it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # flowlab.quiet.LOG_LEVEL, for nbval kernels too

try:
    from nbval import plugin as _nbval
except ImportError:  # pragma: no cover - nbval is in requirements.txt
    _nbval = None

if _nbval is not None:
    _transform = _nbval.transform_streams_for_comparison

    def _without_stderr(outputs):
        return _transform([o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")])

    _nbval.transform_streams_for_comparison = _without_stderr
