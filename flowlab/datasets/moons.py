"""Two moons (scikit-learn's ``make_moons``), the classic 2-D test density for flows."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_moons

from flowlab.datasets.split import check_sizes, split

__all__ = ["load_two_moons"]


def load_two_moons(
    n_train: int, n_test: int = 0, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` float32 arrays of shape ``(n, 2)`` from one shuffled ``make_moons`` draw."""
    check_sizes(n_train, n_test)
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    points, _ = make_moons(n_train + n_test, noise=noise, shuffle=True, random_state=seed)
    return split(points, n_train)
