"""The ODE limit of the reduced (x, y) map (docs/theory.md §1, *derived*).

With ``X = x²`` and t counted in steps::

    dX/dt = 2 η y X,        dy/dt = η (α − β X / 2)

a Lotka–Volterra-type system with the conserved quantity

    H(x, y) = y² + (β/2) x² − α ln x²

minimal at the fixed point ``(x² = δ², y = 0)``, ``δ² = 2α/β``; small orbits have period
``2π / (η sqrt(2α))`` steps. It is integrated in ``ℓ = ln X`` (``dℓ/dt = 2ηy``), which
keeps X positive and resolves the orbit's exponentially small minima of X: the result holds
ℓ itself (``log_x2``) beside X = e^ℓ, which is subnormal below ℓ = −708.4 and 0 below
ℓ = −745.1 (the result's message then says at how many saved times).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._status import Status
from .._validate import finite_float, positive_float, record_times, solver_options
from ..maps._reduced_step import hamiltonian
from ..maps.reduced import _broadcast
from ._solve import FlowResult, solve_flow

#: the smallest normal double: X = e^ℓ below it keeps fewer digits, and rounds to 0 below
#: 2.5e-324 (ℓ < −745.1)
_TINY = np.finfo(float).tiny


def reduced_hamiltonian(x, y, alpha, beta):
    """H(x, y) = y² + (β/2) x² − α ln x², elementwise over ``x`` and ``y`` broadcast
    together (conserved by the ODE limit); +inf at x = 0, where ln x² = −inf."""
    shape, (x, y) = _broadcast((x, y), ("x", "y"))
    alpha = positive_float("alpha", alpha)
    beta = positive_float("beta", beta)
    # ln 0 = −inf, exact: H = +inf on the line x = 0; x² overflows to +inf past 1.3e154
    with np.errstate(divide="ignore", over="ignore"):
        return hamiltonian(x, y, alpha, beta).reshape(shape)


def reduced_fixed_point(alpha, beta):
    """The ODE limit's fixed point ``(x², y) = (δ², 0)`` with ``δ² = 2α/β``."""
    alpha = positive_float("alpha", alpha)
    beta = positive_float("beta", beta)
    return 2.0 * alpha / beta, 0.0


def small_orbit_period(eta, alpha):
    """Period in steps of small orbits around the fixed point: ``2π / (η sqrt(2α))``.

    Linearising ``dℓ/dt = 2ηy``, ``dy/dt = −(ηβδ²/2) (ℓ − ln δ²)`` gives the angular
    frequency ``η sqrt(βδ²) = η sqrt(2α)``.
    """
    eta = positive_float("eta", eta)
    alpha = positive_float("alpha", alpha)
    return 2.0 * np.pi / (eta * np.sqrt(2.0 * alpha))


@dataclasses.dataclass(repr=False)
class ReducedODEResult(FlowResult):
    """A solved reduced ODE: ``trajectory`` has columns X = x² and y; exported as the
    variables ``x2``, ``log_x2`` and ``y`` on dimension ``step``.

    Attributes
    ----------
    log_x2 : ndarray, shape (n,)
        ℓ = ln x² at the saved times, the variable integrated: where X = e^ℓ is below the
        smallest normal double (2.2e-308), it keeps fewer digits or is 0, while ℓ keeps
        them all, and ``H = y² + (β/2) e^ℓ − α ℓ`` is finite.
    """

    log_x2: np.ndarray = dataclasses.field(kw_only=True)

    def headline(self) -> dict:
        """Records and stop step, and how many saved X are below the smallest normal
        double, when any are."""
        below = int(np.count_nonzero(self.trajectory[:, 0] < _TINY))
        return {**super().headline(), **({"x2_below_normal": below} if below else {})}

    def _export_data(self) -> dict:
        return {"x2": ("step", self.trajectory[:, 0]), "log_x2": ("step", self.log_x2),
                "y": ("step", self.trajectory[:, 1])}



