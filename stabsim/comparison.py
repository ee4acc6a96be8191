"""GD and every prediction of the theory in lockstep, from one start (docs/theory.md §1–§3).

:func:`compare` runs, from θ_0 and η,

- exact GD (the truth), and gradient flow and the central flow from θ_0 (time in steps);
- from the first step t_c where GD's sharpness reaches 2/η: the constrained trajectory θ†
  and the predicted θ† + v (started at GD's iterate θ_{t_c}, so v_{t_c} = θ_{t_c} − θ†_{t_c});
- the reduced (x, y) map from GD's (x, y) at t_c, with α, β measured at the reference point θ*
  (∇S⊥ convention by default, as in the paper's code; ``projected=False`` uses ∇S), against
  GD's x_t = u*·(θ_t − θ*) and y_t. θ* is where GD's sharpness rises through 2/η, so this
  part needs S(θ₀) < 2/η: from a start at or past the threshold (t_c = 0) its status is
  UNDEFINED (FLAT_SHARPNESS where β = 0 at θ₀ besides) and its records NaN, while θ† and
  the flows still run.

It returns one :class:`Comparison` with per-step distances, losses and sharpnesses, and the
validity diagnostics of the theory: the margin 2/η − λ2 at θ† (a second eigenvalue at the
threshold breaks the one-direction picture), |v⊥|/δ (the unmodelled off-axis part of v) and
α > 0 (progressive sharpening). When one fails, a :class:`TheoryAssumptionWarning` is issued.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import _validate as check
from ._export import finish
from ._norm import norm
from ._result import Result, combine_parts
from ._status import FlatSharpnessError, Status, UndefinedError
from .flows.central import central_flow
from .flows.gradient import gradient_flow
from .losses import Loss
from .losses._base import require_loss
from .losses._compile_ahead import compile_derivatives_elsewhere
from .maps.constrained import constrained_trajectory
from .maps.gd import measured_top_pairs, reference_point, run_gd
from .maps.projection import PROJECTION_METHODS, projection_budget
from .maps.reduced import run_reduced
from .spectral import eos_constants, pairs_measured_by, tracked_top_eigenpair

#: default budget of each flow's right-hand sides in :func:`compare`, per step of its
#: horizon: the flows take 8 to 71 a step on the models of the tests (gradient flow) and
#: about 12 (central flow); a stiff flow far past 2/η would take millions
RHS_EVALS_PER_STEP = 1000


class StabsimWarning(UserWarning):
    """Base class of stabsim's warnings."""


class TheoryAssumptionWarning(StabsimWarning):
    """An assumption of the self-stabilisation theory fails along the compared run."""


