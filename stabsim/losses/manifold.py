"""A loss with a known manifold of minimisers Γ, for the flows of Arora et al.

See docs/theory.md §4.
"""

from __future__ import annotations

import numpy as np

from .._validate import finite_array, positive_float, symmetric
from ._base import Loss
from .kernels.manifold import ManifoldParams


class ManifoldFamily(Loss):
    """L(x, z) = ½ Σ_j h_j(x) (z_j − g_j(x))², θ = (x, z) ∈ R^m × R^k.

    With h_j(x) = c_j + ½ Σ_i s_ji (x_i − μ_ji)² > 0 and g_j(x) = ½ xᵀK_j x, the minimisers
    form the m-dimensional manifold Γ = {z = g(x)} (flat when K = 0), and L = 0 on Γ.

    On Γ, ∇²L = Dwᵀ diag(h) Dw with Dw = [−∇g(x), I_k] (∇g(x) is k × m with rows K_j x), so
    ker ∇²L = T_XΓ = span of the columns of [I_m; ∇g(x)], and the k nonzero eigenvalues are
    those of the k × k matrix diag(√h)(I + ∇g ∇gᵀ)diag(√h); on a flat Γ they are h_j(x).

    The manifold flows need a simple top eigenvalue λ1 > λ2 on the part of Γ they visit:
    choose c_1 clearly the largest and s small enough that h_1 stays on top (check with
    :meth:`normal_eigenvalues`).

    Parameters
    ----------
    c : array_like, shape (k,)
        c_j > 0, the value of h_j at its centre.
    s : array_like, shape (k, m)
        s_ji ≥ 0, the curvature of h_j along x_i; m is read from its shape.
    centres : array_like, shape (k, m), optional
        μ_j, the centre of h_j (zeros by default).
    K : array_like, shape (k, m, m), optional
        Symmetric K_j bending Γ (None: flat, K = 0).
    """

    name = "manifold"
    min_value = 0.0

    def __init__(self, c, s, centres=None, K=None):
        c = finite_array("c", c, ndim=1)
        k = c.shape[0]
        if k == 0:
            raise ValueError("c must have at least one entry")
        for j, cj in enumerate(c):
            positive_float(f"c[{j}]", float(cj))
        s = finite_array("s", s, ndim=2)
        if s.shape[0] != k or s.shape[1] == 0:
            raise ValueError(f"s must have shape ({k}, m) with m ≥ 1, got {s.shape}")
        if np.any(s < 0.0):
            raise ValueError("s must be nonnegative (so that every h_j > 0)")
        m = s.shape[1]
        centres = np.zeros((k, m)) if centres is None else centres
        centres = finite_array("centres", centres, shape=(k, m))
        self.curved = K is not None
        K = np.zeros((k, m, m)) if K is None else finite_array("K", K, shape=(k, m, m))
        K = symmetric("K", K)
        super().__init__(ManifoldParams(c, s, centres, K), m + k, check=False)
        self.m, self.k = m, k
        self.c, self.s, self.centres, self.K = self.params  # views of the record's arrays

    def __repr__(self) -> str:
        return f"ManifoldFamily(m={self.m}, k={self.k}, curved={self.curved})"

    def _x(self, x) -> np.ndarray:
        return finite_array("x", x, shape=(self.m,))

    def split(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """(x, z) = (θ[:m], θ[m:])."""
        theta = self.check_point(theta)
        return theta[: self.m], theta[self.m :]

    def h(self, x) -> np.ndarray:
        """h(x) = c + ½ Σ_i s_ji (x_i − μ_ji)², shape (k,)."""
        x = self._x(x)
        return self.c + 0.5 * np.sum(self.s * (x - self.centres) ** 2, axis=1)

    def g(self, x) -> np.ndarray:
        """g(x) = (½ xᵀK_j x)_j, shape (k,): Γ = {z = g(x)}."""
        x = self._x(x)
        return 0.5 * np.einsum("i,jil,l->j", x, self.K, x)

    def grad_g(self, x) -> np.ndarray:
        """∇g(x), shape (k, m), rows K_j x."""
        return self.K @ self._x(x)

    def on_manifold(self, x) -> np.ndarray:
        """The point X = (x, g(x)) of Γ."""
        return np.concatenate([self._x(x), self.g(x)])

    def _normal_eig(self, x):
        """Eigenpairs (ascending) of M = diag(√h)(I + ∇g∇gᵀ)diag(√h)."""
        root_h = np.sqrt(self.h(x))
        A = self.grad_g(x)
        M = (np.eye(self.k) + A @ A.T) * np.outer(root_h, root_h)
        lam, q = np.linalg.eigh(M)
        return lam, q, root_h, A

    def normal_eigenvalues(self, x) -> np.ndarray:
        """The k nonzero eigenvalues of ∇²L at X = (x, g(x)) ∈ Γ, in decreasing order."""
        return self._normal_eig(x)[0][::-1].copy()

    def lambda1(self, x) -> float:
        """λ1(∇²L(X)) at X = (x, g(x)) ∈ Γ: the top eigenvalue of diag(√h)(I + ∇g∇gᵀ)diag(√h)."""
        return float(self._normal_eig(x)[0][-1])

    def top_eigenvector(self, x) -> np.ndarray:
        """Unit top eigenvector u = Dwᵀ diag(√h) q/|·| of ∇²L at X ∈ Γ (q: top of M).

        Sign convention: the largest-magnitude z-component of u is positive.
        """
        lam, q, root_h, A = self._normal_eig(x)
        r = root_h * q[:, -1]
        u = np.concatenate([-A.T @ r, r])
        u /= np.linalg.norm(u)
        z = u[self.m :]
        return u if z[np.argmax(np.abs(z))] > 0 else -u

    def grad_lambda1(self, x) -> np.ndarray:
        """∇_x λ1(x, g(x)), the gradient of λ1 along Γ in the chart x, shape (m,).

        With (λ, q) the top eigenpair of M, r = diag(√h) q and e_j = ∇h_j (*derived*):
        ∇_x λ1 = λ Σ_j (q_j²/h_j) e_j + 2 Σ_j r_j K_j (∇gᵀ r).
        """
        x = self._x(x)
        lam, q, root_h, A = self._normal_eig(x)
        lam1, q1 = lam[-1], q[:, -1]
        r = root_h * q1
        e = self.s * (x - self.centres)  # rows ∇h_j
        return lam1 * (q1 * q1 / (root_h * root_h)) @ e + 2.0 * np.einsum(
            "j,jil,l->i", r, self.K, A.T @ r
        )

    def tangent_basis(self, x) -> np.ndarray:
        """T = [I_m; ∇g(x)], shape (m + k, m): its columns span T_XΓ."""
        return np.vstack([np.eye(self.m), self.grad_g(x)])

    def tangent_projection(self, theta, tol: float = 1e-8) -> np.ndarray:
        """P_Γ(X) = T (TᵀT)⁻¹ Tᵀ, the orthogonal projection onto T_XΓ, shape (d, d), taken
        at (x, g(x)).

        Raises ValueError if θ is off Γ: farther than ``tol`` (relative) from it along z,
        and with |∇L(θ)| above :data:`~stabsim.flows.manifold_geometry.LIMIT_TOL`, the
        test :func:`~stabsim.flows.limit_map` stops on and ``manifold_flow``'s start
        passes (so Φ(θ) as ``limit_map`` returns it, within about LIMIT_TOL/μ of Γ for μ
        the smallest normal curvature, is accepted: 5e-8 off along z at μ = 1e-3).
        """
        from ..flows.manifold_geometry import LIMIT_TOL

        x, z = self.split(theta)
        off = np.max(np.abs(z - self.g(x)), initial=0.0)
        if off > tol * (1.0 + np.max(np.abs(z))):
            grad_norm = float(np.linalg.norm(self.grad(theta)))
            if not grad_norm <= LIMIT_TOL:
                raise ValueError(f"theta is not on the manifold: max |z − g(x)| = {off:.3g} "
                                 f"and |∇L(theta)| = {grad_norm:.3g} > {LIMIT_TOL:g}")
        T = self.tangent_basis(x)
        return T @ np.linalg.solve(T.T @ T, T.T)

    def projected_grad_lambda1(self, x) -> np.ndarray:
        """P_Γ ∇λ1(∇²L(X)) at X = (x, g(x)), shape (d,): T (TᵀT)⁻¹ ∇_x λ1.

        This is the field of the manifold flows: dX/dτ = −(1/8) P_Γ ∇λ1 for GD on sqrt(L).
        """
        T = self.tangent_basis(x)
        return T @ np.linalg.solve(T.T @ T, self.grad_lambda1(x))
