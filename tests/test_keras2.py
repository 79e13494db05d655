"""Importing flowlab selects Keras 2, or says exactly what to do when it is too late."""

import os
import subprocess
import sys

import tensorflow as tf


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_tf_keras_is_keras_2_after_import():
    assert tf.keras.Model.__module__.startswith("tf_keras")


def test_import_after_tensorflow_but_before_tf_keras_is_fine():
    result = _run("import tensorflow as tf; import flowlab; print(tf.keras.Model.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


def test_import_after_keras_3_gives_a_clear_error():
    result = _run("import tensorflow as tf; tf.keras.Model; import flowlab")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("flowlab.keras2.LegacyKerasError")
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr and "Restart" in result.stderr
