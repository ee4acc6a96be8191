"""Cost of one step of the constrained trajectory θ† against one exact GD step.

Run as a script: ``python benchmarks/bench_projection.py``. On a second-order regression
model with d = 100 it times, in microseconds per step,

- one GD step (the compiled engine, amortised over a run of many steps),
- one θ† step with the Euclidean projection (SQP to tolerance),
- one θ† step with the paper's three-pass linearised projection,

each measured in this run, and prints the ratios. A θ† step is a GD step plus a projection;
each projection iteration needs a full Hessian eigendecomposition (for the exact gradient of
u·∇L) and two third-derivative contractions.

BLAS runs single-threaded (set before NumPy loads): a 100 × 100 ``eigh`` is too small to gain
from threads, and on a shared machine threaded BLAS made it 4x slower here.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from stabsim.losses import QuadraticRegression  # noqa: E402
from stabsim.maps.constrained import constrained_trajectory  # noqa: E402
from stabsim.maps.gd import run_gd  # noqa: E402

D, N = 100, 10


def per_step(fn, steps, repeat=3):
    """Best wall time per step (µs) over ``repeat`` runs of ``fn(steps)``."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn(steps)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / steps


def main():
    loss = QuadraticRegression.random(D, N, seed=0)
    theta0 = np.zeros(D)
    eta = 2.0 / (1.2 * np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    # start where GD first reaches 2/η, as the comparison does
    gd = run_gd(loss, theta0, eta, 2000, record_trajectory=True)
    start = gd.trajectory[gd.crossing_step] if gd.crossing_step is not None else theta0

    def gd_steps(n):
        # stride=n: records (loss, gradient norm, sharpness) at the first and last steps only;
        # the n - 1 steps between are plain updates
        run_gd(loss, start, eta, n, find_crossing=False, stride=n)

    def dagger(method):
        return lambda n: constrained_trajectory(loss, start, eta, n, projection=method)

    gd_steps(10)  # compile
    t_gd = per_step(gd_steps, 20000)
    t_euclid = per_step(dagger("euclidean"), 200)
    t_paper = per_step(dagger("paper"), 200)
    iters = constrained_trajectory(loss, start, eta, 200).n_iter[1:].mean()
    print(f"regression model d = {D}, n = {N}, eta = {eta:.4g}")
    print(f"GD step (compiled engine, records first/last step only):   {t_gd:10.2f} µs")
    print(f"theta-dagger step, Euclidean projection ({iters:.2f} its):     {t_euclid:10.1f} µs"
          f"   x{t_euclid / t_gd:8.1f} GD")
    print(f"theta-dagger step, paper's three passes:                {t_paper:10.1f} µs"
          f"   x{t_paper / t_gd:8.1f} GD")
    print(f"Euclidean / three-pass: {t_euclid / t_paper:.2f}")


if __name__ == "__main__":
    main()
