"""Conditioners: Keras layers that compute a bijector's parameters from the variables it reads."""

from flowlab.conditioners.mixture import MADEMixtureConditioner, MixtureConditioner2D
from flowlab.conditioners.mlp import MLPConditioner
from flowlab.conditioners.resnet import ResNetConditioner

__all__ = ["MLPConditioner", "ResNetConditioner", "MixtureConditioner2D", "MADEMixtureConditioner"]
