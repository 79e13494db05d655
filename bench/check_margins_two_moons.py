"""How far apart lab 02's trained-flow check puts right and wrong answers, in fast mode.

Trains the notebook's recipe exactly as its fast mode does (``FLOWLAB_FAST=1``: the 10,000 points of
``make_moons(noise=0.05, random_state=0)``, the notebook's fast-mode epochs, batch 128, Adam 1e-3 with
``global_clipnorm=1.0``, the learning rate divided by 10 for the last quarter) for a correct answer
and for the wrong answers students write, over several initialisations, and scores each on the
notebook's 2,000 test points. Each run also records the verdict of ``check.trained_flow``.

    .venv/bin/python bench/check_margins_two_moons.py --seeds 12 --wrong-seeds 3 \
        --out bench/results/check_margins_two_moons.json

Variants: ``correct`` (three MAF layers, a swap after each); ``one_permute`` (the three MAFs
back to back, one swap at the end); ``shared`` (one MAF object used three times); ``sgd`` (plain
SGD at 1e-3 instead of Adam); ``untrained`` (the correct flow, never fitted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["correct", "one_permute", "shared", "sgd", "untrained"]


def train_one(variant: str, seed: int, epochs: int, n_train: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import io
    from contextlib import redirect_stdout

    import flowlab
    # isort: split
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp
    from sklearn.datasets import make_moons

    from flowlab.checks import two_moons as check

    tfd, tfb = tfp.distributions, tfp.bijectors
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    flowlab.seed(seed)
    x_train = make_moons(n_train, noise=0.05, random_state=0)[0].astype(np.float32)
    x_test = make_moons(2000, noise=0.05, random_state=1)[0].astype(np.float32)

    def maf():
        made = tfb.AutoregressiveNetwork(params=2, event_shape=[2], hidden_units=[128, 128], activation="relu")
        return tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)

    if variant == "one_permute":
        layers = [maf(), maf(), maf(), tfb.Permute([1, 0])]
    elif variant == "shared":
        shared = maf()
        layers = [shared, tfb.Permute([1, 0])] * 3
    else:
        layers = [b for _ in range(3) for b in (maf(), tfb.Permute([1, 0]))]
    base = tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[1.0, 1.0])
    flow = tfd.TransformedDistribution(base, tfb.Chain(list(reversed(layers))))
    x_ = tf.keras.Input(shape=(2,), dtype=tf.float32)
    model = tf.keras.Model(x_, flow.log_prob(x_))
    optimizer = (tf.keras.optimizers.SGD(learning_rate=1e-3, global_clipnorm=1.0) if variant == "sgd"
                 else tf.keras.optimizers.Adam(learning_rate=1e-3, global_clipnorm=1.0))
    model.compile(optimizer=optimizer, loss=lambda _, log_prob: -log_prob)
    if variant != "untrained":
        settle = tf.keras.callbacks.LearningRateScheduler(lambda e, lr: 1e-4 if e >= 0.75 * epochs else 1e-3)
        if variant == "sgd":
            settle = tf.keras.callbacks.LearningRateScheduler(lambda e, lr: lr)
        model.fit(x_train, np.zeros((len(x_train), 0), np.float32), batch_size=128, epochs=epochs,
                  shuffle=True, callbacks=[settle], verbose=0)
    nll = -float(tf.reduce_mean(flow.log_prob(x_test)))
    out = io.StringIO()
    with redirect_stdout(out):
        check.trained_flow(flow, x_test)
    return {"variant": variant, "seed": seed, "epochs": epochs, "n_train": n_train, "test_nll": round(nll, 4),
            "verdict": out.getvalue().strip()[:1], "check": out.getvalue().strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12, help="seeds 0 .. N-1 for the correct answer")
    parser.add_argument("--wrong-seeds", type=int, default=4, help="seeds 0 .. N-1 for each wrong answer")
    parser.add_argument("--epochs", type=int, default=None, help="default: the notebook's fast mode")
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--variants", nargs="*", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", help="write all rows and the summary to this JSON file")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: VARIANT SEED
    args = parser.parse_args()
    epochs = args.epochs or fast_epochs()
    if args.one:
        print(json.dumps(train_one(args.one[0], int(args.one[1]), epochs, args.n_train)), flush=True)
        return 0
    jobs = [(v, s) for v in args.variants for s in range(args.seeds if v == "correct" else args.wrong_seeds)]

    def run(job):
        cmd = [sys.executable, __file__, "--one", job[0], str(job[1]), "--epochs", str(epochs),
               "--n-train", str(args.n_train)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
        if done.returncode:
            raise RuntimeError(f"{job} failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, jobs))
    summary = {}
    for variant in args.variants:
        nlls = sorted(r["test_nll"] for r in rows if r["variant"] == variant)
        verdicts = [r["verdict"] for r in rows if r["variant"] == variant]
        summary[variant] = {"runs": len(nlls), "min": nlls[0], "median": statistics.median(nlls), "max": nlls[-1],
                            "passed": verdicts.count("✔")}
        print(f"{variant:12s} n={len(nlls):2d}  NLL min {nlls[0]:.3f}  median {statistics.median(nlls):.3f}  "
              f"max {nlls[-1]:.3f}  trained_flow ✔ {verdicts.count('✔')}/{len(verdicts)}")
    if args.out:
        Path(args.out).write_text(json.dumps({"epochs": epochs, "n_train": args.n_train, "rows": rows,
                                              "summary": summary}, indent=1) + "\n")
    return 0


def fast_epochs() -> int:
    """The EPOCHS the notebook uses in fast mode, read from the solution (one source of truth)."""
    import re

    text = (ROOT / "solutions" / "02_two_moons.ipynb").read_text(encoding="utf-8")
    found = re.search(r"EPOCHS = (\d+) if FAST else \d+", text)
    if not found:
        raise SystemExit("cannot find `EPOCHS = N if FAST else M` in solutions/02_two_moons.ipynb")
    return int(found.group(1))


if __name__ == "__main__":
    sys.exit(main())
