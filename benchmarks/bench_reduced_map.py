"""Speed of the reduced (x, y) map over an ensemble, against NumPy and JAX baselines.

Run with ``python benchmarks/bench_reduced_map.py [n_trajectories] [steps]`` (defaults
100,000 × 1,000). Reports ns per trajectory-step for

- stabsim, final states only (``run_reduced_ensemble``),
- stabsim, with per-trajectory cycle statistics (``stats=True``),
- NumPy vectorised over the ensemble (the same operations in the same order: its result must
  equal stabsim's bitwise),
- JAX ``jit(vmap(lax.scan))`` in float64, if ``import jax`` works (the ``bench`` extra),

and the floating-point limit: flops per step divided by the machine's peak rate for separate
float64 multiplies and adds (half a large matmul's measured rate, which counts each FMA as 2
flops), plus cold (empty cache: compile) and warm (cached) first-call times measured in fresh
processes. A benchmark, not a test: it never fails on timing.

Each baseline runs in a child process once with 1 and once with 2 BLAS/XLA threads
(``_timing.fastest_baseline``) and the faster is reported with its setting; the children save
their final states and the parent checks them against stabsim's (every thread setting). Every
side is timed best of ``REPEATS``; the script prints the threads and the measured CPU/wall
ratio (cores in use) of each side.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _timing import blas_description, fastest_baseline

from stabsim.maps.reduced import run_reduced_ensemble

REPEATS = 3  #: best of, on every side

#: x: η·y, 1 + ·, · × x (negation is free); y: x·x, (ηβ/2)·x², ηα − ·, y + ·
FLOPS_PER_STEP = 7


def ensemble(n, seed=0):
    """Starts and parameters whose orbits stay in the validity domain for ~10^3 steps."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.3, 1.2, n), rng.uniform(-0.3, 0.3, n), rng.uniform(0.005, 0.02, n),
            np.ones(n), np.full(n, 2.0))


def best_of(fn, repeats=REPEATS):
    """Smallest wall time of ``repeats`` calls, the last result, and CPU/wall over all calls
    (the cores the process kept busy)."""
    best, wall, cpu = np.inf, 0.0, 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        best = min(best, time.perf_counter() - t0)
    return best, out, cpu / wall


def numpy_map(x0, y0, eta, alpha, beta, steps):
    """The map vectorised over the ensemble, in the kernels' operation order.

    x' = -(1 + ηy)·x, y' = y + (ηα - (ηβ/2)·x²), written with ``out=`` buffers (no
    temporaries allocated per step; the same 8 passes as the plain expression, and bitwise the
    same result: negating before or after the product rounds the same). NumPy's ufuncs run on
    one core whatever the BLAS thread setting.
    """
    x, y = x0.copy(), y0.copy()
    ea, hb = eta * alpha, eta * beta * 0.5
    u, v = np.empty_like(x), np.empty_like(x)
    for _ in range(steps):
        np.multiply(eta, y, out=u)
        u += 1.0
        u *= x  # (1 + ηy)·x
        np.multiply(x, x, out=v)
        v *= hb
        np.subtract(ea, v, out=v)
        y += v
        np.negative(u, out=x)
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
    """Measured float64 peak: GFLOP/s of an n × n matmul (all cores, BLAS), 2n³ flops, i.e.
    each fused multiply-add counted as 2 flops."""
    a = np.random.default_rng(1).standard_normal((n, n))
    a @ a
    t, _, _ = best_of(lambda: a @ a, repeats)
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


def baseline(name, n, steps, out):
    """Child process: time one baseline best of REPEATS, save its final states to
    ``out``.<threads>.npz, print 'seconds description' (or 'none' without JAX)."""
    args = ensemble(n)
    if name == "numpy":
        run = lambda: numpy_map(*args, steps)  # noqa: E731
        setting = f"BLAS {blas_description()} (the map's ufuncs are single-threaded)"
    else:
        call = jax_map(steps)
        if call is None:
            print("none")
            return
        call(*args)  # compile
        run = lambda: call(*args)  # noqa: E731
        setting = f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '(default: all cores)')}"
    seconds, (x, y), cores = best_of(run)
    np.savez(f"{out}.{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}.npz", x=x, y=y)
    print(f"{seconds!r} {setting}, CPU/wall {cores:.2f}")


