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
from ._status import Status
from .flows import ManifoldFlowResult, limit_map, manifold_flow
from .losses import Loss
from .losses._base import require_loss
from .maps import GDResult, run_gd
from .maps._gd_kernels import effective_step
from .maps.gd import METHODS as RULES
from .maps.gd import resolve_loss_min
from .spectral import top_eigenpairs

METHODS = ("normalised", "sqrt")
#: default ``max_steps`` of :func:`compare_manifold_flow`: about 3 minutes of normalised GD
#: on a four-parameter ManifoldFamily (5.5·10⁵ steps/s measured), hours on large losses
MAX_STEPS = 10**8


@dataclasses.dataclass
class ManifoldComparison:
    """What :func:`compare_manifold_flow` measured, one row per recorded step.

    Attributes
    ----------
    steps, tau : ndarray, shape (n,)
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
    alignment : ndarray, shape (n,)
        |u·(θ_{t+1} − θ_t)| / |θ_{t+1} − θ_t| (1 when the oscillation is along u).
    eos_product : ndarray, shape (n, 2)
        λ1 · effective step at steps t and t + 1.
    eos_harmonic : ndarray, shape (n,)
        2/(1/e_t + 1/e_{t+1}) with e = ``eos_product``: 2 on any period-2 orbit along u.
    gd : GDResult
        The run of the method (its own status, records and iterates).
    flow_result : ManifoldFlowResult
        The solved flow.
    phi_tol : float
        Tolerance on |∇L| at which each Φ was stopped; ``phi_status`` the worst of them.
    parameters : dict
        The arguments of the :func:`compare_manifold_flow` call (the loss by its ``repr``,
        ``loss_min`` as resolved).
    """

    method: str
    eta: float
    coefficient: float
    steps: np.ndarray
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
    flow_result: ManifoldFlowResult
    phi_tol: float
    phi_status: Status
    parameters: dict

    @property
    def status(self) -> Status:
        """The first failure among the method's run, the flow and the Φ computations."""
        for status in (self.gd.status, self.flow_result.status, self.phi_status):
            if not status.success:
                return status
        return Status.OK

    @property
    def message(self) -> str:
        if self.gd.status is not Status.OK:
            return f"{self.method} GD: {self.gd.message}"
        if not self.flow_result.success:
            return f"manifold flow: {self.flow_result.message}"
        if self.phi_status is not Status.OK:
            return f"limit map Φ: {self.phi_status.message}"
        return "ok"

    @property
    def success(self) -> bool:
        return self.status.success

    def window(self, tau0: float = 0.0) -> np.ndarray:
        """Boolean mask of the rows with τ ≥ ``tau0`` (after the transient)."""
        return self.tau >= tau0

    def max_error(self, tau0: float = 0.0) -> float:
        """max over τ ∈ [τ0, T] of |Φ(θ_t) − X(τ)|."""
        return float(self.error[self.window(tau0)].max())

    def to_xarray(self):
        """The rows as an ``xarray.Dataset`` with dimensions ``step`` and ``param``."""
        import xarray as xr

        n = self.steps.shape[0]
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
        if self.gd.iterates is not None:
            data["theta"] = (("step", "param"), self.gd.iterates[:n])
        attrs = {"method": self.method, "eta": self.eta, "coefficient": self.coefficient,
                 "phi_tol": self.phi_tol, "status": self.status.name, "message": self.message}
        ds = xr.Dataset(data, coords={"step": self.steps, "tau": ("step", self.tau),
                                      "parity": [0, 1]}, attrs=attrs)
        return finish(ds, self.parameters)


