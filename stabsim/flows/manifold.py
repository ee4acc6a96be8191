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
from ._solve import MAX_RHS_EVALS, FlowResult, solve_flow
from .manifold_geometry import LIMIT_TOL, OffManifoldError, _grad_norm, tangent_space

#: the constant c of dX/dτ = −c P_Γ ∇f(λ1), and whether f is log (True) or the identity
FLOW_CONSTANTS = {"normalised": (0.25, True), "sqrt": (0.125, False)}

#: ``long_name`` of the exported variables of :class:`ManifoldFlowResult`, whose GD
#: description in :data:`stabsim._export.VARIABLES` (the iterate θ_t, values at Φ(θ_t) or
#: θ_t) is not the flow's: its records are the flow point X(τ) and values there
EXPORT_LONG_NAMES = {
    "theta": "manifold flow X(tau)",
    "lambda1": "top Hessian eigenvalue at X(tau)",
    "rel_gap": "relative eigengap (lambda1 - lambda2)/lambda1 at X(tau)",
    "grad_norm": "gradient norm |grad L(X(tau))|",
}


@dataclasses.dataclass(repr=False)
class ManifoldFlowResult(FlowResult):
    """A solved manifold flow: ``step`` counts GD steps t, ``tau`` = η² t is the flow's slow
    time; ``trajectory`` holds points of R^d.

    Status EIGENGAP_CLOSED: the relative gap (λ1 − λ2)/λ1 fell below ``gap_tol`` at
    ``stop_step`` (∇λ1 is undefined there), and the states up to it are kept.

    Exported (:meth:`to_xarray`): the records along ``step``, with ``tau`` a second
    coordinate; ``theta`` (the states X(τ)), ``lambda1``, ``rel_gap`` and ``grad_norm``
    carry the flow's own ``long_name`` (:data:`stabsim.flows.manifold.EXPORT_LONG_NAMES`).

    Attributes
    ----------
    eta : float
        The step size of the method whose flow this is.
    tau : ndarray, shape (n,)
        Slow time η² t of each record.
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
    """

    eta: float
    tau: np.ndarray
    method: str
    coefficient: float
    geometry: str
    lambda1: np.ndarray
    rel_gap: np.ndarray
    grad_norm: np.ndarray
    gap_tol: float

    def headline(self) -> dict:
        return {"method": self.method, "eta": self.eta, "records": self.step.shape[0],
                "stop_step": self.stop_step}

    def _export_data(self) -> dict:
        data = super()._export_data()
        data.update({"lambda1": ("step", self.lambda1), "rel_gap": ("step", self.rel_gap),
                     "grad_norm": ("step", self.grad_norm)})
        for name, long_name in EXPORT_LONG_NAMES.items():
            data[name] = (*data[name][:2], {"long_name": long_name})
        return data

    def _export_coords(self) -> dict:
        return {"step": self.step, "tau": ("step", self.tau)}


#: manifold_flow's defaults: smallest relative gap (λ1 − λ2)/λ1 of a simple top eigenvalue,
#: and the relative size of an eigenvalue taken as tangent (ambient geometry)
GAP_TOL = 1e-6
NULL_TOL = 1e-6


def _relative_gap(values) -> float:
    """(λ1 − λ2)/λ1 of the eigenvalues ``values`` (largest first), λ2 = 0 where there is
    only one (d = 1, or a chart with one normal direction)."""
    second = values[1] if values.shape[0] > 1 else 0.0
    return float((values[0] - second) / values[0])


class _Geometry:
    """λ1, the relative gap and the flow field at a point, in one geometry."""

    def __init__(self, loss, method, coefficient, restoring, null_tol, eigensolver):
        self.loss = loss
        self.coefficient = coefficient
        self.log = FLOW_CONSTANTS[method][1]
        self.restoring = restoring
        self.null_tol = null_tol
        self.eigensolver = eigensolver


