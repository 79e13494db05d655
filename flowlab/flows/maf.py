r"""Masked autoregressive flows (MAF) and their inverse (IAF).

A MAF layer transforms each variable with a shift and log-scale computed from the variables
before it by a MADE network (Germain et al. 2015):

.. math:: x_i = z_i \exp(\alpha_i(x_{<i})) + \mu_i(x_{<i})

Density evaluation needs :math:`x` only, so it is one network pass (fast); sampling must produce
:math:`x_1, x_2, \dots` in turn, one pass per dimension (slow) -- Papamakarios et al. 2017.  The
IAF (Kingma et al. 2016) is the same layer inverted: sampling is one pass, density evaluation of a
new point needs ``d`` passes.  Layers are separated by permutations so that every variable gets to
condition the others.

Example::

    flow = build_maf(2, n_layers=3)           # the classic two-moons flow
    flow.log_prob(x); flow.sample(100)
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.flows.base import built, check_dims, reverse_permutation, standard_normal

__all__ = ["BoundedMADE", "made_layer", "build_maf", "build_iaf"]

tfd, tfb = tfp.distributions, tfp.bijectors


class BoundedMADE(tf.keras.layers.Layer):
    r"""A MADE conditioner whose log-scale is softly bounded: :math:`\alpha \leftarrow b\tanh(\alpha / b)`.

    With an unbounded :math:`\alpha` a deep MAF can, on one unlucky batch, scale a variable by
    :math:`e^{20}`; the next gradient is then huge and training turns NaN (five lab-sheet layers do so
    in half of all initialisations, ``bench/two_moons.md``). The bound caps one layer's stretch at
    :math:`e^{\pm b}` and is nearly the identity for :math:`|\alpha| \ll b`.

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
            params=2, event_shape=[dims], hidden_units=list(hidden_units), activation=activation
        )

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shift, log_scale = tf.unstack(self.network(x), axis=-1)
        return shift, self.bound * tf.tanh(log_scale / self.bound)


def made_layer(
    dims: int, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    log_scale_bound: float | None = None,
) -> tfb.Bijector:
    """One ``tfb.MaskedAutoregressiveFlow`` whose MADE conditioner is a Keras layer.

    ``log_scale_bound``: ``None`` for the lab sheet's unbounded log-scale, else the soft bound of
    :class:`BoundedMADE`.
    """
    if log_scale_bound is not None:
        return tfb.MaskedAutoregressiveFlow(
            shift_and_log_scale_fn=BoundedMADE(dims, hidden_units, activation, bound=log_scale_bound))
    network = tfb.AutoregressiveNetwork(
        params=2, event_shape=[dims], hidden_units=list(hidden_units), activation=activation
    )
    return tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=network)


def _autoregressive_flow(
    dims: int, n_layers: int, hidden_units: Sequence[int], activation: str, invert: bool,
    log_scale_bound: float | None = None,
) -> tfd.TransformedDistribution:
    name = "IAF" if invert else "MAF"
    check_dims(dims, 2, "an inverse autoregressive flow" if invert else "a masked autoregressive flow")
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    bijectors: list[tfb.Bijector] = []
    for _ in range(n_layers):
        layer = made_layer(dims, hidden_units, activation, log_scale_bound)
        bijectors += [tfb.Invert(layer) if invert else layer, reverse_permutation(dims)]
    # tfb.Chain applies its list right to left: reverse it so the first layer built acts first on z.
    chain = tfb.Chain(list(reversed(bijectors)))
    return built(tfd.TransformedDistribution(standard_normal(dims), chain, name=name))


def build_maf(
    dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (128, 128), activation: str = "relu",
    log_scale_bound: float | None = None,
) -> tfd.TransformedDistribution:
    """A MAF over ``dims``-vectors: ``n_layers`` MADE layers, each followed by a reversal.

    ``log_scale_bound`` softly bounds each layer's log-scale (:class:`BoundedMADE`); ``None`` (the
    lab sheet's MAF) leaves it free.
    """
    return _autoregressive_flow(dims, n_layers, hidden_units, activation, invert=False,
                                log_scale_bound=log_scale_bound)


def build_iaf(
    dims: int, n_layers: int = 3, hidden_units: Sequence[int] = (128, 128), activation: str = "relu"
) -> tfd.TransformedDistribution:
    """An IAF over ``dims``-vectors: the MAF's layers inverted (fast sampling, slow density)."""
    return _autoregressive_flow(dims, n_layers, hidden_units, activation, invert=True)
