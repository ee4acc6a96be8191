"""Figures of the reduced (x, y) map: phase portrait and time series with phase bands."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_records, require_result

PHASE_NAMES = {1: "I sharpening", 2: "II blow-up", 3: "III self-stabilisation",
               4: "IV return"}
PHASE_COLOURS = {1: "tab:blue", 2: "tab:orange", 3: "tab:red", 4: "tab:green"}


def plot_reduced_phase_portrait(result, *, ax=None):
    """The orbit in the (x, y) plane, each state coloured by its phase (I–IV).

    The lines ``x = ±δ`` (``δ² = 2α/β``) and ``y = 0`` bound the phases.

    Parameters
    ----------
    result : stabsim.maps.reduced.ReducedResult
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the run has no records (it left the map's domain at its start).
    """
    require_result(result, "stabsim.maps:ReducedResult")
    require_records(result)
    fig, ax = figure_and_axes(ax, figsize=(5.5, 4.5))
    ax.plot(result.x, result.y, color="0.8", lw=0.5, zorder=1)
    for code, name in PHASE_NAMES.items():
        sel = result.phase == code
        if np.any(sel):
            ax.scatter(result.x[sel], result.y[sel], s=3, color=PHASE_COLOURS[code],
                       label=name, zorder=2)
    delta = np.sqrt(result.delta2)
    for xv in (-delta, delta):
        ax.axvline(xv, color="k", lw=0.7, ls="--")
    ax.axhline(0.0, color="k", lw=0.7, ls="--")
    ax.set_xlabel("x (displacement along the top eigenvector)")
    ax.set_ylabel("y (≈ S − 2/η)")
    ax.set_title(f"reduced map, η = {result.parameters['eta']:.3g}, δ = {delta:.3g}")
    ax.legend(loc="best", fontsize="small", markerscale=3)
    return fig


def _phase_bands(ax, steps, phase):
    """Shade ``ax`` behind each run of equal phase labels."""
    if phase.size == 0:
        return
    cuts = np.flatnonzero(np.diff(phase)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [phase.size]])
    for s, e in zip(starts, ends, strict=True):
        right = steps[e] if e < steps.size else steps[-1]
        ax.axvspan(steps[s], right, color=PHASE_COLOURS[int(phase[s])], alpha=0.15, lw=0)


def plot_reduced_series(result, *, axes=None):
    """x and y against step, over coloured bands marking the phases I–IV.

    Parameters
    ----------
    result : stabsim.maps.reduced.ReducedResult
    axes : sequence of two matplotlib Axes, optional
        Where to draw (x on the first, y on the second); a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the run has no records (it left the map's domain at its start).
    """
    require_result(result, "stabsim.maps:ReducedResult")
    require_records(result)
    fig, axes = figure_and_axes(axes, 2, sharex=True, figsize=(7.0, 5.0))
    x_ax, y_ax = axes
    for ax in axes:
        _phase_bands(ax, result.step, result.phase)
    delta = np.sqrt(result.delta2)
    x_ax.plot(result.step, result.x, color="k", lw=0.7)
    for xv in (-delta, delta):
        x_ax.axhline(xv, color="0.4", lw=0.7, ls="--")
    x_ax.set_ylabel("x_t")
    y_ax.plot(result.step, result.y, color="k", lw=0.7)
    y_ax.axhline(0.0, color="0.4", lw=0.7, ls="--")
    y_ax.set_ylabel("y_t")
    y_ax.set_xlabel("step t")
    x_ax.set_title(f"reduced map ({result.status.name}); bands: phases I–IV")
    return fig
