"""The central flow of Cohen, Damian et al. for one critical eigenvalue (THEORY §3).

Time t counts GD steps. While S(w) < 2/η the flow is gradient flow, dw/dt = −η∇L. Once
S(w) = 2/η,

    dw/dt = −η [ ∇L + ½ σ² ∇S ],     σ² = max(0, 2⟨−∇L, ∇S⟩/|∇S|²),

which keeps dS/dt = ∇S·dw/dt = 0 while σ² > 0 (the projected gradient flow on the boundary
of {S ≤ 2/η}); when σ² reaches 0 (gradient flow would lower S) the flow leaves the boundary
and is gradient flow again. Along GD's edge-of-stability oscillation the predicted time
averages are E[L(w_t)] ≈ L(w) + σ²/η and E|∇L(w_t)|² ≈ |∇L(w)|² + 4σ²/η².

Only one critical eigenvalue is handled: with k > 1 eigenvalues at 2/η the flow needs the
semidefinite complementarity problem for a matrix Σ, which is not implemented; the
result reports the margin 2/η − λ2 so that a user can see when that case is reached.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._status import Status
from ..losses import Loss
from ..spectral import align_sign
from ._solve import FlowResult, solve_flow


@dataclasses.dataclass
class CentralFlowResult(FlowResult):
    """A solved central flow: the :class:`FlowResult` fields and, at each saved time,

    Attributes
    ----------
    loss, sharpness, lambda2 : ndarray, shape (n,)
        L(w), S(w) and the second Hessian eigenvalue.
    sigma2 : ndarray, shape (n,)
        σ² (0 off the boundary).
    grad_norm2 : ndarray, shape (n,)
        |∇L(w)|².
    at_eos : ndarray of bool, shape (n,)
        Whether w is on the boundary S = 2/η (the constrained branch).
    entry_times, exit_times : list of float
        Times at which the flow reached S = 2/η and left it.
    eta : float
    """

    eta: float = np.nan
    loss: np.ndarray = None
    sharpness: np.ndarray = None
    lambda2: np.ndarray = None
    sigma2: np.ndarray = None
    grad_norm2: np.ndarray = None
    at_eos: np.ndarray = None
    entry_times: list = dataclasses.field(default_factory=list)
    exit_times: list = dataclasses.field(default_factory=list)

    @property
    def predicted_loss(self) -> np.ndarray:
        """L(w) + σ²/η, the predicted time average of GD's loss."""
        return self.loss + self.sigma2 / self.eta

    @property
    def predicted_grad_norm2(self) -> np.ndarray:
        """|∇L(w)|² + 4σ²/η², the predicted time average of GD's |∇L|²."""
        return self.grad_norm2 + 4.0 * self.sigma2 / self.eta ** 2


class _Field:
    """The two branches of the central flow's vector field, with a consistent sign of u."""

    def __init__(self, loss: Loss, eta: float):
        self.loss, self.eta, self.bound, self.u = loss, eta, 2.0 / eta, None

    def spectrum(self, w):
        """(S, λ2, u) at w, u aligned with the last u seen."""
        values, vectors = np.linalg.eigh(self.loss.hessian(w))
        self.u = align_sign(vectors[:, -1], self.u)
        return values[-1], (values[-2] if values.shape[0] > 1 else -np.inf), self.u

    def sigma2(self, w, grad):
        """σ² = max(0, 2⟨−∇L, ∇S⟩/|∇S|²) and ∇S at w."""
        _, _, u = self.spectrum(w)
        grad_s = self.loss.d3(w, u, u)
        return max(0.0, -2.0 * float(grad @ grad_s) / float(grad_s @ grad_s)), grad_s

    def gradient_flow(self, t, w):
        return -self.eta * self.loss.grad(w)

    def boundary_flow(self, t, w):
        grad = self.loss.grad(w)
        sigma2, grad_s = self.sigma2(w, grad)
        return -self.eta * (grad + 0.5 * sigma2 * grad_s)

    def reaches_threshold(self, t, w):
        """Event of the stable branch: S(w) − 2/η rising through 0."""
        return self.spectrum(w)[0] - self.bound

    def leaves_boundary(self, t, w):
        """Event of the boundary branch: ⟨−∇L, ∇S⟩ falling through 0 (σ² → 0)."""
        _, _, u = self.spectrum(w)
        return -float(self.loss.grad(w) @ self.loss.d3(w, u, u))


