"""Compiled products with a symmetric matrix held as H + FᵀF (a dense part, given by its upper
triangle, and a factor).

Plain loops rather than NumPy's BLAS-backed ``np.dot`` and ``@``: at the sizes used here (d up
to a few hundred, a few factor rows) they run as fast, Numba compiles them in a fraction of the
time, and every entry of H and F enters every product, so a NaN or ±inf entry always shows in
the result (NaN·0 is NaN; a BLAS may skip the columns where the vector is zero).
They are inline helpers (compiled into each kernel that calls them) and index 2-D arrays
directly, never through row views: called once per step or per Lanczos iteration, a view
costs an atomic update of its array's reference count and another to undo it.
"""

import numpy as np

from ._jit import inline


@inline(fastmath=True)
def dot(a, b):
    """Σ_i a_i b_i."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


#: a sum of squares in [SQUARES_LOW, inf) is right to round-off: a square below 2^-1022 is
#: rounded to a multiple of 2^-1074 (or to 0), an error of at most 2^-1075, so for d < 2^100
#: such errors add up to less than 2^-75 of the sum; outside it, squares overflowed or
#: underflowed
SQUARES_LOW = 2.0**-900


@inline
def norm_of(v, square):
    """|v| given ``square`` = Σ v_i² as :func:`dot` made it: √square where that sum can be
    trusted, and otherwise s·|v/s| with s = max |v_i|, so that entries past 1e154 (whose
    squares overflow) or below 1e-154 (whose squares underflow) give their norm; inf if an
    entry is or if the norm itself is past the largest double, NaN if an entry is NaN. The
    engines take the gradient's norm so, from the square they need anyway: one comparison a
    step."""
    if SQUARES_LOW <= square < np.inf or square != square:
        return np.sqrt(square)
    big = 0.0
    for i in range(v.shape[0]):
        big = max(big, abs(v[i]))
    if big == 0.0 or big == np.inf:
        return big
    total = 0.0
    for i in range(v.shape[0]):
        x = v[i] / big  # not a product with 1/big, which overflows for a subnormal big
        total += x * x
    return big * np.sqrt(total)


@inline
def scale_into(out, a, c):
    """out ← c a, entry by entry (no temporary; unlike ``out[:] = c * a``, nothing for Numba
    to compile beyond the loop: an array expression brings its broadcasting checks and their
    error messages, seconds of compile time per kernel)."""
    for i in range(out.shape[0]):
        out[i] = c * a[i]


@inline(fastmath=True)
def apply_sum(H, factor, v, out):
    """out ← (H + FᵀF) v for H symmetric and given by its upper triangle (the entries below
    the diagonal are never read), the factor applied as two thin products (O(rows · d)).

    Rows are taken four at a time: their 4 × 4 diagonal block directly, then one sweep over
    the columns j to the right of it that adds H_ij v_j to the four row sums and Σ_i H_ij v_i
    to out_j (the mirrored entries below the diagonal). Each entry of the upper triangle is
    read once: at d = 100 a product costs what one over all of H did (0.91 against
    0.91 µs), at d = 1000 it takes 153 against 278 µs.
    """
    d = v.shape[0]
    for i in range(d):
        out[i] = 0.0
    i = 0
    while i + 4 <= d:
        v0, v1, v2, v3 = v[i], v[i + 1], v[i + 2], v[i + 3]
        h01, h02, h03 = H[i, i + 1], H[i, i + 2], H[i, i + 3]
        h12, h13, h23 = H[i + 1, i + 2], H[i + 1, i + 3], H[i + 2, i + 3]
        s0 = H[i, i] * v0 + h01 * v1 + h02 * v2 + h03 * v3
        s1 = h01 * v0 + H[i + 1, i + 1] * v1 + h12 * v2 + h13 * v3
        s2 = h02 * v0 + h12 * v1 + H[i + 2, i + 2] * v2 + h23 * v3
        s3 = h03 * v0 + h13 * v1 + h23 * v2 + H[i + 3, i + 3] * v3
        first = i + 4
        # counted from 0: a loop over range(first, d) did not vectorise
        for c in range(d - first):
            j = first + c
            t = v[j]
            a0, a1, a2, a3 = H[i, j], H[i + 1, j], H[i + 2, j], H[i + 3, j]
            s0 += a0 * t
            s1 += a1 * t
            s2 += a2 * t
            s3 += a3 * t
            out[j] += v0 * a0 + v1 * a1 + v2 * a2 + v3 * a3
        out[i] += s0
        out[i + 1] += s1
        out[i + 2] += s2
        out[i + 3] += s3
        i += 4
    for r in range(i, d):  # the last d mod 4 rows
        s = H[r, r] * v[r]
        for c in range(d - r - 1):
            j = r + 1 + c
            s += H[r, j] * v[j]
            out[j] += H[r, j] * v[r]
        out[r] += s
    for k in range(factor.shape[0]):
        s = 0.0
        for j in range(d):
            s += factor[k, j] * v[j]
        for j in range(d):
            out[j] += s * factor[k, j]


@inline(fastmath=True)
def add_gram(out, factor):
    """out ← out + FᵀF (rank-one updates, one row of F at a time)."""
    for k in range(factor.shape[0]):
        for i in range(out.shape[0]):
            a = factor[k, i]
            for j in range(out.shape[1]):
                out[i, j] += a * factor[k, j]
