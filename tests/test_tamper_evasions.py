"""Routes around the checks that a scan reading names alone would miss: each is flagged.

Every route below makes a check print ``✔ title`` without the answer being right, or rewrites the
check cell before it runs, through a path that never writes ``check``, ``print`` or ``setattr``:
the student's own import of a check module, a second name for a module, the type machinery, the
kernel's shell, a running frame, a signal.  Honest code that looks a little like them stays unflagged.
"""

from __future__ import annotations

import pytest

from flowlab.grading.tamper import module_names, protected_names, scan

SETUP = "import numpy as np\nimport tensorflow as tf\nfrom flowlab.checks import two_moons as check"
CHECKS = ["# NBVAL_CHECK_OUTPUT\ncheck.trained_flow(trainable_distribution, X_test)"]
FORGE = "lambda *args, **kwargs: print(chr(10000 + 4) + ' trained flow')"


def _flags(source: str) -> list[str]:
    return [str(f) for f in scan([("answer", source)], modules=module_names([SETUP]),
                                 protected=protected_names(CHECKS))]


@pytest.mark.parametrize("source, words", [
    (f"import flowlab.checks.two_moons as m\nm.trained_flow = {FORGE}", "m.trained_flow"),
    ("from flowlab.checks import core\ncore.PASS, core.FAIL = 'x', 'y'", "core.PASS"),
    (f"import numpy as numerical\nnumerical.isfinite = {FORGE}", "numerical.isfinite"),
    (f"o = np\no.mean = {FORGE}", "o.mean"),
    (f"t = tf.math\nt.reduce_mean = {FORGE}", "t.reduce_mean"),
    (f"object.__setattr__(check, 'trained_flow', {FORGE})", "__setattr__"),
    (f"type(check).__setattr__(check, 'trained_flow', {FORGE})", "__setattr__"),
    ("import ast\nget_ipython().ast_transformers.append(ast.NodeTransformer())", "ast_transformers"),
    ("shell = get_ipython()\nshell.input_transformers_post.append(lambda lines: lines)", "handle on the kernel"),
    ("import IPython\nIPython.get_ipython().events.register('pre_run_cell', print)", "kernel's own machinery"),
    ("from IPython import get_ipython as g\ng().ast_transformers.clear()", "IPython"),
    ("get_ipython().run_cell('check.trained_flow = None')", "run_cell"),
    ("import inspect\nframe = inspect.currentframe()\nframe.f_globals['check'] = None", "currentframe"),
    ("import inspect as ins\nouter = ins.stack()[0]", "ins.stack"),
    ("from inspect import currentframe", "inspect"),
    ("import threading\nthreading.settrace(lambda *args: None)", "settrace"),
    ("import signal\nsignal.alarm(1)", "signal"),
    ("import sys\nout = sys.stdout\nout.write = None", "another name"),
    ("class A(np.ndarray):\n    def __array_function__(self, *args, **kwargs):\n        return True",
     "__array_function__"),
    ("class Meta(type):\n    def __instancecheck__(cls, other):\n        return True", "__instancecheck__"),
])
def test_evasions_are_flagged(source, words):
    flags = _flags(source)
    assert any(words in f for f in flags), flags


@pytest.mark.parametrize("source", [
    "%matplotlib inline\n!echo hello",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (8, 4)",
    "tfkl = tf.keras.layers\nlayer = tfkl.Dense(4)\nlayer.trainable = False",
    "import numpy as np\nstacked = np.stack([np.zeros(2), np.ones(2)])\ntrace = np.trace(np.eye(2))",
    "class Layer(tf.keras.layers.Layer):\n    def call(self, x):\n        return self.kernel * x",
    "from IPython.display import display\ndisplay('done')",
])
def test_honest_code_that_looks_alike_is_not_flagged(source):
    assert _flags(source) == []


# --- the lab's own objects under a check -----------------------------------------------------------
LOCKED = ["X_test = load_test()\nmodels = {name: FlowModel(f) for name, f in flows.items()}",
          "fig, ax = plt.subplots()\nfor name, model in models.items():\n    fit(model, X_train)"]
ANSWERS = ["def flow_log_prob(x, flow, base):\n    return base.log_prob(flow.forward(x))"]
LAB_CHECKS = ["# NBVAL_CHECK_OUTPUT\ncheck.trained_cdf_flows(models, X_test)",
              "# NBVAL_CHECK_OUTPUT\ncheck.flow_log_prob(flow_log_prob)"]


def _lab_flags(source: str) -> list[str]:
    protected = protected_names(LAB_CHECKS, LOCKED, ANSWERS)
    return [str(f) for f in scan([("extra", source)], modules=module_names([SETUP]), protected=protected)]


def test_the_objects_a_check_measures_are_the_locked_cells():
    protected = protected_names(LAB_CHECKS, LOCKED, ANSWERS)
    assert {"models", "X_test", "check"} <= protected
    assert not {"flow_log_prob", "fig", "ax", "name", "model"} & protected  # answers, plots, loop variables


@pytest.mark.parametrize("source, words", [
    ("models = {'truth': lambda x: true_log_prob(x)}", "`models`"),
    ("models['N(0, 1)'] = lambda x: true_log_prob(x)", "models['N(0, 1)']"),
    ("models.update(truth=lambda x: true_log_prob(x))", "in place"),
    ("X_test = X_test[:100]", "`X_test`"),
    ("X_test.sort(axis=0)", "in place"),
])
def test_swapping_what_a_check_measures_is_flagged(source, words):
    flags = _lab_flags(source)
    assert any(words in f for f in flags), flags


@pytest.mark.parametrize("source", [
    "fig, ax = plt.subplots()\nax.hist(X_test, bins=30)",
    "for name, model in models.items():\n    print(name, model(X_test[:5]).shape)",
    "def flow_log_prob(x, flow, base):\n    z = flow.forward(x)\n    return base.log_prob(z)",
])
def test_reading_what_a_check_measures_is_not_flagged(source):
    assert _lab_flags(source) == []
