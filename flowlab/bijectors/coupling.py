r"""One coupling layer with a binary mask and a pluggable transformer: NICE, RealNVP, splines, Flow++.

A coupling layer splits its input :math:`x` with a binary mask :math:`b` (see
:mod:`flowlab.bijectors.masks`).  The part :math:`b \odot x` is copied; a conditioner network reads
it and returns parameters :math:`h` for every other variable, and a *transformer*
(:mod:`flowlab.transformers`) -- a monotone function of one variable -- moves each of them:

.. math::

    y_i = x_i \ \text{if}\ b_i = 1, \qquad y_i = \tau\big(x_i;\ h_i(b \odot x)\big) \ \text{if}\ b_i = 0.

Because :math:`b \odot y = b \odot x`, the inverse recomputes the same :math:`h` from :math:`y` and
applies :math:`\tau^{-1}`.  The Jacobian is triangular (after sorting the variables by mask), so

.. math:: \log\left|\det \frac{\partial y}{\partial x}\right| = \sum_{i:\ b_i = 0} \log \tau'\big(x_i; h_i\big),

one network pass in either direction.  The structure (the mask) and the transformer are independent:

- :class:`AdditiveCoupling` -- NICE, :math:`\tau(x; t) = x + t`: volume preserving, log-det 0;
- :class:`AffineCoupling` -- RealNVP, :math:`\tau(x; t, s) = x e^{s} + t` with a bounded log-scale;
- ``Coupling(mask, net, SplineTransformer(8))`` -- a coupling neural spline flow (Durkan et al. 2019);
- ``Coupling(mask, net, MixtureCDFTransformer(4))`` -- Flow++'s mixture-of-logistics coupling.

Vectors (mask ``(D,)``) and images (mask ``(H, W, C)``) use the same class.  The conditioner is any
Keras layer (or callable) mapping the masked input ``(batch, *event_shape)`` to the parameters,
either one tensor ``(batch, *event_shape, params_per_dim)`` or a tuple of ``params_per_dim``
tensors shaped like the event, e.g. ``(shift, log_scale)``; entries where the mask is 1 are ignored.
Make its last layer start at zero -- :class:`~flowlab.conditioners.mlp.MLPConditioner`,
:class:`~flowlab.conditioners.resnet.ResNetConditioner` (both take ``params_per_dim``) -- so a new
layer is the identity and a deep flow starts as its base distribution.

Example::

    from flowlab.transformers import SplineTransformer
    spline = SplineTransformer(bins=8, bound=4.0)                         # 3 * 8 - 1 = 23 parameters per variable
    net = MLPConditioner(2, hidden_units=[64, 64], params_per_dim=spline.params_per_dim)
    layer = Coupling(alternating_mask(2), net, spline)
    flow = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(tf.zeros(2)), layer)

    mask = checkerboard(28, 28, 1, parity=0)                               # images: same class
    layer = AffineCoupling(mask, ResNetConditioner(out_channels=1, filters=32))
    layer.forward_log_det_jacobian(x, event_ndims=3)                       # x: (batch, 28, 28, 1) -> (batch,)

References: L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components Estimation"
(2014); L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP" (2016);
C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural spline flows" (2019); J. Ho et al.,
"Flow++" (2019).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.cached_log_det import CachedLogDet
from flowlab.bijectors.masks import validate_mask
from flowlab.bijectors.run_time_checks import ending_in, finite, with_assertions
from flowlab.transformers import AdditiveTransformer, AffineTransformer, Transformer, bound_log_scale

__all__ = ["Coupling", "AffineCoupling", "AdditiveCoupling", "FunctionCoupling"]

tfb = tfp.bijectors


class Coupling(CachedLogDet, tfb.Bijector):
    r"""A masked coupling :math:`y = b x + (1 - b)\,\tau(x; h(b x))` with any transformer :math:`\tau`.

    Args:
      mask: binary array with the event's shape (``(D,)`` for vectors, ``(H, W, C)`` for images);
        1 marks the variables that are copied and read by the conditioner.
      conditioner: Keras layer (or callable) mapping ``(batch, *event_shape)`` to the transformer's
        parameters: a tensor ``(batch, *event_shape, params_per_dim)`` or a tuple of
        ``params_per_dim`` tensors ``(batch, *event_shape)``.
      transformer: a :class:`flowlab.transformers.Transformer` (``params_per_dim`` and a call that
        returns an elementwise bijector).

    Raises ``ValueError`` for a mask that is not binary, all ones or all zeros, and for a
    conditioner whose output does not fit the transformer.  With ``validate_args=True`` it also
    checks at run time (inside ``tf.function`` too) that the inputs are finite and, where the shape
    is only known then, that they end in the mask's event shape: ``InvalidArgumentError`` naming the
    problem instead of NaN passed on or a raw reshape error.

    >>> import flowlab, tensorflow as tf
    >>> from flowlab.conditioners import MLPConditioner
    >>> from flowlab.transformers import SplineTransformer
    >>> layer = Coupling([1, 0, 1, 0], MLPConditioner(4, [8], params_per_dim=23), SplineTransformer(8))
    >>> x = tf.constant([[0.3, -1.0, 2.0, 0.5]])
    >>> bool(tf.reduce_all(layer.forward(x)[:, ::2] == x[:, ::2]))      # the masked variables are copied
    True

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (ICLR 2017), section 3.3.
    """

    def __init__(
        self,
        mask: Any,
        conditioner: Callable[[tf.Tensor], Any],
        transformer: Transformer,
        validate_args: bool = False,
        name: str = "coupling",
    ) -> None:
        parameters = dict(locals())
        mask = validate_mask(mask)
        if not callable(conditioner):
            raise TypeError(f"the conditioner must be a Keras layer or a callable, got {type(conditioner).__name__}")
        if not (callable(transformer) and isinstance(getattr(transformer, "params_per_dim", None), int)):
            raise TypeError("the transformer must be a flowlab.transformers.Transformer (a callable with an integer "
                            f"params_per_dim), got {type(transformer).__name__}")
        self._mask_np = mask
        self._event_shape = tuple(mask.shape)
        self._conditioner = conditioner
        self._transformer = transformer
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

    @property
    def transformer(self) -> Transformer:
        return self._transformer

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

    def _validated(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """``x`` with run-time checks attached when ``validate_args``: finite, ending in the event shape."""
        if not self.validate_args:
            return x
        x = finite(x, self.name, what)
        return with_assertions(x, ending_in(
            x, self._event_shape,
            rank_message=f"{self.name}: {what} has fewer axes than the event shape of the mask, {self._event_shape}",
            shape_message=f"{self.name}: {what} does not end in the event shape of the mask, {self._event_shape}"))

    def _params_from(self, out: Any) -> Any:
        """The conditioner's output as the transformer's parameters (a hook for AdditiveCoupling)."""
        return out

    def _stacked(self, out: Any, dtype: tf.DType) -> tf.Tensor:
        """``(batch, *event, params_per_dim)`` from a stacked tensor, a tuple of event-shaped tensors, or one."""
        n, event = self._transformer.params_per_dim, tuple(self._event_shape)
        what = "a tuple of " if isinstance(out, (tuple, list)) else ""
        if isinstance(out, (tuple, list)):
            if len(out) != n:
                raise ValueError(f"{self.name}: the conditioner returned {len(out)} tensors; the transformer "
                                 f"{self._transformer!r} needs {n} parameters per variable")
            parts = [tf.convert_to_tensor(p) for p in out]
            for part in parts:
                if part.shape.rank is not None and tuple(part.shape[1:]) != event:
                    raise ValueError(
                        f"{self.name}: the conditioner returned {what}tensors of shape {tuple(part.shape)}, expected "
                        f"(batch, {', '.join(map(str, event))}) -- the event's shape")
            return tf.cast(tf.stack(parts, axis=-1), dtype)
        out = tf.convert_to_tensor(out)
        shape = tuple(out.shape[1:]) if out.shape.rank is not None else None
        if shape == event and n == 1:
            return tf.cast(out[..., tf.newaxis], dtype)
        if shape is not None and shape != (*event, n):
            raise ValueError(
                f"{self.name}: the conditioner's output has shape {tuple(out.shape)}, expected (batch, "
                f"{', '.join(map(str, (*event, n)))}) -- the event's shape and the transformer's {n} parameters "
                "per variable")
        return tf.cast(out, dtype)

    def _elementwise(self, x: tf.Tensor) -> tfb.Bijector:
        """The transformer's bijector, its parameters computed from the masked input on a flat batch."""
        self._check_shape(x)
        mask = tf.constant(self._mask_np, dtype=x.dtype)
        event = list(self._event_shape)
        batch_shape = tf.shape(x)[: tf.rank(x) - len(event)]
        flat = tf.reshape(x * mask, [-1, *event])  # conv nets need exactly one batch axis
        params = self._stacked(self._params_from(self._conditioner(flat)), x.dtype)
        n = self._transformer.params_per_dim
        params = tf.reshape(params, tf.concat([batch_shape, event, [n]], axis=0))
        return self._transformer(params)

    def _sum_event(self, log_det: tf.Tensor) -> tf.Tensor:
        # Only transformed variables count; the copied ones have log-det 0 whatever tau says there.
        log_det = log_det * (1.0 - tf.constant(self._mask_np, dtype=log_det.dtype))
        return tf.reduce_sum(log_det, axis=list(range(-len(self._event_shape), 0)))

    # The log-det comes out of the same conditioner pass as the values: store it in TFP's bijector
    # cache so log_prob does not run the network twice (as ffjord.py in TFP does).
    # The cache is keyed by the caller's tensor, so the checked copy (``v``) only feeds the arithmetic.
    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        v = self._validated(x, "the input to forward")
        tau = self._elementwise(v)
        y = tf.where(tf.constant(self._mask_np > 0), v, tau.forward(v))
        log_det = tf.broadcast_to(tau.forward_log_det_jacobian(v, event_ndims=0), tf.shape(v))
        self._cache.forward_attributes(x)["ildj"] = -self._sum_event(log_det)
        return y

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        v = self._validated(y, "the input to inverse")
        tau = self._elementwise(v)
        x = tf.where(tf.constant(self._mask_np > 0), v, tau.inverse(v))
        log_det = tf.broadcast_to(tau.inverse_log_det_jacobian(v, event_ndims=0), tf.shape(v))
        self._cache.inverse_attributes(y)["ildj"] = self._sum_event(log_det)
        return x

    def _forward_event_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return input_shape

    def _inverse_event_shape(self, output_shape: tf.TensorShape) -> tf.TensorShape:
        return output_shape


