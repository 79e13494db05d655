"""Lab 04's trained-flow check: how far correct answers and broken ones land from its thresholds.

Trains the lab's model exactly as ``solutions/04_mnist_realnvp.ipynb`` does in fast mode (the same
sizes, recipe, validation-split selection; the flow built from the "student's" functions), once per
(answer, seed), and records what ``flowlab.checks.mnist.trained_flow`` measures:

* ``test_bpd``: the mean bits/dim of the test images under the selected checkpoint, as the flow's
  ``log_prob`` claims it (the check's threshold, ``TRAINED_BPD_THRESHOLD``, applies to it);
* ``log_det_gap``: |log_prob - (log N(z) + log|det dz/dy|)| on the first test image, the Jacobian by
  brute-force autodiff (the check's tolerance: 1 nat);
* the verdict lines of ``trained_flow`` and ``scale_layers``.

Answers: ``correct``; ``coupling_no_log_det`` (coupling_forward returns a zero log-det);
``logit_log_det_sign`` (logit_log_det negated); ``masks_not_alternating`` (every checkerboard parity
0, every channel half 0); ``dequantize_no_noise`` (x / 256); ``dequantize_255`` ((x + u) / 255);
``untrained`` (no epochs).

Reproduce (fast mode; 2-4 minutes per run on 2 shared cores; runs already in --out are skipped):

    FLOWLAB_FAST=1 FLOWLAB_MNIST_DIR=/work/shared/data/mnist .venv/bin/python bench/check_margins_mnist.py \
        --seeds 0 1 2 --out bench/results/check_margins_mnist.json
    # then --seeds 3 4 --variants correct (results: bench/check_margins.md, Lab 04)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path

import flowlab

# isort: split
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.actnorm import ActNorm, initialize_actnorm
from flowlab.bijectors.coupling import FunctionCoupling
from flowlab.bijectors.dequantize import FunctionLogit, uniform_dequantize
from flowlab.bijectors.masks import channel_mask
from flowlab.bijectors.squeeze import Squeeze
from flowlab.checks import mnist as check
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.datasets.mnist import load_mnist_splits
from flowlab.flows.multiscale import MultiScale
from flowlab.training import LinearWarmup, density_model, negative_log_likelihood

tfd, tfb = tfp.distributions, tfp.bijectors
FAST = flowlab.FAST

# The notebook's sizes (solutions/04_mnist_realnvp.ipynb).
N_TRAIN, N_VALIDATION, N_TEST = (2000, 500, 500) if FAST else (8000, 1000, 1000)
FILTERS = 16 if FAST else 32
EPOCHS = 3 if FAST else 10
BATCH = 64
ALPHA = 0.05
D = 784


# --- the correct answers (as in the solution) -----------------------------------------------------

def dequantize(images):
    x = tf.cast(images, tf.float32)
    return (x + tf.random.uniform(tf.shape(x), 0.0, 1.0)) / 256.0


def logit_transform(y, alpha=ALPHA):
    p = alpha + (1.0 - 2.0 * alpha) * y
    return tf.math.log(p) - tf.math.log1p(-p)


def logit_log_det(y, alpha=ALPHA):
    p = alpha + (1.0 - 2.0 * alpha) * y
    return math.log(1.0 - 2.0 * alpha) - tf.math.log(p) - tf.math.log1p(-p)


def checkerboard_mask(height, width, channels, parity):
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    board = ((rows + cols) % 2 == parity).astype(np.float32)
    return np.repeat(board[:, :, None], channels, axis=2)


def coupling_forward(x, mask, conditioner):
    shift, log_scale = conditioner(mask * x)
    y = mask * x + (1.0 - mask) * (x * tf.exp(log_scale) + shift)
    return y, tf.reduce_sum((1.0 - mask) * log_scale, axis=[1, 2, 3])


def coupling_inverse(y, mask, conditioner):
    shift, log_scale = conditioner(mask * y)
    return mask * y + (1.0 - mask) * (y - shift) * tf.exp(-log_scale)


def to_bits_per_dim(log_prob, num_dims):
    return -log_prob / (num_dims * math.log(2.0)) + math.log2(256)


def answers(variant: str) -> dict:
    a = dict(dequantize=dequantize, logit_transform=logit_transform, logit_log_det=logit_log_det,
             checkerboard_mask=checkerboard_mask, coupling_forward=coupling_forward,
             coupling_inverse=coupling_inverse, parity=lambda i: i % 2)
    if variant == "coupling_no_log_det":
        a["coupling_forward"] = lambda x, m, c: (coupling_forward(x, m, c)[0], tf.zeros(tf.shape(x)[:1]))
    elif variant == "logit_log_det_sign":
        a["logit_log_det"] = lambda y, alpha=ALPHA: -logit_log_det(y, alpha)
    elif variant == "masks_not_alternating":
        a["parity"] = lambda i: 0
    elif variant == "dequantize_no_noise":
        a["dequantize"] = lambda images: tf.cast(images, tf.float32) / 256.0
    elif variant == "dequantize_255":
        a["dequantize"] = lambda images: (tf.cast(images, tf.float32) + tf.random.uniform(np.shape(images))) / 255.0
    elif variant not in ("correct", "untrained"):
        raise ValueError(f"unknown variant {variant}")
    return a


# --- the notebook's recipe ------------------------------------------------------------------------

def build(a: dict):
    def coupling(mask):
        channels = int(np.shape(mask)[-1])
        net = ResNetConditioner(channels, filters=FILTERS, blocks=1)
        return tfb.Chain([ActNorm(channels), FunctionCoupling(mask, net, a["coupling_forward"], a["coupling_inverse"])])

    def squeeze():
        return tfb.Invert(Squeeze())

    def scale_layers(height, width, channels):
        layers = [coupling(a["checkerboard_mask"](height, width, channels, a["parity"](i))) for i in range(3)]
        layers.append(squeeze())
        layers += [coupling(channel_mask(height // 2, width // 2, 4 * channels, a["parity"](i))) for i in range(3)]
        return layers

    levels = [tfb.Chain(scale_layers(28, 28, 1)), tfb.Chain(scale_layers(14, 14, 2))]
    final = tfb.Chain([coupling(a["checkerboard_mask"](7, 7, 4, i % 2)) for i in range(4)])
    logit = FunctionLogit(a["logit_transform"], a["logit_log_det"], alpha=ALPHA)
    bijector = tfb.Chain([tfb.Invert(logit), MultiScale((28, 28, 1), levels, final)])
    flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), [28, 28, 1]), bijector)
    return flow, scale_layers


def train(flow, a: dict, train_images, y_validation, epochs: int):
    initialize_actnorm(flow, a["dequantize"](train_images[:BATCH]))
    model = density_model(flow)
    warmup = LinearWarmup(1e-3, warmup_steps=2 * math.ceil(len(train_images) / BATCH))
    model.compile(optimizer=tf.keras.optimizers.Adam(warmup, global_clipnorm=1e4), loss=negative_log_likelihood)
    best, best_weights, curve = math.inf, model.get_weights(), []
    for _ in range(epochs):
        y_train = np.asarray(a["dequantize"](train_images), np.float32)
        model.fit(y_train, np.zeros(len(y_train)), batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        val = float(np.mean(to_bits_per_dim(model.predict(y_validation, batch_size=250, verbose=0), D)))
        curve.append(val)
        if val < best:
            best, best_weights = val, model.get_weights()
    model.set_weights(best_weights)
    return model, curve


def verdict(fn, *args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return out.getvalue().strip()


def run(variant: str, seed: int) -> dict:
    flowlab.seed(seed)
    a = answers(variant)
    train_images, validation_images, test_images = load_mnist_splits(N_TRAIN, N_VALIDATION, N_TEST, seed=0)
    y_validation = uniform_dequantize(validation_images, seed=[1, 2]).numpy()
    y_test = uniform_dequantize(test_images, seed=[3, 4]).numpy()
    start = time.perf_counter()
    flow, scale_layers = build(a)
    model, curve = train(flow, a, train_images, y_validation, 0 if variant == "untrained" else EPOCHS)
    seconds = time.perf_counter() - start
    log_prob = model.predict(y_test, batch_size=250, verbose=0)
    test_bpd = float(np.mean(to_bits_per_dim(log_prob, D)))
    claimed, honest = check._jacobian_log_prob(flow, y_test[:1])
    return {
        "variant": variant, "seed": seed, "fast": FAST, "epochs": len(curve), "train_seconds": round(seconds, 1),
        "validation_bpd_by_epoch": [round(v, 4) for v in curve],
        "test_bpd": round(test_bpd, 4), "log_det_gap_nats": float(abs(claimed - honest)[0]),
        "trained_flow": verdict(check.trained_flow, flow, y_test, test_bpd),
        "scale_layers": verdict(check.scale_layers, scale_layers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["correct", "untrained", "coupling_no_log_det",
                                                          "logit_log_det_sign", "masks_not_alternating",
                                                          "dequantize_no_noise", "dequantize_255"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/check_margins_mnist.json"))
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["variant"], r["seed"], r["fast"]) for r in results}
    for seed in args.seeds:
        for variant in args.variants:
            if (variant, seed, FAST) in done:
                continue
            result = run(variant, seed)
            print(json.dumps(result), flush=True)
            results.append(result)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
            tf.keras.backend.clear_session()
    print(f"{'variant':>24} {'seed':>4} {'test bpd':>9} {'gap (nats)':>11}  trained_flow", file=sys.stderr)
    for r in results:
        print(f"{r['variant']:>24} {r['seed']:>4} {r['test_bpd']:9.3f} {r['log_det_gap_nats']:11.3g}  "
              f"{r['trained_flow'][:60]}", file=sys.stderr)


if __name__ == "__main__":
    main()
