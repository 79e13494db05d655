"""Flow builders: each returns a ``tfd.TransformedDistribution`` over a standard normal base."""

from flowlab.flows.maf import build_iaf, build_maf, made_layer
from flowlab.flows.realnvp import build_realnvp

__all__ = ["build_maf", "build_iaf", "build_realnvp", "made_layer"]
