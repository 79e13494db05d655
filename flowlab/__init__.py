"""flowlab: normalizing flows with TensorFlow Probability, taught as labs.

Importing flowlab selects Keras 2 (``tf-keras``) for ``tf.keras`` before TensorFlow uses it,
because TensorFlow Probability 0.25 needs it; see :mod:`flowlab.keras2`.
"""

from flowlab.keras2 import LegacyKerasError, require_legacy_keras

require_legacy_keras()


def _start_tensorflow() -> None:
    # TensorFlow logs its device probing (CUDA, oneDNN) to stderr on the first op. Doing it now
    # keeps that noise in the cell that imports flowlab, out of check cells whose output is graded.
    import tensorflow as tf

    tf.config.list_physical_devices()


_start_tensorflow()

from flowlab.mode import FAST, is_fast, seed  # noqa: E402

__version__ = "0.1.0"
__all__ = ["FAST", "LegacyKerasError", "is_fast", "seed", "__version__"]
