"""Projection onto the stable set M of Damian et al. (docs/theory.md §2).

    M = { θ : S(θ) ≤ 2/η  and  u(θ)·∇L(θ) = 0 }

Two constraint functions describe M: ``c1(θ) = S(θ) − 2/η ≤ 0`` and ``c2(θ) = u(θ)·∇L(θ) = 0``.
Their exact gradients (λ = S simple, u unit, H = ∇²L):

    ∇c1 = ∇S = ∇³L[u, u]                                         (Hellmann–Feynman)
    ∇c2 = S u + ∇³L[u, r],   r = (S I − H)⁺ ∇L = Σ_{i≥2} v_i (v_i·∇L)/(S − λ_i)

The second follows from first-order perturbation theory of the eigenvector,
``du = (λI − H)⁺ (dH) u`` with ``dH = ∇³L[dθ]``, so
``d(u·∇L) = ∇L·(λI − H)⁺ ∇³L[u, dθ] + u·H dθ = (∇³L[u, r] + λu)·dθ``.

Nothing here needs the whole spectrum: S, λ2 and u come from :func:`~stabsim.spectral.
tracked_top_eigenpairs` (Lanczos on Hessian-vector products above d = 32), and r solves
(S I − H) r = P∇L on u⊥ (P = I − uuᵀ) by conjugate gradients on Hessian-vector products:
S I − H is positive definite there, with eigenvalues S − λ_i ≥ S − λ2 > 0. Memory O(d).
Families that prefer the dense Hessian run that Lanczos on their dense Hessian parts and
solve for r densely (:meth:`StableGeometry._pseudo_solve`).

Where the top eigenvalue is repeated (S = λ2, to within ``GAP_RTOL``) u(θ) is any unit
vector of the top eigenspace E, and u·∇L = 0 is a condition on θ only if it holds for all
of them, P_E ∇L = 0: then r = (S I − H)⁺ ∇L drops E as a pseudo-inverse does, and θ is on
M when S ≤ 2/η. Otherwise u·∇L and its gradient are undefined at θ, and
:meth:`StableGeometry.orthogonality_gradient` raises :class:`EigengapClosedError`
(:func:`proj_M` reports EIGENGAP_CLOSED).

:func:`proj_M` offers the Euclidean projection (a Gauss–Newton SQP iteration on these exact
gradients, stopped at a tolerance) and the paper's three-pass linearised iteration (which
only approaches M: its residuals are reported, see :func:`proj_M`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._norm import norm as _norm
from .._result import Result
from .._status import NonFiniteError, Status
from ..losses import Loss
from ..losses._base import require_loss
from ..losses._compile_ahead import compile_derivatives_elsewhere
from ..spectral import (
    SMALL_DIM,
    hessian_spectrum,
    tracked_top_eigenpairs,
)

PROJECTION_METHODS = ("euclidean", "paper")

#: each projection's budget: its argument's name and default
BUDGETS = {"euclidean": ("max_iter", 50), "paper": ("passes", 3)}


#: relative residual of the conjugate-gradient solve for r = (S I − H)⁺ ∇L: a floor of
#: about ε·cond(S I − H on u⊥) is reachable for condition numbers up to 10⁵; also the part
#: of P∇L, relative to |P∇L|, that a closed gap may leave unsolved (the CG solve's own
#: floor, so that the dense and matrix-free paths agree)
CG_RTOL = 1e-11

#: a gap S − λ_i at most GAP_RTOL·‖H‖₂ (‖H‖₂ estimated by the largest |λ| known) is closed:
#: the eigenvalues of the geometry are exact to 1e-13 |λ| (the Lanczos tolerance of
#: :func:`_geometry`; ``eigh``'s d ε ‖H‖₂ ≤ 7e-15 ‖H‖₂ for d ≤ 32), so a computed gap
#: is exact to 2e-13 ‖H‖₂, and one below 1e-12 ‖H‖₂ is not told from 0
GAP_RTOL = 1e-12

#: the relative tolerance of the Lanczos eigenpairs of :func:`_geometry`
EIG_TOL = 1e-13


class EigengapClosedError(ValueError):
    """Raised where the top Hessian eigenvalue is repeated and ∇L has a part in its
    eigenspace beside u: u(θ), and with it u·∇L and its gradient, are undefined there
    (:func:`proj_M` reports Status.EIGENGAP_CLOSED)."""


@dataclasses.dataclass(frozen=True)
class StableGeometry:
    """Everything the stable set and the predicted dynamics need at one point θ.

    Attributes
    ----------
    theta : ndarray, shape (d,)
    grad : ndarray
        ∇L(θ).
    sharpness : float
        S(θ) = λ_max(∇²L(θ)).
    lambda2 : float
        The second eigenvalue λ2 (−inf in one dimension).
    u : ndarray
        The unit top eigenvector, signed to agree with the reference given.
    grad_sharpness : ndarray
        ∇S = ∇³L[u, u].
    """

    theta: np.ndarray
    grad: np.ndarray
    sharpness: float
    lambda2: float
    u: np.ndarray
    grad_sharpness: np.ndarray

    @property
    def u_grad(self) -> float:
        """c2 = u·∇L."""
        return float(self.u @ self.grad)

    @property
    def grad_sharpness_perp(self) -> np.ndarray:
        """∇S⊥ = ∇S − (u·∇S) u."""
        return self.grad_sharpness - (self.u @ self.grad_sharpness) * self.u

    def orthogonality_gradient(self, loss: Loss) -> np.ndarray:
        """∇c2 = S u + ∇³L[u, r] with r = (S I − H)⁺ ∇L (module docstring).

        Raises
        ------
        EigengapClosedError
            Where the top eigenvalue is repeated and ∇L has a part in its eigenspace beside
            u: u·∇L is undefined there, and so is its gradient.
        """
        return self.sharpness * self.u + loss._d3(self.theta, self.u, self._pseudo_solve(loss))

    def _pseudo_solve(self, loss: Loss) -> np.ndarray:
        """r ⊥ u with (S I − H) r = P∇L: from the dense spectrum for d ≤ ``SMALL_DIM``, by a
        dense solve for families that prefer the dense Hessian, and by conjugate gradients on
        Hessian-vector products otherwise.

        The dense solve is (S I − H + |S| uuᵀ) r = P∇L. Since H u = S u, the added term
        replaces the zero eigenvalue of S I − H along u by |S| and leaves u⊥ (where S I − H
        has the eigenvalues S − λ_i > 0) alone, so r is the solution on u⊥: one LU
        factorisation, where the spectrum took a full ``eigh``. Where a solve fails, or its
        r implies a gap |P∇L|/|r| within ``GAP_RTOL``·|S| (|r| ≤ |P∇L|/(S − λ2)), the gap
        is checked: the dense families fall back on the spectrum, the others on λ2 from
        Lanczos (a closed gap with P_E∇L = 0 leaves the conjugate gradients' Krylov space
        outside the null space of S I − H, and they converge to the pseudo-inverse's r).

        Raises
        ------
        EigengapClosedError
            Where S − λ_i ≤ ``GAP_RTOL``·‖H‖₂ for some i ≥ 2 and ∇L has a part along those
            v_i above ``CG_RTOL``·|P∇L| (for conjugate gradients: where they miss
            ``CG_RTOL`` and S − λ2 ≤ ``GAP_RTOL``·max(|S|, |λ2|)).
        """
        from scipy.sparse.linalg import LinearOperator, cg

        u, s, d = self.u, self.sharpness, self.theta.shape[0]
        if d <= SMALL_DIM:
            return self._spectral_solve(loss)

        rhs = self.grad - self.u_grad * u
        if not np.any(rhs):
            return np.zeros(d)
        if loss.family.prefers_dense:
            matrix = -loss._hessian(self.theta)
            matrix[np.diag_indices(d)] += s
            matrix += abs(s) * np.outer(u, u)
            try:
                r = np.linalg.solve(matrix, rhs)
            except np.linalg.LinAlgError:  # singular to working precision: a closed gap
                return self._spectral_solve(loss)
            if not self._gap_is_plausible(rhs, r):
                return self._spectral_solve(loss)
            return r - (u @ r) * u

        hvp = loss._hvp_at(self.theta)

        def apply(x):
            x = np.ravel(x)
            x = x - (u @ x) * u
            y = s * x - hvp(x)
            return y - (u @ y) * u

        operator = LinearOperator((d, d), matvec=apply, dtype=np.float64)
        # on a singular S I − H (a closed gap) the iteration divides 0 by 0: checked below
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r, info = cg(operator, rhs, rtol=CG_RTOL, atol=0.0, maxiter=10 * d)
        if info != 0 or not self._gap_is_plausible(rhs, r):
            values, _ = tracked_top_eigenpairs(loss, self.theta, 2, u[:, None], tol=EIG_TOL)
            if values[0] - values[1] <= GAP_RTOL * np.max(np.abs(values)):
                raise self._gap_error(values[0], values[1])
        # otherwise the CG status is not needed: ∇c2 only steers the SQP steps
        return r - (u @ r) * u

    def _gap_is_plausible(self, rhs, r) -> bool:
        """Whether r is finite and |P∇L|/|r|, an upper bound on the smallest gap S − λ_i
        that r saw, is above ``GAP_RTOL``·|S|."""
        size = _norm(r)
        return bool(np.isfinite(size) and _norm(rhs) > GAP_RTOL * abs(self.sharpness) * size)

    def _spectral_solve(self, loss: Loss) -> np.ndarray:
        """r = Σ_{i≥2} v_i (v_i·∇L)/(S − λ_i) over the open gaps, from the dense spectrum
        (:meth:`_pseudo_solve`)."""
        values, vectors = hessian_spectrum(loss, self.theta)
        rest, gaps = vectors[:, 1:], self.sharpness - values[1:]
        parts = rest.T @ self.grad
        closed = gaps <= GAP_RTOL * np.max(np.abs(values))
        if _norm(parts[closed]) > CG_RTOL * _norm(parts):
            raise self._gap_error(values[0], values[1])
        return rest[:, ~closed] @ (parts[~closed] / gaps[~closed])

    def _gap_error(self, top: float, second: float) -> EigengapClosedError:
        return EigengapClosedError(
            f"the top Hessian eigenvalue S = {top:.6g} is repeated at θ (λ2 = {second:.6g}, "
            f"a gap S − λ2 = {top - second:.3g} within {GAP_RTOL:g}·‖H‖) and ∇L has a part "
            "in its eigenspace beside u: the top eigenvector u(θ), and with it M's "
            "constraint u·∇L = 0 and its gradient, are undefined there")


def stable_geometry(loss: Loss, theta, u_ref=None) -> StableGeometry:
    """Gradient, the top two Hessian eigenpairs and ∇S at θ (matrix-free above d = 32).

    ``u_ref`` (the previous eigenvector along a trajectory) fixes the sign of u and starts
    the Lanczos iteration.
    """
    require_loss(loss)
    theta = loss.check_point(theta)
    if u_ref is not None:
        u_ref = loss.check_point(u_ref, "u_ref")
    compile_derivatives_elsewhere(loss)  # while the eigensolver's kernels compile here
    return _geometry(loss, theta, u_ref, True)


def _geometry(loss: Loss, theta, u_ref, second: bool) -> StableGeometry:
    """:func:`stable_geometry` of a checked θ: (S, u) and, with ``second`` or for
    d ≤ ``SMALL_DIM`` (where a dense ``eigh`` gives it at no extra cost), λ2, from
    :func:`~stabsim.spectral.tracked_top_eigenpairs` (compiled, warm-started Lanczos on
    Hessian-vector products above d = 32, about half the products of ARPACK, called product
    by product from Python, and a fraction of the time of a full ``eigh`` for the families
    that prefer the dense Hessian); otherwise λ2 is NaN (the projection's iterations need
    none)."""
    try:
        k = min(2, loss.dim) if second or loss.dim <= SMALL_DIM else 1
        values, vectors = tracked_top_eigenpairs(loss, theta, k,
                                                 None if u_ref is None else u_ref[:, None],
                                                 tol=EIG_TOL)
        sharp, u = float(values[0]), np.ascontiguousarray(vectors[:, 0])
        lambda2 = float(values[1]) if k == 2 else (-np.inf if loss.dim == 1 else np.nan)
    except NonFiniteError:  # a non-finite Hessian: everything NaN, the projection NONFINITE
        nan = np.full(loss.dim, np.nan)
        return StableGeometry(theta, loss._grad(theta), np.nan, np.nan, nan, nan)
    return StableGeometry(theta, loss._grad(theta), sharp, lambda2, u, loss._d3(theta, u, u))


@dataclasses.dataclass(repr=False)
class Projection(Result):
    """Result of :func:`proj_M` (the protocol of :class:`stabsim._result.Result`).

    Attributes
    ----------
    theta : ndarray
        The projected point.
    sharpness_excess : float
        (S(θ) − 2/η)₊ at the returned point.
    orthogonality : float
        |u(θ)·∇L(θ)| at the returned point.
    n_iter : int
        Iterations (passes, for ``projection="paper"``) taken; also ``counters["iterations"]``.
    status : Status
        OK, NOT_CONVERGED (tolerance missed within ``max_iter`` iterations, or after the
        ``passes`` of the paper's iteration: the message names which), NONFINITE, or
        FLAT_SHARPNESS (S > 2/η where ∇S = 0, ∇S⊥ = 0 for ``projection="paper"``: no step
        lowers S to first order, so the projection is undefined; θ is the last iterate), or
        EIGENGAP_CLOSED (not converged, with λ2 ≥ 2/η at the last iterate: reaching
        S ≤ 2/η there takes lowering two eigenvalues, and a step along ∇S = ∇³L[u, u]
        lowers the top one only, which λ2 then replaces as the top; the message gives both;
        or an iterate, z itself included, where the top eigenvalue is repeated and ∇L has a
        part in its eigenspace beside u, so that u·∇L = 0 is undefined: θ is that iterate,
        see the module docstring). A z with a repeated top eigenvalue, S ≤ 2/η and no part
        of ∇L in its eigenspace is in M and comes back unchanged, OK.
    projection : str
    geometry : StableGeometry
        Spectral data at the returned point (reused by the constrained trajectory).
    """

    theta: np.ndarray
    sharpness_excess: float
    orthogonality: float
    n_iter: int
    projection: str
    geometry: StableGeometry

    def headline(self) -> dict:
        return {"projection": self.projection, "sharpness_excess": self.sharpness_excess,
                "orthogonality": self.orthogonality}

    def to_xarray(self):
        """The projected point (``theta`` on dimension ``param``) and its residuals as an
        ``xarray.Dataset``."""
        import xarray as xr

        from .._export import finish

        ds = xr.Dataset({"theta": ("param", self.theta),
                         "sharpness_excess": ((), self.sharpness_excess),
                         "orthogonality": ((), self.orthogonality)},
                        attrs={**self._export_attrs(), "projection": self.projection})
        return finish(ds, self.parameters)

    @property
    def residuals(self) -> tuple[float, float]:
        """((S − 2/η)₊, |u·∇L|)."""
        return self.sharpness_excess, self.orthogonality


def projection_budget(projection: str, max_iter, passes) -> tuple[str, int]:
    """The budget of ``projection``: the name of its argument and its value.

    Parameters
    ----------
    projection : {"euclidean", "paper"}
        The projection to be run (already checked).
    max_iter, passes : int or None
        The budgets given for the Euclidean projection and the paper's (None: not given).

    Returns
    -------
    tuple of (str, int)
        ``("max_iter", value)`` or ``("passes", value)`` (:data:`BUDGETS`): the value given,
        or the projection's default.

    Raises
    ------
    ValueError
        For a budget that is not an int ≥ 1, or one given (not None) that belongs to the
        other projection, which would ignore it.
    """
    given = {name: None if value is None else check.nonnegative_int(name, value, minimum=1)
             for name, value in (("max_iter", max_iter), ("passes", passes))}
    name, default = BUDGETS[projection]
    for owner, (other, _) in BUDGETS.items():
        if owner != projection and given[other] is not None:
            raise ValueError(f"{other} = {given[other]} is the budget of projection "
                             f"{owner!r} only; projection {projection!r} does not use it "
                             f"(leave {other} unset; this projection's budget is {name})")
    return name, default if given[name] is None else given[name]


def proj_M(loss: Loss, z, eta: float, *, projection: str = "euclidean", tol: float = 1e-10,
           max_iter: int | None = None, passes: int | None = None, u_ref=None) -> Projection:
    """Project z onto the stable set M = {S ≤ 2/η, u·∇L = 0} (docs/theory.md §2).

    ``projection="euclidean"`` seeks argmin_{θ∈M} |θ − z| with a Gauss–Newton SQP iteration
    from z on the active constraints, and returns the KKT point it reaches: M is not convex,
    and where it has several pieces near z that point need not be the nearest (the
    minimalist loss at η = 0.6 from z = (1.2, 0.9), with ``max_iter=64``, gives (0, 0.9),
    at distance 1.2, while (1.2, 0) on the axis, at 0.9, is in M too). At the iterate θ
    with constraint values c and gradients J
    (rows ∇c2, and ∇c1 when the linearised c1 would be violated), the step p solves

        min_p ½|θ + p − z|²   subject to   c + J p = 0,
        i.e. p = (z − θ) + Jᵀμ  with  J Jᵀ μ = −c − J(z − θ).

    A fixed point (p = 0) is a KKT point of the projection (c = 0, z − θ ∈ range Jᵀ). Steps
    are halved until the exact ℓ1 merit ½|θ − z|² + ρ(|c2| + (c1)₊), ρ = 2 max|μ|, decreases
    (far from M the constraint u·∇L = 0 is strongly curved and full steps can cycle). The
    iteration stops when |p|, (S − 2/η)₊/|∇S| and |u·∇L|/|∇c2|, three distances, are all at
    most ``tol · max(1, |z|)``; status NOT_CONVERGED if that fails within ``max_iter``. Where
    the rows of J are parallel, J Jᵀ is singular and the step is the least-norm one (see
    ``_equality_step``); if the iterate meets both constraints there, the message says so,
    and if the last iteration stalled off M (as where M holds no point near z), that.

    ``projection="paper"`` runs the linearised iteration of Damian et al.'s code ``passes``
    times with no residual check,

        θ ← θ − max(0, S − 2/η) ∇S⊥/|∇S⊥|² − u (u·∇L)/S.

    Each pass is one simultaneous linearised correction of both constraints with
    approximate gradients: along ∇S⊥ it removes the excess S − 2/η to first order (∇S·∇S⊥
    = |∇S⊥|²), along u it removes u·∇L with ∇c2 replaced by S u (the term ∇³L[u, r] is
    dropped). The passes shrink the residuals (linearly, at a rate set by the dropped
    term), but a fixed number of them does not reach M: the output is in general neither
    feasible nor the nearest point of M. Its residuals ((S − 2/η)₊, |u·∇L|) are reported,
    with status NOT_CONVERGED when they exceed the Euclidean projection's tolerance.
    Measured along θ† on ``QuadraticRegression.two_scale(0.01)`` (12 flow-time units from
    the crossing, ``passes=3``): (S − 2/η)₊ up to 1.0e-7 and |u·∇L| up to 2.7e-8, against
    2.7e-9 and 1.1e-9 for the Euclidean projection at ``tol=1e-10``; from a GD iterate 50
    steps past the crossing, 1, 2, 3, 4 passes leave an excess of 0.14, 0.036, 6.5e-5,
    3.6e-6.

    Parameters
    ----------
    loss : Loss
    z : array_like, shape (d,)
    eta : float
        Step size; the sharpness bound is 2/η.
    projection : {"euclidean", "paper"}
    tol : float
        Distance tolerance, relative to max(1, |z|).
    max_iter : int, optional
        Iteration budget of the Euclidean projection (default 50); refused with
        ``projection="paper"``, which does not use it.
    passes : int, optional
        Passes of the paper's iteration (default 3); refused with
        ``projection="euclidean"``, which does not use it.
    u_ref : array_like, optional
        Sign reference for the top eigenvector.

    Returns
    -------
    Projection
        Its ``parameters`` hold the budget in use (``max_iter`` or ``passes``), not the
        other.
    """
    require_loss(loss)
    z = loss.check_point(z, "z")
    eta = check.positive_float("eta", eta)
    check.choice("projection", projection, PROJECTION_METHODS)
    tol = check.positive_float("tol", tol)
    limit_name, limit = projection_budget(projection, max_iter, passes)
    if u_ref is not None:
        u_ref = loss.check_point(u_ref, "u_ref")
    compile_derivatives_elsewhere(loss)  # while the eigensolver's kernels compile here
    return _unchecked_proj_M(loss, z, eta, projection, tol, limit_name, limit, u_ref)


def _unchecked_proj_M(loss: Loss, z: np.ndarray, eta: float, projection: str, tol: float,
                     limit_name: str, limit: int, u_ref: np.ndarray | None) -> Projection:
    """:func:`proj_M` of checked arguments, its budget ``limit_name`` = ``limit`` as
    :func:`projection_budget` gives it: each step of θ†, whose points and options were
    checked once at its entry."""
    bound = 2.0 / eta
    scale = tol * max(1.0, _norm(z))
    parameters = {"loss": loss.provenance, "eta": eta, "projection": projection, "tol": tol,
                  limit_name: limit}
    if projection == "paper":
        result = _paper(loss, z, bound, limit, scale, u_ref)
    else:
        result = _euclidean(loss, z, bound, limit, scale, u_ref)
    result.parameters.update(parameters)
    return result


def _residuals(geo: StableGeometry, bound: float) -> tuple[float, float]:
    """(S − 2/η)₊ and |u·∇L| (NaN where S or u·∇L is)."""
    return float(np.maximum(0.0, geo.sharpness - bound)), abs(geo.u_grad)


def _distance(geo: StableGeometry, bound: float, c2_grad: np.ndarray) -> float:
    """The larger of the distances to {S ≤ 2/η} and {u·∇L = 0} to first order,
    (S − 2/η)₊/|∇S| and |u·∇L|/|∇c2|.

    ∇c2 = S u + ∇³L[u, r] has the norm S to O(|∇L|) near the minimisers; where S → 0 (at a
    critical point whose top eigenvalue is 0) only the exact norm gives a distance.
    """
    excess, ortho = _residuals(geo, bound)
    return float(np.max([excess / max(np.linalg.norm(geo.grad_sharpness), 1e-300),
                         ortho / max(np.linalg.norm(c2_grad), 1e-300)]))


def _finish(loss, theta, geo, bound, n_iter, status, projection, detail=None) -> Projection:
    """The Projection (its ``parameters`` are filled in by :func:`proj_M`), with the complete
    geometry (λ2 included) at the returned point."""
    if np.isnan(geo.lambda2) and np.isfinite(geo.sharpness):
        geo = _geometry(loss, theta, geo.u, True)
    excess, ortho = _residuals(geo, bound)
    finite = np.all(np.isfinite(theta)) and np.isfinite(excess) and np.isfinite(ortho)
    if not finite:
        status = Status.NONFINITE
    elif status is Status.NOT_CONVERGED and geo.lambda2 >= bound:
        status = Status.EIGENGAP_CLOSED
        detail = (f"λ2 = {geo.lambda2:.6g} ≥ 2/η = {bound:.6g} beside S = {geo.sharpness:.6g} "
                  "at the last iterate: M's constraint S ≤ 2/η needs both lowered there, "
                  "which a projection along ∇S of the top eigenvector alone cannot do")
    return Projection(status=status, detail=detail, counters={"iterations": n_iter},
                      parameters={},
                      knob="passes" if projection == "paper" else "max_iter", theta=theta,
                      sharpness_excess=excess, orthogonality=ortho, n_iter=n_iter,
                      projection=projection, geometry=geo)


def _parallel_detail(geo: StableGeometry, c2_grad: np.ndarray) -> str | None:
    """Why a feasible iterate could not meet the step tolerance, when its constraint
    gradients ∇(u·∇L) and ∇S are parallel: σ_min/σ_max of the two (the sine of their angle)
    at most √ε, where J Jᵀ (condition number its inverse square) is singular to working
    precision, and with it the step of :func:`_sqp_step`."""
    singular = np.linalg.svd(np.array([c2_grad, geo.grad_sharpness]), compute_uv=False)
    ratio = singular[1] / singular[0] if singular[0] > 0.0 else 0.0
    if ratio > np.sqrt(np.finfo(float).eps):
        return None
    return (f"∇(u·∇L) and ∇S are parallel at the last iterate (σ_min/σ_max of the two = "
            f"{ratio:.2g} ≤ √ε), which meets both constraints: M touches its tangent there "
            "and fixes θ to about √ε |θ| only, so a looser `tol` helps and a larger "
            "`max_iter` does not; ∇S⊥ ≈ 0 there, where δ⊥² = 2α/|∇S⊥|² is unbounded")


def _euclidean(loss, z, bound, max_iter, scale, u_ref) -> Projection:
    theta = z.copy()
    geo = _geometry(loss, theta, u_ref, False)
    penalty = 0.0
    moved = np.inf  # |Δθ| of the last iteration
    for it in range(max_iter + 1):
        distance = np.nan
        if np.isfinite(geo.sharpness) and np.isfinite(geo.u_grad):  # else no ∇c2 is defined
            try:
                c2_grad = geo.orthogonality_gradient(loss)
            except EigengapClosedError as error:
                return _finish(loss, theta, geo, bound, it, Status.EIGENGAP_CLOSED,
                               "euclidean", str(error))
            distance = _distance(geo, bound, c2_grad)
        if not np.isfinite(distance):
            return _finish(loss, theta, geo, bound, it, Status.NOT_CONVERGED, "euclidean")
        if geo.sharpness > bound and not np.any(geo.grad_sharpness):
            # c1 would be active with the zero row ∇c1 = ∇S: J Jᵀ is singular
            return _finish(loss, theta, geo, bound, it, Status.FLAT_SHARPNESS, "euclidean")
        step, mu = _sqp_step(geo, c2_grad, z, bound)
        if np.linalg.norm(step) <= scale and distance <= scale:
            return _finish(loss, theta, geo, bound, it, Status.OK, "euclidean")
        if it == max_iter:
            break
        penalty = max(penalty, 2.0 * float(np.max(np.abs(mu))))
        previous = theta
        theta, geo = _line_search(loss, z, bound, geo, step, penalty)
        moved = float(np.linalg.norm(theta - previous))
    if distance <= scale:
        detail = _parallel_detail(geo, c2_grad)
    else:
        detail = _stalled_detail(moved, distance, scale)
    return _finish(loss, theta, geo, bound, max_iter, Status.NOT_CONVERGED, "euclidean",
                   detail)


def _stalled_detail(moved: float, distance: float, scale: float) -> str | None:
    """Why an iterate off M (``distance`` to its constraints) is still off it after the
    last iteration moved it by ``moved``, when that is within the step tolerance ``scale``:
    the line search found the SQP step no descent direction of the merit, the mark of a
    stationary point of the constraint violation off M (as where M holds no point near
    z). None otherwise."""
    if not moved <= scale:
        return None
    return (f"the last iteration moved the iterate by {moved:.2g} while it lies {distance:.3g} "
            "from M's constraints: the iteration has stalled at a stationary point of its "
            "merit function off M, as where M holds no point near z, and a larger "
            "`max_iter` moves it as little")


def _merit(geo: StableGeometry, z, bound, penalty) -> float:
    """The exact ℓ1 penalty ½|θ − z|² + ρ (|u·∇L| + (S − 2/η)₊) of the projection problem."""
    violation = abs(geo.u_grad) + max(0.0, geo.sharpness - bound)
    return 0.5 * float(np.sum((geo.theta - z) ** 2)) + penalty * violation


def _line_search(loss, z, bound, geo, step, penalty, max_halvings=30):
    """θ + s p with s = 1, ½, ¼, … : the first that does not raise the ℓ1 merit beyond
    round-off (the full step if none does, so that a stalled search still moves)."""
    current = _merit(geo, z, bound, penalty) * (1.0 + 1e-12)
    first = None
    for k in range(max_halvings):
        trial = _geometry(loss, geo.theta + 0.5 ** k * step, geo.u, False)
        first = trial if first is None else first
        if _merit(trial, z, bound, penalty) <= current:
            return trial.theta, trial
    return first.theta, first


def _sqp_step(geo: StableGeometry, c2_grad, z, bound):
    """The Gauss–Newton SQP step p of :func:`proj_M` at ``geo.theta`` (``c2_grad`` = ∇c2
    there), and its multipliers."""
    to_z = z - geo.theta
    rows = [c2_grad]
    values = [geo.u_grad]
    step, mu = _equality_step(np.array(rows), np.array(values), to_z)
    c1 = geo.sharpness - bound
    if c1 + geo.grad_sharpness @ step > 0.0:  # the linearised c1 ≤ 0 is violated: make it active
        rows.append(geo.grad_sharpness)
        values.append(c1)
        step, mu = _equality_step(np.array(rows), np.array(values), to_z)
    return step, mu


def _equality_step(J, c, to_z):
    """p = to_z + Jᵀμ with J Jᵀ μ = −c − J to_z (least-norm correction of to_z), and μ.

    Where the rows of J are parallel (to round-off), J Jᵀ is singular and μ is not unique:
    the correction is then the least-norm δ = Jᵀμ with J δ as near −c − J to_z as any, and μ
    the least-norm multipliers giving it (both by SVD, singular values below ε·σ_max
    dropped). So it is on the minimalist loss at its flattest minimiser (1, 1) at η = 1/2:
    there S = 2/η, ∇S and ∇(u·∇L) both lie along (1, 1), and ``solve`` raised.
    """
    delta = np.linalg.lstsq(J, -c - J @ to_z, rcond=None)[0]
    mu = np.linalg.lstsq(J.T, delta, rcond=None)[0]
    return to_z + delta, mu


def _paper(loss, z, bound, passes, scale, u_ref) -> Projection:
    theta = z.copy()
    geo = _geometry(loss, theta, u_ref, False)
    for n in range(passes):
        if not (np.isfinite(geo.sharpness) and np.isfinite(geo.u_grad)):  # no pass is defined
            return _finish(loss, theta, geo, bound, n, Status.NONFINITE, "paper")
        perp = geo.grad_sharpness_perp
        excess = geo.sharpness - bound
        if excess > 0.0:
            if not np.any(perp):  # the pass divides by |∇S⊥|² = 0
                return _finish(loss, theta, geo, bound, n, Status.FLAT_SHARPNESS, "paper")
            theta = theta - excess * perp / (perp @ perp)
        if geo.u_grad != 0.0:  # else no step along u (S may be 0: a Hessian 0 at a critical point)
            theta = theta - geo.u * (geo.u_grad / geo.sharpness)
        geo = _geometry(loss, theta, geo.u, False)
    # the iteration's own ∇c2 ≈ S u (the one the passes use), at no solve's cost
    distance = _distance(geo, bound, geo.sharpness * geo.u)
    status, detail = (Status.OK if distance <= scale else Status.NOT_CONVERGED), None
    if np.isnan(geo.lambda2) and np.isfinite(geo.sharpness):
        geo = _geometry(loss, theta, geo.u, True)
    top, second = geo.sharpness, geo.lambda2  # λ2 = −inf for d = 1: no gap to close
    if np.isfinite(second) and top - second <= GAP_RTOL * max(abs(top), abs(second)):
        try:  # a repeated top eigenvalue: u·∇L = 0 only if ∇L has no part in its eigenspace
            geo.orthogonality_gradient(loss)
        except EigengapClosedError as error:
            status, detail = Status.EIGENGAP_CLOSED, str(error)
    return _finish(loss, theta, geo, bound, passes, status, "paper", detail)
