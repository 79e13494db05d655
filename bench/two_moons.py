"""Benchmark lab 02 in full mode: the time the solution notebook takes end to end, and the
trained MAF's test NLL on a fresh ``make_moons(5000, noise=0.05, random_state=1)``.

The notebook is executed as a student would run it (a fresh kernel, every cell), with one cell
appended that scores the trained flow on the benchmark's test set. Run from the repository root:

    .venv/bin/python bench/two_moons.py --seeds 0 1 2 3 4     # writes bench/results/two_moons.json

Each run uses another seed in the notebook's ``flowlab.seed(...)`` call (seed 0 is the notebook as
shipped), so the figures show the spread of the recipe, not one lucky draw.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

from flowlab.execute import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
SCORE = """\
_bench_x, _ = make_moons(5000, noise=0.05, random_state=1)
print("BENCH_NLL", float(-tf.reduce_mean(trainable_distribution.log_prob(_bench_x.astype(np.float32)))))
"""


def run_once(fast: bool, seed: int) -> tuple[float, float]:
    notebook = nbformat.read(ROOT / "solutions" / "02_two_moons.ipynb", as_version=4)
    setup = next(c for c in notebook.cells if c.get("id") == "setup")
    if "flowlab.seed(0)" not in setup.source:
        raise SystemExit("bench: the setup cell no longer calls flowlab.seed(0); update the benchmark")
    setup.source = setup.source.replace("flowlab.seed(0)", f"flowlab.seed({seed})")
    notebook.cells.append(new_code_cell(SCORE))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "02_two_moons.ipynb"
        nbformat.write(notebook, path)
        start = time.perf_counter()
        executed = execute_notebook(path, fast=fast)
        seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in executed.cells[-1].outputs if o.get("name") == "stdout")
    nll = float(text.split("BENCH_NLL")[1].split()[0])
    return seconds, nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--fast", action="store_true", help="fast mode instead of full mode")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "two_moons.json"))
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        results.append(run_once(args.fast, seed))
        print(f"seed {seed}: notebook {results[-1][0]:.1f} s, test NLL {results[-1][1]:.4f} nats", flush=True)
    summary = {
        "mode": "fast" if args.fast else "full",
        "seeds": args.seeds,
        "notebook_seconds_median": statistics.median(s for s, _ in results),
        "notebook_seconds": [round(s, 1) for s, _ in results],
        "test_nll_nats": [round(n, 4) for _, n in results],
        "test_nll_median": statistics.median(n for _, n in results),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
