"""The central flow of Cohen, Damian et al. (docs/theory.md §3), with one or k critical eigenvalues.

Time t counts GD steps. While S(w) < 2/η the flow is gradient flow, dw/dt = −η∇L. Once
S(w) = 2/η,

    dw/dt = −η [ ∇L + ½ σ² ∇S ],     σ² = max(0, 2⟨−∇L, ∇S⟩/|∇S|²),

which keeps dS/dt = ∇S·dw/dt = 0 while σ² > 0 (the projected gradient flow on the boundary
of {S ≤ 2/η}); when σ² reaches 0 (gradient flow would lower S) the flow leaves the boundary
and is gradient flow again. Along GD's edge-of-stability oscillation the predicted time
averages are E[L(w_t)] ≈ L(w) + σ²/η and E|∇L(w_t)|² ≈ |∇L(w)|² + 4σ²/η².

k critical eigenvalues (``max_critical=k > 1``)
-----------------------------------------------
Let U = [u_1 … u_m] (m ≤ k) be the eigenvectors whose eigenvalues are held at 2/η and
Σ = U S Uᵀ with S ⪰ 0 (m×m). The flow is

    dw/dt = −η [ ∇L + ½ ∇_w⟨Σ, ∇²L(w)⟩ ] = −η [ ∇L + ½ Σ_ab S_ab T_ab ],  T_ab = ∇³L[u_a, u_b].

Along it the critical block UᵀHU changes at the rate A(S)_cd = ⟨T_cd, dw/dt⟩ = η(C − ½GS)_cd
with G_(ab),(cd) = ⟨T_ab, T_cd⟩ (a Gram matrix, PSD) and C_cd = ⟨−∇L, T_cd⟩. The conditions
S ⪰ 0, −A(S) ⪰ 0 (no critical eigenvalue rises above 2/η) and ⟨S, A(S)⟩ = 0 (complementary
slackness) are, divided by η, the KKT conditions of the convex problem

    min_{S ⪰ 0}  ¼⟨S, G S⟩ − ⟨C, S⟩      (gradient ½GS − C = −A/η),

solved by :func:`~stabsim.flows._sdcp.solve_sdcp`. For m = 1, G = |∇S|², C = ⟨−∇L, ∇S⟩ and
S = max(0, 2C/G) = σ²: the one-eigenvalue flow. tr Σ = tr S replaces σ² in the predictions:
E[L] ≈ L + tr Σ/η and E|∇L|² ≈ |∇L|² + 4 tr Σ/η² (x ∈ span U with E[xxᵀ] = Σ, |Hx|² = 4|x|²/η²).
Along the flow dL/dt = −η⟨∇L, ∇L + v⟩ = −η(|∇L|² − ½⟨C, S⟩) with v = ½ΣS_abT_ab; complementary
slackness ⟨S, C − ½GS⟩ = 0 reads |v|² = ⟨−∇L, v⟩ ≤ |∇L||v|, so dL/dt = −η(|∇L|² − |v|²) ≤ 0.

Changes of the critical set: the branch is the number m of top eigenvalues held; the SDCP is
re-solved over the top-m eigenspace at every right-hand-side evaluation (so a change of
rank of S inside the branch — an eigenvalue released — needs no event; the force depends on
span U only), and events change m: λ_{m+1} rising through 2/η (m + 1), and λ_m falling
through (1 − ``exit_band``)·2/η (m − 1). The band keeps held eigenvalues, which drift by the
integrator's error (~1e-11 relative), from leaving and re-entering; its price is that a
released eigenvalue that turns round inside the band is held up to ``exit_band`` below 2/η
(an O(exit_band) error), and that an exit is recorded a time ~band/|dλ/dt| after σ-rank loss.
``max_critical=1`` keeps the exact σ² → 0 exit event of the one-eigenvalue flow.

The end of a k-eigenvalue flow (k = ``max_critical``): with k eigenvalues held, λ_{k+1}
rising through 2/η meets λ_k = 2/η, so "the top k eigenvectors" stop being defined (past
the crossing they would swap, and the force jump). The run ends there with status
EIGENGAP_CLOSED and the states before it, as does a branch that begins with λ_{k+1} ≥ 2/η
beside k held; ``max_critical=k + 1`` follows the flow on. Both only while the held
eigenvectors push the flow (σ² > 0, S ≠ 0): at rest the flow is gradient flow whichever
they are, and it goes on.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._export import missing_as_nan
from .._status import NonFiniteError, Status
from ..losses import Loss
from ..losses._base import require_loss
from ..losses._compile_ahead import compile_derivatives_elsewhere
from ..spectral import (
    tracked_top_eigenpair,
    tracked_top_eigenpairs,
)
from ._sdcp import sdcp_data, sdcp_solution, solve_sdcp
from ._solve import MAX_RHS_EVALS, FlowResult, solve_flow

#: the "next branch" of the event that ends a run: eigenvalue λ_{k+1} reaching 2/η while k
#: eigenvalues are held (k = ``max_critical``). The held eigenvectors stop being the top k
#: there (λ_k = 2/η = λ_{k+1}), so the k-eigenvalue flow is undefined past it; left
#: unwatched, the integrator chatters at the crossing with ever smaller steps.
GAP_CLOSED = "gap closed"

@dataclasses.dataclass(repr=False)
class CentralFlowResult(FlowResult):
    """A solved central flow: the :class:`FlowResult` fields and what is measured at each
    saved step (below).

    Its ``counters`` add ``switches`` (branch switches) to the integrator's; status
    MAX_STEPS names ``max_switches``, the budget of switches that ran out.

    Exported (:meth:`to_xarray`): the records along ``step`` (``at_eos`` as 0/1;
    ``eigenvalues`` along ``eig`` as well, NaN beyond d, and ``sigma_eigenvalues`` along
    ``sigma_eig``; ``lambda2`` NaN for d = 1), ``stop_step`` an attribute, and the entry and
    exit times along dimensions ``entry`` and ``exit``.

    Where S is held: the flow holds it from rising once it reaches 2/η. From a start above
    2/η it is not brought down to 2/η: with ``max_critical=1`` gradient flow lowers it for
    as long as it does (not at all where it would raise S at the start), and S is held
    (constant) at the level where it stopped falling, above 2/η (the minimalist loss from
    (3, 0.5) at η = 0.2: S = 17.95 from t = 7.42, with 2/η = 10); with
    ``max_critical > 1`` the top eigenvalues ≥ 2/η at the start (at most k) are held from
    t = 0, where they do not rise but may fall (until one falls through
    (1 − ``exit_band``)·2/η). ``at_eos``, ``entry_steps`` and ``n_critical`` record that
    holding, at whatever level.

    Attributes
    ----------
    loss, sharpness, lambda2 : ndarray, shape (n,)
        L(w), S(w) and the second Hessian eigenvalue.
    sigma2 : ndarray, shape (n,)
        σ² (0 off the boundary); tr Σ with ``max_critical > 1``.
    grad_norm2 : ndarray, shape (n,)
        |∇L(w)|².
    at_eos : ndarray of bool, shape (n,)
        Whether the flow holds S at w (the constrained branch, ``n_critical > 0``): at
        2/η, or, from a start above 2/η, above it (at the level where S stopped falling,
        see above); False on gradient flow.
    entry_steps, exit_steps : list of float
        Times (in steps) at which the flow began holding one more eigenvalue (S reaching
        2/η or, from a start above 2/η, S ceasing to fall; 0 for a start held at once) and
        released one.
    eta : float
    max_critical : int
        The k the flow was solved with.
    n_critical : ndarray of int, shape (n,)
        Number m of eigenvalues held (at 2/η, or above it from a start above 2/η).
    sigma_eigenvalues : ndarray, shape (n, k)
        Eigenvalues of Σ, descending (σ² for k = 1; zero-padded beyond m).
    eigenvalues : ndarray, shape (n, k + 1)
        Top k + 1 Hessian eigenvalues, descending (−inf beyond d); column k is the first
        unwatched one, which should stay below 2/η.
    """

    eta: float = np.nan
    loss: np.ndarray = None
    sharpness: np.ndarray = None
    lambda2: np.ndarray = None
    sigma2: np.ndarray = None
    grad_norm2: np.ndarray = None
    at_eos: np.ndarray = None
    entry_steps: list = dataclasses.field(default_factory=list)
    exit_steps: list = dataclasses.field(default_factory=list)
    max_critical: int = 1
    n_critical: np.ndarray = None
    sigma_eigenvalues: np.ndarray = None
    eigenvalues: np.ndarray = None

    def headline(self) -> dict:
        out = {"eta": self.eta, "records": self.step.shape[0], "stop_step": self.stop_step}
        if self.loss.size:
            out.update(loss=float(self.loss[-1]), sharpness=float(self.sharpness[-1]))
        return out

    def _export_data(self) -> dict:
        data = super()._export_data()
        data.update({name: ("step", getattr(self, name)) for name in
                     ("loss", "sharpness", "sigma2", "grad_norm2")})
        # −inf marks an eigenvalue beyond d, which the export's convention makes NaN
        data["lambda2"] = ("step", missing_as_nan(self.lambda2, np.isneginf(self.lambda2)))
        data["eigenvalues"] = (("step", "eig"),
                               missing_as_nan(self.eigenvalues, np.isneginf(self.eigenvalues)))
        data["sigma_eigenvalues"] = (("step", "sigma_eig"), self.sigma_eigenvalues)
        data["at_eos"] = ("step", self.at_eos.astype(np.int8))
        data["n_critical"] = ("step", self.n_critical)
        data["entry_steps"] = ("entry", np.asarray(self.entry_steps, dtype=float))
        data["exit_steps"] = ("exit", np.asarray(self.exit_steps, dtype=float))
        return data

    @property
    def trace_sigma(self) -> np.ndarray:
        """tr Σ (= σ² for one critical eigenvalue; the same array as ``sigma2``)."""
        return self.sigma2

    @property
    def predicted_loss(self) -> np.ndarray:
        """L(w) + σ²/η (L + tr Σ/η), the predicted time average of GD's loss."""
        return self.loss + self.sigma2 / self.eta

    @property
    def predicted_grad_norm2(self) -> np.ndarray:
        """|∇L(w)|² + 4σ²/η² (σ² → tr Σ), the predicted time average of GD's |∇L|²."""
        return self.grad_norm2 + 4.0 * self.sigma2 / self.eta ** 2


