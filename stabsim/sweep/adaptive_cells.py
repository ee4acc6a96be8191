"""Sweeps of an adaptive method over (η, β₂), classified like the GD sweeps.

Each cell is one :func:`stabsim.maps.adaptive.run_adaptive` run; its relative sharpness is
``r_t = λ_max(P_t⁻¹H(w_t)) / threshold`` with the threshold of
:func:`~stabsim.maps.adaptive.adaptive_threshold` ((2 + 2β₁)/((1 − β₁)η); 2/η for the
RMSProps), and the cell is classified by :func:`stabsim.sweep.classify.classify_gd` from the
same statistics as a GD cell (``stabsim.sweep.gd_cells``): initial, final and peak loss,
the maximum of r, its late-window mean and maximum. Cells run one after the other in this
process (each is a compiled run; the grids this is meant for are small).

:func:`adaptive_sweep` sweeps a grid from Python; :func:`adaptive_cells` computes the cells
of a sweep config with ``model = "adaptive"`` (``stabsim.sweep.run_sweep``,
``stabsim sweep``). Both run every cell through :func:`_run_cell`, so a cell has the same
numbers either way.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as check
from .._status import Status
from ..losses import Loss
from ..losses._base import require_loss
from ..maps.adaptive import METHODS, run_adaptive
from .classify import classify_statistics, flag_attrs, odd_stride, status_attrs
from .gd_cells import fill_cells, run_cells
from .result import SweepResult

STATS = ("initial_loss", "final_loss", "peak_loss", "late_peak_loss", "max_rel_sharpness",
         "mean_rel_sharpness", "late_max_rel_sharpness")


def _cell(result, window):
    """The statistics of one run (NaN where it kept no record)."""
    n = len(result.step)
    if n == 0:
        return dict.fromkeys(STATS, np.nan)
    rel = result.effective_sharpness
    late = rel[n - max(1, math.ceil(window * n)):]
    return {"initial_loss": result.loss[0], "final_loss": result.loss[-1],
            "peak_loss": result.loss.max(),
            "late_peak_loss": result.loss[n - max(1, math.ceil(window * n)):].max(),
            "max_rel_sharpness": rel.max(),
            "mean_rel_sharpness": late.mean(), "late_max_rel_sharpness": late.max()}


def _run_cell(loss, theta0, eta, beta2, beta1, eps, *, method, steps, stride, window,
              divergence_norm):
    """One cell: ``run_adaptive`` from ``theta0`` (ν₀ = 0, no bias correction).

    Returns
    -------
    stats : dict
        The statistics of :func:`_cell`.
    status, steps_run : int
        The run's ``Status`` code and the steps it took.

    Raises
    ------
    ValueError
        When the run stopped at a singular preconditioner (eps = 0 and a zero entry of ν:
        ``AdaptiveResult.singular_preconditioner``), where r is undefined, at a point that
        is not an exact critical point with no momentum left (at one, ∇L = 0 and m = 0, the
        method stays there: the status is ZERO_GRADIENT, a converged cell).
    """
    result = run_adaptive(loss, theta0, float(eta), steps, method=method, beta1=float(beta1),
                          beta2=float(beta2), eps=float(eps), stride=stride,
                          divergence_norm=divergence_norm)
    status = int(result.status)
    # a singular P elsewhere than at an exact critical point (ZERO_GRADIENT, converged):
    # no r to classify, and nothing diverged
    if result.singular_preconditioner and result.status is not Status.ZERO_GRADIENT:
        raise ValueError(f"eps = 0 leaves the cell eta = {float(eta):g}, beta2 = "
                         f"{float(beta2):g} without a class: its preconditioner is "
                         f"singular ({result.message}); pass eps > 0")
    return _cell(result, window), status, result.counters["steps"]


def adaptive_cells(config, values: dict) -> dict:
    """Statistics and classes of the cells of a sweep with ``model = "adaptive"``.

    Parameters
    ----------
    config : SweepConfig
        ``method``, ``steps``, ``stride``, ``window``, ``band``, ``divergence_norm``.
    values : dict
        The cells' parameter values (``grid.cell_values``): ``eta``, ``beta2``, ``beta1``,
        ``eps``, the start (``scale``, ``seed``, ``theta0``) and the loss.

    Returns
    -------
    dict
        Name → array over the cells: ``regime``, ``status``, ``steps_run`` and
        :data:`STATS`.
    """
    def run(loss, theta0, i):
        return _run_cell(loss, theta0, values["eta"][i], values["beta2"][i], values["beta1"][i],
                         values["eps"][i], method=config.method, steps=config.steps,
                         stride=config.stride, window=config.window,
                         divergence_norm=config.divergence_norm)

    return run_cells(config, values, STATS, run)


def adaptive_sweep(loss: Loss, theta0, etas, beta2s, steps: int, *, method: str = "rmsprop",
                   beta1: float = 0.0, eps: float = 0.0, stride: int = 9,
                   window: float = 0.25, band: float = 0.1,
                   divergence_norm: float = 1e8) -> SweepResult:
    """Run ``method`` on every (η, β₂) of the grid from ``theta0`` and classify each run.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    etas, beta2s : array_like
        The grid's step sizes (> 0) and second-moment factors (in [0, 1)).
    steps : int
        Steps per cell.
    method, beta1, eps :
        As in :func:`~stabsim.maps.adaptive.run_adaptive` (ν starts at 0, no bias
        correction).
    stride : int
        Record every ``stride``-th step; odd (:func:`~stabsim.sweep.classify.odd_stride`:
        with an even stride every record falls on one side of the period-2 orbit at the
        edge of stability).
    window : float
        Fraction (0, 1] of the records that forms the late window.
    band : float
        Half-width of the edge-of-stability band of the late mean of r.

    Returns
    -------
    SweepResult
        Its dataset (``to_xarray()``) has dimensions ``eta`` and ``beta2``; ``regime`` (codes of
        :class:`~stabsim.sweep.classify.GDClass`), ``status``, ``steps_run`` and the
        statistics above.

    Raises
    ------
    ValueError
        With ``eps = 0``, at the first cell whose ν reaches a zero entry at a recorded step
        (a gradient entry 0 at the start, so in every cell, or, at β₂ = 0, at any step): P
        is singular there and r undefined, so the cell has no class (it would otherwise
        count as diverged, though nothing diverged); except at an exact critical point with
        no momentum left (∇L = 0, m = 0), where the method stays: ZERO_GRADIENT, converged.
    """
    import xarray as xr

    from .._export import finish

    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    etas = check.finite_array("etas", etas, ndim=1)
    beta2s = check.finite_array("beta2s", beta2s, ndim=1)
    check.nonempty_axes(etas=etas, beta2s=beta2s)
    stride = odd_stride(stride, "adaptive")
    if np.any(etas <= 0.0):
        raise ValueError("etas must be > 0")
    if np.any((beta2s < 0.0) | (beta2s >= 1.0)):  # ν₀ = 0: β₂ = 1 keeps ν at 0
        raise ValueError(f"beta2s must lie in [0, 1), got {beta2s.tolist()}")
    check.choice("method", method, METHODS)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    window = check.fraction("window", window)
    band = check.positive_float("band", band)
    shape = (etas.size, beta2s.size)
    stats, status, steps_run = fill_cells(shape, STATS, np.ndindex(shape), lambda ij: _run_cell(
        loss, theta0, etas[ij[0]], beta2s[ij[1]], beta1, eps, method=method, steps=steps,
        stride=stride, window=window, divergence_norm=divergence_norm))
    regime = classify_statistics(stats, status, band)
    dims = ("eta", "beta2")
    ds = xr.Dataset({"regime": (dims, regime, flag_attrs("gd")),
                     "status": (dims, status, status_attrs()),
                     "steps_run": (dims, steps_run),
                     **{name: (dims, value) for name, value in stats.items()}},
                    coords={"eta": etas, "beta2": beta2s})
    parameters = {"method": method, "beta1": beta1, "eps": eps, "steps": steps,
                  "stride": stride, "window": window, "band": band,
                  "divergence_norm": divergence_norm}
    return SweepResult.of(finish(ds, parameters), "adaptive", parameters, None)
