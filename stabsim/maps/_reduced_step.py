"""The reduced (x, y) map one step at a time, with every check and summary (scalar code).

This is the reference path: the single-trajectory kernel runs it for every step, and the
ensemble kernels (``_reduced_ensemble``) replay a chunk through it whenever a lane needs
per-step care (it left the domain, went non-finite, underflowed, met its cycle target, or
crossed more than one cycle boundary in the chunk). Both paths evaluate the same
floating-point expressions in the same order without fast-math flags, so they agree bit
for bit.

Arithmetic (docs/theory.md §1, eq. (3) of Damian et al.), with ``ea = ηα`` and ``hb = ηβ/2``::

    d_t     = ea − hb · (x_t · x_t)          (= η (α − β x_t²/2), the y-increment)
    x_{t+1} = −(1 + η y_t) · x_t
    y_{t+1} = y_t + d_t

Phase of state t (quadrants of the (y, x² − δ²) plane; ``x² < δ²`` is decided as
``d_t > 0``, the expression that drives y, so the cyclic order holds exactly in floating
point): I ``y ≤ 0, d > 0``; II ``y > 0, d > 0``; III ``y > 0, d ≤ 0``; IV ``y ≤ 0, d ≤ 0``.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import inline, jit
from .._status import Status

OK = int(Status.OK)
MAX_STEPS = int(Status.MAX_STEPS)
NONFINITE = int(Status.NONFINITE)
LEFT_DOMAIN = int(Status.LEFT_DOMAIN)
UNDERFLOW = int(Status.UNDERFLOW)
#: the smallest normal double: |x| at or below it has lost precision (see :func:`underflowed`)
TINY = float(np.finfo(np.float64).tiny)

# Layout of the per-trajectory state vector ``s`` carried between calls of `walk`.
X, Y, DPREV, YMAX, YMIN, X2MAX, CUM, BLOWUP, NBOUND, LAST_T, LAST_CUM = range(11)
STATE_SIZE = 11
# Layout of the per-trajectory parameter vector ``p``.
ETA, EA, HB, ALPHA, BETA = range(5)


@inline
def phase_code(d, y):
    """Phase 1–4 (I–IV) of a state with y-increment ``d = η(α − βx²/2)`` and ``y``."""
    if d > 0.0:
        return 1 if y <= 0.0 else 2
    return 3 if y > 0.0 else 4


@jit
def phase_codes(d, y, out):
    """:func:`phase_code` of every element of the flat arrays ``d`` and ``y``, into ``out``."""
    for i in range(d.shape[0]):
        out[i] = phase_code(d[i], y[i])


@inline
def hamiltonian(x, y, alpha, beta):
    """H(x, y) = y² + (β/2) x² − α ln x², the ODE limit's conserved quantity.

    The one place the formula is written: compiled into the map's kernels, and called on
    NumPy arrays (elementwise) by :func:`stabsim.flows.reduced_hamiltonian` and the sweep's
    energy.
    """
    # α ln x² as 2α ln|x|: x² underflows to 0 below |x| = 2.2e-162 (H would be +inf) and
    # overflows past 1.3e154 (inf − inf = NaN), where ln|x| is still exact
    return y * y + 0.5 * beta * (x * x) - 2.0 * alpha * np.log(np.abs(x))


@inline
def underflowed(x):
    """Whether ``0 < |x| ≤ tiny``: floating point can no longer follow the map from x.

    Below the smallest normal double x is subnormal and loses precision, and the next
    steps may round it to 0, which the map never leaves (in exact arithmetic x ≠ 0 never
    reaches 0 while 1 + η y ≠ 0). x = 0 itself is the invariant line of a start at
    x0 = 0, and a trajectory from x0 ≠ 0 cannot reach it without passing this test:
    where ``1 + η y_t > 0``, the factor ``fl(1 + η y_t)`` is at least 2⁻⁵³ (a multiple of
    2⁻⁵³, by Sterbenz's lemma, where ``fl(η y_t) ≤ −1/2``; at least 1/2 elsewhere), so
    ``|x_{t+1}| ≥ 2⁻¹⁰⁷⁴`` when ``|x_t| > tiny`` (tiny itself is included: ``2⁻¹⁰²² · 2⁻⁵³``
    is a tie that rounds to 0).
    """
    return abs(x) <= TINY and x != 0.0


@jit
def init_state(s, x0, y0):
    """Fill ``s`` for a trajectory starting at (x0, y0), before state 0 is processed."""
    s[X] = x0
    s[Y] = y0
    s[DPREV] = np.nan  # no state before 0: no boundary or blow-up can be detected at 0
    s[YMAX] = -np.inf
    s[YMIN] = np.inf
    s[X2MAX] = 0.0
    s[CUM] = 0.0
    s[BLOWUP] = -1.0
    s[NBOUND] = 0.0
    s[LAST_T] = -1.0
    s[LAST_CUM] = 0.0


@inline
def record_boundary(s, t, x, y, cum_before, p, b_step, b_h, c_len, c_mean):
    """Register a cycle boundary (entry into phase I from phase IV) at state ``t``.

    Boundary k is stored in ``b_step[k]``, ``b_h[k] = H(x_t, y_t)``; cycle k − 1 (from
    boundary k − 1 to boundary k) gets its length and its mean of x² over the states
    ``[t_{k−1}, t_k)``. Entries past the arrays' length are counted but not stored.
    """
    k = int(s[NBOUND])
    if k < b_step.shape[0]:
        b_step[k] = int(t)
        b_h[k] = hamiltonian(x, y, p[ALPHA], p[BETA])
    if k >= 1 and k - 1 < c_len.shape[0]:
        length = t - s[LAST_T]
        c_len[k - 1] = int(length)
        c_mean[k - 1] = (cum_before - s[LAST_CUM]) / length
    s[NBOUND] = k + 1.0
    s[LAST_T] = t
    s[LAST_CUM] = cum_before


@jit
def finish_state(s):
    """Fold the final state (never stepped from) into the running extremes, if finite."""
    y = s[Y]
    xx = s[X] * s[X]
    if not (math.isfinite(xx) and math.isfinite(y)):
        return
    s[YMAX] = max(s[YMAX], y)
    s[YMIN] = min(s[YMIN], y)
    s[X2MAX] = max(s[X2MAX], xx)


@inline
def walk(s, p, t0, t_end, last, target, b_step, b_h, c_len, c_mean, rec_x, rec_y, rec_phase,
         stride):
    """Process the states ``t0 ≤ t < t_end`` of one trajectory (and ``t_end`` if ``last``).

    Processing state t: a non-finite x or y stops with NONFINITE, then ``1 + η y_t ≤ 0``
    stops with LEFT_DOMAIN (the step from t would leave the validity domain), then
    ``0 < |x_t| ≤ tiny``, the smallest normal double, stops with UNDERFLOW (x has lost
    precision and may round to 0: :func:`underflowed`; x = 0 from a start at x0 = 0 runs
    on); states at multiples of ``stride`` (> 0) are written to ``rec_*[t // stride]``; a
    cycle boundary is registered, and reaching ``target`` (> 0) boundaries stops with OK;
    the first blow-up (entry into phase III from phase II) is noted; then, unless t is the
    last state, the running extremes and the sum of x² take in state t and the map steps.

    Returns
    -------
    code : int
        OK if every state was processed (or the target was met), else NONFINITE,
        LEFT_DOMAIN or UNDERFLOW.
    t : int
        The state the trajectory stopped at (``t_end`` if it ran through).
    """
    eta = p[ETA]
    ea = p[EA]
    hb = p[HB]
    x = s[X]
    y = s[Y]
    dp = s[DPREV]
    t = t0
    code = OK
    while t < t_end or last:
        if not (math.isfinite(x) and math.isfinite(y)):
            code = NONFINITE
            break
        if 1.0 + eta * y <= 0.0:
            code = LEFT_DOMAIN
            break
        if underflowed(x):
            code = UNDERFLOW
            break
        xx = x * x
        d = ea - hb * xx
        if stride > 0 and t % stride == 0:
            r = t // stride
            rec_x[r] = x
            rec_y[r] = y
            rec_phase[r] = phase_code(d, y)
        if dp <= 0.0 and d > 0.0:
            record_boundary(s, float(t), x, y, s[CUM], p, b_step, b_h, c_len, c_mean)
            if target > 0 and s[NBOUND] >= target:
                break
        if s[BLOWUP] < 0.0 and dp > 0.0 and d <= 0.0 and y > 0.0:
            s[BLOWUP] = t
        if t == t_end:
            break
        s[YMAX] = max(s[YMAX], y)
        s[YMIN] = min(s[YMIN], y)
        s[X2MAX] = max(s[X2MAX], xx)
        s[CUM] += xx
        x, y = -(1.0 + eta * y) * x, y + d
        dp = d
        t += 1
    s[X] = x
    s[Y] = y
    s[DPREV] = dp
    return code, t


@jit
def run_trajectory(s, p, t0, t_end, last, stride, target, b_step, b_h, c_len, c_mean, rec_x,
                   rec_y, rec_phase):
    """Run states ``t0 ≤ t < t_end`` of one trajectory (and ``t_end`` if ``last``).

    ``s`` holds the state at ``t0`` (:func:`init_state` for ``t0 = 0``, else the previous
    chunk's end), so a run may be split into chunks. The trajectory is finished when it
    stopped (NONFINITE, LEFT_DOMAIN, UNDERFLOW), met its target, or ran its ``last``
    chunk; then the final state is folded into the summaries (:func:`finish_state`) and
    the code is MAX_STEPS when ``target > 0`` boundaries were not reached.

    Returns
    -------
    code, t : int
        As :func:`walk`.
    finished : bool
    """
    code, t = walk(s, p, t0, t_end, last, target, b_step, b_h, c_len, c_mean, rec_x, rec_y,
                   rec_phase, stride)
    finished = last or code != OK or t < t_end
    if finished:
        finish_state(s)
        if code == OK and target > 0 and s[NBOUND] < target:
            code = MAX_STEPS
    return code, t, finished


@jit
def cycle_extremes(x0, y0, p, b_step, n_bound, c_ymax, c_ymin, c_x2max):
    """Per-cycle extremes: y max, y min and max x² over the states ``[t_k, t_{k+1})``.

    Replays the map from (x0, y0) with :func:`walk`'s arithmetic (so the states are the
    same floats) up to the last stored boundary ``b_step[min(n_bound, width) − 1]``, and
    writes cycle k's extremes into ``c_ymax[k], c_ymin[k], c_x2max[k]`` for the completed
    cycles that fit (the others keep their fill values).
    """
    stored = min(n_bound, b_step.shape[0])
    n_cycles = min(stored - 1, c_ymax.shape[0])
    if n_cycles < 1:
        return
    eta = p[ETA]
    ea = p[EA]
    hb = p[HB]
    x = x0
    y = y0
    k = -1  # the cycle of state t (−1 before the first boundary)
    for t in range(b_step[n_cycles]):
        xx = x * x
        if t == b_step[k + 1]:
            k += 1
            c_ymax[k] = y
            c_ymin[k] = y
            c_x2max[k] = xx
        elif k >= 0:
            c_ymax[k] = max(c_ymax[k], y)
            c_ymin[k] = min(c_ymin[k], y)
            c_x2max[k] = max(c_x2max[k], xx)
        x, y = -(1.0 + eta * y) * x, y + (ea - hb * xx)
