"""Session 9's exploration for issue 13: flowlab's NSF-AR on two moons, recipe variants scored on a DEVELOPMENT set.

Why a development set: the variants were chosen before the benchmark's test set was scored, and the 1,000
validation points (which pick each run's epoch) are too few and too easy to rank recipes (session 8: seed 1's
model was worse on test but better on validation).  The development set is drawn as the test set is, from
another random state: ``make_moons(5000, noise=0.05, random_state=2)`` (the true density scores 0.2875 on it,
0.3004 on the test set).  Everything else is ``beyond_affine.py moons --ema 0.99`` (run C's recipe: zero
output layers, Glorot hidden layers), changed only by the variants, patched in from outside the library:

- ``torchinit``: every MADE layer's kernel and bias uniform on +-1/sqrt(fan-in) (PyTorch's ``nn.Linear``
  default, zuko's), drawn with NumPy, the masks kept; with ``torchinit_zeroout`` too, the output layer then zeroed
  (the library's ``build_nsf(..., zero_init=True, init="uniform")`` is this, drawn by Keras);
- ``biasonly``: Glorot kernels, only the hidden biases uniform on +-1/sqrt(fan-in), zero output layer;
- ``zukospline``: zuko's spline parameters (logits soft-clipped by ``x / (1 + |x / log(1e-3)|)``, slopes ``exp``)
  instead of flowlab's (softmax with a minimum bin, softplus slopes);
- ``eps8``: Adam's epsilon 1e-8 (PyTorch's) instead of Keras's 1e-7;
- ``mlpuniform`` (with ``--kind coupling``: the coupling NSF, whose conditioners are MLPs): the MLPs' hidden
  kernels and biases uniform on +-1/sqrt(fan-in), drawn with NumPy (the library's ``init="uniform"`` since).

``--test`` scores the real test set instead (not used to choose anything).  Results: ``bench/beyond_affine.md``,
session 9.  Run from the repository root::

    .venv/bin/python bench/beyond_affine_variants.py --variant torchinit torchinit_zeroout --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import beyond_affine  # noqa: E402  (this folder's benchmark, whose flowlab side is patched below)

VARIANTS = ("torchinit", "torchinit_zeroout", "biasonly", "zukospline", "eps8", "mlpuniform")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", nargs="*", default=[], choices=VARIANTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--kind", default="autoregressive", choices=["autoregressive", "coupling"])
    parser.add_argument("--test", action="store_true", help="score the test set instead of the development set")
    parser.add_argument("--out", help="JSON file of the runs")
    options = parser.parse_args()

    import flowlab  # first: it quiets TensorFlow's C++ logging and selects Keras 2

    # isort: split
    import tensorflow as tf

    import flowlab.flows
    import flowlab.transformers

    moons_data = beyond_affine.moons_data

    def development_data(validation: int = 1000):
        from sklearn.datasets import make_moons

        train, val, test = moons_data(validation)
        if not options.test:
            test = make_moons(5000, noise=0.05, random_state=2)[0].astype(np.float32)
        return train, val, test

    beyond_affine.moons_data = development_data
    variant = set(options.variant)

    if "zukospline" in variant:  # zuko's MonotonicRQSTransform's parametrisation (bound 5, minimum slope 1e-3)
        log_slope = math.log(1e-3)

        def zuko_spline_parameters(params, bins, bound):
            w, h, d = params[..., :bins], params[..., bins:2 * bins], params[..., 2 * bins:]
            w, h = w / (1 + tf.abs(2 * w / log_slope)), h / (1 + tf.abs(2 * h / log_slope))
            d = d / (1 + tf.abs(d / log_slope))
            return tf.math.softmax(w, -1) * 2 * bound, tf.math.softmax(h, -1) * 2 * bound, tf.exp(d)

        flowlab.transformers.spline_parameters = zuko_spline_parameters

    seeded = [0]
    library_seed, library_build = flowlab.seed, flowlab.flows.build_nsf

    def seed(value: int) -> None:
        seeded[0] = value
        library_seed(value)

    def build_nsf(*args, **kwargs):
        if variant & {"torchinit", "biasonly"}:
            kwargs["zero_init"] = False  # the Glorot draws give the masks (nonzero entries); zeroed below
        flow = library_build(*args, **kwargs)
        if "mlpuniform" in variant:
            from flowlab.conditioners import MLPConditioner

            rng = np.random.default_rng(2000 + seeded[0])
            for bijector in flow.bijector.bijectors:
                conditioner = getattr(bijector, "_conditioner", None)
                for layer in conditioner.hidden if isinstance(conditioner, MLPConditioner) else ():
                    limit = 1 / math.sqrt(layer.kernel.shape[0])
                    layer.kernel.assign(rng.uniform(-limit, limit, layer.kernel.shape).astype(np.float32))
                    layer.bias.assign(rng.uniform(-limit, limit, layer.bias.shape).astype(np.float32))
        rng = np.random.default_rng(1000 + seeded[0])
        for bijector in flow.bijector.bijectors:
            network = getattr(getattr(bijector, "_bijector_fn", None), "network", None)
            if network is None:
                continue
            variables = network.trainable_variables  # kernel, bias per layer; the last pair is the output layer
            pairs = list(zip(variables[0::2], variables[1::2]))
            for i, (kernel, bias) in enumerate(pairs):
                limit = 1 / math.sqrt(kernel.shape[0])
                if "torchinit" in variant:
                    mask = (kernel.numpy() != 0).astype(np.float32)
                    kernel.assign(rng.uniform(-limit, limit, kernel.shape).astype(np.float32) * mask)
                if "torchinit" in variant or ("biasonly" in variant and i < len(pairs) - 1):
                    bias.assign(rng.uniform(-limit, limit, bias.shape).astype(np.float32))
            if "biasonly" in variant or "torchinit_zeroout" in variant:
                for v in pairs[-1]:
                    v.assign(tf.zeros_like(v))
        return flow

    flowlab.seed, flowlab.flows.build_nsf = seed, build_nsf
    if "eps8" in variant:
        adam = tf.keras.optimizers.Adam
        tf.keras.optimizers.Adam = lambda rate, **kwargs: adam(rate, epsilon=1e-8, **kwargs)

    args = argparse.Namespace(kind=options.kind, init="zero", made_init="glorot", layers=4, hidden=64, bins=8,
                              bound=5.0, batch_size=256, learning_rate=5e-3, epochs=70, cpu_budget=60.0, threads=1,
                              ema=0.99, validation=1000, steps_per_execution=1)
    beyond_affine.configure_threads(1)
    name, scored = "+".join(options.variant) or "run C", "test" if options.test else "development"
    runs = []
    for value in options.seeds:
        run = beyond_affine.flowlab_moons(value, args)
        print(f"{name} seed {value}: {scored} {run['test_nll']:.4f} (validation {run['validation_nll']}, "
              f"epoch {run['best_epoch'] + 1}/{run['epochs']}, {run['train_cpu_seconds']:.0f} CPU s)", flush=True)
        runs.append(run)
    nll = [run["test_nll"] for run in runs]
    print(f"{name}: {scored} NLL median {np.median(nll):.4f}, max {max(nll):.4f}", flush=True)
    if options.out:
        Path(options.out).write_text(json.dumps({"variant": options.variant, "scored_on": scored, "runs": runs},
                                                indent=1) + "\n")


if __name__ == "__main__":
    main()
