r"""A 1-D bimodal density for lab 01: a narrow mode on the left, a wide one on the right.

.. math:: p(x) = 0.35\,\mathcal N(x;\ -1.5,\ 0.35^2) + 0.65\,\mathcal N(x;\ 1.0,\ 0.6^2)

Points are drawn once with a seeded generator and split, so train and test never share a point.
"""

from __future__ import annotations

import numpy as np

from flowlab.datasets.split import check_sizes, split

__all__ = ["WEIGHTS", "LOCS", "SCALES", "sample_bimodal", "load_bimodal", "bimodal_log_prob"]

WEIGHTS = (0.35, 0.65)
LOCS = (-1.5, 1.0)
SCALES = (0.35, 0.6)


def sample_bimodal(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points as a float32 array of shape ``(n,)``."""
    check_sizes(n, 0)
    rng = np.random.default_rng(seed)
    mode = rng.choice(len(WEIGHTS), size=n, p=WEIGHTS)
    points = np.asarray(LOCS)[mode] + np.asarray(SCALES)[mode] * rng.standard_normal(n)
    return points.astype(np.float32)


def load_bimodal(n_train: int, n_test: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` float32 arrays of shape ``(n,)`` from one draw."""
    check_sizes(n_train, n_test)
    return split(sample_bimodal(n_train + n_test, seed), n_train)


def bimodal_log_prob(x: np.ndarray) -> np.ndarray:
    """The true log-density, for reference (the best test NLL any model can hope for)."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    weights, locs, scales = (np.asarray(v) for v in (WEIGHTS, LOCS, SCALES))
    log_components = np.log(weights) - 0.5 * ((x - locs) / scales) ** 2 - np.log(scales) - 0.5 * np.log(2 * np.pi)
    top = log_components.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(log_components - top).sum(axis=-1, keepdims=True)))[..., 0]
