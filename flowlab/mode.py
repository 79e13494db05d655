"""Run-wide settings for the labs: fast mode and seeding."""

from __future__ import annotations

import os

__all__ = ["FAST", "is_fast", "seed"]


def is_fast() -> bool:
    """True when ``FLOWLAB_FAST`` is set to a true value (``1``, ``true``, ``yes``).

    Fast mode trains fewer epochs on fewer points so that a notebook runs in about a minute
    (tests, CI, a student's quick check); the check cells print the same verdicts in both modes.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"FLOWLAB_FAST": "yes"}):
    ...     is_fast()
    True
    >>> with mock.patch.dict(os.environ, {"FLOWLAB_FAST": "0"}):
    ...     is_fast()
    False
    """
    return os.environ.get("FLOWLAB_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


FAST: bool = is_fast()


def seed(value: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels.

    >>> import numpy as np, tensorflow as tf
    >>> seed(0); a = float(tf.random.normal([])), float(np.random.rand())
    >>> seed(0); b = float(tf.random.normal([])), float(np.random.rand())
    >>> a == b
    True
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(int(value))
    tf.config.experimental.enable_op_determinism()
