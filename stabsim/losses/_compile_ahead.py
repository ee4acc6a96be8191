"""A loss's derivatives from Python, compiled in a second process while an engine compiles.

The engines that run Python between compiled kernels (``compare``, θ† and the projection
onto M, the central flow, the RMSProp flows) need two kinds of compiled code for a loss: the
engine's own (GD's steps, Lanczos on the loss's Hessian-vector products), and the loss's L,
∇L, ∇²L v and ∇³L[u, v] as Python calls them (:meth:`Loss._d3` and the like). Numba
compiles one function at a time in a process, so with an empty cache the two took their
turns: on the 1-6-6-6-1 network, GD's engine and then 2–2.6 s for the derivatives from
Python, ∇³L's hyper-dual pass the most.

:func:`compile_derivatives_elsewhere` starts a second Python process that evaluates the
loss's derivatives once from Python, ∇³L first, which compiles them into Numba's on-disk
cache, while this process goes on with its engine. When this process first evaluates a
derivative it finds it in the cache and loads it. Nothing waits for the second process: a
derivative it has not written yet when this process needs it is compiled here, as without
it. So it costs little wall time where a core is free for it (the two processes share the
machine: a cold ``central_flow`` on the network took 11.04 s instead of 10.57 s beside a
busy loop on the other core), and saves what this process would have spent compiling the
derivatives. It costs CPU time: the second process imports
stabsim and compiles the derivatives from nothing, where this one would have reused the
passes its engine had compiled. Measured cold on 2026-12-06 (benchmarks/bench_first_calls.py,
wall s to the call's return; CPU s of all processes), off → on, each twice on a host
35–50% slower than the day before: ``compare`` on the network 13.0–13.5 → 9.6–10.4 (14 →
16–17), ``constrained_trajectory`` on it 11.6–12.5 → 8.3–9.5, the RMSProp flow held at its
edge 11.4–11.9 → 8.5–9.5; on the regression model, whose dense Hessian and tracked pair
the second process compiles too (see :func:`evaluate_derivatives`), ``compare`` 10.0–10.4
→ 8.4 (11.5–11.9 → 15.7–16.0), ``constrained_trajectory`` 6.9–7.0 → 5.8–5.9,
``central_flow`` 7.1–7.2 → 5.9. The central flow on the network from below 2/η, which needs
no ∇³L, gains nothing and spends the CPU all the same.

It is done once per loss family in a process, for stabsim's own families only (a second
process unpickles a loss by importing the module its family is defined in, and a user's
module may do anything when imported) and not for a loss from JAX, for parameters of at
most :data:`PAYLOAD_LIMIT` bytes, where Numba may use two threads or more
(``numba.get_num_threads()``, which ``NUMBA_NUM_THREADS`` sets), where Python knows its own
interpreter (``sys.executable``), and unless the environment variable
``STABSIM_COMPILE_AHEAD`` is ``0``. A second process still running when this one exits is
stopped.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import threading

import numba
import numpy as np

from .kernels.jax_bridge import JaxParams

#: the environment variable that turns the second process off when it is "0"
SWITCH = "STABSIM_COMPILE_AHEAD"
#: a loss whose parameters take more bytes than this is not sent: the compilation is the
#: same at any size, and copying a large record (a quadratic's d × d matrix) costs memory
PAYLOAD_LIMIT = 1 << 26

_started: set = set()  # the record classes a second process was started for
_running: list = []  # the second processes not yet finished
_lock = threading.Lock()


def compile_derivatives_elsewhere(loss) -> subprocess.Popen | None:
    """Start compiling ``loss``'s derivatives from Python in a second process (module
    docstring), and return it; or return None where that is not done.

    Parameters
    ----------
    loss : Loss
        A loss checked by the caller (:func:`~stabsim.losses.require_loss`).
    """
    family = loss.family
    # a loss from JAX is one of stabsim's families, but its derivatives are JAX's: a second
    # process would import JAX and trace the function again, for nothing this one can load
    if not (family.record not in _started and family.builtin
            and family.record is not JaxParams and os.environ.get(SWITCH, "1") != "0"
            and sys.executable and numba.get_num_threads() >= 2
            and not numba.config.DISABLE_JIT
            and sum(np.asarray(field).nbytes for field in loss.params) <= PAYLOAD_LIMIT):
        return None
    with _lock:  # two threads may have passed the test above for one family
        if family.record in _started:
            return None
        _started.add(family.record)
    try:
        payload = pickle.dumps(loss)
        process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, SWITCH: "0"})
    except (pickle.PicklingError, TypeError, AttributeError, OSError):
        return None  # everything is compiled here, as without a second process
    with _lock:
        _running.append(process)
    # the loss goes down the pipe and the process is reaped on a thread of its own: a pipe
    # holds less than a large loss, and the child reads only once it has imported stabsim
    threading.Thread(target=_feed_and_reap, args=(process, payload), daemon=True,
                     name="stabsim-compile-ahead").start()
    return process


def _feed_and_reap(process: subprocess.Popen, payload: bytes) -> None:
    try:
        process.communicate(payload)
    except OSError:  # it ended before reading (a broken pipe): nothing was compiled
        process.wait()
    with _lock:
        if process in _running:
            _running.remove(process)


@atexit.register
def _stop_running() -> None:
    with _lock:
        for process in _running:
            process.kill()
            process.wait()


def evaluate_derivatives(loss) -> None:
    """Evaluate ``loss``'s derivatives once, as the engines call them from Python, ∇³L first
    (the longest to compile); the values are of no use (the point is θ = 0). For a family
    that prefers the dense Hessian, also its dense Hessian and the compiled Lanczos on its
    dense parts, which the flows and θ† call from Python for such a family
    (:func:`stabsim.spectral.tracked_top_eigenpairs`)."""
    theta = np.zeros(loss.dim)
    direction = np.ones(loss.dim)
    loss._d3(theta, direction, direction)
    loss._hvp_at(theta)(direction)
    loss._hvp(theta, direction)
    loss._grad(theta)
    loss._value(theta)
    if loss.family.prefers_dense:
        from ..spectral import tracked_top_eigenpairs

        loss._hessian(theta)
        tracked_top_eigenpairs(loss, theta + direction, 1)


if __name__ == "__main__":
    evaluate_derivatives(pickle.load(sys.stdin.buffer))
