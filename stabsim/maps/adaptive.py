"""Exact adaptive methods (RMSProp, Adam, Scalar RMSProp) at the edge of stability.

``run_adaptive`` runs the true iteration with the loss's exact derivatives and records, at a
stride, the loss, the gradient norm, the raw sharpness λ_max(∇²L) and the preconditioned
sharpness λ_max(P⁻¹∇²L) (docs/theory.md §7), which the theory says hovers at
:func:`adaptive_threshold`. The update rules are those of
:mod:`stabsim.maps._adaptive_kernels`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._interrupt import deferred_interrupt
from .._progress import progress_bar
from .._result import Result
from .._status import Status
from ..losses import Loss, Quadratic
from ..losses._base import require_loss
from ..losses._engines import engine_for
from . import _adaptive_kernels as kernels
from .gd import eigen_config, thick_after_stall

METHODS = {
    "rmsprop": kernels.RMSPROP,
    "adam": kernels.ADAM,
    "scalar_rmsprop": kernels.SCALAR_RMSPROP,
}


def adaptive_threshold(eta: float, beta1: float = 0.0) -> float:
    """The preconditioned sharpness at which the frozen-preconditioner update turns unstable.

    With P frozen, the update of :func:`run_adaptive` on a quadratic ½wᵀHw is linear; in the
    eigenbasis of P^{-1/2}HP^{-1/2} (eigenvalue λ) it is m' = β₁m + (1 − β₁)λx,
    x' = x − ηm', i.e. x_{t+1} = (1 + β₁ − η(1 − β₁)λ)x_t − β₁x_{t−1}: heavy ball with step
    η(1 − β₁) and momentum β₁. Its characteristic roots have product β₁ < 1, so stability is
    lost where a root crosses −1, at

        λ = (2 + 2β₁) / ((1 − β₁) η)

    (docs/theory.md §7; 2/η for the RMSProps, β₁ = 0; 38/η for Adam at β₁ = 0.9). Bias
    correction changes m̂ = m/(1 − β₁^t) by a factor that tends to 1, not the threshold.

    Parameters
    ----------
    eta : float
        Step size, > 0.
    beta1 : float
        β₁ in [0, 1), the momentum of Adam (0 for RMSProp and Scalar RMSProp).

    Returns
    -------
    float
        The threshold on λ_max(P⁻¹H).
    """
    eta = check.positive_float("eta", eta)
    beta1 = check.unit_interval("beta1", beta1)
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * eta)


@dataclasses.dataclass(repr=False)
class AdaptiveResult(Result):
    """What :func:`run_adaptive` recorded.

    Attributes
    ----------
    method : str
    eta, beta1, beta2, eps : float
    bias_correction : bool
    step : ndarray of int, shape (n,)
        Step t of each record (row 0 is the start).
    loss, grad_norm : ndarray, shape (n,)
        L(w_t) and |∇L(w_t)|.
    sharpness : ndarray, shape (n,)
        λ_max(∇²L(w_t)).
    preconditioned_sharpness : ndarray, shape (n,)
        λ_max(P_t⁻¹∇²L(w_t)), P_t = diag(√ν̂_t + ε) (the preconditioner of step t's update).
    eig_residual, preconditioned_residual : ndarray, shape (n,)
        Residuals of the two eigenpairs (|Hu − λu| and |DHDv − λv|, D = P^{-1/2}).
    trajectory : ndarray, shape (n, d) or None
        w_t, when recorded.
    nu_trajectory : ndarray, shape (n, len(nu)) or None
        ν_t (recorded with the trajectory, and always for Scalar RMSProp).
    theta : ndarray, shape (d,)
        The last iterate w_T reached.
    nu, m : ndarray
        The optimiser state ν_{T−1}, m_{T−1} that continues the run: pass ``nu`` as ``nu0``
        and, for Adam, ``m`` as ``m0``. The RMSProps have no momentum (their update uses
        g_t itself): their ``m`` is zeros.
    counters : dict
        ``steps`` (updates done) and ``gradients`` (gradients evaluated: one at every
        state reached, the one a failure stopped at included).
    singular_preconditioner : bool
        True when the run stopped at a finite state because ν had a zero entry with ε = 0:
        P is singular there and λ_max(P⁻¹∇²L) undefined, though nothing diverged;
        ``message`` says at which step and why. The status is ZERO_GRADIENT where that
        state is an exact critical point with no momentum left (∇L = 0 and β₁ m = 0: the
        method stays there), NONFINITE otherwise.
    """

    method: str = "rmsprop"
    eta: float = np.nan
    beta1: float = 0.0
    beta2: float = 0.0
    eps: float = 0.0
    bias_correction: bool = False
    step: np.ndarray = None
    loss: np.ndarray = None
    grad_norm: np.ndarray = None
    sharpness: np.ndarray = None
    preconditioned_sharpness: np.ndarray = None
    eig_residual: np.ndarray = None
    preconditioned_residual: np.ndarray = None
    trajectory: np.ndarray | None = None
    nu_trajectory: np.ndarray | None = None
    theta: np.ndarray = None
    nu: np.ndarray = None
    m: np.ndarray = None
    singular_preconditioner: bool = False

    @property
    def message(self) -> str:
        """What happened and what to do: for a singular P, the detail alone (the NONFINITE
        status's general causes, a step size past the threshold or an overflow, do not
        apply)."""
        return self.detail if self.singular_preconditioner else super().message

    @property
    def threshold(self) -> float:
        """:func:`adaptive_threshold` of the run's η and β₁."""
        return adaptive_threshold(self.eta, self.beta1 if self.method == "adam" else 0.0)

    @property
    def effective_sharpness(self) -> np.ndarray:
        """λ_max(P⁻¹∇²L)/threshold: 1 at the edge of stability (S_eff/2 for Scalar RMSProp,
        where S_eff = ηS/(√ν̂ + ε) is the effective sharpness of docs/theory.md §7, ηS/√ν̂ at
        ε = 0)."""
        return self.preconditioned_sharpness / self.threshold

    def headline(self) -> dict:
        out = {"method": self.method, "eta": self.eta, "records": len(self.step)}
        if len(self.step):
            out["final_preconditioned_sharpness"] = float(self.preconditioned_sharpness[-1])
        return out

    def to_xarray(self):
        """The records as an ``xarray.Dataset`` with dimension ``step`` (see
        :mod:`stabsim._export`)."""
        import xarray as xr

        from .._export import finish

        data = {
            "loss": ("step", self.loss),
            "grad_norm": ("step", self.grad_norm),
            "sharpness": ("step", self.sharpness),
            "preconditioned_sharpness": ("step", self.preconditioned_sharpness),
            "eig_residual": ("step", self.eig_residual),
            "preconditioned_residual": ("step", self.preconditioned_residual),
        }
        if self.trajectory is not None:
            data["theta"] = (("step", "param"), self.trajectory)
        if self.nu_trajectory is not None:
            data["nu"] = (("step", "nu_index"), self.nu_trajectory)
        attrs = {**self._export_attrs(), "threshold": self.threshold}
        ds = xr.Dataset(data, coords={"step": self.step}, attrs=attrs)
        return finish(ds, self.parameters)


def _betas(method, beta1, beta2, bias_correction):
    beta1 = check.unit_interval("beta1", beta1)
    beta2 = check.unit_interval("beta2", beta2, closed_right=True)
    if beta1 != 0.0 and method != "adam":
        raise ValueError(f"beta1 = {beta1!r} is used by 'adam' only; method {method!r} has "
                         "no momentum (leave beta1 at 0)")
    if beta2 == 1.0 and bias_correction:
        raise ValueError("beta2 = 1 freezes the preconditioner at nu0 and leaves the bias "
                         "correction 1/(1 - beta2^t) undefined: use bias_correction=False")
    return beta1, beta2


def run_adaptive(
    loss: Loss,
    theta0,
    eta: float,
    steps: int,
    *,
    method: str = "rmsprop",
    beta1: float = 0.0,
    beta2: float = 0.99,
    eps: float = 0.0,
    bias_correction: bool = False,
    nu0=None,
    m0=None,
    first_step: int = 0,
    stride: int = 1,
    record_trajectory: bool = False,
    eigensolver: str = "auto",
    eig_tol: float = 1e-10,
    eig_max_products: int = 1000,
    divergence_norm: float = 1e8,
    chunk_steps: int = 2000,
    progress: bool = False,
) -> AdaptiveResult:
    """Run RMSProp, Adam or Scalar RMSProp for ``steps`` steps with exact derivatives.

    With g_t = ∇L(w_t) and t = 0, 1, … (docs/theory.md §7):

    - ``"rmsprop"``: ν_t = β₂ν_{t−1} + (1 − β₂)g_t² (elementwise),
      w_{t+1} = w_t − η g_t/(√ν̂_t + ε);
    - ``"adam"``: also m_t = β₁m_{t−1} + (1 − β₁)g_t, w_{t+1} = w_t − η m̂_t/(√ν̂_t + ε);
    - ``"scalar_rmsprop"``: ν_t = β₂ν_{t−1} + (1 − β₂)|g_t|² (a scalar),
      w_{t+1} = w_t − η g_t/(√ν̂_t + ε);

    with ν̂_t = ν_t/(1 − β₂^{t₀+t+1}), m̂_t = m_t/(1 − β₁^{t₀+t+1}) (t₀ = ``first_step``)
    under ``bias_correction`` and
    ν̂ = ν, m̂ = m otherwise. P_t = diag(√ν̂_t + ε) is the preconditioner; the recorded
    preconditioned sharpness is λ_max(P_t⁻¹∇²L(w_t)), by Lanczos on products with
    P_t^{-1/2}∇²L P_t^{-1/2} (for Scalar RMSProp, S/(√ν̂_t + ε) exactly). ``beta2 = 1`` with
    ``nu0`` freezes the preconditioner (the linear iteration of :func:`adaptive_threshold`
    on a quadratic).

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        Step size, > 0.
    steps : int
        Number of updates.
    method : {"rmsprop", "adam", "scalar_rmsprop"}
    beta1 : float
        Momentum EMA factor in [0, 1) (Adam only).
    beta2 : float
        EMA factor of ν in [0, 1]; 1 keeps ν at ``nu0``, which must then be positive where
        ``eps`` is 0.
    eps : float
        ε ≥ 0 added to √ν̂.
    bias_correction : bool
    nu0, m0 : array_like, optional
        ν_{−1} (shape (d,), or a scalar for Scalar RMSProp; ≥ 0; default 0) and m_{−1}
        (default 0; Adam only).
    first_step : int
        t₀, the step number of ``theta0`` in a run this one continues (from that run's
        ``theta``, ``nu`` and, for Adam, ``m``, with ``first_step`` its number of steps):
        only the bias corrections use it, so a run of T₁ steps continued for T₂ is the run
        of T₁ + T₂ steps. Recorded steps still count from 0.
    stride : int
        Record every ``stride``-th step (step 0 always, and the last one).
    record_trajectory : bool
        Keep w_t and ν_t at every record.
    eigensolver : {"auto", "lanczos", "eigh"}
        How the raw sharpness is measured, as in :func:`stabsim.maps.run_gd`; the
        preconditioned one is measured the same way, on D ∇²L D (a dense measurement holds
        a second d × d array for it).
    eig_tol, eig_max_products : float, int
        Relative residual tolerance and budget of products of each Lanczos measurement (raw
        and preconditioned); a measurement that misses the tolerance within the budget is
        made again with thick restarts, as :func:`~stabsim.maps.gd.run_gd`'s, and one that
        misses it then stops the run with status NOT_CONVERGED, naming
        ``eig_max_products``.
    divergence_norm : float
        |w| above which the run stops with status DIVERGED.
    chunk_steps : int
        Steps per compiled call; Ctrl-C and the progress bar act between chunks.
    progress : bool

    Returns
    -------
    AdaptiveResult
        Never contains NaN: a run that meets a non-finite value stops there with status
        NONFINITE (or DIVERGED) and keeps the records made before; so does one that reaches
        a ν with a zero entry at a recorded step with ε = 0 (P singular:
        ``singular_preconditioner``; status ZERO_GRADIENT where ∇L = 0 and β₁ m = 0 there,
        an exact critical point the method stays at, whose state is not recorded: its
        preconditioned sharpness is undefined). Ctrl-C returns the records so far with
        status INTERRUPTED.
    """
    require_loss(loss)
    theta = loss.check_point(theta0, "theta0").copy()
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps)
    check.choice("method", method, METHODS)
    bias_correction = check.boolean("bias_correction", bias_correction)
    beta1, beta2 = _betas(method, beta1, beta2, bias_correction)
    eps = check.finite_float("eps", eps)
    if eps < 0.0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    first_step = check.nonnegative_int("first_step", first_step)
    stride = check.nonnegative_int("stride", stride, minimum=1)
    check.choice("eigensolver", eigensolver, {"auto", "lanczos", "eigh"})
    eig_tol = check.positive_float("eig_tol", eig_tol)
    eig_max_products = check.nonnegative_int("eig_max_products", eig_max_products, minimum=1)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    chunk_steps = check.nonnegative_int("chunk_steps", chunk_steps, minimum=1)
    record_trajectory = check.boolean("record_trajectory", record_trajectory)
    progress = check.boolean("progress", progress)
    d = loss.dim
    n_nu = 1 if method == "scalar_rmsprop" else d
    if nu0 is None:
        nu = np.zeros(n_nu)
    else:
        nu = check.finite_array("nu0", nu0).copy()  # a scalar becomes shape (1,)
        if nu.shape != (n_nu,):
            raise ValueError(f"nu0 must have shape ({n_nu},) for method {method!r}, got "
                             f"{np.shape(nu0)}")
        if np.any(nu < 0.0):
            raise ValueError("nu0 must be >= 0 (an EMA of squared gradients)")
    if beta2 == 1.0 and eps == 0.0 and not np.all(nu > 0.0):
        raise ValueError("beta2 = 1 keeps ν at nu0 (0 by default), so with eps = 0 a zero entry "
                         "of it makes P = diag(√ν + ε) singular: beta2 = 1 needs a positive "
                         "nu0 (or eps > 0)")
    m = np.zeros(d) if m0 is None else loss.check_point(m0, "m0").copy()
    if m0 is not None and method != "adam":
        raise ValueError(f"m0 is the momentum state of 'adam'; method {method!r} has none")

    eigen = eigen_config(loss, eigensolver, 1, eig_tol, eig_max_products, dense_copies=2)
    keep_nu = record_trajectory or method == "scalar_rmsprop"
    n_rec = check.record_rows(steps, stride, width=6 + (d if record_trajectory else 0)
                              + (n_nu if keep_nu else 0))
    rec = kernels.AdaptiveRecords(
        np.zeros(n_rec), np.zeros(n_rec), np.zeros((n_rec, 1)), np.zeros(n_rec),
        np.zeros(n_rec), np.zeros(n_rec), np.zeros((n_rec if record_trajectory else 0, d)),
        np.zeros((n_rec if keep_nu else 0, n_nu)))
    start_vec = np.full(d, 1.0 / np.sqrt(d))
    state = kernels.AdaptiveState(theta, m, nu, start_vec.copy(), start_vec.copy())
    rule = kernels.AdaptiveMethod(METHODS[method], eta, beta1, beta2, eps, bias_correction,
                                  first_step)
    kernel = engine_for(kernels.adaptive_chunk, loss.family)

    bar = progress_bar(steps, enabled=progress, unit="step", leave=False)
    status, done = int(Status.OK), 0
    with deferred_interrupt() as interrupt:
        while status == int(Status.OK):
            if interrupt.requested:
                status = int(Status.INTERRUPTED)
                break
            n = min(chunk_steps, steps - done)
            finish = done + n == steps
            status, advanced = kernel(loss.params, rule, eigen, state, rec, done, n,
                                      finish, stride, divergence_norm)
            done += advanced
            bar.update(advanced)
            if (thick := thick_after_stall(eigen, status)) is not None:
                eigen, status = thick, int(Status.OK)  # the stalled step measured again
                continue
            if finish:
                break
    bar.close()
    record_steps = np.arange(0, steps + 1, stride)
    if steps % stride:  # the last state is recorded too, in the extra row
        record_steps = np.append(record_steps, steps)
    if status == int(Status.OK):
        n_kept = n_rec
    else:  # the state at step `done` failed its checks (or was not reached) and is absent
        n_kept = (done - 1) // stride + 1 if done > 0 else 0
    parameters = {"method": method, "loss": loss.provenance, "eta": eta, "steps": steps,
                  "beta1": beta1,
                  "beta2": beta2, "eps": eps, "bias_correction": bias_correction,
                  "first_step": first_step, "stride": stride, "eigensolver": eigensolver,
                  "eig_tol": eig_tol, "eig_max_products": eig_max_products,
                  "divergence_norm": divergence_norm}
    # the engine evaluates ∇L at every state it reaches, before its checks: at the `done`
    # updated states and the one at step `done` (the last one, or the one that failed),
    # unless Ctrl-C stopped the run before the chunk that would evaluate it
    gradients = done + (status != int(Status.INTERRUPTED))
    singular = None
    if status == int(Status.NONFINITE) and eps == 0.0:
        singular, critical = _singular_preconditioner(loss, state, method, beta1, beta2, done)
        if critical:
            status = int(Status.ZERO_GRADIENT)
    return AdaptiveResult(
        status=Status(status),
        counters={"steps": done, "gradients": gradients},
        parameters=parameters,
        knob="eig_max_products" if status == int(Status.NOT_CONVERGED) else None,
        detail=singular or (f"at step {done}" if status != int(Status.OK) else None),
        singular_preconditioner=singular is not None,
        method=method, eta=eta, beta1=beta1, beta2=beta2, eps=eps,
        bias_correction=bias_correction, step=record_steps[:n_kept],
        loss=rec.loss[:n_kept], grad_norm=rec.gnorm[:n_kept], sharpness=rec.sharp[:n_kept, 0],
        preconditioned_sharpness=rec.psharp[:n_kept], eig_residual=rec.residual[:n_kept],
        preconditioned_residual=rec.presidual[:n_kept],
        trajectory=rec.theta[:n_kept] if record_trajectory else None,
        nu_trajectory=rec.nu[:n_kept] if keep_nu else None,
        theta=state.theta, nu=state.nu, m=state.m)


