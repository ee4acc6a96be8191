"""The (η, batch size) phase diagram of SGD on a finite-sum loss (docs/stochastic.md).

:func:`sgd_sweep` runs :func:`~stabsim.maps.sgd.run_sgd` once per cell of a grid of step
sizes η and batch sizes b, from one start and one seed, and classifies each run as the GD
sweeps do (:func:`stabsim.sweep.classify.classify_gd`, the classes ``converged``,
``edge_of_stability``, ``catapult``, ``diverged``, ``unresolved``), with the relative
sharpness r_t = BS(θ_t) η/2 of the *batch* sharpness, the quantity the theory puts at 2/η
under SGD. Beside it each cell keeps the late-window mean of λ_max(∇²L) η/2, the full-batch
relative sharpness, which the theory puts below 1 and lower for smaller b.
:func:`sgd_cells` computes the cells of a sweep config with ``model = "sgd"``
(``stabsim.sweep.run_sweep``, ``stabsim sweep``); both run every cell through
:func:`_run_cell`, so a cell has the same numbers either way.

Statistics (per cell; the late window is the last ``ceil(window · n)`` of the n records)
-----------------------------------------------------------------------------------------
``initial_loss``, ``final_loss``, ``peak_loss``, ``late_peak_loss``
    The full loss at the start, at the last record, its maximum over the records, and over
    the late window.
``mean_rel_batch_sharpness``, ``max_rel_batch_sharpness``, ``late_max_rel_batch_sharpness``
    BS η/2: its late-window mean, its maximum over the run, its maximum over the late window.
``mean_rel_sharpness``
    λ_max η/2, its late-window mean.
``status``, ``steps_run``
    The run's ``Status`` code and the steps it took.
A run that stops before its first record has NaN statistics (and is ``diverged``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as check
from .._export import finish
from ..losses._base import require_loss
from ..maps.sgd import run_sgd
from .classify import classify_statistics, flag_attrs, odd_stride, status_attrs
from .gd_cells import fill_cells, run_cells
from .result import SweepResult

STATS = ("initial_loss", "final_loss", "peak_loss", "late_peak_loss",
         "mean_rel_batch_sharpness", "max_rel_batch_sharpness", "late_max_rel_batch_sharpness",
         "mean_rel_sharpness")


def _summary(result, window: float) -> dict:
    """The statistics of the module docstring from one run's records."""
    n = result.step.size
    if n == 0:
        return dict.fromkeys(STATS, np.nan)
    late = slice(n - max(1, math.ceil(window * n)), n)
    r_batch = result.batch_sharpness * result.eta / 2.0
    r_full = result.sharpness * result.eta / 2.0
    return {"initial_loss": result.loss[0], "final_loss": result.loss[-1],
            "peak_loss": result.loss.max(), "late_peak_loss": result.loss[late].max(),
            "mean_rel_batch_sharpness": r_batch[late].mean(),
            "max_rel_batch_sharpness": r_batch.max(),
            "late_max_rel_batch_sharpness": r_batch[late].max(),
            "mean_rel_sharpness": r_full[late].mean()}


def _run_cell(loss, theta0, eta, batch_size, batch_seed, bs_batches, *, steps, stride,
              window, replacement, batch_sharpness, divergence_norm):
    """One cell: ``run_sgd`` from ``theta0`` with batches drawn from ``batch_seed``.

    Returns
    -------
    stats : dict
        The statistics of the module docstring.
    status, steps_run : int
        The run's ``Status`` code and the steps it took.
    """
    result = run_sgd(loss, theta0, float(eta), steps, batch_size=batch_size,
                     replacement=replacement, seed=batch_seed, stride=stride,
                     batch_sharpness=batch_sharpness, bs_batches=bs_batches,
                     divergence_norm=divergence_norm)
    return _summary(result, window), int(result.status), result.counters["steps"]


