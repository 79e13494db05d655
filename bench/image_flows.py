"""Lab 07 benchmark: Glow vs the lab-04 RealNVP, uniform vs variational dequantization, good vs bad partition.

Every run trains one model on the 8,000 training images of ``load_mnist_splits`` for a budget of
**process CPU seconds** (``time.process_time``, both cores counted, the first batch's graph tracing
not counted: on a shared machine wall-clock budgets are not comparable between runs, CPU seconds
are) or, with ``--minutes``, of wall-clock minutes (fresh dequantization noise every epoch; Adam 1e-3
with a linear warm-up and global-norm clipping at 1e4, as lab 04), scores the 1,000 validation images after every epoch (and at the end
of the budget), keeps the best validation checkpoint, and reports the 1,000 test images' bits/dim
of that checkpoint only.  Also: seconds to sample 64 images, peak resident memory.

    nice -n 10 .venv/bin/python bench/image_flows.py --runs realnvp glow glow_vardeq good bad \
        --cpu-seconds 600 --out bench/results/image_flows_cpu600.json

The headline run (30 minutes on 2 cores = 3,600 CPU seconds; lab 04's RealNVP with variational
dequantization, the learning rate decayed to 0 along a cosine over the budget; test bits/dim logged after
every epoch, the checkpoint picked on validation only; the JSON is rewritten after every epoch), and its
uniform twin:

    .venv/bin/python bench/image_flows.py --runs realnvp_vardeq --cpu-seconds 3600 --schedule cosine \
        --ema 0.999 --threads 1 --log-test --out bench/results/image_flows_cpu3600_vardeq_cosine.json
    .venv/bin/python bench/image_flows.py --runs realnvp --cpu-seconds 3600 --schedule cosine \
        --ema 0.999 --threads 1 --log-test --out bench/results/image_flows_cpu3600_cosine.json
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import flowlab  # noqa: F401  (Keras 2)

# isort: split
import numpy as np
import tensorflow as tf

from flowlab.bijectors.actnorm import initialize_actnorm
from flowlab.bijectors.dequantize import uniform_dequantize
from flowlab.bijectors.variational_dequantization import (
    DequantizedDensityModel,
    VariationalDequantizer,
    variational_bound,
)
from flowlab.datasets.mnist import load_mnist_splits
from flowlab.flows.glow import build_glow
from flowlab.flows.multiscale import build_multiscale_realnvp, sample_images
from flowlab.flows.partitions import build_bad_partition_flow, build_good_partition_flow
from flowlab.training import LinearWarmup, WeightAverage, density_model, negative_log_likelihood

D, BATCH = 784, 64


def build(run: str):
    if run in ("realnvp", "realnvp_vardeq"):
        return build_multiscale_realnvp((28, 28, 1), filters=32), run == "realnvp_vardeq"
    if run in ("glow", "glow_vardeq"):
        # 5 + 5 + 5 steps with 32 filters: 347,850 parameters, RealNVP's 349,396.
        return build_glow((28, 28, 1), steps=5, final_steps=5, filters=32), run == "glow_vardeq"
    if run == "good":
        return build_good_partition_flow((28, 28, 1), filters=32), False
    if run == "bad":
        return build_bad_partition_flow((28, 28, 1), filters=32), False
    raise ValueError(run)


class CosineOverBudget(tf.keras.callbacks.Callback):
    """Sets the learning rate before every batch: a linear warm-up over ``warmup_steps``, then a cosine decay from
    ``peak`` to 0 over the *budget* (the fraction of ``budget.seconds`` used), so that a run of any length ends at a
    small rate whatever the machine's speed."""

    def __init__(self, peak: float, warmup_steps: int, budget: Budget) -> None:
        super().__init__()
        self.peak, self.warmup_steps, self.budget = peak, warmup_steps, budget

    def on_train_batch_begin(self, batch, logs=None):
        fraction = min(1.0, self.budget.used / self.budget.seconds)
        warm = min(1.0, (self.budget.steps + 1) / self.warmup_steps)
        self.model.optimizer.learning_rate.assign(self.peak * warm * 0.5 * (1.0 + math.cos(math.pi * fraction)))


