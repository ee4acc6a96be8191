"""One entry point for integrating a flow with ``scipy.integrate.solve_ivp``."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp

from .. import _validate as check
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
        OK; DIVERGED (|state| passed ``divergence_norm``); NONFINITE (the state or the
        right-hand side turned NaN/inf, so the integrator could not step past ``t_stop``);
        NOT_CONVERGED (the solver failed otherwise: step size too small, usually a stiff
        or singular right-hand side).
    solver_message : str
        What ``solve_ivp`` said, or where the run stopped early.
    nfev, njev : int
        Right-hand side and Jacobian evaluations.
    t_stop : float
        Time at which the integration ended: the horizon, a terminal event, the crossing of
        ``divergence_norm``, or the last time the integrator reached before a non-finite
        right-hand side or a failure stopped it.
    """

    t: np.ndarray
    states: np.ndarray
    status: Status
    solver_message: str
    nfev: int
    njev: int
    t_stop: float = dataclasses.field(default=np.nan, kw_only=True)

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
               rtol=1e-10, atol=1e-12, divergence_norm=np.inf) -> FlowResult:
    """Integrate ``dy/dt = rhs(t, y)`` from 0 to ``t_end``.

    Two ways a run can stop early without letting NaN into the saved states:

    * |y| reaching ``divergence_norm`` is a terminal event, located by root finding on the
      integrator's interpolant: status DIVERGED, ``t_stop`` the crossing time.
    * A right-hand side that is NaN/inf (or is asked for at a NaN/inf state) is reported
      to the integrator as NaN, so its error estimate rejects the step and shrinks it. A
      trial step that merely overshot into a non-finite region is retried shorter; when
      the right-hand side is non-finite arbitrarily close ahead, the step size falls below
      the spacing of floats at t and the integrator stops: status NONFINITE, ``t_stop`` the
      last time reached (the right-hand side is non-finite within a few ulps of t beyond).

    Parameters
    ----------
    rhs : callable ``rhs(t, y) -> ndarray``
    y0 : array_like, shape (d,)
    t_end : float
    t_eval : array_like, optional
        Times at which to save (default: the integrator's steps).
    jac : callable, optional
        Jacobian, used by the implicit methods ``"Radau"``, ``"BDF"``, ``"LSODA"``.
    events : list of callables, optional
        Extra ``solve_ivp`` events.
    method, rtol, atol :
        Passed to ``solve_ivp``.
    divergence_norm : float
        |y| at which the run stops with status DIVERGED (default: never).

    Returns
    -------
    FlowResult
    """
    if not callable(rhs):
        raise TypeError(f"rhs must be callable rhs(t, y), got {type(rhs).__name__}")
    y0 = check.finite_array("y0", y0, ndim=1)
    t_end = check.positive_float("t_end", t_end)
    t_eval = check.eval_times("t_eval", t_eval, t_end, "t_end")
    options = check.solver_options(rtol, atol, method)
    divergence_norm = check.positive_or_inf("divergence_norm", divergence_norm)
    if _norm(y0) >= divergence_norm:
        raise ValueError(f"the start has norm {_norm(y0):.6g}, not below "
                         f"divergence_norm = {divergence_norm:.6g}")
    nonfinite_at = [-np.inf]  # the latest time at which the right-hand side was NaN/inf
    reached = [0.0]  # the last time the integrator accepted a step

    def guarded(t, y):
        if np.all(np.isfinite(y)):
            dy = np.asarray(rhs(t, y), dtype=float)
            if np.all(np.isfinite(dy)):
                return dy
        nonfinite_at[0] = max(nonfinite_at[0], t)
        return np.full_like(y, np.nan)

    def watch(t, y):
        # solve_ivp evaluates every event at every accepted step (and inside root finding
        # of this event, at times below the accepted one): the largest t seen is the last
        # time reached
        reached[0] = max(reached[0], t)
        return divergence_norm - _norm(y)

    watch.terminal, watch.direction = True, -1.0
    # an event function (a branch switch of the central flow, say) that turns NaN or inf
    # never fires: the flow past it is undefined, so the run is cut there (NONFINITE)
    event_nan = [np.inf]  # the first time an event was NaN or inf
    finite_until = [0.0]  # the last time every event was finite

    def checked(event):
        def wrapped(t, y):
            if not np.all(np.isfinite(y)):  # an implicit integrator's NaN state: reported
                return np.nan  # through the states (NONFINITE), not as an event's fault
            value = event(t, y)
            if np.isfinite(value):
                if t < event_nan[0]:
                    finite_until[0] = max(finite_until[0], t)
            else:
                event_nan[0] = min(event_nan[0], t)
            return value

        wrapped.terminal = getattr(event, "terminal", False)
        wrapped.direction = getattr(event, "direction", 0.0)
        return wrapped

    if not np.all(np.isfinite(guarded(0.0, y0))):
        return FlowResult(np.empty(0), np.empty((0, y0.shape[0])), Status.NONFINITE,
                          "the right-hand side is NaN or inf at the start, t = 0", 1, 0,
                          t_stop=0.0)
    if jac is not None and method in ("Radau", "BDF", "LSODA"):
        def guarded_jac(t, y):  # never asked at a NaN state (LSODA may step onto one)
            return jac(t, y) if np.all(np.isfinite(y)) else np.full((y.size, y.size), np.nan)

        options["jac"] = guarded_jac
    # an overflow is reported through the status, not by NumPy warnings
    with np.errstate(over="ignore", invalid="ignore"):
        sol = solve_ivp(guarded, (0.0, t_end), y0, t_eval=t_eval,
                        events=[watch] + [checked(e) for e in events or ()], **options)
    t, states = sol.t, sol.y.T
    counters = (int(sol.nfev) + 1, int(sol.njev))
    finite = np.all(np.isfinite(states), axis=1)
    if not finite.all():  # an implicit integrator (LSODA) may accept NaN states
        bad = int(np.argmin(finite))
        t_stop = float(t[bad - 1]) if bad else 0.0
        message = f"the state turned NaN or inf just after t = {t_stop:.10g}"
        return FlowResult(t[:bad], states[:bad], Status.NONFINITE, message, *counters,
                          t_stop=t_stop)
    if event_nan[0] < np.inf:
        keep = t <= finite_until[0]
        message = (f"an event function (e.g. the sharpness) turned NaN or inf just after "
                   f"t = {finite_until[0]:.10g}")
        return FlowResult(t[keep], states[keep], Status.NONFINITE, message, *counters,
                          t_stop=finite_until[0])
    if sol.status == 1 and sol.t_events[0].size:
        t_stop = float(sol.t_events[0][0])
        message = f"|state| reached divergence_norm = {divergence_norm:.6g} at t = {t_stop:.10g}"
        return FlowResult(t, states, Status.DIVERGED, message, *counters, t_stop=t_stop)
    if sol.status == 1:  # another terminal event
        t_stop = float(next(te[0] for te in sol.t_events if te.size))
        return FlowResult(t, states, Status.OK, sol.message, *counters, t_stop=t_stop)
    if sol.status == 0:
        return FlowResult(t, states, Status.OK, sol.message, *counters, t_stop=t_end)
    t_stop = reached[0]
    if nonfinite_at[0] >= t_stop:  # the failing trial steps met a non-finite value
        # the interpolant may overflow on the last step before the stop: keep finite rows
        keep = np.all(np.isfinite(states), axis=1)
        t, states = t[keep], states[keep]
        message = (f"the right-hand side turned NaN or inf just after t = {t_stop:.10g}; "
                   f"{sol.message}")
        return FlowResult(t, states, Status.NONFINITE, message, *counters, t_stop=t_stop)
    return FlowResult(t, states, Status.NOT_CONVERGED, sol.message, *counters, t_stop=t_stop)


def _norm(y) -> float:
    """|y|, without the overflow of squaring entries past 1e154 (inf only if |y| is)."""
    scale = float(np.max(np.abs(y))) if y.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(y / scale))
