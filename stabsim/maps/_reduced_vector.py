"""Branch-free block steppers for the reduced map: the ensemble kernels' inner loops.

A block is a few hundred trajectories ("lanes") in contiguous arrays that stay in L1; its
first ``m`` lanes are the active ones (the kernels compact stopped lanes away). The step
loop is outside, the lane loop inside, and each lane loop iteration keeps its lane in
registers for a few steps, so LLVM vectorises across lanes (SIMD) and the arrays are
touched once per pass. There are no checks here: the callers test each chunk's outcome
afterwards (``_reduced_ensemble``). No fast-math flags: the arithmetic is the scalar
path's (``_reduced_step.walk``), operation for operation, so results agree bit for bit.

The map (docs/theory.md §1), with ``ea = ηα``, ``hb = ηβ/2``::

    x_{t+1} = −(1 + η y_t) x_t,      y_{t+1} = y_t + (ea − hb x_t²)

Sign trick: within a pass of an even number of steps the lanes carry ``z_t = (−1)^t x_t``,
which obeys ``z_{t+1} = (1 + η y_t) z_t`` with no negation (round-to-nearest is symmetric
under sign change, so ``z_t = ±x_t`` exactly and ``z_t² = x_t²``); after the pass
``z = x`` again. This saves one of the eight vector operations per step.
"""

from __future__ import annotations

from .._jit import inline, jit

UNROLL = 4  #: steps per lane per pass of the final-state and light statistics steppers
STATS_UNROLL = 8  #: steps per lane per pass of the full statistics stepper


