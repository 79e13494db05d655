"""Benchmark lab 02 in full mode: the time the solution notebook takes end to end, and the
trained MAF's test NLL on a fresh ``make_moons(5000, noise=0.05, random_state=1)``.

The notebook is executed as a student would run it (a fresh kernel, every cell), with one cell
appended that scores the trained flow on the benchmark's test set. Run from the repository root:

    .venv/bin/python bench/two_moons.py --runs 3            # writes bench/results/two_moons.json
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


def run_once(fast: bool) -> tuple[float, float]:
    notebook = nbformat.read(ROOT / "solutions" / "02_two_moons.ipynb", as_version=4)
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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="fast mode instead of full mode")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "two_moons.json"))
    args = parser.parse_args()
    results = [run_once(args.fast) for _ in range(args.runs)]
    for i, (seconds, nll) in enumerate(results, 1):
        print(f"run {i}: notebook {seconds:.1f} s, test NLL {nll:.4f} nats", flush=True)
    summary = {
        "mode": "fast" if args.fast else "full",
        "runs": args.runs,
        "notebook_seconds_median": statistics.median(s for s, _ in results),
        "notebook_seconds": [s for s, _ in results],
        "test_nll_nats": [n for _, n in results],
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
