"""Normalised GD and GD on sqrt(L − min L) against their flows on the manifold of minimisers.

docs/theory.md §4 (Arora, Li & Panigrahi). :func:`compare_manifold_flow` runs the exact method with
:func:`stabsim.maps.run_gd` and the manifold flow from X(0) = Φ(θ₀) with
:func:`stabsim.flows.manifold_flow`, and measures at every recorded step t (τ = η² t):

- the tracking error ``|Φ(θ_t) − X(τ)|`` (O(η) over a fixed τ-horizon);
- the two-step oscillation across Γ along the top eigenvector u of ∇²L(Φ(θ_t)): its
  half-amplitude ``|u·(θ_{t+1} − θ_t)|/2`` against ``η/2`` (normalised GD) or
  ``η sqrt(λ1/2)/2`` (GD on sqrt L), and its centre offset ``u·((θ_t + θ_{t+1})/2 − Φ(θ_t))``;
- the edge-of-stability identity: with the effective step ``s = η/|∇L|`` (normalised GD)
  or ``s = η/(2 sqrt(L − L_min))`` (GD on sqrt L) and ``e = s λ1``, a period-2 orbit along u
  needs ``(e_t − 1)(e_{t+1} − 1) = 1``, i.e. the two-step harmonic mean
  ``2/(1/e_t + 1/e_{t+1}) = 2``. On the symmetric orbit ``e_t = 2`` at every step; the
  orbit need not be symmetric (its offset is set by the approach to Γ and relaxes only
  slowly), so the per-step value is recorded but the harmonic mean is the identity.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import _validate as check
from ._export import finish
from ._result import Result, combine_parts
from ._status import Status
from .flows import ManifoldFlowResult, limit_map, manifold_flow
from .flows._solve import MAX_RHS_EVALS
from .flows.manifold import (
    FLOW_CONSTANTS,
    GAP_TOL,
    NULL_TOL,
    geometry_for,
    require_simple_top,
)
from .flows.manifold_geometry import LIMIT_TOL
from .losses import Loss
from .losses._base import require_loss
from .maps import GDResult, run_gd
from .maps._gd_kernels import effective_step
from .maps.gd import METHODS as RULES
from .maps.gd import resolve_loss_min
from .spectral import top_eigenpairs

METHODS = ("normalised", "sqrt")
#: records of :func:`compare_manifold_flow` when no ``stride`` is given
DEFAULT_RECORDS = 50


@dataclasses.dataclass(repr=False)
class ManifoldComparison(Result):
    """What :func:`compare_manifold_flow` measured, one row per recorded step.

    The status combines the parts' (the method's run, the flow, and the worst of the Φ
    computations) by :func:`stabsim._result.combine_parts`. ``counters``: ``steps`` (steps
    of the method), ``flow_rhs_evals`` and ``limit_map_rhs_evals`` (gradients of every Φ).

    Attributes
    ----------
    step, tau : ndarray, shape (n,)
        Step index t and slow time τ = η² t.
    phi : ndarray, shape (n, d)
        Φ(θ_t), the gradient-flow limit of each recorded iterate.
    flow : ndarray, shape (n, d)
        The manifold flow X(τ) from Φ(θ₀).
    error : ndarray, shape (n,)
        |Φ(θ_t) − X(τ)|.
    lambda1, flow_lambda1 : ndarray, shape (n,)
        λ1(∇²L) at Φ(θ_t) and at X(τ).
    half_amplitude, predicted_half_amplitude : ndarray, shape (n,)
        |u·(θ_{t+1} − θ_t)|/2 and its prediction (η/2, or η sqrt(λ1/2)/2).
    offset : ndarray, shape (n,)
        u·((θ_t + θ_{t+1})/2 − Φ(θ_t)): the centre of the oscillation (0 when symmetric).
        u, the top eigenvector of ∇²L(Φ(θ_t)), is signed to agree with the previous row's
        (at row 0, its entry of largest magnitude is positive), so the offset is continuous
        along the run, as the centre and Φ are.
    alignment : ndarray, shape (n,)
        |u·(θ_{t+1} − θ_t)| / |θ_{t+1} − θ_t| (1 when the oscillation is along u).
    eos_product : ndarray, shape (n, 2)
        λ1 · effective step at steps t and t + 1.
    eos_harmonic : ndarray, shape (n,)
        2/(1/e_t + 1/e_{t+1}) with e = ``eos_product``: 2 on any period-2 orbit along u.
    gd : GDResult
        The run of the method (its own status, records and iterates).
    flow_result : ManifoldFlowResult or None
        The solved flow; None when Φ(θ₀), its start, was not reached (the flow needs a
        start on Γ): then there are no rows, and the status is that of Φ(θ₀).
    phi_tol : float
        Tolerance on |∇L| at which each Φ was stopped; ``phi_status`` the combined status of
        them.
    parameters : dict
        The arguments of the :func:`compare_manifold_flow` call (the loss by its ``repr``,
        ``loss_min`` as resolved).
    """

    method: str
    eta: float
    coefficient: float
    step: np.ndarray
    tau: np.ndarray
    phi: np.ndarray
    flow: np.ndarray
    error: np.ndarray
    lambda1: np.ndarray
    flow_lambda1: np.ndarray
    half_amplitude: np.ndarray
    predicted_half_amplitude: np.ndarray
    offset: np.ndarray
    alignment: np.ndarray
    eos_product: np.ndarray
    eos_harmonic: np.ndarray
    gd: GDResult
    flow_result: ManifoldFlowResult | None
    phi_tol: float
    phi_status: Status

    def headline(self) -> dict:
        return {"method": self.method, "eta": self.eta, "records": self.step.shape[0],
                "max_error": self.max_error()}

    def window(self, tau0: float = 0.0) -> np.ndarray:
        """Boolean mask of the rows with τ ≥ ``tau0`` (after the transient)."""
        return self.tau >= tau0

    def max_error(self, tau0: float = 0.0) -> float:
        """max over τ ∈ [τ0, T] of |Φ(θ_t) − X(τ)|; NaN when no row has τ ≥ τ0 (none at all
        after a run that failed at its start)."""
        error = self.error[self.window(tau0)]
        return float(error.max()) if error.size else np.nan

    def to_xarray(self):
        """The rows as an ``xarray.Dataset`` with dimensions ``step`` and ``param``."""
        import xarray as xr

        n = self.step.shape[0]
        data = {
            "phi": (("step", "param"), self.phi),
            "flow": (("step", "param"), self.flow),
            "error": ("step", self.error),
            "lambda1": ("step", self.lambda1),
            "flow_lambda1": ("step", self.flow_lambda1),
            "half_amplitude": ("step", self.half_amplitude),
            "predicted_half_amplitude": ("step", self.predicted_half_amplitude),
            "offset": ("step", self.offset),
            "alignment": ("step", self.alignment),
            "eos_product": (("step", "parity"), self.eos_product),
            "eos_harmonic": ("step", self.eos_harmonic),
        }
        if self.gd.trajectory is not None:
            data["theta"] = (("step", "param"), self.gd.trajectory[:n])
        attrs = {"method": self.method, "eta": self.eta, "coefficient": self.coefficient,
                 "phi_tol": self.phi_tol, **self._export_attrs()}
        ds = xr.Dataset(data, coords={"step": self.step, "tau": ("step", self.tau),
                                      "parity": [0, 1]}, attrs=attrs)
        return finish(ds, self.parameters)


def compare_manifold_flow(loss: Loss, theta0, eta: float, steps: int, *,
                          method: str = "normalised", stride: int | None = None,
                          coefficient: float | None = None, geometry: str = "auto",
                          loss_min: float | None = None, phi_tol: float = LIMIT_TOL,
                          phi_s_max: float = 1e6,
                          phi_max_rhs_evals: int | None = MAX_RHS_EVALS,
                          flow_rtol: float = 1e-10, flow_atol: float = 1e-12,
                          flow_max_rhs_evals: int | None = MAX_RHS_EVALS
                          ) -> ManifoldComparison:
    """Run normalised GD (or GD on sqrt(L − L_min)) and its manifold flow side by side.

    The method runs ``steps`` steps from θ₀, recording every ``stride``-th iterate; the
    flow ``dX/dτ = −c P_Γ ∇f(λ1)`` runs from X(0) = Φ(θ₀) on the slow time τ = η² t and is
    saved at the same steps. See the module docstring for what is measured. A slow-time
    horizon T costs T/η² steps.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        Step size.
    steps : int
        Steps of the method (the slow-time horizon is η² ``steps``).
    method : {"normalised", "sqrt"}
    stride : int, optional
        Record (and compare) every ``stride``-th step; default ``steps // 50`` (at least 1).
    coefficient : float, optional
        Replaces the flow constant c (1/4 or 1/8), e.g. for a negative control.
    geometry : {"auto", "chart", "ambient"}
        How the flow stays on Γ (see :func:`stabsim.flows.manifold_flow`).
    loss_min : float, optional
        L_min for ``method="sqrt"`` (default ``loss.min_value``).
    phi_tol : float
        Tolerance on |∇L| of every Φ (:func:`stabsim.flows.limit_map`), and so the largest
        |∇L| of the flow's start (``manifold_flow``'s ``start_tol``). When Φ(θ₀) does not
        meet it, the flow is not run (a start off Γ is refused) and the comparison has no
        rows.
    phi_s_max : float
        Gradient-flow time each Φ may take to meet ``phi_tol`` (``limit_map``'s ``s_max``).
    phi_max_rhs_evals : int or None
        Budget of gradient evaluations of each Φ (``limit_map``'s ``max_rhs_evals``; None:
        none); that Φ's part ends MAX_STEPS naming it when it is exhausted.
    flow_rtol, flow_atol : float
        Integrator tolerances of the flow.
    flow_max_rhs_evals : int or None
        Budget of right-hand-side evaluations of the flow (``manifold_flow``'s
        ``max_rhs_evals``; None: none); status MAX_STEPS naming it when it is exhausted.

    Returns
    -------
    ManifoldComparison
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    check.choice("method", method, METHODS)
    stride = (max(1, steps // DEFAULT_RECORDS) if stride is None
              else check.nonnegative_int("stride", stride, minimum=1))
    if coefficient is not None:
        check.finite_float("coefficient", coefficient)
    check.choice("geometry", geometry, {"auto", "chart", "ambient"})
    phi_tol = check.positive_float("phi_tol", phi_tol)
    phi_s_max = check.positive_float("phi_s_max", phi_s_max)
    phi_max_rhs_evals = check.budget("phi_max_rhs_evals", phi_max_rhs_evals)
    flow_rtol = check.positive_float("flow_rtol", flow_rtol)
    if flow_rtol >= 1.0:  # as every flow's rtol (stabsim._validate.solver_options)
        raise ValueError(f"flow_rtol must lie in (0, 1), got {flow_rtol!r}")
    flow_atol = check.positive_float("flow_atol", flow_atol)
    flow_max_rhs_evals = check.budget("flow_max_rhs_evals", flow_max_rhs_evals)
    loss_min = resolve_loss_min(loss, method, loss_min)
    kind = geometry_for(loss, geometry)

    def phi_of(theta):
        # a Φ that runs out of flow time or evaluations names this call's knob, not
        # limit_map's
        limit = limit_map(loss, theta, tol=phi_tol, s_max=phi_s_max,
                          max_rhs_evals=phi_max_rhs_evals)
        knob = {"s_max": "phi_s_max", "max_rhs_evals": "phi_max_rhs_evals"}.get(limit.knob)
        return limit if knob is None else dataclasses.replace(limit, knob=knob)

    # the flow's start first: a flow that is undefined there is refused before any work
    start = phi_of(theta0)
    if start.success:
        require_simple_top(kind(loss, method, coefficient, 0.0, NULL_TOL, "auto"), start.theta,
                           GAP_TOL, "Φ(theta0) (the flow's start)")
    gd = run_gd(loss, theta0, eta, steps, method=method, stride=stride,
                record_trajectory=True, find_crossing=False, loss_min=loss_min)
    recorded = gd.step
    tau = eta**2 * recorded.astype(float)

    # row 0 is θ₀ itself (run_gd records the start), whose Φ is computed already
    limits = [start] + [phi_of(theta) for theta in gd.trajectory[1:]] if len(gd.step) else []
    phi = np.array([limit.theta for limit in limits]).reshape(-1, loss.dim)
    phi_parts = {f"limit_map[{k}]": limit for k, limit in enumerate(limits)}
    if not limits:  # no records: Φ(θ₀) of its own
        phi_parts["limit_map[theta0]"] = start
    if start.success:
        flow = manifold_flow(loss, start.theta, eta, steps, method=method,
                             coefficient=coefficient, geometry=geometry, stride=stride,
                             rtol=flow_rtol, atol=flow_atol,
                             max_rhs_evals=flow_max_rhs_evals, start_tol=phi_tol)
        if flow.knob == "max_rhs_evals":  # named by this call's knob
            flow = dataclasses.replace(flow, knob="flow_max_rhs_evals")
        flow_part, flow_states = flow, flow.trajectory
        flow_lambda1, flow_evals = flow.lambda1, flow.counters["rhs_evals"]
        flow_coefficient = flow.coefficient
    else:  # X(0) = Φ(θ₀) is not on Γ to phi_tol: manifold_flow would refuse it
        flow = None
        flow_part = Result(status=start.status, counters={}, parameters={}, knob=start.knob,
                           detail="not run, as its start Φ(θ₀) was not reached")
        flow_states, flow_lambda1, flow_evals = np.empty((0, loss.dim)), np.empty(0), 0
        flow_coefficient = (FLOW_CONSTANTS[method][0] if coefficient is None
                            else float(coefficient))
    n = min(recorded.shape[0], flow_states.shape[0])  # the flow may stop early (closed gap)
    phi_status = combine_parts(phi_parts)[0]
    status, knob, detail = combine_parts({f"{method} GD": gd, "manifold flow": flow_part,
                                          **phi_parts})
    counters = {"steps": gd.counters["steps"], "flow_rhs_evals": flow_evals,
                "limit_map_rhs_evals": sum(lim.counters["rhs_evals"]
                                           for lim in phi_parts.values())}

    oscillation = np.full((n, 7), np.nan)
    undefined = None  # the first record whose oscillation is undefined, and why
    u = None  # the previous row's u: the sign reference of the next
    for row in range(n):
        oscillation[row], u, reason = _oscillation(loss, gd.trajectory[row], phi[row], eta,
                                                   method, loss_min, u)
        if reason is not None and undefined is None:
            undefined = f"the oscillation at step {recorded[row]} is undefined: {reason}"
    if undefined is not None and status is Status.OK:  # NaN rows, said why
        status, detail = Status.UNDEFINED, undefined
    lambda1, half_amp, predicted, offset, alignment = oscillation[:, :5].T
    eos = oscillation[:, 5:7]
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = 2.0 / (1.0 / eos[:, 0] + 1.0 / eos[:, 1])
    return ManifoldComparison(
        status=status, knob=knob, detail=detail, counters=counters,
        method=method, eta=eta, coefficient=flow_coefficient, step=recorded[:n], tau=tau[:n],
        phi=phi[:n], flow=flow_states[:n],
        error=np.linalg.norm(phi[:n] - flow_states[:n], axis=1),
        lambda1=lambda1, flow_lambda1=flow_lambda1[:n], half_amplitude=half_amp,
        predicted_half_amplitude=predicted, offset=offset, alignment=alignment,
        eos_product=eos, eos_harmonic=harmonic, gd=gd, flow_result=flow,
        phi_tol=phi_tol, phi_status=phi_status,
        parameters={"loss": loss.provenance, "theta0": theta0.tolist(), "eta": eta, "steps": steps,
                    "method": method, "stride": stride, "coefficient": coefficient,
                    "geometry": geometry, "loss_min": loss_min, "phi_tol": phi_tol,
                    "phi_s_max": phi_s_max, "phi_max_rhs_evals": phi_max_rhs_evals,
                    "flow_rtol": flow_rtol, "flow_atol": flow_atol,
                    "flow_max_rhs_evals": flow_max_rhs_evals},
    )


def _oscillation(loss, theta, phi, eta, method, loss_min, u_ref):
    """(λ1, half-amplitude, its prediction, offset, alignment, e_t, e_{t+1}) at one record,
    the top eigenvector u of ∇²L(Φ) they are measured along, and why some are undefined
    (NaN), or None.

    u is signed to agree with ``u_ref`` (the previous record's u); without one (the first
    record), its entry of largest magnitude (the first such) is positive. θ_{t+1} comes
    from one more step of the engine, so the update rule is the engine's.
    """
    out = np.full(7, np.nan)
    pairs = top_eigenpairs(loss, phi, v0=u_ref)
    lam, u = float(pairs.values[0]), pairs.vectors[:, 0]
    if u_ref is None and u[np.argmax(np.abs(u))] < 0:
        u = -u
    out[0] = lam
    out[2] = eta / 2.0 if method == "normalised" else eta * math.sqrt(lam / 2.0) / 2.0
    if method == "sqrt" and loss.value(theta) < loss_min:  # run_gd refuses such a start
        return out, u, "L < L_min there, where sqrt(L − L_min) is undefined"
    step = run_gd(loss, theta, eta, 1, method=method, record_trajectory=True,
                  find_crossing=False, loss_min=loss_min)
    if step.status is not Status.OK:  # e.g. an exact minimiser: no oscillation to measure
        return out, u, f"one more step from there ends {step.status.name} ({step.message})"
    jump = step.theta - theta
    along = float(u @ jump)
    out[1] = abs(along) / 2.0
    out[3] = float(u @ (0.5 * (theta + step.theta) - phi))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[4] = np.float64(abs(along)) / np.linalg.norm(jump)
        for k in range(2):
            out[5 + k] = lam * effective_step(RULES[method], eta, eta, step.loss[k],
                                              step.grad_norm[k], loss_min)
    if not np.all(np.isfinite(out)):
        return out, u, ("GD is at an exact minimiser there or one step later (∇L = 0, or "
                     "L = L_min for sqrt), where the step does not move θ or its size is "
                     "0/0, or (sqrt) at L < L_min, where sqrt(L − L_min) is undefined")
    return out, u, None