class AffineCoupling(Coupling):
    r"""RealNVP's affine coupling: :math:`y = b x + (1-b)(x e^{s(bx)} + t(bx))`.

    ``Coupling(mask, conditioner, AffineTransformer(log_scale_bound))``.

    Args:
      mask: binary array with the event's shape (``(D,)`` for vectors, ``(H, W, C)`` for images);
        1 marks the variables that are copied and read by the conditioner.
      conditioner: Keras layer mapping ``(batch, *event_shape)`` to ``(shift, log_scale)``, each
        ``(batch, *event_shape)`` (or one tensor ``(batch, *event_shape, 2)``); entries where the
        mask is 1 are ignored.
      log_scale_bound: ``c`` in the soft bound :math:`s \leftarrow c \tanh(s / c)`
        (:func:`flowlab.transformers.bound_log_scale`).

    >>> import flowlab, tensorflow as tf, tensorflow_probability as tfp
    >>> from flowlab.conditioners import MLPConditioner
    >>> layer = AffineCoupling([1, 0, 1, 0], MLPConditioner(4, hidden_units=[8]))
    >>> flow = tfp.distributions.TransformedDistribution(tfp.distributions.MultivariateNormalDiag(tf.zeros(4)), layer)
    >>> flow.log_prob([0.3, -1.0, 2.0, 0.5]).shape      # the conditioner starts at zero: the identity
    TensorShape([])
    """

    def __init__(self, mask: Any, conditioner: Callable, log_scale_bound: float = 3.0,
                 validate_args: bool = False, name: str = "affine_coupling") -> None:
        if not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive, got {log_scale_bound}")
        super().__init__(mask, conditioner, AffineTransformer(log_scale_bound), validate_args, name)