def central_flow(loss: Loss, theta0, eta: float, t_end: float, *, t_eval=None,
                 rtol: float = 1e-10, atol: float = 1e-12, method: str = "DOP853",
                 max_switches: int = 100) -> CentralFlowResult:
    """Solve the central flow (module docstring) for t ∈ [0, t_end], t in GD steps.

    The flow switches between gradient flow and the boundary branch at events located by
    ``solve_ivp``: S(w) reaching 2/η, and σ² reaching 0. Each branch is integrated once to
    find its switching time and once more to save the states at the requested times. A
    start with S(θ_0) ≥ 2/η begins on the boundary branch, which then holds S at S(θ_0).

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        GD step size; the sharpness bound is 2/η.
    t_end : float
        Final time, in GD steps.
    t_eval : array_like, optional
        Increasing times in [0, t_end] at which to save (default: 0, 1, …, ⌊t_end⌋).
    rtol, atol, method :
        Passed to ``solve_ivp`` (through :func:`~stabsim.flows.solve_flow`).
    max_switches : int
        Budget of branch switches; status MAX_STEPS when it is exhausted.

    Returns
    -------
    CentralFlowResult
    """
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    t_end = check.positive_float("t_end", t_end)
    max_switches = check.nonnegative_int("max_switches", max_switches, minimum=1)
    if t_eval is None:
        t_eval = np.arange(int(np.floor(t_end)) + 1, dtype=float)
    t_eval = check.finite_array("t_eval", t_eval, ndim=1)
    if np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0 or t_eval[-1] > t_end:
        raise ValueError("t_eval must be increasing and lie in [0, t_end]")

    field = _Field(loss, eta)
    on_boundary = field.spectrum(theta0)[0] >= field.bound
    t0, w0 = 0.0, theta0
    saved_t, saved_w, saved_branch = [], [], []
    entries, exits = ([0.0] if on_boundary else []), []
    status, message, nfev, njev, switches = Status.OK, "", 0, 0, 0
    while True:
        rhs = field.boundary_flow if on_boundary else field.gradient_flow
        event = _shifted(field.leaves_boundary if on_boundary else field.reaches_threshold, t0)
        event.terminal, event.direction = True, (-1.0 if on_boundary else 1.0)
        rhs = _shifted(rhs, t0)
        # pass 1: where does this branch end? (the last solver state is the event state)
        probe = solve_flow(rhs, w0, t_end - t0, events=[event],
                           rtol=rtol, atol=atol, method=method)
        nfev += probe.nfev
        t_stop = t0 + probe.t[-1]
        switched = probe.success and t_stop < t_end
        # pass 2: the states at the requested times within [t0, t_stop]
        times = t_eval[(t_eval >= t0) & ((t_eval < t_stop) if switched else (t_eval <= t_end))]
        if times.size and probe.success:
            if t_stop > t0:
                part = solve_flow(rhs, w0, t_stop - t0, t_eval=times - t0,
                                  rtol=rtol, atol=atol, method=method)
                nfev += part.nfev
                saved_t.append(part.t + t0)
                saved_w.append(part.states)
            else:
                part = probe
                saved_t.append(np.array([t0]))
                saved_w.append(w0[None, :])
            saved_branch.append(np.full(saved_t[-1].shape[0], on_boundary))
            status, message = part.status, part.solver_message
        if not probe.success:
            status, message = probe.status, probe.solver_message
            break
        if not switched:
            break
        switches += 1
        if switches > max_switches:
            status, message = Status.MAX_STEPS, "more branch switches than max_switches"
            break
        (exits if on_boundary else entries).append(t_stop)
        t0, w0, on_boundary = t_stop, probe.final, not on_boundary

    t = np.concatenate(saved_t) if saved_t else np.empty(0)
    states = np.concatenate(saved_w) if saved_w else np.empty((0, loss.dim))
    at_eos = np.concatenate(saved_branch) if saved_branch else np.empty(0, dtype=bool)
    return _measure(loss, field, t, states, at_eos, status, message, nfev, njev, eta,
                    entries, exits)


def _shifted(f, start):
    """``f`` with its time argument shifted by ``start`` (each branch integrates from 0)."""

    def g(t, w):
        return f(t + start, w)

    return g


def _measure(loss, field, t, states, at_eos, status, message, nfev, njev, eta,
             entries, exits) -> CentralFlowResult:
    """Loss, spectrum and σ² at every saved state."""
    n = t.shape[0]
    out = {key: np.zeros(n) for key in ("loss", "sharpness", "lambda2", "sigma2", "g2")}
    for i, w in enumerate(states):
        grad = loss.grad(w)
        out["loss"][i] = loss.value(w)
        out["sharpness"][i], out["lambda2"][i], _ = field.spectrum(w)
        out["g2"][i] = float(grad @ grad)
        if at_eos[i]:
            out["sigma2"][i] = field.sigma2(w, grad)[0]
    return CentralFlowResult(
        t=t, states=states, status=status, solver_message=message, nfev=nfev, njev=njev,
        eta=eta, loss=out["loss"], sharpness=out["sharpness"], lambda2=out["lambda2"],
        sigma2=out["sigma2"], grad_norm2=out["g2"], at_eos=at_eos,
        entry_times=entries, exit_times=exits)
