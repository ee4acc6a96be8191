"""Status codes shared by every kernel, and the messages the wrappers give for them.

Compiled kernels never raise (least of all inside ``prange``); they return one of these
integer codes per trajectory, and the Python wrapper turns the code into a ``status``,
a ``message`` that says what to do, and ``success``.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Outcome of one simulated trajectory.

    An integer (what the kernels return) that prints as its name: ``str(Status.OK)``,
    ``f"{Status.OK}"`` and ``repr`` give ``OK``, ``OK`` and ``Status.OK``.
    """

    OK = 0  #: ran every requested step (or met its stopping criterion)
    MAX_STEPS = 1  #: a stopping criterion was not met within the step budget
    DIVERGED = 2  #: the state's norm grew past ``divergence_norm``
    NONFINITE = 3  #: a NaN or inf appeared in the state or a derivative
    LEFT_DOMAIN = 4  #: the reduced map left its validity domain (1 + eta*y <= 0)
    ZERO_GRADIENT = 5  #: the iterate reached an exact critical point (a normalised step's
    #: ∇L = 0; an adaptive method's there with no momentum left and eps = 0)
    NOT_CONVERGED = 6  #: an inner solver (projection, eigensolver) missed its tolerance
    FLAT_SHARPNESS = 7  #: ∇S = 0 where the sharpness constraint S ≤ 2/η is needed
    INTERRUPTED = 8  #: stopped by Ctrl-C (KeyboardInterrupt); the result is the part done
    UNDEFINED = 9  #: the run finished, but a summary statistic is 0/0 or x/0 there (NaN)
    EIGENGAP_CLOSED = 10  #: the gap between the top two Hessian eigenvalues closed
    UNDERFLOW = 11  #: the reduced map's |x| fell to the smallest normal double or below

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    def __repr__(self) -> str:
        return f"Status.{self.name}"

    @property
    def message(self) -> str:
        """What the status means and what to do about it, in general terms."""
        return self.describe(None)

    def describe(self, knob: str | None) -> str:
        """What the status means and what to do, naming ``knob``: the parameter whose
        budget ran out (MAX_STEPS, NOT_CONVERGED), when the caller knows it."""
        text = _MESSAGES[self]
        if self in (Status.MAX_STEPS, Status.NOT_CONVERGED):
            return text.format(knob=f"`{knob}`" if knob else "the budget")
        return text

    def explain(self, knob: str | None, detail: str | None) -> str:
        """The message of a result with this status: :meth:`describe`, then ``detail`` (what
        the caller knows of this case) in parentheses. Where the general text is a list of
        the cases the status covers (UNDEFINED), a detail names the case: it leads, and the
        status's first words follow in parentheses in place of the list."""
        if detail and self in _LEADS:
            return f"{detail} ({_LEADS[self]})"
        text = self.describe(knob)
        return f"{text} ({detail})" if detail else text

    @property
    def success(self) -> bool:
        return self is Status.OK


#: the first words of a status whose general text lists its cases; a result's detail, which
#: names its own case, replaces the list (:meth:`Status.explain`)
_LEADS = {Status.UNDEFINED: "status UNDEFINED: the run finished, but this statistic is NaN"}

_MESSAGES = {
    Status.OK: "ok",
    Status.MAX_STEPS: "a stopping criterion was not met within the budget; raise {knob}",
    Status.DIVERGED: (
        "the iterate diverged (its norm passed `divergence_norm`); lower the step size "
        "eta or start closer to a minimiser (or raise `divergence_norm` to follow it further)"
    ),
    Status.NONFINITE: (
        "a NaN or inf appeared: for a map, the step size is probably far past the "
        "stability threshold 2/S; for a flow, its state or right-hand side left the float "
        "range or is undefined along it; or the loss is not finite at the start"
    ),
    Status.LEFT_DOMAIN: (
        "the reduced map left its domain of validity (1 + eta*y <= 0): the (x, y) model "
        "no longer describes GD here; lower eta or the initial y"
    ),
    Status.ZERO_GRADIENT: (
        "the gradient is exactly zero: the iterate sits at a critical point, where the step "
        "of normalised GD (η∇L/|∇L|) is undefined and that of GD on sqrt L "
        "(η∇L/(2 sqrt(L − L_min))) is 0/0 at a minimiser with L = L_min, or 0 above it; an "
        "adaptive method there with no momentum left stays where it is (its P, with eps = 0, "
        "is singular)"
    ),
    Status.NOT_CONVERGED: (
        "an inner solver missed its tolerance within its budget; raise {knob} or loosen "
        "its tolerance"
    ),
    Status.INTERRUPTED: (
        "interrupted (Ctrl-C): the result holds the steps done before the interrupt; run "
        "again (from the last state) to go on"
    ),
    Status.UNDEFINED: (
        _LEADS[Status.UNDEFINED] + ": for example the reduced map's "
        "energy ratio E_T/E_0 from a start on the period-2 orbit (x0 = ±δ, y0 = 0: E_0 = 0) "
        "or on the invariant line x0 = 0 (E_0 = ∞); the relative sharpness of normalised GD "
        "or GD on sqrt L at an exact minimiser (an infinite effective step); `compare`'s "
        "reduced map from a start with S(θ₀) ≥ 2/η, where GD never crosses 2/η from below "
        "and the reference point θ* is undefined"
    ),
    Status.EIGENGAP_CLOSED: (
        "two of the top Hessian eigenvalues met: the eigenvectors the method is built on, "
        "and the method, are undefined from there on"
    ),
    Status.UNDERFLOW: (
        "x underflowed: |x| fell to the smallest normal double (2.2e-308) or below, where it "
        "loses precision and can round to 0, a line the map never leaves and the exact "
        "trajectory from x0 ≠ 0 never reaches, so floating point can no longer follow the "
        "trajectory; start nearer the period-2 orbit (x0 = ±δ, y0 = 0: a larger |x0| if it "
        "is small) or run fewer steps"
    ),
    Status.FLAT_SHARPNESS: (
        "a sharpness gradient the method needs is zero: ∇S = ∇³L[u, u] itself (the "
        "sharpness does not change along any direction, as for every quadratic), or ∇S⊥, "
        "its part off u that the edge-of-stability constants use (∇S parallel to u, as on a "
        "symmetry line of the loss); nothing can then hold S at 2/η and the "
        "edge-of-stability predictions are undefined (the detail says which, and where); "
        "lower `eta` below 2/S or use a loss with third-order terms"
    ),
}


class FlatSharpnessError(ValueError):
    """Raised where a quantity needs ∇S ≠ 0 and there is no status to return (the caller
    that has one reports Status.FLAT_SHARPNESS)."""


class NonFiniteError(ValueError):
    """Raised where ∇L, ∇²L or ∇³L is NaN or inf at the point asked about and there is no
    status to return (a caller that has one reports Status.NONFINITE)."""


class UndefinedError(ValueError):
    """Raised where a quantity is undefined at the point asked about and there is no status
    to return (a caller that has one reports Status.UNDEFINED)."""
