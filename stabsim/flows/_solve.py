"""One entry point for integrating a flow with ``scipy.integrate.solve_ivp``."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp

from .._status import Status


@dataclasses.dataclass
class FlowResult:
    """A solved flow.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Times of the saved states (in the flow's own time unit, e.g. GD steps).
    states : ndarray, shape (n, d)
    status : Status
        OK, NONFINITE (the right-hand side produced NaN/inf) or NOT_CONVERGED (the solver
        failed: step size too small, usually a stiff or singular right-hand side).
    solver_message : str
        What ``solve_ivp`` said.
    nfev, njev : int
        Right-hand side and Jacobian evaluations.
    """

    t: np.ndarray
    states: np.ndarray
    status: Status
    solver_message: str
    nfev: int
    njev: int

    @property
    def message(self) -> str:
        if self.success:
            return self.status.message
        return f"{self.status.message} ({self.solver_message})"

    @property
    def success(self) -> bool:
        return self.status.success

    @property
    def final(self) -> np.ndarray:
        """The last saved state."""
        return self.states[-1]


def solve_flow(rhs, y0, t_end, *, t_eval=None, jac=None, events=None, method="DOP853",
               rtol=1e-10, atol=1e-12) -> FlowResult:
    """Integrate ``dy/dt = rhs(t, y)`` from 0 to ``t_end``.

    A non-finite right-hand side stops the integration with status NONFINITE instead of
    letting NaN propagate into the saved states.
    """
    nonfinite = []

    def guarded(t, y):
        dy = rhs(t, y)
        if not np.all(np.isfinite(dy)):
            nonfinite.append(t)
            return np.zeros_like(y)
        return dy

    def stop(t, y):
        return -1.0 if nonfinite else 1.0

    stop.terminal = True
    all_events = [stop] + (list(events) if events else [])
    kwargs = {"jac": jac} if jac is not None and method in ("Radau", "BDF", "LSODA") else {}
    sol = solve_ivp(guarded, (0.0, float(t_end)), np.asarray(y0, dtype=float), method=method,
                    t_eval=t_eval, events=all_events, rtol=rtol, atol=atol, **kwargs)
    if nonfinite:
        status = Status.NONFINITE
        keep = sol.t < nonfinite[0]
        t, states = sol.t[keep], sol.y.T[keep]
    else:
        status = Status.OK if sol.success else Status.NOT_CONVERGED
        t, states = sol.t, sol.y.T
    return FlowResult(t, states, status, sol.message, int(sol.nfev), int(sol.njev))