@inline
def advance(x, y, x_min, eta, ea, hb, m, nsteps):
    """Apply the map ``nsteps`` times to lanes ``0 ≤ i < m`` of the block, in place.

    ``x_min[i]`` is lowered to the smallest |x| of the states each pass of UNROLL steps
    starts from, and of the states the last ``nsteps % UNROLL`` steps start from (the
    caller sets where it starts, and bounds the states inside the passes).
    """
    for _ in range(nsteps // UNROLL):
        for i in range(m):
            xi = x[i]
            yi = y[i]
            ax = abs(xi)
            x_min[i] = ax if ax < x_min[i] else x_min[i]
            e = eta[i]
            a = ea[i]
            h = hb[i]
            for _k in range(UNROLL):  # even: z = ±x, see the module docstring
                xi, yi = (1.0 + e * yi) * xi, yi + (a - h * (xi * xi))
            x[i] = xi
            y[i] = yi
    for _ in range(nsteps % UNROLL):
        for i in range(m):
            xi = x[i]
            yi = y[i]
            ax = abs(xi)
            x_min[i] = ax if ax < x_min[i] else x_min[i]
            x[i] = -(1.0 + eta[i] * yi) * xi
            y[i] = yi + (ea[i] - hb[i] * (xi * xi))


@inline
def advance_light(v, eta, ea, hb, m, nsteps):
    """Like :func:`advance`, also keeping the chunk's light statistics in the rows of ``v``.

    Rows of ``v`` (shape (12, ≥ m)): 0 x, 1 y, 2 previous y-increment d, 3 the running sum
    of x² (the scalar path's order), then for this chunk's states (the caller resets
    them): 4 max y, 5 min y, 6 max x², 7 the number of states with d > 0, 8 the number of
    cycle boundaries (d ≤ 0 then d > 0), 9, 10 the x and the sum of x² before it at the
    last boundary, and 11 the smallest |x| of the states the passes start from (as in
    :func:`advance`).
    """
    for _ in range(nsteps // UNROLL):
        for i in range(m):
            xi = v[0, i]
            yi = v[1, i]
            dp = v[2, i]
            c = v[3, i]
            ymx = v[4, i]
            ymn = v[5, i]
            x2m = v[6, i]
            npos = v[7, i]
            nb = v[8, i]
            bx = v[9, i]
            bc = v[10, i]
            ax = abs(xi)
            v[11, i] = ax if ax < v[11, i] else v[11, i]
            e = eta[i]
            a = ea[i]
            h = hb[i]
            for _k in range(UNROLL):  # even: z = ±x, see the module docstring
                xx = xi * xi
                d = a - h * xx
                pos = d > 0.0
                ev = pos & (dp <= 0.0)
                bx = xi if ev else bx
                bc = c if ev else bc
                nb = nb + 1.0 if ev else nb
                npos = npos + 1.0 if pos else npos
                ymx = yi if yi > ymx else ymx
                ymn = yi if yi < ymn else ymn
                x2m = xx if xx > x2m else x2m
                c = c + xx
                dp = d
                xi, yi = (1.0 + e * yi) * xi, yi + d
            v[0, i] = xi
            v[1, i] = yi
            v[2, i] = dp
            v[3, i] = c
            v[4, i] = ymx
            v[5, i] = ymn
            v[6, i] = x2m
            v[7, i] = npos
            v[8, i] = nb
            v[9, i] = bx
            v[10, i] = bc
    for _ in range(nsteps % UNROLL):
        for i in range(m):
            xi = v[0, i]
            yi = v[1, i]
            xx = xi * xi
            d = ea[i] - hb[i] * xx
            pos = d > 0.0
            if pos and v[2, i] <= 0.0:
                v[9, i] = xi
                v[10, i] = v[3, i]
                v[8, i] += 1.0
            if pos:
                v[7, i] += 1.0
            v[4, i] = yi if yi > v[4, i] else v[4, i]
            v[5, i] = yi if yi < v[5, i] else v[5, i]
            v[6, i] = xx if xx > v[6, i] else v[6, i]
            v[11, i] = abs(xi) if abs(xi) < v[11, i] else v[11, i]
            v[3, i] = v[3, i] + xx
            v[2, i] = d
            v[0, i] = -(1.0 + eta[i] * yi) * xi
            v[1, i] = yi + d


@inline
def _stats_step(t, xi, yi, dp, ymx, ymn, x2m, cm, bl, c, bt, bx, by, bc, e, a, h):
    """Process state t of one lane (see ``_reduced_step.walk``) and step it; branch-free.

    Besides the running extremes, the sum of x², and the first blow-up (entry into phase
    III from II), it counts the cycle boundaries of the chunk in ``c`` and keeps the step,
    x, y and the sum of x² before the first of them in ``bt, bx, by, bc``.
    """
    xx = xi * xi
    d = a - h * xx
    ev = (dp <= 0.0) & (d > 0.0)
    first = ev & (c == 0.0)
    bt = t if first else bt
    bx = xi if first else bx
    by = yi if first else by
    bc = cm if first else bc
    c = c + 1.0 if ev else c
    bl = t if (bl < 0.0) & (dp > 0.0) & (d <= 0.0) & (yi > 0.0) else bl
    ymx = yi if yi > ymx else ymx
    ymn = yi if yi < ymn else ymn
    x2m = xx if xx > x2m else x2m
    cm = cm + xx
    return -(1.0 + e * yi) * xi, yi + d, d, ymx, ymn, x2m, cm, bl, c, bt, bx, by, bc


@jit
def _stats_pass(v, eta, ea, hb, m, t, count):
    """``count`` (a compile-time constant at each call site) steps of lanes ``< m`` from t."""
    x, y, dpa, ymxa, ymna, x2a, cma, bla, ca, bta, bxa, bya, bca = (
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12])
    for i in range(m):
        xi, yi, dp, ymx, ymn, x2m, cm, bl, c, bt, bx, by, bc = (
            x[i], y[i], dpa[i], ymxa[i], ymna[i], x2a[i], cma[i], bla[i], ca[i], bta[i],
            bxa[i], bya[i], bca[i])
        e = eta[i]
        a = ea[i]
        h = hb[i]
        for k in range(count):
            xi, yi, dp, ymx, ymn, x2m, cm, bl, c, bt, bx, by, bc = _stats_step(
                t + k, xi, yi, dp, ymx, ymn, x2m, cm, bl, c, bt, bx, by, bc, e, a, h)
        x[i], y[i], dpa[i], ymxa[i], ymna[i], x2a[i], cma[i] = xi, yi, dp, ymx, ymn, x2m, cm
        bla[i], ca[i], bta[i], bxa[i], bya[i], bca[i] = bl, c, bt, bx, by, bc


@inline
def advance_stats(v, eta, ea, hb, m, t0, nsteps):
    """Step lanes ``0 ≤ i < m`` ``nsteps`` times from state ``t0``, keeping statistics.

    ``v`` is a (13, ≥ m) array of rows x, y, previous y-increment, y max, y min, max x²,
    sum of x², first blow-up step, and — reset here, for this chunk — the number of cycle
    boundaries, and the step, x, y and sum of x² at the first of them.
    """
    v[8, :m] = 0.0
    passes = nsteps // STATS_UNROLL
    for j in range(passes):
        _stats_pass(v, eta, ea, hb, m, float(t0 + j * STATS_UNROLL), STATS_UNROLL)
    for j in range(passes * STATS_UNROLL, nsteps):
        _stats_pass(v, eta, ea, hb, m, float(t0 + j), 1)
