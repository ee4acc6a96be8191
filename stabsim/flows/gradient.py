"""Gradient flow, in the time unit of GD steps."""

from __future__ import annotations

from .. import _validate as check
from ..losses import Loss
from ..losses._base import require_loss
from ._solve import FlowResult, solve_flow


def gradient_flow(loss: Loss, theta0, eta: float, t_end: float, *, t_eval=None,
                  rtol: float = 1e-10, atol: float = 1e-12, method: str = "DOP853",
                  divergence_norm: float = 1e8) -> FlowResult:
    """Solve ``dθ/dt = −η ∇L(θ)`` for t ∈ [0, t_end], t counted in GD steps of size η.

    With this time unit, GD's iterate θ_t and the flow's θ(t) are compared at equal t, and
    GD tracks the flow with error O(η) over a fixed horizon (docs/theory.md §5).

    Parameters
    ----------
    method : str
        A ``solve_ivp`` method; implicit ones (``"Radau"``, ``"BDF"``, ``"LSODA"``) get the
        exact Jacobian −η∇²L.
    divergence_norm : float
        |θ| at which the flow stops with status DIVERGED (as for ``run_gd``); ``inf`` to
        follow it until the loss or its gradient stops being finite (status NONFINITE).
        ``t_stop`` in the result says when either happened.
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    t_end = check.positive_float("t_end", t_end)
    t_eval = check.eval_times("t_eval", t_eval, t_end, "t_end")
    check.solver_options(rtol, atol, method)
    return solve_flow(lambda t, th: -eta * loss.grad(th), theta0, t_end, t_eval=t_eval,
                      jac=lambda t, th: -eta * loss.hessian(th), method=method,
                      rtol=rtol, atol=atol, divergence_norm=divergence_norm)
