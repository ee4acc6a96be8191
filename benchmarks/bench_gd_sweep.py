"""A 100 × 100 (η, initial scale) phase diagram of GD on the minimalist loss, sharpness every step.

2,000 steps per cell, 2·10⁷ gradient steps in all, through ``run_sweep`` (the generic engine
on the loss protocol, with its measurement for d ≤ 2: the closed-form top eigenvalue of the
dense 2 × 2 Hessian; every statistic of ``stabsim.sweep.gd_cells``, the classification and
the netCDF store included), beside a hand-written Numba ``prange`` kernel that computes the same
statistics with the same closed form, in the same process, each timed as the best of five
runs. Prints steps/s for both (the engine stops a cell when it diverges, the hand-written
kernel runs every cell to its end), the ratio of their times, and the largest relative
difference between the two sets of statistics (the same formulas in another order: round-off).

    python benchmarks/bench_gd_sweep.py [--n 100] [--steps 2000]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numba
import numpy as np
from _timing import best_of

from stabsim.sweep import SweepConfig, run_sweep

DIRECTION = (0.6, 1.9)  # θ0 = scale · (0.6, 1.9), as the sweep forms it
REPEAT = 5  # each side's best of this many runs: the wall time of one run varies by ±20%


def config(n: int, steps: int) -> SweepConfig:
    return SweepConfig(model="gd", method="gd", steps=steps, loss={"name": "minimalist"},
                       params={"theta0": list(DIRECTION)},
                       grid={"eta": {"start": 0.01, "stop": 0.2, "num": n},
                             "scale": {"start": 0.5, "stop": 3.0, "num": n}})


@numba.njit(parallel=True, cache=True)
def hand_written(eta, scale, direction, steps, window, out):
    """GD on ¼(x²y² − 1)² per cell; out[c] = (L0, L_final, L_peak, r_final, r_mean, r_max)."""
    n = eta.shape[0]
    for c in numba.prange(n):
        x, y = scale[c] * direction[0], scale[c] * direction[1]
        late = (steps + 1) - max(1, math.ceil(window * (steps + 1)))
        peak, r_max, r_sum, r = 0.0, -np.inf, 0.0, 0.0
        first_loss = 0.0
        loss = 0.0
        for t in range(steps + 1):
            q = x * y
            res = q * q - 1.0
            loss = 0.25 * res * res
            hxx = 2.0 * q * q * y * y + res * y * y
            hxy = 2.0 * q * q * q + 2.0 * res * q
            hyy = 2.0 * q * q * x * x + res * x * x
            h = 0.5 * (hxx - hyy)
            top = 0.5 * (hxx + hyy) + math.hypot(h, hxy)
            r = 0.5 * top * eta[c]
            if t == 0:
                first_loss = loss
                peak = loss
            peak = max(peak, loss)
            r_max = max(r_max, r)
            if t >= late:
                r_sum += r
            if t < steps:
                gx, gy = res * q * y, res * q * x
                x -= eta[c] * gx
                y -= eta[c] * gy
        out[c, 0] = first_loss
        out[c, 1] = loss
        out[c, 2] = peak
        out[c, 3] = r
        out[c, 4] = r_sum / (steps + 1 - late)
        out[c, 5] = r_max


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="grid points per axis")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    cfg = config(args.n, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        run_sweep(config(2, 10), Path(tmp) / "warm.nc", progress=False)  # load kernels
        runs = []  # each run into a new store (an existing one would be resumed, not run)
        t_engine = best_of(lambda: runs.append(run_sweep(
            cfg, Path(tmp) / f"gd{len(runs)}.nc", progress=False).to_xarray()), REPEAT)
        ds = runs[-1]
    eta = np.repeat(np.linspace(0.01, 0.2, args.n), args.n)
    scale = np.tile(np.linspace(0.5, 3.0, args.n), args.n)
    direction = np.array(DIRECTION)
    out = np.empty((eta.size, 6))
    hand_written(eta[:4], scale[:4], direction, 10, cfg.window, out[:4])  # compile/load
    t_hand = best_of(lambda: hand_written(eta, scale, direction, args.steps, cfg.window, out),
                     REPEAT)
    ok = ds["status"].values.ravel() == 0
    names = ("initial_loss", "final_loss", "peak_loss", "final_rel_sharpness",
             "mean_rel_sharpness", "max_rel_sharpness")
    worst = 0.0
    for k, name in enumerate(names):
        ours = ds[name].values.ravel()[ok]
        theirs = out[ok, k]
        worst = max(worst, float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs),
                                                                             1e-300))))
    total = float(ds["steps_run"].sum())
    print(f"{args.n} x {args.n} cells, {args.steps} steps, GD on the minimalist loss, "
          f"sharpness every step, {numba.get_num_threads()} threads")
    print(f"  run_sweep (generic engine)   {total / t_engine / 1e6:8.1f} M steps/s "
          f"({t_engine:.2f} s)")
    print(f"  hand-written prange kernel   {eta.size * args.steps / t_hand / 1e6:8.1f} M steps/s "
          f"({t_hand:.2f} s)   ratio {t_engine / t_hand:.2f}x")
    print(f"  cells with status OK: {int(ok.sum())} of {ok.size}; largest relative difference of "
          f"their statistics: {worst:.2e}")


if __name__ == "__main__":
    main()