def _singular_preconditioner(loss, state, method, beta1, beta2,
                             step) -> tuple[str | None, bool]:
    """What stopped a run with ε = 0 as NONFINITE at step ``step``, when it is a
    zero entry of that step's ν at a finite state: P = diag(√ν̂ + ε) is singular there and
    λ_max(P⁻¹∇²L) undefined (None otherwise); and whether that state is an exact critical
    point with no momentum left, where the method stays: ∇L = 0 and β₁ m = 0, so that
    m_t = β₁ m_{t−1} + (1 − β₁)·0 = 0 and the update 0/√ν̂ is taken as 0 (Adam's momentum
    would move it on, dividing by √ν̂ = 0).

    The state is the one the run stopped at, before its update: w_t and ν_{t−1}. Only what
    they show is said: the gradient's entry at step t, and ν_{t−1}'s.
    """
    if not np.all(np.isfinite(state.theta)):
        return None, False
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run's huge gradient
        value, g = loss.value(state.theta), loss.grad(state.theta)
        g2 = g @ g
        square = np.atleast_1d(g2) if method == "scalar_rmsprop" else g * g
        nu = beta2 * state.nu + (1.0 - beta2) * square
    # the engine's own check (a finite loss and |g|²) passed: P is what failed
    if not (np.isfinite(value) and np.isfinite(g2)) or np.all(nu > 0.0):
        return None, False
    critical = not np.any(g) and not np.any(beta1 * state.m)
    zero = np.flatnonzero(nu == 0.0)
    i = zero[0]
    if method == "scalar_rmsprop":
        where, gradient, exact = "", "the gradient", not np.any(g)
    else:
        more = f" and {zero.size - 1} more" if zero.size > 1 else ""
        where, gradient, exact = f" (index {i}{more})", "the gradient's entry", g[i] == 0.0
    why = f"{gradient} is 0" if exact else f"the square of {gradient} underflows to 0"
    advice = "pass eps > 0"
    if beta2 == 0.0:
        why = f"β₂ = 0 makes ν the square of this step's gradient, and {why}"
    elif state.nu[i] == 0.0:
        why += (", and so is ν₋₁ there (nu0, 0 by default)" if step == 0
                else ", and ν was 0 there at the step before")
        advice += " or a positive nu0"
    else:
        why += f", and β₂ times the previous ν ({state.nu[i]:.3g}) underflows to 0"
    if critical:
        why += "; an exact critical point with no momentum left, where the method stays"
        advice += " for a preconditioned sharpness there"
    return (f"at step {step}, ν has a zero entry{where} and eps = 0, so P = diag(√ν̂ + ε) is "
            f"singular and the preconditioned sharpness λ_max(P⁻¹∇²L) undefined; the run "
            f"stopped there at a finite state ({why}); {advice}"), critical


