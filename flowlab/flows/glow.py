r"""Glow (Kingma & Dhariwal 2018) for small images, built from flowlab's pieces.

One **step of flow**, in the data-to-latent direction:

.. code-block:: text

    ActNorm (data-initialised)  ->  invertible 1x1 convolution  ->  affine coupling (channel halves)

The 1×1 convolution (:class:`~flowlab.bijectors.conv1x1.InvertibleConv1x1`) replaces RealNVP's
alternating masks: a learned rotation-and-scaling of the channels decides which combination of
them the next coupling copies and which it transforms.  The steps sit in the multi-scale structure
of :mod:`flowlab.flows.multiscale`, Glow-style: each level **squeezes first**, runs ``steps``
steps on ``(H/2, W/2, 4C)``, then factors out half of the channels; ``final_steps`` steps act on
the coarsest variables.  For 28×28×1 MNIST with two levels:

.. code-block:: text

    y in [0,1)^(28x28x1) --logit--> squeeze 14x14x4 --> K steps --> z1 = 14x14x2 out
                                    squeeze  7x7x8  --> K steps --> z2 = 7x7x4 out
                                    final K' steps on 7x7x4 --> z3

(``tfb.Glow`` exists in TFP but does not run inside Keras models on this stack.)

Example::

    flow = build_glow((28, 28, 1), steps=4, filters=32)
    initialize_actnorm(flow, first_batch)            # data-dependent init, once
    model = flowlab.training.density_model(flow)     # output: log_prob
    conv_weights(flow)                               # the learned 1x1 convolution matrices

Reference: D. P. Kingma, P. Dhariwal, "Glow: Generative flow with invertible 1x1 convolutions" (2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.actnorm import ActNorm
from flowlab.bijectors.conv1x1 import InvertibleConv1x1
from flowlab.bijectors.coupling import AffineCoupling
from flowlab.bijectors.logit import Logit
from flowlab.bijectors.masks import channel_mask
from flowlab.bijectors.multiscale import MultiScale, _shape
from flowlab.bijectors.squeeze import Squeeze
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.flows.base import keras_dtype
from flowlab.flows.multiscale import image_base
from flowlab.validation import integer

__all__ = ["glow_step", "build_glow", "flowpp_coupling", "conv_weights"]

tfd, tfb = tfp.distributions, tfp.bijectors


def _default_conv(channels: int, name: str) -> tfb.Bijector:
    return InvertibleConv1x1(channels, name=name)


def glow_step(shape: Sequence[int], filters: int = 32, blocks: int = 1, log_scale_bound: float = 2.0,
              conv1x1: Callable[[int, str], tfb.Bijector] | None = None, coupling: Callable | None = None,
              name: str = "step") -> list[tfb.Bijector]:
    """One Glow step on events of ``shape = (H, W, C)``, in data order: ActNorm, 1×1 conv, coupling.

    ``conv1x1(channels, name)`` makes the convolution (default :class:`InvertibleConv1x1`, LU);
    ``coupling(mask, name)`` the coupling with its own conditioner (default an :class:`AffineCoupling`
    with a :class:`ResNetConditioner` of ``filters`` and ``blocks``, log-scales bounded by
    ``log_scale_bound``).  The coupling copies the first half of the channels and transforms the
    second: the convolution before it decides what the halves hold.
    """
    h, w, c = _shape(shape)
    if c < 2:
        raise ValueError(f"a Glow step needs at least 2 channels to split, got shape {(h, w, c)}: squeeze first")
    conv1x1 = conv1x1 or _default_conv
    mask = channel_mask(h, w, c, half=0)
    if coupling is not None:
        layer = coupling(mask, f"{name}_coupling")
    else:
        net = ResNetConditioner(c, filters=filters, blocks=blocks, name=f"{name}_resnet")
        layer = AffineCoupling(mask, net, log_scale_bound=log_scale_bound, name=f"{name}_coupling")
    return [ActNorm(c, name=f"{name}_actnorm"), conv1x1(c, f"{name}_conv1x1"), layer]


def flowpp_coupling(components: int = 4, filters: int = 32, blocks: int = 1) -> Callable[[Any, str], tfb.Bijector]:
    r"""Flow++'s coupling for :func:`glow_step` / :func:`build_glow`: ``coupling=flowpp_coupling(4)``.

    Each transformed variable goes through the CDF of a ``components``-logistic mixture, the inverse
    sigmoid and an affine map (:class:`flowlab.transformers.MixtureCDFTransformer`, :math:`3K + 2`
    parameters per variable from a :class:`ResNetConditioner`); data to latent is closed form, sampling
    inverts the mixture CDF by bisection (slower than an affine coupling's).  Flow++ also uses
    self-attention in its conditioners; this one is the same ResNet as the affine coupling's.
    """
    from flowlab.bijectors.coupling import Coupling  # the structure x transformer coupling
    from flowlab.transformers import MixtureCDFTransformer

    def make(mask: Any, name: str) -> tfb.Bijector:
        transformer = MixtureCDFTransformer(components)
        channels = int(np.shape(mask)[-1])
        net = ResNetConditioner(channels, filters=filters, blocks=blocks, params_per_dim=transformer.params_per_dim,
                                name=f"{name}_resnet")
        return Coupling(mask, net, transformer, name=name)

    return make


def build_glow(
    image_shape: Sequence[int] = (28, 28, 1),
    scales: int = 2,
    steps: int = 4,
    final_steps: int = 4,
    filters: int = 32,
    blocks: int = 1,
    alpha: float = 0.05,
    log_scale_bound: float = 2.0,
    conv1x1: Callable[[int, str], tfb.Bijector] | None = None,
    coupling: Callable | None = None,
    logit: tfb.Bijector | None = None,
    dtype: Any = tf.float32,
) -> tfd.TransformedDistribution:
    """A multi-scale Glow over images ``y in [0, 1)^image_shape`` (dequantized pixels / 256).

    Args:
      image_shape: ``(H, W, C)``; H and W divisible by ``2**scales``.
      scales: levels of (squeeze, ``steps`` steps, factor out half); at least 1.
      steps, final_steps: Glow steps per level and on the coarsest variables.
      filters, blocks: each coupling's :class:`ResNetConditioner`.
      alpha: the logit's boundary margin.
      conv1x1, coupling: factories passed to :func:`glow_step` (e.g. your own 1×1 convolution, or
        :func:`flowpp_coupling` for Flow++'s mixture-of-logistics couplings).
      logit: the first bijector (data to logit space); default ``Logit(alpha)``.
      dtype: float32 (default) or float64: the base's and every layer's; the factories run with
        Keras's ``floatx()`` set to it (:class:`ActNorm` and :class:`InvertibleConv1x1` follow it).

    Returns a ``tfd.TransformedDistribution`` whose ``log_prob`` counts every log-det, as
    :func:`~flowlab.flows.multiscale.build_multiscale_realnvp`'s does (the same ``MultiScale``
    packing, so :func:`~flowlab.flows.multiscale.bits_by_scale` and ``sample_images`` work on it).

    Raises:
        flowlab.validation.ArgumentError: a bad ``image_shape``, count or ``dtype``.
        ValueError: H or W not divisible by ``2**scales``.

    >>> import flowlab, numpy as np
    >>> flow = build_glow((4, 4, 1), scales=1, steps=1, final_steps=1, filters=4, dtype="float64")
    >>> flow.log_prob(np.full((4, 4, 1), 0.5)).dtype, flow.sample().shape
    (tf.float64, TensorShape([4, 4, 1]))

    Reference: Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (NeurIPS 2018).
    """
    h, w, c = _shape(image_shape)
    scales, steps, final_steps = (integer(v, label) for v, label in
                                  ((scales, "scales"), (steps, "steps"), (final_steps, "final_steps")))
    filters, blocks = integer(filters, "filters"), integer(blocks, "blocks", minimum=0)
    if h % 2**scales or w % 2**scales:
        raise ValueError(f"an image of {h}x{w} cannot be squeezed {scales} times: "
                         f"height and width must be divisible by {2**scales}")
    with keras_dtype(dtype) as dtype:
        levels, shape = [], (h, w, c)
        for k in range(scales):
            squeezed = (shape[0] // 2, shape[1] // 2, 4 * shape[2])
            data_order: list[tfb.Bijector] = [tfb.Invert(Squeeze(name=f"s{k}_squeeze"))]
            for i in range(steps):
                data_order += glow_step(squeezed, filters, blocks, log_scale_bound, conv1x1, coupling,
                                        name=f"s{k}_step{i}")
            levels.append(tfb.Chain(data_order, name=f"scale{k}"))  # a chain's inverse runs its list in data order
            shape = (squeezed[0], squeezed[1], squeezed[2] // 2)
        final_layers: list[tfb.Bijector] = []
        for i in range(final_steps):
            final_layers += glow_step(shape, filters, blocks, log_scale_bound, conv1x1, coupling,
                                      name=f"final_step{i}")
    flow = MultiScale((h, w, c), levels, tfb.Chain(final_layers, name="final"))
    bijector = tfb.Chain([tfb.Invert(logit if logit is not None else Logit(alpha)), flow], name="glow")
    return tfd.TransformedDistribution(image_base((h, w, c), dtype), bijector, name="Glow")


def conv_weights(flow: Any) -> list[tuple[str, np.ndarray]]:
    """``(name, W)`` of every :class:`InvertibleConv1x1` in a flow, in the order the flow holds them."""
    bijector = getattr(flow, "bijector", flow)
    out: list[tuple[str, np.ndarray]] = []
    seen: set[int] = set()

    def walk(b: Any) -> None:
        if isinstance(b, InvertibleConv1x1):
            if id(b) not in seen:
                seen.add(id(b))
                out.append((b.name, np.asarray(tf.convert_to_tensor(b.weight))))
            return
        if isinstance(b, MultiScale):
            for part in list(b._levels) + [b._final]:
                walk(part)
        for part in getattr(b, "bijectors", []) or []:
            walk(part)
        inner = getattr(b, "bijector", None)
        if inner is not None:
            walk(inner)

    walk(bijector)
    return out
