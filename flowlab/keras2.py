"""Make sure TensorFlow serves Keras 2 (``tf-keras``), which TFP 0.25 needs.

TensorFlow >= 2.16 resolves ``tf.keras`` lazily, on first use, to Keras 3 unless the environment
variable ``TF_USE_LEGACY_KERAS=1`` is set.  TFP's distributions then fail inside Keras 3 models
("A KerasTensor cannot be used as input to a TensorFlow function").  The variable is read when
``tf.keras`` is first touched, not when TensorFlow is imported, so setting it here is enough as
long as nothing has used ``tf.keras`` yet; if something has, it is too late and we say so.
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["LegacyKerasError", "require_legacy_keras"]

_HOW_TO_FIX = (
    "flowlab needs Keras 2 (the tf-keras package): TensorFlow Probability 0.25 does not work with "
    "Keras 3. tf.keras was already resolved to Keras 3 in this process ({module}). Restart the "
    "Python process or Jupyter kernel and run `import flowlab` before anything uses tf.keras, or "
    "set TF_USE_LEGACY_KERAS=1 in the environment before Python starts "
    "(in a notebook: `%env TF_USE_LEGACY_KERAS=1` as the very first cell)."
)


class LegacyKerasError(ImportError):
    """``tf.keras`` is Keras 3 in this process, and it cannot be switched back."""


def require_legacy_keras() -> None:
    """Select Keras 2 for ``tf.keras``; raise :class:`LegacyKerasError` if it is too late.

    Cheap when TensorFlow is not loaded yet (the usual case): the variable is set and TensorFlow
    reads it later. When TensorFlow is already loaded, ``tf.keras`` is resolved now to find out.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if importlib.util.find_spec("tf_keras") is None:  # pragma: no cover - depends on the installation
        raise LegacyKerasError("flowlab needs the tf-keras package (Keras 2): pip install tf-keras==2.21.0")
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    module = tf.keras.Model.__module__
    # ``import keras`` (Keras 3) beside us is harmless: TFP and flowlab only go through tf.keras.
    if not module.startswith("tf_keras"):
        raise LegacyKerasError(_HOW_TO_FIX.format(module=module))
