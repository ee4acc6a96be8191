"""The semidefinite complementarity problem (SDCP) of the central flow with k critical eigenvalues.

With U = [u_1 … u_k] an orthonormal basis of the critical eigenspace, the vectors
T_ab = ∇³L[u_a, u_b] ∈ R^d (symmetric in a, b) and the gradient ∇L define

    G_(ab),(cd) = ⟨T_ab, T_cd⟩     (a Gram matrix: G ⪰ 0 as a map on symmetric k×k matrices),
    C_cd        = ⟨−∇L, T_cd⟩.

The SDCP asks for S ∈ Sym(k) with

    S ⪰ 0,     ∇f(S) = ½ G S − C ⪰ 0,     ⟨S, ∇f(S)⟩ = 0,

where (G S)_cd = Σ_ab G_(cd),(ab) S_ab. These are exactly the KKT conditions of the convex
quadratic programme over the PSD cone

    min_{S ⪰ 0}  f(S) = ¼ ⟨S, G S⟩ − ⟨C, S⟩,

whose gradient is ½ G S − C (G is self-adjoint). For k = 1: f(s) = ¼ g s² − c s with
g = |∇S|², c = ⟨−∇L, ∇S⟩, so s = max(0, 2c/g) — the σ² of the one-eigenvalue flow.

The vector Σ_ab S_ab T_ab = M s (M the map s ↦ Σ S_ab T_ab) is unique (f is strictly convex
in it); S itself is unique when G is nonsingular on Sym(k). When it is not (e.g. T_12 = 0 for
two decoupled blocks, leaving S_12 free), the solver returns the minimum-norm minimiser when
it is interior to the cone, and a minimiser otherwise.

Solver: in the orthonormal coordinates s = svec(S) of Sym(k) (dimension k(k+1)/2),

1. the unconstrained minimum-norm minimiser s_free = 2 G⁺ c; if S_free ⪰ 0 it solves the
   SDCP exactly (the usual case along the flow: all critical eigenvalues held);
2. otherwise accelerated projected gradient (FISTA with gradient restart, step 1/Lip,
   Lip = ½ λ_max(G); projection onto the PSD cone by clipping eigenvalues), then
3. semismooth Newton on the natural residual F(s) = s − Π(s − ∇f(s)/Lip) with the
   generalised Jacobian of the projection (Löwner divided differences), which converges
   quadratically once the face of the solution is identified, to a residual near round-off.

Convergence is measured by the natural residual |F(s)| relative to the problem's own scale
max(|S|, |C|/Lip) (the size of the first projected gradient step from 0).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .. import _validate as check
from .._result import Result
from .._status import Status


@dataclasses.dataclass(repr=False)
class SDCPSolution(Result):
    """A solution of the SDCP (the protocol of :class:`stabsim._result.Result`).

    Status OK when ``residual ≤ tol``; NOT_CONVERGED (naming ``max_iter``) when the
    iterations ran out first; FLAT_SHARPNESS when G = 0 and C has a positive eigenvalue
    (the objective is linear and unbounded below on the cone: no S exists); NONFINITE when
    the data were not finite. ``counters["iterations"]``: projected-gradient plus Newton
    iterations (0 when the free minimiser was PSD).

    Attributes
    ----------
    S : ndarray, shape (k, k)
        The PSD solution.
    residual : float
        Natural residual |S − Π(S − ∇f(S)/Lip)|_F relative to the problem scale.
    """

    S: np.ndarray
    residual: float

    def headline(self) -> dict:
        return {"k": self.S.shape[0], "residual": self.residual}

    def to_xarray(self):
        """S on dimensions ``a``, ``b`` and the residual, as an ``xarray.Dataset``."""
        import xarray as xr

        from .._export import finish

        ds = xr.Dataset({"S": (("a", "b"), self.S), "residual": ((), self.residual)},
                        attrs=self._export_attrs())
        return finish(ds, self.parameters)


def sdcp_solution(S, residual, iterations, status, parameters=None) -> SDCPSolution:
    """An :class:`SDCPSolution` (``parameters``: those of :func:`solve_sdcp`, if any)."""
    return SDCPSolution(status=status, counters={"iterations": int(iterations)},
                        parameters=parameters or {}, knob="max_iter", S=S,
                        residual=residual)


@functools.lru_cache(maxsize=16)
def _basis(k):
    """An orthonormal basis B_p of Sym(k) (E_ii, and (E_ij + E_ji)/√2 for i < j)."""
    out = []
    for i in range(k):
        for j in range(i, k):
            b = np.zeros((k, k))
            if i == j:
                b[i, i] = 1.0
            else:
                b[i, j] = b[j, i] = np.sqrt(0.5)
            out.append(b)
    out = np.array(out)
    out.flags.writeable = False
    return out


def svec(S, basis):
    """Coordinates ⟨B_p, S⟩ of a symmetric matrix in ``basis``."""
    return np.einsum("pij,ij->p", basis, S)


def smat(s, basis):
    """The symmetric matrix Σ_p s_p B_p."""
    return np.einsum("p,pij->ij", s, basis)


def sdcp_data(T, grad):
    """G and C of the module docstring from T_ab = ∇³L[u_a, u_b] (shape (k, k, d)) and ∇L."""
    T = np.asarray(T, dtype=float)
    return np.einsum("abi,cdi->abcd", T, T), -T @ np.asarray(grad, dtype=float)


def sdcp_objective(S, G, C):
    """f(S) = ¼⟨S, G S⟩ − ⟨C, S⟩."""
    return 0.25 * float(np.einsum("ab,abcd,cd->", S, G, S)) - float(np.sum(C * S))


def sdcp_gradient(S, G, C):
    """∇f(S) = ½ G S − C; along the flow this is −A(S)/η, minus the critical block's rate."""
    return 0.5 * np.einsum("cdab,ab->cd", G, S) - C


