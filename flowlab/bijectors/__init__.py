"""flowlab's own bijectors, for what TFP does not ship: each a ``tfb.Bijector`` subclass.

- CDF flows: :class:`MixtureCDF` (elementwise mixture CDF), :class:`AutoregressiveMixtureCDF`
  (its autoregressive version, with Keras conditioners).
- Coupling flows: :class:`AdditiveCoupling` (NICE), :class:`AffineCoupling` (RealNVP) with binary
  masks from :mod:`flowlab.bijectors.masks`, for vectors and images.
- Flows for variational inference: :class:`Planar`, :class:`Radial` (Rezende & Mohamed 2015),
  :class:`OrthogonalSylvester`, :class:`HouseholderSylvester`, :class:`TriangularSylvester`
  (van den Berg et al. 2018).
- Image pieces: :class:`Squeeze` (space-to-depth), :class:`ActNorm` (Glow), :class:`Logit` and
  uniform dequantization (:mod:`flowlab.bijectors.dequantize`).
"""

from flowlab.bijectors.actnorm import ActNorm, initialize_actnorm
from flowlab.bijectors.autoregressive_cdf import (
    AutoregressiveMixtureCDF,
    MADEMixtureConditioner,
    MixtureConditioner2D,
    build_autoregressive_mixture_cdf,
)
from flowlab.bijectors.conv1x1 import InvertibleConv1x1
from flowlab.bijectors.coupling import AdditiveCoupling, AffineCoupling, Coupling
from flowlab.bijectors.logit_mixture_cdf import LogitMixtureCDF
from flowlab.bijectors.dequantize import Logit, dequantized_dataset, uniform_dequantize
from flowlab.bijectors.masks import alternating_mask, channel_mask, checkerboard
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.bijectors.planar import Planar
from flowlab.bijectors.radial import Radial
from flowlab.bijectors.squeeze import Squeeze
from flowlab.bijectors.variational_dequantization import VariationalDequantizer
from flowlab.bijectors.sylvester import HouseholderSylvester, OrthogonalSylvester, Sylvester, TriangularSylvester

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "Coupling",
    "AutoregressiveMixtureCDF",
    "InvertibleConv1x1",
    "Logit",
    "LogitMixtureCDF",
    "MADEMixtureConditioner",
    "MixtureCDF",
    "MixtureConditioner2D",
    "Squeeze",
    "VariationalDequantizer",
    "Planar",
    "Radial",
    "Sylvester",
    "OrthogonalSylvester",
    "HouseholderSylvester",
    "TriangularSylvester",
    "alternating_mask",
    "build_autoregressive_mixture_cdf",
    "channel_mask",
    "checkerboard",
    "dequantized_dataset",
    "initialize_actnorm",
    "uniform_dequantize",
]
