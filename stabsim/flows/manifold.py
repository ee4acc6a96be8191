"""The flows on the manifold of minimisers that normalised GD and GD on sqrt(L) follow.

docs/theory.md §4 (Arora, Li & Panigrahi), on the slow time τ = η² t (t counted in steps), from
X(0) = Φ(θ₀):

- normalised GD:  ``dX/dτ = −(1/4) P_Γ ∇ log λ1(∇²L(X))``
- GD on sqrt(L):  ``dX/dτ = −(1/8) P_Γ ∇ λ1(∇²L(X))``  (λ1 of ∇²L, not of ∇² sqrt L)

with ``∇λ1 = ∇³L[u, u]`` (Hellmann–Feynman; needs a simple top eigenvalue λ1 > λ2, which is
checked at every evaluation: the flow stops when the relative gap (λ1 − λ2)/λ1 falls below
``gap_tol``).

Two ways of staying on Γ:

- ``"chart"`` (losses that know their manifold, e.g. ManifoldFamily): integrate the chart
  coordinates x of X = (x, g(x)) ∈ Γ, whose velocity is the x-part of the tangent field,
  with λ1, ∇_x λ1 and P_Γ in closed form; X never leaves Γ.
- ``"ambient"`` (any loss): integrate X ∈ R^d with P_Γ from the null space of ∇²L(X) and a
  Newton-type restoring term that vanishes on Γ and pulls drift back to it at the rate
  ``restoring`` (per unit τ):
  ``dX/dτ = −c P_Γ ∇f(λ1) − restoring · ∇²L(X)⁺ ∇L(X)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._status import NonFiniteError, Status
from ..losses import Loss
from ..losses._base import require_loss
from ..spectral import sharpness_gradient
from ._solve import FlowResult, solve_flow
from .manifold_geometry import tangent_space

#: the constant c of dX/dτ = −c P_Γ ∇f(λ1), and whether f is log (True) or the identity
FLOW_CONSTANTS = {"normalised": (0.25, True), "sqrt": (0.125, False)}


@dataclasses.dataclass
class ManifoldFlowResult(FlowResult):
    """A solved manifold flow (``t`` holds the slow times τ; ``states`` are points of R^d).

    Attributes
    ----------
    method : str
        ``"normalised"`` or ``"sqrt"``.
    coefficient : float
        The constant c used in ``dX/dτ = −c P_Γ ∇f(λ1)``.
    geometry : str
        ``"chart"`` or ``"ambient"``.
    lambda1 : ndarray, shape (n,)
        λ1(∇²L(X)) at the saved states.
    rel_gap : ndarray, shape (n,)
        (λ1 − λ2)/λ1 at the saved states.
    grad_norm : ndarray, shape (n,)
        |∇L(X)|: how far the saved states are from being minimisers (0 up to round-off in
        the chart geometry).
    gap_tol : float
        The relative gap below which the flow was stopped as ill-defined.
    degenerate_at : float or None
        τ at which the gap closed (status LEFT_DOMAIN), None otherwise.
    """

    method: str
    coefficient: float
    geometry: str
    lambda1: np.ndarray
    rel_gap: np.ndarray
    grad_norm: np.ndarray
    gap_tol: float
    degenerate_at: float | None

    @property
    def message(self) -> str:
        if self.degenerate_at is not None:
            return (f"the top Hessian eigenvalue became degenerate ((λ1 − λ2)/λ1 < "
                    f"{self.gap_tol:g}) at τ = {self.degenerate_at:.6g}: ∇λ1 is undefined "
                    "there, so the manifold flow stops; the states up to that τ are kept")
        return super().message


class _Geometry:
    """λ1, the relative gap and the flow field at a point, in one geometry."""

    def __init__(self, loss, method, coefficient, restoring, null_tol):
        self.loss = loss
        self.coefficient = coefficient
        self.log = FLOW_CONSTANTS[method][1]
        self.restoring = restoring
        self.null_tol = null_tol


class _Chart(_Geometry):
    """State x ∈ R^m, X = loss.on_manifold(x); closed-form λ1, ∇_x λ1 and P_Γ."""

    name = "chart"

    def start(self, X0):
        return X0[: self.loss.m].copy()

    def point(self, y):
        return self.loss.on_manifold(y)

    def spectrum(self, y):
        values = self.loss.normal_eigenvalues(y)
        second = values[1] if values.shape[0] > 1 else 0.0
        return float(values[0]), float((values[0] - second) / values[0])

    def field(self, y):
        # x-part of −c P_Γ ∇f(λ1): P_Γ∇λ1 = T(TᵀT)⁻¹∇_x λ1 with T = [I; ∇g], whose first m
        # rows are (TᵀT)⁻¹∇_x λ1, the chart velocity of a tangent vector
        velocity = self.loss.projected_grad_lambda1(y)[: self.loss.m]
        if self.log:
            velocity = velocity / self.loss.lambda1(y)
        return -self.coefficient * velocity


class _Ambient(_Geometry):
    """State X ∈ R^d; P_Γ from the Hessian's null space, drift pulled back to Γ."""

    name = "ambient"

    def start(self, X0):
        return X0.copy()

    def point(self, y):
        return y

    def spectrum(self, y):
        try:
            space = tangent_space(self.loss, y, rel_tol=self.null_tol)
        except NonFiniteError:  # NaN: the integrator stops with status NONFINITE
            return np.nan, np.nan
        values = space.eigenvalues
        return space.lambda1, float((values[0] - values[1]) / values[0])

    def field(self, y):
        try:
            space = tangent_space(self.loss, y, rel_tol=self.null_tol)
        except NonFiniteError:
            return np.full_like(y, np.nan)
        grad_lambda1 = sharpness_gradient(self.loss, y, space.top_vector)
        if self.log:
            grad_lambda1 = grad_lambda1 / space.lambda1
        tangential = space.projector @ grad_lambda1
        return (-self.coefficient * tangential
                - self.restoring * space.normal_solve(self.loss.grad(y)))


