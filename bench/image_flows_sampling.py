"""Seconds to sample 64 MNIST images from lab 07's models (untrained weights: the cost does not depend on them).

Eager ``sample_images`` and a ``tf.function``-compiled generator (second call), wall and process CPU
seconds, median of 3.  On a loaded machine the CPU seconds are the comparable number.

    nice -n 10 .venv/bin/python bench/image_flows_sampling.py --out bench/results/image_flows_sampling.json
"""

from __future__ import annotations

import argparse
import json
import time

import flowlab  # noqa: F401

# isort: split
import numpy as np
import tensorflow as tf

from flowlab.flows.glow import build_glow, flowpp_coupling
from flowlab.flows.multiscale import build_multiscale_realnvp, sample_images

MODELS = {
    "realnvp (lab 04, 32 filters)": lambda: build_multiscale_realnvp((28, 28, 1), filters=32),
    "glow (5+5+5 steps, 32 filters)": lambda: build_glow((28, 28, 1), steps=5, final_steps=5, filters=32),
    "glow, Flow++ couplings (4 logistics, 2+2+2 steps)": lambda: build_glow(
        (28, 28, 1), steps=2, final_steps=2, filters=32, coupling=flowpp_coupling(4)),
}


def timed(fn, repeats=3):
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/image_flows_sampling.json")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    rows = []
    for name, build in MODELS.items():
        flow = build()
        sample_images(flow, 64, temperature=0.7)  # build every layer
        eager = timed(lambda flow=flow: sample_images(flow, 64, temperature=0.7, seed=1))
        generate = tf.function(flow.bijector.forward)
        z = 0.7 * flow.distribution.sample(64, seed=2)
        generate(z)
        compiled = timed(lambda generate=generate, z=z: generate(tf.identity(z)).numpy())
        rows.append({"model": name, "eager_wall_s": round(eager[0], 3), "eager_cpu_s": round(eager[1], 3),
                     "tf_function_wall_s": round(compiled[0], 3), "tf_function_cpu_s": round(compiled[1], 3),
                     "load_average": round(__import__("os").getloadavg()[0], 2)})
        print(json.dumps(rows[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
