"""Conditioners: Keras layers that compute a bijector's parameters from the variables it reads."""

from flowlab.conditioners.mlp import MLPConditioner

__all__ = ["MLPConditioner"]
