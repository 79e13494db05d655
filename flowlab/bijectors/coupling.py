r"""Coupling layers with a binary mask: additive (NICE) and affine (RealNVP).

A coupling layer splits its input :math:`x` with a binary mask :math:`b` (see
:mod:`flowlab.bijectors.masks`).  The part :math:`b \odot x` is copied; a conditioner network reads
it and returns a shift :math:`t` and (affine case) a log-scale :math:`s` for the other part:

.. math::

    y = b \odot x + (1 - b) \odot \big(x \odot e^{s(b \odot x)} + t(b \odot x)\big).

Because :math:`b \odot y = b \odot x`, the inverse recomputes the same :math:`s, t` from
:math:`y` and undoes the transformation,
:math:`x = b \odot y + (1 - b) \odot (y - t) \odot e^{-s}`.  The Jacobian is triangular (after
sorting the variables by mask), so

.. math:: \log\left|\det \frac{\partial y}{\partial x}\right| = \sum_i (1 - b_i)\, s_i,

one network pass in either direction.  NICE's additive coupling is the case :math:`s = 0`:
volume preserving, log-det 0.

The conditioner is any Keras layer (or callable) mapping a tensor shaped like the event, with a
batch axis, to ``(shift, log_scale)`` of the same shape (additive: just the shift).  Make its
last layer start at zero -- :class:`~flowlab.conditioners.mlp.MLPConditioner`,
:class:`~flowlab.conditioners.resnet.ResNetConditioner` -- so a new layer is the identity and a deep
flow starts as its base distribution.  The coupling bounds the log-scale softly,
:math:`s \leftarrow c \tanh(s / c)`, so one layer can scale by at most :math:`e^{\pm c}` and
training cannot blow up.

Example::

    mask = checkerboard(28, 28, 1, parity=0)
    layer = AffineCoupling(mask, ResNetConditioner(out_channels=1, filters=32))
    y = layer.forward(x)                                   # x: (batch, 28, 28, 1)
    layer.forward_log_det_jacobian(x, event_ndims=3)       # (batch,)

References: L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components Estimation"
(2014); L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.cached_log_det import CachedLogDet
from flowlab.bijectors.masks import validate_mask

__all__ = ["AffineCoupling", "AdditiveCoupling", "FunctionCoupling"]

tfb = tfp.bijectors


class _MaskedCoupling(CachedLogDet, tfb.Bijector):
    """What both couplings share: the mask, the conditioner call, shape checks, log-det caching."""

    _affine = True

    def __init__(
        self,
        mask: Any,
        conditioner: Callable[[tf.Tensor], Any],
        log_scale_bound: float = 3.0,
        validate_args: bool = False,
        name: str = "coupling",
    ) -> None:
        parameters = dict(locals())
        mask = validate_mask(mask)
        if not callable(conditioner):
            raise TypeError(f"the conditioner must be a Keras layer or a callable, got {type(conditioner).__name__}")
        if not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound}")
        self._mask_np = mask
        self._event_shape = tuple(mask.shape)
        self._conditioner = conditioner
        self._log_scale_bound = float(log_scale_bound)
        super().__init__(
            forward_min_event_ndims=mask.ndim,
            validate_args=validate_args,
            parameters=parameters,
            name=name,
        )

    @property
    def mask(self) -> np.ndarray:
        return self._mask_np

    @property
    def conditioner(self) -> Callable[[tf.Tensor], Any]:
        return self._conditioner

    def _check_shape(self, x: tf.Tensor) -> None:
        ndims = len(self._event_shape)
        shape = x.shape
        if shape.rank is not None:
            got = tuple(shape[-ndims:]) if shape.rank >= ndims else tuple(shape)
            known = all(d is not None for d in got)
            if shape.rank < ndims or (known and tuple(int(d) for d in got) != self._event_shape):
                raise ValueError(
                    f"{self.name}: input of shape {tuple(shape)} does not end in the mask's event shape "
                    f"{self._event_shape}"
                )

    def _shift_and_log_scale(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Shift and bounded log-scale from the masked input, computed on a flat batch."""
        self._check_shape(x)
        mask = tf.constant(self._mask_np, dtype=x.dtype)
        event = list(self._event_shape)
        batch_shape = tf.shape(x)[: tf.rank(x) - len(event)]
        flat = tf.reshape(x * mask, [-1, *event])  # conv nets need exactly one batch axis
        out = self._conditioner(flat)
        if self._affine:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"{self.name}: the conditioner must return (shift, log_scale), got {type(out).__name__}")
            shift, log_scale = out
        else:
            shift = out[0] if isinstance(out, (tuple, list)) else out
            log_scale = None
        for value, what in ((shift, "shift"), (log_scale, "log_scale")):
            if value is not None and value.shape.rank is not None and tuple(value.shape[1:]) != tuple(event):
                raise ValueError(
                    f"{self.name}: the conditioner's {what} has shape {tuple(value.shape)}, expected (batch, "
                    f"{', '.join(map(str, event))}) -- the event's shape"
                )
        full = tf.concat([batch_shape, event], axis=0)
        shift = tf.reshape(tf.cast(shift, x.dtype), full) * (1.0 - mask)
        if log_scale is None:
            return shift, tf.zeros_like(shift)
        bound = tf.constant(self._log_scale_bound, x.dtype)
        log_scale = bound * tf.tanh(tf.reshape(tf.cast(log_scale, x.dtype), full) / bound) * (1.0 - mask)
        return shift, log_scale

    def _sum_event(self, log_scale: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(log_scale, axis=list(range(-len(self._event_shape), 0)))

    # The log-det comes out of the same conditioner pass as the values: store it in TFP's bijector
    # cache so log_prob does not run the network twice (as ffjord.py in TFP does).
    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        shift, log_scale = self._shift_and_log_scale(x)
        y = x * tf.exp(log_scale) + shift  # log_scale and shift are 0 where the mask is 1
        self._cache.forward_attributes(x)["ildj"] = -self._sum_event(log_scale)
        return y

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        shift, log_scale = self._shift_and_log_scale(y)
        x = (y - shift) * tf.exp(-log_scale)
        self._cache.inverse_attributes(y)["ildj"] = -self._sum_event(log_scale)
        return x


    def _forward_event_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return input_shape

    def _inverse_event_shape(self, output_shape: tf.TensorShape) -> tf.TensorShape:
        return output_shape


class AffineCoupling(_MaskedCoupling):
    r"""RealNVP's affine coupling: :math:`y = b x + (1-b)(x e^{s(bx)} + t(bx))`.

    Args:
      mask: binary array with the event's shape (``(D,)`` for vectors, ``(H, W, C)`` for images);
        1 marks the variables that are copied and read by the conditioner.
      conditioner: Keras layer mapping ``(batch, *event_shape)`` to ``(shift, log_scale)``, each
        ``(batch, *event_shape)``; entries where the mask is 1 are ignored.
      log_scale_bound: ``c`` in the soft bound :math:`s \leftarrow c \tanh(s / c)`.

    Example::

        layer = AffineCoupling([1, 0, 1, 0], MLPConditioner(output_units=4, hidden_units=[64]))
        flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(4)), layer)
    """

    _affine = True

    def __init__(self, mask: Any, conditioner: Callable, log_scale_bound: float = 3.0,
                 validate_args: bool = False, name: str = "affine_coupling") -> None:
        super().__init__(mask, conditioner, log_scale_bound, validate_args, name)


class AdditiveCoupling(_MaskedCoupling):
    r"""NICE's additive coupling: :math:`y = b x + (1-b)(x + t(bx))`, log-det 0 (volume preserving).

    The conditioner returns the shift (a tensor shaped like the event, with a batch axis); a
    ``(shift, log_scale)`` pair is accepted and its log-scale ignored.

    Example::

        layer = AdditiveCoupling(alternating_mask(4), MLPConditioner(4, shift_only=True))
    """

    _affine = False

    def __init__(self, mask: Any, conditioner: Callable, validate_args: bool = False,
                 name: str = "additive_coupling") -> None:
        super().__init__(mask, conditioner, 1.0, validate_args, name)


class FunctionCoupling(tfb.Bijector):
    r"""A coupling layer made of two plain functions: the lab's way to train *your* coupling.

    ``data_to_latent(x, mask, conditioner) -> (z, log_det)`` is RealNVP's :math:`f`, the direction
    that evaluates densities (``log_det`` is :math:`\log|\det \partial z / \partial x|`, one value per
    image); ``latent_to_data(z, mask, conditioner) -> x`` undoes it, the direction that samples.
    In TFP's convention (``forward`` generates data from the base) ``inverse`` is
    ``data_to_latent`` and its log-det is ``inverse_log_det_jacobian``: the log-det your function
    returns is the one ``log_prob`` uses, with no second opinion.  The functions see tensors of shape
    ``(batch, *event_shape)`` and ``mask`` as a float32 tensor of the event's shape; both run inside
    ``tf.function`` when a Keras model trains, so write them with TensorFlow ops.  The conditioner
    they are given is ``conditioner`` with its log-scale bounded softly, :math:`s \leftarrow c\tanh(s/c)`.

    Put it in a chain in *data order* (``tfb.Chain([first, second, ...])``: a chain's inverse runs its
    list from the start), as :class:`~flowlab.flows.multiscale.MultiScale` expects.

    Example::

        layer = FunctionCoupling(checkerboard(28, 28, 1, 0), ResNetConditioner(1), coupling_forward,
                                 coupling_inverse)
        z = layer.inverse(y); layer.inverse_log_det_jacobian(y, event_ndims=3)   # your log-det
    """

    def __init__(self, mask: Any, conditioner: Callable[[tf.Tensor], Any], data_to_latent: Callable,
                 latent_to_data: Callable, log_scale_bound: float = 2.0, validate_args: bool = False,
                 name: str = "function_coupling") -> None:
        parameters = dict(locals())
        mask = validate_mask(mask)
        for fn, what in ((conditioner, "conditioner"), (data_to_latent, "data_to_latent"),
                         (latent_to_data, "latent_to_data")):
            if not callable(fn):
                raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        if not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound}")
        self._mask_np = mask
        self._event_shape = tuple(mask.shape)
        self._conditioner = conditioner
        self._log_scale_bound = float(log_scale_bound)
        self._data_to_latent = data_to_latent
        self._latent_to_data = latent_to_data
        super().__init__(forward_min_event_ndims=mask.ndim, validate_args=validate_args, parameters=parameters,
                         name=name)

    @property
    def mask(self) -> np.ndarray:
        return self._mask_np

    @property
    def conditioner(self) -> Callable[[tf.Tensor], Any]:
        return self._conditioner

    def bounded_conditioner(self, masked: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(shift, log_scale)`` from the conditioner, the log-scale bounded softly: what your functions get."""
        out = self._conditioner(masked)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{self.name}: the conditioner must return (shift, log_scale), got {type(out).__name__}")
        shift, log_scale = out
        bound = tf.constant(self._log_scale_bound, masked.dtype)
        return tf.cast(shift, masked.dtype), bound * tf.tanh(tf.cast(log_scale, masked.dtype) / bound)

    def _flat(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        event = list(self._event_shape)
        batch_shape = tf.shape(x)[: tf.rank(x) - len(event)]
        return tf.reshape(x, [-1, *event]), batch_shape

    def _mask(self, dtype: tf.DType) -> tf.Tensor:
        return tf.constant(self._mask_np, dtype=dtype)

    def _f(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        flat, batch_shape = self._flat(x)
        out = self._data_to_latent(flat, self._mask(flat.dtype), self.bounded_conditioner)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{self.name}: data_to_latent must return (z, log_det), got {type(out).__name__}")
        z = tf.reshape(tf.cast(out[0], x.dtype), tf.shape(x))
        log_det = tf.reshape(tf.cast(out[1], x.dtype), batch_shape)
        return z, log_det

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        z, log_det = self._f(y)
        self._cache.inverse_attributes(y)["ildj"] = log_det
        return z

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        attrs = self._cache.inverse_attributes(y)
        if "ildj" not in attrs:
            self._inverse(y)
        return attrs["ildj"]

    def _forward(self, z: tf.Tensor) -> tf.Tensor:
        flat, _ = self._flat(z)
        x = self._latent_to_data(flat, self._mask(flat.dtype), self.bounded_conditioner)
        return tf.reshape(tf.cast(x, z.dtype), tf.shape(z))

    def _forward_log_det_jacobian(self, z: tf.Tensor) -> tf.Tensor:
        return -self._f(self._forward(z))[1]

    def _forward_event_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return input_shape

    def _inverse_event_shape(self, output_shape: tf.TensorShape) -> tf.TensorShape:
        return output_shape
