"""Lab 05 benchmark: a VAE on binarised MNIST with a plain Gaussian, planar, IAF or Sylvester posterior.

van den Berg et al. (2018, Table 1) find, at equal numbers of flows, Sylvester and IAF posteriors
better than planar ones and all of them better than a plain diagonal-Gaussian VAE.  This runs a
small version of that comparison in a CPU budget of about 25 CPU-minutes for the four models:

* data: ``flowlab.datasets.mnist.load_mnist_splits`` (the official 10,000 test images split
  8000 / 1000 / 1000 into train / validation / test), binarised once by drawing each pixel from
  Bernoulli(intensity) with a fixed seed (static binarisation);
* model: :class:`flowlab.variational.FlowVAE` with a Bernoulli likelihood -- encoder and decoder
  MLPs 784-256-256 (tanh), latent dimension 16, amortised planar / triangular-Sylvester flows (the
  encoder emits every flow's parameters per image), IAF with global MADE weights (not conditioned on
  the image: a simplification of Kingma et al.);
* training: Adam 1e-3, batch 100, a fixed number of epochs (nothing is selected on any split);
* metrics on validation and test: the negative ELBO (one sample per image, averaged over 10 passes)
  and the importance-sampled NLL -log (1/S) Σ_s p(x, z_s)/q(z_s | x) with S samples, in nats.

    nice -n 10 .venv/bin/python bench/vae_mnist.py --flows none planar iaf triangular --n-flows 4 \\
        --epochs 20 --seeds 0

One JSON line per model goes to ``bench/results/vae_mnist.jsonl`` (times in process CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import flowlab  # selects Keras 2 (TensorFlow loads tf.keras lazily, after this)
from flowlab import variational as V
from flowlab.datasets.mnist import load_mnist_splits

tfd = tfp.distributions
RESULTS = Path(__file__).resolve().parent / "results"


class BernoulliFlowVAE(V.FlowVAE):
    """:class:`~flowlab.variational.FlowVAE` with a Bernoulli likelihood over binary pixels."""

    def __init__(self, data_dim: int, **kwargs) -> None:
        super().__init__(data_dim, **kwargs)
        hidden = kwargs.get("hidden", 32)
        self.decoder = tf.keras.Sequential([tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(data_dim)], name="decoder")

    def decode(self, z: tf.Tensor) -> tfd.Distribution:
        return tfd.Independent(tfd.Bernoulli(logits=self.decoder(z), dtype=tf.float32), 1)


def binarised_mnist(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test images as float32 0/1 vectors of 784 pixels, drawn once from the intensities."""
    rng = np.random.default_rng(seed)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"  # as conftest.py finds it
    parts = load_mnist_splits(directory=None if os.environ.get("FLOWLAB_MNIST_DIR") or not shared.is_dir() else shared)
    return tuple((rng.random(p.shape) < p / 255.0).reshape(len(p), -1).astype(np.float32) for p in parts)


def evaluate(model: BernoulliFlowVAE, x: np.ndarray, n_importance: int, elbo_passes: int = 10,
             chunk: int = 50) -> tuple[float, float]:
    """(negative ELBO, importance-sampled NLL) in nats per image, averaged over ``x``.

    The model's output is the free energy F = log q_K(z_K | x) - log p(z_K) - log p(x | z_K) of one
    draw per row, so ``x`` repeated S times gives S independent importance weights exp(-F) per image.
    """
    free_energy = tf.function(model._free_energy)
    elbos, nlls = [], []
    for start in range(0, len(x), chunk):
        batch = x[start:start + chunk]
        tiled = np.repeat(batch, n_importance, axis=0)
        f = free_energy(tf.constant(tiled)).numpy().astype(np.float64).reshape(len(batch), n_importance)
        log_w = -f
        top = log_w.max(axis=1, keepdims=True)
        nlls.append(-(top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))))
        elbos.append(f[:, :elbo_passes].mean(axis=1))
    return float(np.mean(np.concatenate(elbos))), float(np.mean(np.concatenate(nlls)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", nargs="+", default=["none", "planar", "iaf", "triangular"])
    parser.add_argument("--n-flows", type=int, default=4)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--importance", type=int, default=100, help="importance samples S per image")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    train, validation, test = binarised_mnist()
    for seed in args.seeds:
        for kind in args.flows:
            flowlab.seed(seed)
            flow, k = (None, 0) if kind == "none" else (kind, args.n_flows)
            model = BernoulliFlowVAE(train.shape[1], latent_dim=args.latent, flow=flow, n_flows=k,
                                     hidden=args.hidden)
            cpu = time.process_time()
            history = V.fit_vae(model, train, epochs=args.epochs, batch_size=100, verbose=0)
            train_cpu = time.process_time() - cpu
            cpu = time.process_time()
            val_elbo, val_nll = evaluate(model, validation, args.importance)
            test_elbo, test_nll = evaluate(model, test, args.importance)
            row = dict(flow=kind, K=k, seed=seed, latent=args.latent, hidden=args.hidden, epochs=args.epochs,
                       importance_samples=args.importance, train_loss=float(history.history["loss"][-1]),
                       val_neg_elbo=val_elbo, val_nll=val_nll, test_neg_elbo=test_elbo, test_nll=test_nll,
                       train_cpu_seconds=train_cpu, eval_cpu_seconds=time.process_time() - cpu)
            print(json.dumps(row), flush=True)
            with (RESULTS / "vae_mnist.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
