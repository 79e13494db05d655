"""A healthy run is quiet: importing flowlab loads no TensorFlow, and TensorFlow's start-up says nothing."""

import os
import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS"}}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_flowlab_does_not_load_tensorflow():
    done = _python("import sys, flowlab, flowlab.cli, flowlab.labs; print('tensorflow' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_cli_loads_the_grader_only_for_grade():
    # flowlab.grading (nbformat, jsonschema, numpy, the pipeline) was most of every command's start-up.
    done = _python("""
import contextlib, io, sys
from flowlab.cli import main
for argv in (["--help"], ["make-labs", "--help"], ["grade", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main(argv)
    print(argv[0], "flowlab.grading" in sys.modules, "tensorflow" in sys.modules, "--solutions" in out.getvalue())
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["--help False False False", "make-labs False False True",
                                           "grade True False True"]


def test_tensorflow_start_up_and_training_six_flows_print_nothing_on_stderr():
    code = """
import flowlab
import numpy as np
import tensorflow as tf
from flowlab.flows import build_maf
from flowlab.training import fit
flow = build_maf(2, n_layers=1, hidden_units=(4,))
x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
fit(flow, x, epochs=1, batch_size=32, validation_data=x, verbose=0)
for _ in range(5):  # each fit traces a new model's training function: TensorFlow warned from the fifth on
    fit(build_maf(2, n_layers=1, hidden_units=(4,)), x, epochs=1, batch_size=64, verbose=0)
print(tf.keras.Model.__module__)
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("tf_keras")
    assert done.stderr == "", done.stderr


def test_a_users_own_log_level_is_kept():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "1"}
    done = subprocess.run([sys.executable, "-c", "import flowlab, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "1"


def test_only_the_known_tensorflow_notices_are_dropped():
    """The retracing notice and TFP's ODE-solver deprecation are dropped; any other warning passes."""
    import logging

    from flowlab.quiet import _NoRetracingNotice

    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    notice = _NoRetracingNotice()
    assert not notice.filter(record("5 out of the last 5 calls to <f> triggered tf.function retracing."))
    assert not notice.filter(record("calling while_loop_v2 with back_prop=False is deprecated and will be removed"))
    assert notice.filter(record("Gradients do not exist for variables ['w'] when minimizing the loss."))
