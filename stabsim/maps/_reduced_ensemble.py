"""Ensemble kernels for the reduced map: prange over blocks, SIMD across each block's lanes.

Each block runs in chunks of steps. A chunk is first run branch-free for the whole block
(``_reduced_vector``); then every lane is checked once. A lane whose chunk might have gone
wrong — or that needs per-step bookkeeping the vector pass does not do — is replayed from
the chunk's saved start through the scalar reference path (``_reduced_step.walk``), which
gives the exact step and status. Both paths compute the same floats, so the replay
reproduces the vector pass exactly wherever nothing went wrong.

Chunk checks (final-state kernel). Non-finite values are absorbing under the map (an inf in
x makes y −inf on the next step, and ``±inf · 0`` is NaN), so a finite end state means
every state in the chunk was finite. y rises by at most ``ηα`` per step, so if some state
of a k-step chunk had ``1 + η y ≤ 0`` then ``1 + η (y_end − k ηα) ≤ 0``; a lane passes
when that quantity exceeds a margin (1e-9 relative) far above the chunk's round-off.
The statistics kernel tracks y's running minimum, so its domain check is exact.

Nothing here raises: statuses are returned per trajectory.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from ._reduced_step import (
    BLOWUP,
    MAX_STEPS,
    NBOUND,
    OK,
    STATE_SIZE,
    X2MAX,
    YMAX,
    YMIN,
    X,
    Y,
    finish_state,
    init_state,
    record_boundary,
    walk,
)
from ._reduced_vector import advance, advance_stats

BLOCK = 256  #: lanes per block, final-state kernel (5 arrays of 2 KiB: stays in L1)
STATS_BLOCK = 128  #: lanes per block, statistics kernel (about 20 rows of 1 KiB)
CHUNK = 64  #: steps between lane checks, final-state kernel
STATS_CHUNK = 32  #: steps between lane checks, statistics kernel
MARGIN = 1e-9  #: relative margin of the final-state kernel's domain check


@jit
def _chunk_safe(x, y, y_start, eta, ea, k):
    """True if every state after the chunk start was finite with ``1 + η y > 0``."""
    if not (np.isfinite(x) and np.isfinite(y)):
        return False
    slack = MARGIN * (1.0 + eta * (abs(y) + abs(y_start) + k * ea))
    return 1.0 + eta * (y - k * ea) > slack


@jit
def _any_unsafe(x, y, ys, eta, ea, k):
    """True if some lane fails :func:`_chunk_safe` (a branch-free, vectorised pass).

    Stopped lanes sit at (0, 0), where y only rises: they always pass.
    """
    bad = False
    for i in range(x.shape[0]):
        xi = x[i]
        yi = y[i]
        slack = MARGIN * (1.0 + eta[i] * (abs(yi) + abs(ys[i]) + k * ea[i]))
        finite = (xi - xi == 0.0) & (yi - yi == 0.0)  # inf - inf and NaN - NaN are NaN
        safe = finite & (1.0 + eta[i] * (yi - k * ea[i]) > slack)
        bad |= not safe
    return bad


@jit
def _params(p, eta, ea, hb, alpha, beta, i):
    p[0] = eta[i]
    p[1] = ea[i]
    p[2] = hb[i]
    p[3] = alpha[i]
    p[4] = beta[i]


@jit
def _record(rec_x, rec_y, x, y, alive, t, stride):
    """Write the block's states at step t into row t // stride (NaN for stopped lanes)."""
    r = t // stride
    for i in range(x.shape[0]):
        rec_x[r, i] = x[i] if alive[i] else np.nan
        rec_y[r, i] = y[i] if alive[i] else np.nan


