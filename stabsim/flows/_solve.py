"""One entry point for integrating a flow with ``scipy.integrate.solve_ivp``."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.integrate
from scipy.integrate import solve_ivp

from .. import _validate as check
from .._norm import norm as _norm
from .._result import Result
from .._status import Status

#: default budget of right-hand-side evaluations of the flows (central, gradient, modified,
#: manifold): central flows take about 12 a step of t (9,507 for 800 steps of the two-scale
#: model, 18,363 for the demo network's 1,494) and gradient flow 8 to 71 (the minimalist
#: loss, the regression model, the 1-6-6-6-1 network over 300–400 steps), so 10⁴ steps fit
#: over and over, while a flow that chatters at a switch, or is stiff far past 2/η, stops
#: after the time of a million evaluations instead of never (measured: 52 s for a central
#: flow of the minimalist loss at η = 72,048; the modified flow of a quadratic with ηλ = 20
#: took 826,000 evaluations, 25 s, for 2,000 steps)
MAX_RHS_EVALS = 1_000_000


@dataclasses.dataclass(repr=False)
class FlowResult(Result):
    """A solved flow (the protocol of :class:`stabsim._result.Result`).

    Attributes
    ----------
    step : ndarray, shape (n,)
        Times of the saved states, in GD steps (:func:`solve_flow` alone: in the time of
        the right-hand side it was given).
    trajectory : ndarray, shape (n, d)
        The saved states; ``theta`` is the last of them.
    status : Status
        OK; DIVERGED (|state| passed ``divergence_norm``); NONFINITE (the state or the
        right-hand side turned NaN/inf, so the integrator could not step past
        ``stop_step``); NOT_CONVERGED (the integrator failed otherwise: step size too
        small, usually a stiff or singular right-hand side); the message carries what the
        integrator said.
    counters : dict
        ``rhs_evals`` and ``jacobian_evals``, the right-hand side and Jacobian evaluations
        (the central flow adds ``switches``, its branch switches).
    stop_step : float
        Time at which the integration ended: the horizon, a terminal event, the crossing
        of ``divergence_norm``, or the last time the integrator reached before a
        non-finite right-hand side or a failure stopped it.
    stop_state : ndarray or None
        The state at ``stop_step`` when a terminal event ended the run (the crossing of
        ``divergence_norm`` included), located on the integrator's interpolant; None
        otherwise. It is saved in ``trajectory`` only if ``stop_step`` is a save time.
    """

    step: np.ndarray
    trajectory: np.ndarray
    stop_step: float = dataclasses.field(default=np.nan, kw_only=True)
    stop_state: np.ndarray | None = dataclasses.field(default=None, kw_only=True)

    @property
    def theta(self) -> np.ndarray | None:
        """The last saved state (None when nothing was saved)."""
        return self.trajectory[-1] if self.trajectory.shape[0] else None

    def headline(self) -> dict:
        return {"records": self.step.shape[0], "stop_step": self.stop_step}

    def _export_data(self) -> dict:
        """The data variables of :meth:`to_xarray` (subclasses add theirs)."""
        return {"theta": (("step", "param"), self.trajectory,
                          {"long_name": "flow state at time t (t in steps)"})}

    def _export_coords(self) -> dict:
        return {"step": self.step}

    def to_xarray(self):
        """The saved states (and what the flow measured) as an ``xarray.Dataset`` with
        dimension ``step``; status, message and counters as attributes."""
        import xarray as xr

        from .._export import finish

        ds = xr.Dataset(self._export_data(), coords=self._export_coords(),
                        attrs={**self._export_attrs(), "stop_step": self.stop_step})
        return finish(ds, self.parameters)


def solve_flow(rhs, y0, t_end, *, t_start=0.0, t_eval=None, jac=None, events=None,
               integrator="DOP853", rtol=1e-10, atol=1e-12, divergence_norm=np.inf,
               max_rhs_evals=None, rhs_evals_spent=0, parameters=None,
               clock="t") -> FlowResult:
    """Integrate ``dy/dt = rhs(t, y)`` from ``t_start`` to ``t_end``.

    Two ways a run can stop early without letting NaN into the saved states:

    * |y| reaching ``divergence_norm`` is a terminal event, located by root finding on the
      integrator's interpolant: status DIVERGED, ``t_stop`` the crossing time.
    * A right-hand side that is NaN/inf (or is asked for at a NaN/inf state) is reported
      to the integrator as NaN, so its error estimate rejects the step and shrinks it. A
      trial step that merely overshot into a non-finite region is retried shorter; when
      the right-hand side is non-finite arbitrarily close ahead, the step size falls below
      the spacing of floats at t and the integrator stops: status NONFINITE, ``t_stop`` the
      last time reached (the right-hand side is non-finite within a few ulps of t beyond).
      Under ``"Radau"`` and ``"BDF"``, whose Newton iteration cannot take a NaN, the first
      non-finite value fails the step and ends the run there: NONFINITE, ``t_stop`` the
      last accepted step (the non-finite region lies within that step's length beyond).

    A third, with ``max_rhs_evals``: once the run has made that many evaluations (this
    call's and the ``rhs_evals_spent`` before it), the next one is refused without calling
    ``rhs``, and the integrator's step that asked for it fails, whatever the integrator (a
    NaN reported instead would reach the LU factorisation of an implicit one, and LSODA
    would take it for a state): status MAX_STEPS, naming ``max_rhs_evals`` and quoting its
    value, ``t_stop`` the last time reached, and the states saved up to it.
    ``counters["rhs_evals"]`` counts the evaluations made, never the refused one, so
    ``rhs_evals_spent + counters["rhs_evals"]`` is at most ``max_rhs_evals``, and equal to
    it when the budget ended the run: no integrator step spends anything past the budget,
    as the step that meets the refusal fails (a budget spent by the start's evaluation, or
    by the integrator's set-up, ends the run at ``t_start``). ``"DOP853"`` evaluates the
    right-hand side three more times for the interpolant of a step, which ``solve_ivp``
    asks for after accepting the step (at a save time or an event inside it): a step after
    which fewer are left fails in the same way, spending what is left on that interpolant.
    A vector field that switches discontinuously (on a surface the flow slides along)
    makes an explicit integrator take ever smaller steps there and never reach ``t_end``.

    Parameters
    ----------
    rhs : callable ``rhs(t, y) -> ndarray``
    y0 : array_like, shape (d,)
        The state at ``t_start``.
    t_end : float
    t_start : float
        Time of ``y0``, in [0, ``t_end``) (default 0). The times of the result and of its
        messages are on the same clock.
    t_eval : array_like, optional
        Times in [``t_start``, ``t_end``] at which to save (default: the integrator's steps).
    jac : callable, optional
        Jacobian, used by the implicit methods ``"Radau"``, ``"BDF"``, ``"LSODA"``.
    events : list of callables, optional
        Extra ``solve_ivp`` events.
    integrator, rtol, atol :
        Passed to ``solve_ivp`` (its ``method``, ``rtol``, ``atol``); 0 < rtol < 1
        (:func:`stabsim._validate.solver_options`), atol > 0.
    divergence_norm : float
        |y| at which the run stops with status DIVERGED (default: never).
    max_rhs_evals : int, optional
        Budget of right-hand-side evaluations of the whole run (default: none).
    rhs_evals_spent : int
        Evaluations already charged to ``max_rhs_evals`` by earlier stretches of the same
        run (the branches of a central flow before this one); default 0.
    parameters : dict, optional
        The parameters of the public call, kept in the result (default: the integrator's).
    clock : str
        The name of the time variable in the result's messages (default ``"t"``; the flow
        time ``"s"`` of :func:`stabsim.flows.manifold_geometry` limit points).

    Returns
    -------
    FlowResult
    """
    if not callable(rhs):
        raise TypeError(f"rhs must be callable rhs(t, y), got {type(rhs).__name__}")
    y0 = check.finite_array("y0", y0, ndim=1)
    t_end = check.positive_float("t_end", t_end)
    t_start = check.finite_float("t_start", t_start)
    if not 0.0 <= t_start < t_end:
        raise ValueError(f"t_start must lie in [0, t_end) = [0, {t_end:g}), got {t_start!r}")
    t_eval = check.eval_times("t_eval", t_eval, t_end, "t_end")
    if t_eval is not None and t_eval[0] < t_start:
        raise ValueError(f"t_eval must lie in [t_start, t_end] = [{t_start:g}, {t_end:g}]")
    valid = check.solver_options(rtol, atol, integrator)
    options = {"rtol": valid["rtol"], "atol": valid["atol"], "method": integrator}
    divergence_norm = check.positive_or_inf("divergence_norm", divergence_norm)
    max_rhs_evals = check.budget("max_rhs_evals", max_rhs_evals)
    rhs_evals_spent = check.nonnegative_int("rhs_evals_spent", rhs_evals_spent)
    if parameters is None:
        parameters = {"t_end": t_end, "integrator": integrator, "rtol": options["rtol"],
                      "atol": options["atol"], "divergence_norm": divergence_norm}

    def result(t, states, status, message, counters, stop, stop_state=None, knob=None):
        # the integrator's own message explains a failure; an OK run needs none
        return FlowResult(status=status, detail=None if status is Status.OK else message,
                          knob=knob,
                          counters={"rhs_evals": counters[0], "jacobian_evals": counters[1]},
                          parameters=parameters, step=t, trajectory=states, stop_step=stop,
                          stop_state=stop_state)

    if _norm(y0) >= divergence_norm:
        raise ValueError(f"the start has norm {_norm(y0):.6g}, not below "
                         f"divergence_norm = {divergence_norm:.6g}")
    nonfinite_at = [-np.inf]  # the latest time at which the right-hand side was NaN/inf
    reached = [t_start]  # the last time the integrator accepted a step
    allowed = np.inf if max_rhs_evals is None else max_rhs_evals - rhs_evals_spent
    made, refused = [0], [False]

    def guarded(t, y):
        if made[0] >= allowed:
            refused[0] = True
            raise _Refused  # the integrator's step fails (see above)
        made[0] += 1
        if np.isfinite(y).all():
            dy = np.asarray(rhs(t, y), dtype=float)
            if np.isfinite(dy).all():
                return dy
        nonfinite_at[0] = max(nonfinite_at[0], t)
        if integrator in ("Radau", "BDF"):  # Newton's LU would raise on a NaN: fail the step
            raise _NonFinite
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
    finite_until = [t_start]  # the last time every event was finite

    def checked(event):
        def wrapped(t, y):
            if not np.isfinite(y).all():  # an implicit integrator's NaN state: reported
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

    def out_of_budget(t, states, counters, t_stop):
        message = (f"the right-hand side was evaluated max_rhs_evals = {max_rhs_evals} times "
                   f"by {clock} = {t_stop:.10g} (a vector field that switches discontinuously "
                   "there, or is stiff, makes the integrator's steps ever smaller)")
        return result(t, states, Status.MAX_STEPS, message, counters, t_stop,
                      knob="max_rhs_evals")

    nothing = (np.empty(0), np.empty((0, y0.shape[0])))
    try:
        start = guarded(t_start, y0)
    except _Refused:  # the earlier stretches spent the budget
        return out_of_budget(*nothing, (0, 0), t_start)
    if not np.isfinite(start).all():
        return result(*nothing, Status.NONFINITE,
                      "the right-hand side is NaN or inf at the start, "
                      f"{clock} = {t_start:.10g}",
                      (1, 0), t_start)
    overflowed = [False]  # an implicit integrator's own arithmetic met inf or NaN

    def overflow(t):
        overflowed[0] = True
        nonfinite_at[0] = max(nonfinite_at[0], t)

    options["method"] = _failing_when_refused(integrator, lambda: allowed - made[0], overflow)
    if jac is not None and integrator in ("Radau", "BDF", "LSODA"):
        def guarded_jac(t, y):  # never asked at a NaN state (LSODA may step onto one)
            return jac(t, y) if np.isfinite(y).all() else np.full((y.size, y.size), np.nan)

        options["jac"] = guarded_jac
    # an overflow is reported through the status, not by NumPy warnings
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(guarded, (t_start, t_end), y0, t_eval=t_eval,
                            events=[watch] + [checked(e) for e in events or ()], **options)
    except _Refused:
        # refused in the integrator's set-up (its first evaluations, a first numerical
        # Jacobian), before its first step: no Jacobian was complete
        return out_of_budget(*nothing, (made[0], 0), t_start)
    except _NonFinite:  # in an implicit integrator's set-up (its numerical Jacobian)
        return result(*nothing, Status.NONFINITE,
                      "the right-hand side is NaN or inf next to the start, "
                      f"{clock} = {t_start:.10g}",
                      (made[0], 0), t_start)
    # with t_eval and no save time before a terminal event, solve_ivp returns empty lists
    t = np.asarray(sol.t, dtype=float)
    states = np.asarray(sol.y, dtype=float).T.reshape(t.shape[0], y0.shape[0])
    counters = (made[0], int(sol.njev))
    finite = np.all(np.isfinite(states), axis=1)
    if not finite.all():  # LSODA may accept NaN states (a NaN right-hand side)
        bad = int(np.argmin(finite))
        t_stop = float(t[bad - 1]) if bad else t_start
        message = f"the state turned NaN or inf just after {clock} = {t_stop:.10g}"
        return result(t[:bad], states[:bad], Status.NONFINITE, message, counters, t_stop)
    if refused[0]:
        return out_of_budget(t, states, counters, reached[0])
    if event_nan[0] < np.inf:
        keep = t <= finite_until[0]
        message = (f"an event function (e.g. the sharpness) turned NaN or inf just after "
                   f"{clock} = {finite_until[0]:.10g}")
        return result(t[keep], states[keep], Status.NONFINITE, message, counters, finite_until[0])
    if sol.status == 1 and sol.t_events[0].size:
        t_stop = float(sol.t_events[0][0])
        message = (f"|state| reached divergence_norm = {divergence_norm:.6g} at "
                   f"{clock} = {t_stop:.10g}")
        return result(t, states, Status.DIVERGED, message, counters, t_stop, sol.y_events[0][0])
    if sol.status == 1:  # another terminal event
        fired = next(k for k, te in enumerate(sol.t_events) if te.size)
        return result(t, states, Status.OK, sol.message, counters,
                      float(sol.t_events[fired][0]), sol.y_events[fired][0])
    if sol.status == 0:
        return result(t, states, Status.OK, sol.message, counters, t_end)
    t_stop = reached[0]
    if nonfinite_at[0] >= t_stop:  # the failing trial steps met a non-finite value
        # the interpolant may overflow on the last step before the stop: keep finite rows
        keep = np.all(np.isfinite(states), axis=1)
        t, states = t[keep], states[keep]
        where = ("the integrator's Newton iteration (its sums of finite right-hand sides) "
                 if overflowed[0] else "the right-hand side ")
        message = f"{where}turned NaN or inf just after {clock} = {t_stop:.10g}; {sol.message}"
        return result(t, states, Status.NONFINITE, message, counters, t_stop)
    return result(t, states, Status.NOT_CONVERGED, sol.message, counters, t_stop)


class _StepFails(Exception):
    """Raised by the guarded right-hand side: the integrator's step fails."""


class _Refused(_StepFails):
    """An evaluation of the right-hand side past ``max_rhs_evals``, refused."""

    def __str__(self):
        return "max_rhs_evals is spent"


class _NonFinite(_StepFails):
    """A NaN or inf right-hand side under ``"Radau"`` or ``"BDF"``, whose Newton iteration
    would pass it to an LU factorisation that raises; the step fails instead."""

    def __str__(self):
        return "the right-hand side is NaN or inf"


#: SciPy's message for inf or NaN in an array its LU routines check (``check_finite``)
_LINALG_NONFINITE = "must not contain infs or NaNs"


def _failing_when_refused(integrator: str, left, overflow):
    """The ``solve_ivp`` method ``integrator`` as a class whose step fails (``solve_ivp``
    then returns with status −1, the states before kept) where the right-hand side
    refuses an evaluation (:class:`_Refused`) or, under Radau and BDF, is not finite
    (:class:`_NonFinite`), or where Radau's or BDF's Newton iteration overflows from finite
    values (near 1e307 its sums reach inf, and SciPy's LU solve raises ``ValueError``: it
    had reached the user from a gradient flow that grows without bound): ``overflow(t)``
    is told the time of that step's start; ``left()`` is the number of evaluations the
    budget still allows.

    After a step of ``"DOP853"`` that leaves fewer evaluations than its interpolant takes
    (three), the interpolant is computed at once, so that the refusal fails the step:
    ``solve_ivp`` asks for it after the step (at a save time, or to locate an event),
    where a refusal could not.
    """
    base = getattr(scipy.integrate, integrator)
    interpolant = len(getattr(base, "C_EXTRA", ()))  # DOP853's extra stages; 0 for the rest

    class FailingWhenRefused(base):
        def step(self):
            try:
                message = super().step()
                if self.status != "failed" and left() < interpolant:
                    self.dense_output()  # refused part-way: the step fails
            except _StepFails as failure:
                self.status = "failed"
                return str(failure)
            except ValueError as error:  # SciPy's check of an LU factor or solve
                if _LINALG_NONFINITE not in str(error):
                    raise
                overflow(self.t)
                self.status = "failed"
                return "the Newton iteration's linear algebra met inf or NaN"
            return message

    return FailingWhenRefused
