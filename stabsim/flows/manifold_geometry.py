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
from ..spectral import hessian_spectrum
from ._solve import solve_flow


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
        ``s_max``); NONFINITE or NOT_CONVERGED from the integrator.
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


def limit_map(loss: Loss, theta, *, tol: float = 1e-10, s_max: float = 1e6,
              integrator: str = "LSODA", rtol: float = 1e-10,
              atol: float = 1e-13) -> LimitPoint:
    """Φ(θ): integrate the gradient flow ``dθ/ds = −∇L(θ)`` until ``|∇L(θ(s))| ≤ tol``.

    The integration stops where |∇L| = tol/2 (located by the integrator's event search),
    and the result has status OK when |∇L| ≤ tol there.

    Near a manifold of minimisers the flow converges exponentially at the rate of the
    smallest nonzero Hessian eigenvalue μ, so the point returned lies within about
    ``tol / μ`` of the true limit. LSODA switches to an implicit method (with the exact
    Jacobian −∇²L) when the normal eigenvalues make the flow stiff.

    Parameters
    ----------
    tol : float
        Stop once |∇L| ≤ tol.
    s_max : float
        Largest flow time; the result has status MAX_STEPS if |∇L| > tol there.
    integrator, rtol, atol
        Passed to :func:`solve_flow`.

    Returns
    -------
    LimitPoint
    """
    require_loss(loss)
    theta = loss.check_point(theta)
    tol = check.positive_float("tol", tol)
    s_max = check.positive_float("s_max", s_max)
    check.solver_options(rtol, atol, integrator)
    parameters = {"loss": repr(loss), "tol": tol, "s_max": s_max, "integrator": integrator,
                  "rtol": rtol, "atol": atol}

    def result(point, grad_norm, flow_time, status, counters, detail=None):
        return LimitPoint(status=status, counters=counters, parameters=parameters,
                          knob="s_max", detail=detail, theta=point, grad_norm=grad_norm,
                          tol=tol, flow_time=flow_time)

    grad_norm = float(np.linalg.norm(loss.grad(theta)))
    no_work = {"rhs_evals": 1, "jacobian_evals": 0}
    if grad_norm <= tol:
        return result(theta.copy(), grad_norm, 0.0, Status.OK, no_work)
    if not np.isfinite(grad_norm):
        return result(theta.copy(), grad_norm, 0.0, Status.NONFINITE, no_work)

    def converged(s, y):
        # aim at tol/2: the stop state is interpolated by the integrator, whose error is
        # relative to |θ| and can be comparable to the distance to Γ left at |∇L| = tol
        return np.linalg.norm(loss.grad(y)) - 0.5 * tol

    converged.terminal = True
    flow = solve_flow(lambda s, y: -loss.grad(y), theta, s_max, events=[converged],
                      jac=lambda s, y: -loss.hessian(y), integrator=integrator, rtol=rtol,
                      atol=atol)
    point = flow.theta.copy()
    grad_norm = float(np.linalg.norm(loss.grad(point)))
    status = flow.status
    if status is Status.OK and grad_norm > tol:
        status = Status.MAX_STEPS
    return result(point, grad_norm, float(flow.step[-1]), status, flow.counters, flow.detail)


@dataclasses.dataclass(frozen=True)
class TangentSpace:
    """T_XΓ as the numerical null space of ∇²L(X).

    Attributes
    ----------
    eigenvalues : ndarray, shape (d,)
        Eigenvalues of ∇²L(X), largest first.
    eigenvectors : ndarray, shape (d, d)
        Matching unit eigenvectors (columns).
    rel_tol : float
        An eigenvalue λ belongs to the null space when |λ| ≤ rel_tol · λ1.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    rel_tol: float

    @property
    def lambda1(self) -> float:
        """λ1(∇²L(X))."""
        return float(self.eigenvalues[0])

    @property
    def top_vector(self) -> np.ndarray:
        """The unit eigenvector u of λ1."""
        return self.eigenvectors[:, 0]

    @property
    def _null(self) -> np.ndarray:
        return np.abs(self.eigenvalues) <= self.rel_tol * self.lambda1

    @property
    def rank(self) -> int:
        """dim T_XΓ: the number of eigenvalues classed as zero."""
        return int(np.count_nonzero(self._null))

    @property
    def basis(self) -> np.ndarray:
        """Orthonormal basis of T_XΓ, shape (d, rank)."""
        return self.eigenvectors[:, self._null]

    @property
    def projector(self) -> np.ndarray:
        """P_Γ(X) = B Bᵀ with B = :attr:`basis`."""
        basis = self.basis
        return basis @ basis.T

    @property
    def separation(self) -> float:
        """max |λ| over the null space divided by min λ over the normal space.

        Far below ``rel_tol`` when the split is clear-cut; near it, the tangent space depends
        on the tolerance and should not be trusted.
        """
        null = self._null
        if null.all() or not null.any():
            return 0.0
        return float(np.abs(self.eigenvalues[null]).max() / self.eigenvalues[~null].min())

    def normal_solve(self, v) -> np.ndarray:
        """∇²L(X)⁺ v restricted to the normal space: Σ_{λ_i not null} (q_i·v)/λ_i q_i."""
        keep = ~self._null
        q = self.eigenvectors[:, keep]
        return q @ ((q.T @ v) / self.eigenvalues[keep])


def tangent_space(loss: Loss, X, *, rel_tol: float = 1e-6) -> TangentSpace:
    """The eigen-decomposition of ∇²L(X) split into T_XΓ (|λ| ≤ rel_tol·λ1) and its normal.

    Raises ValueError when λ1 ≤ 0 (X is not near a minimiser with a positive curvature).
    """
    require_loss(loss)
    X = loss.check_point(X, "X")
    rel_tol = check.positive_float("rel_tol", rel_tol)
    values, vectors = hessian_spectrum(loss, X)
    values, vectors = values.copy(), vectors.copy()
    if np.isnan(values[0]):
        raise NonFiniteError("the Hessian at X has NaN or inf entries (status NONFINITE)")
    if not values[0] > 0.0:
        raise ValueError(f"the Hessian at X has no positive eigenvalue (λ1 = {values[0]:.3g}): "
                         "X is not near a manifold of minimisers")
    return TangentSpace(values, vectors, rel_tol)


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
