"""Compiled products with a symmetric matrix held as H + FᵀF (a dense part and a factor).

Plain loops rather than NumPy's BLAS-backed ``np.dot`` and ``@``: at the sizes used here (d up
to a few hundred, a few factor rows) they run as fast, Numba compiles them in a fraction of the
time, and every entry of H and F enters every product, so a NaN or ±inf entry always shows in
the result (NaN·0 is NaN; a BLAS may skip the columns where the vector is zero).
They are inline helpers (compiled into each kernel that calls them) and index 2-D arrays
directly, never through row views: called once per step or per Lanczos iteration, a separately
compiled function or a view (reference counted) costs tens of nanoseconds.
"""

from ._jit import inline


@inline(fastmath=True)
def dot(a, b):
    """Σ_i a_i b_i."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@inline
def scale_into(out, a, c):
    """out ← c a, entry by entry (no temporary; unlike ``out[:] = c * a``, nothing for Numba
    to compile beyond the loop: an array expression brings its broadcasting checks and their
    error messages, seconds of compile time per kernel)."""
    for i in range(out.shape[0]):
        out[i] = c * a[i]


@inline(fastmath=True)
def apply_sum(H, factor, v, out):
    """out ← (H + FᵀF) v, the factor applied as two thin products (O(rows · d)).

    Four rows of H are dotted with v at a time: each load of v serves four of them, and
    four sums are open at once (a product at d = 100 1.64–1.71 → 1.29–1.30 µs).
    """
    n = H.shape[0]
    d = v.shape[0]
    i = 0
    while i + 4 <= n:
        s0 = s1 = s2 = s3 = 0.0
        for j in range(d):
            t = v[j]
            s0 += H[i, j] * t
            s1 += H[i + 1, j] * t
            s2 += H[i + 2, j] * t
            s3 += H[i + 3, j] * t
        out[i] = s0
        out[i + 1] = s1
        out[i + 2] = s2
        out[i + 3] = s3
        i += 4
    for rest in range(i, n):
        s = 0.0
        for j in range(d):
            s += H[rest, j] * v[j]
        out[rest] = s
    for k in range(factor.shape[0]):
        s = 0.0
        for j in range(v.shape[0]):
            s += factor[k, j] * v[j]
        for j in range(v.shape[0]):
            out[j] += s * factor[k, j]


@inline(fastmath=True)
def add_gram(out, factor):
    """out ← out + FᵀF (rank-one updates, one row of F at a time)."""
    for k in range(factor.shape[0]):
        for i in range(out.shape[0]):
            a = factor[k, i]
            for j in range(out.shape[1]):
                out[i, j] += a * factor[k, j]
