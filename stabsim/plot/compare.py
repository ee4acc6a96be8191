"""Figures of a lockstep comparison (:func:`stabsim.compare`)."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_records, require_result


def plot_comparison(result, *, axes=None):
    """GD against θ†, θ† + v and the central flow: loss, sharpness and distances.

    Top: GD's loss, the predicted L(θ†) + x²/η, and the central flow's L(w) and predicted
    time average L(w) + σ²/η. Middle: sharpnesses and the threshold 2/η. Bottom: the
    distances |θ_GD − θ†|, |θ_GD − (θ† + v)|, |θ_GD − w| and |θ_GD − θ_GF| (log scale, where
    any is positive).

    Parameters
    ----------
    result : stabsim.comparison.Comparison
    axes : sequence of three matplotlib Axes, optional
        Where to draw; a new figure with three stacked panels otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the comparison has no records (GD failed at its start).
    """
    require_result(result, "stabsim.comparison:Comparison")
    require_records(result)
    fig, axes = figure_and_axes(axes, 3, sharex=True, figsize=(7.5, 8.0))
    loss_ax, sharp_ax, dist_ax = axes
    t = result.step
    loss_ax.plot(t, result.gd_loss, lw=0.6, color="0.5", label="GD")
    loss_ax.plot(t, result.pred_loss, lw=0.8, ls="--", label="L(θ†) + x²/η")
    loss_ax.plot(t, result.cf_loss, lw=1.2, label="central flow L(w)")
    loss_ax.plot(t, result.cf_pred_loss, lw=1.2, label="L(w) + σ²/η")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(fontsize="small")
    sharp_ax.plot(t, result.gd_sharpness, lw=0.6, color="0.5", label="GD")
    sharp_ax.plot(t, result.dagger_sharpness, lw=1.0, label="θ†")
    sharp_ax.plot(t, result.cf_sharpness, lw=1.0, ls="--", label="central flow")
    sharp_ax.plot(t, result.gf_sharpness, lw=1.0, ls=":", label="gradient flow")
    sharp_ax.axhline(2.0 / result.eta, color="k", lw=0.8, ls="--", label="2/η")
    sharp_ax.set_ylabel("sharpness")
    sharp_ax.legend(fontsize="small")
    distances = {"dist_dagger": "|θ − θ†|", "dist_pred": "|θ − (θ† + v)|",
                 "dist_cf": "|θ − w|", "dist_gf": "|θ − θ_GF|"}
    for key, label in distances.items():
        dist_ax.plot(t, getattr(result, key), lw=0.8, label=label)
    values = np.concatenate([getattr(result, key) for key in distances])
    if np.any(np.isfinite(values) & (values > 0)):  # else nothing a log axis can show
        dist_ax.set_yscale("log")
    dist_ax.set_xlabel("step t")
    dist_ax.set_ylabel("distance to GD")
    dist_ax.legend(fontsize="small")
    if result.crossing_step is not None:
        for ax in axes:
            ax.axvline(result.crossing_step, color="0.6", lw=0.8, ls=":")
    loss_ax.set_title(f"GD against the theory, η = {result.eta:.4g} ({result.projection} "
                      "projection)")
    return fig


def plot_x_prediction(result, *, ax=None):
    """x_t = u·(θ_t − θ†_t) of GD against the predicted x_t = u·v_t.

    Parameters
    ----------
    result : stabsim.comparison.Comparison
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the comparison has no records (GD failed at its start).
    """
    require_result(result, "stabsim.comparison:Comparison")
    require_records(result)
    fig, ax = figure_and_axes(ax, 1, figsize=(7.5, 3.5))
    ax.plot(result.step, result.gd_x, lw=0.6, color="0.5", label="GD")
    ax.plot(result.step, result.pred_x, lw=0.8, ls="--", label="prediction u·v")
    ax.set_xlabel("step t")
    ax.set_ylabel("x_t")
    ax.legend(fontsize="small")
    return fig