def third_derivative(loss: Loss, w, a, b) -> np.ndarray:
    """∇³L(w)[a, b], NaN where a or b is not finite (an eigenvector of a non-finite ∇²L(w)):
    a field's right-hand side is then NaN, which :func:`solve_flow` reports as NONFINITE."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return np.full(loss.dim, np.nan)
    return loss._d3(w, a, b)


class TrackedTop:
    """The top eigenpairs of ``self.loss`` along a flow, for the fields of the central flows
    (which set ``loss`` and start ``u`` at None)."""

    #: the second eigenvector last seen (the warm start of the next λ2), None before any
    second = None

    def top(self, w):
        """(S, u) at w, u aligned with (and Lanczos started from) the last u seen; NaN where
        ∇²L(w) is not finite. A right-hand side and its events need no more."""
        try:
            s, self.u = tracked_top_eigenpair(self.loss, w, self.u)
        except NonFiniteError:
            return np.nan, np.full(self.loss.dim, np.nan)
        return s, self.u

    def spectrum(self, w):
        """(S, λ2, u) at w (λ2 = −inf for d = 1), each eigenvector started from (and aligned
        with) the last one seen; NaN where ∇²L(w) is not finite."""
        k = min(2, self.loss.dim)
        starts = [v for v in (self.u, self.second)[:k] if v is not None]
        try:
            values, vectors = tracked_top_eigenpairs(self.loss, w, k,
                                                     np.transpose(starts) if starts else None)
        except NonFiniteError:
            return np.nan, np.nan, np.full(self.loss.dim, np.nan)
        self.u = np.ascontiguousarray(vectors[:, 0])
        if k == 1:
            return values[0], -np.inf, self.u
        self.second = np.ascontiguousarray(vectors[:, 1])
        return values[0], values[1], self.u


class _Field(TrackedTop):
    """The two branches of the central flow's vector field, with a consistent sign of u."""

    def __init__(self, loss: Loss, eta: float):
        self.loss, self.eta, self.bound, self.u = loss, eta, 2.0 / eta, None

    def sigma2(self, w, grad):
        """σ² = max(0, 2⟨−∇L, ∇S⟩/|∇S|²) and ∇S at w (σ² = NaN where ∇S = 0)."""
        _, u = self.top(w)
        grad_s = third_derivative(self.loss, w, u, u)
        beta = float(grad_s @ grad_s)
        if beta == 0.0:
            return np.nan, grad_s
        return max(0.0, -2.0 * float(grad @ grad_s) / beta), grad_s

    def flat(self, w, on_boundary) -> bool:
        """Whether the boundary branch is undefined at w: ∇S(w) = 0 (σ² = 0/0)."""
        if not on_boundary:
            return False
        _, u = self.top(w)
        return not np.any(third_derivative(self.loss, w, u, u))

    def active(self, w, on_boundary) -> bool:
        """Whether the held eigenvector pushes the flow at w (σ² > 0)."""
        return on_boundary and self.sigma2(w, self.loss._grad(w))[0] > 0.0

    def gradient_flow(self, t, w):
        return -self.eta * self.loss._grad(w)

    def boundary_flow(self, t, w):
        grad = self.loss._grad(w)
        sigma2, grad_s = self.sigma2(w, grad)
        return -self.eta * (grad + 0.5 * sigma2 * grad_s)

    def reaches_threshold(self, t, w):
        """Event of the stable branch: S(w) − 2/η rising through 0 or, above 2/η,
        ⟨−∇L, ∇S⟩ rising through 0 (gradient flow, which lowered S there, stops lowering it):
        below 2/η the function is S − 2/η, above it min(S − 2/η, ⟨−∇L, ∇S⟩). It only jumps
        where S falls through 2/η while gradient flow lowers it, from ⟨−∇L, ∇S⟩ < 0 to
        S − 2/η → 0⁻: no change of sign, no false event (and ∇³L is computed above 2/η
        only)."""
        excess = self.top(w)[0] - self.bound
        if not excess >= 0.0:  # below, or NaN
            return excess
        return min(excess, self.leaves_boundary(t, w))

    def leaves_boundary(self, t, w):
        """Event of the boundary branch: ⟨−∇L, ∇S⟩ falling through 0 (σ² → 0)."""
        _, u = self.top(w)
        return -float(self.loss._grad(w) @ third_derivative(self.loss, w, u, u))

    def second_reaches_threshold(self, t, w):
        """Event of the boundary branch: λ2(w) − 2/η rising through 0 (the end of the
        one-eigenvalue flow, see :data:`GAP_CLOSED`)."""
        return self.spectrum(w)[1] - self.bound

    def plan(self, on_boundary):
        """The right-hand side of a branch and its (event, direction, next branch)."""
        if on_boundary:
            events = [(self.leaves_boundary, -1.0, False)]
            if self.loss.dim > 1:  # for d = 1 there is no λ2 (spectrum gives −inf)
                events.append((self.second_reaches_threshold, 1.0, GAP_CLOSED))
            return self.boundary_flow, events
        return self.gradient_flow, [(self.reaches_threshold, 1.0, True)]


