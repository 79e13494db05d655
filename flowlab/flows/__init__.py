"""Flow builders: each returns a ``tfd.TransformedDistribution``, ready for ``model.fit``."""

from flowlab.flows.glow import build_glow
from flowlab.flows.maf import build_iaf, build_maf, made_layer
from flowlab.flows.nsf import build_nsf
from flowlab.flows.partitions import build_bad_partition_flow, build_good_partition_flow
from flowlab.flows.multiscale import bits_by_scale, build_multiscale_realnvp, latents_by_scale, sample_images
from flowlab.flows.realnvp import build_realnvp

__all__ = [
    "build_maf",
    "build_iaf",
    "build_realnvp",
    "build_nsf",
    "build_multiscale_realnvp",
    "build_glow",
    "build_good_partition_flow",
    "build_bad_partition_flow",
    "made_layer",
    "sample_images",
    "bits_by_scale",
    "latents_by_scale",
]
