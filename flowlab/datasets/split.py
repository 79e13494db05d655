"""Draw once, split once: the train and test parts of a generated dataset never share a point."""

from __future__ import annotations

import numpy as np

__all__ = ["check_sizes", "split"]


def check_sizes(n_train: int, n_test: int) -> None:
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train + n_test == 0:
        raise ValueError("ask for at least one point (n_train + n_test > 0)")


def split(points: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.float32)
    return points[:n_train], points[n_train:]
