"""Compiled kernels run side by side on Python threads, instead of in ``prange`` loops.

Every kernel releases the GIL (``nogil``), so parts of a job given to a pool of threads run
in parallel. stabsim's kernels use this rather than Numba's ``parallel=True``: the parallel
compiler passes and the outlined loop body are compiled on top of the serial code, which
made a first call several seconds slower (a GD sweep's first call 16.5 → 10.1 s of CPU, the
reduced map's statistics kernel 15.4–17.3 → 10.3–12.0 s), and one call per part costs
microseconds. The thread count is ``numba.get_num_threads()`` (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``), as for a ``prange`` kernel.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_PREFIX = "stabsim-kernels"


def kernel_threads(parts: int) -> int:
    """Threads for a job of ``parts`` independent parts: Numba's thread count, at most
    ``parts``, and 1 inside a pool thread (a part that submitted parts of its own to the
    pool and waited on them could wait for itself)."""
    if threading.current_thread().name.startswith(_PREFIX):
        return 1
    return max(1, min(numba.get_num_threads(), parts))


def in_threads(run, parts, threads: int) -> None:
    """``run(part)`` for every item of ``parts``, on ``threads`` threads: this one and
    ``threads − 1`` of a pool kept for the process (starting threads for every call cost
    more than a call of a small job).

    This thread takes the first part, and then whatever the pool has not started (a caller
    that only waited made the next call's fresh arrays fault their pages in again: 1,727
    faults and 1.2 → 5–6 ms of set-up for a reduced-map ensemble of 10⁵). If a part
    raises, or this thread is interrupted (Ctrl-C), the parts not yet started are cancelled
    and the exception is raised here.
    """
    parts = list(parts)
    if threads <= 1 or len(parts) <= 1:
        for part in parts:
            run(part)
        return
    futures = [_pool(threads - 1).submit(run, part) for part in parts[1:]]
    try:
        run(parts[0])
        started = []
        for future, part in zip(futures, parts[1:], strict=True):
            if future.cancel():  # not started yet: run it here
                run(part)
            else:
                started.append(future)
        for future in started:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def in_parts(kernel, args, parts: int) -> None:
    """``kernel(*args, part, parts)`` for ``part = 0 … parts − 1``, one part per thread: for a
    kernel whose last two arguments pick its share of the work."""
    in_threads(lambda part: kernel(*args, part, parts), range(parts), parts)


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix=_PREFIX)
