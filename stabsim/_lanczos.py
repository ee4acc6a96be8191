"""Compiled Lanczos iteration for the top eigenpair of a dense symmetric matrix.

Used where the top eigenvalue is needed at every step (the GD engine): forming the dense
Hessian once and running a few warm-started Lanczos steps on it costs far less than a
full ``eigh`` when d is in the hundreds.
"""

import numpy as np

from ._jit import jit
from ._linalg import apply_sum, dot


@jit
def top_eigenpair(H, factor, v0, max_dim, tol, vec_out):
    """Largest eigenvalue λ and unit eigenvector of the symmetric matrix ``H + FᵀF``.

    Lanczos with full reorthogonalisation started from ``v0`` (the previous eigenvector
    when tracking a trajectory). After j steps the Ritz pair (θ_j, y_j) of the tridiagonal
    matrix T_j has residual ``|H y_j − θ_j y_j| = β_j |s_j[j]|`` (s_j the top eigenvector
    of T_j); the iteration stops when that residual is at most ``tol · max(|θ_j|, 1e-300)``,
    when the Krylov space becomes invariant, or at ``max_dim`` steps. A matrix with a
    non-finite entry gives NaN for λ and the residual (see :mod:`stabsim._linalg`).

    Parameters
    ----------
    H : ndarray, shape (d, d)
    factor : ndarray, shape (r, d)
        F, a part of the matrix kept as a factor (r = 0: the matrix is ``H``).
    v0 : ndarray, shape (d,)
        Start vector; a zero or non-finite start falls back to the all-ones vector.
    max_dim : int
        Largest Krylov dimension (capped at d).
    tol : float
        Relative residual tolerance.
    vec_out : ndarray, shape (d,)
        Receives the unit Ritz vector, signed so that ``vec_out · v0 >= 0``.

    Returns
    -------
    lam : float
        The top Ritz value.
    residual : float
        ``|(H + FᵀF) y − λ y|`` for the returned vector, from a product with the matrix: after
        one step (y = v0/|v0|, λ = its Rayleigh quotient) the first product gave it as β_0.
    steps : int
        Products with the matrix.
    """
    d = H.shape[0]
    m = min(max_dim, d)
    basis = np.empty((m, d))
    alpha = np.zeros(m)
    beta = np.zeros(m)
    norm0 = np.sqrt(dot(v0, v0))
    if norm0 > 0.0 and np.isfinite(norm0):
        basis[0] = v0 / norm0
    else:
        basis[0] = 1.0 / np.sqrt(d)
    w = np.empty(d)
    ritz_buf = np.zeros(m)
    lam = np.nan
    steps = 0
    j = 0
    for j in range(m):
        apply_sum(H, factor, basis[j], w)
        steps += 1
        alpha[j] = dot(w, basis[j])
        # full reorthogonalisation, twice ("twice is enough"), against all previous vectors
        for _ in range(2):
            for i in range(j + 1):
                c = dot(w, basis[i])
                for r in range(d):
                    w[r] -= c * basis[i, r]
        beta[j] = np.sqrt(dot(w, w))
        if not np.isfinite(beta[j]):
            vec_out[:] = basis[0]
            return np.nan, np.nan, steps
        lam = tridiagonal_top(alpha, beta, j + 1, ritz_buf)
        estimate = beta[j] * abs(ritz_buf[j])
        invariant = beta[j] <= 1e-14 * max(abs(lam), 1e-300)
        if estimate <= tol * max(abs(lam), 1e-300) or invariant or j + 1 == m:
            break
        basis[j + 1] = w / beta[j]
    vec_out[:] = 0.0
    for i in range(j + 1):
        c = ritz_buf[i]
        for r in range(d):
            vec_out[r] += c * basis[i, r]
    vec_out /= np.sqrt(dot(vec_out, vec_out))
    if dot(vec_out, basis[0]) < 0.0:
        vec_out *= -1.0
    if j == 0:  # w = H v0 − α_0 v0 already: its norm is the residual of (α_0, v0)
        return lam, beta[0], steps
    apply_sum(H, factor, vec_out, w)
    for r in range(d):
        w[r] -= lam * vec_out[r]
    return lam, np.sqrt(dot(w, w)), steps + 1


@jit
def tridiagonal_top(diag, offdiag, k, vec_out):
    """Largest eigenvalue of the k×k symmetric tridiagonal matrix T and its unit eigenvector.

    T has ``diag[:k]`` on the diagonal and ``offdiag[:k-1]`` beside it. The eigenvalue comes
    from bisection on the Sturm count (the number of negative pivots of the LDLᵀ
    factorisation of T − xI is the number of eigenvalues below x), started on the
    Gershgorin interval and run to machine precision; the eigenvector from two steps of
    inverse iteration. O(k) work per bisection step instead of the O(k³) of a full ``eigh``.
    The first k entries of ``vec_out`` receive the eigenvector (sign: first entry ≥ 0).
    """
    lo = np.inf
    hi = -np.inf
    for i in range(k):
        radius = (abs(offdiag[i - 1]) if i > 0 else 0.0) + (abs(offdiag[i]) if i < k - 1 else 0.0)
        lo = min(lo, diag[i] - radius)
        hi = max(hi, diag[i] + radius)
    scale = max(abs(lo), abs(hi), 1e-300)
    tiny = 1e-300
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hi - lo <= 4e-16 * scale or mid == lo or mid == hi:
            break
        below = 0
        pivot = 1.0
        for i in range(k):
            pivot = diag[i] - mid - (offdiag[i - 1] ** 2 / pivot if i > 0 else 0.0)
            if pivot == 0.0:
                pivot = -tiny
            if pivot < 0.0:
                below += 1
        if below == k:  # every eigenvalue lies below mid
            hi = mid
        else:
            lo = mid
    lam = hi
    # inverse iteration: solve (T − λI) s = s_prev by Gaussian elimination (Thomas algorithm)
    shift = lam + 2e-16 * scale
    vec = vec_out[:k]
    vec[:] = 1.0
    upper = np.empty(k)
    rhs = np.empty(k)
    for _ in range(2):
        pivot = diag[0] - shift
        pivot = pivot if abs(pivot) > tiny else tiny
        upper[0] = offdiag[0] / pivot if k > 1 else 0.0
        rhs[0] = vec[0] / pivot
        for i in range(1, k):
            pivot = diag[i] - shift - offdiag[i - 1] * upper[i - 1]
            pivot = pivot if abs(pivot) > tiny else tiny
            upper[i] = offdiag[i] / pivot if i < k - 1 else 0.0
            rhs[i] = (vec[i] - offdiag[i - 1] * rhs[i - 1]) / pivot
        vec[k - 1] = rhs[k - 1]
        for i in range(k - 2, -1, -1):
            vec[i] = rhs[i] - upper[i] * vec[i + 1]
        vec /= np.sqrt(dot(vec, vec))
    if vec[0] < 0.0:
        vec *= -1.0
    return lam
