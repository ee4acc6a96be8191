"""Damian et al.'s reduced four-phase (x, y) map (docs/theory.md §1): one trajectory or an ensemble.

The map (eq. (3) of the paper; no other terms)::

    x_{t+1} = −(1 + η y_t) x_t
    y_{t+1} = y_t + η (α − β x_t² / 2),          δ² = 2α/β

evaluated as ``y_t + (ηα − (ηβ/2) x_t²)``. Phases are the quadrants of the (y, x² − δ²)
plane: I ``y ≤ 0, x² < δ²``; II ``y > 0, x² < δ²``; III ``y > 0, x² ≥ δ²``;
IV ``y ≤ 0, x² ≥ δ²`` (``x² < δ²`` is decided as ``ηα − (ηβ/2)x² > 0``, the y-increment,
so the cyclic order I → II → III → IV → I holds exactly in floating point).

A trajectory stops at the first state t that is non-finite (NONFINITE), has
``1 + η y_t ≤ 0`` (LEFT_DOMAIN: the step from t would leave the map's validity domain), or
has ``0 < |x_t| ≤ tiny``, the smallest normal double (UNDERFLOW: x has lost precision and
may round to 0, which the exact map never reaches from x ≠ 0; a start at x0 = 0 stays on
that line and runs on).
"""

from __future__ import annotations

import numba
import numpy as np

from .._interrupt import deferred_interrupt
from .._result import combine_statuses, status_counts
from .._status import Status
from .._threads import in_parts, kernel_threads
from .._validate import (
    affordable,
    boolean,
    finite_array,
    finite_float,
    nonnegative_int,
    positive_float,
)
from ._reduced_ensemble import (
    BLOCK,
    RUNNING,
    STATS_BLOCK,
    ensemble_cycle_extremes,
    ensemble_final,
    ensemble_stats,
)
from ._reduced_results import CycleStats, ReducedEnsembleResult, ReducedResult
from ._reduced_step import (
    BLOWUP,
    NBOUND,
    STATE_SIZE,
    X2MAX,
    YMAX,
    YMIN,
    X,
    Y,
    cycle_extremes,
    finish_state,
    init_state,
    phase_codes,
    run_trajectory,
)

_NAMES = ("x0", "y0", "eta", "alpha", "beta")


def reduced_phase(x, y, eta, alpha, beta):
    """Phase 1–4 (I–IV) of states (x, y), elementwise over the arguments broadcast together
    (the kernels' own rule).

    ``1`` if ``y ≤ 0, d > 0``; ``2`` if ``y > 0, d > 0``; ``3`` if ``y > 0, d ≤ 0``;
    ``4`` if ``y ≤ 0, d ≤ 0``, with ``d = ηα − (ηβ/2) x²`` (``d > 0 ⇔ x² < δ²``).
    """
    shape, (x, y, eta, alpha, beta) = _broadcast((x, y, eta, alpha, beta),
                                                 ("x", "y", "eta", "alpha", "beta"))
    d = eta * alpha - (eta * beta * 0.5) * (x * x)
    out = np.empty(d.size, np.int8)
    phase_codes(d, y, out)
    return out.reshape(shape)


def _optional_int(name, value, minimum):
    return 0 if value is None else nonnegative_int(name, value, minimum)


#: bytes per saved state of :func:`run_reduced` (x, y: float64; phase: int8)
_RECORD_BYTES = 17
#: bytes per stored cycle boundary (step, H, cycle length, cycle mean of x²)
_CYCLE_BYTES = 32
#: steps of :func:`run_reduced` per compiled call, between which Ctrl-C is answered
#: (0.17 s at the 10^8 steps/s measured for one trajectory)
CHUNK_STEPS = 2**24
#: trajectory-steps of :func:`run_reduced_ensemble` per compiled call (0.1 s at the
#: 3·10⁹ per second measured for final states on two threads, 0.3 s with statistics)
ENSEMBLE_CHUNK_WORK = 2**28
#: fewest steps per call (a multiple of the kernels' check intervals, so that their
#: vector passes stay full length)
MIN_SPAN = 1024