def solve_reduced_ode(x0, y0, eta, alpha, beta, steps, *, stride=None, rtol=1e-10,
                      atol=1e-12) -> ReducedODEResult:
    """Integrate the ODE limit from ``(x0², y0)`` over ``[0, steps]`` steps.

    Parameters
    ----------
    x0, y0 : float
        Start; ``x0 ≠ 0`` (X = 0 is invariant and H is infinite there).
    eta, alpha, beta : float
        As for the map, all > 0.
    steps : float
        Horizon in steps.
    stride : float, optional
        Save at the multiples of ``stride`` and at ``steps`` (default: the integrator's
        own steps).

    Returns
    -------
    ReducedODEResult
        ``trajectory`` has columns ``X = x²`` and ``y``, and ``log_x2`` holds ``ℓ = ln x²``.
        Status NONFINITE where x² or a velocity overflows (the saved states before it are
        kept): at t = 0 for |x0| > 1.3e154, where x0² itself does. Where a saved X = e^ℓ
        is below the smallest normal double (ℓ < −708.4), the message says at how many
        saved times and how many of them are 0 (ℓ < −745.1): there X keeps fewer digits or
        none, and ``log_x2`` is the variable to use (the status is unchanged, as ℓ is
        integrated to the tolerance all along).
    """
    x0 = finite_float("x0", x0)
    if x0 == 0.0:
        raise ValueError("x0 must be nonzero (X = x0² = 0 is invariant; H is infinite there)")
    y0 = finite_float("y0", y0)
    eta = positive_float("eta", eta)
    alpha = positive_float("alpha", alpha)
    beta = positive_float("beta", beta)
    steps = positive_float("steps", steps)
    times = record_times(stride, steps, width=3)
    solver_options(rtol, atol, "DOP853")
    parameters = {"x0": x0, "y0": y0, "eta": eta, "alpha": alpha, "beta": beta,
                  "steps": steps, "stride": stride, "integrator": "DOP853", "rtol": rtol,
                  "atol": atol}

    def rhs(t, state):
        log_x2, y = state
        return np.array([2.0 * eta * y, eta * (alpha - 0.5 * beta * np.exp(log_x2))])

    # ln x0² as 2 ln|x0|: x0² is subnormal below |x0| = 1.5e-154 and 0 below 2.2e-162, where
    # ℓ0 is still exact. Past |x0| = 1.3e154 x0² overflows: the column X = x² cannot hold it,
    # nor (unless ηβ/2 < 1) can dy/dt = η(α − βX/2), so the flow reports it (NONFINITE at
    # t = 0) as it reports a later overflow: through its status, not NumPy's warnings
    with np.errstate(over="ignore"):
        flow = solve_flow(rhs, [2.0 * np.log(abs(x0)), y0], steps, t_eval=times, rtol=rtol,
                          atol=atol, parameters=parameters)
    fields = {f.name: getattr(flow, f.name) for f in dataclasses.fields(flow)}
    log_x2 = flow.trajectory[:, 0]
    x2 = np.exp(log_x2)
    if flow.status is Status.NONFINITE:
        notes = ["the orbit leaves the float range: x² = e^ℓ or a velocity "
                 "(dℓ/dt = 2ηy, dy/dt = η(α − βx²/2)) overflows; " + flow.detail]
    else:
        notes = [flow.detail] if flow.detail else []
    below = np.flatnonzero(x2 < _TINY)
    if below.size:
        notes.append(f"x² = e^ℓ is below the smallest normal double (2.2e-308) at "
                     f"{below.size} of {x2.size} saved times, from t = "
                     f"{flow.step[below[0]]:.10g} ({np.count_nonzero(x2[below] == 0.0)} of "
                     "them 0): the column X of `trajectory` keeps fewer digits there or none, "
                     "and H of it is off or +inf; `log_x2` holds ℓ = ln x² as integrated")
    fields["detail"] = "; ".join(notes) or None
    fields["trajectory"] = np.column_stack([x2, flow.trajectory[:, 1]])
    return ReducedODEResult(**fields, log_x2=log_x2.copy())