def compare_manifold_flow(loss: Loss, theta0, eta: float, tau_end: float, *,
                          method: str = "normalised", n_records: int = 50,
                          coefficient: float | None = None, geometry: str = "auto",
                          loss_min: float | None = None, phi_tol: float = 1e-10,
                          flow_rtol: float = 1e-10, flow_atol: float = 1e-12,
                          max_steps: int = MAX_STEPS) -> ManifoldComparison:
    """Run normalised GD (or GD on sqrt(L − L_min)) and its manifold flow side by side.

    The method runs ``ceil(τ_end/η²)`` steps from θ₀ (recording about ``n_records``
    iterates); the flow ``dX/dτ = −c P_Γ ∇f(λ1)`` runs from X(0) = Φ(θ₀) and is saved at
    τ = η² t of each record. See the module docstring for what is measured.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        Step size.
    tau_end : float
        Slow-time horizon T.
    method : {"normalised", "sqrt"}
    n_records : int
        About how many steps to record and compare.
    coefficient : float, optional
        Replaces the flow constant c (1/4 or 1/8), e.g. for a negative control.
    geometry : {"auto", "chart", "ambient"}
        How the flow stays on Γ (see :func:`stabsim.flows.manifold_flow`).
    loss_min : float, optional
        L_min for ``method="sqrt"`` (default ``loss.min_value``).
    phi_tol : float
        Tolerance on |∇L| of every Φ (:func:`stabsim.flows.limit_map`).
    flow_rtol, flow_atol : float
        Integrator tolerances of the flow.
    max_steps : int
        Largest step count ``ceil(τ_end/η²)`` accepted: a slow-time horizon costs 1/η² steps
        (τ_end = 1 at η = 10⁻⁷ is 10¹⁴ steps, years of work), so a longer one is refused
        before anything runs.
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    tau_end = check.positive_float("tau_end", tau_end)
    check.choice("method", method, METHODS)
    n_records = check.nonnegative_int("n_records", n_records, minimum=1)
    if coefficient is not None:
        check.finite_float("coefficient", coefficient)
    check.choice("geometry", geometry, {"auto", "chart", "ambient"})
    phi_tol = check.positive_float("phi_tol", phi_tol)
    flow_rtol = check.positive_float("flow_rtol", flow_rtol)
    flow_atol = check.positive_float("flow_atol", flow_atol)
    max_steps = check.nonnegative_int("max_steps", max_steps, minimum=1)
    n_steps = max(1, math.ceil(tau_end / eta**2))
    if n_steps > max_steps:
        raise ValueError(f"tau_end / eta**2 = {tau_end:g} / {eta:g}**2 needs {n_steps:.3g} steps, "
                         f"over max_steps = {max_steps:.3g}: lower tau_end, raise eta or "
                         "raise max_steps")
    loss_min = resolve_loss_min(loss, method, loss_min)

    stride = max(1, n_steps // n_records)
    gd = run_gd(loss, theta0, eta, n_steps, method=method, stride=stride,
                record_iterates=True, find_crossing=False, loss_min=loss_min)
    steps = gd.steps
    tau = eta**2 * steps.astype(float)

    limits = [limit_map(loss, theta, tol=phi_tol) for theta in gd.iterates]
    phi = np.array([limit.point for limit in limits]).reshape(-1, loss.dim)
    phi_status = next((lim.status for lim in limits if not lim.success), Status.OK)
    start = limits[0].point if limits else limit_map(loss, theta0, tol=phi_tol).point
    flow = manifold_flow(loss, start, max(tau[-1] if tau.size else 0.0, eta**2),
                         method=method, coefficient=coefficient, geometry=geometry,
                         tau_eval=tau, rtol=flow_rtol, atol=flow_atol)
    n = min(steps.shape[0], flow.t.shape[0])  # the flow may stop early (degenerate λ1)

    oscillation = np.full((n, 7), np.nan)
    for row in range(n):
        oscillation[row] = _oscillation(loss, gd.iterates[row], phi[row], eta, method,
                                        loss_min)
    lambda1, half_amp, predicted, offset, alignment = oscillation[:, :5].T
    eos = oscillation[:, 5:7]
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = 2.0 / (1.0 / eos[:, 0] + 1.0 / eos[:, 1])
    return ManifoldComparison(
        method=method, eta=eta, coefficient=flow.coefficient, steps=steps[:n], tau=tau[:n],
        phi=phi[:n], flow=flow.states[:n],
        error=np.linalg.norm(phi[:n] - flow.states[:n], axis=1),
        lambda1=lambda1, flow_lambda1=flow.lambda1[:n], half_amplitude=half_amp,
        predicted_half_amplitude=predicted, offset=offset, alignment=alignment,
        eos_product=eos, eos_harmonic=harmonic, gd=gd, flow_result=flow,
        phi_tol=phi_tol, phi_status=phi_status,
        parameters={"loss": repr(loss), "theta0": theta0, "eta": eta, "tau_end": tau_end,
                    "method": method, "n_records": n_records, "coefficient": coefficient,
                    "geometry": geometry, "loss_min": loss_min, "phi_tol": phi_tol,
                    "flow_rtol": flow_rtol, "flow_atol": flow_atol, "max_steps": max_steps},
    )


def _oscillation(loss, theta, phi, eta, method, loss_min):
    """(λ1, half-amplitude, its prediction, offset, alignment, e_t, e_{t+1}) at one record.

    θ_{t+1} comes from one more step of the engine, so the update rule is the engine's.
    """
    out = np.full(7, np.nan)
    pairs = top_eigenpairs(loss, phi)
    lam, u = float(pairs.values[0]), pairs.vectors[:, 0]
    out[0] = lam
    out[2] = eta / 2.0 if method == "normalised" else eta * math.sqrt(lam / 2.0) / 2.0
    step = run_gd(loss, theta, eta, 1, method=method, record_iterates=True,
                  find_crossing=False, loss_min=loss_min)
    if step.status is not Status.OK:  # e.g. an exact minimiser: no oscillation to measure
        return out
    jump = step.theta - theta
    along = float(u @ jump)
    out[1] = abs(along) / 2.0
    out[3] = float(u @ (0.5 * (theta + step.theta) - phi))
    out[4] = abs(along) / float(np.linalg.norm(jump))
    for k in range(2):
        out[5 + k] = lam * effective_step(RULES[method], eta, eta, step.loss[k],
                                          step.grad_norm[k], loss_min)
    return out
