"""Lab 05 benchmarks: exact KL(q||p) on Rezende & Mohamed's energies, and the lecture's flow-VAE table.

Each run appends one JSON line to ``bench/results/variational_<part>.jsonl`` (partial runs count).

    nice -n 10 .venv/bin/python bench/variational.py energies --flows planar --ks 2 8 32 --seeds 0
    nice -n 10 .venv/bin/python bench/variational.py energies --flows radial householder orthogonal triangular iaf \\
        --ks 32 --seeds 0 1 2
    .venv/bin/python bench/variational.py table --flows planar radial householder orthogonal triangular iaf \\
        --ks 2 8 32                                       # the markdown table of what the runs above wrote
    nice -n 10 .venv/bin/python bench/variational.py vae --flows none planar iaf householder triangular orthogonal \
        --ks 1 2 5 10 --seeds 0 1 2

Recipe (energies): q0 = N(0, I), K flows, Adam 1e-2 (IAF 2e-3), clip 10, 256 samples per step, 2000 steps,
the target annealed over the first 1000 (beta_t = min(1, 0.01 + t/1000)); KL from 20,000 samples + grid log Z.
Recipe (VAE): 100 x 3 data from N(1, 0.5^2), latent 2, MLPs 32-32 tanh, Adam 1e-3, batch 32, 300 epochs;
KL between histograms (10 bins on the input's range) of the input and of 10,000 generated points, summed
over the 3 features.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import flowlab
from flowlab import variational as V
from flowlab.datasets.energies import energy_log_prob, log_normalizer
from flowlab.training import TrainingDiverged

RESULTS = Path(__file__).resolve().parent / "results"


def _recipe(kind: str, args: argparse.Namespace) -> dict:
    """What distinguishes one recipe's rows from another's (rows of earlier recipes stay in the file)."""
    if kind == "iaf":
        return dict(learning_rate=args.iaf_lr, log_scale_bound=V.IAF_LOG_SCALE_BOUND)
    return dict(learning_rate=1e-2)


def _same_recipe(row: dict, kind: str, args: argparse.Namespace) -> bool:
    # Rows written before a field existed carry the recipe of their day: IAF at 2e-3 with free log-scales.
    defaults = dict(learning_rate=2e-3 if kind == "iaf" else 1e-2, log_scale_bound=None)
    return all(row.get(key, defaults[key]) == value for key, value in _recipe(kind, args).items())


def _energy_rows(args: argparse.Namespace) -> list[dict]:
    """The rows of ``variational_energies.jsonl`` written by the recipe ``args`` asks for."""
    out = RESULTS / "variational_energies.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines() if line] if out.exists() else []
    return [r for r in rows if _same_recipe(r, r["flow"], args)]


def energies(args: argparse.Namespace) -> None:
    out = RESULTS / "variational_energies.jsonl"
    done = set()
    if args.resume:
        done = {(r["target"], r["flow"], r["K"], r["seed"], r["steps"]) for r in _energy_rows(args)}
    for seed in args.seeds:
        for k in args.ks:
            for kind in args.flows:
                for name in args.targets:
                    if (name, kind, k, seed, args.steps) in done:
                        continue
                    flowlab.seed(seed)
                    target, log_z = energy_log_prob(name), log_normalizer(name)
                    q = V.build_vi_flow(kind, dims=2, n_flows=k, hidden_units=(32, 32))
                    start, cpu_start = time.perf_counter(), time.process_time()
                    recipe = _recipe(kind, args)
                    try:
                        V.fit_variational(q, target, steps=args.steps, n_samples=256,
                                          learning_rate=recipe["learning_rate"], annealing_steps=args.steps // 2,
                                          verbose=0)
                        kl = None
                    except TrainingDiverged:  # recorded as such; the sweep goes on
                        kl = float("inf")
                    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
                    kl = V.exact_kl(q, target, log_z, 20000, seed=seed) if kl is None else kl
                    row = dict(target=name, flow=kind, K=k, seed=seed, steps=args.steps, kl=kl, seconds=seconds,
                               cpu_seconds=cpu_seconds, **recipe)
                    print(json.dumps(row), flush=True)
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")


def vae(args: argparse.Namespace) -> None:
    out = RESULTS / "variational_vae.jsonl"
    x = V.lecture_data()
    for seed in args.seeds:
        for kind in args.flows:
            for k in ([0] if kind == "none" else args.ks):
                flowlab.seed(seed)
                model = V.FlowVAE(3, latent_dim=2, flow=None if kind == "none" else kind, n_flows=k)
                start = time.perf_counter()
                history = V.fit_vae(model, x, epochs=args.epochs, verbose=0)
                seconds = time.perf_counter() - start
                kl = V.feature_kl(x, model.generate(10000, seed=seed))
                row = dict(flow=kind, K=k, seed=seed, epochs=args.epochs, kl=kl,
                           loss=float(history.history["loss"][-1]), seconds=seconds)
                print(json.dumps(row), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


def table(args: argparse.Namespace) -> None:
    """Markdown of the energies rows: KL median (min - max over seeds) and median CPU seconds per run.

    Only the runs of the recipe asked for (``--iaf-lr`` and the library's IAF bound for IAF); a diverged run
    counts as KL = inf.
    """
    rows = [r for r in _energy_rows(args)
            if r["flow"] in args.flows and r["K"] in args.ks and r["target"] in args.targets]
    print("| flow | K | " + " | ".join(args.targets) + " | CPU s per run (median) |")
    print("|---|---|" + "---|" * (len(args.targets) + 1))
    for kind in args.flows:
        for k in args.ks:
            cells, cpu = [], []
            for name in args.targets:
                kls = sorted(r["kl"] for r in rows if (r["flow"], r["K"], r["target"]) == (kind, k, name))
                cpu += [r["cpu_seconds"] for r in rows if (r["flow"], r["K"], r["target"]) == (kind, k, name)
                        and "cpu_seconds" in r]
                if not kls:
                    cells.append("–")
                elif len(kls) == 1:
                    cells.append(f"{kls[0]:.3f} (1 seed)")
                else:
                    cells.append(f"{np.median(kls):.3f} ({kls[0]:.3f}–{kls[-1]:.3f}, {len(kls)} seeds)")
            if any(c != "–" for c in cells):
                seconds = f"{np.median(cpu):.0f}" if cpu else "–"
                print(f"| {kind} | {k} | " + " | ".join(cells) + f" | {seconds} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["energies", "vae", "table"])
    parser.add_argument("--flows", nargs="+", default=["planar"])
    parser.add_argument("--ks", nargs="+", type=int, default=[32])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--targets", nargs="+", default=["U1", "U2", "U3", "U4"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--iaf-lr", type=float, default=2e-3, help="Adam's learning rate for IAF (others: 1e-2)")
    parser.add_argument("--resume", action="store_true", help="skip the runs the results file already holds")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    {"energies": energies, "vae": vae, "table": table}[args.part](args)


if __name__ == "__main__":
    main()
