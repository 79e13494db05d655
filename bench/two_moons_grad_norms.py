"""The gradient norms lab 02's MAF sees in training: the measurement behind its gradient clipping.

Trains the notebook's flow (``flowlab.flows.build_maf(2)``: 3 x MAF[128, 128] + Permute) on
``make_moons(10000, noise=0.05, random_state=0)`` with the notebook's optimiser -- Adam 1e-3 with
``global_clipnorm`` (1.0 by default; 0 trains unclipped), batch 128, the rate divided by 10 for the
last quarter of 80 epochs -- and logs the global norm of every raw gradient, before Adam clips it.
Prints the median, 90th percentile and maximum per stretch of training:

    .venv/bin/python bench/two_moons_grad_norms.py --seed 0
    .venv/bin/python bench/two_moons_grad_norms.py --seed 0 --clipnorm 0 --batch 256   # the old recipe
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flowlab  # noqa: E402  (Keras 2 before tf.keras is touched)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

from flowlab.flows import build_maf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--clipnorm", type=float, default=1.0, help="Adam's global_clipnorm; 0 turns it off")
    parser.add_argument("--epochs", type=int, default=80)
    args = parser.parse_args()

    flowlab.seed(args.seed)
    x = make_moons(10000, noise=0.05, random_state=0)[0].astype(np.float32)
    flow = build_maf(2)
    learning_rate = tf.Variable(1e-3, trainable=False)
    optimizer = tf.keras.optimizers.Adam(learning_rate, global_clipnorm=args.clipnorm or None)  # 0: no clipping
    variables = flow.trainable_variables

    @tf.function
    def step(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(batch))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, tf.linalg.global_norm(gradients)

    rng = np.random.default_rng(args.seed)
    norms, losses, epochs = [], [], []
    for epoch in range(args.epochs):
        learning_rate.assign(1e-4 if epoch >= 0.75 * args.epochs else 1e-3)
        order = rng.permutation(len(x))
        for start in range(0, len(x), args.batch):
            loss, norm = step(x[order[start:start + args.batch]])
            losses.append(float(loss))
            norms.append(float(norm))
            epochs.append(epoch)
    norms, losses, epochs = np.array(norms), np.array(losses), np.array(epochs)
    print(f"seed {args.seed}, batch {args.batch}, global_clipnorm {args.clipnorm or 'off'}: "
          f"{len(norms)} steps, gradient norm before clipping")
    print(f"{'epochs':>8s} {'median':>8s} {'p90':>8s} {'max':>9s} {'mean loss':>10s}")
    for first, last in [(0, 5), (5, 20), (20, 40), (40, 60), (60, args.epochs)]:
        part = (epochs >= first) & (epochs < last)
        if part.any():
            seg = norms[part]
            print(f"{first:>3d}-{last:<4d} {np.median(seg):8.2f} {np.percentile(seg, 90):8.2f} {seg.max():9.1f} "
                  f"{losses[part].mean():10.3f}")
    print(f"steps with norm > 10x the median: {int(np.sum(norms > 10 * np.median(norms)))}; "
          f"largest: {norms.max():.1f} at epoch {int(epochs[norms.argmax()]) + 1}")


if __name__ == "__main__":
    main()
