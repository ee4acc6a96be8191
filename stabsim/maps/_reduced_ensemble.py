"""Ensemble kernels of the reduced map: blocks shared by threads, SIMD across a block's lanes.

Each block runs in chunks of steps. A chunk is first run branch-free for the block's
active lanes (``_reduced_vector``); then every lane is checked once, in a branch-free
pass. A lane whose chunk might have gone wrong — or that needs bookkeeping the vector
pass could not settle — is re-run from the chunk's saved start (through the full
statistics stepper, or the scalar reference path ``_reduced_step.walk``, which gives the
exact step and status). All paths compute the same floats, so a re-run reproduces the
vector pass exactly wherever nothing went wrong. Lanes that stop are compacted away, so
a block costs what its running lanes cost, and the last state is checked branch-free.

Chunk checks (final-state kernel). Non-finite values are absorbing under the map (an inf in
x makes y −inf on the next step, and ``±inf · 0`` is NaN), so a finite end state means
every state in the chunk was finite. y rises by at most ``ηα`` per step, so if some state
of a k-step chunk had ``1 + η y ≤ 0`` then ``1 + η (y_end − k ηα) ≤ 0``; a lane passes
when that quantity exceeds a margin (1e-9 relative) far above the chunk's round-off. A
block's chunks are shortened where ``k η²α`` would be large (large η), so that the check
fails only near the domain's edge. Underflow: the stepper keeps each lane's smallest |x|
at the starts of its passes of UNROLL steps, which with that bound on the factors
``1 + η y`` bounds every state of the chunk from below (:func:`_stayed_normal`); a lane
whose bound is within a factor 2 of tiny (the smallest normal double) is re-run, where
``walk`` finds the state with ``|x| ≤ tiny`` if there is one. A lane whose chunk starts at
x = 0 stays there (the invariant line of a start at x0 = 0: from x0 ≠ 0, x cannot get
there unnoticed, see ``_reduced_step.underflowed``) and passes.

Statistics kernel. The light stepper keeps the chunk's y range and max x² and counts the
sign changes of the y-increment d (cycle boundaries, turns of y), capturing x and the sum
of x² at the boundary; a chunk with at most one change is settled exactly from these
(see :func:`_light_check`), its domain check is exact, and only chunks with several
changes or trouble are re-run. The light stepper keeps the smallest |x| at its passes'
starts too, for the same underflow check, with the factors bounded by the chunk's y min.

Calls in time. A call runs the steps ``t0 ≤ t < t1`` of the trajectories still running
(status ``RUNNING``): their state is read from and written back to ``x_out, y_out`` (and the
statistics kernel's state vectors ``state``), so a long run can be split into calls between
which the caller answers Ctrl-C; the call with ``last`` also processes state ``t1`` and
gives every trajectory its final status. Every path computes the same floats, so the split
changes no result.

Per-cycle extremes (:func:`ensemble_cycle_extremes`, on request) are computed afterwards,
by replaying each trajectory with the same arithmetic up to its last stored boundary.

Nothing here raises: statuses are returned per trajectory.

Compilation. The three ensemble kernels are serial (the caller runs one call per thread,
each on its share of the blocks: :mod:`stabsim._threads`), and they are the only
dispatchers; every helper they call (here and in ``_reduced_step``, ``_reduced_vector``) is
an :func:`stabsim._jit.inline` function. A dispatcher called from a kernel is compiled once
for each literal value of a constant argument (``walk`` once with ``last=False`` and once
with ``last=True``; ``advance_stats`` once more with ``m`` typed as the literal 0 its
counter starts from) and gets a Python wrapper no one calls. Arrays are copied by loops: a
slice assignment compiles the formatting of its shape-mismatch message. Cold first call of
the statistics kernel, CPU time, alternating: 15.4–17.3 s as a ``prange`` kernel, 10.3–12.0
s serial on threads.
"""

from __future__ import annotations

import numpy as np

from .._jit import inline, jit
from ._reduced_step import (
    BLOWUP,
    DPREV,
    LAST_CUM,
    LAST_T,
    LEFT_DOMAIN,
    MAX_STEPS,
    NBOUND,
    NONFINITE,
    OK,
    STATE_SIZE,
    TINY,
    UNDERFLOW,
    X2MAX,
    YMAX,
    YMIN,
    X,
    Y,
    cycle_extremes,
    finish_state,
    hamiltonian,
    init_state,
    record_boundary,
    underflowed,
    walk,
)
from ._reduced_vector import UNROLL, advance, advance_light, advance_stats

