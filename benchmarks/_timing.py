"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def best_of(fn, repeat: int = 3, clock=time.perf_counter) -> float:
    """Smallest time of ``repeat`` calls of ``fn()``, in seconds (wall time by default;
    ``clock=time.process_time`` counts the CPU time of this process's threads instead, which
    other work on a shared machine does not inflate)."""
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def cold_and_warm_start(snippet: str) -> tuple[float, float]:
    """Seconds to run ``snippet`` in a fresh interpreter with an empty, then a filled, cache.

    ``snippet`` should import stabsim and make a first call; the Numba cache is pointed at a
    temporary folder so the cold run really compiles and the warm run really loads.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", snippet], check=True, env=env)
            timings.append(time.perf_counter() - start)
    return timings[0], timings[1]


#: thread settings every NumPy/JAX baseline is run with; the faster one is reported
THREAD_SETTINGS = (1, 2)


def baseline_env(threads: int) -> dict:
    """The environment of a baseline child process with ``threads`` BLAS/XLA threads.

    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed together: some machines set them for
    old OpenBLAS builds, and they slow a current NumPy down. XLA gets one intra-op thread for
    ``threads = 1`` (its default uses every core).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def fastest_baseline(script: str, name: str, *args) -> tuple[float | None, int, str]:
    """Run ``python script --baseline name *args`` once per thread setting; the fastest.

    The child prints one line: seconds (or ``none`` when the baseline cannot run, e.g. JAX
    missing) and a description of the BLAS it used. Returns (seconds, threads, BLAS).
    """
    best = (None, 0, "")
    for threads in THREAD_SETTINGS:
        out = subprocess.run([sys.executable, script, "--baseline", name, *map(str, args)],
                             capture_output=True, text=True, check=True,
                             env=baseline_env(threads))
        seconds, _, blas = out.stdout.strip().splitlines()[-1].partition(" ")
        if seconds != "none" and (best[0] is None or float(seconds) < best[0]):
            best = (float(seconds), threads, blas)
    return best


def blas_description() -> str:
    """The BLAS NumPy loaded and its thread count (threadpoolctl), or 'unknown'."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl)"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ",".join(f"{i.get('internal_api')}:{i.get('architecture')}:{i.get('num_threads')}"
                    for i in infos) or "none"
