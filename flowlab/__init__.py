"""flowlab: normalizing flows with TensorFlow Probability, taught as labs.

Importing flowlab selects Keras 2 (``tf-keras``) for ``tf.keras`` before TensorFlow uses it,
because TensorFlow Probability 0.25 needs it (:mod:`flowlab.keras2`); makes TensorFlow's start-up
quiet without loading it (:mod:`flowlab.quiet`); and, in a notebook, lets a cell that needs an
unfinished TODO wait for it instead of failing (:mod:`flowlab.todo`).
"""

from flowlab import quiet
from flowlab.keras2 import LegacyKerasError, require_legacy_keras

quiet.install()
require_legacy_keras()

from flowlab.mode import FAST, is_fast, seed  # noqa: E402
from flowlab.todo import register_ipython  # noqa: E402

register_ipython()

__version__ = "0.1.0"
__all__ = ["FAST", "LegacyKerasError", "is_fast", "seed", "__version__"]
