"""Fast-mode margins of the trained-flow checks of labs 01 (1-D CDF flows) and 03 (face).

For each seed, train what the notebook trains in fast mode (``FLOWLAB_FAST=1``: same recipe, the
notebook's fast epochs), once with correct answers and once with each broken variant a student
might write, through the same Keras model the notebook uses (its output is the student's
log-likelihood function).  Then compute what the check computes: the mass of ``exp(log_prob)`` on
its integration grid, and the test NLL.  Writes ``bench/results/check_margins_cdf_labs.json`` and
prints a table; ``bench/check_margins.md`` records the numbers.

    FLOWLAB_FAST=1 .venv/bin/python bench/check_margins_cdf_labs.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("FLOWLAB_FAST", "1")

import flowlab  # noqa: E402  (selects Keras 2 first)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from flowlab.bijectors.autoregressive_cdf import MixtureConditioner2D  # noqa: E402
from flowlab.bijectors.mixture_cdf import MixtureCDF  # noqa: E402
from flowlab.checks import face as face_check  # noqa: E402
from flowlab.checks import flows_1d as flows_check  # noqa: E402
from flowlab.datasets import load_face, load_two_moons  # noqa: E402
from flowlab.datasets.bimodal import bimodal_log_prob, load_bimodal  # noqa: E402
from flowlab.training import fit  # noqa: E402

tfd, tfb = tfp.distributions, tfp.bijectors
ROOT = Path(__file__).resolve().parent.parent
FAST = flowlab.FAST


# ---- lab 01 ------------------------------------------------------------------------------------

def log_prob_correct(x, flow, base):
    return base.log_prob(flow.forward(x)) + flow.forward_log_det_jacobian(x, event_ndims=0)


def log_prob_no_log_det(x, flow, base):
    return base.log_prob(flow.forward(x))


def log_prob_double_log_det(x, flow, base):
    return base.log_prob(flow.forward(x)) + 2.0 * flow.forward_log_det_jacobian(x, event_ndims=0)


class ChangeOfVariables(tf.keras.Model):
    """As in the notebook: the output is the student's flow_log_prob(x, flow, base)."""

    def __init__(self, log_prob, flow, base):
        super().__init__()
        self.log_prob_fn, self.flow, self.base = log_prob, flow, base

    def call(self, x):
        return self.log_prob_fn(x, self.flow, self.base)


def _initial(k=5):
    return (tf.Variable(tf.zeros(k)), tf.Variable(np.linspace(-3.0, 3.0, k).astype(np.float32)),
            tf.Variable(tf.fill([k], np.float32(np.log(6.0 / k)))))


