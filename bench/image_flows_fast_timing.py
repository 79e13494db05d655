"""Lab 07: process CPU seconds of every code cell of the solution notebook in fast mode.

Runs the code cells of ``solutions/07_image_flows.ipynb`` in order in this one process (as a kernel would,
minus IPython), with ``FLOWLAB_FAST=1`` and Matplotlib's Agg backend, and prints each cell's wall and
process CPU seconds (``time.process_time``: both cores counted, independent of other jobs' load) and the
totals.  On the shared machine the wall-clock column is mostly waiting; the CPU column is the measure.

    FLOWLAB_FAST=1 nice -n 10 .venv/bin/python bench/image_flows_fast_timing.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["FLOWLAB_FAST"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import nbformat  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default="solutions/07_image_flows.ipynb")
    args = parser.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    namespace: dict = {}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        exec(compile(cell.source, f"<{cell.get('id')}>", "exec"), namespace)  # noqa: S102 - the lab's own cells
        print(f"{cell.get('id'):18s} wall {time.perf_counter() - wall:6.1f} s   CPU {time.process_time() - cpu:6.1f} s",
              file=sys.stderr, flush=True)
    print(f"{'total':18s} wall {time.perf_counter() - wall0:6.1f} s   CPU {time.process_time() - cpu0:6.1f} s",
          file=sys.stderr)
    print({name: round(value, 3) for name, value in namespace.get("results", {}).items()}, file=sys.stderr)


if __name__ == "__main__":
    main()
