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

#: how a one-thread child is run, for the scripts to print
ONE_CORE_NOTE = ("one thread = the child process pinned to one core (os.sched_setaffinity before "
                 "NumPy/JAX/Numba load, so XLA sizes its pools to one CPU) with "
                 "OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1, timed by wall clock")

#: runs ``script`` as ``__main__`` after pinning the process to one core, before any import
_PINNED = ("import os, runpy, sys; os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}}); "
           "sys.argv = {argv!r}; sys.path[0] = os.path.dirname(sys.argv[0]); "
           "runpy.run_path(sys.argv[0], run_name='__main__')")


def child_command(script: str, *args, one_core: bool = False) -> list[str]:
    """The command running ``python script *args``; with ``one_core`` the child pins itself
    to one core (the lowest it may use) before it imports anything, so that neither BLAS nor
    XLA nor Numba can run on a second core (XLA's thread pools follow the affinity; its
    ``--xla_cpu_multi_thread_eigen=false`` flag alone still left a jitted matmul on both
    cores here)."""
    argv = [os.path.abspath(script), *map(str, args)]
    if not one_core:
        return [sys.executable, *argv]
    return [sys.executable, "-c", _PINNED.format(argv=argv)]


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def baseline_env(threads: int) -> dict:
    """The environment of a baseline child process with ``threads`` BLAS/Numba threads.

    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed together: some machines set them for
    old OpenBLAS builds, and they slow a current NumPy down. XLA has no reliable thread
    setting of its own: a ``threads = 1`` child is also pinned to one core
    (``child_command(..., one_core=True)``, as ``fastest_baseline`` does).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    return env


def fastest_baseline(script: str, name: str, *args) -> tuple[float | None, int, str]:
    """Run ``python script --baseline name *args`` once per thread setting; the fastest.

    ``threads = 1``: the child is pinned to one core (``ONE_CORE_NOTE``), so its BLAS, XLA
    and Numba really run one thread; ``threads = 2``: every core, the libraries' threads set
    to 2. The child times itself by wall clock and prints one line: seconds (or ``none`` when
    the baseline cannot run, e.g. JAX missing) and a description of the BLAS it used. Returns
    (seconds, threads, BLAS).
    """
    best = (None, 0, "")
    for threads in THREAD_SETTINGS:
        out = subprocess.run(child_command(script, "--baseline", name, *args,
                                           one_core=threads == 1),
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
