r"""The lectures' 2-D "face": two Gaussian eyes and a smiling mouth.

A third of the points each: the eyes are :math:`\mathcal N((\pm 1.5, 2.5), 0.2^2 I)`, the mouth is
:math:`(2\cos t, -\sin t) + \mathcal N(0, 0.2^2 I)` with :math:`t \sim U[0, \pi]`.
"""

from __future__ import annotations

import numpy as np

from flowlab.datasets.split import check_sizes, split

__all__ = ["EYES", "NOISE", "sample_face", "load_face", "part_of_face"]

EYES = ((-1.5, 2.5), (1.5, 2.5))
NOISE = 0.2


def _face(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    part = rng.permutation(np.arange(n) % 3)  # 0: left eye, 1: right eye, 2: mouth
    t = rng.uniform(0.0, np.pi, size=n)
    centre = np.where(
        (part == 2)[:, None],
        np.stack([2 * np.cos(t), -np.sin(t)], axis=1),
        np.asarray(EYES)[np.minimum(part, 1)],
    )
    return (centre + NOISE * rng.standard_normal((n, 2))).astype(np.float32), part


def sample_face(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points of the face as a float32 array of shape ``(n, 2)``."""
    check_sizes(n, 0)
    return _face(n, np.random.default_rng(seed))[0]


def part_of_face(n: int, seed: int = 0) -> np.ndarray:
    """Which part each point of ``sample_face(n, seed)`` came from: 0, 1 (eyes) or 2 (mouth)."""
    check_sizes(n, 0)
    return _face(n, np.random.default_rng(seed))[1]


def load_face(n_train: int, n_test: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` float32 arrays of shape ``(n, 2)`` from one draw of the face."""
    check_sizes(n_train, n_test)
    return split(sample_face(n_train + n_test, seed), n_train)
