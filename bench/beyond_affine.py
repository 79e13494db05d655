"""Benchmark lab 06 (beyond affine layers): two moons against the true density and zuko, the face, FFJORD.

Three parts, each written to its own JSON file under ``bench/results/`` (see ``bench/beyond_affine.md``):

- ``moons``: flowlab's neural spline flow (``build_nsf``: autoregressive, as zuko's, by default;
  ``--kind coupling``) on two moons -- train
  ``make_moons(10000, noise=0.05, random_state=0)`` (its last 1,000 points held out for validation),
  test ``make_moons(5000, noise=0.05, random_state=1)`` -- under a budget of process CPU seconds,
  keeping the epoch with the best validation NLL (never selecting on test); with ``--ema m`` (session
  8's recipe: ``--ema 0.99``) it is the weights' exponential moving average that is scored and selected
  on validation, the trained weights' own best epoch recorded beside it.  ``--validation 0`` (run D):
  all 10,000 points train, nothing is selected, and the last epoch's weights (with ``--ema``, their
  average) are scored; the last epoch's trained weights are recorded beside it.  In the same run, per
  seed, zuko's NSF (PyTorch) trains on the same data with the same recipe and the same number of
  parameters, in a subprocess with the Python of a separate venv (``--zuko-python`` or
  ``$ZUKO_PYTHON``; ``bench/zuko_nsf.py`` is its side).  Both use the same number of intra-op threads.
- ``face``: NICE, RealNVP, the lab-sheet MAF, NSF, a mixture-CDF coupling and FFJORD on the face,
  test nats/dim beside the true density's, with CPU seconds per epoch.
- ``--quick``: tiny sizes, to see that the script runs (numbers meaningless); CI never runs this.

Run from the repository root, one heavy job at a time on a shared machine::

    export ZUKO_PYTHON=/work/team/zuko-venv/bin/python
    nice -n 10 .venv/bin/python bench/beyond_affine.py moons --ema 0.99 --seeds 0 1 2 3 4
    nice -n 10 .venv/bin/python bench/beyond_affine.py face --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZUKO_PYTHON = "/work/team/zuko-venv/bin/python"


def configure_threads(threads: int) -> None:
    """Pin TensorFlow to ``threads`` intra-op threads (zuko gets ``torch.set_num_threads(threads)``)."""
    import flowlab  # noqa: F401  (first: it keeps TensorFlow's start-up and tf.data log lines out of the output)

    # isort: split
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


class Budget:
    """Cosine learning-rate decay per epoch, a CPU-second budget and the best validation epoch's weights
    (of the trained weights and, with ``ema``, of their moving average)."""

    def __new__(cls, *args, **kwargs):  # a tf.keras callback, defined lazily so --help needs no TensorFlow
        import tensorflow as tf

        from flowlab.training import WeightAverage

        class _Budget(tf.keras.callbacks.Callback):
            def __init__(self, flow, x_val, peak, epochs, cpu_budget, ema):
                super().__init__()
                self.flow, self.peak, self.epochs, self.cpu_budget = flow, peak, epochs, cpu_budget
                # x_val None (--validation 0): no per-epoch scoring, the last epoch's weights are kept
                self.x_val = tf.constant(x_val) if x_val is not None else None
                self.val_nll = tf.function(lambda x: -tf.reduce_mean(flow.log_prob(x)))
                # "raw": the weights as trained; "ema": their exponential moving average.
                # Both are scored on validation every epoch, each keeps its own best epoch; the
                # reported flow is the EMA's when --ema is on (the raw one is recorded beside it).
                self.best = {"raw": [math.inf, None, -1], "ema": [math.inf, None, -1]}
                # The average (with --ema): flowlab.training.WeightAverage, updated after every step once Adam
                # has applied MADE's mask constraints (tf-keras's own use_ema averages before them, and
                # flowlab's fit refuses it for such flows): average = m * average + (1 - m) * weights from the
                # initial weights, zuko_nsf.py's formula. Passed to fit after this callback; its update falls
                # inside the epoch's CPU time either way, as zuko's is inside its step timer.
                self.average = WeightAverage(ema, validate_average=False, apply_at_end=False) if ema else None
                self.curve = {"raw": [], "ema": []}
                self.epoch_cpu, self.epochs_run = [], 0
                self.last_raw = None  # without validation: the trained weights at the end of the last epoch

            def on_train_begin(self, logs=None):
                self.start = time.process_time()

            def on_epoch_begin(self, epoch, logs=None):
                lr = self.peak * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
                self.model.optimizer.learning_rate.assign(lr)
                self.epoch_start = time.process_time()

            def score(self, which: str, epoch: int) -> None:
                score = float(self.val_nll(self.x_val))
                self.curve[which].append(round(score, 4))
                if score < self.best[which][0]:
                    self.best[which] = [score, [w.numpy() for w in self.flow.trainable_variables], epoch]

            def on_epoch_end(self, epoch, logs=None):
                took = time.process_time() - self.epoch_start  # includes the first epoch's tracing
                self.epoch_cpu.append(took)
                self.epochs_run += 1
                if self.x_val is None:
                    # nothing to select on: a copy of the weights (cheap next to an epoch), in case this
                    # epoch is the last
                    self.last_raw = [w.numpy() for w in self.flow.trainable_variables]
                else:
                    self.score("raw", epoch)
                    if self.average:
                        with self.average.swapped():  # the trained weights come back on leaving
                            self.score("ema", epoch)
                elapsed = time.process_time() - self.start
                steady = self.epoch_cpu[-1] if epoch else 0.0
                if elapsed + steady > self.cpu_budget:  # the next epoch would overrun the budget
                    self.model.stop_training = True

            def restore(self, which: str) -> None:
                """The weights to score: the best validation epoch's, or without validation the last's."""
                if self.x_val is None:
                    for variable, value in zip(self.flow.trainable_variables, self.last_raw):
                        variable.assign(value)
                    if which == "ema":
                        self.average.apply()
                    return
                for variable, value in zip(self.flow.trainable_variables, self.best[which][1]):
                    variable.assign(value)

        return _Budget(*args, **kwargs)


def build_optimizer(model) -> None:
    """Create Adam's moments before ``fit``: Keras creates them inside the first traced training step,
    and a ``tf.function`` that creates variables is traced twice (9-16 -> 7-11 CPU s of tracing here)."""
    model.optimizer.build(model.trainable_variables)


def parameter_count(flow) -> int:
    import numpy as np

    return int(sum(np.prod(v.shape) for v in flow.trainable_variables))


def moons_data(validation: int = 1000):
    """train, validation (None when ``validation`` is 0: all 10,000 points train), test."""
    import numpy as np
    from sklearn.datasets import make_moons

    data = make_moons(10000, noise=0.05, random_state=0)[0].astype(np.float32)
    test = make_moons(5000, noise=0.05, random_state=1)[0].astype(np.float32)
    if validation == 0:
        return data, None, test
    return data[:-validation], data[-validation:], test


def flowlab_moons(seed: int, args) -> dict:
    """flowlab's NSF on two moons: ``fit`` with the cosine schedule, the budget and validation selection."""
    import numpy as np
    import tensorflow as tf

    import flowlab
    from flowlab.flows import build_nsf
    from flowlab.training import density_model, fit, negative_log_likelihood

    train, val, test = moons_data(args.validation)
    flowlab.seed(seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # --init and --made-init set a MADE's start; a coupling NSF keeps build_nsf's defaults (as in sessions 6-7)
    start = dict(zero_init=args.init == "zero", init=args.made_init) if args.kind == "autoregressive" else {}
    flow = build_nsf(2, n_layers=args.layers, bins=args.bins, bound=args.bound,
                     hidden_units=(args.hidden, args.hidden), kind=args.kind, **start)
    model = density_model(flow)
    # EMA (with --ema): the Budget callback keeps the weights' moving average after every step
    # steps_per_execution: k training steps per call of the traced function (Keras's per-step Python cost paid
    # once per k); the weight average is updated inside each step, so it still averages every one
    model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate), loss=negative_log_likelihood,
                  steps_per_execution=args.steps_per_execution)
    build_optimizer(model)
    budget = Budget(flow, val, args.learning_rate, args.epochs, args.cpu_budget, args.ema)
    fit(model, train, epochs=args.epochs, batch_size=args.batch_size,
        callbacks=[budget] + ([budget.average] if budget.average else []), verbose=0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    steady = budget.epoch_cpu[1:] or budget.epoch_cpu
    scores = {}
    for which in ("raw", "ema") if args.ema else ("raw",):
        budget.restore(which)  # the best validation epoch's (or the last epoch's) weights; test scored once each
        validated = val is not None
        scores[which] = {"validation_nll": round(budget.best[which][0], 4) if validated else None,
                         "best_epoch": budget.best[which][2] if validated else budget.epochs_run - 1,
                         "test_nll": round(-float(np.mean(flow.log_prob(test))), 4),
                         "validation_curve": budget.curve[which]}
    chosen = scores["ema" if args.ema else "raw"]
    return {
        "library": f"flowlab (TensorFlow {tf.__version__})",
        "seed": seed,
        "parameters": parameter_count(flow),
        "epochs": budget.epochs_run,
        "best_epoch": chosen["best_epoch"],
        "steps": budget.epochs_run * steps_per_epoch,
        "train_cpu_seconds": round(cpu, 2),  # building the flow, tracing, every epoch, validation
        "train_wall_seconds": round(wall, 2),
        "first_epoch_cpu_seconds": round(budget.epoch_cpu[0], 2),  # mostly tracing the training step
        # steady state: epochs after the first, which include the validation passes (as zuko's do)
        "steps_per_cpu_second": round(steps_per_epoch / statistics.mean(steady), 2),
        "validation_nll": chosen["validation_nll"],
        "test_nll": chosen["test_nll"],
        "selections": scores,  # raw and (with --ema) EMA weights, each at its own best validation epoch
        "threads": args.threads,
    }


def zuko_moons(seed: int, args) -> dict | None:
    python = args.zuko_python
    if not Path(python).exists():
        print(f"zuko: no Python at {python}; make the venv (bench/zuko_nsf.py says how) or pass --zuko-python / "
              "set ZUKO_PYTHON. Skipping zuko.", file=sys.stderr)
        return None
    command = [python, str(ROOT / "bench" / "zuko_nsf.py"), "--seed", str(seed), "--transforms", str(args.layers),
               "--hidden", str(args.hidden), "--bins", str(args.bins), "--batch-size", str(args.batch_size),
               "--learning-rate", str(args.learning_rate), "--epochs", str(args.epochs),
               "--cpu-budget", str(args.cpu_budget), "--threads", str(args.threads), "--ema", str(args.ema),
               "--validation", str(args.validation)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        print(f"zuko failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def run_moons(args) -> dict:
    configure_threads(args.threads)
    runs = []
    for seed in args.seeds:
        ours = flowlab_moons(seed, args)
        print(f"seed {seed} flowlab: test {ours['test_nll']:.4f} nats (val {ours['validation_nll']}, "
              f"epoch {ours['best_epoch'] + 1}/{ours['epochs']}), {ours['train_cpu_seconds']:.0f} CPU s "
              f"({ours['first_epoch_cpu_seconds']:.0f} in epoch 1), {ours['train_wall_seconds']:.0f} s wall, "
              f"{ours['steps_per_cpu_second']:.1f} steps/CPU s, {ours['parameters']} parameters", flush=True)
        theirs = zuko_moons(seed, args) if not args.no_zuko else None
        if theirs:
            print(f"seed {seed} zuko:    test {theirs['test_nll']:.4f} nats (val {theirs['validation_nll']}, "
                  f"epoch {theirs['best_epoch'] + 1}/{theirs['epochs']}), {theirs['train_cpu_seconds']:.0f} CPU s, "
                  f"{theirs['train_wall_seconds']:.0f} s wall, {theirs['steps_per_cpu_second']:.1f} steps/CPU s, "
                  f"{theirs['parameters']} parameters", flush=True)
        runs.append({"seed": seed, "flowlab": ours, "zuko": theirs, "load_average": os.getloadavg()})
        write(args.out, summary_moons(args, runs))  # after every seed: a killed run keeps what it measured
    return summary_moons(args, runs)


def summary_moons(args, runs: list[dict]) -> dict:
    summary = {
        "part": "moons",
        "data": "train make_moons(10000, noise=0.05, random_state=0) "
                + (f"minus its last {args.validation} (validation); " if args.validation
                   else "all of it (no validation: the last epoch's weights are scored); ")
                + "test make_moons(5000, noise=0.05, random_state=1)",
        "true_density_test_nll": 0.300,
        "recipe": {k: getattr(args, k) for k in ("kind", "init", "made_init", "layers", "hidden", "bins", "bound",
                                                 "batch_size", "learning_rate", "epochs", "cpu_budget", "threads",
                                                 "ema", "validation", "steps_per_execution")},
        "seeds": [r["seed"] for r in runs],
        "runs": runs,
        "machine": machine(),
    }
    for side in ("flowlab", "zuko"):
        done = [r[side] for r in runs if r[side]]
        if done:
            summary[side] = {key: spread([d[key] for d in done]) for key in
                             ("test_nll", "train_cpu_seconds", "train_wall_seconds", "steps_per_cpu_second")}
            for which in done[0]["selections"]:  # the same trajectories, selected with and without the EMA
                summary[side][f"test_nll_{which}"] = spread([d["selections"][which]["test_nll"] for d in done])
                if args.validation:
                    summary[side][f"validation_nll_{which}"] = spread(
                        [d["selections"][which]["validation_nll"] for d in done])
    if "zuko" in summary:
        ratios = [r["flowlab"]["steps_per_cpu_second"] / r["zuko"]["steps_per_cpu_second"] for r in runs if r["zuko"]]
        summary["steps_per_cpu_second_ratio_flowlab_over_zuko"] = spread(ratios)
    return summary


# --- the face ------------------------------------------------------------------------------------------------------

def face_flows(quick: bool) -> dict:
    """name -> (builder, peak learning rate, epochs, batch size): the lab's flows at the face."""
    from flowlab.flows import build_coupling_flow, build_ffjord, build_maf, build_nice, build_nsf, build_realnvp
    from flowlab.transformers import MixtureCDFTransformer

    e = (lambda n: 2) if quick else (lambda n: n)
    return {
        "NICE (6 additive couplings + scaling)": (
            lambda: build_nice(2, n_layers=6, hidden_units=(64, 64)), 2e-3, e(150), 128),
        "RealNVP (6 affine couplings)": (
            lambda: build_realnvp(2, n_layers=6, hidden_units=(64, 64)), 2e-3, e(150), 128),
        "MAF (lab sheet: 3 layers, 128x2)": (
            lambda: build_maf(2, n_layers=3, hidden_units=(128, 128)), 1e-3, e(150), 128),
        "NSF (4 spline couplings, 8 bins)": (
            lambda: build_nsf(2, n_layers=4, hidden_units=(64, 64), kind="coupling"), 3e-3, e(150), 128),
        "NSF-AR (4 spline MADE layers, 8 bins, B=5)": (
            lambda: build_nsf(2, n_layers=4, hidden_units=(64, 64), bound=5.0, kind="autoregressive", zero_init=True),
            3e-3, e(150), 128),
        "mixture-CDF coupling (4 layers, K=8)": (
            lambda: build_coupling_flow(2, MixtureCDFTransformer(8), n_layers=4, hidden_units=(64, 64)),
            3e-3, e(150), 128),
        "FFJORD (64x2 tanh, Hutchinson)": (
            lambda: build_ffjord(2, hidden_units=(64, 64), atol=1e-4, rtol=1e-4), 5e-3, 2 if quick else 12, 256),
    }


def run_face(args) -> dict:
    import numpy as np
    import tensorflow as tf

    import flowlab
    from flowlab.datasets import load_face
    from flowlab.flows.ffjord import build_ffjord, flow_velocity
    from flowlab.training import density_model, fit, negative_log_likelihood

    sys.path.insert(0, str(ROOT / "bench"))
    from face import true_log_prob  # the face's true density, by quadrature over the mouth's arc

    configure_threads(args.threads)
    train, test = load_face(2000, 1000, seed=0)
    truth = -float(np.mean(true_log_prob(test))) / 2
    runs = []
    for seed in args.seeds:
        results = {}
        for name, (build, peak, epochs, batch_size) in face_flows(args.quick).items():
            if args.only and not any(word.lower() in name.lower() for word in args.only):
                continue
            flowlab.seed(seed)
            flow = build()
            epoch_cpu = []

            class Clock(tf.keras.callbacks.Callback):  # cosine decay per epoch; CPU seconds per epoch
                def __init__(self, peak, epochs, epoch_cpu):
                    super().__init__()
                    self.peak, self.epochs, self.epoch_cpu = peak, epochs, epoch_cpu

                def on_epoch_begin(self, epoch, logs=None):
                    lr = self.peak * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
                    self.model.optimizer.learning_rate.assign(lr)
                    self.t = time.process_time()

                def on_epoch_end(self, epoch, logs=None):
                    self.epoch_cpu.append(time.process_time() - self.t)

            cpu0, wall0 = time.process_time(), time.perf_counter()
            model = density_model(flow)
            model.compile(optimizer=tf.keras.optimizers.Adam(peak), loss=negative_log_likelihood)
            build_optimizer(model)
            fit(model, train, epochs=epochs, batch_size=batch_size, callbacks=[Clock(peak, epochs, epoch_cpu)],
                verbose=0)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            scored = flow
            if name.startswith("FFJORD"):  # score with the exact trace: the Hutchinson estimate is noisy
                scored = build_ffjord(2, velocity=flow_velocity(flow), trace="exact", atol=1e-5, rtol=1e-5)
            t = time.process_time()
            nll = -float(np.mean(scored.log_prob(test))) / 2
            score_cpu = time.process_time() - t
            steady = epoch_cpu[1:] or epoch_cpu
            results[name] = {
                "test_nats_per_dim": round(nll, 4),
                "parameters": parameter_count(flow),
                "epochs": epochs,
                "batch_size": batch_size,
                "train_cpu_seconds": round(cpu, 1),
                "train_wall_seconds": round(wall, 1),
                "first_epoch_cpu_seconds": round(epoch_cpu[0], 2),
                "cpu_seconds_per_epoch": round(statistics.mean(steady), 3),
                "test_score_cpu_seconds": round(score_cpu, 2),
            }
            print(f"seed {seed} {name:40s} test {nll:.4f} nats/dim (true {truth:.4f}); {cpu:.0f} CPU s "
                  f"({epoch_cpu[0]:.1f} in epoch 1, then {statistics.mean(steady):.2f}/epoch), {wall:.0f} s wall",
                  flush=True)
        runs.append({"seed": seed, "flows": results, "load_average": os.getloadavg()})
        write(args.out, summary_face(args, truth, runs))
    return summary_face(args, truth, runs)


def summary_face(args, truth: float, runs: list[dict]) -> dict:
    names = list(runs[0]["flows"])
    return {
        "part": "face",
        "data": "flowlab.datasets.load_face(2000, 1000, seed=0)",
        "true_density_test_nats_per_dim": round(truth, 4),
        "seeds": [r["seed"] for r in runs],
        "test_nats_per_dim": {n: spread([r["flows"][n]["test_nats_per_dim"] for r in runs if n in r["flows"]])
                              for n in names},
        "runs": runs,
        "threads": args.threads,
        "machine": machine(),
    }


def machine() -> str:
    import tensorflow as tf

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}; load average at the end {os.getloadavg()}")


def write(path: str, summary: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["moons", "face"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, numbers meaningless")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, the same for TensorFlow and torch")
    parser.add_argument("--out", help="JSON file (default bench/results/beyond_affine_<part>[_quick].json)")
    moons = parser.add_argument_group("moons")
    moons.add_argument("--kind", default="autoregressive", choices=["coupling", "autoregressive"])
    moons.add_argument("--init", default="zero", choices=["zero", "glorot"],
                       help="NSF-AR's MADE output layers: zero (each layer starts as the identity) or TFP's Glorot")
    moons.add_argument("--made-init", default="uniform", choices=["glorot", "uniform"],
                       help="NSF-AR's MADE weights (build_nsf's init): TFP's Glorot kernels and zero biases, or "
                            "PyTorch's (and zuko's) uniform kernels and biases on +-1/sqrt(fan-in) (session 9)")
    moons.add_argument("--layers", type=int, default=4)
    moons.add_argument("--hidden", type=int, default=64)
    moons.add_argument("--bins", type=int, default=8)
    moons.add_argument("--bound", type=float, default=5.0, help="the splines' interval [-B, B] (zuko's: 5)")
    moons.add_argument("--batch-size", type=int, default=256)
    moons.add_argument("--learning-rate", type=float, default=5e-3)
    moons.add_argument("--epochs", type=int, default=70, help="the cosine schedule's length")
    moons.add_argument("--cpu-budget", type=float, default=60.0,
                       help="process CPU seconds of training, tracing included (60: see beyond_affine.md)")
    moons.add_argument("--ema", type=float, default=0.0,
                       help="momentum of the weights' exponential moving average, scored and selected on "
                            "validation on both sides (0: off, the session-7 recipe)")
    moons.add_argument("--validation", type=int, default=1000,
                       help="the last this many training points held out for validation, selecting the best "
                            "epoch (0: none held out, no selection, the last epoch's weights, or with --ema "
                            "their average, are scored)")
    moons.add_argument("--steps-per-execution", type=int, default=1,
                       help="flowlab's training steps per call of Keras's traced function (session 9: 6)")
    moons.add_argument("--zuko-python", default=os.environ.get("ZUKO_PYTHON", DEFAULT_ZUKO_PYTHON))
    moons.add_argument("--no-zuko", action="store_true")
    face = parser.add_argument_group("face")
    face.add_argument("--only", nargs="+", help="only the face flows whose names contain one of these words")
    args = parser.parse_args()
    if not 0 <= args.validation < 10000:
        parser.error(f"--validation {args.validation}: must be between 0 and 9999 (the training set has 10,000 points)")
    if args.quick:
        args.epochs, args.cpu_budget = 2, 1e9
    name = f"beyond_affine_{args.part}{'_quick' if args.quick else ''}.json"
    args.out = args.out or str(ROOT / "bench" / "results" / name)
    summary = run_moons(args) if args.part == "moons" else run_face(args)
    write(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("runs",)}, indent=2))


if __name__ == "__main__":
    main()
