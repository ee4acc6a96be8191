"""The constrained trajectory θ† and the predicted dynamics v of Damian et al. (docs/theory.md §2).

    θ†_{t+1} = proj_M(z_t),   z_t = θ†_t − η ∇L(θ†_t),          θ†_0 = proj_M(θ_0)
    v_{t+1}  = v_t − η [ H v_t + u x_t y_t + ½ x_t² ∇S⊥ ] + (z_t − θ†_{t+1}),   v_0 = θ_0 − θ†_0

with H, u, ∇S⊥ = ∇S − (u·∇S)u evaluated at θ†_t, x_t = u·v_t and y_t = ∇S⊥·v_t. This is GD's
step minus θ†'s step, θ_{t+1} − θ†_{t+1}, with ∇L(θ†_t + v_t) expanded to the terms of the
paper's code; the last term is the exact displacement of the projection. To first order
it is ½ηδ_t²∇S⊥ (δ_t² = 2α_t/β_t, α_t = −∇L·∇S⊥, β_t = |∇S⊥|²) where the constraint
S ≤ 2/η is active — the paper's code writes exactly that, v_{t+1} = v_t − η[Hv_t + u x_t y_t
+ ½(x_t² − δ_t²)∇S⊥] (``displacement="paper"``) — it has no ∇S⊥ part where θ† is inside M,
and it carries the small shift along u that keeps u·∇L = 0 on M. The paper's form lacks that
shift, and the step in it at the first step seeds a spurious oscillation of x (measured on
``QuadraticRegression.two_scale(0.01)``: x_{t_c+1} = 6.8e-8 against GD's 3.4e-8; the exact
displacement gives 3.433e-8), which then blows up 11 steps before GD's (|x| passing δ/10;
with the exact displacement, 4 steps after). The predictions for GD are

    θ_t ≈ θ†_t + v_t,   L(θ_t) ≈ L(θ†_t) + x_t²/η,   S(θ_t) ≈ S(θ†_t) + y_t + (u·∇S) x_t,

(the last is 2/η + y_t + (u·∇S)x_t of docs/theory.md §2 whenever θ†_t sits on the boundary S = 2/η;
using S(θ†_t) keeps it right while θ† is inside M). They hold once GD is at the edge of
stability and while v stays O(δ) — its off-axis part v⊥ = v − x u − (y/β)∇S⊥, and its
∇S⊥-part, whose u-component of ½∇³L[v, v] the update leaves out: from a round-off-sized x
at the crossing the orbit is large (y/|∇S⊥| ≈ 5δ on two_scale(0.01)) and that term moves
GD along u far beyond the predicted x before the first blow-up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._result import Result
from .._status import Status
from ..losses import Loss
from ..losses._base import require_loss
from ..losses._compile_ahead import compile_derivatives_elsewhere
from .projection import PROJECTION_METHODS, _unchecked_proj_M, projection_budget


@dataclasses.dataclass(repr=False)
class ConstrainedResult(Result):
    """θ† and the predicted v along ``steps + 1`` records (row 0 is the start).

    ``counters``: ``steps`` (steps made, the rows kept minus one) and ``projection_iterations``
    (iterations of every projection, summed).

    Attributes
    ----------
    eta : float
    projection : str
        ``"euclidean"`` or ``"paper"`` (see :func:`~stabsim.maps.projection.proj_M`).
    trajectory : ndarray, shape (n, d)
        θ†_t (``theta`` is the last row).
    v : ndarray, shape (n, d)
        The predicted displacement v_t; θ†_t + v_t predicts GD's θ_t.
    u : ndarray, shape (n, d)
        The unit top eigenvector at θ†_t that ``x`` is measured along, its sign that of the
        row before (at row 0, that of ``u_ref`` when given): GD's x_t = u·(θ_t − θ†_t) is
        to be measured along the same vectors.
    loss, sharpness, lambda2 : ndarray, shape (n,)
        L(θ†_t), S(θ†_t) and the second Hessian eigenvalue at θ†_t.
    x, y : ndarray, shape (n,)
        x_t = u·v_t, y_t = ∇S⊥·v_t.
    alpha, beta : ndarray, shape (n,)
        α_t = −∇L(θ†_t)·∇S⊥, β_t = |∇S⊥|² (δ_t² = 2α_t/β_t).
    displacement : str
        ``"exact"`` or ``"paper"``: the projection term of the v-update.
    u_dot_grad_sharpness : ndarray, shape (n,)
        u·∇S at θ†_t.
    v_perp : ndarray, shape (n,)
        |v⊥|, the norm of the part of v_t off span(u, ∇S⊥).
    residuals : ndarray, shape (n, 2)
        ((S − 2/η)₊, |u·∇L|) of each projection.
    n_iter : ndarray of int, shape (n,)
        Iterations of each projection.
    status : Status
        OK; NOT_CONVERGED if some projection missed its tolerance within its budget
        (``max_iter``, or the ``passes`` of the paper's projection, which the message names;
        the run continues, see ``first_failure``); NONFINITE if a value went non-finite,
        FLAT_SHARPNESS if ∇S⊥ = 0 at θ† (δ² = 2α/β is undefined) or a projection met
        S > 2/η with ∇S = 0, EIGENGAP_CLOSED if a projection ended with λ2 ≥ 2/η (M,
        defined by the top eigenvalue alone, is out of its reach there) or met a repeated
        top eigenvalue where u·∇L is undefined (see
        :class:`~stabsim.maps.projection.Projection`); these three stop the run there,
        which keeps only the rows made before (no row is NaN).
    first_failure : int or None
        First step whose projection missed its tolerance.
    """

    eta: float
    projection: str
    displacement: str
    trajectory: np.ndarray
    v: np.ndarray
    u: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    lambda2: np.ndarray
    x: np.ndarray
    y: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    u_dot_grad_sharpness: np.ndarray
    v_perp: np.ndarray
    residuals: np.ndarray
    n_iter: np.ndarray
    first_failure: int | None

    @property
    def theta(self) -> np.ndarray | None:
        """θ† at the last row (None when no row was made)."""
        return self.trajectory[-1] if self.trajectory.shape[0] else None

    def headline(self) -> dict:
        return {"eta": self.eta, "projection": self.projection,
                "steps": self.counters["steps"]}

    def to_xarray(self):
        """The records as an ``xarray.Dataset`` with dimension ``step`` (θ† as
        ``theta_dagger``, v, and the per-step quantities)."""
        import xarray as xr

        from .._export import finish

        one = {"dagger_loss": self.loss, "dagger_sharpness": self.sharpness,
               "dagger_lambda2": self.lambda2, "pred_x": self.x, "pred_y": self.y,
               "alpha": self.alpha, "beta": self.beta,
               "u_dot_grad_sharpness": self.u_dot_grad_sharpness, "v_perp": self.v_perp,
               "projection_iterations": self.n_iter}
        data = {name: ("step", values) for name, values in one.items()}
        data.update({"theta_dagger": (("step", "param"), self.trajectory),
                     "v": (("step", "param"), self.v),
                     "u": (("step", "param"), self.u),
                     "projection_residual": (("step", "residual"), self.residuals)})
        attrs = {**self._export_attrs(), "eta": self.eta, "projection": self.projection,
                 "displacement": self.displacement}
        if self.first_failure is not None:
            attrs["first_failure"] = self.first_failure
        ds = xr.Dataset(data, coords={"step": np.arange(self.trajectory.shape[0])},
                        attrs=attrs)
        return finish(ds, self.parameters)

    @property
    def delta2(self) -> np.ndarray:
        """δ_t² = 2α_t/β_t."""
        return 2.0 * self.alpha / self.beta

    @property
    def predicted_theta(self) -> np.ndarray:
        """θ†_t + v_t, the prediction of GD's iterate."""
        return self.trajectory + self.v

    @property
    def predicted_loss(self) -> np.ndarray:
        """L(θ†_t) + x_t²/η (inf where x_t² overflows, as before v does: status NONFINITE)."""
        with np.errstate(over="ignore"):
            return self.loss + self.x ** 2 / self.eta

    @property
    def predicted_sharpness(self) -> np.ndarray:
        """S(θ†_t) + y_t + (u·∇S) x_t (inf where that overflows: status NONFINITE)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.sharpness + self.y + self.u_dot_grad_sharpness * self.x


def constrained_trajectory(loss: Loss, theta0, eta: float, steps: int, *,
                           projection: str = "euclidean", tol: float = 1e-10,
                           max_iter: int | None = None, passes: int | None = None, u_ref=None,
                           displacement: str = "exact") -> ConstrainedResult:
    """Run projected GD on M and the predicted dynamics v from θ_0 (module docstring).

    θ†_0 = proj_M(θ_0) and v_0 = θ_0 − θ†_0, so that θ†_0 + v_0 = θ_0 exactly. The theory
    describes GD from its arrival at the edge of stability on: start from the GD iterate at
    the first step where S ≥ 2/η (what :func:`stabsim.compare` does). With
    ``displacement="paper"`` an earlier start is wrong besides: its δ² term acts whether or
    not the sharpness constraint is active.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
    steps : int
        Number of steps; ``steps + 1`` records.
    projection : {"euclidean", "paper"}
        Which projection onto M (see :func:`~stabsim.maps.projection.proj_M`).
    tol : float
        Passed to the projection.
    max_iter, passes : int, optional
        The budgets of the Euclidean and of the paper's projection, as in
        :func:`~stabsim.maps.projection.proj_M` (defaults 50 and 3); each is refused with
        the projection that does not use it.
    u_ref : array_like, optional
        Sign reference for u at the start (later steps align with the previous u).
    displacement : {"exact", "paper"}
        The projection term of the v-update: the exact displacement z_t − θ†_{t+1}
        (default), or the paper's first-order ½ηδ_t²∇S⊥ (module docstring).

    Returns
    -------
    ConstrainedResult
        Its ``parameters`` hold the projection's budget in use (``max_iter`` or
        ``passes``), not the other.
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps)
    check.choice("projection", projection, PROJECTION_METHODS)
    # checked once, here, before the records are allocated (each step's projection takes
    # them as they are)
    tol = check.positive_float("tol", tol)
    limit_name, limit = projection_budget(projection, max_iter, passes)
    if u_ref is not None:
        u_ref = loss.check_point(u_ref, "u_ref")
    check.choice("displacement", displacement, ("exact", "paper"))
    n, d = steps + 1, loss.dim
    check.affordable(8 * n * (3 * d + 12), f"the records of steps = {steps}", "lower `steps`")
    compile_derivatives_elsewhere(loss)  # while the eigensolver's kernels compile here
    out = {name: np.full(n, np.nan) for name in
           ("loss", "sharpness", "lambda2", "x", "y", "alpha", "beta", "udS", "v_perp")}
    thetas, vs, us = np.full((n, d), np.nan), np.full((n, d), np.nan), np.full((n, d), np.nan)
    residuals, n_iter = np.full((n, 2), np.nan), np.zeros(n, dtype=int)

    def project(z, ref):
        return _unchecked_proj_M(loss, z, eta, projection, tol, limit_name, limit, ref)

    proj = project(theta0, u_ref)
    v = theta0 - proj.theta
    status, first_failure, kept, stop, why = Status.OK, None, n, None, ""
    # a blow-up of v is reported through the status, not by NumPy warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in range(n):
            geo = proj.geometry
            residuals[t], n_iter[t] = proj.residuals, proj.n_iter
            if proj.status in (Status.NONFINITE, Status.FLAT_SHARPNESS,
                               Status.EIGENGAP_CLOSED):
                status, kept = proj.status, t
                stop = f"the projection of step {t}" + (f": {proj.detail}" if proj.detail
                                                        else "")
                break
            if not np.all(np.isfinite(v)):
                status, kept = Status.NONFINITE, t
                stop = (f"v = θ − θ† (the predicted displacement of GD) overflowed at step "
                        f"{t}: the predicted dynamics about θ† are unstable there")
                break
            if proj.status is Status.NOT_CONVERGED and first_failure is None:
                status, first_failure = Status.NOT_CONVERGED, t
                why = f": {proj.detail}" if proj.detail else ""
            u, perp = geo.u, geo.grad_sharpness_perp
            beta = float(perp @ perp)
            if beta == 0.0:  # δ² = 2α/β and v⊥ need ∇S⊥ ≠ 0
                status, kept, stop = Status.FLAT_SHARPNESS, t, f"∇S⊥ = 0 at θ† of step {t}"
                break
            alpha = -float(geo.grad @ perp)
            x, y = float(u @ v), float(perp @ v)
            thetas[t], vs[t], us[t] = geo.theta, v, u
            out["loss"][t] = loss._value(geo.theta)
            out["sharpness"][t], out["lambda2"][t] = geo.sharpness, geo.lambda2
            out["x"][t], out["y"][t], out["alpha"][t], out["beta"][t] = x, y, alpha, beta
            out["udS"][t] = float(u @ geo.grad_sharpness)
            out["v_perp"][t] = float(np.linalg.norm(v - x * u - (y / beta) * perp))
            if t == steps:
                break
            z = geo.theta - eta * geo.grad
            proj = project(z, u)
            shift = z - proj.theta if displacement == "exact" else (eta * alpha / beta) * perp
            v = v - eta * (loss._hvp(geo.theta, v) + x * y * u + 0.5 * x * x * perp) + shift
    out = {name: values[:kept] for name, values in out.items()}  # the rows made
    notes = [stop] if stop else []
    if first_failure is not None:
        notes.append(f"a projection first missed its tolerance at step {first_failure}{why}")
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "projection": projection,
                  "tol": tol, limit_name: limit, "displacement": displacement}
    return ConstrainedResult(
        status=status, knob=limit_name,
        parameters=parameters,
        detail="; ".join(notes) or None,
        counters={"steps": max(kept - 1, 0), "projection_iterations": int(n_iter[:kept].sum())},
        eta=eta, projection=projection, displacement=displacement, trajectory=thetas[:kept],
        v=vs[:kept], u=us[:kept], loss=out["loss"],
        sharpness=out["sharpness"], lambda2=out["lambda2"], x=out["x"], y=out["y"],
        alpha=out["alpha"], beta=out["beta"], u_dot_grad_sharpness=out["udS"],
        v_perp=out["v_perp"], residuals=residuals[:kept], n_iter=n_iter[:kept],
        first_failure=first_failure)
