"""Draw once, split once: the train and test parts of a generated dataset never share a point."""

from __future__ import annotations

import numpy as np

from flowlab.validation import integer

__all__ = ["check_sizes", "split"]


def check_sizes(n_train: int, n_test: int) -> None:
    n_train, n_test = integer(n_train, "n_train", minimum=0), integer(n_test, "n_test", minimum=0)
    if n_train + n_test == 0:
        raise ValueError("ask for at least one point (n_train + n_test > 0)")


def split(points: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.float32)
    return points[:n_train], points[n_train:]