def _project(X):
    """Nearest PSD matrix in Frobenius norm (clip the eigenvalues at 0)."""
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    return (Q * np.maximum(lam, 0.0)) @ Q.T


def _project_jacobian(X, basis):
    """A generalised Jacobian of the projection at X, in svec coordinates.

    DΠ(X)[H] = Q (Γ ∘ QᵀHQ) Qᵀ with Γ_ij = (λ_i⁺ − λ_j⁺)/(λ_i − λ_j), and 1{λ_i > 0} when
    λ_i = λ_j (the Löwner divided differences of max(·, 0)).
    """
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    plus = np.maximum(lam, 0.0)
    diff = lam[:, None] - lam[None, :]
    # eigenvalues closer than round-off of the largest are treated as equal
    same = np.abs(diff) <= 1e-14 * max(1.0, float(np.abs(lam).max()))
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(same, (lam[:, None] > 0).astype(float),
                         (plus[:, None] - plus[None, :]) / np.where(same, 1.0, diff))
    cols = [svec(Q @ (gamma * (Q.T @ b @ Q)) @ Q.T, basis) for b in basis]
    return np.array(cols).T


def solve_sdcp(G, C, *, tol: float = 1e-12, max_iter: int = 20000) -> SDCPSolution:
    """Solve the SDCP S ⪰ 0, ½GS − C ⪰ 0, ⟨S, ½GS − C⟩ = 0 (module docstring).

    Parameters
    ----------
    G : array_like, shape (k, k, k, k)
        G_(ab),(cd), symmetric under a↔b, c↔d and (ab)↔(cd), PSD as a map on Sym(k).
    C : array_like, shape (k, k)
        Symmetric.
    tol : float
        Target relative natural residual.
    max_iter : int
        Budget of projected-gradient iterations.

    Returns
    -------
    SDCPSolution
    """
    C = check.finite_array("C", C, ndim=2)
    k = C.shape[0]
    if C.shape != (k, k) or k == 0:
        raise ValueError(f"C must be a non-empty square matrix, got shape {C.shape}")
    G = check.finite_array("G", G)
    if G.size != k**4:
        raise ValueError(f"G must have shape ({k}, {k}, {k}, {k}) for C of shape {C.shape}, "
                         f"got {G.shape}")
    G = G.reshape(k, k, k, k)
    tol = check.positive_float("tol", tol)
    max_iter = check.nonnegative_int("max_iter", max_iter, minimum=1)
    parameters = {"k": k, "tol": tol, "max_iter": max_iter}
    basis = _basis(k)
    Gs = np.einsum("pab,abcd,qcd->pq", basis, G, basis)
    Gs = 0.5 * (Gs + Gs.T)
    cs = svec(0.5 * (C + C.T), basis)
    g_values, g_vectors = np.linalg.eigh(Gs)
    lip = 0.5 * float(g_values[-1])
    if not lip > 0.0:
        # f is linear: bounded below on the cone only if C ⪯ 0, with minimiser S = 0
        ok = float(np.linalg.eigvalsh(C)[-1]) <= 0.0
        return sdcp_solution(np.zeros((k, k)), 0.0 if ok else np.inf, 0,
                             Status.OK if ok else Status.FLAT_SHARPNESS, parameters)
    step = 1.0 / lip

    def grad(s):
        return 0.5 * Gs @ s - cs

    def proj(s):
        return svec(_project(smat(s, basis)), basis)

    def residual(s):
        r = s - proj(s - step * grad(s))
        scale = max(float(np.linalg.norm(s)), step * float(np.linalg.norm(cs)), 1e-300)
        return r, float(np.linalg.norm(r)) / scale

    # 1. the free minimum-norm minimiser; the pseudo-inverse's cut (1e-12 of the largest
    # eigenvalue, ~1e4 ulps) drops directions of G that are zero up to round-off (e.g. S_12
    # for decoupled blocks, where T_12 is ~1e-16 of T_11)
    keep = g_values > 1e-12 * g_values[-1]
    s = 2.0 * g_vectors[:, keep] @ ((g_vectors[:, keep].T @ cs) / g_values[keep])
    s = proj(s)
    _, res = residual(s)
    if res <= tol:
        return sdcp_solution(smat(s, basis), res, 0, Status.OK, parameters)

    # 2. FISTA with gradient restart, to a coarse residual (Newton takes it from there)
    iters, y, s_old, theta = 0, s.copy(), s.copy(), 1.0
    coarse = max(tol, 1e-6)
    while iters < max_iter:
        iters += 1
        s_new = proj(y - step * grad(y))
        if (y - s_new) @ (s_new - s_old) > 0.0:
            # restart (O'Donoghue & Candès): the momentum points against the gradient mapping
            theta, y = 1.0, s_new
        else:
            theta_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta ** 2))
            y = s_new + ((theta - 1.0) / theta_new) * (s_new - s_old)
            theta = theta_new
        s_old = s_new
        if iters % 10 == 0 and residual(s_old)[1] <= coarse:
            break
    s = s_old

    # 3. semismooth Newton on F(s) = s − Π(s − step ∇f(s)), with backtracking on |F|
    eye = np.eye(cs.shape[0])
    r, res = residual(s)
    for _ in range(50):
        if res <= tol:
            break
        x = s - step * grad(s)
        jac = eye - _project_jacobian(smat(x, basis), basis) @ (eye - 0.5 * step * Gs)
        delta = -np.linalg.lstsq(jac, r, rcond=None)[0]
        alpha, accepted = 1.0, False
        for _ in range(30):
            r_new, res_new = residual(s + alpha * delta)
            if res_new < (1.0 - 1e-4 * alpha) * res:
                s, r, res, accepted = s + alpha * delta, r_new, res_new, True
                break
            alpha *= 0.5
        iters += 1
        if not accepted:
            break

    # 4. fall back on projected gradient if Newton stalled above tol
    while res > tol and iters < max_iter:
        for _ in range(10):
            s = proj(s - step * grad(s))
        iters += 10
        r, res = residual(s)
    S = _project(smat(s, basis))
    return sdcp_solution(S, res, iters, Status.OK if res <= tol else Status.NOT_CONVERGED,
                         parameters)