class _Chart(_Geometry):
    """State x ∈ R^m, X = loss.on_manifold(x); closed-form λ1, ∇_x λ1 and P_Γ."""

    name = "chart"

    def start(self, theta0):
        return theta0[: self.loss.m].copy()

    def point(self, y):
        return self.loss.on_manifold(y)

    def spectrum(self, y):
        values = self.loss.normal_eigenvalues(y)
        return float(values[0]), _relative_gap(values)

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

    refused = None  #: the OffManifoldError's message of the last evaluation (see field)

    def start(self, theta0):
        try:
            self._space(theta0)  # a start Lanczos cannot split is refused (OffManifoldError)
        except NonFiniteError:  # left to the integrator, which reports NONFINITE
            pass
        return theta0.copy()

    def point(self, y):
        return y

    _last = (None, None)  # (state, its tangent space): the gap event asks at the same y

    def _space(self, y):
        state, space = self._last
        if state is None or not np.array_equal(state, y):
            # started from the last evaluation's pairs (a refused point leaves them)
            space = tangent_space(self.loss, y, rel_tol=self.null_tol,
                                  eigensolver=self.eigensolver, near=space)
            self._last = (np.array(y), space)
        return space

    def spectrum(self, y):
        try:
            space = self._space(y)
        except (NonFiniteError, OffManifoldError):  # NaN (see field)
            return np.nan, np.nan
        return space.lambda1, _relative_gap(space.eigenvalues)

    def field(self, y):
        # NaN where the Hessian is not finite, or where a trial step left Γ too far for
        # eigensolver="lanczos" to split the spectrum: an explicit integrator rejects the
        # step and retries it shorter, and stops with status NONFINITE where that persists;
        # an implicit one stops at the first (its message then gives ``refused``)
        self.refused = None  # the last evaluation's alone
        try:
            space = self._space(y)
        except NonFiniteError:
            return np.full_like(y, np.nan)
        except OffManifoldError as error:
            self.refused = str(error)
            return np.full_like(y, np.nan)
        grad_lambda1 = sharpness_gradient(self.loss, y, space.top_vector)
        if self.log:
            grad_lambda1 = grad_lambda1 / space.lambda1
        tangential = space.project(grad_lambda1)
        return (-self.coefficient * tangential
                - self.restoring * space.normal_solve(self.loss._grad(y)))


def _has_chart(loss) -> bool:
    return all(hasattr(loss, name) for name in
               ("on_manifold", "normal_eigenvalues", "lambda1", "projected_grad_lambda1"))


def geometry_for(loss: Loss, geometry: str):
    """The geometry class of ``geometry`` ("auto", "chart" or "ambient") for ``loss``;
    ValueError for "chart" on a loss without one (callers check it before any work)."""
    chart = _has_chart(loss)
    if geometry == "chart" and not chart:
        raise ValueError(f"{type(loss).__name__} has no chart of its manifold; use "
                         "geometry='ambient'")
    return _Chart if chart and geometry != "ambient" else _Ambient


def require_simple_top(geo, theta0: np.ndarray, gap_tol: float, name: str = "theta0") -> None:
    """Raise ``ValueError`` unless (λ1 − λ2)/λ1 ≥ ``gap_tol`` at the start ``theta0`` (called
    ``name`` in the message) of the flow in geometry ``geo``."""
    if geo.spectrum(geo.start(theta0))[1] < gap_tol:
        raise ValueError(f"the top eigenvalue of the Hessian at {name} is not simple "
                         f"((λ1 − λ2)/λ1 < gap_tol = {gap_tol:g}): the flow is undefined")


def _require_on_gamma(loss: Loss, theta0: np.ndarray, start_tol: float, chart: bool) -> None:
    """Raise ``ValueError`` unless |∇L(theta0)| ≤ ``start_tol`` (see :func:`manifold_flow`),
    giving |∇L(theta0)| and, for a loss with a chart, the distance |z₀ − g(x₀)| to Γ along
    z."""
    grad_norm = _grad_norm(loss, theta0)
    if not grad_norm > start_tol:  # NaN too: the integrator reports NONFINITE at the start
        return
    along_z = ""
    if chart:
        m = loss.m
        distance = np.linalg.norm(theta0[m:] - loss.on_manifold(theta0[:m])[m:])
        along_z = f", and |z − g(x)| = {distance:.3g}"
    raise ValueError(
        f"theta0 is not on Γ, the manifold of minimisers (where ∇L = 0): |∇L(theta0)| = "
        f"{grad_norm:.3g} > start_tol = {start_tol:g}{along_z}; start from Φ(theta0) = "
        "limit_map(loss, theta0).theta, the limit of the gradient flow from theta0")


