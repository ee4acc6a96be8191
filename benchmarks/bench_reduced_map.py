"""Speed of the reduced (x, y) map over an ensemble, against NumPy and JAX baselines.

Run with ``python benchmarks/bench_reduced_map.py [n_trajectories] [steps]`` (defaults
100,000 × 1,000). Reports ns per trajectory-step for

- stabsim, final states only (``run_reduced_ensemble``),
- stabsim, with per-trajectory cycle statistics (``stats=True``),
- NumPy vectorised over the ensemble (the same expression, so its result is the reference),
- JAX ``jit(vmap(lax.scan))`` in float64, if ``import jax`` works (the ``bench`` extra),

and the floating-point limit: flops per step divided by the machine's measured peak
(a large float64 matmul), plus cold (empty cache: compile) and warm (cached) first-call
times measured in fresh processes. A benchmark, not a test: it never fails on timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from stabsim.maps.reduced import run_reduced_ensemble

#: x: η·y, 1 + ·, · × x (negation is free); y: x·x, (ηβ/2)·x², ηα − ·, y + ·
FLOPS_PER_STEP = 7


def ensemble(n, seed=0):
    """Starts and parameters whose orbits stay in the validity domain for ~10^3 steps."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.3, 1.2, n), rng.uniform(-0.3, 0.3, n), rng.uniform(0.005, 0.02, n),
            np.ones(n), np.full(n, 2.0))


def best_of(fn, repeats=3):
    """Smallest wall time of ``repeats`` calls, and the last result."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def numpy_map(x0, y0, eta, alpha, beta, steps):
    """The map vectorised over the ensemble, in the kernels' expression order."""
    x, y = x0.copy(), y0.copy()
    ea, hb = eta * alpha, eta * beta * 0.5
    for _ in range(steps):
        x, y = -(1.0 + eta * y) * x, y + (ea - hb * (x * x))
    return x, y


def jax_map(steps):
    """A jitted JAX ensemble map (vmap over trajectories of a lax.scan), or None."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def one(x, y, eta, ea, hb):
        def body(carry, _):
            x, y = carry
            return (-(1.0 + eta * y) * x, y + (ea - hb * (x * x))), None

        return jax.lax.scan(body, (x, y), None, length=steps)[0]

    run = jax.jit(jax.vmap(one))

    def call(x0, y0, eta, alpha, beta):
        x, y = run(x0, y0, eta, eta * alpha, eta * beta * 0.5)
        return np.asarray(x.block_until_ready()), np.asarray(y)

    return call


def peak_gflops(n=2048, repeats=3):
    """Measured float64 peak: GFLOP/s of an n × n matmul (all cores, BLAS)."""
    a = np.random.default_rng(1).standard_normal((n, n))
    a @ a
    t, _ = best_of(lambda: a @ a, repeats)
    return 2.0 * n ** 3 / t / 1e9


FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from stabsim.maps.reduced import run_reduced_ensemble
t1 = time.perf_counter()
run_reduced_ensemble(np.ones(1000), 0.0, 0.01, 1.0, 2.0, 100, stats={stats})
print(t1 - t0, time.perf_counter() - t1)
"""


def first_call(stats, cache_dir):
    """(import, first call) seconds in a fresh process with the given Numba cache dir."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", FIRST_CALL.format(stats=stats)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(n=100_000, steps=1000):
    args = ensemble(n)
    per_step = 1e9 / (n * steps)
    print(f"reduced map: {n:,} trajectories x {steps:,} steps, {os.cpu_count()} cores")

    run_reduced_ensemble(*args, 10)  # compile (or load from cache) outside the timing
    run_reduced_ensemble(*args, 10, stats=True)
    t_final, final = best_of(lambda: run_reduced_ensemble(*args, steps))
    t_stats, stats = best_of(lambda: run_reduced_ensemble(*args, steps, stats=True))
    t_np, (x_np, y_np) = best_of(lambda: numpy_map(*args, steps), repeats=1)

    assert final.success and stats.success, (final.counters, stats.counters)
    for res in (final, stats):  # same IEEE operations, no contraction: bitwise
        assert np.array_equal(res.x_final, x_np) and np.array_equal(res.y_final, y_np)
    rows = [("stabsim, final states", t_final), ("stabsim, + cycle statistics", t_stats),
            ("NumPy (vectorised over the ensemble)", t_np)]

    jax_call = jax_map(steps)
    if jax_call is None:
        print("JAX: not installed (pip install 'jax[cpu]'), skipped")
    else:
        jax_call(*args)  # compile
        t_jax, (x_j, y_j) = best_of(lambda: jax_call(*args))
        # XLA may fuse multiply-adds: agreement to a few hundred ulps of a 10^3-step orbit
        err = max(np.max(np.abs(x_j - x_np)), np.max(np.abs(y_j - y_np)))
        print(f"JAX vs NumPy: max abs difference {err:.2e}")
        assert err < 1e-9
        rows.append(("JAX jit(vmap(lax.scan)), float64", t_jax))

    gflops = peak_gflops()
    limit = FLOPS_PER_STEP / gflops  # ns per step at the measured peak
    print(f"{'variant':40s} {'ns/step':>9s} {'x final':>9s} {'x limit':>9s}")
    for name, t in rows:
        ns = t * per_step
        print(f"{name:40s} {ns:9.3f} {ns / (t_final * per_step):9.2f} {ns / limit:9.2f}")
    print(f"flops per step: {FLOPS_PER_STEP}; measured peak (float64 matmul): {gflops:.1f} "
          f"GFLOP/s -> floating-point limit {limit:.3f} ns/step")
    for name, t in rows[2:]:
        print(f"stabsim final states is {t / t_final:.1f}x faster than {name}")
    print(f"cycle statistics cost {t_stats / t_final:.2f}x final states")

    with tempfile.TemporaryDirectory() as empty:
        for label, flag in (("final states", False), ("cycle statistics", True)):
            imp, cold = first_call(flag, empty)
            _, warm = first_call(flag, empty)
            print(f"first call ({label}): cold {cold:.2f} s (compile), warm {warm:.3f} s "
                  f"(cached; import {imp:.2f} s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
