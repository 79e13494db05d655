r"""How a conditioner's hidden layers start: TFP's and Keras's Glorot, or PyTorch's fan-in uniform.

``"glorot"``: Glorot-uniform kernels and zero biases (Keras's and TFP's defaults).  ``"uniform"``:
kernels *and biases* uniform on :math:`\pm 1/\sqrt{\text{fan-in}}` (PyTorch's ``nn.Linear``, so zuko's).
The biases matter in low dimensions: a hidden unit :math:`\mathrm{ReLU}(w^\top x + b)` with
:math:`b = 0` bends on a hyperplane through the origin, and when the conditioner reads one variable
(a MADE's units on 2-D data, a coupling's network on 2-D data) every first-layer unit is
:math:`\mathrm{ReLU}(\pm |w| x_1)`: two functions, both bent at :math:`x_1 = 0`.  Random biases spread
the bends over the data from the first step (``bench/beyond_affine.md``, session 9: on two moons a
spline MADE flow's test NLL went from 0.321-0.335 to 0.317-0.322 over 5 seeds).

>>> import flowlab, tensorflow as tf
>>> bias = FanInUniform(fan_in=4)([1000])
>>> bool(tf.reduce_max(tf.abs(bias)) <= 0.5), bool(tf.reduce_max(tf.abs(bias)) > 0.4)
(True, True)
>>> kernel = FanInUniform()([16, 8])                 # a kernel's fan-in is its first axis
>>> bool(tf.reduce_max(tf.abs(kernel)) <= 0.25)
True
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

__all__ = ["INITS", "FanInUniform", "check_init"]

INITS = ("glorot", "uniform")


def check_init(init: Any) -> str:
    """``init`` itself if it is one of :data:`INITS`, else a ``ValueError`` naming them."""
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


class FanInUniform(tf.keras.initializers.Initializer):
    r"""Uniform on :math:`\pm 1/\sqrt{\text{fan-in}}`: PyTorch's ``nn.Linear`` initialisation of weights and biases.

    ``fan_in``: the layer's number of inputs; ``None`` reads it from a kernel's shape (its first
    axis).  A bias needs it given: its shape does not say.  It may be set after construction (a
    layer whose input size is known only when it is built).  Each call draws anew from TensorFlow's
    global seed (``flowlab.seed``), so one instance may serve several layers.
    """

    def __init__(self, fan_in: int | None = None) -> None:
        self.fan_in = fan_in

    def __call__(self, shape: Any, dtype: Any = None, **kwargs: Any) -> tf.Tensor:
        fan_in = self.fan_in if self.fan_in is not None else (shape[0] if len(shape) == 2 else None)
        if not fan_in:
            raise ValueError(f"FanInUniform needs the layer's fan-in for a tensor of shape {list(shape)}")
        limit = 1.0 / math.sqrt(int(fan_in))
        # a new Keras initializer per call: each takes its own seed from the global one (one instance reused
        # would repeat its draws)
        return tf.keras.initializers.RandomUniform(-limit, limit)(shape, dtype=dtype or tf.float32)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {"fan_in": self.fan_in}
