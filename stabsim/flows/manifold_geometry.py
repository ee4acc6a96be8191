"""Geometry of a manifold of minimisers Γ: the limit map Φ and the tangent projection P_Γ.

docs/theory.md §4 (Arora, Li & Panigrahi):

- ``Φ(θ) = lim_{s→∞} θ(s)`` with ``dθ/ds = −∇L(θ)``, ``θ(0) = θ``: the gradient-flow limit.
  It has no closed form even on :class:`~stabsim.losses.ManifoldFamily` (the flow moves x
  by O(|z − g(x)|²) on its way down), so it is always integrated, to a tolerance on |∇L|.
- ``P_Γ(X)``: the orthogonal projection onto ``T_XΓ = ker ∇²L(X)`` (when rank ∇²L equals
  the codimension). Numerically it is spanned by the eigenvectors of ∇²L(X) whose
  eigenvalue is at most ``rel_tol · λ1`` in absolute value; a loss that knows its manifold
  (a ``tangent_projection(theta)`` method, as ManifoldFamily has) gives it in closed form.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._result import Result
from .._status import NonFiniteError, Status
from ..losses import Loss
from ..losses._base import require_loss
from ..spectral import (
    SMALL_DIM,
    _lowest_eigenpair,
    hessian_spectrum,
    tracked_top_eigenpairs,
)
from ._solve import MAX_RHS_EVALS, _norm, solve_flow

#: the default tolerance on |∇L| of :func:`limit_map`, which :func:`manifold_flow` also
#: takes as the largest |∇L| of a start on Γ
LIMIT_TOL = 1e-10


@dataclasses.dataclass(repr=False)
class LimitPoint(Result):
    """Φ(θ), the end of the gradient flow from θ, as :func:`limit_map` found it.

    Attributes
    ----------
    theta : ndarray, shape (d,)
        The state where the flow stopped: |∇L(theta)| ≤ ``tol`` when ``success``.
    grad_norm : float
        |∇L(theta)|.
    tol : float
        The tolerance on |∇L| that stopped the flow.
    flow_time : float
        The flow time s at which it stopped.
    status : Status
        OK; MAX_STEPS if |∇L| was still above ``tol`` at ``s_max`` (the message names
        ``s_max``), or if the integrator had made ``max_rhs_evals`` evaluations first (the
        message names and quotes ``max_rhs_evals``; ``theta`` and ``flow_time`` are those of
        the integrator's last step); NONFINITE if ∇L is NaN or inf at the start, or if
        the flow overflows (it grows without bound where L is unbounded below along it) or
        meets a NaN ∇L: ``theta`` is then the last finite state, and the message gives its
        |θ|, |∇L| and flow time; NOT_CONVERGED from the integrator.
    counters : dict
        ``rhs_evals`` (gradient evaluations) and ``jacobian_evals`` (Hessians) of the
        integrator.
    """

    theta: np.ndarray
    grad_norm: float
    tol: float
    flow_time: float

    def headline(self) -> dict:
        return {"grad_norm": self.grad_norm, "flow_time": self.flow_time}

    def to_xarray(self):
        """Φ(θ) as an ``xarray.Dataset``: ``theta`` on dimension ``param``, |∇L| and the
        flow time as variables."""
        import xarray as xr

        from .._export import finish

        ds = xr.Dataset({"theta": ("param", self.theta), "grad_norm": ((), self.grad_norm),
                         "flow_time": ((), self.flow_time)},
                        attrs={**self._export_attrs(), "tol": self.tol})
        return finish(ds, self.parameters)


def limit_map(loss: Loss, theta, *, tol: float = LIMIT_TOL, s_max: float = 1e6,
              integrator: str = "LSODA", rtol: float = 1e-10, atol: float = 1e-13,
              max_rhs_evals: int | None = MAX_RHS_EVALS) -> LimitPoint:
    """Φ(θ): integrate the gradient flow ``dθ/ds = −∇L(θ)`` until ``|∇L(θ(s))| ≤ tol``.

    The integration stops where |∇L| = tol/2 (located by the integrator's event search),
    and the result has status OK when |∇L| ≤ tol there.

    Near a manifold of minimisers the flow converges exponentially at the rate of the
    smallest nonzero Hessian eigenvalue μ, so the point returned lies within about
    ``tol / μ`` of the true limit. LSODA switches to an implicit method (with the exact
    Jacobian −∇²L) when the normal eigenvalues make the flow stiff.

    Parameters
    ----------
    loss : Loss
    theta : array_like, shape (d,)
        Start of the flow.
    tol : float
        Stop once |∇L| ≤ tol.
    s_max : float
        Largest flow time; the result has status MAX_STEPS if |∇L| > tol there.
    integrator, rtol, atol
        Passed to :func:`solve_flow`.
    max_rhs_evals : int or None
        Budget of gradient evaluations of the flow
        (:data:`~stabsim.flows._solve.MAX_RHS_EVALS`; None: none); status MAX_STEPS,
        naming it, when it is exhausted (as for
        :func:`~stabsim.flows.gradient.gradient_flow`). An explicit ``integrator`` where
        the flow is stiff takes steps of about 1/λ_max, and without a budget could run for
        hours.

    Returns
    -------
    LimitPoint
    """
    require_loss(loss)
    theta = loss.check_point(theta)
    tol = check.positive_float("tol", tol)
    s_max = check.positive_float("s_max", s_max)
    check.solver_options(rtol, atol, integrator)
    max_rhs_evals = check.budget("max_rhs_evals", max_rhs_evals)
    parameters = {"loss": loss.provenance, "tol": tol, "s_max": s_max, "integrator": integrator,
                  "rtol": rtol, "atol": atol, "max_rhs_evals": max_rhs_evals}

    def result(point, grad_norm, flow_time, status, counters, detail=None, knob="s_max"):
        return LimitPoint(status=status, counters=counters, parameters=parameters,
                          knob=knob, detail=detail, theta=point, grad_norm=grad_norm,
                          tol=tol, flow_time=flow_time)

    grad_norm = _grad_norm(loss, theta)
    no_work = {"rhs_evals": 1, "jacobian_evals": 0}
    if grad_norm <= tol:
        return result(theta.copy(), grad_norm, 0.0, Status.OK, no_work)
    if not np.isfinite(grad_norm):
        return result(theta.copy(), grad_norm, 0.0, Status.NONFINITE, no_work,
                      "|∇L| is NaN or inf at theta, where the flow starts")

    def converged(s, y):
        # aim at tol/2: the stop state is interpolated by the integrator, whose error is
        # relative to |θ| and can be comparable to the distance to Γ left at |∇L| = tol
        return _grad_norm(loss, y) - 0.5 * tol

    converged.terminal = True
    flow = solve_flow(lambda s, y: -loss._grad(y), theta, s_max, events=[converged],
                      jac=lambda s, y: -loss._hessian(y), integrator=integrator, rtol=rtol,
                      atol=atol, max_rhs_evals=max_rhs_evals, clock="s")
    if flow.step.size:
        point, flow_time = flow.theta.copy(), float(flow.step[-1])
    else:  # the budget ran out in the integrator's set-up, before its first step
        point, flow_time = theta.copy(), 0.0
    grad_norm = _grad_norm(loss, point)
    status, detail = flow.status, flow.detail
    if flow.knob == "max_rhs_evals":
        return result(point, grad_norm, flow_time, status, flow.counters, detail, flow.knob)
    if status is Status.OK and grad_norm > tol:
        status = Status.MAX_STEPS
    elif status is Status.NONFINITE:
        detail = (f"the gradient flow reached |θ| = {_norm(point):.3g}, |∇L| = "
                  f"{grad_norm:.3g} at flow time s = {flow_time:.6g}, and θ or ∇L is NaN or "
                  "inf just beyond, so Φ(θ) is not reached: a flow that grows without bound "
                  "(where L is unbounded below along it) overflows, and one that meets a "
                  f"point where ∇L is undefined turns NaN; {detail}")
    return result(point, grad_norm, flow_time, status, flow.counters, detail)


def _grad_norm(loss: Loss, theta: np.ndarray) -> float:
    """|∇L(θ)|: inf where ∇L or its norm overflows, NaN where ∇L is NaN, without NumPy's
    warnings (the callers report a status)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _norm(loss._grad(theta))


@dataclasses.dataclass(frozen=True)
class TangentSpace:
    """T_XΓ as the numerical null space of ∇²L(X).

    Holds either every eigenpair (``eigensolver="eigh"``) or only the top ones, down to the
    first eigenvalue classed as zero (``"lanczos"``): the normal space and one null
    direction. Everything below needs only the normal eigenpairs (λ_i, q_i):
    P_Γ = I − Σ q_i q_iᵀ over the normal space, so the Lanczos form holds O(d r) numbers for a
    normal space of dimension r, never d × d.

    Attributes
    ----------
    eigenvalues : ndarray, shape (k,)
        Eigenvalues of ∇²L(X), largest first (all d, or the top k).
    eigenvectors : ndarray, shape (d, k)
        Matching unit eigenvectors (columns).
    rel_tol : float
        An eigenvalue λ belongs to the null space when |λ| ≤ rel_tol · λ1.
    lowest : float
        The smallest eigenvalue of ∇²L(X) (the last of ``eigenvalues`` when all are held).
    lowest_vector : ndarray, shape (d,), or None
        A unit eigenvector of ``lowest`` (the start of the next point's, see
        :func:`tangent_space`'s ``near``); None where X is not near Γ (λ1 ≤ 0).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    rel_tol: float
    lowest: float
    lowest_vector: np.ndarray | None = None

    @property
    def lambda1(self) -> float:
        """λ1(∇²L(X))."""
        return float(self.eigenvalues[0])

    @property
    def top_vector(self) -> np.ndarray:
        """The unit eigenvector u of λ1."""
        return self.eigenvectors[:, 0]

    @property
    def complete(self) -> bool:
        """Whether every eigenpair is held (the dense path)."""
        return self.eigenvectors.shape[1] == self.eigenvectors.shape[0]

    @property
    def _null(self) -> np.ndarray:
        return np.abs(self.eigenvalues) <= self.rel_tol * self.lambda1

    @property
    def _normal_vectors(self) -> np.ndarray:
        return self.eigenvectors[:, ~self._null]

    @property
    def rank(self) -> int:
        """dim T_XΓ: d minus the number of eigenvalues classed as nonzero."""
        return int(self.eigenvectors.shape[0] - np.count_nonzero(~self._null))

    @property
    def basis(self) -> np.ndarray:
        """Orthonormal basis of T_XΓ, shape (d, rank) (held eigenpairs: the dense path only)."""
        if not self.complete:
            raise ValueError("the tangent basis is d × rank: build the tangent space with "
                             "eigensolver='eigh' to have it (project() needs no basis)")
        return self.eigenvectors[:, self._null]

    @property
    def projector(self) -> np.ndarray:
        """P_Γ(X) = I − Q Qᵀ with Q the normal eigenvectors, shape (d, d)."""
        q = self._normal_vectors
        return np.eye(q.shape[0]) - q @ q.T

    def project(self, v) -> np.ndarray:
        """P_Γ(X) v = v − Q (Qᵀ v), in O(d r) without the d × d projector."""
        q = self._normal_vectors
        return v - q @ (q.T @ v)

    @property
    def separation(self) -> float:
        """max |λ| over the null space divided by min λ over the normal space.

        Far below ``rel_tol`` when the split is clear-cut; near it, the tangent space depends
        on the tolerance and should not be trusted.
        """
        null = self._null
        if null.all() or not null.any():
            return 0.0
        largest_null = max(np.abs(self.eigenvalues[null]).max(), abs(self.lowest))
        return float(largest_null / self.eigenvalues[~null].min())

    def normal_solve(self, v) -> np.ndarray:
        """∇²L(X)⁺ v restricted to the normal space: Σ_{λ_i not null} (q_i·v)/λ_i q_i."""
        keep = ~self._null
        q = self.eigenvectors[:, keep]
        return q @ ((q.T @ v) / self.eigenvalues[keep])


#: first number of top eigenpairs asked of Lanczos for a tangent space (doubled until the
#: last one is null): the normal space of the manifolds studied here is low-dimensional
NORMAL_PAIRS_START = 4
#: the relative accuracy of the tangent space's eigenpairs on Hessian-vector products
TANGENT_EIG_TOL = 1e-13


def tangent_space(loss: Loss, X, *, rel_tol: float = 1e-6, eigensolver: str = "auto",
                  near: TangentSpace | None = None) -> TangentSpace:
    """The eigen-decomposition of ∇²L(X) split into T_XΓ (|λ| ≤ rel_tol·λ1) and its normal.

    Parameters
    ----------
    eigensolver : {"auto", "eigh", "lanczos"}
        ``"eigh"``: every eigenpair from the dense Hessian (O(d³), d × d memory).
        ``"lanczos"``: Lanczos on Hessian-vector products for the top k eigenpairs,
        k = 4, 8, 16, … until the k-th is null (the flows' compiled, deflated Lanczos,
        :func:`stabsim.spectral.tracked_top_eigenpairs`, at residual ``TANGENT_EIG_TOL``·λ1;
        ``eigh`` where that takes it: up to d = 32, and for k > 1 on the families that
        prefer the dense Hessian), and ARPACK's for the smallest eigenvalue (which must be
        ≥ −rel_tol·λ1: Γ is a set of minimisers, so ∇²L(X) is positive semi-definite near
        it); O(d k) memory. ``"auto"``: as :func:`stabsim.spectral.top_eigenpairs` (dense up
        to d = 32), and dense where Lanczos cannot split the spectrum: no null eigenvalue
        among the top d − 2, or an eigenvalue below −rel_tol·λ1 (which the dense split
        counts as normal; both occur a small distance off Γ, as at an integrator's trial
        point).
    near : TangentSpace, optional
        The tangent space at a nearby point (a flow's last evaluation): Lanczos starts each
        pair from its eigenvectors, asks for as many pairs as it holds, and starts the
        smallest eigenvalue from its ``lowest_vector``. Only the work changes, not what is
        measured (each pair to its tolerance).

    Raises ValueError when λ1 ≤ 0 (X is not near a manifold of minimisers with a positive
    curvature), or, with ``eigensolver="lanczos"``, ``OffManifoldError`` (a
    ValueError) when the top d − 2 eigenvalues hold no null one or ∇²L(X) has an
    eigenvalue below −rel_tol·λ1.
    """
    require_loss(loss)
    X = loss.check_point(X, "X")
    rel_tol = check.positive_float("rel_tol", rel_tol)
    check.choice("eigensolver", eigensolver, {"auto", "eigh", "lanczos"})
    if eigensolver == "lanczos" and loss.dim < 3:
        raise ValueError(f"eigensolver='lanczos' needs d >= 3, got d = {loss.dim}; use 'eigh'")
    if near is not None and not (isinstance(near, TangentSpace)
                                 and near.eigenvectors.shape[0] == loss.dim):
        raise TypeError(f"near must be the TangentSpace of a point in dimension {loss.dim}, "
                        f"got {type(near).__name__}")
    dense = eigensolver == "eigh" or (eigensolver == "auto" and (
        loss.dim <= SMALL_DIM or loss.family.prefers_dense))
    space = None
    if not dense:
        try:
            space = _lanczos_tangent_space(loss, X, rel_tol, near)
        except OffManifoldError:
            if eigensolver == "lanczos":
                raise
    if space is None:
        values, vectors = hessian_spectrum(loss, X)
        if np.isnan(values[0]):
            raise NonFiniteError("the Hessian at X has NaN or inf entries (status NONFINITE)")
        space = TangentSpace(values.copy(), vectors.copy(), rel_tol, float(values[-1]),
                             vectors[:, -1].copy())
    if not space.lambda1 > 0.0:
        raise ValueError(f"the Hessian at X has no positive eigenvalue (λ1 = "
                         f"{space.lambda1:.3g}): X is not near a manifold of minimisers")
    return space


class OffManifoldError(ValueError):
    """Raised where Lanczos cannot split ∇²L(X) into T_XΓ and its normal: X is not near a
    manifold of minimisers (:func:`tangent_space` with ``eigensolver="lanczos"``)."""


def _lanczos_tangent_space(loss: Loss, X, rel_tol: float,
                           near: TangentSpace | None) -> TangentSpace:
    """The top eigenpairs down to the first null one, started from ``near``'s (see
    :func:`tangent_space`); :class:`OffManifoldError` when that needs k ≥ d − 1 or an
    eigenvalue lies below −rel_tol·λ1."""
    d = loss.dim
    starts = None if near is None else near.eigenvectors
    held = NORMAL_PAIRS_START if near is None or near.complete else starts.shape[1]
    k = min(max(NORMAL_PAIRS_START, held), d - 2)
    while True:
        values, vectors = tracked_top_eigenpairs(
            loss, X, k, None if starts is None else starts[:, :k], tol=TANGENT_EIG_TOL)
        if not values[0] > 0.0 or abs(values[-1]) <= rel_tol * values[0]:
            break
        if k == d - 2:
            raise OffManifoldError(
                "no null space among the top d - 2 eigenvalues of the Hessian (|λ| ≤ "
                "rel_tol·λ1): X is not near a manifold of minimisers of codimension below "
                "d - 2; use eigensolver='eigh'")
        starts = vectors  # the pairs reached, the first k of the next try
        k = min(2 * k, d - 2)
    lowest, lowest_vector = np.nan, None
    if values[0] > 0.0:
        lowest, lowest_vector = _lowest_eigenpair(
            loss, X, tol=TANGENT_EIG_TOL, v0=None if near is None else near.lowest_vector)
    if lowest < -rel_tol * values[0]:
        raise OffManifoldError(
            f"the Hessian at X has the eigenvalue {lowest:.3g} < -rel_tol·λ1 = "
            f"{-rel_tol * values[0]:.3g}: X is not near a manifold of minimisers "
            "(eigensolver='eigh' counts such directions as normal)")
    return TangentSpace(values, vectors, rel_tol, lowest, lowest_vector)


def tangent_projection(loss: Loss, X, *, geometry: str = "auto",
                       rel_tol: float = 1e-6) -> np.ndarray:
    """P_Γ(X), the orthogonal projection onto T_XΓ, shape (d, d).

    Parameters
    ----------
    geometry : {"auto", "closed", "numeric"}
        ``"closed"``: the loss's own ``tangent_projection(X)`` (e.g. ManifoldFamily:
        ``T (TᵀT)⁻¹ Tᵀ`` with ``T = [I; ∇g(x)]``); ``"numeric"``: the null space of ∇²L(X)
        (:func:`tangent_space` with ``rel_tol``); ``"auto"``: closed when available.
    """
    require_loss(loss)
    check.choice("geometry", geometry, {"auto", "closed", "numeric"})
    rel_tol = check.positive_float("rel_tol", rel_tol)
    closed = hasattr(loss, "tangent_projection")
    if geometry == "closed" and not closed:
        raise ValueError(f"{type(loss).__name__} has no closed-form tangent projection; "
                         "use geometry='numeric'")
    if closed and geometry != "numeric":
        return loss.tangent_projection(loss.check_point(X, "X"))
    return tangent_space(loss, X, rel_tol=rel_tol).projector
