"""Sweeps of an adaptive method over (η, β₂), classified like the GD sweeps.

Each cell is one :func:`stabsim.maps.adaptive.run_adaptive` run; its relative sharpness is
``r_t = λ_max(P_t⁻¹H(w_t)) / threshold`` with the threshold of
:func:`~stabsim.maps.adaptive.adaptive_threshold` ((2 + 2β₁)/((1 − β₁)η); 2/η for the
RMSProps), and the cell is classified by :func:`stabsim.sweep.classify.classify_gd` from the
same statistics as a GD cell (``stabsim.sweep.gd_cells``): initial, final and peak loss,
the maximum of r, its late-window mean and maximum. Cells run one after the other in this
process (each is a compiled run; the grids this is meant for are small).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as check
from ..losses import Loss
from ..losses._base import require_loss
from ..maps.adaptive import METHODS, run_adaptive
from .classify import classify_gd, flag_attrs
from .result import SweepResult


def _cell(result, window):
    """The statistics of one run (NaN where it kept no record)."""
    n = len(result.step)
    if n == 0:
        return dict.fromkeys(("initial_loss", "final_loss", "peak_loss", "max_rel_sharpness",
                              "mean_rel_sharpness", "late_max_rel_sharpness"), np.nan)
    rel = result.effective_sharpness
    late = rel[n - max(1, math.ceil(window * n)):]
    return {"initial_loss": result.loss[0], "final_loss": result.loss[-1],
            "peak_loss": result.loss.max(), "max_rel_sharpness": rel.max(),
            "mean_rel_sharpness": late.mean(), "late_max_rel_sharpness": late.max()}


def adaptive_sweep(loss: Loss, theta0, etas, beta2s, steps: int, *, method: str = "rmsprop",
                   beta1: float = 0.0, eps: float = 0.0, stride: int = 10,
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
        Record every ``stride``-th step.
    window : float
        Fraction of the records that forms the late window.
    band : float
        Half-width of the edge-of-stability band of the late mean of r.

    Returns
    -------
    SweepResult
        Its dataset (``to_xarray()``) has dimensions ``eta`` and ``beta2``; ``regime`` (codes of
        :class:`~stabsim.sweep.classify.GDClass`), ``status``, ``steps_run`` and the
        statistics above.
    """
    import xarray as xr

    from .._export import finish

    require_loss(loss)
    theta0 = loss.check_point(theta0, "theta0")
    etas = check.finite_array("etas", etas, ndim=1)
    beta2s = check.finite_array("beta2s", beta2s, ndim=1)
    if np.any(etas <= 0.0):
        raise ValueError("etas must be > 0")
    check.choice("method", method, METHODS)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    window = check.positive_float("window", window)
    band = check.positive_float("band", band)
    shape = (etas.size, beta2s.size)
    stats = {name: np.full(shape, np.nan) for name in (
        "initial_loss", "final_loss", "peak_loss", "max_rel_sharpness", "mean_rel_sharpness",
        "late_max_rel_sharpness")}
    status = np.zeros(shape, np.int8)
    steps_run = np.zeros(shape, np.int64)
    for i, eta in enumerate(etas):
        for j, beta2 in enumerate(beta2s):
            result = run_adaptive(loss, theta0, float(eta), steps, method=method, beta1=beta1,
                                  beta2=float(beta2), eps=eps, stride=stride,
                                  divergence_norm=divergence_norm)
            for name, value in _cell(result, window).items():
                stats[name][i, j] = value
            status[i, j] = int(result.status)
            steps_run[i, j] = result.counters["steps"]
    regime = classify_gd(status, stats["initial_loss"], stats["final_loss"],
                         stats["peak_loss"], stats["max_rel_sharpness"],
                         stats["mean_rel_sharpness"], band,
                         late_max_rel=stats["late_max_rel_sharpness"])
    dims = ("eta", "beta2")
    ds = xr.Dataset({"regime": (dims, regime, flag_attrs("gd")), "status": (dims, status),
                     "steps_run": (dims, steps_run),
                     **{name: (dims, value) for name, value in stats.items()}},
                    coords={"eta": etas, "beta2": beta2s})
    parameters = {"method": method, "beta1": beta1, "eps": eps, "steps": steps,
                  "stride": stride, "window": window, "band": band}
    return SweepResult.of(finish(ds, parameters), "adaptive", parameters, None)
