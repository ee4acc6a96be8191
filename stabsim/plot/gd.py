"""Figures of exact gradient-descent runs."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_result


def plot_loss_and_sharpness(result, *, axes=None, label="GD"):
    """Loss (log scale) and sharpness against step, with the stability threshold.

    Parameters
    ----------
    result : stabsim.maps.GDResult
    axes : sequence of two matplotlib Axes, optional
        Where to draw; a new figure with two stacked panels otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_result(result, "stabsim.maps:GDResult")
    fig, axes = figure_and_axes(axes, 2, sharex=True, figsize=(7.0, 5.0))
    loss_ax, sharp_ax = axes
    loss_ax.plot(result.step, result.loss, lw=0.8, label=label)
    if np.all(result.loss > 0):
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss L(θ_t)")
    sharp_ax.plot(result.step, result.sharpness[:, 0], lw=0.8, label=f"{label} sharpness")
    if result.threshold is not None:
        sharp_ax.axhline(result.threshold, color="k", ls="--", lw=1.0,
                         label=f"threshold {result.threshold:.4g}")
    if result.crossing_step is not None:
        for ax in axes:
            ax.axvline(result.crossing_step, color="0.6", lw=0.8, ls=":")
    sharp_ax.set_xlabel("step t")
    sharp_ax.set_ylabel("sharpness S(θ_t)")
    sharp_ax.legend(loc="lower right", fontsize="small")
    loss_ax.set_title(f"{result.method}, η = {result.eta:.4g}")
    return fig