def manifold_flow(loss: Loss, theta0, eta: float, steps: float, *,
                  method: str = "normalised", coefficient: float | None = None,
                  geometry: str = "auto", stride=None, gap_tol: float = GAP_TOL,
                  null_tol: float = NULL_TOL, eigensolver: str = "auto",
                  restoring: float = 10.0, rtol: float = 1e-10,
                  atol: float = 1e-12, integrator: str = "DOP853",
                  max_rhs_evals: int | None = MAX_RHS_EVALS,
                  start_tol: float = LIMIT_TOL) -> ManifoldFlowResult:
    """Solve the manifold flow of normalised GD or GD on sqrt(L) over ``steps`` GD steps.

    ``dX/dτ = −c P_Γ ∇f(λ1(∇²L(X)))`` with (c, f) = (1/4, log) for ``method="normalised"``
    and (1/8, identity) for ``method="sqrt"`` (docs/theory.md §4), ∇λ1 = ∇³L[u, u], on the
    slow time τ = η² t: the flow is integrated as dX/dt = η² dX/dτ over the steps
    t ∈ [0, ``steps``] (the result's ``step``, with ``tau`` = η² t as a second coordinate),
    so that its times and messages count steps.

    The flow lives on Γ and starts there: ``theta0`` must be a minimiser, where ∇L = 0. In
    floating point that means ``|∇L(theta0)| ≤ start_tol``, the test that
    :func:`~stabsim.flows.limit_map` stops on (with the same norm), at its default
    tolerance: so Φ(θ₀) as ``limit_map`` returns it with status OK passes, and a point from
    which it would go on does not. A tolerance relative to a round-off scale such as
    ``|∇²L| |theta0|`` (about 1e-16 of it) would refuse those outputs, which ``limit_map``
    guarantees only to its absolute ``tol``. Near Γ, ``|∇L(θ)| ≈ |∇²L(X)(θ − X)| ≥
    μ |θ − X|`` for the nearest X ∈ Γ and μ the smallest nonzero eigenvalue of ∇²L(X), so
    an accepted start lies within about ``start_tol / μ`` of Γ. A start farther off is
    refused before any work: the ambient geometry would pull it onto Γ along ``∇²L⁺∇L``,
    not along the gradient flow that defines Φ, and the chart geometry starts from
    (x₀, g(x₀)), x₀ the first m coordinates of ``theta0``: it replaces z₀ by g(x₀), which
    for an accepted start is a move of about ``start_tol / μ`` at most.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
        A point of Γ (``|∇L(theta0)| ≤ start_tol``), usually Φ(θ₀) from
        :func:`stabsim.flows.limit_map`; ValueError otherwise, saying how far off it is.
    eta : float
        Step size of the method; sets the slow time τ = η² t.
    steps : float
        Horizon, in GD steps (the slow-time horizon is η² ``steps``).
    method : {"normalised", "sqrt"}
    coefficient : float, optional
        Replaces the theory's c (for negative controls: a wrong constant must fail).
    geometry : {"auto", "chart", "ambient"}
        ``"chart"`` needs a loss with ``on_manifold``, ``normal_eigenvalues``, ``lambda1``
        and ``projected_grad_lambda1`` (ManifoldFamily); ``"auto"`` uses it when available.
    stride : float, optional
        Save the state at the multiples of ``stride`` steps and at ``steps`` (default: at
        the integrator's own steps).
    gap_tol : float
        Stop (status EIGENGAP_CLOSED) once (λ1 − λ2)/λ1 < gap_tol.
    null_tol : float
        Relative tolerance of the numerical null space (ambient geometry), in (0, 1): an
        eigenvalue of ∇²L(X) at most ``null_tol``·λ1 is taken as tangent to Γ. A normal
        curvature below it is taken as tangent too, and the flow then moves along it: on a
        ManifoldFamily whose two normal eigenvalues are λ1 and 3.2e-8 λ1, 0.096 away from
        the chart flow after a motion of 0.47, at the default. Lower it below the smallest
        normal curvature of such a loss (``tangent_space(loss, X).eigenvalues`` lists them).
    eigensolver : {"auto", "eigh", "lanczos"}
        How the ambient geometry finds T_XΓ (:func:`stabsim.flows.tangent_space`): dense
        ``eigh`` (O(d³) per evaluation) or Lanczos on Hessian-vector products for the
        normal space only (O(d r) memory for a normal space of dimension r); ``"auto"``
        is dense up to d = 32.
    restoring : float
        Rate (≥ 0), per unit τ, at which the ambient geometry pulls drift back onto Γ.
    rtol, atol, integrator
        Passed to :func:`stabsim.flows.solve_flow`.
    max_rhs_evals : int or None
        Budget of right-hand-side evaluations (:data:`~stabsim.flows._solve.MAX_RHS_EVALS`;
        None: none); status MAX_STEPS, naming it, when it is exhausted (as for
        :func:`~stabsim.flows.gradient.gradient_flow`).
    start_tol : float
        Largest ``|∇L(theta0)|`` of a start on Γ: the default ``tol`` of
        :func:`~stabsim.flows.limit_map` (pass the ``tol`` given to it, if another). A NaN
        ∇L(theta0) is left to the integrator, which reports NONFINITE.

    Returns
    -------
    ManifoldFlowResult
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.positive_float("steps", steps)
    times = check.record_times(stride, steps, width=loss.dim + 3)
    check.solver_options(rtol, atol, integrator)
    check.choice("method", method, FLOW_CONSTANTS)
    check.choice("geometry", geometry, {"auto", "chart", "ambient"})
    coefficient = FLOW_CONSTANTS[method][0] if coefficient is None else check.finite_float(
        "coefficient", coefficient)
    gap_tol = check.positive_float("gap_tol", gap_tol)
    null_tol = check.positive_float("null_tol", null_tol)
    if not null_tol < 1.0:  # every eigenvalue would be null, P_Γ the identity
        raise ValueError(f"null_tol must lie in (0, 1), got {null_tol!r}")
    check.choice("eigensolver", eigensolver, {"auto", "eigh", "lanczos"})
    restoring = check.finite_float("restoring", restoring)
    if restoring < 0.0:  # it would push drift away from Γ
        raise ValueError(f"restoring must be >= 0, got {restoring!r}")
    # before the spectrum at theta0 below
    max_rhs_evals = check.budget("max_rhs_evals", max_rhs_evals)
    start_tol = check.positive_float("start_tol", start_tol)
    kind = geometry_for(loss, geometry)
    _require_on_gamma(loss, theta0, start_tol, _has_chart(loss))
    geo = kind(loss, method, coefficient, restoring, null_tol, eigensolver)

    closed_at = []  # steps where the gap was found below gap_tol (the event is terminal)

    def degenerate(t, y):
        margin = geo.spectrum(y)[1] - gap_tol
        if margin < 0.0:
            closed_at.append(t)
        return margin

    degenerate.terminal = True
    require_simple_top(geo, theta0, gap_tol)
    scale = eta**2  # τ = η² t
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "method": method,
                  "coefficient": coefficient, "geometry": geo.name, "stride": stride,
                  "gap_tol": gap_tol, "null_tol": null_tol, "eigensolver": eigensolver,
                  "restoring": restoring, "start_tol": start_tol,
                  "integrator": integrator, "rtol": rtol, "atol": atol,
                  "max_rhs_evals": max_rhs_evals}
    flow = solve_flow(lambda t, y: scale * geo.field(y), geo.start(theta0), steps,
                      t_eval=times, events=[degenerate], integrator=integrator, rtol=rtol,
                      atol=atol, max_rhs_evals=max_rhs_evals)
    points = np.array([geo.point(y) for y in flow.trajectory]).reshape(-1, loss.dim)
    spectra = np.array([geo.spectrum(y) for y in flow.trajectory]).reshape(-1, 2)
    grad_norm = np.array([np.linalg.norm(loss._grad(X)) for X in points])
    status, detail = flow.status, flow.detail
    refused = getattr(geo, "refused", None)
    if status is Status.NONFINITE and refused is not None:
        detail = (f"{detail}; " if detail else "") + (
            f"eigensolver='lanczos' could not split the Hessian at a point the integrator "
            f"tried: {refused}")
    if status is Status.OK and closed_at:
        closed = float(min(closed_at))
        status = Status.EIGENGAP_CLOSED
        detail = (f"(λ1 − λ2)/λ1 < gap_tol = {gap_tol:g} at τ = {scale * closed:.6g}, step "
                  f"{closed:.6g}; the states up to there are kept")
    return ManifoldFlowResult(
        status=status, detail=detail, knob=flow.knob, counters=flow.counters,
        parameters=parameters, step=flow.step, trajectory=points, stop_step=flow.stop_step,
        eta=eta, tau=scale * flow.step, method=method,
        coefficient=coefficient, geometry=geo.name, lambda1=spectra[:, 0],
        rel_gap=spectra[:, 1], grad_norm=grad_norm, gap_tol=gap_tol,
    )