def _chunk_shape(n: int, steps: int) -> tuple[int, int]:
    """Trajectories and steps per compiled call of :func:`run_reduced_ensemble`.

    About :data:`ENSEMBLE_CHUNK_WORK` trajectory-steps: all steps of as many trajectories
    as that allows, in whole blocks for every thread (at least one block each), and the
    steps in spans of ENSEMBLE_CHUNK_WORK over the trajectories of a call, at least
    :data:`MIN_SPAN` and at most :data:`CHUNK_STEPS` (a few trajectories step at about
    the speed of one, as in :func:`run_reduced`, not of a full vector).
    """
    unit = max(BLOCK, STATS_BLOCK) * numba.get_num_threads()
    wanted = (ENSEMBLE_CHUNK_WORK // max(steps, 1)) // unit * unit
    width = max(1, min(-(-n // unit) * unit, max(unit, wanted)))
    span = ENSEMBLE_CHUNK_WORK // min(width, max(n, 1))
    return width, max(MIN_SPAN, min(CHUNK_STEPS, span))


def run_reduced(x0, y0, eta, alpha, beta, steps, *, stride=1, cycles=None,
                max_cycles=10**6) -> ReducedResult:
    """Run one trajectory of the reduced map, saving (x, y, phase) every ``stride`` steps.

    Parameters
    ----------
    x0, y0 : float
        The start.
    eta, alpha, beta : float
        Step size η > 0, progressive-sharpening rate α > 0, β = |∇S|² > 0.
    steps : int
        Steps to run (at most).
    stride : int, optional
        Save every ``stride``-th state (step 0 included).
    cycles : int, optional
        Stop at the ``cycles``-th cycle boundary (status MAX_STEPS if not reached).
    max_cycles : int, optional
        The per-cycle arrays keep the first ``max_cycles`` cycles (``max_cycles + 1``
        boundaries); later ones are counted only. A cycle takes at least 4 steps, so
        ``steps // 4`` keeps all of them.

    Returns
    -------
    ReducedResult
        Saved states, status, and the cycle summaries (:class:`CycleStats`; every
        boundary is kept, and every completed cycle's mean x² and extremes of y and |x|).
        Ctrl-C stops the run within one chunk of :data:`CHUNK_STEPS` steps (well under a
        second) and returns what was done, with status INTERRUPTED (a second Ctrl-C raises
        ``KeyboardInterrupt``).

    Raises
    ------
    ValueError
        For bad input, and when the saved states (17 bytes each) and cycle arrays would
        take over half of this machine's memory (lower ``steps`` or raise ``stride``).
    """
    x0 = finite_float("x0", x0)
    y0 = finite_float("y0", y0)
    eta = positive_float("eta", eta)
    alpha = positive_float("alpha", alpha)
    beta = positive_float("beta", beta)
    steps = nonnegative_int("steps", steps)
    stride = nonnegative_int("stride", stride, 1)
    target = _optional_int("cycles", cycles, 1)
    max_cycles = nonnegative_int("max_cycles", max_cycles, 1)

    n_rec = steps // stride + 1
    # a cycle visits all four phases: ≥ 4 steps between boundaries
    width = min(steps // 4, max_cycles) + 1
    affordable(n_rec * _RECORD_BYTES + width * _CYCLE_BYTES,
               f"saving every {stride} of steps = {steps} steps",
               "lower `steps` or raise `stride`")
    rec_x = np.full(n_rec, np.nan)
    rec_y = np.full(n_rec, np.nan)
    rec_phase = np.zeros(n_rec, np.int8)
    b_step = np.full(width, -1, np.int64)
    b_h = np.full(width, np.nan)
    c_len = np.zeros(width - 1, np.int64)
    c_mean = np.full(width - 1, np.nan)
    p = np.array([eta, eta * alpha, eta * beta * 0.5, alpha, beta])
    s = np.empty(STATE_SIZE)
    init_state(s, float(x0), float(y0))
    t_stop, finished = 0, False
    with deferred_interrupt() as interrupt:
        while not finished:
            if interrupt.requested:
                code = int(Status.INTERRUPTED)
                finish_state(s)  # state t_stop is the last reached: fold it in
                break
            t_end = min(t_stop + CHUNK_STEPS, steps)
            code, t_stop, finished = run_trajectory(
                s, p, t_stop, t_end, t_end == steps, stride, target, b_step, b_h, c_len,
                c_mean, rec_x, rec_y, rec_phase)
    kept = rec_phase > 0
    extremes = np.full((3, width - 1), np.nan)
    cycle_extremes(float(x0), float(y0), p, b_step, int(s[NBOUND]), *extremes)
    return ReducedResult(
        step=np.arange(n_rec, dtype=np.int64)[kept] * stride,
        x=rec_x[kept], y=rec_y[kept], phase=rec_phase[kept],
        parameters=dict(x0=float(x0), y0=float(y0), eta=eta, alpha=alpha, beta=beta,
                        steps=steps, stride=stride, cycles=cycles, max_cycles=max_cycles),
        status=Status(code), knob="steps",
        detail=(f"x underflowed at step {t_stop}: x = {s[X]:.3g}"
                if code == Status.UNDERFLOW else None),
        counters={"steps": int(t_stop), "boundaries": int(s[NBOUND])},
        stop_step=int(t_stop), x_final=float(s[X]), y_final=float(s[Y]),
        cycles=CycleStats(
            n_boundaries=int(s[NBOUND]), boundary_step=b_step, boundary_H=b_h,
            cycle_length=c_len, cycle_mean_x2=c_mean, cycle_y_max=extremes[0],
            cycle_y_min=extremes[1], cycle_max_abs_x=np.sqrt(extremes[2]), y_max=float(s[YMAX]),
            y_min=float(s[YMIN]), max_abs_x=float(np.sqrt(s[X2MAX])),
            first_blowup=int(s[BLOWUP])),
    )


def _checked(values, names=_NAMES):
    """The inputs (a state, then parameters, by default η, α, β) as finite float64 arrays,
    the parameters (all but the first two) > 0."""
    arrays = [finite_array(name, v) for name, v in zip(names, values, strict=True)]
    for name, a in zip(names[2:], arrays[2:], strict=True):
        if np.any(a <= 0.0):
            raise ValueError(f"{name} must be > 0 everywhere")
    return arrays


def _broadcast(values, names=_NAMES):
    """Validate the inputs (:func:`_checked`) and broadcast them to one flat length-n float64
    array each; also return their broadcast shape. A shape that does not broadcast raises
    ``ValueError`` naming that argument and the ones before it."""
    arrays = _checked(values, names)
    shape = ()
    for i, (name, a) in enumerate(zip(names, arrays, strict=True)):
        try:
            shape = np.broadcast_shapes(shape, a.shape)
        except ValueError:
            raise ValueError(
                f"{name} has shape {a.shape}, which does not broadcast with the shape "
                f"{shape} of {', '.join(names[:i])}") from None
    # copies, writable like the kernels' other inputs (a read-only array is another type
    # for Numba, and another compilation of every kernel)
    flat = [np.array(np.broadcast_to(a, shape)).ravel() for a in arrays]
    return shape, flat


def run_reduced_ensemble(x0, y0, eta, alpha, beta, steps, *, stats=False, stride=None,
                         cycles=None, max_cycles=16,
                         cycle_extremes=False) -> ReducedEnsembleResult:
    """Run many trajectories of the reduced map (threads across blocks, SIMD within a block).

    Parameters
    ----------
    x0, y0, eta, alpha, beta : array_like
        Starts and parameters, broadcast against each other (e.g. one η for all) to a shape
        that holds at least one trajectory (an empty one raises ``ValueError``).
    steps : int
        Steps to run (at most).
    stats : bool, optional
        Also compute each trajectory's :class:`CycleStats` (and allow ``cycles``).
    stride : int, optional
        Save all states every ``stride`` steps (memory: 2 × n × steps/stride floats).
    cycles : int, optional
        With ``stats``: stop each trajectory at its ``cycles``-th boundary.
    max_cycles : int, optional
        With ``stats``: per-cycle arrays keep the first ``max_cycles`` cycles (and
        ``max_cycles + 1`` boundaries); later ones are counted only.
    cycle_extremes : bool, optional
        With ``stats``: also each stored cycle's extremes of y and |x| (a second, scalar
        pass over each trajectory up to its last stored boundary; measured on the ensemble
        of ``benchmarks/bench_reduced_map.py``: 0.46 → 1.5 ns per trajectory-step);
        otherwise those three fields are None.

    Returns
    -------
    ReducedEnsembleResult
        Agrees bit for bit with :func:`run_reduced` trajectory by trajectory.

    Notes
    -----
    The kernels run in calls of about :data:`ENSEMBLE_CHUNK_WORK` trajectory-steps (chunks
    of trajectories, and of steps when the trajectories are long), between which Ctrl-C
    raises ``KeyboardInterrupt``: no partial result, since an ensemble cut part-way is a
    sample of nothing (a sweep keeps its completed chunks).
    """
    shape, (x0, y0, eta, alpha, beta) = _broadcast((x0, y0, eta, alpha, beta))
    if x0.size == 0:
        raise ValueError(f"x0, y0, eta, alpha, beta broadcast to the shape {shape}, which holds "
                         "no trajectory: an ensemble needs at least one")
    steps = nonnegative_int("steps", steps)
    stats = boolean("stats", stats)
    stride_i = _optional_int("stride", stride, 1)
    target = _optional_int("cycles", cycles, 1)
    max_cycles = nonnegative_int("max_cycles", max_cycles, 1)
    if target and not stats:
        raise ValueError("cycles needs stats=True")
    cycle_extremes = boolean("cycle_extremes", cycle_extremes)
    if cycle_extremes and not stats:
        raise ValueError("cycle_extremes needs stats=True")

    n = x0.size
    ea = eta * alpha
    hb = eta * beta * 0.5
    n_rec = steps // stride_i + 1 if stride_i else 0
    # the saved states, and with stats the cycle arrays and state vectors between calls
    per_stats = _CYCLE_BYTES * (max_cycles + 1) + 8 * STATE_SIZE
    affordable(n * (2 * 8 * n_rec + (per_stats if stats else 0)),
               f"{n} trajectories saving every {stride_i} of steps = {steps} steps"
               if stride_i else f"the cycle arrays of {n} trajectories",
               "lower `steps`, raise `stride` (or leave it out) or lower `max_cycles`")
    rec_x = np.full((n_rec, n), np.nan)
    rec_y = np.full((n_rec, n), np.nan)
    x_out = x0.copy()  # the kernels start the trajectories from here
    y_out = y0.copy()
    status = np.full(n, RUNNING, np.int8)
    stop = np.empty(n, np.int64)
    cyc = None
    if stats:
        cyc = CycleStats(
            n_boundaries=np.zeros(n, np.int64),
            # filled by the kernel (−1, NaN, 0, NaN), block by block while in cache
            boundary_step=np.empty((n, max_cycles + 1), np.int64),
            boundary_H=np.empty((n, max_cycles + 1)),
            cycle_length=np.empty((n, max_cycles), np.int64),
            cycle_mean_x2=np.empty((n, max_cycles)),
            cycle_y_max=np.full((n, max_cycles), np.nan) if cycle_extremes else None,
            cycle_y_min=np.full((n, max_cycles), np.nan) if cycle_extremes else None,
            cycle_max_abs_x=np.full((n, max_cycles), np.nan) if cycle_extremes else None,
            y_max=np.empty(n), y_min=np.empty(n), max_abs_x=np.empty(n),
            first_blowup=np.empty(n, np.int64))
        state = np.empty((n, STATE_SIZE))  # each trajectory's state vector between calls
    # trajectories are independent, and the kernels compute the same floats however a run
    # is split: calls over chunks of trajectories and of steps give the same numbers, and
    # Ctrl-C raises KeyboardInterrupt between calls
    width, span = _chunk_shape(n, steps)
    for k in range(0, n, width):
        c = slice(k, k + width)
        threads = kernel_threads(-(-x0[c].size // (STATS_BLOCK if stats else BLOCK)))
        t0 = 0
        while True:
            t1 = min(t0 + span, steps)
            inputs = (eta[c], ea[c], hb[c], alpha[c], beta[c], t0, t1, t1 == steps, stride_i)
            if stats:
                in_parts(ensemble_stats, (
                    *inputs, target, x_out[c], y_out[c], rec_x, rec_y, k, status[c], stop[c],
                    state[c], cyc.n_boundaries[c], cyc.y_max[c], cyc.y_min[c],
                    cyc.max_abs_x[c], cyc.first_blowup[c], cyc.boundary_step[c],
                    cyc.boundary_H[c], cyc.cycle_length[c], cyc.cycle_mean_x2[c]), threads)
            else:
                in_parts(ensemble_final, (*inputs, x_out[c], y_out[c], rec_x, rec_y, k,
                                          status[c], stop[c]), threads)
            # every trajectory of the chunk stopped: the later spans have nothing to run
            if t1 == steps or not np.any(status[c] == RUNNING):
                break
            t0 = t1
    if stats:
        np.sqrt(cyc.max_abs_x, out=cyc.max_abs_x)  # the kernel leaves max x² there
        if cycle_extremes:
            in_parts(ensemble_cycle_extremes, (
                x0, y0, eta, ea, hb, cyc.boundary_step, cyc.n_boundaries, cyc.cycle_y_max,
                cyc.cycle_y_min, cyc.cycle_max_abs_x), kernel_threads(n))
            np.sqrt(cyc.cycle_max_abs_x, out=cyc.cycle_max_abs_x)
    return ReducedEnsembleResult(
        status=combine_statuses(np.unique(status)), knob="steps",
        counters={"trajectories": n, "steps": int(stop.sum()), **status_counts(status)},
        detail=None if np.all(status == Status.OK) else str(status_counts(status)),
        shape=shape, x0=x0, y0=y0, eta=eta, alpha=alpha, beta=beta, x_final=x_out,
        y_final=y_out, status_codes=status, stop_step=stop,
        step=np.arange(n_rec, dtype=np.int64) * stride_i if stride_i else None,
        x=rec_x if stride_i else None, y=rec_y if stride_i else None, cycles=cyc,
        parameters=dict(steps=steps, stride=stride, cycles=cycles, max_cycles=max_cycles,
                        cycle_extremes=cycle_extremes))
