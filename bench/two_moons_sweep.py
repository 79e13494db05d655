"""Sweep lab 02's training recipe over many initialisations, outside the notebook.

The two-moons MAF's test NLL depends mostly on its random initialisation (some end with a fat
bridge between the moons), so a change to the recipe is judged on the distribution over a dozen
seeds, not on one run.  Each seed trains ``flowlab.flows.build_maf(2, n_layers)`` with
``model.fit`` on ``make_moons(10000, noise=0.05, random_state=0)`` (the notebook's data) for 80
epochs and scores it on a fresh ``make_moons(5000, noise=0.05, random_state=1)``.  Seeds run in
parallel processes, one TensorFlow thread each.  The defaults are the notebook's recipe: Adam 1e-3
with ``global_clipnorm=1.0``, batch 128, the learning rate divided by 10 for the last quarter.

    .venv/bin/python bench/two_moons_sweep.py --seeds 12                       # the notebook's recipe
    .venv/bin/python bench/two_moons_sweep.py --batch 256 --clipnorm 0         # the recipe before clipping
    .venv/bin/python bench/two_moons_sweep.py --seeds 8 --layers 5             # a deeper flow
    .venv/bin/python bench/two_moons_sweep.py --layers 5 --bound 3             # deeper, bounded log-scale
    .venv/bin/python bench/two_moons_sweep.py --flow nsf                       # spline layers instead of affine

Prints one JSON line per seed and a summary (median, how many at most 0.5 nats); ``--out`` appends
the lines to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train_one(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import flowlab  # noqa: F401  (Keras 2 before tf.keras is touched)
    # isort: split
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import make_moons

    from flowlab.flows import build_maf
    from flowlab.training import density_model, negative_log_likelihood

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    flowlab.seed(args.seed)
    x = make_moons(10000, noise=0.05, random_state=0)[0].astype(np.float32)
    x_test = make_moons(5000, noise=0.05, random_state=1)[0].astype(np.float32)
    if args.flow == "nsf":
        from flowlab.flows.nsf import build_nsf

        flow = build_nsf(2, n_layers=args.layers)
    else:
        flow = build_maf(2, n_layers=args.layers, log_scale_bound=args.bound or None)
    steps = args.epochs * int(np.ceil(len(x) / args.batch))

    class Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            if args.schedule == "step":  # the notebook's: divided by 10 for the last quarter
                return tf.where(step >= 0.75 * steps, args.lr / 10, args.lr)
            if args.schedule == "cosine":
                return args.lr * 0.5 * (1 + tf.cos(np.pi * tf.minimum(step / steps, 1.0)))
            return args.lr * tf.pow(0.01, step / steps)  # "exp": down to lr / 100

    model = density_model(flow)
    optimizer = tf.keras.optimizers.Adam(Schedule(), global_clipnorm=args.clipnorm or None)  # 0: no clipping
    model.compile(optimizer=optimizer, loss=negative_log_likelihood)
    model.fit(x, np.zeros(len(x), np.float32), batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0)
    nll = -float(tf.reduce_mean(flow.log_prob(x_test)))
    return {"seed": args.seed, "batch": args.batch, "lr": args.lr, "clipnorm": args.clipnorm,
            "schedule": args.schedule, "flow": args.flow, "layers": args.layers, "bound": args.bound,
            "epochs": args.epochs, "test_nll": round(nll, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12, help="seeds FIRST .. FIRST+N-1")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clipnorm", type=float, default=1.0, help="Adam's global_clipnorm; 0 turns clipping off")
    parser.add_argument("--schedule", choices=["step", "cosine", "exp"], default="step")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--flow", choices=["maf", "nsf"], default="maf",
                        help="maf: the lab sheet's affine MAF layers; nsf: spline layers (flowlab.flows.nsf)")
    parser.add_argument("--bound", type=float, default=0.0,
                        help="soft bound b on each MADE log-scale, b*tanh(alpha/b); 0: unbounded (the lab sheet)")
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once")
    parser.add_argument("--out", help="append the per-seed JSON lines to this file")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # internal: train this one seed
    args = parser.parse_args()
    if args.seed is not None:
        print(json.dumps(train_one(args)), flush=True)
        return 0

    base = [sys.executable, __file__, "--batch", str(args.batch), "--lr", str(args.lr),
            "--clipnorm", str(args.clipnorm), "--schedule", args.schedule, "--layers", str(args.layers),
            "--epochs", str(args.epochs), "--bound", str(args.bound), "--flow", args.flow]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(seed: int) -> dict:
        done = subprocess.run([*base, "--seed", str(seed)], capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            raise RuntimeError(f"seed {seed} failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, range(args.first, args.first + args.seeds)))
    if args.out:
        with open(args.out, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    # A run whose loss turned NaN counts as the worst outcome, not as a missing one.
    nlls = sorted(v if math.isfinite(v) else math.inf for v in (r["test_nll"] for r in rows))
    diverged = sum(math.isinf(v) for v in nlls)
    print(f"median {statistics.median(nlls):.3f} nats; {sum(v <= 0.5 for v in nlls)}/{len(nlls)} at most 0.5; "
          f"{diverged} diverged (NaN); sorted: {', '.join(f'{v:.3f}' for v in nlls)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
