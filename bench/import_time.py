"""Start-up time of ``import flowlab`` and of the ``flowlab`` commands that never need TensorFlow.

Each command runs in a fresh Python process ``--runs`` times; we report the median and the fastest
wall-clock time, the interpreter's own start-up (``python -c pass``) measured in the same run as the
baseline, and whether TensorFlow was loaded. ``import tensorflow`` (with flowlab's quiet import) is
the cost that ``import flowlab``'s lazy loading keeps out of these commands.

    nice -n 10 .venv/bin/python bench/import_time.py --runs 7        # results: bench/import_time.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each probe prints whether TensorFlow got imported, so the table shows which commands stay light.
_TAIL = "; import sys as _s; print('TF' if 'tensorflow' in _s.modules else 'noTF')"


def _cli(args: str) -> str:
    return ("import contextlib, io, sys\nfrom flowlab.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    try:\n        main({args!r}.split())\n    except SystemExit:\n        pass\n" + _TAIL.lstrip("; "))


def probes(labs_dir: str) -> dict[str, str]:
    return {
        "python -c pass (baseline)": "pass" + _TAIL,
        "import flowlab": "import flowlab" + _TAIL,
        "flowlab --help": _cli("--help"),
        "flowlab grade --help": _cli("grade --help"),
        f"flowlab make-labs (writes {len(list((ROOT / 'solutions').glob('*.ipynb')))} labs to a temp dir)":
            _cli(f"make-labs --labs {labs_dir}"),
        "flowlab make-labs --check": _cli("make-labs --check"),
        "import flowlab.training (loads TensorFlow)": "import flowlab.training" + _TAIL,
        "import tensorflow (no flowlab)": "import tensorflow" + _TAIL,
    }


def time_once(code: str) -> tuple[float, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as labs_dir:
        rows = []
        for name, code in probes(labs_dir).items():
            time_once(code)  # warm the file cache
            times, loaded = [], ""
            for _ in range(args.runs):
                seconds, loaded = time_once(code)
                times.append(seconds)
            rows.append((name, statistics.median(times), min(times), loaded))
            print(f"{name:62s} median {statistics.median(times):6.3f} s  min {min(times):6.3f} s  {loaded}",
                  flush=True)
    baseline = rows[0][1]
    print("\n| command | median (s) | fastest (s) | median minus `python -c pass` (s) | TensorFlow loaded |")
    print("|---|---:|---:|---:|---|")
    for name, median, fastest, loaded in rows:
        print(f"| `{name}` | {median:.3f} | {fastest:.3f} | {median - baseline:+.3f} | "
              f"{'yes' if loaded == 'TF' else 'no'} |")


if __name__ == "__main__":
    main()
