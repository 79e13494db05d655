"""Lab 05's trained-flow check: KL(q_K || p) / KL(q_0 || p) on U1 for the notebook's fast-mode recipe.

    nice -n 10 .venv/bin/python bench/check_margins_variational.py

Fast mode trains K = 2 planar flows for 150 steps (Adam 1e-2, 256 samples, annealed over 75); the check
passes below flowlab.checks.variational.TRAINED_KL_RATIO. Wrong answers: the untrained flow, and the
flow trained with the estimator's sign flipped (maximising the KL).
"""

import flowlab
from flowlab import variational as V
from flowlab.checks.variational import TRAINED_KL_RATIO
from flowlab.datasets.energies import energy_log_prob, log_normalizer

target, log_z = energy_log_prob("U1"), log_normalizer("U1")


def ratio(q):
    return V.exact_kl(q, target, log_z, 20000) / V.exact_kl(q.distribution, target, log_z, 20000)


rows = {"trained (fast recipe)": [], "untrained": [], "sign flipped": []}
for seed in range(5):
    flowlab.seed(seed)
    q = V.build_vi_flow("planar", dims=2, n_flows=2)
    rows["untrained"].append(ratio(q))
    V.fit_variational(q, target, steps=150, learning_rate=1e-2, annealing_steps=75, verbose=0)
    rows["trained (fast recipe)"].append(ratio(q))
    flowlab.seed(seed)
    q = V.build_vi_flow("planar", dims=2, n_flows=2)
    V.fit_variational(q, target, steps=150, learning_rate=1e-2, annealing_steps=75, verbose=0,
                      estimator=lambda q, t, n: -V.negative_elbo(q, t, n))
    rows["sign flipped"].append(ratio(q))
print(f"threshold: ratio < {TRAINED_KL_RATIO}")
for name, values in rows.items():
    print(f"{name:24s} min {min(values):.3f}  max {max(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")
