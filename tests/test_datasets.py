"""Generated datasets: shapes, seeding, disjoint splits, the face's geometry."""

import numpy as np
import pytest

from flowlab.datasets import load_face, load_two_moons, sample_face
from flowlab.datasets.face import part_of_face


@pytest.mark.parametrize("load", [load_two_moons, load_face])
def test_shapes_seeding_and_disjoint_split(load):
    train, test = load(300, 200, seed=4)
    assert train.shape == (300, 2) and test.shape == (200, 2)
    assert train.dtype == np.float32
    again, _ = load(300, 200, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, load(300, 200, seed=5)[0])
    shared = {tuple(p) for p in train} & {tuple(p) for p in test}
    assert not shared


@pytest.mark.parametrize("load", [load_two_moons, load_face])
@pytest.mark.parametrize("sizes", [(-1, 10), (0, 0), (2.5, 1)])
def test_bad_sizes_are_clear_errors(load, sizes):
    with pytest.raises(ValueError, match="n_train|n_test|at least one"):
        load(*sizes)


def test_face_has_two_eyes_and_a_mouth_in_thirds():
    points, parts = sample_face(3000, seed=1), part_of_face(3000, seed=1)
    assert np.bincount(parts).tolist() == [1000, 1000, 1000]
    np.testing.assert_allclose(points[parts == 0].mean(axis=0), [-1.5, 2.5], atol=0.05)
    np.testing.assert_allclose(points[parts == 1].mean(axis=0), [1.5, 2.5], atol=0.05)
    mouth = points[parts == 2]
    radius = np.hypot(mouth[:, 0] / 2, mouth[:, 1])  # on (2 cos t, -sin t) this is 1
    assert abs(np.median(radius) - 1) < 0.05 and np.mean(mouth[:, 1] < 0.3) > 0.9
