"""The PyTorch side of ``bench/beyond_affine.py``: zuko's neural spline flow on two moons.

Run by ``beyond_affine.py`` with the Python of a separate virtual environment that has torch and zuko
(torch is never a flowlab dependency)::

    python3 -m venv /work/team/zuko-venv
    /work/team/zuko-venv/bin/pip install torch==2.13.0 zuko numpy scikit-learn
    /work/team/zuko-venv/bin/python bench/zuko_nsf.py --seed 0 --transforms 4 --hidden 64 --epochs 40

The recipe mirrors flowlab's side exactly: the same data (train ``make_moons(10000, noise=0.05,
random_state=0)``, its last 1,000 points held out for validation; test ``make_moons(5000, noise=0.05,
random_state=1)``), the same batch size, Adam with the same peak learning rate and cosine decay per
epoch, the same number of epochs, a budget in process CPU seconds, and the epoch with the best
validation NLL kept (the test set is scored once per selection, at the end). With ``--ema m`` the
weights' exponential moving average is kept as tf-keras's Adam keeps it on flowlab's side (``average =
m * average + (1 - m) * weights`` after every step, starting from the initial weights), scored on
validation every epoch beside the trained weights, and its best epoch is the reported flow.
``--validation 0``: all points train, nothing is selected, and the last epoch's weights (with ``--ema``,
their average) are the reported flow, the last epoch's trained weights recorded beside it.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch
import zuko
from sklearn.datasets import make_moons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transforms", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--cpu-budget", type=float, default=120.0, help="process CPU seconds of training")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch.set_num_threads)")
    parser.add_argument("--validation", type=int, default=1000,
                        help="the last this many points held out to select the best epoch (0: none, the last epoch)")
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--ema", type=float, default=0.0, help="the moving average's momentum (0: off)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = make_moons(args.train, noise=0.05, random_state=0)[0].astype(np.float32)
    if not 0 <= args.validation < args.train:
        parser.error(f"--validation {args.validation}: must be between 0 and {args.train - 1}")
    # no validation: every point trains and the last epoch is kept (data[:-0] would be empty)
    train = torch.from_numpy(data[: len(data) - args.validation])
    val = torch.from_numpy(data[len(data) - args.validation:]) if args.validation else None
    test = torch.from_numpy(make_moons(5000, noise=0.05, random_state=1)[0].astype(np.float32))

    flow = zuko.flows.NSF(2, transforms=args.transforms, hidden_features=(args.hidden, args.hidden), bins=args.bins)
    params = sum(p.numel() for p in flow.parameters())
    optimizer = torch.optim.Adam(flow.parameters(), lr=args.learning_rate)

    # the moving average lives in a copy of the flow, so that scoring it needs no swapping
    average = copy.deepcopy(flow) if args.ema else None
    averaged = list(average.parameters()) if args.ema else []
    trained = list(flow.parameters())

    def nll(model: torch.nn.Module, x: torch.Tensor) -> float:
        with torch.no_grad():
            return -float(model().log_prob(x).mean())

    # "raw": the trained weights; "ema": their moving average. Each keeps its best validation epoch.
    best = {"raw": [math.inf, None, -1], "ema": [math.inf, None, -1]}
    curve = {"raw": [], "ema": []}
    models = {"raw": flow, "ema": average}
    steps, epochs_run = 0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    train_cpu = 0.0  # CPU seconds in training steps only (for steps per CPU second)
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:  # cosine decay per epoch, as on flowlab's side
            group["lr"] = args.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
        order = torch.from_numpy(rng.permutation(len(train)))
        step_cpu = time.process_time()
        for start in range(0, len(train), args.batch_size):
            batch = train[order[start:start + args.batch_size]]
            loss = -flow().log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if args.ema:
                with torch.no_grad():  # average += (1 - m) * (weights - average), i.e. m * average + (1 - m) * w
                    torch._foreach_lerp_(averaged, trained, 1.0 - args.ema)
            steps += 1
        train_cpu += time.process_time() - step_cpu
        epochs_run += 1
        scored = ("raw", "ema") if args.ema else ("raw",)
        for which in scored if val is not None else ():  # nothing to score without validation
            score = nll(models[which], val)
            curve[which].append(round(score, 4))
            if score < best[which][0]:
                best[which] = [score, copy.deepcopy(models[which].state_dict()), epoch]
        if time.process_time() - cpu0 > args.cpu_budget:
            break
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    selections = {}
    for which in ("raw", "ema") if args.ema else ("raw",):
        if val is None:  # the last epoch's weights, as trained or averaged
            selections[which] = {"validation_nll": None, "best_epoch": epochs_run - 1,
                                 "test_nll": round(nll(models[which], test), 4), "validation_curve": []}
            continue
        flow.load_state_dict(best[which][1])
        selections[which] = {"validation_nll": round(best[which][0], 4), "best_epoch": best[which][2],
                             "test_nll": round(nll(flow, test), 4), "validation_curve": curve[which]}
    chosen = selections["ema" if args.ema else "raw"]
    print(json.dumps({
        "library": f"zuko {zuko.__version__}, torch {torch.__version__}",
        "seed": args.seed,
        "parameters": params,
        "epochs": epochs_run,
        "best_epoch": chosen["best_epoch"],
        "steps": steps,
        "train_cpu_seconds": round(cpu, 2),
        "train_wall_seconds": round(wall, 2),
        "step_cpu_seconds": round(train_cpu, 2),
        "steps_per_cpu_second": round(steps / train_cpu, 2),
        "validation_nll": chosen["validation_nll"],
        "test_nll": chosen["test_nll"],
        "selections": selections,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
