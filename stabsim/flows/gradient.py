"""Gradient flow, in the time unit of GD steps."""

from __future__ import annotations

from .. import _validate as check
from ..losses import Loss
from ..losses._base import require_loss
from ._solve import MAX_RHS_EVALS, FlowResult, solve_flow


def gradient_flow(loss: Loss, theta0, eta: float, steps: float, *, stride=None,
                  rtol: float = 1e-10, atol: float = 1e-12, integrator: str = "DOP853",
                  divergence_norm: float = 1e8,
                  max_rhs_evals: int | None = MAX_RHS_EVALS) -> FlowResult:
    """Solve ``dθ/dt = −η ∇L(θ)`` for t ∈ [0, steps], t counted in GD steps of size η.

    With this time unit, GD's iterate θ_t and the flow's θ(t) are compared at equal t, and
    GD tracks the flow with error O(η) over a fixed horizon (docs/theory.md §5).

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        GD's step size (also the flow's time unit).
    steps : float
        Horizon, in GD steps.
    stride : float, optional
        Save the state at the multiples of ``stride`` and at ``steps`` (default: at the
        integrator's own steps).
    rtol, atol : float
        Tolerances of ``solve_ivp``: 0 < rtol < 1, atol > 0.
    integrator : str
        A ``solve_ivp`` method; implicit ones (``"Radau"``, ``"BDF"``, ``"LSODA"``) get the
        exact Jacobian −η∇²L.
    divergence_norm : float
        |θ| at which the flow stops with status DIVERGED (as for ``run_gd``); ``inf`` to
        follow it until the loss or its gradient stops being finite (status NONFINITE).
        ``stop_step`` in the result says when either happened.
    max_rhs_evals : int or None
        Budget of right-hand-side evaluations (:data:`~stabsim.flows._solve.MAX_RHS_EVALS`;
        None: none); status MAX_STEPS, naming it, when it is exhausted. Far past 2/η
        (η λ ≫ 1 along the way, where GD diverges) the flow is stiff and an explicit
        integrator's steps shrink to about 1/(η λ): an implicit ``integrator`` is the cure
        there.

    Returns
    -------
    FlowResult
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.positive_float("steps", steps)
    times = check.record_times(stride, steps, width=loss.dim + 1)
    check.solver_options(rtol, atol, integrator)
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "stride": stride,
                  "integrator": integrator, "rtol": rtol, "atol": atol,
                  "divergence_norm": divergence_norm, "max_rhs_evals": max_rhs_evals}
    return solve_flow(lambda t, th: -eta * loss._grad(th), theta0, steps, t_eval=times,
                      jac=lambda t, th: -eta * loss._hessian(th), integrator=integrator,
                      rtol=rtol, atol=atol, divergence_norm=divergence_norm,
                      max_rhs_evals=max_rhs_evals, parameters=parameters)
