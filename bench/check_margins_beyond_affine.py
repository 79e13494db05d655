"""How far apart lab 06's trained-flow checks put right and wrong answers, in fast mode.

Trains the three flows the notebook builds from the student's answers -- NICE (additive couplings
from ``additive_forward/inverse/log_det`` and a final scaling), the spline coupling flow (from
``spline_parameter_count`` / ``spline_parameters``) and the RealNVP coupling flow (from
``affine_transformer``) -- exactly as the notebook's fast mode trains them (``FLOWLAB_FAST=1``: the
notebook's points, layers, widths, epochs, and its ``train``: Adam 2e-3 with ``global_clipnorm=10``, its
variables made before the first step, batch 256), with the solution's answers, over several seeds
(initialisation and batch order; the data are fixed), and
measures each as ``check.trained_flow`` does (``check.measure``: mass on the grid, test NLL).  It
also scores two wrong answers a student plausibly writes, trained the same way:

- ``spline_unit``: bin widths and heights that sum to 1 instead of 2B (a softmax not scaled);
- ``nice_logdet``: an additive log-det that sums the shift instead of returning 0.

    FLOWLAB_FAST=1 .venv/bin/python bench/check_margins_beyond_affine.py --seeds 0 1 2 \
        --out bench/results/check_margins_beyond_affine.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import flowlab  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.coupling import FunctionCoupling
from flowlab.checks import beyond_affine as check
from flowlab.conditioners import MLPConditioner
from flowlab.datasets import load_two_moons
from flowlab.flows import build_coupling_flow, stack
from flowlab.flows.realnvp import half_mask
from flowlab.training import density_model, fit
from flowlab.transformers import FunctionTransformer, bound_log_scale

tfb = tfp.bijectors
ROOT = Path(__file__).resolve().parent.parent

# The notebook's fast-mode sizes (solutions/06_beyond_affine.ipynb, cell "data").
N_TRAIN, N_TEST, EPOCHS, HIDDEN, LAYERS, BINS, BOUND = 1024, 1000, 40, (32, 32), 4, 8, 4.0


def additive_forward(x, mask, shift_fn):
    return mask * x + (1.0 - mask) * (x + shift_fn(mask * x))


def additive_inverse(z, mask, shift_fn):
    return mask * z + (1.0 - mask) * (z - shift_fn(mask * z))


def additive_log_det(x, mask, shift_fn):
    return tf.zeros(tf.shape(x)[:-1])


def shift_sum_log_det(x, mask, shift_fn):  # wrong: the shift is not a stretch
    return tf.reduce_sum((1.0 - mask) * shift_fn(mask * x), axis=-1)


def spline_parameters(raw, bins, bound, total=None):
    minimum = 1e-3
    total = 2 * bound if total is None else total
    widths = minimum + (total - bins * minimum) * tf.math.softmax(raw[..., :bins], axis=-1)
    heights = minimum + (total - bins * minimum) * tf.math.softmax(raw[..., bins:2 * bins], axis=-1)
    slopes = minimum + tf.math.softplus(raw[..., 2 * bins:])
    return widths, heights, slopes


def affine_transformer(params):
    return tfb.Chain([tfb.Shift(params[..., 0]), tfb.Scale(log_scale=bound_log_scale(params[..., 1], 3.0))])


def build(variant: str):
    if variant.startswith("nice"):
        log_det = shift_sum_log_det if variant == "nice_logdet" else additive_log_det

        def nice_layer(i):
            net = MLPConditioner(2, HIDDEN, params_per_dim=1)
            return FunctionCoupling(half_mask(2), net,
                                    data_to_latent=lambda x, m, t: (additive_forward(x, m, t), log_det(x, m, t)),
                                    latent_to_data=additive_inverse, log_scale_bound=None, name=f"nice{i}")

        return "NICE", stack(nice_layer, LAYERS, 2, "NICE",
                             last=tfb.Scale(log_scale=tf.Variable(tf.zeros(2)), name="scaling"))
    if variant.startswith("spline"):
        total = 1.0 if variant == "spline_unit" else None

        def spline(params):
            widths, heights, slopes = spline_parameters(params, BINS, BOUND, total)
            return tfb.RationalQuadraticSpline(widths, heights, slopes, range_min=-BOUND)

        return "spline", build_coupling_flow(2, FunctionTransformer(spline, 3 * BINS - 1), LAYERS, HIDDEN, name="NSF")
    return "coupling", build_coupling_flow(2, FunctionTransformer(affine_transformer, 2), LAYERS, HIDDEN,
                                           name="RealNVP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["nice", "spline", "realnvp", "spline_unit", "nice_logdet"])
    parser.add_argument("--out", default=str(ROOT / "bench/results/check_margins_beyond_affine.json"))
    args = parser.parse_args()
    x, x_test = load_two_moons(N_TRAIN, N_TEST, seed=0)
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            flowlab.seed(seed)
            kind, flow = build(variant)
            start = time.process_time()
            # as the notebook's train(): Adam's variables made before the first step, so it compiles once
            model = density_model(flow)
            model.compile(optimizer=tf.keras.optimizers.Adam(2e-3, global_clipnorm=10.0))
            model.optimizer.build(model.trainable_variables)
            fit(model, x, epochs=EPOCHS, batch_size=256, verbose=0)
            cpu = time.process_time() - start
            mass, nll = check.measure(flow, x_test)
            passed = bool(np.isfinite(nll) and abs(mass - 1) < check._MASS_TOLERANCE and nll < check.NLL_LIMITS[kind])
            rows.append(dict(variant=variant, kind=kind, seed=seed, mass=mass, nll=nll, cpu_s=cpu, passes=passed))
            print(f"{variant:12s} seed {seed}: mass {mass:.3f}  test NLL {nll:.3f}  limit {check.NLL_LIMITS[kind]}"
                  f"  {'pass' if passed else 'FAIL'}  ({cpu:.0f} CPU-s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(config=dict(n_train=N_TRAIN, n_test=N_TEST, epochs=EPOCHS,
                                                          hidden=HIDDEN, layers=LAYERS, bins=BINS, bound=BOUND),
                                              tensorflow=tf.__version__, tfp=tfp.__version__, rows=rows), indent=1))


if __name__ == "__main__":
    main()
