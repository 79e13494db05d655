"""Flow builders: each returns a ``tfd.TransformedDistribution``, ready for ``model.fit``."""

from flowlab.flows.autoregressive_cdf import build_autoregressive_mixture_cdf, uniform_base
from flowlab.flows.base import stack
from flowlab.flows.conditional import (
                                      ConditionalFlow,
                                      build_conditional_maf,
                                      build_conditional_nsf,
                                      build_conditional_realnvp,
)
from flowlab.flows.ffjord import build_ffjord
from flowlab.flows.glow import build_glow
from flowlab.flows.maf import autoregressive_layer, build_autoregressive, build_iaf, build_maf, made_layer
from flowlab.flows.multiscale import bits_by_scale, build_multiscale_realnvp, latents_by_scale, sample_images
from flowlab.flows.nice import build_nice
from flowlab.flows.nsf import build_nsf
from flowlab.flows.partitions import build_bad_partition_flow, build_good_partition_flow
from flowlab.flows.realnvp import build_coupling_flow, build_realnvp

__all__ = [
    "ConditionalFlow",
    "build_conditional_maf",
    "build_conditional_nsf",
    "build_conditional_realnvp",
    "build_maf",
    "build_iaf",
    "build_realnvp",
    "build_nice",
    "build_nsf",
    "build_coupling_flow",
    "build_autoregressive",
    "build_ffjord",
    "build_autoregressive_mixture_cdf",
    "uniform_base",
    "build_multiscale_realnvp",
    "build_glow",
    "build_good_partition_flow",
    "build_bad_partition_flow",
    "autoregressive_layer",
    "made_layer",
    "stack",
    "sample_images",
    "bits_by_scale",
    "latents_by_scale",
]