class _MultiField:
    """The central flow holding the top m ≤ k eigenvalues at 2/η through the SDCP."""

    def __init__(self, loss: Loss, eta: float, max_critical: int, exit_band: float):
        self.loss, self.eta, self.bound, self.k = loss, eta, 2.0 / eta, max_critical
        self.exit_level = self.bound * (1.0 - exit_band)
        self.vectors = None  # the eigenvectors last seen (the warm starts of the next)

    def spectrum(self, w):
        """The top k + 1 eigenvalues (descending) and eigenvectors (columns) of ∇²L(w), each
        pair started from the last seen (:func:`tracked_top_eigenpairs`); NaN where ∇²L(w)
        is not finite."""
        k = min(self.k + 1, self.loss.dim)
        try:
            values, self.vectors = tracked_top_eigenpairs(self.loss, w, k, self.vectors)
        except NonFiniteError:
            return np.full(k, np.nan), np.full((self.loss.dim, k), np.nan)
        return values, self.vectors

    def sigma(self, w, m, grad):
        """The SDCP solution on the top-m eigenspace and the force Σ_ab S_ab ∇³L[u_a, u_b].

        The force depends on span(u_1..u_m) only (U → UR maps S → RᵀSR), so neither the
        eigenvectors' signs nor their order inside a degenerate cluster matter.
        """
        _, vectors = self.spectrum(w)
        T = np.empty((m, m, self.loss.dim))
        for a in range(m):
            for b in range(a, m):
                T[a, b] = T[b, a] = third_derivative(self.loss, w, vectors[:, a],
                                                     vectors[:, b])
        if not (np.isfinite(T).all() and np.isfinite(grad).all()):  # no SDCP: NONFINITE
            return (sdcp_solution(np.full((m, m), np.nan), np.nan, 0, Status.NONFINITE),
                    np.full_like(grad, np.nan))
        with np.errstate(over="ignore", invalid="ignore"):  # products of finite T and ∇L
            G, C = sdcp_data(T, grad)
        if not (np.isfinite(G).all() and np.isfinite(C).all()):  # they overflowed
            return (sdcp_solution(np.full((m, m), np.nan), np.nan, 0, Status.NONFINITE),
                    np.full_like(grad, np.nan))
        solution = solve_sdcp(G, C)
        return solution, np.einsum("ab,abi->i", solution.S, T)

    def flat(self, w, m) -> bool:
        """Whether the held eigenvalues do not change along any direction at w: every
        T_ab = ∇³L[u_a, u_b] (a, b ≤ m) is zero, so G = 0 and the SDCP fixes no S."""
        if m == 0:
            return False
        _, vectors = self.spectrum(w)
        return not any(np.any(third_derivative(self.loss, w, vectors[:, a], vectors[:, b]))
                       for a in range(m) for b in range(a, m))

    def active(self, w, m) -> bool:
        """Whether the held eigenvectors push the flow at w (S ≠ 0)."""
        return m > 0 and bool(np.any(self.sigma(w, m, self.loss._grad(w))[0].S))

    def flow(self, m):
        def rhs(t, w):
            grad = self.loss._grad(w)
            if m == 0:
                return -self.eta * grad
            solution, force = self.sigma(w, m, grad)
            if not solution.success:  # reported as a non-finite right-hand side
                return np.full_like(grad, np.nan)
            return -self.eta * (grad + 0.5 * force)

        return rhs

    def rises(self, m):
        """Event: λ_{m+1} − 2/η rising through 0."""
        return lambda t, w: self.spectrum(w)[0][m] - self.bound

    def falls(self, m):
        """Event: λ_m − (1 − band)·2/η falling through 0."""
        return lambda t, w: self.spectrum(w)[0][m - 1] - self.exit_level

    def plan(self, m):
        return plan_held(self, m, self.loss.dim)


