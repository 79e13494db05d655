r"""The four 2-D test energies of Rezende & Mohamed (2015, Fig. 3 and Table 1), with their normalisers.

A target for variational inference is an unnormalised density :math:`\tilde p(z) = e^{-U(z)}`:

.. math::

    U_1(z) &= \tfrac12\Big(\frac{\lVert z\rVert - 2}{0.4}\Big)^2
             - \log\Big(e^{-\frac12\left(\frac{z_1 - 2}{0.6}\right)^2} + e^{-\frac12\left(\frac{z_1 + 2}{0.6}\right)^2}\Big)\\
    U_2(z) &= \tfrac12\Big(\frac{z_2 - w_1(z)}{0.4}\Big)^2\\
    U_3(z) &= -\log\Big(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.35}\right)^2}
             + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_2(z)}{0.35}\right)^2}\Big)\\
    U_4(z) &= -\log\Big(e^{-\frac12\left(\frac{z_2 - w_1(z)}{0.4}\right)^2}
             + e^{-\frac12\left(\frac{z_2 - w_1(z) + w_3(z)}{0.35}\right)^2}\Big)

with :math:`w_1(z) = \sin(2\pi z_1/4)`, :math:`w_2(z) = 3 e^{-\frac12((z_1 - 1)/0.6)^2}`,
:math:`w_3(z) = 3\sigma((z_1 - 1)/0.3)`.

:math:`U_2`-:math:`U_4` do not depend on :math:`z_1` far out, so :math:`e^{-U}` is not integrable on the
plane; the paper only ever shows them on :math:`[-4, 4]^2`.  We make that box part of the target: a
steep quadratic wall :math:`\tfrac12\big(\max(\lvert z_1\rvert - 4, 0)/0.1\big)^2` is added to every
energy (it changes :math:`U_1` by less than 1e-6 of its mass), so each target is a proper density and
its :math:`\log Z` is finite.  Because the targets are 2-D, :math:`\log Z` is computed on a grid
(:func:`log_normalizer`), so the lab reports the exact :math:`\mathrm{KL}(q\,\Vert\,p) =
\mathbb E_q[\log q - \log\tilde p] + \log Z` in nats, not only the ELBO.

Example::

    log_p = energy_log_prob("U1")             # z of shape (..., 2) -> -U1(z) - wall(z)
    log_z = log_normalizer("U1")              # float, about 1.8
"""  # noqa: E501 - the math lines of the docstring are not wrapped

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

__all__ = ["ENERGIES", "energy", "energy_log_prob", "log_normalizer", "density_grid", "WALL"]

WALL = 4.0  # |z1| beyond which the wall rises
_WALL_WIDTH = 0.1


def _w1(z1: tf.Tensor) -> tf.Tensor:
    return tf.sin(2.0 * math.pi * z1 / 4.0)


def _w2(z1: tf.Tensor) -> tf.Tensor:
    return 3.0 * tf.exp(-0.5 * tf.square((z1 - 1.0) / 0.6))


def _w3(z1: tf.Tensor) -> tf.Tensor:
    return 3.0 * tf.sigmoid((z1 - 1.0) / 0.3)


def _log_sum_two(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_logsumexp(tf.stack([a, b], axis=0), axis=0)


def _u1(z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    radius = tf.sqrt(tf.square(z1) + tf.square(z2))
    lobes = _log_sum_two(-0.5 * tf.square((z1 - 2.0) / 0.6), -0.5 * tf.square((z1 + 2.0) / 0.6))
    return 0.5 * tf.square((radius - 2.0) / 0.4) - lobes


def _u2(z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    return 0.5 * tf.square((z2 - _w1(z1)) / 0.4)


def _u3(z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    return -_log_sum_two(-0.5 * tf.square((z2 - _w1(z1)) / 0.35), -0.5 * tf.square((z2 - _w1(z1) + _w2(z1)) / 0.35))


def _u4(z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    return -_log_sum_two(-0.5 * tf.square((z2 - _w1(z1)) / 0.4), -0.5 * tf.square((z2 - _w1(z1) + _w3(z1)) / 0.35))


ENERGIES: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {"U1": _u1, "U2": _u2, "U3": _u3, "U4": _u4}


def _name(name: str) -> str:
    key = str(name).upper()
    if key not in ENERGIES:
        raise ValueError(f"unknown energy {name!r}: choose one of {', '.join(ENERGIES)}")
    return key


def energy(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """:math:`U(z)` plus the wall, for ``z`` of shape ``(..., 2)``."""
    u = ENERGIES[_name(name)]

    def potential(z: tf.Tensor) -> tf.Tensor:
        z = tf.convert_to_tensor(z)
        if z.shape.rank is not None and (z.shape.rank == 0 or (z.shape[-1] is not None and z.shape[-1] != 2)):
            raise ValueError(f"energy {name}: z must have shape (..., 2), got {z.shape}")
        z1, z2 = z[..., 0], z[..., 1]
        wall = 0.5 * tf.square(tf.nn.relu(tf.abs(z1) - WALL) / _WALL_WIDTH)
        return u(z1, z2) + wall

    return potential


def energy_log_prob(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """:math:`\\log\\tilde p(z) = -U(z)`, the unnormalised log-density a flow is fitted to."""
    potential = energy(name)
    return lambda z: -potential(z)


def density_grid(name: str, limit: float = 4.0, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z1, z2, p)`` on an ``n x n`` grid over ``[-limit, limit]^2``: the *normalised* density, for plots."""
    axis = np.linspace(-limit, limit, n)
    z1, z2 = np.meshgrid(axis, axis)
    z = np.stack([z1, z2], axis=-1)
    log_p = energy_log_prob(name)(tf.constant(z, tf.float64)).numpy() - log_normalizer(name)
    return z1, z2, np.exp(log_p)


@functools.cache
def log_normalizer(name: str, limit: float = 6.0, step: float = 0.02) -> float:
    """:math:`\\log Z = \\log\\int e^{-U(z)}\\,dz` by a midpoint rule on ``[-limit, limit]^2`` (float64).

    The integrand is smooth on the scale of 0.35 and negligible outside ``[-4.6, 4.6] x [-5, 5]``, so the
    default grid (step 0.02) is accurate far beyond the Monte-Carlo error of a KL estimate (halving the
    step changes :math:`\\log Z` by < 1e-9).
    """
    axis = np.arange(-limit + step / 2, limit, step)
    z1, z2 = np.meshgrid(axis, axis)
    u = energy(name)(tf.constant(np.stack([z1, z2], axis=-1), tf.float64)).numpy()
    return float(np.logaddexp.reduce(-u.ravel()) + 2.0 * math.log(step))