class AdditiveCoupling(Coupling):
    r"""NICE's additive coupling: :math:`y = b x + (1-b)(x + t(bx))`, log-det 0 (volume preserving).

    ``Coupling(mask, conditioner, AdditiveTransformer())``.  The conditioner returns the shift (a
    tensor shaped like the event, with a batch axis); a ``(shift, log_scale)`` pair is accepted and
    its log-scale ignored.

    >>> import flowlab, tensorflow as tf
    >>> from flowlab.bijectors.masks import alternating_mask
    >>> from flowlab.conditioners import MLPConditioner
    >>> layer = AdditiveCoupling(alternating_mask(4), MLPConditioner(4, hidden_units=[8], params_per_dim=1))
    >>> float(layer.forward_log_det_jacobian(tf.constant([[0.3, -1.0, 2.0, 0.5]]), event_ndims=1)[0])
    0.0

    Reference: Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation" (2015).
    """

    def __init__(self, mask: Any, conditioner: Callable, validate_args: bool = False,
                 name: str = "additive_coupling") -> None:
        super().__init__(mask, conditioner, AdditiveTransformer(), validate_args, name)

    def _params_from(self, out: Any) -> Any:
        return out[0] if isinstance(out, (tuple, list)) else out


class FunctionCoupling(CachedLogDet, tfb.Bijector):
    r"""A coupling layer made of two plain functions: the lab's way to train *your* coupling.

    ``data_to_latent(x, mask, conditioner) -> (z, log_det)`` is RealNVP's :math:`f`, the direction
    that evaluates densities (``log_det`` is :math:`\log|\det \partial z / \partial x|`, one value per
    image); ``latent_to_data(z, mask, conditioner) -> x`` undoes it, the direction that samples.
    In TFP's convention (``forward`` generates data from the base) ``inverse`` is
    ``data_to_latent`` and its log-det is ``inverse_log_det_jacobian``: the log-det your function
    returns is the one ``log_prob`` uses, with no second opinion.  The functions see tensors of shape
    ``(batch, *event_shape)`` and ``mask`` as a float32 tensor of the event's shape; both run inside
    ``tf.function`` when a Keras model trains, so write them with TensorFlow ops.  The conditioner
    they are given is ``conditioner`` with its log-scale bounded softly, :math:`s \leftarrow c\tanh(s/c)`
    (``log_scale_bound=None``: ``conditioner`` itself, e.g. a shift for NICE).

    Put it in a chain in *data order* (``tfb.Chain([first, second, ...])``: a chain's inverse runs its
    list from the start), as :class:`~flowlab.bijectors.multiscale.MultiScale` expects.

    Example::

        layer = FunctionCoupling(checkerboard(28, 28, 1, 0), ResNetConditioner(1), coupling_forward,
                                 coupling_inverse)
        z = layer.inverse(y); layer.inverse_log_det_jacobian(y, event_ndims=3)   # your log-det
    """

    def __init__(self, mask: Any, conditioner: Callable[[tf.Tensor], Any], data_to_latent: Callable,
                 latent_to_data: Callable, log_scale_bound: float | None = 2.0, validate_args: bool = False,
                 name: str = "function_coupling") -> None:
        parameters = dict(locals())
        mask = validate_mask(mask)
        for fn, what in ((conditioner, "conditioner"), (data_to_latent, "data_to_latent"),
                         (latent_to_data, "latent_to_data")):
            if not callable(fn):
                raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        if log_scale_bound is not None and not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be positive (or None: the conditioner's output as it is), "
                             f"got {log_scale_bound}")
        self._mask_np = mask
        self._event_shape = tuple(mask.shape)
        self._conditioner = conditioner
        self._log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)
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

    def bounded_conditioner(self, masked: tf.Tensor) -> Any:
        """``(shift, log_scale)`` from the conditioner, the log-scale bounded softly: what your functions get.

        With ``log_scale_bound=None`` the conditioner's output as it is (e.g. NICE's shift alone)."""
        out = self._conditioner(masked)
        if self._log_scale_bound is None:
            return out
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"{self.name}: the conditioner must return (shift, log_scale), got {type(out).__name__}")
        shift, log_scale = out
        return tf.cast(shift, masked.dtype), bound_log_scale(tf.cast(log_scale, masked.dtype), self._log_scale_bound)

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