BLOCK = 256  #: lanes per block, final-state kernel (5 rows of 2 KiB: stays in L1)
STATS_BLOCK = 256  #: lanes per block, statistics kernel
CHUNK = 128  #: steps between lane checks, final-state kernel
STATS_CHUNK = 32  #: steps between lane checks, statistics kernel
MARGIN = 1e-9  #: relative margin of the final-state kernel's domain check
RUNNING = -1  #: status of a trajectory that has not stopped yet (between calls)

# Rows of the statistics kernel's lane array: 0..11 are the light stepper's (x, y, d of
# the previous state, sum of x², the chunk's y max/min, max x², count of d > 0, count of
# boundaries, x and sum of x² at the boundary, min |x|), then the running summaries and
# parameters.
L_X, L_Y, L_DP, L_CM, L_CYMX, L_CYMN, L_CX2, L_NPOS, L_NB, L_BX, L_BC, L_CXMN = range(12)
L_YMX, L_YMN, L_X2M, L_BL, L_ETA, L_EA, L_HB = range(12, 19)
N_ROWS = 19
#: lane-array row of each state-vector entry X..BLOWUP
STATE_ROWS = (L_X, L_Y, L_DP, L_YMX, L_YMN, L_X2M, L_CM, L_BL)


@inline
def _stayed_normal(x_min, c_low, x_start):
    """Whether a chunk from ``x_start`` kept clear of ``0 < |x| ≤ tiny``
    (``_reduced_step.underflowed``): every |x| stayed above tiny, or the chunk began on the
    line x = 0, which only a start at x0 = 0 is on. Branch-free.

    ``x_min`` is the smallest |x| of the states the steppers' passes of UNROLL steps start
    from (and of the states stepped from one at a time), ``c_low ≤ 1`` a lower bound of the
    chunk's factors ``1 + η y``: a state inside a pass is at least ``x_min · c_low^(UNROLL
    − 1)`` up to the round-off of its products, which the factor 2 on tiny covers.
    """
    bound = x_min
    for _ in range(UNROLL - 1):
        bound *= c_low
    return (bound > 2.0 * TINY) | (x_start == 0.0)


@inline
def _flag_unsafe(x, y, xs, ys, x_min, eta, ea, m, k, bad):
    """Flag (in ``bad``) and count the lanes ``< m`` whose chunk might have gone wrong.

    A lane passes if its end state is finite, the domain check of the module docstring
    holds, and x kept clear of underflow (:func:`_stayed_normal`; the domain check's
    bound, less its margin, bounds the factors ``1 + η y`` from below). Branch-free, so it
    vectorises.
    """
    n_bad = 0
    for i in range(m):
        xi = x[i]
        yi = y[i]
        slack = MARGIN * (1.0 + eta[i] * (abs(yi) + abs(ys[i]) + k * ea[i]))
        finite = (xi - xi == 0.0) & (yi - yi == 0.0)  # inf - inf and NaN - NaN are NaN
        low = 1.0 + eta[i] * (yi - k * ea[i]) - slack
        safe = finite & (low > 0.0) & _stayed_normal(x_min[i], min(low, 1.0), xs[i])
        bad[i] = not safe
        n_bad += not safe
    return n_bad


@inline
def _running(status, idx):
    """Put the block's lanes with status RUNNING first in ``idx``; their count."""
    m = 0
    for i in range(status.shape[0]):
        if status[i] == RUNNING:
            idx[m] = i
            m += 1
    return m


@inline
def _params(p, eta, ea, hb, alpha, beta, i):
    p[0] = eta[i]
    p[1] = ea[i]
    p[2] = hb[i]
    p[3] = alpha[i]
    p[4] = beta[i]


@inline
def _record(rec_x, rec_y, x, y, idx, m, t, stride):
    """Write the active lanes' states at step t into row t // stride."""
    r = t // stride
    for j in range(m):
        rec_x[r, idx[j]] = x[j]
        rec_y[r, idx[j]] = y[j]


