"""Entry point of the grader's pytest subprocess: pytest with nbval and the grading plugin.

Run as a script so that pytest's process does not import flowlab (and TensorFlow); the plugin is
loaded from its file.
"""

import importlib.util
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    if sys.path and Path(sys.path[0] or ".").resolve() == here:
        sys.path.pop(0)  # this folder's modules must not shadow anything pytest imports
    # jsonschema (under nbformat) imports rfc3987_syntax when installed, which builds a grammar at
    # import time: seconds per notebook on a busy machine, for a URI format check that nbformat's
    # notebook schema never uses. Blocking it makes jsonschema skip that one format checker.
    sys.modules.setdefault("rfc3987_syntax", None)
    spec = importlib.util.spec_from_file_location("flowlab_grading_nbval_plugin", here / "nbval_plugin.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)

    import pytest

    sys.exit(pytest.main(sys.argv[1:], plugins=[plugin]))
