"""Compiled products with a symmetric matrix held as H + FᵀF (a dense part and a factor).

Plain loops rather than NumPy's BLAS-backed ``np.dot`` and ``@``: at the sizes used here (d up
to a few hundred, a few factor rows) they run as fast, Numba compiles them in a fraction of the
time, and every entry of H and F enters every product, so a NaN or ±inf entry always shows in
the result (NaN·0 is NaN; a BLAS may skip the columns where the vector is zero).
"""

from ._jit import jit


@jit(fastmath=True)
def dot(a, b):
    """Σ_i a_i b_i."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@jit(fastmath=True)
def apply_sum(H, factor, v, out):
    """out ← (H + FᵀF) v, the factor applied as two thin products (O(rows · d))."""
    for i in range(H.shape[0]):
        out[i] = dot(H[i], v)
    for k in range(factor.shape[0]):
        fk = factor[k]
        s = dot(fk, v)
        for j in range(v.shape[0]):
            out[j] += s * fk[j]


@jit(fastmath=True)
def add_gram(out, factor):
    """out ← out + FᵀF (rank-one updates, one row of F at a time)."""
    for k in range(factor.shape[0]):
        fk = factor[k]
        for i in range(out.shape[0]):
            a = fk[i]
            row = out[i]
            for j in range(fk.shape[0]):
                row[j] += a * fk[j]
