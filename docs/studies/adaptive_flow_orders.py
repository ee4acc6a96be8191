"""The Scalar RMSProp central flow against the optimiser after the edge, at several η.

The table "Order in η after the entry" of docs/adaptive.md: Scalar RMSProp on
``Network((4, 3), data="sine", n_samples=10)`` from ``init(seed=0)``, β₂ = 0.99, ν₀ = |∇L(w₀)|²,
to the horizon η t = 30, beside its central flow (rtol 1e-8, saved every 10 steps). At each
saved step k with 5 ≤ k ≤ n − 5 the optimiser's averages over steps k − 5 … k + 4 (whole
period-2 cycles) are set beside the flow at k; errors after the flow's entry into the edge
of stability are RMS over those steps, errors before it the maximum.

    python docs/studies/adaptive_flow_orders.py [eta ...]   (default 0.04 0.02 0.01 0.005)

The column "fitted order" (the least-squares slope of log error on log η) is printed for two
step sizes or more; with one, the table has its errors only.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from stabsim.demo.report import fitted_order
from stabsim.flows.adaptive import scalar_rmsprop_flow
from stabsim.losses import Network
from stabsim.maps.adaptive import run_adaptive

BETA2, HORIZON = 0.99, 30.0
NAMES = {"rms_w": "RMS distance in weights", "max_w": "max distance in weights",
         "nu": "RMS relative error of ν",
         "loss": "RMS relative error of the loss against L + ½σ²S",
         "loss_alone": "the same against L(w) alone",
         "seff": "RMS of ηS(w)/(2√ν̄) − 1 (ν̄ the optimiser's mean)",
         "before_w": "before the entry: max distance in weights",
         "before_nu": "before the entry: max relative error of ν",
         "before_loss": "before the entry: max relative error of the loss"}


def errors(eta: float) -> dict:
    """The errors of the module docstring at step size ``eta``, and the entry step."""
    net = Network((4, 3), data="sine", n_samples=10)
    w0 = net.init(seed=0)
    g0 = net.grad(w0)
    nu0 = float(g0 @ g0)
    n = round(HORIZON / eta)
    disc = run_adaptive(net, w0, eta, n, method="scalar_rmsprop", beta2=BETA2, nu0=nu0,
                        record_trajectory=True)
    flow = scalar_rmsprop_flow(net, w0, nu0, eta, BETA2, float(n), stride=10.0, rtol=1e-8,
                               atol=1e-11)
    if not flow.success or len(flow.entry_steps) != 1:
        raise RuntimeError(f"η = {eta}: {flow.status} {flow.message}, entries "
                           f"{flow.entry_steps}")
    k = flow.step.astype(int)
    k = k[(k >= 5) & (k + 5 <= n)]
    rows = np.searchsorted(flow.step, k)
    after = k > flow.entry_steps[0]
    mean_nu = np.array([disc.nu_trajectory[t - 5:t + 5, 0].mean() for t in k])
    mean_w = np.array([disc.trajectory[t - 5:t + 5].mean(0) for t in k])
    mean_loss = np.array([disc.loss[t - 5:t + 5].mean() for t in k])
    distance = np.linalg.norm(mean_w - flow.trajectory[rows], axis=1)
    rel_nu = mean_nu / flow.nu[rows] - 1.0
    rel_loss = mean_loss / flow.predicted_loss[rows] - 1.0

    def rms(a):
        return float(np.sqrt(np.mean(a[after] ** 2)))

    return {"entry": float(flow.entry_steps[0]), "rms_w": rms(distance),
            "max_w": float(distance[after].max()), "nu": rms(rel_nu), "loss": rms(rel_loss),
            "loss_alone": rms(mean_loss / flow.loss[rows] - 1.0),
            "seff": rms(eta * flow.sharpness[rows] / (2.0 * np.sqrt(mean_nu)) - 1.0),
            "before_w": float(distance[~after].max()),
            "before_nu": float(np.abs(rel_nu[~after]).max()),
            "before_loss": float(np.abs(rel_loss[~after]).max())}


def main(etas):
    results = []
    for eta in etas:
        start = time.process_time()
        results.append(errors(eta))
        print(f"η = {eta}: entry at step {results[-1]['entry']:.1f}, "
              f"{time.process_time() - start:.1f} s of CPU", flush=True)
    fit = len(etas) >= 2  # an order needs two step sizes at least
    print("| | " + " | ".join(f"η = {eta:g}" for eta in etas)
          + (" | fitted order |" if fit else " |"))
    print("|---" * (len(etas) + 1 + fit) + "|")
    for key, name in NAMES.items():
        values = [r[key] for r in results]
        print(f"| {name} | " + " | ".join(f"{v:.3g}" for v in values)
              + (f" | {fitted_order(etas, values):.2f} |" if fit else " |"))


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [0.04, 0.02, 0.01, 0.005])