def plan_held(field, m, dim):
    """The right-hand side of branch m (m of at most ``field.k`` eigenvalues held) and its
    events: λ_{m+1} rising through the threshold (m + 1, or :data:`GAP_CLOSED` at m = k)
    and λ_m falling through the exit level (m − 1)."""
    events = []
    if m < dim:
        events.append((field.rises(m), 1.0, m + 1 if m < field.k else GAP_CLOSED))
    if m > 0:
        events.append((field.falls(m), -1.0, m - 1))
    return field.flow(m), events


def central_flow(loss: Loss, theta0, eta: float, steps: float, *, stride: float = 1.0,
                 rtol: float = 1e-10, atol: float = 1e-12, integrator: str = "DOP853",
                 max_switches: int = 100, max_critical: int = 1,
                 exit_band: float = 1e-6, divergence_norm: float = 1e8,
                 max_rhs_evals: int | None = MAX_RHS_EVALS) -> CentralFlowResult:
    """Solve the central flow (module docstring) for t ∈ [0, steps], t in GD steps.

    The flow switches between branches at events located by ``solve_ivp``. With
    ``max_critical=1`` the branches are gradient flow and the boundary branch, and the events
    are S(w) reaching 2/η and σ² reaching 0. With ``max_critical=k > 1`` the branch is the
    number m ≤ k of top eigenvalues held at 2/η (the SDCP re-solved at every right-hand-side
    evaluation, see "k critical eigenvalues" in the module docstring), and the events are
    λ_{m+1} reaching 2/η (m → m + 1) and λ_m falling below (1 − ``exit_band``)·2/η
    (m → m − 1). Each branch is integrated once, to its switching time, with the states at the
    record times read off the integrator's interpolant. A start with eigenvalues ≥ 2/η begins
    with those eigenvalues held at their initial values; for ``max_critical=1`` unless
    gradient flow lowers S (⟨−∇L, ∇S⟩ < 0): then with gradient flow for as long as it lowers
    S above 2/η, and where it stops lowering S before S is back at 2/η, S is held there (the
    boundary branch, entered at that time). S never rises while above 2/η.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        GD step size; the sharpness bound is 2/η.
    steps : float
        Horizon, in GD steps.
    stride : float
        Save the state at the multiples of ``stride`` and at ``steps`` (default: every
        step).
    rtol, atol, integrator :
        Passed to ``solve_ivp`` (through :func:`~stabsim.flows.solve_flow`).
    max_switches : int
        Budget of branch switches (0: stop at the first); status MAX_STEPS, naming
        ``max_switches``, when it is exhausted.
    max_critical : int
        Largest number k of eigenvalues the flow holds at 2/η. 1 (default) is the
        one-eigenvalue flow with its exact exit event. When λ_{k+1} reaches 2/η with k
        eigenvalues held, the run ends with status EIGENGAP_CLOSED (module docstring).
    exit_band : float
        Only for ``max_critical > 1``: relative width of the band below 2/η inside which a
        released eigenvalue still counts as critical (must exceed the integrator's drift of
        the held eigenvalues, ~rtol relative; see the module docstring for the O(band) error).
    divergence_norm : float
        |w| at which the flow stops with status DIVERGED; ``inf`` to follow it until it
        stops being finite (NONFINITE). The result keeps the states saved before, and
        ``stop_step`` says when the run ended.
    max_rhs_evals : int or None
        Budget of right-hand-side evaluations over the whole run
        (:data:`~stabsim.flows._solve.MAX_RHS_EVALS`; None: none); status MAX_STEPS, naming
        it, when it is exhausted (see :func:`~stabsim.flows.solve_flow`).

    Returns
    -------
    CentralFlowResult
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.positive_float("steps", steps)
    solver = check.solver_options(rtol, atol, integrator)
    max_switches = check.nonnegative_int("max_switches", max_switches)
    max_critical = check.nonnegative_int("max_critical", max_critical, minimum=1)
    exit_band = check.positive_float("exit_band", exit_band)
    divergence_norm = check.positive_or_inf("divergence_norm", divergence_norm)
    solver["max_rhs_evals"] = check.budget("max_rhs_evals", max_rhs_evals)
    if exit_band >= 1.0:
        raise ValueError(f"exit_band must lie in (0, 1), got {exit_band}")
    # a state (d floats) and about 8 records per saved step
    stride = check.positive_float("stride", stride)
    times = check.record_times(stride, steps, width=loss.dim + 8)
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "stride": stride,
                  "integrator": integrator, "rtol": rtol, "atol": atol,
                  "max_switches": max_switches, "max_critical": max_critical,
                  "exit_band": exit_band, "divergence_norm": divergence_norm,
                  "max_rhs_evals": max_rhs_evals}

    compile_derivatives_elsewhere(loss)  # while the eigensolver's kernels compile here
    if max_critical == 1:
        field = _Field(loss, eta)
        # from a start above 2/η that gradient flow lowers (⟨−∇L, ∇S⟩ < 0), the flow is
        # gradient flow until S comes back to 2/η or stops falling (on the boundary branch
        # its exit event, ⟨−∇L, ∇S⟩ falling through 0, could not fire); with ∇S = 0 the
        # boundary branch reports the flat sharpness
        branch0 = bool(field.top(theta0)[0] >= field.bound
                       and not field.leaves_boundary(0.0, theta0) < 0.0)
    else:
        field = _MultiField(loss, eta, max_critical, exit_band)
        values = field.spectrum(theta0)[0]
        branch0 = int(min(max_critical, np.count_nonzero(values >= field.bound)))
    run = _integrate(field, branch0, theta0, steps, times, solver, divergence_norm,
                     max_switches)
    measure = _measure if max_critical == 1 else _measure_multi
    return measure(loss, field, *run, eta, parameters)


def _integrate(field, branch0, theta0, t_end, t_eval, solver, divergence_norm, max_switches):
    """Integrate branch after branch; ``field.plan(branch)`` gives (rhs, events), each event
    a (function, direction, next branch) triple; ``solver`` holds the ``solve_flow``
    options, its ``max_rhs_evals`` the budget of the whole run (None: none): each branch is
    charged what
    the earlier ones spent (:func:`solve_flow`'s ``rhs_evals_spent``), so the run makes at
    most that many evaluations and a MAX_STEPS quotes it. Returns the saved times, states
    and branches, the status, message, counters, the entry and exit times, the time the run
    ended and the budget a MAX_STEPS names."""
    branch, t0, w0 = branch0, 0.0, theta0
    saved_t, saved_w, saved_branch = [], [], []
    entries, exits = ([0.0] if branch0 else []), []
    status, message, nfev, njev, switches = Status.OK, None, 0, 0, 0
    knob = "max_switches"
    while True:
        rhs, plan = field.plan(branch)
        flat = field.flat(w0, branch)
        # λ_{k+1} at or above the threshold beside k held: undefined where the held set
        # pushes the flow; at rest (where gradient flow lowers them, or just after the top k
        # swapped at rest) the flow is gradient flow, and the event is left out of this
        # stretch (it would fire again at once)
        reached = any(fn(t0, w0) >= 0.0 for fn, _, nxt in plan if nxt == GAP_CLOSED)
        if flat or (reached and field.active(w0, branch)):
            if flat:
                status, message = Status.FLAT_SHARPNESS, _flat(branch, t0)
            else:
                status = Status.EIGENGAP_CLOSED
                message = _gap_closed(branch, t0, "is at or above")
            if np.any(t_eval == t0):
                saved_t.append(np.array([t0]))
                saved_w.append(w0[None, :])
                saved_branch.append(np.array([branch]))
            t_stop = t0
            break
        if reached:
            plan = [item for item in plan if item[2] != GAP_CLOSED]
        times = t_eval[t_eval >= t0]
        # the look at the start is charged to the budget; with the budget spent, solve_flow
        # ends the run at once (MAX_STEPS)
        if solver["max_rhs_evals"] is None or nfev < solver["max_rhs_evals"]:
            nfev += 1
            if not np.any(rhs(t0, w0)):
                # an equilibrium of the branch (∇L = 0 with nothing held pushing: both
                # branches vanish there), which its solution never leaves; integrated,
                # every event function is identically 0 there and fires at once, on either
                # branch
                saved_t.append(times)
                saved_w.append(np.repeat(w0[None, :], times.shape[0], axis=0))
                saved_branch.append(np.full(times.shape[0], branch))
                status, message, t_stop = Status.OK, None, t_end
                break
        events = [_terminal(fn, direction) for fn, direction, _ in plan]
        # one pass: the states at the save times from t0 on, up to the event that ends the
        # branch (a run that diverged or turned non-finite ends there too)
        run = solve_flow(rhs, w0, t_end, t_start=t0, t_eval=times, events=events,
                         divergence_norm=divergence_norm, rhs_evals_spent=nfev, **solver)
        nfev += run.counters["rhs_evals"]
        njev += run.counters["jacobian_evals"]
        t_stop = run.stop_step
        switched = run.success and t_stop < t_end
        # without t_stop after a switch: the next branch saves it
        keep = run.step < t_stop if switched else run.step <= t_stop
        if keep.any():
            saved_t.append(run.step[keep])
            saved_w.append(run.trajectory[keep])
            saved_branch.append(np.full(saved_t[-1].shape[0], branch))
        status, message = run.status, run.detail
        if not run.success:
            knob = run.knob or knob
            break
        if not switched:
            break
        # the event that fired is the one whose function is (closest to) zero at the stop
        fired = min(plan, key=lambda item: abs(item[0](t_stop, run.stop_state)))
        if fired[2] == GAP_CLOSED and field.active(run.stop_state, branch):
            status, message = Status.EIGENGAP_CLOSED, _gap_closed(branch, t_stop, "reached")
            break
        if fired[2] == GAP_CLOSED:  # held at rest: the top k, whichever they are, go on
            fired = (None, None, branch)
        switches += 1
        if switches > max_switches:
            status, message = Status.MAX_STEPS, f"at t = {t_stop:.10g}"
            break
        if fired[2] != branch:
            (entries if fired[2] > branch else exits).append(t_stop)
        t0, w0, branch = t_stop, run.stop_state, fired[2]

    t = np.concatenate(saved_t) if saved_t else np.empty(0)
    states = np.concatenate(saved_w) if saved_w else np.empty((0, theta0.shape[0]))
    kind = bool if isinstance(branch0, bool) else int
    branches = np.concatenate(saved_branch) if saved_branch else np.empty(0, dtype=kind)
    return (t, states, branches, status, message, nfev, njev, switches, entries, exits, t_stop,
            knob)


def _flat(branch, t):
    """The message of a run ended at time t, on ``branch``, by a flat sharpness."""
    if isinstance(branch, bool):
        return (f"∇S = 0 at t = {t:.10g}, where S ≥ 2/η: no direction lowers S, so the "
                "flow cannot hold it at 2/η (σ² = 0/0)")
    held = f"{branch} held eigenvectors" if branch > 1 else "held eigenvector"
    return (f"∇³L[u_a, u_b] = 0 for the {held} at t = {t:.10g}, where the held eigenvalues "
            "are ≥ 2/η: ∇S = 0 and no direction lowers them, so the flow cannot hold them "
            "at 2/η (the SDCP fixes no S)")


def _gap_closed(branch, t, verb):
    """The message of a run ended by :data:`GAP_CLOSED` on ``branch`` at time t."""
    held = 1 if isinstance(branch, bool) else branch
    return (f"λ{held + 1} {verb} the stability threshold at t = {t:.10g}, with {held} "
            f"eigenvalue{'s' if held > 1 else ''} held there: a flow holding at most {held} "
            "is undefined past it (raise max_critical where the flow has it); the states "
            "before are kept")


def _terminal(fn, direction):
    """``fn(t, w)`` as a terminal ``solve_ivp`` event, crossing zero in ``direction``."""

    def event(t, w):
        return fn(t, w)

    event.terminal, event.direction = True, direction
    return event


def _result(status, message, nfev, njev, switches, t_stop, knob, parameters, **fields):
    """The CentralFlowResult of a run: the protocol fields, then the flow's own."""
    return CentralFlowResult(
        status=status, detail=message, knob=knob, parameters=parameters,
        counters={"rhs_evals": nfev, "jacobian_evals": njev, "switches": switches},
        stop_step=t_stop, **fields)


def _measure(loss, field, t, states, at_eos, status, message, nfev, njev, switches, entries,
             exits, t_stop, knob, eta, parameters) -> CentralFlowResult:
    """Loss, spectrum and σ² at every saved state."""
    n = t.shape[0]
    out = {key: np.zeros(n) for key in ("loss", "sharpness", "lambda2", "sigma2", "g2")}
    for i, w in enumerate(states):
        grad = loss._grad(w)
        out["loss"][i] = loss._value(w)
        out["sharpness"][i], out["lambda2"][i], _ = field.spectrum(w)
        out["g2"][i] = float(grad @ grad)
        if at_eos[i]:
            out["sigma2"][i] = field.sigma2(w, grad)[0]
    return _result(
        status, message, nfev, njev, switches, t_stop, knob, parameters, step=t,
        trajectory=states,
        eta=eta, loss=out["loss"], sharpness=out["sharpness"], lambda2=out["lambda2"],
        sigma2=out["sigma2"], grad_norm2=out["g2"], at_eos=at_eos,
        entry_steps=entries, exit_steps=exits, max_critical=1,
        n_critical=at_eos.astype(int), sigma_eigenvalues=out["sigma2"][:, None],
        eigenvalues=np.column_stack([out["sharpness"], out["lambda2"]]))


def _measure_multi(loss, field, t, states, n_critical, status, message, nfev, njev, switches,
                   entries, exits, t_stop, knob, eta, parameters) -> CentralFlowResult:
    """Loss, the top k + 1 eigenvalues, Σ's eigenvalues and tr Σ at every saved state."""
    n, k = t.shape[0], field.k
    n_eig = min(k + 1, loss.dim)
    loss_v, g2, sigma2 = np.zeros(n), np.zeros(n), np.zeros(n)
    eigenvalues = np.full((n, k + 1), -np.inf)
    sigma_eigenvalues = np.zeros((n, k))
    for i, w in enumerate(states):
        grad = loss._grad(w)
        loss_v[i] = loss._value(w)
        g2[i] = float(grad @ grad)
        eigenvalues[i, :n_eig] = field.spectrum(w)[0][:n_eig]
        m = int(n_critical[i])
        if m:
            S = field.sigma(w, m, grad)[0].S
            sigma_eigenvalues[i, :m] = np.linalg.eigvalsh(S)[::-1]
            sigma2[i] = float(np.trace(S))
    return _result(
        status, message, nfev, njev, switches, t_stop, knob, parameters, step=t,
        trajectory=states,
        eta=eta, loss=loss_v, sharpness=eigenvalues[:, 0], lambda2=eigenvalues[:, 1],
        sigma2=sigma2, grad_norm2=g2, at_eos=n_critical > 0, entry_steps=entries,
        exit_steps=exits, max_critical=k, n_critical=n_critical,
        sigma_eigenvalues=sigma_eigenvalues, eigenvalues=eigenvalues)
