"""Datasets for the labs: seeded, float32, train and test drawn once and split (never shared).

MNIST (:mod:`flowlab.datasets.mnist`) is read from IDX files or downloaded, not generated.
"""

from flowlab.datasets.bimodal import bimodal_log_prob, load_bimodal, sample_bimodal
from flowlab.datasets.energies import energy, energy_log_prob, log_normalizer
from flowlab.datasets.face import load_face, sample_face
from flowlab.datasets.mnist import load_mnist, load_mnist_split
from flowlab.datasets.moons import load_two_moons

__all__ = ["load_two_moons", "load_face", "sample_face", "load_bimodal", "sample_bimodal", "bimodal_log_prob",
           "load_mnist", "load_mnist_split",
           "energy", "energy_log_prob", "log_normalizer"]