class Budget(tf.keras.callbacks.Callback):
    """Stops ``fit`` once its batches have used ``seconds`` of ``clock``; the first batch (tracing) is not counted,
    nor is anything between batches (evaluation, new noise)."""

    def __init__(self, seconds: float, clock) -> None:
        super().__init__()
        self.seconds, self.clock, self.used, self.steps, self._t0 = seconds, clock, 0.0, 0, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._t0 = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.steps > 0:
            self.used += self.clock() - self._t0
        self.steps += 1
        if self.used >= self.seconds:
            self.model.stop_training = True


def run_one(run: str, minutes: float, cpu_seconds: float, seed: int, log_test: bool = False,
            progress=None, schedule: str = "constant", peak_lr: float = 1e-3, ema: float = 0.0) -> dict:
    flowlab.seed(seed)
    train, validation, test = load_mnist_splits(8000, 1000, 1000, seed=0)
    flow, variational = build(run)
    initialize_actnorm(flow, uniform_dequantize(train[:256], seed=[seed, 0]))
    if variational:
        q = VariationalDequantizer((28, 28, 1), couplings=2, filters=16)
        model = DequantizedDensityModel(flow, q)
    else:
        q = None
        model = density_model(flow)
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    flow_params = sum(int(np.prod(v.shape)) for v in flow.trainable_variables)
    warmup_steps = 2 * math.ceil(len(train) / BATCH)
    if schedule == "cosine":
        learning_rate = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    else:
        learning_rate = LinearWarmup(peak_lr, warmup_steps=warmup_steps)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=1e4),
                  loss=negative_log_likelihood)

    @tf.function
    def bound(x, s):
        return variational_bound(flow, q, x, seed=s)

    def score(images, base_seed):
        if variational:
            values = [bound(tf.constant(images[i:i + 250], tf.float32), tf.constant([base_seed, i]))
                      for i in range(0, len(images), 250)]
            return float(np.mean(-np.concatenate(values) / (D * math.log(2.0))))
        y = uniform_dequantize(images, seed=[base_seed, 7]).numpy()
        lp = model.predict(y, batch_size=250, verbose=0)
        return float(np.mean(-lp / (D * math.log(2.0)) + 8.0))

    history, best = [], (math.inf, None, 0, math.nan)
    clock = time.process_time if cpu_seconds else time.perf_counter
    budget = Budget(cpu_seconds or 60 * minutes, clock)
    callbacks = [budget]
    if schedule == "cosine":
        callbacks.insert(0, CosineOverBudget(peak_lr, warmup_steps, budget))
    # The same callback goes into every epoch's fit and keeps averaging across them; the trained weights stay in
    # the model (apply_at_end=False) and training goes on from them.
    average = WeightAverage(ema, apply_at_end=False) if ema else None
    if average is not None:
        callbacks.append(average)
    wall_start, cpu_start, epoch = time.perf_counter(), time.process_time(), 0
    while budget.used < budget.seconds:
        epoch += 1
        if variational:
            x = train.astype(np.float32)
        else:
            x = uniform_dequantize(train, seed=[seed, epoch]).numpy()
        fit = model.fit(x, np.zeros(len(x)), batch_size=BATCH, epochs=1, verbose=0, shuffle=True, callbacks=callbacks)
        val = score(validation, 11)
        # The test images are scored after every epoch so that a run cut short still says where it stood; only
        # the validation bits/dim pick the checkpoint, and the reported test number is the picked epoch's.
        tst = score(test, 13) if log_test else math.nan
        loss = float(np.mean(fit.history["loss"])) / (D * math.log(2.0)) + (0.0 if variational else 8.0)
        if np.isfinite(val) and val < best[0]:
            best = (val, model.get_weights(), epoch, tst)
        val_avg = tst_avg = math.nan
        if average is not None:
            # The averaged weights are a second candidate, kept only if validation prefers them: averaging a
            # trajectory that is still moving fast scored far worse than the live weights in these flows.
            with average.swapped():
                val_avg = score(validation, 11)
                tst_avg = score(test, 13) if log_test else math.nan
                if np.isfinite(val_avg) and val_avg < best[0]:
                    best = (val_avg, model.get_weights(), epoch, tst_avg)
        history.append({"epoch": epoch, "steps": budget.steps, "budget_used": round(budget.used, 1),
                        "process_cpu_s": round(time.process_time() - cpu_start, 1),
                        "wall_minutes": round((time.perf_counter() - wall_start) / 60, 2),
                        "learning_rate": float(tf.keras.backend.get_value(model.optimizer.learning_rate))
                        if schedule == "cosine" else None,
                        "train_bpd": round(loss, 4), "validation_bpd": round(val, 4), "test_bpd": round(tst, 4),
                        "validation_bpd_average": round(val_avg, 4), "test_bpd_average": round(tst_avg, 4),
                        "best_epoch_so_far": best[2], "test_bpd_of_best_validation": round(best[3], 4),
                        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)})
        print(run, history[-1], flush=True)
        if progress is not None:
            progress(history)
    if best[1] is not None:
        model.set_weights(best[1])
    test_bpd = score(test, 13)
    t0 = time.perf_counter()
    samples = sample_images(flow, 64, temperature=0.7, seed=1)
    sample_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample_images(flow, 64, temperature=0.7, seed=2)
    sample_seconds_2 = time.perf_counter() - t0
    generate = tf.function(flow.bijector.forward)
    z = 0.7 * flow.distribution.sample(64, seed=3)
    generate(z)  # trace once
    t0, c0 = time.perf_counter(), time.process_time()
    generate(tf.identity(z))
    compiled_wall, compiled_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"run": run, "schedule": schedule, "peak_lr": peak_lr, "ema": ema,
            "parameters": params, "flow_parameters": flow_params, "minutes": minutes,
            "cpu_seconds": cpu_seconds, "steps": budget.steps, "epochs": epoch, "best_epoch": best[2],
            "best_validation_bpd": round(best[0], 4),
            "test_bpd": round(test_bpd, 4), "sample64_seconds_first": round(sample_seconds, 2),
            "sample64_seconds_second": round(sample_seconds_2, 2),
            "sample64_tf_function_wall_s": round(compiled_wall, 3),
            "sample64_tf_function_cpu_s": round(compiled_cpu, 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "sample_mean_pixel": float(samples.mean()), "history": history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["realnvp", "glow", "glow_vardeq", "good", "bad"])
    parser.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget (without --cpu-seconds)")
    parser.add_argument("--cpu-seconds", type=float, default=0.0, help="process CPU-time budget per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/image_flows.json")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="constant: warm-up then peak; cosine: warm-up then a cosine decay to 0 over the budget")
    parser.add_argument("--peak-lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.0,
                        help="also score an exponential moving average of the weights (e.g. 0.999), kept if validation "
                        "prefers it; 0: off")
    parser.add_argument("--log-test", action="store_true",
                        help="also score the test images after every epoch (logged; selection stays on validation)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    results = []

    def write(partial=None):
        # Rewritten after every epoch: a run stopped early leaves its curve so far ("partial").
        with open(args.out, "w") as f:
            json.dump({"minutes": args.minutes, "cpu_seconds": args.cpu_seconds, "seed": args.seed,
                       "threads": args.threads, "results": results, "partial": partial}, f, indent=1)

    for run in args.runs:
        results.append(run_one(run, args.minutes, args.cpu_seconds, args.seed, args.log_test,
                               progress=lambda history, run=run: write({"run": run, "history": history}),
                               schedule=args.schedule, peak_lr=args.peak_lr, ema=args.ema))
        write()
        print(json.dumps({k: v for k, v in results[-1].items() if k != "history"}), flush=True)


if __name__ == "__main__":
    main()
