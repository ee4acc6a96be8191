"""Compiled Lanczos iteration for the top eigenpair of a dense symmetric matrix.

Used where the top eigenvalue is needed at every step (the GD engine): forming the dense
Hessian once and running a few warm-started Lanczos steps on it costs far less than a
full ``eigh`` when d is in the hundreds.
"""

import numpy as np

from ._jit import jit


@jit
def top_eigenpair(H, v0, max_dim, tol, vec_out):
    """Largest eigenvalue λ and unit eigenvector of the symmetric matrix ``H``.

    Lanczos with full reorthogonalisation started from ``v0`` (the previous eigenvector
    when tracking a trajectory). After j steps the Ritz pair (θ_j, y_j) of the tridiagonal
    matrix T_j has residual ``|H y_j − θ_j y_j| = β_j |s_j[j]|`` (s_j the top eigenvector
    of T_j); the iteration stops when that residual is at most ``tol · max(|θ_j|, 1e-300)``,
    when the Krylov space becomes invariant, or at ``max_dim`` steps.

    Parameters
    ----------
    H : ndarray, shape (d, d)
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
        ``|H y − λ y|`` for the returned vector (exact, recomputed).
    steps : int
        Lanczos steps taken (matrix-vector products, plus one for the residual).
    """
    d = H.shape[0]
    m = min(max_dim, d)
    basis = np.empty((m, d))
    alpha = np.zeros(m)
    beta = np.zeros(m)
    norm0 = np.sqrt(np.sum(v0 * v0))
    if norm0 > 0.0 and np.isfinite(norm0):
        basis[0] = v0 / norm0
    else:
        basis[0] = 1.0 / np.sqrt(d)
    w = np.empty(d)
    lam = np.nan
    ritz = np.zeros(1)
    steps = 0
    for j in range(m):
        w[:] = H @ basis[j]
        steps += 1
        alpha[j] = np.dot(w, basis[j])
        # full reorthogonalisation, twice ("twice is enough"), against all previous vectors
        for _ in range(2):
            for i in range(j + 1):
                w -= np.dot(w, basis[i]) * basis[i]
        beta[j] = np.sqrt(np.dot(w, w))
        tri = np.zeros((j + 1, j + 1))
        for i in range(j + 1):
            tri[i, i] = alpha[i]
            if i > 0:
                tri[i, i - 1] = beta[i - 1]
                tri[i - 1, i] = beta[i - 1]
        values, vectors = np.linalg.eigh(tri)
        lam = values[j]
        ritz = vectors[:, j].copy()
        estimate = beta[j] * abs(ritz[j])
        invariant = beta[j] <= 1e-14 * max(abs(lam), 1e-300)
        if estimate <= tol * max(abs(lam), 1e-300) or invariant or j + 1 == m:
            break
        basis[j + 1] = w / beta[j]
    k = ritz.shape[0]
    vec_out[:] = 0.0
    for i in range(k):
        vec_out += ritz[i] * basis[i]
    vec_out /= np.sqrt(np.dot(vec_out, vec_out))
    if np.dot(vec_out, basis[0]) < 0.0:
        vec_out *= -1.0
    w[:] = H @ vec_out - lam * vec_out
    return lam, np.sqrt(np.dot(w, w)), steps + 1