def main(n=100_000, steps=1000):
    import numba

    args = ensemble(n)
    per_step = 1e9 / (n * steps)
    print(f"reduced map: {n:,} trajectories x {steps:,} steps, {os.cpu_count()} cores, "
          f"every side best of {REPEATS}")

    run_reduced_ensemble(*args, 10)  # compile (or load from cache) outside the timing
    run_reduced_ensemble(*args, 10, stats=True)
    t_final, final, c_final = best_of(lambda: run_reduced_ensemble(*args, steps))
    t_stats, stats, c_stats = best_of(lambda: run_reduced_ensemble(*args, steps, stats=True))
    assert final.success and stats.success, (final.counters, stats.counters)
    print(f"stabsim: {numba.get_num_threads()} Numba threads, CPU/wall {c_final:.2f} (final "
          f"states), {c_stats:.2f} (cycle statistics)")
    rows = [("stabsim, final states", t_final), ("stabsim, + cycle statistics", t_stats)]

    with tempfile.TemporaryDirectory() as tmp:
        t_np, np_threads, np_setting = fastest_baseline(__file__, "numpy", n, steps,
                                                        f"{tmp}/numpy")
        t_jax, jax_threads, jax_setting = fastest_baseline(__file__, "jax", n, steps,
                                                           f"{tmp}/jax")
        numpy_runs = [np.load(f) for f in sorted(glob.glob(f"{tmp}/numpy.*.npz"))]
        jax_runs = [np.load(f) for f in sorted(glob.glob(f"{tmp}/jax.*.npz"))]
        assert numpy_runs and (t_jax is None or jax_runs)
        # same IEEE operations in the same order, no contraction: bitwise, for every setting
        for got in numpy_runs:
            for res in (final, stats):
                assert np.array_equal(res.x_final, got["x"])
                assert np.array_equal(res.y_final, got["y"])
        print(f"NumPy: {np_threads} BLAS thread(s) faster; {np_setting}; final states "
              f"bitwise equal to stabsim's ({len(numpy_runs)} thread settings)")
        rows.append(("NumPy (vectorised over the ensemble)", t_np))
        if t_jax is None:
            print("JAX: not installed (pip install 'jax[cpu]'), skipped")
        else:
            # XLA may fuse multiply-adds: agreement to a few hundred ulps of a 10^3-step
            # orbit (|x|, |y| ≲ 1.2, ulp ~ 2e-16), so 1e-9 absolute is generous
            err = max(max(np.max(np.abs(got["x"] - final.x_final)),
                          np.max(np.abs(got["y"] - final.y_final))) for got in jax_runs)
            print(f"JAX: {jax_threads} thread setting faster; {jax_setting}; max abs "
                  f"difference from stabsim {err:.2e} ({len(jax_runs)} thread settings)")
            assert err < 1e-9
            rows.append(("JAX jit(vmap(lax.scan)), float64", t_jax))

    gflops = peak_gflops()
    # the map's 7 operations are separate multiplies and adds (no contraction: the bitwise
    # check above), and a core issues them at the rate it issues FMAs, so at half the
    # matmul's flop rate, which counts each FMA as 2 flops
    mul_add_gflops = gflops / 2.0
    limit = FLOPS_PER_STEP / mul_add_gflops  # ns per step at the mul/add peak, all cores
    print(f"{'variant':40s} {'ns/step':>9s} {'x final':>9s} {'x limit':>9s}")
    for name, t in rows:
        ns = t * per_step
        print(f"{name:40s} {ns:9.3f} {ns / (t_final * per_step):9.2f} {ns / limit:9.2f}")
    print(f"flops per step: {FLOPS_PER_STEP} (separate mul/add); measured float64 matmul "
          f"{gflops:.1f} GFLOP/s (FMA = 2 flops, all cores) -> mul/add peak "
          f"{mul_add_gflops:.1f} GFLOP/s -> floating-point limit {limit:.3f} ns/step")
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
    if "--baseline" in sys.argv:
        at = sys.argv.index("--baseline")
        baseline(sys.argv[at + 1], int(sys.argv[at + 2]), int(sys.argv[at + 3]),
                 sys.argv[at + 4])
    else:
        main(*(int(a) for a in sys.argv[1:3]))
