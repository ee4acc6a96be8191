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