def lab01(seed: int, epochs: int) -> dict:
    x_train, x_test = load_bimodal(5000, 2000, seed=0)
    true_nll = -float(np.mean(bimodal_log_prob(x_test)))
    variants = {
        "correct": (log_prob_correct, "gaussian", True),
        "untrained": (log_prob_correct, "gaussian", False),
        "no log-det": (log_prob_no_log_det, "gaussian", True),
        "log-det doubled": (log_prob_double_log_det, "gaussian", True),
        "to_gaussian = cdf (no Φ⁻¹)": (log_prob_correct, "cdf only", True),
    }
    out = {}
    for name, (fn, composition, train) in variants.items():
        flowlab.seed(seed)
        rows = {}
        for base_name, base in [("Uniform", tfd.Uniform(0.0, 1.0)), ("N(0, 1)", tfd.Normal(0.0, 1.0)),
                                ("Beta(5, 5)", tfd.Beta(5.0, 5.0))]:
            cdf = MixtureCDF(*_initial())
            flow = (tfb.Chain([tfb.Invert(tfb.NormalCDF()), cdf])
                    if base_name == "N(0, 1)" and composition == "gaussian" else cdf)
            if train:
                try:
                    fit(ChangeOfVariables(fn, flow, base), x_train, epochs=epochs, batch_size=256, learning_rate=1e-2,
                        verbose=0)
                except Exception as err:  # noqa: BLE001 - a broken variant may diverge: record it
                    rows[base_name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"}
                    continue
            # What the check sees (the student's function) and what the trained parameters really define.
            mass, nll = flows_check.measure_1d(lambda x, fn=fn, flow=flow, base=base: fn(x, flow, base), x_test)
            _, real_nll = flows_check.measure_1d(
                lambda x, flow=flow, base=base: log_prob_correct(x, flow, base), x_test)
            rows[base_name] = {"mass": mass, "nll_excess": nll - true_nll, "real_nll_excess": real_nll - true_nll}
        out[name] = rows
    return out


# ---- lab 03 ------------------------------------------------------------------------------------

def ar_log_prob(x, conditioner):
    x = tf.convert_to_tensor(x)
    first = MixtureCDF.from_params(conditioner.marginal_params())
    second = MixtureCDF.from_params(conditioner.conditional_params(x[:, :1]))
    return (first.forward_log_det_jacobian(x[:, 0], event_ndims=0)
            + second.forward_log_det_jacobian(x[:, 1], event_ndims=0))


def ar_log_prob_theta1_for_x2(x, conditioner):
    x = tf.convert_to_tensor(x)
    first = MixtureCDF.from_params(conditioner.marginal_params())
    return (first.forward_log_det_jacobian(x[:, 0], event_ndims=0)
            + first.forward_log_det_jacobian(x[:, 1], event_ndims=0))


def ar_log_prob_x1_only(x, conditioner):
    x = tf.convert_to_tensor(x)
    return MixtureCDF.from_params(conditioner.marginal_params()).forward_log_det_jacobian(x[:, 0], event_ndims=0)


class ARFlow(tf.keras.Model):
    """As in the notebook: the output is the student's ar_log_prob(x, conditioner)."""

    def __init__(self, log_prob, conditioner):
        super().__init__()
        self.log_prob_fn, self.conditioner = log_prob, conditioner

    def call(self, x):
        return self.log_prob_fn(x, self.conditioner)

    def log_prob(self, x):
        return self(tf.convert_to_tensor(x, tf.float32))


def network(k, output_activation=None, hidden=(64, 64)):
    return tf.keras.Sequential([tf.keras.layers.Dense(h, activation="relu") for h in hidden]
                               + [tf.keras.layers.Dense(3 * k, activation=output_activation)])


def ignores_x1(k):
    return tf.keras.layers.Lambda(lambda x1: tf.zeros([tf.shape(x1)[0], 3 * k]))


NETWORKS = {
    "correct": lambda k: network(k),
    "relu output": lambda k: network(k, "relu"),
    "sigmoid output": lambda k: network(k, "sigmoid"),
    "linear (no hidden layer)": lambda k: network(k, hidden=()),
    "ignores x1 (the stub)": ignores_x1,
}
LOG_PROBS = {"x2 scored with θ1": ar_log_prob_theta1_for_x2, "x1 term only": ar_log_prob_x1_only}


def lab03(seed: int, moons_epochs: int, face_epochs: int) -> dict:
    k = 5
    data = {
        "moons": (load_two_moons(4000, 1000, seed=0), (-1.5, 2.5), moons_epochs, face_check.measure_moons),
        "face": (load_face(2000, 1000, seed=0), (-3.0, 3.0), face_epochs, face_check.measure_face),
    }
    variants = [(name, make, ar_log_prob) for name, make in NETWORKS.items()]
    variants += [(name, NETWORKS["correct"], fn) for name, fn in LOG_PROBS.items()]
    out = {}
    for name, make, fn in variants:
        out[name] = {}
        for dataset, ((x_train, x_test), loc_range, epochs, measure) in data.items():
            flowlab.seed(seed)
            conditioner = MixtureConditioner2D(k, network=make(k), loc_range=loc_range)
            model = ARFlow(fn, conditioner)
            try:
                fit(model, x_train, epochs=epochs, batch_size=128, learning_rate=5e-3, verbose=0)
            except Exception as err:  # noqa: BLE001
                out[name][dataset] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"}
                continue
            truth = ARFlow(ar_log_prob, conditioner)  # the density those parameters really define
            mass, nll = measure(model.log_prob, x_test)
            _, true_nll = measure(truth.log_prob, x_test)
            out[name][dataset] = {"mass": mass, "nll": nll, "real_nll": true_nll}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--labs", nargs="+", default=["01", "03"])
    args = parser.parse_args(argv)
    epochs01 = 30 if FAST else 150
    moons_epochs, face_epochs = (30, 40) if FAST else (150, 200)
    results: dict = {"fast": FAST, "seeds": args.seeds, "lab01": {}, "lab03": {}}
    for seed in args.seeds:
        start = time.time()
        if "01" in args.labs:
            results["lab01"][seed] = lab01(seed, epochs01)
        if "03" in args.labs:
            results["lab03"][seed] = lab03(seed, moons_epochs, face_epochs)
        print(f"seed {seed}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    path = ROOT / "bench" / "results" / "check_margins_cdf_labs.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    for lab in ("lab01", "lab03"):
        for seed, variants in results[lab].items():
            for name, rows in variants.items():
                for where, row in rows.items():
                    print(lab, seed, f"{name:28s}", f"{where:11s}",
                          " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