def sgd_cells(config, values: dict) -> dict:
    """Statistics and classes of the cells of a sweep with ``model = "sgd"``.

    Parameters
    ----------
    config : SweepConfig
        ``steps``, ``stride``, ``window``, ``band``, ``divergence_norm``.
    values : dict
        The cells' parameter values (``grid.cell_values``): ``eta``, ``batch_size``,
        ``batch_seed``, ``bs_batches``, ``replacement``, ``batch_sharpness``, the start
        (``scale``, ``seed``, ``theta0``) and the loss.

    Returns
    -------
    dict
        Name → array over the cells: ``regime``, ``status``, ``steps_run`` and
        :data:`STATS`.
    """
    def run(loss, theta0, i):
        return _run_cell(loss, theta0, values["eta"][i], values["batch_size"][i],
                         values["batch_seed"][i], values["bs_batches"][i], steps=config.steps,
                         stride=config.stride, window=config.window,
                         replacement=values["replacement"],
                         batch_sharpness=values["batch_sharpness"],
                         divergence_norm=config.divergence_norm)

    return run_cells(config, values, STATS, run, "rel_batch_sharpness")


def sgd_sweep(loss, theta0, eta, batch_size, *, steps, stride=9, window=0.5, band=0.2,
              replacement=False, seed=0, batch_sharpness="auto", bs_batches=256,
              divergence_norm=1e6) -> SweepResult:
    """SGD over a grid of step sizes and batch sizes, each run classified.

    Parameters
    ----------
    loss : Loss
        A finite-sum loss (``loss.finite_sum``).
    theta0 : array_like, shape (d,)
        The start of every cell.
    eta : sequence of float
        Step sizes (> 0).
    batch_size : sequence of int
        Batch sizes (1 ≤ b, and b ≤ N without replacement).
    steps : int
        Steps per cell, ≥ 1.
    stride, replacement, seed, batch_sharpness, bs_batches, divergence_norm
        As for :func:`~stabsim.maps.sgd.run_sgd` (one seed for every cell); ``stride``
        odd (:func:`~stabsim.sweep.classify.odd_stride`).
    window : float
        Fraction (0, 1] of the records in the late window.
    band : float
        Half-width of the band around 1 of the late mean of BS η/2 for
        ``edge_of_stability`` (``classify_gd``). The default 0.2 is the size of the
        fluctuations of BS η/2 over a window (its standard deviation was 0.09–0.25 on the
        headline network, tests/test_sgd_claims.py).

    Returns
    -------
    SweepResult
        Its dataset (``to_xarray()``) has dimensions ``eta`` and ``batch_size``;
        ``regime`` (codes of :class:`~stabsim.sweep.classify.GDClass` with CF flag
        attributes), the statistics
        of the module docstring, ``status`` and ``steps_run``.
    """
    import xarray as xr

    require_loss(loss)
    etas = np.array([check.positive_float("eta", e) for e in np.atleast_1d(eta)])
    sizes = [check.nonnegative_int("batch_size", b, minimum=1)
             for b in np.atleast_1d(batch_size)]
    check.nonempty_axes(eta=etas, batch_size=sizes)
    steps = check.nonnegative_int("steps", steps, minimum=1)  # a cell that never ran has no class
    stride = odd_stride(stride, "sgd")
    window = check.fraction("window", window)
    band = check.positive_float("band", band)
    shape = (etas.size, len(sizes))
    stats, status, steps_run = fill_cells(shape, STATS, np.ndindex(shape), lambda ij: _run_cell(
        loss, theta0, etas[ij[0]], sizes[ij[1]], seed, bs_batches, steps=steps, stride=stride,
        window=window, replacement=replacement, batch_sharpness=batch_sharpness,
        divergence_norm=divergence_norm))
    regime = classify_statistics(stats, status, band, "rel_batch_sharpness")
    dims = ("eta", "batch_size")
    data = {"regime": (dims, regime, flag_attrs("gd")), "status": (dims, status, status_attrs()),
            "steps_run": (dims, steps_run)}
    data.update({name: (dims, value) for name, value in stats.items()})
    ds = xr.Dataset(data, coords={"eta": etas, "batch_size": sizes},
                    attrs={"model": "sgd", "n_examples": loss.n_examples})
    parameters = {"eta": etas, "batch_size": sizes, "steps": steps, "stride": stride,
                  "window": window, "band": band, "replacement": replacement, "seed": seed,
                  "batch_sharpness": batch_sharpness, "bs_batches": bs_batches,
                  "divergence_norm": divergence_norm}
    return SweepResult.of(finish(ds, parameters), "sgd", parameters, None)


__all__ = ["STATS", "sgd_cells", "sgd_sweep"]