@jit
def _blank_from(rec_x, rec_y, i, t, stride):
    """Set lane i's recorded states at steps ≥ t to NaN."""
    for r in range((t + stride - 1) // stride, rec_x.shape[0]):
        rec_x[r, i] = np.nan
        rec_y[r, i] = np.nan


@jit
def _final_block(x0, y0, eta, ea, hb, alpha, beta, steps, stride, x_out, y_out, rec_x, rec_y,
                 status, stop):
    """Run one block of the final-state kernel (see :func:`ensemble_final`)."""
    m = x0.shape[0]
    x = x0.copy()
    y = y0.copy()
    xs = np.empty(m)
    ys = np.empty(m)
    alive = np.ones(m, np.bool_)
    s = np.empty(STATE_SIZE)
    p = np.empty(5)
    no_i = np.empty(0, np.int64)
    no_f = np.empty(0)
    no_p = np.empty(0, np.int8)
    if stride > 0:
        _record(rec_x, rec_y, x, y, alive, 0, stride)
    t = 0
    while t <= steps:
        last = t == steps
        k = 0 if last else min(CHUNK, steps - t)
        if stride > 0 and not last:
            k = min(k, stride - t % stride)
        xs[:] = x
        ys[:] = y
        advance(x, y, eta, ea, hb, k)
        if not (last or _any_unsafe(x, y, ys, eta, ea, k)):
            t += k
            if stride > 0 and t % stride == 0:
                _record(rec_x, rec_y, x, y, alive, t, stride)
            continue
        for i in range(m):
            if alive[i] and (last or not _chunk_safe(x[i], y[i], ys[i], eta[i], ea[i], k)):
                _params(p, eta, ea, hb, alpha, beta, i)
                init_state(s, xs[i], ys[i])
                code, t_stop = walk(s, p, t, t + k, last, 0, no_i, no_f, no_i, no_f,
                                    no_f, no_f, no_p, 0)
                if code != OK or last:
                    status[i] = code
                    stop[i] = t_stop
                    x_out[i] = s[X]
                    y_out[i] = s[Y]
                    alive[i] = False
                    x[i] = 0.0
                    y[i] = 0.0
                    if stride > 0 and code != OK:
                        _blank_from(rec_x, rec_y, i, t_stop, stride)
        t += max(k, 1)
        if stride > 0 and t <= steps and t % stride == 0:
            _record(rec_x, rec_y, x, y, alive, t, stride)


@jit(parallel=True)
def ensemble_final(x0, y0, eta, ea, hb, alpha, beta, steps, stride, x_out, y_out, rec_x, rec_y,
                   status, stop):
    """Final states of n trajectories of the reduced map (1-D inputs of length n).

    Writes ``x_out, y_out`` (the state each trajectory stopped at), ``status`` (OK,
    NONFINITE or LEFT_DOMAIN) and ``stop`` (its step); with ``stride > 0`` also the states
    at steps ``0, stride, 2 stride, …`` into the rows of ``rec_x, rec_y`` (NaN from a
    failed trajectory's stop step on).
    """
    n = x0.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        _final_block(x0[lo:hi], y0[lo:hi], eta[lo:hi], ea[lo:hi], hb[lo:hi], alpha[lo:hi],
                     beta[lo:hi], steps, stride, x_out[lo:hi], y_out[lo:hi], rec_x[:, lo:hi],
                     rec_y[:, lo:hi], status[lo:hi], stop[lo:hi])


@jit
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


@jit
def _stats_block(x0, y0, eta, ea, hb, alpha, beta, steps, stride, target, x_out, y_out, rec_x,
                 rec_y, status, stop, n_bound, y_max, y_min, x2_max, blowup, b_step, b_h,
                 c_len, c_mean):
    """Run one block of the statistics kernel (see :func:`ensemble_stats`)."""
    m = x0.shape[0]
    state = np.empty((m, STATE_SIZE))
    for i in range(m):
        init_state(state[i], x0[i], y0[i])
    v = np.zeros((13, m))  # rows 0..7 mirror the state vector's X..BLOWUP
    for r in range(BLOWUP + 1):
        v[r, :] = state[:, r]
    snap = np.empty((BLOWUP + 1, m))
    alive = np.ones(m, np.bool_)
    p = np.empty(5)
    no_f = np.empty(0)
    no_p = np.empty(0, np.int8)
    if stride > 0:
        _record(rec_x, rec_y, v[X], v[Y], alive, 0, stride)
    t = 0
    while t <= steps:
        last = t == steps
        k = 0 if last else min(STATS_CHUNK, steps - t)
        if stride > 0 and not last:
            k = min(k, stride - t % stride)
        snap[:, :] = v[:BLOWUP + 1, :]
        advance_stats(v, eta, ea, hb, t, k)
        for i in range(m):
            events = v[8, i]
            safe = (np.isfinite(v[X, i]) and np.isfinite(v[Y, i])
                    and 1.0 + eta[i] * v[YMIN, i] > 0.0 and 1.0 + eta[i] * v[Y, i] > 0.0)
            if not alive[i] or (safe and events == 0.0 and not last):
                continue
            _params(p, eta, ea, hb, alpha, beta, i)
            si = state[i]
            hits_target = target > 0 and si[NBOUND] + events >= target
            if last or not safe or events >= 2.0 or (events == 1.0 and hits_target):
                si[:BLOWUP + 1] = snap[:, i]
                code, t_stop = walk(si, p, t, t + k, last, target, b_step[i], b_h[i],
                                    c_len[i], c_mean[i], no_f, no_f, no_p, 0)
                if code != OK or last or (target > 0 and si[NBOUND] >= target):
                    _close_lane(si, code, t_stop, target, i, status, stop, x_out, y_out,
                                n_bound, y_max, y_min, x2_max, blowup)
                    alive[i] = False
                    v[X, i] = 0.0
                    v[Y, i] = 0.0
                    if stride > 0:
                        _blank_from(rec_x, rec_y, i, t_stop + (code == OK), stride)
                else:
                    v[:BLOWUP + 1, i] = si[:BLOWUP + 1]
            elif events == 1.0:
                record_boundary(si, v[9, i], v[10, i], v[11, i], v[12, i], p, b_step[i],
                                b_h[i], c_len[i], c_mean[i])
        t += max(k, 1)
        if stride > 0 and t <= steps and t % stride == 0:
            _record(rec_x, rec_y, v[X], v[Y], alive, t, stride)


@jit(parallel=True)
def ensemble_stats(x0, y0, eta, ea, hb, alpha, beta, steps, stride, target, x_out, y_out, rec_x,
                   rec_y, status, stop, n_bound, y_max, y_min, x2_max, blowup, b_step, b_h,
                   c_len, c_mean):
    """Like :func:`ensemble_final`, plus each trajectory's statistics (``walk``'s).

    Per trajectory: the number of cycle boundaries, y max and min, max x², the first
    blow-up step, and per boundary/cycle (up to the arrays' width) the boundary step, H
    there, and each cycle's length and mean x². ``target > 0`` stops a trajectory at its
    ``target``-th boundary (status MAX_STEPS if it never gets there).
    """
    n = x0.shape[0]
    for b in prange((n + STATS_BLOCK - 1) // STATS_BLOCK):
        lo = b * STATS_BLOCK
        hi = min(lo + STATS_BLOCK, n)
        _stats_block(x0[lo:hi], y0[lo:hi], eta[lo:hi], ea[lo:hi], hb[lo:hi], alpha[lo:hi],
                     beta[lo:hi], steps, stride, target, x_out[lo:hi], y_out[lo:hi],
                     rec_x[:, lo:hi], rec_y[:, lo:hi], status[lo:hi], stop[lo:hi],
                     n_bound[lo:hi], y_max[lo:hi], y_min[lo:hi], x2_max[lo:hi],
                     blowup[lo:hi], b_step[lo:hi], b_h[lo:hi], c_len[lo:hi], c_mean[lo:hi])
