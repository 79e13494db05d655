"""fit under MultiWorkerMirroredStrategy: two workers on localhost end with identical weights (issue 15, item 7).

Each worker is what a user runs on each machine of a cluster: the same script, with ``TF_CONFIG``
naming every worker and this one's index. Here both run on this machine, on loopback ports.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

WORKER = textwrap.dedent(
    """
    import sys
    import flowlab
    import numpy as np
    import tensorflow as tf
    from flowlab.flows import build_maf
    from flowlab.training import fit

    strategy = tf.distribute.MultiWorkerMirroredStrategy()   # first: it starts the collective runtime
    flowlab.seed(int(sys.argv[2]))                            # different seeds: the chief's initial weights win
    x = np.random.default_rng(0).normal([1.0, -1.0], 0.5, size=(512, 2)).astype(np.float32)
    with strategy.scope():
        flow = build_maf(2, n_layers=1, hidden_units=(8,))
    before = -float(tf.reduce_mean(flow.log_prob(x)))
    model, history = fit(flow, x, epochs=2, batch_size=64, learning_rate=1e-2, verbose=0, strategy=strategy)
    after = -float(tf.reduce_mean(flow.log_prob(x)))
    np.savez(sys.argv[1], *[v.numpy() for v in model.weights], replicas=strategy.num_replicas_in_sync,
             before=before, after=after, steps=int(model.optimizer.iterations.numpy()))
    """
)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_the_same_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        processes.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"w{index}.npz"), str(index)],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for process in processes:
            _, err = process.communicate(timeout=240)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    results = [np.load(tmp_path / f"w{index}.npz") for index in range(2)]
    weights = [[r[f"arr_{i}"] for i in range(len(r.files) - 4)] for r in results]
    assert len(weights[0]) > 0 and len(weights[0]) == len(weights[1])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    for r in results:
        assert int(r["replicas"]) == 2
        assert int(r["steps"]) == 2 * 512 // 64  # the global batch of 64 is split over the two workers
        assert float(r["after"]) < float(r["before"]) - 0.3, (float(r["before"]), float(r["after"]))