@inline
def _blank_from(rec_x, rec_y, i, t, stride):
    """Set lane i's recorded states at steps ≥ t to NaN."""
    for r in range((t + stride - 1) // stride, rec_x.shape[0]):
        rec_x[r, i] = np.nan
        rec_y[r, i] = np.nan


@inline
def _compact(rows, idx, gone, m):
    """Drop the lanes flagged in ``gone`` from the first ``m`` columns; the new count."""
    kept = 0
    for j in range(m):
        if not gone[j]:
            if kept != j:
                for r in range(rows.shape[0]):
                    rows[r, kept] = rows[r, j]
                idx[kept] = idx[j]
            kept += 1
    return kept


@inline
def _final_block(eta, ea, hb, alpha, beta, t0, t1, last, stride, x_out, y_out, rec_x, rec_y,
                 status, stop):
    """Run one block of the final-state kernel (see :func:`ensemble_final`).

    The active lanes are the first ``m`` columns of ``lanes`` (rows x, y, η, ηα, ηβ/2);
    ``idx`` maps them to the block's lanes. Stopped lanes are compacted away.
    """
    n_lanes = eta.shape[0]
    idx = np.empty(n_lanes, np.int64)
    m = _running(status, idx)
    lanes = np.empty((5, n_lanes))
    for j in range(m):
        i = idx[j]
        lanes[0, j] = x_out[i]
        lanes[1, j] = y_out[i]
        lanes[2, j] = eta[i]
        lanes[3, j] = ea[i]
        lanes[4, j] = hb[i]
    x, y, e_b, a_b, h_b = lanes[0], lanes[1], lanes[2], lanes[3], lanes[4]
    xs = np.empty(m)
    ys = np.empty(m)
    x_min = np.empty(m)
    bad = np.zeros(m, np.bool_)
    s = np.empty(STATE_SIZE)
    p = np.empty(5)
    no_i = np.empty(0, np.int64)
    no_f = np.empty(0)
    no_p = np.empty(0, np.int8)
    # y rises by at most ηα a step, so the domain check allows a k-step chunk only if
    # 1 + η (y − k ηα) stays positive: keep k η²α ≤ 1/4, so that the check passes whenever
    # the lane is not near the domain's edge (1 + η y > 1/4)
    worst = 0.0
    for j in range(m):
        worst = max(worst, e_b[j] * a_b[j])
    chunk = CHUNK
    while chunk > UNROLL and chunk * worst > 0.25:
        chunk //= 2
    if stride > 0 and t0 == 0:
        _record(rec_x, rec_y, x, y, idx, m, 0, stride)
    t = t0
    while t < t1 and m > 0:
        k = min(chunk, t1 - t)
        if stride > 0:
            k = min(k, stride - t % stride)
        for j in range(m):  # loops: a slice assignment compiles its shape-error message
            xs[j] = x[j]
            ys[j] = y[j]
            x_min[j] = np.inf
        advance(x, y, x_min, e_b, a_b, h_b, m, k)
        n_bad = _flag_unsafe(x, y, xs, ys, x_min, e_b, a_b, m, k, bad)
        if n_bad > 0:
            stopped = 0
            for j in range(m):
                if bad[j]:
                    i = idx[j]
                    _params(p, eta, ea, hb, alpha, beta, i)
                    init_state(s, xs[j], ys[j])
                    code, t_stop = walk(s, p, t, t + k, False, 0, no_i, no_f, no_i, no_f,
                                        no_f, no_f, no_p, 0)
                    x[j] = s[X]
                    y[j] = s[Y]
                    bad[j] = code != OK
                    if bad[j]:
                        status[i] = code
                        stop[i] = t_stop
                        x_out[i] = s[X]
                        y_out[i] = s[Y]
                        stopped += 1
                        if stride > 0:
                            _blank_from(rec_x, rec_y, i, t_stop, stride)
            if stopped > 0:
                m = _compact(lanes, idx, bad, m)
                bad[:] = False
        t += k
        if stride > 0 and t % stride == 0:
            _record(rec_x, rec_y, x, y, idx, m, t, stride)
    if not last:  # the running lanes go on from here in the next call
        for j in range(m):
            x_out[idx[j]] = x[j]
            y_out[idx[j]] = y[j]
        return
    for j in range(m):  # the last state: walk's checks, branch-free
        xj = x[j]
        yj = y[j]
        finite = (xj - xj == 0.0) & (yj - yj == 0.0)
        inside = 1.0 + e_b[j] * yj > 0.0
        code = OK if finite & inside else (LEFT_DOMAIN if finite else NONFINITE)
        code = UNDERFLOW if (code == OK) & underflowed(xj) else code
        i = idx[j]
        status[i] = code
        stop[i] = t1
        x_out[i] = xj
        y_out[i] = yj
        if stride > 0 and code != OK:
            _blank_from(rec_x, rec_y, i, t1, stride)


@jit
def ensemble_final(eta, ea, hb, alpha, beta, t0, t1, last, stride, x_out, y_out, rec_x, rec_y,
                   column, status, stop, part, parts):
    """Steps ``t0 ≤ t < t1`` of n trajectories of the reduced map (1-D inputs of length n).

    The trajectories with ``status`` RUNNING start from ``x_out, y_out`` (the starts, for
    ``t0 = 0``) and are written back there. A trajectory that stops gets its state there,
    its ``status`` (NONFINITE, LEFT_DOMAIN or UNDERFLOW) and ``stop`` (its step); with
    ``last``, state ``t1`` is checked too and every running trajectory gets its final
    status (OK, NONFINITE, LEFT_DOMAIN or UNDERFLOW) and ``stop = t1``. With
    ``stride > 0`` the states at steps ``0, stride, 2 stride, …`` go into the rows of
    ``rec_x, rec_y`` (NaN from a failed trajectory's stop step on; rows a trajectory never
    reaches are not written), trajectory ``i`` in column ``column + i``: the caller passes
    whole record arrays, so that the kernel is compiled for one array layout whether or
    not a call holds every trajectory.

    The call runs the blocks ``part, part + parts, part + 2 parts, …`` of :data:`BLOCK`
    trajectories: ``parts`` calls, one per thread, run them all (interleaved, so that each
    thread's share mixes neighbouring blocks, which have similar work).
    """
    n = eta.shape[0]
    for b in range(part, (n + BLOCK - 1) // BLOCK, parts):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        _final_block(eta[lo:hi], ea[lo:hi], hb[lo:hi], alpha[lo:hi], beta[lo:hi], t0, t1,
                     last, stride, x_out[lo:hi], y_out[lo:hi],
                     rec_x[:, column + lo:column + hi], rec_y[:, column + lo:column + hi],
                     status[lo:hi], stop[lo:hi])


@inline
def _close_lane(si, code, t_stop, target, i, status, stop, x_out, y_out, n_bound, y_max,
                y_min, x2_max, blowup):
    """Write lane i's outputs from its state vector ``si``."""
    finish_state(si)
    if code == OK and target > 0 and si[NBOUND] < target:
        code = MAX_STEPS
    status[i] = code
    stop[i] = t_stop
    x_out[i] = si[X]
    y_out[i] = si[Y]
    n_bound[i] = int(si[NBOUND])
    y_max[i] = si[YMAX]
    y_min[i] = si[YMIN]
    x2_max[i] = si[X2MAX]
    blowup[i] = int(si[BLOWUP])


@inline
def _light_check(lanes, snap, flag, m, t0):
    """After a light chunk from state ``t0``: settle the lanes it can, flag the others.

    Let the signs of d run over the state before the chunk (if there is one: d is NaN
    before state 0) and the chunk's states. A boundary is a − → + change; a + → − change
    is where y turns down; their counts differ by [first sign +] − [last sign +]. With at
    most one change, y is monotone on each side of it, so the chunk's extremes of y are
    those of the stepper, and the change is at a known place: the first + state after the
    − run (boundary: y there is the chunk's y min) or the first − state after the + run
    (y there is the chunk's y max; the first blow-up if y > 0). A lane is settled here if
    its end state is finite, every state had ``1 + η y > 0`` and kept clear of underflow
    (:func:`_stayed_normal`), and no boundary happened; it is flagged (``flag = 1``) for a
    boundary alone and nothing else wrong, and otherwise (``flag = 2``) for the full
    stepper. Returns the number flagged. Branch-free.
    """
    n_flag = 0
    for j in range(m):
        xe = lanes[L_X, j]
        ye = lanes[L_Y, j]
        xs = snap[X, j]
        dps = snap[DPREV, j]
        d_first = lanes[L_EA, j] - lanes[L_HB, j] * (xs * xs)
        start_pos = (dps > 0.0) | ((dps != dps) & (d_first > 0.0))
        nb = lanes[L_NB, j]
        n_turn = nb + (1.0 if start_pos else 0.0) - (1.0 if lanes[L_DP, j] > 0.0 else 0.0)
        finite = (xe - xe == 0.0) & (ye - ye == 0.0)  # inf - inf and NaN - NaN are NaN
        cymx = lanes[L_CYMX, j]
        cymn = lanes[L_CYMN, j]
        cx2 = lanes[L_CX2, j]
        c_low = 1.0 + lanes[L_ETA, j] * cymn  # the chunk's smallest factor 1 + η y
        ok = finite & (c_low > 0.0) & _stayed_normal(lanes[L_CXMN, j], min(c_low, 1.0), xs)
        quiet = ok & (nb == 0.0) & (n_turn <= 1.0)
        boundary = ok & (nb == 1.0) & (n_turn == 0.0)
        ymx = lanes[L_YMX, j]
        ymn = lanes[L_YMN, j]
        x2m = lanes[L_X2M, j]
        bl = lanes[L_BL, j]
        lanes[L_YMX, j] = cymx if cymx > ymx else ymx
        lanes[L_YMN, j] = cymn if cymn < ymn else ymn
        lanes[L_X2M, j] = cx2 if cx2 > x2m else x2m
        blow = quiet & (n_turn == 1.0) & (bl < 0.0) & (cymx > 0.0)
        lanes[L_BL, j] = t0 + lanes[L_NPOS, j] if blow else bl
        code = 0 if quiet else (1 if boundary else 2)
        flag[j] = code
        n_flag += code > 0
    return n_flag


@inline
def _boundary(state, i, t, x, y, cum_before, alpha, beta, b_step, b_h, c_len, c_mean):
    """``_reduced_step.record_boundary`` for the state vector ``state[i]`` (same values)."""
    k = int(state[i, NBOUND])
    if k < b_step.shape[1]:
        b_step[i, k] = int(t)
        b_h[i, k] = hamiltonian(x, y, alpha, beta)
    if k >= 1 and k - 1 < c_len.shape[1]:
        length = t - state[i, LAST_T]
        c_len[i, k - 1] = int(length)
        c_mean[i, k - 1] = (cum_before - state[i, LAST_CUM]) / length
    state[i, NBOUND] = k + 1.0
    state[i, LAST_T] = t
    state[i, LAST_CUM] = cum_before


@inline
def _stats_block(eta, ea, hb, alpha, beta, t0, t1, last, stride, target, x_out, y_out, rec_x,
                 rec_y, status, stop, state, n_bound, y_max, y_min, x2_max, blowup, b_step,
                 b_h, c_len, c_mean):
    """Run one block of the statistics kernel (see :func:`ensemble_stats`).

    Each chunk runs first through the light stepper (the map, the sum of x² and the
    chunk's x² range). Lanes that :func:`_light_check` flags — d changed sign (a phase
    boundary: about two chunks per cycle), or the chunk might have gone wrong — are
    gathered and re-run from the chunk's start through the full statistics stepper, and
    from there as before: a lane with one boundary and nothing wrong takes the boundary
    recorded by the stepper; others are replayed through the scalar reference ``walk``.
    The active lanes are the first ``m`` columns of ``lanes`` (rows: the state vector's
    X..BLOWUP, η, ηα, ηβ/2, and the chunk's x² range); ``idx`` maps them to the block's
    lanes; stopped lanes are compacted away.
    """
    n_lanes = eta.shape[0]
    if t0 == 0:
        # the per-boundary outputs are filled here, block by block, so that their lines
        # are in cache when boundaries are recorded (written once, in order, not on cache
        # misses); the state vectors start from the starts in x_out, y_out
        b_step[:, :] = -1
        b_h[:, :] = np.nan
        c_len[:, :] = 0
        c_mean[:, :] = np.nan
        for i in range(n_lanes):
            init_state(state[i], x_out[i], y_out[i])
    idx = np.empty(n_lanes, np.int64)
    m = _running(status, idx)
    lanes = np.empty((N_ROWS, n_lanes))
    for j in range(m):
        i = idx[j]
        for r in range(BLOWUP + 1):
            lanes[STATE_ROWS[r], j] = state[i, r]
        lanes[L_ETA, j] = eta[i]
        lanes[L_EA, j] = ea[i]
        lanes[L_HB, j] = hb[i]
    snap = np.empty((BLOWUP + 1, m))  # the chunk's start, in state-vector order
    full = np.zeros((13, m))  # the lanes flagged 2, gathered for the full stepper
    full_p = np.empty((3, m))
    gathered = np.empty(m, np.int64)
    flag = np.zeros(m, np.int8)
    gone = np.zeros(m, np.bool_)
    p = np.empty(5)
    no_f = np.empty(0)
    no_p = np.empty(0, np.int8)
    if stride > 0 and t0 == 0:
        _record(rec_x, rec_y, lanes[L_X], lanes[L_Y], idx, m, 0, stride)
    t = t0
    while t < t1 and m > 0:
        k = min(STATS_CHUNK, t1 - t)
        if stride > 0:
            k = min(k, stride - t % stride)
        for r in range(BLOWUP + 1):
            for j in range(m):  # a loop: a slice assignment compiles its error message
                snap[r, j] = lanes[STATE_ROWS[r], j]
        lanes[L_CYMX, :m] = -np.inf
        lanes[L_CYMN, :m] = np.inf
        lanes[L_CX2, :m] = -np.inf
        lanes[L_NPOS, :m] = 0.0
        lanes[L_NB, :m] = 0.0
        lanes[L_CXMN, :m] = np.inf
        advance_light(lanes, lanes[L_ETA], lanes[L_EA], lanes[L_HB], m, k)
        if _light_check(lanes, snap, flag, m, float(t)) > 0:
            n_g = 0
            stopped = 0
            for j in range(m):
                if flag[j] == 0:
                    continue
                i = idx[j]
                if flag[j] == 1 and not (target > 0 and state[i, NBOUND] + 1.0 >= target):
                    t_b = t + k - lanes[L_NPOS, j]
                    _boundary(state, i, t_b, lanes[L_BX, j], lanes[L_CYMN, j], lanes[L_BC, j],
                              alpha[i], beta[i], b_step, b_h, c_len, c_mean)
                    continue
                gathered[n_g] = j
                for r in range(BLOWUP + 1):
                    full[r, n_g] = snap[r, j]
                full_p[0, n_g] = lanes[L_ETA, j]
                full_p[1, n_g] = lanes[L_EA, j]
                full_p[2, n_g] = lanes[L_HB, j]
                n_g += 1
            if n_g > 0:
                advance_stats(full, full_p[0], full_p[1], full_p[2], n_g, t, k)
            for g in range(n_g):
                j = gathered[g]
                i = idx[j]
                _params(p, eta, ea, hb, alpha, beta, i)
                si = state[i]
                events = full[8, g]
                e = full_p[0, g]
                safe = (np.isfinite(full[X, g]) and np.isfinite(full[Y, g])
                        and 1.0 + e * full[YMIN, g] > 0.0 and 1.0 + e * full[Y, g] > 0.0
                        and _stayed_normal(lanes[L_CXMN, j],
                                           min(1.0 + e * lanes[L_CYMN, j], 1.0), snap[X, j]))
                hits_target = target > 0 and si[NBOUND] + events >= target
                if not safe or events >= 2.0 or (events == 1.0 and hits_target):
                    for r in range(BLOWUP + 1):
                        si[r] = snap[r, j]
                    code, t_stop = walk(si, p, t, t + k, False, target, b_step[i], b_h[i],
                                        c_len[i], c_mean[i], no_f, no_f, no_p, 0)
                    if code != OK or (target > 0 and si[NBOUND] >= target):
                        _close_lane(si, code, t_stop, target, i, status, stop, x_out, y_out,
                                    n_bound, y_max, y_min, x2_max, blowup)
                        gone[j] = True
                        stopped += 1
                        if stride > 0:
                            _blank_from(rec_x, rec_y, i, t_stop + (code == OK), stride)
                    else:
                        for r in range(BLOWUP + 1):
                            lanes[STATE_ROWS[r], j] = si[r]
                else:
                    if events == 1.0:
                        record_boundary(si, full[9, g], full[10, g], full[11, g], full[12, g],
                                        p, b_step[i], b_h[i], c_len[i], c_mean[i])
                    for r in range(BLOWUP + 1):
                        lanes[STATE_ROWS[r], j] = full[r, g]
            if stopped > 0:
                m = _compact(lanes, idx, gone, m)
                gone[:] = False
        t += k
        if stride > 0 and t % stride == 0:
            _record(rec_x, rec_y, lanes[L_X], lanes[L_Y], idx, m, t, stride)
    if not last:  # the running lanes go on from here in the next call
        for j in range(m):
            i = idx[j]
            for r in range(BLOWUP + 1):
                state[i, r] = lanes[STATE_ROWS[r], j]
        return
    for j in range(m):  # the last state, as walk processes it
        i = idx[j]
        si = state[i]
        xj = lanes[L_X, j]
        yj = lanes[L_Y, j]
        dp = lanes[L_DP, j]
        xx = xj * xj
        d = lanes[L_EA, j] - lanes[L_HB, j] * xx
        if (np.isfinite(xj) and np.isfinite(yj) and 1.0 + lanes[L_ETA, j] * yj > 0.0
                and not underflowed(xj) and not (dp <= 0.0 and d > 0.0)):
            if lanes[L_BL, j] < 0.0 and dp > 0.0 and d <= 0.0 and yj > 0.0:
                lanes[L_BL, j] = t1
            status[i] = MAX_STEPS if target > 0 and si[NBOUND] < target else OK
            stop[i] = t1
            x_out[i] = xj
            y_out[i] = yj
            n_bound[i] = int(si[NBOUND])
            y_max[i] = max(lanes[L_YMX, j], yj)
            y_min[i] = min(lanes[L_YMN, j], yj)
            x2_max[i] = max(lanes[L_X2M, j], xx)
            blowup[i] = int(lanes[L_BL, j])
        else:  # non-finite, out of the domain, underflowed, or a boundary: the reference path
            _params(p, eta, ea, hb, alpha, beta, i)
            for r in range(BLOWUP + 1):
                si[r] = lanes[STATE_ROWS[r], j]
            code, t_stop = walk(si, p, t1, t1, True, target, b_step[i], b_h[i],
                                c_len[i], c_mean[i], no_f, no_f, no_p, 0)
            _close_lane(si, code, t_stop, target, i, status, stop, x_out, y_out, n_bound,
                        y_max, y_min, x2_max, blowup)
            if stride > 0:
                _blank_from(rec_x, rec_y, i, t_stop + (code == OK), stride)


@jit
def ensemble_stats(eta, ea, hb, alpha, beta, t0, t1, last, stride, target, x_out, y_out, rec_x,
                   rec_y, column, status, stop, state, n_bound, y_max, y_min, x2_max, blowup,
                   b_step, b_h, c_len, c_mean, part, parts):
    """Like :func:`ensemble_final`, plus each trajectory's statistics (``walk``'s).

    ``state`` (n × ``STATE_SIZE``) holds each trajectory's state vector between calls
    (made from ``x_out, y_out`` by the call with ``t0 = 0``).

    Per trajectory: the number of cycle boundaries, y max and min, max x², the first
    blow-up step, and per boundary/cycle (up to the arrays' width) the boundary step, H
    there, and each cycle's length and mean x² (these four arrays are filled here: −1,
    NaN, 0, NaN past the last entry). ``target > 0`` stops a trajectory at its
    ``target``-th boundary (status MAX_STEPS if it never gets there). Blocks of
    :data:`STATS_BLOCK` trajectories, shared between ``parts`` calls as in
    :func:`ensemble_final`.
    """
    n = eta.shape[0]
    for b in range(part, (n + STATS_BLOCK - 1) // STATS_BLOCK, parts):
        lo = b * STATS_BLOCK
        hi = min(lo + STATS_BLOCK, n)
        _stats_block(eta[lo:hi], ea[lo:hi], hb[lo:hi], alpha[lo:hi], beta[lo:hi], t0, t1, last,
                     stride, target, x_out[lo:hi], y_out[lo:hi],
                     rec_x[:, column + lo:column + hi], rec_y[:, column + lo:column + hi],
                     status[lo:hi], stop[lo:hi], state[lo:hi],
                     n_bound[lo:hi], y_max[lo:hi], y_min[lo:hi], x2_max[lo:hi],
                     blowup[lo:hi], b_step[lo:hi], b_h[lo:hi], c_len[lo:hi], c_mean[lo:hi])


@jit
def ensemble_cycle_extremes(x0, y0, eta, ea, hb, b_step, n_bound, c_ymax, c_ymin, c_x2max, part,
                            parts):
    """:func:`~._reduced_step.cycle_extremes` of the trajectories ``part, part + parts, …``
    (rows of the outputs)."""
    for i in range(part, x0.shape[0], parts):
        p = np.array([eta[i], ea[i], hb[i], 0.0, 0.0])  # α, β are not used by the replay
        cycle_extremes(x0[i], y0[i], p, b_step[i], n_bound[i], c_ymax[i], c_ymin[i],
                       c_x2max[i])
