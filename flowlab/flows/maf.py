r"""Masked autoregressive flows (MAF) and their inverse (IAF).

A MAF layer transforms each variable with a shift and log-scale computed from the variables
before it by a MADE network (Germain et al. 2015):

.. math:: x_i = z_i \exp(\alpha_i(x_{<i})) + \mu_i(x_{<i})

Density evaluation needs :math:`x` only, so it is one network pass (fast); sampling must produce
:math:`x_1, x_2, \dots` in turn, one pass per dimension (slow) -- Papamakarios et al. 2017.  The
IAF (Kingma et al. 2016) is the same layer inverted: sampling is one pass, density evaluation of a
new point needs ``d`` passes.  Layers are separated by permutations so that every variable gets to
condition the others.

The affine map is one choice of *transformer* (:mod:`flowlab.transformers`):
:func:`autoregressive_layer` takes any, e.g. a rational-quadratic spline
(:func:`flowlab.flows.build_nsf` with ``kind="autoregressive"``).

Example::

    flow = build_maf(2, n_layers=3)           # the classic two-moons flow
    flow.log_prob(x); flow.sample(100)
    layer = autoregressive_layer(2, SplineTransformer(bins=8))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.conditioners.initializers import FanInUniform, check_init
from flowlab.flows.base import check_dims, stack
from flowlab.transformers import AffineTransformer, Transformer, bound_log_scale
from flowlab.validation import integer, integers

__all__ = ["BoundedMADE", "MADETransformer", "autoregressive_layer", "made_layer", "build_maf", "build_iaf"]

tfd, tfb = tfp.distributions, tfp.bijectors


class BoundedMADE(tf.keras.layers.Layer):
    r"""A MADE conditioner whose log-scale is softly bounded: :math:`\alpha \leftarrow b\tanh(\alpha / b)`.

    With an unbounded :math:`\alpha` a deep MAF can, on one unlucky batch, scale a variable by
    :math:`e^{20}`; the next gradient is then huge and training turns NaN (five lab-sheet layers do so
    in half of all initialisations, ``bench/two_moons.md``). The bound
    (:func:`flowlab.transformers.bound_log_scale`) caps one layer's stretch at :math:`e^{\pm b}` and is
    nearly the identity for :math:`|\alpha| \ll b`.  :func:`build_maf` puts the bound in the
    transformer instead; this layer is for a ``shift_and_log_scale_fn``.

    >>> import flowlab, tensorflow as tf
    >>> made = BoundedMADE(2, bound=2.0)
    >>> shift, log_scale = made(tf.constant([[0.5, -1.0]]))
    >>> bool(tf.reduce_all(tf.abs(log_scale) < 2.0))
    True
    """

    def __init__(self, dims: int, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
                 bound: float = 3.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.bound = float(bound)
        self.network = tfb.AutoregressiveNetwork(
            params=2, event_shape=[integer(dims, "dims")], hidden_units=list(integers(hidden_units, "hidden_units")),
            activation=activation, dtype=self.dtype)

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shift, log_scale = tf.unstack(self.network(x), axis=-1)
        return shift, bound_log_scale(log_scale, self.bound)


class MADETransformer(tf.Module):
    r"""``bijector_fn`` of a ``tfb.MaskedAutoregressiveFlow``: a MADE network's outputs -> the transformer's bijector.

    A ``tf.Module`` holding the Keras MADE network (``params_per_dim`` outputs per variable), so the
    flow's ``trainable_variables`` find its weights.  ``zero_init=True`` starts the network's output
    layer at zero (Kingma & Dhariwal 2018): every transformer in :mod:`flowlab.transformers` is the
    identity at zero parameters, so the layer starts as the identity, as a coupling layer does;
    otherwise the output layer is initialised as the others and the layer starts as a random monotone map.

    ``init``: the layers' weights.  ``"glorot"`` (TFP's default): Glorot-uniform kernels, zero biases.
    ``"uniform"`` (PyTorch's ``nn.Linear`` default, zuko's): kernels and biases uniform on
    :math:`\pm 1/\sqrt{\text{fan-in}}` (:mod:`flowlab.conditioners.initializers` says why the biases
    matter in low dimensions).  On two moons a 4-layer spline MADE flow with ``zero_init=True`` scored
    0.317-0.322 test nats over 5 seeds with ``init="uniform"`` against 0.321-0.335 with Glorot (true
    density 0.300; ``bench/beyond_affine.md``).  The masks are kept.
    """

    def __init__(self, dims: int, transformer: Transformer, hidden_units: Sequence[int] = (128, 128),
                 activation: str = "relu", name: str | None = None, zero_init: bool = False,
                 init: str = "glorot") -> None:
        super().__init__(name=name)
        if not (callable(transformer) and isinstance(getattr(transformer, "params_per_dim", None), int)):
            raise TypeError("the transformer must be a flowlab.transformers.Transformer, "
                            f"got {type(transformer).__name__}")
        init = check_init(init)
        self.transformer = transformer
        self.network = tfb.AutoregressiveNetwork(
            params=transformer.params_per_dim, event_shape=[integer(dims, "dims")],
            hidden_units=list(integers(hidden_units, "hidden_units")), activation=activation)
        if not (zero_init or init == "uniform"):
            return  # built at the first call, as TFP builds it (the seeded draws stay where they were)
        self.network.build([None, dims])
        variables = self.network.trainable_variables  # kernel, bias, kernel, bias, ...: one pair per layer
        if init == "uniform":
            # Drawn here, layer by layer: AutoregressiveNetwork takes one bias initializer for every layer, which
            # cannot know each layer's fan-in.  The kernel's constraint is MADE's mask.
            for kernel, bias in zip(variables[0::2], variables[1::2]):
                kernel.assign(kernel.constraint(FanInUniform()(kernel.shape, kernel.dtype)))
                bias.assign(FanInUniform(kernel.shape[0])(bias.shape, bias.dtype))
        if zero_init:
            for variable in variables[-2:]:  # the output layer's kernel and bias
                variable.assign(tf.zeros_like(variable))  # (zeros keep MADE's mask: TFP masks by zeroing)

    def __call__(self, x: tf.Tensor, **kwargs) -> tfb.Bijector:
        return self.transformer(self.network(x))


class _MaskedAutoregressiveFlow(tfb.MaskedAutoregressiveFlow):
    """TFP's MAF layer, its log-det taken from the same MADE pass as its inverse.

    TFP's ``_inverse`` and ``_inverse_log_det_jacobian`` each call ``bijector_fn(y)``: two passes of
    the network (and of the transformer, e.g. two spline bin look-ups) per ``log_prob``, and twice
    the traced gradient.  Here the inverse stores the log-det in TFP's bijector cache, which
    ``inverse_log_det_jacobian`` reads first (as :class:`~flowlab.bijectors.coupling.Coupling` does),
    so ``log_prob`` runs the network once (a 4-layer spline MAF: 44 -> 64 training steps per CPU
    second, ``bench/beyond_affine.md``).  On a cache miss TFP's own log-det runs the network again.
    """

    def _inverse(self, y: tf.Tensor, **kwargs) -> tf.Tensor:
        bijector = self._bijector_fn(y, **kwargs)
        self._cache.inverse_attributes(y, **kwargs)["ildj"] = bijector.inverse_log_det_jacobian(
            y, event_ndims=self._event_ndims)
        return bijector.inverse(y)


def autoregressive_layer(
    dims: int, transformer: Transformer, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    zero_init: bool = False, init: str = "glorot",
) -> tfb.MaskedAutoregressiveFlow:
    """One ``tfb.MaskedAutoregressiveFlow`` moving variable ``i`` by ``transformer`` with parameters from ``x_<i``.

    ``log_prob`` runs its MADE network once (the log-det comes with the inverse, from TFP's cache).
    ``zero_init``: start as the identity; ``init``: ``"glorot"`` or ``"uniform"`` weights (:class:`MADETransformer`).

    >>> import flowlab
    >>> from flowlab.transformers import SplineTransformer
    >>> layer = autoregressive_layer(2, SplineTransformer(bins=4), hidden_units=(8,))
    >>> layer.inverse(layer.forward([[0.5, -1.0]])).shape
    TensorShape([1, 2])
    """
    return _MaskedAutoregressiveFlow(bijector_fn=MADETransformer(dims, transformer, hidden_units, activation,
                                                                 zero_init=zero_init, init=init))


def made_layer(
    dims: int, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    log_scale_bound: float | None = None,
) -> tfb.Bijector:
    """One affine MAF layer: :func:`autoregressive_layer` with an :class:`~flowlab.transformers.AffineTransformer`.

    ``log_scale_bound``: ``None`` for the lab sheet's unbounded log-scale, else the soft bound.
    The bijector is the one TFP builds from ``shift_and_log_scale_fn=tfb.AutoregressiveNetwork(params=2)``.

    >>> import flowlab
    >>> layer = made_layer(2, hidden_units=(8,))
    >>> layer.forward([[0.5, -1.0]]).shape
    TensorShape([1, 2])

    Reference: Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation" (2017).
    """
    return autoregressive_layer(dims, AffineTransformer(log_scale_bound), hidden_units, activation)


def build_autoregressive(
    dims: int, transformer: Transformer, n_layers: int = 3, hidden_units: Sequence[int] = (128, 128),
    activation: str = "relu", invert: bool = False, name: str = "MAF", dtype: Any = tf.float32,
    zero_init: bool = False, init: str = "glorot",
) -> tfd.TransformedDistribution:
    """``n_layers`` autoregressive layers with ``transformer``, each followed by a reversal (``invert``: IAF).

    ``dtype``: float32 (default) or float64, the flow's and its networks' (every builder takes it).
    Events may be batched or single: ``log_prob`` of one ``(dims,)`` event is a scalar, ``sample()``
    one event, as for any TFP distribution.  ``zero_init``: every layer starts as the identity
    (:class:`MADETransformer`), so the flow starts as its base distribution; ``init``: the MADE
    networks' weights, ``"glorot"`` (TFP's) or ``"uniform"`` (PyTorch's, random biases: see
    :class:`MADETransformer`).

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``n_layers``, ``hidden_units`` or ``dtype``.
        TypeError: ``transformer`` is not a :class:`flowlab.transformers.Transformer`.
        ValueError: an unknown ``init``.

    >>> import flowlab
    >>> from flowlab.transformers import SplineTransformer
    >>> flow = build_autoregressive(2, SplineTransformer(bins=4), n_layers=1, hidden_units=(8,))
    >>> flow.log_prob([[0.5, -1.0], [0.0, 0.2]]).shape, flow.sample(3).shape
    (TensorShape([2]), TensorShape([3, 2]))

    References: Papamakarios et al. (2017), MAF; Kingma et al. (2016), IAF; Durkan et al. (2019), NSF.
    """
    dims = check_dims(dims, 2, "an inverse autoregressive flow" if invert else "an autoregressive flow")
    hidden_units = integers(hidden_units, "hidden_units")

    def layer(i: int) -> tfb.Bijector:
        made = autoregressive_layer(dims, transformer, hidden_units, activation, zero_init=zero_init, init=init)
        return tfb.Invert(made) if invert else made

    return stack(layer, n_layers, dims, name, dtype=dtype)


def build_maf(
    dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    log_scale_bound: float | None = None, dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """A MAF over ``dims``-vectors: ``n_layers`` MADE layers, each followed by a reversal.

    ``log_scale_bound`` softly bounds each layer's log-scale; ``None`` (the lab sheet's MAF) leaves it free.

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``n_layers``, ``hidden_units`` or ``dtype``.

    >>> import flowlab
    >>> flow = build_maf(2, n_layers=2, hidden_units=(8,), dtype="float64")
    >>> flow.log_prob([0.5, -1.0]).dtype, flow.sample().shape       # one event: a scalar, one draw
    (tf.float64, TensorShape([2]))
    """
    dims = check_dims(dims, 2, "a masked autoregressive flow")
    return build_autoregressive(dims, AffineTransformer(log_scale_bound), n_layers, hidden_units, activation,
                                name="MAF", dtype=dtype)


def build_iaf(
    dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    log_scale_bound: float | None = None, dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """An IAF over ``dims``-vectors: the MAF's layers inverted (fast sampling, slow density).

    ``log_scale_bound`` softly bounds each layer's log-scale (``None``: free). Trained by reverse KL,
    a deep IAF with free log-scales can stretch its samples without limit while the annealed target
    barely counts, and diverges (``bench/variational.md``); a bound keeps each layer's stretch finite.

    Raises:
        flowlab.validation.ArgumentError: ``dims`` below 2, a bad ``n_layers``, ``hidden_units`` or ``dtype``.

    >>> import flowlab
    >>> flow = build_iaf(3, n_layers=1, hidden_units=(8,))
    >>> flow.sample().shape, flow.log_prob([0.1, 0.2, 0.3]).shape
    (TensorShape([3]), TensorShape([]))

    Reference: Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling, "Improved Variational Inference
    with Inverse Autoregressive Flow" (NeurIPS 2016).
    """
    return build_autoregressive(dims, AffineTransformer(log_scale_bound), n_layers, hidden_units, activation,
                                invert=True, name="IAF", dtype=dtype)