def frozen_threshold(loss: Quadratic, nu0, beta1: float = 0.0, *, eps: float = 0.0,
                     rtol: float = 1e-7, steps: int = 200_000) -> float:
    """The largest stable step size of the frozen-preconditioner update on a quadratic.

    Bisection on η with :func:`run_adaptive` at β₂ = 1 (ν stays at ``nu0``, so
    P = diag(√ν0 + ε) is frozen and the update on ½wᵀAw is linear): η is stable when the
    loss does not grow over the second half of a ``steps``-step run. Near the critical η_c
    the dominant root of the linear iteration is −1 − cε for η = η_c(1 + ε), with
    c = (2 + 2β₁)/(1 − β₁) (the derivative of the root at −1, docs/theory.md §7), so the
    loss changes over n steps by exp(2cεn); with n = 2·10⁵ a relative ε of 5·10⁻⁸ is told
    apart from 1 far beyond round-off. An independent check of :func:`adaptive_threshold`:
    η_c λ_max(P⁻¹A) = (2 + 2β₁)/(1 − β₁).

    Parameters
    ----------
    loss : Quadratic
    nu0 : array_like, shape (d,)
        The frozen ν (> 0 where ε = 0).
    beta1 : float
        0 for RMSProp, else Adam's β₁ (without bias correction).
    eps : float
    rtol : float
        Relative accuracy of η_c.
    steps : int

    Returns
    -------
    float
        η_c to relative accuracy ``rtol``.
    """
    if not isinstance(loss, Quadratic):
        raise TypeError(f"loss must be a Quadratic, got {type(loss).__name__}")
    beta1 = check.unit_interval("beta1", beta1)
    rtol = check.positive_float("rtol", rtol)
    steps = check.nonnegative_int("steps", steps, minimum=2)
    method = "adam" if beta1 > 0.0 else "rmsprop"
    nu0 = check.finite_array("nu0", nu0, shape=(loss.dim,))
    if np.any(nu0 < 0.0):
        raise ValueError(f"nu0 must be ≥ 0 (a running mean of squares), got {nu0.tolist()}")
    p = np.sqrt(nu0) + eps
    if np.any(p <= 0.0):
        raise ValueError("the frozen preconditioner sqrt(nu0) + eps must be > 0")
    scale = 1.0 / np.sqrt(p)
    lam = float(np.linalg.eigvalsh(scale[:, None] * loss.hessian(np.zeros(loss.dim))
                                   * scale[None, :])[-1])
    if lam <= 0.0:
        raise ValueError("the quadratic has no positive preconditioned eigenvalue: every "
                         "step size is stable")
    start = np.linspace(1.0, 2.0, loss.dim)  # a component along every eigenvector, generically

    def stable(eta):
        result = run_adaptive(loss, start, eta, steps, method=method, beta1=beta1,
                              beta2=1.0, eps=eps, nu0=nu0, stride=steps // 2,
                              divergence_norm=1e300)
        if result.status is not Status.OK:  # overflowed: clearly unstable
            return False
        return not result.loss[2] > result.loss[1]  # both may underflow to 0 when stable

    # η λ ranges over (0, 2(1 + β₁)/(1 − β₁)) when stable; the bracket holds every β₁ ≤ 0.99
    lo, hi = 0.5 / lam, 1000.0 / lam
    if not stable(lo) or stable(hi):
        raise ValueError(f"no stability threshold in [{lo:.3g}, {hi:.3g}]")
    while (hi - lo) / lo > rtol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return 0.5 * (lo + hi)