def manifold_flow(loss: Loss, X0, tau_end: float, *, method: str = "normalised",
                  coefficient: float | None = None, geometry: str = "auto",
                  tau_eval=None, gap_tol: float = 1e-6, null_tol: float = 1e-6,
                  restoring: float = 10.0, rtol: float = 1e-10,
                  atol: float = 1e-12, solver: str = "DOP853") -> ManifoldFlowResult:
    """Solve the manifold flow of normalised GD or GD on sqrt(L) for τ ∈ [0, τ_end].

    ``dX/dτ = −c P_Γ ∇f(λ1(∇²L(X)))`` with (c, f) = (1/4, log) for ``method="normalised"``
    and (1/8, identity) for ``method="sqrt"`` (docs/theory.md §4), ∇λ1 = ∇³L[u, u].

    Parameters
    ----------
    loss : Loss
    X0 : array_like, shape (d,)
        A point of Γ, usually Φ(θ₀) from :func:`stabsim.flows.limit_map`.
    tau_end : float
        Slow-time horizon; τ = η² t for step size η and step count t.
    method : {"normalised", "sqrt"}
    coefficient : float, optional
        Replaces the theory's c (for negative controls: a wrong constant must fail).
    geometry : {"auto", "chart", "ambient"}
        ``"chart"`` needs a loss with ``on_manifold``, ``normal_eigenvalues``, ``lambda1``
        and ``projected_grad_lambda1`` (ManifoldFamily); ``"auto"`` uses it when available.
    tau_eval : array_like, optional
        Slow times at which to save the state (default: the integrator's steps).
    gap_tol : float
        Stop (status LEFT_DOMAIN) once (λ1 − λ2)/λ1 < gap_tol.
    null_tol : float
        Relative tolerance of the numerical null space (ambient geometry).
    restoring : float
        Rate, per unit τ, at which the ambient geometry pulls drift back onto Γ.
    rtol, atol, solver
        Passed to :func:`stabsim.flows.solve_flow`.
    """
    require_loss(loss)
    X0 = loss.check_point(X0, "X0")
    tau_end = check.positive_float("tau_end", tau_end)
    tau_eval = check.eval_times("tau_eval", tau_eval, tau_end, "tau_end")
    check.solver_options(rtol, atol, solver, "solver")
    check.choice("method", method, FLOW_CONSTANTS)
    check.choice("geometry", geometry, {"auto", "chart", "ambient"})
    coefficient = FLOW_CONSTANTS[method][0] if coefficient is None else check.finite_float(
        "coefficient", coefficient)
    gap_tol = check.positive_float("gap_tol", gap_tol)
    null_tol = check.positive_float("null_tol", null_tol)
    restoring = check.finite_float("restoring", restoring)
    chart = all(hasattr(loss, name) for name in
                ("on_manifold", "normal_eigenvalues", "lambda1", "projected_grad_lambda1"))
    if geometry == "chart" and not chart:
        raise ValueError(f"{type(loss).__name__} has no chart of its manifold; use "
                         "geometry='ambient'")
    kind = _Chart if chart and geometry != "ambient" else _Ambient
    geo = kind(loss, method, coefficient, restoring, null_tol)

    closed_at = []  # τ where the gap was found below gap_tol (the event is terminal)

    def degenerate(tau, y):
        margin = geo.spectrum(y)[1] - gap_tol
        if margin < 0.0:
            closed_at.append(tau)
        return margin

    degenerate.terminal = True
    if geo.spectrum(geo.start(X0))[1] < gap_tol:
        raise ValueError(f"the top eigenvalue of the Hessian at X0 is not simple "
                         f"((λ1 − λ2)/λ1 < gap_tol = {gap_tol:g}): the flow is undefined")
    flow = solve_flow(lambda tau, y: geo.field(y), geo.start(X0), tau_end,
                      t_eval=tau_eval, events=[degenerate], method=solver, rtol=rtol,
                      atol=atol)
    points = np.array([geo.point(y) for y in flow.states]).reshape(-1, loss.dim)
    spectra = np.array([geo.spectrum(y) for y in flow.states]).reshape(-1, 2)
    grad_norm = np.array([np.linalg.norm(loss.grad(X)) for X in points])
    status, degenerate_at = flow.status, None
    if status is Status.OK and closed_at:
        status, degenerate_at = Status.LEFT_DOMAIN, float(min(closed_at))
    return ManifoldFlowResult(
        flow.t, points, status, flow.solver_message, flow.nfev, flow.njev,
        method=method, coefficient=coefficient, geometry=geo.name,
        lambda1=spectra[:, 0], rel_gap=spectra[:, 1], grad_norm=grad_norm,
        gap_tol=gap_tol, degenerate_at=degenerate_at,
    )
