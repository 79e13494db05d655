"""Benchmark the face (lab 03): test NLL of the autoregressive mixture-CDF flow, MAF and RealNVP.

The data is the lab's: ``load_face(2000, 1000)`` (2,000 training and 1,000 test points of the
lectures' face). Each flow is trained by maximum likelihood with Keras ``model.fit``
(``flowlab.training.fit``) for a fixed number of epochs with a cosine-decayed learning rate; the
test set is only used for the final score, never for model selection. Scores are negative
log-likelihoods in nats per dimension (the NLL of a point divided by 2). Run from the repository
root:

    .venv/bin/python bench/face.py --seeds 0 1 2      # writes bench/results/face.json, bench/face.png

The anchor is the Berkeley CS294-158 reference: 1.36 nats/dim (autoregressive mixture CDF) and
1.39 (RealNVP) on their face data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import flowlab  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from flowlab import plots  # noqa: E402
from flowlab.bijectors.autoregressive_cdf import build_autoregressive_mixture_cdf  # noqa: E402
from flowlab.datasets import load_face  # noqa: E402
from flowlab.flows import build_maf, build_realnvp  # noqa: E402
from flowlab.training import fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VIEW = dict(xlim=(-3.5, 3.5), ylim=(-2.0, 3.5))

# name: (builder, peak learning rate)
FLOWS = {
    "AR mixture CDF (K=5)": (
        lambda: build_autoregressive_mixture_cdf(2, num_components=5, hidden_units=(64, 64)), 5e-3),
    "MAF (3 layers)": (lambda: build_maf(2, n_layers=3, hidden_units=(128, 128)), 1e-3),
    "RealNVP (6 layers)": (lambda: build_realnvp(2, n_layers=6, hidden_units=(128, 128)), 1e-3),
}


def true_log_prob(x: np.ndarray, quadrature: int = 4000) -> np.ndarray:
    """The face's true log-density: its three parts, the mouth's arc integrated by the midpoint rule."""
    from flowlab.datasets.face import EYES, NOISE

    x = np.asarray(x, np.float64)
    t = (np.arange(quadrature) + 0.5) * np.pi / quadrature
    centres = np.concatenate([np.asarray(EYES, np.float64), np.stack([2 * np.cos(t), -np.sin(t)], axis=1)])
    weights = np.concatenate([[1 / 3, 1 / 3], np.full(quadrature, 1 / (3 * quadrature))])
    squared = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    log_terms = np.log(weights) - squared / (2 * NOISE**2) - np.log(2 * np.pi * NOISE**2)
    top = log_terms.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(log_terms - top).sum(axis=1, keepdims=True)))[:, 0]


def cosine(peak: float, epochs: int) -> tf.keras.callbacks.Callback:
    return tf.keras.callbacks.LearningRateScheduler(lambda epoch: peak * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))


def run(seed: int, epochs: int, batch_size: int) -> tuple[dict, dict]:
    train, test = load_face(2000, 1000, seed=0)  # the lab's data; the seed varies initialisation and batches
    results, flows = {}, {}
    for name, (build, peak) in FLOWS.items():
        flowlab.seed(seed)
        flow = build()
        start = time.perf_counter()
        fit(flow, train, epochs=epochs, batch_size=batch_size, learning_rate=peak,
            callbacks=[cosine(peak, epochs)], verbose=0)
        seconds = time.perf_counter() - start
        results[name] = {
            "test_nats_per_dim": -float(np.mean(flow.log_prob(test))) / 2,
            "train_nats_per_dim": -float(np.mean(flow.log_prob(train))) / 2,
            "train_seconds": round(seconds, 1),
        }
        flows[name] = flow
        print(f"seed {seed} {name:22s} test {results[name]['test_nats_per_dim']:.4f} nats/dim "
              f"(train {results[name]['train_nats_per_dim']:.4f}) in {seconds:.0f} s", flush=True)
    return results, flows


def figure(flows: dict, test: np.ndarray, path: Path) -> None:
    fig, axes = plt.subplots(2, len(flows) + 1, figsize=(5 * (len(flows) + 1), 9.5))
    plots.plot_samples(test, ax=axes[0, 0], title="Face: 1,000 test points", **VIEW)
    xs, ys = np.linspace(*VIEW["xlim"], 200), np.linspace(*VIEW["ylim"], 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    axes[1, 0].imshow(np.exp(true_log_prob(grid, 500)).reshape(200, 200), origin="lower", aspect="auto",
                      extent=(*VIEW["xlim"], *VIEW["ylim"]), cmap="viridis")
    axes[1, 0].set(title=f"True density ({-np.mean(true_log_prob(test)) / 2:.3f} nats/dim)",
                  xlabel="$x_1$", ylabel="$x_2$")
    for column, (name, flow) in enumerate(flows.items(), start=1):
        nll = -float(np.mean(flow.log_prob(test))) / 2
        plots.plot_density(flow, ax=axes[0, column], title=f"{name}: density ({nll:.3f} nats/dim)", **VIEW)
        plots.plot_samples(flow.sample(3000, seed=1), ax=axes[1, column], title=f"{name}: 3,000 samples", **VIEW)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "face.json"))
    parser.add_argument("--figure", default=str(ROOT / "bench" / "face.png"))
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        results, flows = run(seed, args.epochs, args.batch_size)
        runs.append(results)
        if seed == args.seeds[0]:
            figure(flows, load_face(2000, 1000, seed=0)[1], Path(args.figure))
    test = load_face(2000, 1000, seed=0)[1]
    summary = {
        "data": "load_face(2000, 1000, seed=0)",
        "true_density_test_nats_per_dim": round(-float(np.mean(true_log_prob(test))) / 2, 4),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "median_test_nats_per_dim": {
            name: round(statistics.median(r[name]["test_nats_per_dim"] for r in runs), 4) for name in FLOWS
        },
        "runs": runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print("true density:", summary["true_density_test_nats_per_dim"], "nats/dim")
    print(json.dumps(summary["median_test_nats_per_dim"], indent=2))


if __name__ == "__main__":
    main()
