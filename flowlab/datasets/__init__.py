"""Datasets for the labs: seeded, float32, train and test drawn once and split (never shared)."""

from flowlab.datasets.face import load_face, sample_face
from flowlab.datasets.moons import load_two_moons

__all__ = ["load_two_moons", "load_face", "sample_face"]
