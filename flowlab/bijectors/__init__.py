"""flowlab's own bijectors, for what TFP does not ship: each a ``tfb.Bijector`` subclass.

- CDF flows: :class:`MixtureCDF` (elementwise mixture CDF), :class:`AutoregressiveMixtureCDF`
  (its autoregressive version, with Keras conditioners).
- Coupling flows: :class:`AdditiveCoupling` (NICE), :class:`AffineCoupling` (RealNVP) with binary
  masks from :mod:`flowlab.bijectors.masks`, for vectors and images.
- Flows for variational inference: :class:`Planar`, :class:`Radial` (Rezende & Mohamed 2015),
  :class:`OrthogonalSylvester`, :class:`HouseholderSylvester`, :class:`TriangularSylvester`
  (van den Berg et al. 2018).
- :class:`BatchNormalization` between layers (TFP's, with ``log_prob``'s training-mode log-det fixed;
  :mod:`flowlab.bijectors.batch_norm`).
- Image pieces: :class:`Squeeze` (space-to-depth), :class:`ActNorm` (Glow), :class:`Logit`
  (:mod:`flowlab.bijectors.logit`), uniform dequantization (:mod:`flowlab.bijectors.dequantize`) and
  :class:`MultiScale` (factoring out half the variables at each scale).
"""

from flowlab.bijectors.actnorm import ActNorm, initialize_actnorm
from flowlab.bijectors.autoregressive_cdf import AutoregressiveMixtureCDF
from flowlab.bijectors.batch_norm import BatchNormalization
from flowlab.bijectors.conv1x1 import InvertibleConv1x1
from flowlab.bijectors.coupling import AdditiveCoupling, AffineCoupling, Coupling
from flowlab.bijectors.dequantize import dequantized_dataset, uniform_dequantize
from flowlab.bijectors.logit import Logit
from flowlab.bijectors.logit_mixture_cdf import LogitMixtureCDF
from flowlab.bijectors.masks import alternating_mask, channel_mask, checkerboard
from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.bijectors.multiscale import MultiScale
from flowlab.bijectors.planar import Planar
from flowlab.bijectors.radial import Radial
from flowlab.bijectors.squeeze import Squeeze
from flowlab.bijectors.sylvester import HouseholderSylvester, OrthogonalSylvester, Sylvester, TriangularSylvester
from flowlab.bijectors.variational_dequantization import VariationalDequantizer

# moved: the conditioners (flowlab.conditioners.mixture) and the flow builder
# (flowlab.flows.autoregressive_cdf) are still exported here under their old names, the same objects.
from flowlab.conditioners.mixture import MADEMixtureConditioner, MixtureConditioner2D


def __getattr__(name: str) -> object:
    # flows imports bijectors: import the builder on first use, not at the top (an import cycle).
    if name == "build_autoregressive_mixture_cdf":
        from flowlab.flows.autoregressive_cdf import build_autoregressive_mixture_cdf

        return build_autoregressive_mixture_cdf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "Coupling",
    "AutoregressiveMixtureCDF",
    "BatchNormalization",
    "InvertibleConv1x1",
    "Logit",
    "LogitMixtureCDF",
    "MADEMixtureConditioner",
    "MixtureCDF",
    "MixtureConditioner2D",
    "MultiScale",
    "Squeeze",
    "VariationalDequantizer",
    "Planar",
    "Radial",
    "Sylvester",
    "OrthogonalSylvester",
    "HouseholderSylvester",
    "TriangularSylvester",
    "alternating_mask",
    "build_autoregressive_mixture_cdf",  # noqa: F822  (resolved by __getattr__)
    "channel_mask",
    "checkerboard",
    "dequantized_dataset",
    "initialize_actnorm",
    "uniform_dequantize",
]
