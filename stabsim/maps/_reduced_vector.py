"""Branch-free block steppers for the reduced map: the ensemble kernels' inner loops.

A block is a few hundred trajectories ("lanes") in contiguous arrays that stay in L1. The
step loop is outside, the lane loop inside, and each lane loop iteration keeps its lane in
registers for :data:`UNROLL` steps, so LLVM vectorises across lanes (SIMD) and the arrays
are touched once per ``UNROLL`` steps. There are no checks here: the callers test each
chunk's outcome afterwards (``_reduced_ensemble``). No fast-math flags: the arithmetic is
the scalar path's (``_reduced_step.walk``), operation for operation, so results agree bit
for bit.

The map (THEORY §1), with ``ea = ηα``, ``hb = ηβ/2``::

    x_{t+1} = −(1 + η y_t) x_t,      y_{t+1} = y_t + (ea − hb x_t²)
"""

from __future__ import annotations

from .._jit import jit

UNROLL = 8  #: steps per lane per pass over the block


@jit
def advance(x, y, eta, ea, hb, nsteps):
    """Apply the map ``nsteps`` times to every lane of the block, in place."""
    m = x.shape[0]
    for _ in range(nsteps // UNROLL):
        for i in range(m):
            xi = x[i]
            yi = y[i]
            e = eta[i]
            a = ea[i]
            h = hb[i]
            for _k in range(UNROLL):
                xi, yi = -(1.0 + e * yi) * xi, yi + (a - h * (xi * xi))
            x[i] = xi
            y[i] = yi
    for _ in range(nsteps % UNROLL):
        for i in range(m):
            xi = x[i]
            yi = y[i]
            x[i] = -(1.0 + eta[i] * yi) * xi
            y[i] = yi + (ea[i] - hb[i] * (xi * xi))


@jit
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
def _stats_pass(v, eta, ea, hb, t, count):
    """``count`` (a compile-time constant at each call site) steps of every lane from t."""
    x, y, dpa, ymxa, ymna, x2a, cma, bla, ca, bta, bxa, bya, bca = (
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12])
    for i in range(v.shape[1]):
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


@jit
def advance_stats(v, eta, ea, hb, t0, nsteps):
    """Step every lane ``nsteps`` times from state ``t0``, keeping per-lane statistics.

    ``v`` is a (13, m) array of rows x, y, previous y-increment, y max, y min, max x²,
    sum of x², first blow-up step, and — reset here, for this chunk — the number of cycle
    boundaries, and the step, x, y and sum of x² at the first of them.
    """
    v[8, :] = 0.0
    passes = nsteps // UNROLL
    for j in range(passes):
        _stats_pass(v, eta, ea, hb, float(t0 + j * UNROLL), UNROLL)
    for j in range(passes * UNROLL, nsteps):
        _stats_pass(v, eta, ea, hb, float(t0 + j), 1)
