"""Benchmark: the MNIST lab's multi-scale RealNVP, trained offline on 2 CPU cores.

Trains the solution notebook's model (same architecture and optimiser as
``solutions/04_mnist_realnvp.ipynb``) on the 9,000/1,000 split of the official MNIST test set and
records, after every epoch, the held-out bits/dim against the wall-clock training time.  Then it
times sampling 64 images (median of several runs, against the density evaluation of 64 images as
the baseline of the same run) and reports the process's peak memory (max RSS).

    .venv/bin/python bench/mnist_realnvp.py --minutes 30            # the benchmark (bench/mnist.md)
    .venv/bin/python bench/mnist_realnvp.py --minutes 1 --n-train 1000 --n-test 200   # smoke test

Results go to ``--out`` (JSON) and to stdout as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flowlab  # noqa: E402  (Keras 2 before tf.keras is touched)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from flowlab.bijectors.actnorm import initialize_actnorm  # noqa: E402
from flowlab.bijectors.dequantize import dequantized_dataset, uniform_dequantize  # noqa: E402
from flowlab.bits_per_dim import BitsPerDim, bits_per_dim  # noqa: E402
from flowlab.datasets.mnist import load_mnist_split  # noqa: E402
from flowlab.flows.multiscale import build_multiscale_realnvp, sample_images  # noqa: E402
from flowlab.training import LinearWarmup, density_model, negative_log_likelihood  # noqa: E402

# The solution notebook's model and optimiser (its warm-up is two epochs, 282 steps on 9,000 images).
MODEL = dict(scales=2, couplings=3, final_couplings=4, filters=32, blocks=1, alpha=0.05)
LEARNING_RATE, WARMUP_STEPS, CLIPNORM, BATCH = 1e-3, 300, 1e4, 64


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm up (first call builds and traces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class TimedEvaluation(tf.keras.callbacks.Callback):
    """After each epoch: held-out bits/dim, training seconds so far (evaluation excluded); stop at the budget."""

    def __init__(self, y_test: np.ndarray, budget_s: float, dims: int) -> None:
        super().__init__()
        self.y_test, self.budget_s, self.dims = y_test, budget_s, dims
        self.rows: list[dict] = []
        self.train_s = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_s += time.perf_counter() - self._start
        log_prob = self.model.predict(self.y_test, batch_size=250, verbose=0)
        test_bpd = float(np.mean(bits_per_dim(log_prob, self.dims)))
        row = {"epoch": epoch + 1, "train_minutes": round(self.train_s / 60, 2),
               "train_bpd": round(float(logs["bits_per_dim"]), 4), "test_bpd": round(test_bpd, 4),
               "peak_rss_gb": round(peak_rss_gb(), 2)}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        if self.train_s >= self.budget_s:
            self.model.stop_training = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget (wall clock, evaluation excluded)")
    parser.add_argument("--n-train", type=int, default=9000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "mnist_realnvp.json"))
    args = parser.parse_args()

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    flowlab.seed(0)
    train_images, test_images = load_mnist_split(args.n_train, args.n_test, seed=0)
    dims = int(np.prod(train_images.shape[1:]))
    y_test = uniform_dequantize(test_images, seed=[1, 2]).numpy()
    train_ds = dequantized_dataset(train_images, batch_size=BATCH, seed=0)

    flow = build_multiscale_realnvp(train_images.shape[1:], **MODEL)
    initialize_actnorm(flow, next(iter(train_ds)))
    model = density_model(flow)
    optimizer = tf.keras.optimizers.Adam(LinearWarmup(LEARNING_RATE, WARMUP_STEPS), global_clipnorm=CLIPNORM)
    model.compile(optimizer=optimizer, loss=negative_log_likelihood,
                  metrics=[BitsPerDim(dims)])
    timer = TimedEvaluation(y_test, args.minutes * 60, dims)
    wall_start = time.perf_counter()
    model.fit(train_ds.map(lambda y: (y, tf.zeros(tf.shape(y)[:1]))), epochs=10_000, callbacks=[timer], verbose=0)
    wall_s = time.perf_counter() - wall_start

    batch = tf.constant(y_test[:64])
    density = tf.function(lambda y: flow.log_prob(y))
    sample_s = median_seconds(lambda: sample_images(flow, 64, temperature=1.0, seed=3), args.repeats)
    density_s = median_seconds(lambda: density(batch).numpy(), args.repeats)
    eager_density_s = median_seconds(lambda: flow.log_prob(tf.identity(batch)).numpy(), args.repeats)

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
                   f"{args.threads} TF threads",
        "tensorflow": tf.__version__,
        "model": MODEL, "learning_rate": LEARNING_RATE, "warmup_steps": WARMUP_STEPS,
        "global_clipnorm": CLIPNORM, "batch_size": BATCH,
        "n_train": args.n_train, "n_test": args.n_test,
        "epochs": timer.rows,
        "final_test_bpd": timer.rows[-1]["test_bpd"],
        "best_test_bpd": min(r["test_bpd"] for r in timer.rows),
        "train_minutes": round(timer.train_s / 60, 2),
        "wall_minutes_incl_eval": round(wall_s / 60, 2),
        "sample_64_s": round(sample_s, 3),
        "log_prob_64_eager_s": round(eager_density_s, 3),
        "log_prob_64_graph_s": round(density_s, 3),
        "sample_vs_eager_density": round(sample_s / eager_density_s, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print("\n| epoch | training time (min) | train bits/dim | test bits/dim | peak RSS (GB) |")
    print("|---:|---:|---:|---:|---:|")
    for r in timer.rows:
        print(f"| {r['epoch']} | {r['train_minutes']:.1f} | {r['train_bpd']:.3f} | "
              f"{r['test_bpd']:.3f} | {r['peak_rss_gb']:.2f} |")
    print(f"\nsampling 64 images: {sample_s:.3f} s (median of {args.repeats}); log_prob of 64 images: "
          f"{eager_density_s:.3f} s eager, {density_s:.3f} s in tf.function; peak RSS {result['peak_rss_gb']:.2f} GB")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