@dataclasses.dataclass(repr=False)
class Comparison(Result):
    """Per-step records of GD and the predictions (arrays of length ``steps + 1``).

    Quantities of θ†, θ† + v and the reduced map are NaN before ``crossing_step``. The
    status combines the parts' (:func:`stabsim._result.combine_parts`): OK if every part
    is, else the most severe, with each failed part's message (naming its exhausted knob)
    in ``message``. ``counters``: ``steps`` (GD steps made), ``gradient_flow_rhs_evals``,
    ``central_flow_rhs_evals``, ``central_flow_switches`` and ``projection_iterations``
    (of θ†; 0 when GD never reached 2/η).

    Attributes
    ----------
    gd_loss, gd_sharpness, gd_lambda2 : GD's L, S and λ2.
    dagger_loss, dagger_sharpness : L(θ†), S(θ†).
    pred_loss, pred_sharpness : L(θ†) + x²/η and S(θ†) + y + (u·∇S)x.
    dist_dagger, dist_pred : |θ_GD − θ†| and |θ_GD − (θ† + v)|.
    gf_loss, gf_sharpness, dist_gf : gradient flow, and |θ_GD − θ_GF|.
    cf_loss, cf_sharpness, cf_sigma2, cf_pred_loss, dist_cf : central flow w, its σ², the
        predicted average loss L(w) + σ²/η, and |θ_GD − w|.
    gd_x, pred_x : x_t = u·(θ_t − θ†_t) of GD and the predicted x_t = u·v_t.
    gd_x_star, gd_y_star : GD's x, y relative to θ* (u* and ∇S⊥* at θ*, or ∇S* when not
        ``projected``); NaN where θ* is undefined (S(θ₀) ≥ 2/η: no crossing from below).
    reduced_x, reduced_y : the reduced map from (gd_x_star, gd_y_star) at the crossing. NaN
        where it is undefined, with the reason in the message: ``statuses["reduced_map"]``
        UNDEFINED from S(θ₀) ≥ 2/η, where no centre of the oscillation lies near the
        crossing, or where α* ≤ 0 (as at a minimiser with S = 2/η, where GD converges);
        FLAT_SHARPNESS where β* = 0 (or β = 0 at such a θ₀).
    lambda2_margin : 2/η − λ2(θ†_t).
    vperp_over_delta : |v⊥_t|/δ_t (NaN where α_t ≤ 0).
    alpha : α_t at θ†_t (∇S⊥ convention).
    alpha_star, beta_star : α, β at θ* (in the convention of ``projected``; NaN where θ* or
        β* = 0 leaves them undefined).
    projected : bool
        Whether y*, α* and β* use ∇S⊥ (the default) or ∇S.
    statuses : dict of part name → Status.
    parameters : dict
        The arguments of the :func:`compare` call (the loss by its ``repr``).
    """

    eta: float
    step: np.ndarray
    crossing_step: int | None
    projection: str
    gd_loss: np.ndarray
    gd_sharpness: np.ndarray
    gd_lambda2: np.ndarray
    dagger_loss: np.ndarray
    dagger_sharpness: np.ndarray
    pred_loss: np.ndarray
    pred_sharpness: np.ndarray
    dist_dagger: np.ndarray
    dist_pred: np.ndarray
    gf_loss: np.ndarray
    gf_sharpness: np.ndarray
    dist_gf: np.ndarray
    cf_loss: np.ndarray
    cf_sharpness: np.ndarray
    cf_sigma2: np.ndarray
    cf_pred_loss: np.ndarray
    dist_cf: np.ndarray
    gd_x: np.ndarray
    pred_x: np.ndarray
    gd_x_star: np.ndarray
    gd_y_star: np.ndarray
    reduced_x: np.ndarray
    reduced_y: np.ndarray
    lambda2_margin: np.ndarray
    vperp_over_delta: np.ndarray
    alpha: np.ndarray
    alpha_star: float
    beta_star: float
    projected: bool
    statuses: dict
    warnings: list

    def headline(self) -> dict:
        return {"eta": self.eta, "steps": self.step.shape[0] - 1,
                "crossing_step": self.crossing_step}

    def whole_cycles(self) -> slice:
        """Steps [start, end) from the first to the last EoS cycle boundary after the crossing
        (:func:`whole_cycles` of GD's sharpness).

        Raises
        ------
        ValueError
            If GD never reached 2/η, or fewer than one whole cycle follows the crossing
            before GD's sharpness is undefined (GD stopped: the message names the parts that
            stopped).
        """
        boundaries = self._boundaries((self.gd_sharpness,))
        return slice(int(boundaries[0]), int(boundaries[-1]))

    def cycle_averages(self) -> dict:
        """Time averages over whole EoS cycles of what the theory predicts.

        The cycles are those of :meth:`whole_cycles`, up to the last boundary before the
        first step where a record they need is undefined (NaN: θ†, the central flow or
        gradient flow stopped early, see ``statuses``), so that no average is taken over
        a stopped part.

        Returns
        -------
        dict
            ``excess_loss`` mean of L(θ_t) − L(w(t)) (GD over the central flow);
            ``predicted_excess_loss`` mean of σ²/η (docs/theory.md §3); ``mean_x2`` and
            ``mean_sigma2`` (σ² = δ²); ``rms_dist_dagger``, ``rms_dist_cf``, ``rms_dist_gf``
            the RMS distances of GD to θ†, to the central flow and to gradient flow;
            ``start`` and ``end`` the steps [start, end) averaged over.

        Raises
        ------
        ValueError
            If GD never reached 2/η, or fewer than one whole cycle follows the crossing
            before the first undefined record (the message names the parts that stopped).
        """
        boundaries = self._boundaries((self.gd_sharpness, self.gd_loss, self.cf_loss,
                                       self.cf_sigma2, self.gd_x, self.dist_dagger,
                                       self.dist_cf, self.dist_gf))
        window = slice(int(boundaries[0]), int(boundaries[-1]))

        def rms(values):
            return float(np.sqrt(np.mean(values[window] ** 2)))

        return {
            "excess_loss": float(np.mean(self.gd_loss[window] - self.cf_loss[window])),
            # the central flow's prediction E[L] = L(w) + σ²/η, as the flow gives it
            "predicted_excess_loss": float(np.mean(self.cf_pred_loss[window]
                                                   - self.cf_loss[window])),
            "mean_x2": float(np.mean(self.gd_x[window] ** 2)),
            "mean_sigma2": float(np.mean(self.cf_sigma2[window])),
            "rms_dist_dagger": rms(self.dist_dagger),
            "rms_dist_cf": rms(self.dist_cf),
            "rms_dist_gf": rms(self.dist_gf),
            "start": window.start,
            "end": window.stop,
        }

    def _boundaries(self, records) -> np.ndarray:
        """The EoS cycle boundaries (:func:`cycle_boundaries`) up to the first step from the
        crossing on where one of ``records`` is undefined (NaN: a part stopped), or raise
        naming the parts that stopped when fewer than two are left."""
        first = None  # the first step from the crossing on with an undefined record
        if self.crossing_step is not None:
            tail = [np.isfinite(r[self.crossing_step:]) for r in records]
            undefined = np.flatnonzero(~np.all(tail, axis=0))
            first = self.crossing_step + int(undefined[0]) if undefined.size else None
        try:
            boundaries = cycle_boundaries(self.gd_sharpness, self.eta, self.crossing_step)
        except ValueError:
            if first is None:  # nothing stopped: too short a run, or no crossing
                raise
            boundaries = np.empty(0, dtype=int)
        if first is not None:
            boundaries = boundaries[boundaries <= first]
            if boundaries.size < 2:
                stopped = [f"{part} ({status.name})" for part, status in self.statuses.items()
                           if status != Status.OK] or ["none"]
                raise ValueError(
                    f"the records are undefined from step {first}, before one whole EoS "
                    f"cycle after the crossing ended; parts that stopped: "
                    f"{', '.join(stopped)}")
        return boundaries

    def to_xarray(self):
        """Every per-step record as an ``xarray.Dataset`` with dimension ``step``."""
        import xarray as xr

        skip = {"eta", "step", "crossing_step", "projection", "alpha_star", "beta_star",
                "projected", "statuses", "warnings", "status", "counters", "parameters",
                "knob", "detail"}
        data = {f.name: ("step", getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in skip}
        attrs = {"eta": self.eta, "projection": self.projection, **self._export_attrs(),
                 "alpha_star": self.alpha_star,
                 "beta_star": self.beta_star,
                 "convention": "projected (grad S perp)" if self.projected else "grad S",
                 "warnings": "; ".join(self.warnings)}
        if self.crossing_step is not None:
            attrs["crossing_step"] = self.crossing_step
        ds = xr.Dataset(data, coords={"step": self.step}, attrs=attrs)
        return finish(ds, self.parameters)


def whole_cycles(sharpness, eta: float, crossing_step: int | None) -> slice:
    """Steps [start, end) from the first to the last EoS cycle boundary after the crossing.

    A cycle starts where the sharpness averaged over two steps, ½(S_t + S_{t+1}) (which
    removes the period-2 part (u·∇S)x_t), rises through 2/η: phase I → II of docs/theory.md
    §1. Time averages that the theory predicts (mean x² = δ², the central flow's L + σ²/η)
    hold over whole cycles, so compare them only over this window.

    Parameters
    ----------
    sharpness : ndarray, shape (n,)
        GD's sharpness S_t at steps 0 … n − 1.
    eta : float
    crossing_step : int or None
        The first step with S ≥ 2/η (None: GD never reached it).

    Raises
    ------
    ValueError
        If GD never reached 2/η, or fewer than one whole cycle follows the crossing.
    """
    boundaries = cycle_boundaries(sharpness, eta, crossing_step)
    return slice(int(boundaries[0]), int(boundaries[-1]))


def cycle_boundaries(sharpness, eta: float, crossing_step: int | None) -> np.ndarray:
    """The steps after the crossing where ½(S_t + S_{t+1}) rises through 2/η (at least two:
    the boundaries of :func:`whole_cycles`, which has the parameters and raises the same)."""
    if crossing_step is None:
        raise ValueError("GD never reached 2/eta: there are no EoS cycles")
    sharpness = np.asarray(sharpness, dtype=float)
    excess = 0.5 * (sharpness[1:] + sharpness[:-1]) - 2.0 / eta
    rises = np.flatnonzero((excess[:-1] <= 0) & (excess[1:] > 0)) + 1
    rises = rises[rises > crossing_step]
    if rises.size < 2:
        raise ValueError("fewer than one whole EoS cycle after the crossing: run longer")
    return rises


def _sharpness_along(loss: Loss, states: np.ndarray) -> list[float]:
    """S at each of a trajectory's ``states``, each measurement warm-started from the top
    eigenvector of the one before (:func:`~stabsim.spectral.tracked_top_eigenpair`)."""
    sharpness, u = [], None
    for w in states:
        s, u = tracked_top_eigenpair(loss, w, u)
        sharpness.append(s)
    return sharpness


# the flows' and θ†'s top pairs measured by GD's engine, which the GD run compiles first
@pairs_measured_by(measured_top_pairs)
def compare(loss: Loss, theta0, eta: float, steps: int, *, projection: str = "euclidean",
            tol: float = 1e-10, max_iter: int | None = None, passes: int | None = None,
            vperp_limit: float = 1.0, projected: bool = True, warn: bool = True,
            max_rhs_evals: int | None = None, divergence_norm: float = 1e8,
            eig_max_products: int = 1000, max_switches: int = 100) -> Comparison:
    """Run GD and the theory's predictions in lockstep (module docstring).

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
    steps : int
        GD steps; every record has ``steps + 1`` entries (step 0 is the start).
    projection : {"euclidean", "paper"}
        Projection onto M used by θ† (see :func:`~stabsim.maps.projection.proj_M`).
    tol : float
        Passed to the projection.
    max_iter, passes : int, optional
        The budgets of the Euclidean and of the paper's projection, as in
        :func:`~stabsim.maps.projection.proj_M` (defaults 50 and 3); each is refused with
        the projection that does not use it.
    vperp_limit : float
        Warn when |v⊥|/δ exceeds this (the theory needs v⊥ = O(δ)).
    projected : bool
        Convention of the constants at θ* and of GD's y*: ∇S⊥ (default, docs/theory.md §1) or ∇S.
        θ† and θ† + v always use ∇S⊥ (the paper's vector form).
    warn : bool
        Issue :class:`TheoryAssumptionWarning` when an assumption fails (the messages are
        kept in ``Comparison.warnings`` either way).
    max_rhs_evals : int, optional
        Budget of right-hand-side evaluations of each flow (gradient and central); default
        :data:`RHS_EVALS_PER_STEP` per step of the horizon. A flow that exhausts it ends
        with status MAX_STEPS and keeps what it reached.
    divergence_norm : float
        |θ| at which GD and both flows stop with status DIVERGED; ``theta0`` must lie below
        it.
    eig_max_products : int
        Budget of Lanczos products of each of GD's measurements (as :func:`run_gd`'s).
    max_switches : int
        Budget of the central flow's switches between its stable and its EoS branch (as
        :func:`central_flow`'s).
    """
    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    warn = check.boolean("warn", warn)
    check.choice("projection", projection, PROJECTION_METHODS)
    tol = check.positive_float("tol", tol)  # before any run, crossing or not
    limit_name, limit = projection_budget(projection, max_iter, passes)
    vperp_limit = check.positive_float("vperp_limit", vperp_limit)
    max_rhs_evals = check.budget("max_rhs_evals", max_rhs_evals)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    eig_max_products = check.nonnegative_int("eig_max_products", eig_max_products, minimum=1)
    max_switches = check.nonnegative_int("max_switches", max_switches)
    if norm(theta0) >= divergence_norm:  # the flows refuse such a start, naming their own
        raise ValueError(f"theta0 has norm {norm(theta0):.6g}, not below divergence_norm = "
                         f"{divergence_norm:.6g}, the norm at which GD and the flows stop as "
                         "diverged: pass a larger `divergence_norm`")
    if not isinstance(projected, bool):
        raise TypeError(f"projected must be a bool, got {type(projected).__name__}")
    n = steps + 1
    # the iterates and about 40 per-step records of GD, the flows and the predictions
    check.affordable(8 * n * (loss.dim + 40), f"the records of steps = {steps}", "lower `steps`")
    compile_derivatives_elsewhere(loss)  # while GD's engine compiles here

    gd = run_gd(loss, theta0, eta, steps, top_k=min(2, loss.dim), record_trajectory=True,
                divergence_norm=divergence_norm, eig_max_products=eig_max_products)
    kept = gd.trajectory.shape[0]
    iterates = np.full((n, loss.dim), np.nan)
    iterates[:kept] = gd.trajectory
    # the predictions run over the steps GD made: past a GD that stopped (diverged, say)
    # there is nothing to compare with, and a flow far past 2/η is stiff (on the minimalist
    # loss near its saddle at η = 5065, 60 steps of gradient flow took 2.3 million
    # evaluations where GD diverged at step 4)
    horizon = steps if gd.success else max(kept - 1, 1)
    budget = max_rhs_evals or RHS_EVALS_PER_STEP * horizon
    gf = gradient_flow(loss, theta0, eta, horizon, stride=1.0, max_rhs_evals=budget,
                       divergence_norm=divergence_norm)
    cf = central_flow(loss, theta0, eta, horizon, stride=1.0, max_rhs_evals=budget,
                      divergence_norm=divergence_norm, max_switches=max_switches)
    parts = {"gd": gd, "gradient_flow": gf, "central_flow": cf}

    def padded(values, start=0):
        out = np.full(n, np.nan)
        values = np.asarray(values, dtype=float)
        out[start:start + values.shape[0]] = values[:n - start]
        return out

    def distance(states, start=0):
        with np.errstate(over="ignore"):  # inf where a prediction overflowed (its status says)
            return padded(np.linalg.norm(iterates[start:start + states.shape[0]]
                                         - states[:n - start], axis=1), start)

    gf_sharp = _sharpness_along(loss, gf.trajectory)
    rec = {
        "gd_loss": padded(gd.loss), "gd_sharpness": padded(gd.sharpness[:, 0]),
        "gd_lambda2": padded(gd.sharpness[:, 1] if loss.dim > 1 else np.full(kept, -np.inf)),
        "gf_loss": padded([loss._value(w) for w in gf.trajectory]),
        "gf_sharpness": padded(gf_sharp), "dist_gf": distance(gf.trajectory),
        "cf_loss": padded(cf.loss), "cf_sharpness": padded(cf.sharpness),
        "cf_sigma2": padded(cf.sigma2), "cf_pred_loss": padded(cf.predicted_loss),
        "dist_cf": distance(cf.trajectory),
    }
    names = ("dagger_loss", "dagger_sharpness", "pred_loss", "pred_sharpness", "dist_dagger",
             "dist_pred", "gd_x", "pred_x", "gd_x_star", "gd_y_star", "reduced_x",
             "reduced_y", "lambda2_margin", "vperp_over_delta", "alpha")
    rec.update({name: np.full(n, np.nan) for name in names})
    messages = []
    alpha_star = beta_star = np.nan
    tc = gd.crossing_step
    if tc is None or tc >= kept:
        messages.append("GD never reached the stability threshold 2/eta: the EoS predictions "
                        "were not run (raise `steps` or `eta`)")
    else:
        dag = constrained_trajectory(loss, iterates[tc], eta, horizon - tc, projection=projection,
                                     tol=tol, **{limit_name: limit})
        parts["constrained"] = dag
        m = min(iterates.shape[0] - tc, dag.trajectory.shape[0])  # rows both runs made
        gd_window = iterates[tc:tc + m]
        rec.update({
            "dagger_loss": padded(dag.loss, tc), "dagger_sharpness": padded(dag.sharpness, tc),
            "pred_loss": padded(dag.predicted_loss, tc),
            "pred_sharpness": padded(dag.predicted_sharpness, tc),
            "dist_dagger": distance(dag.trajectory, tc),
            "dist_pred": distance(dag.predicted_theta, tc),
            # along θ†'s own u, whose sign pred_x = u·v has (a u of its own had the opposite
            # sign at times: gd_x and pred_x anti-phased from the crossing on)
            "gd_x": padded(np.einsum("ij,ij->i", gd_window - dag.trajectory[:m], dag.u[:m]),
                           tc),
            "pred_x": padded(dag.x, tc), "alpha": padded(dag.alpha, tc),
            "lambda2_margin": padded(2.0 / eta - dag.lambda2, tc),
            "vperp_over_delta": padded(_vperp_over_delta(dag), tc),
        })
        const = None
        if tc == 0:  # no crossing from below: θ* is undefined
            parts["reduced_map"] = _no_reference_point(loss, theta0, gd.sharpness[0, 0], eta,
                                                       projected)
        else:
            try:
                star = reference_point(loss, gd)
                const = eos_constants(loss, star, projected=projected)
            except UndefinedError as error:  # no centre of the oscillation at 2/η nearby
                parts["reduced_map"] = Result(Status.UNDEFINED, {}, {}, detail=str(error))
            except FlatSharpnessError as error:  # β* = 0: x*, y* and the reduced map undefined
                parts["reduced_map"] = Result(Status.FLAT_SHARPNESS, {}, {},
                                              detail=f"at the reference point θ*: {error}")
        if const is not None:
            alpha_star, beta_star = const.alpha, const.beta
            offset = iterates - star
            rec["gd_x_star"], rec["gd_y_star"] = offset @ const.u, offset @ const.direction
            why = _no_sharpening(loss, star, alpha_star, eta)
            if why is not None:  # the reduced map is defined for α > 0 only
                parts["reduced_map"] = Result(Status.UNDEFINED, {}, {}, detail=why)
        if "reduced_map" not in parts:
            red = run_reduced(rec["gd_x_star"][tc], rec["gd_y_star"][tc], eta, alpha_star,
                              beta_star, horizon - tc)
            parts["reduced_map"] = red
            rec["reduced_x"], rec["reduced_y"] = padded(red.x, tc), padded(red.y, tc)
        messages += _diagnose(rec, alpha_star, vperp_limit)
    if warn:
        for text in messages:
            warnings.warn(text, TheoryAssumptionWarning, stacklevel=2)
    status, knob, detail = combine_parts(parts)
    dag = parts.get("constrained")
    counters = {"steps": gd.counters["steps"],
                "gradient_flow_rhs_evals": gf.counters["rhs_evals"],
                "central_flow_rhs_evals": cf.counters["rhs_evals"],
                "central_flow_switches": cf.counters["switches"],
                "projection_iterations": dag.counters["projection_iterations"] if dag else 0}
    return Comparison(status=status, knob=knob, detail=detail, counters=counters,
                      eta=eta, step=np.arange(n), crossing_step=tc, projection=projection,
                      alpha_star=alpha_star, beta_star=beta_star, projected=projected,
                      statuses={name: part.status for name, part in parts.items()},
                      warnings=messages,
                      parameters={"loss": loss.provenance, "theta0": theta0.tolist(), "eta": eta,
                                  "steps": steps, "projection": projection, "tol": tol,
                                  limit_name: limit, "vperp_limit": vperp_limit,
                                  "projected": projected, "divergence_norm": divergence_norm,
                                  "eig_max_products": eig_max_products,
                                  "max_switches": max_switches},
                      **rec)


def _no_reference_point(loss, theta0, sharpness0, eta, projected) -> Result:
    """The reduced map's part from S(θ₀) ≥ 2/η: UNDEFINED, as θ* (where GD's sharpness rises
    through 2/η) is; FLAT_SHARPNESS where β = 0 at θ₀ besides (as the central flow and θ†
    report from such a start), with both reasons."""
    why = (f"S(θ₀) = {sharpness0:.8g} ≥ 2/η = {2.0 / eta:.8g}: GD starts at or past the "
           "threshold and never crosses it from below, so the reference point θ* (where GD's "
           "sharpness first rises to 2/η, docs/theory.md §1), x*, y*, α*, β* and the reduced "
           "map are undefined")
    try:
        eos_constants(loss, theta0, projected=projected)
    except FlatSharpnessError as error:
        return Result(Status.FLAT_SHARPNESS, {}, {}, detail=f"{why}; at θ₀ besides, {error}")
    return Result(Status.UNDEFINED, {}, {}, detail=f"{why}; start below 2/η (a smaller `eta`)")


def _no_sharpening(loss, star, alpha, eta) -> str | None:
    """Why the reduced map from θ* is undefined for want of progressive sharpening, or None:
    α* = −∇L·∇S⊥ ≤ 0, or θ* a critical point to round-off, where α*'s sign is round-off too
    (GD settling on a minimiser with S = 2/η: α* came out 4.6e-32, −1e-31 or −0.0 for
    nearby η). Near a minimiser ∇L = ∇²L (θ − θ_min) is formed from terms of size about
    S|θ|, S = 2/η at θ*, each entry a sum of d of them: |∇L(θ*)| up to d ε S max(1, |θ*|)
    is rounding. A centre of GD's oscillation away from a minimiser has |∇L| orders above."""
    grad_norm = float(np.linalg.norm(loss.grad(star)))
    rounding = loss.dim * np.finfo(float).eps * (2.0 / eta) * max(1.0, np.linalg.norm(star))
    if alpha > 0 and grad_norm > rounding:
        return None
    why = (f"α* = {alpha:.3g} ≤ 0" if not alpha > 0 else
           f"θ* is a critical point to round-off (|∇L(θ*)| = {grad_norm:.3g} ≤ {rounding:.3g}), "
           f"so α* = {alpha:.3g} is round-off")
    return (f"{why} at the reference point θ*: no progressive sharpening there, and the "
            "reduced map is defined for α > 0 only")


def _vperp_over_delta(dag) -> np.ndarray:
    """|v⊥|/δ where α > 0, NaN elsewhere (δ is undefined without progressive sharpening)."""
    out = np.full(dag.alpha.shape, np.nan)
    ok = dag.alpha > 0
    out[ok] = dag.v_perp[ok] / np.sqrt(dag.delta2[ok])
    return out


def _diagnose(rec, alpha_star, vperp_limit) -> list[str]:
    """Messages for the theory's assumptions that fail along the run."""
    out = []
    if alpha_star <= 0:  # NaN when β* = 0: that is reported as a status, not as α ≤ 0
        out.append(f"alpha = {alpha_star:.3g} <= 0 at the reference point: no progressive "
                   "sharpening, the four-phase picture does not apply")
    margin = rec["lambda2_margin"]
    if np.nanmin(margin, initial=np.inf) <= 0:
        first = int(np.flatnonzero(margin <= 0)[0])  # NaN (before the crossing) is not <= 0
        out.append(f"a second Hessian eigenvalue reached 2/eta along theta-dagger (first at "
                   f"step {first}): more than one critical direction, the one-direction theory "
                   "and the central flow with scalar sigma^2 do not apply")
    ratio = rec["vperp_over_delta"]
    if np.nanmax(ratio, initial=0.0) > vperp_limit:
        out.append(f"|v_perp|/delta reached {np.nanmax(ratio):.3g} > {vperp_limit:g}: the "
                   "off-axis part of v is not O(delta), the unmodelled term "
                   "1/2 D3L[u, v_perp, v_perp] matters")
    return out
