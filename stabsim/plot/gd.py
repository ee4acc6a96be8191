"""Figures of exact gradient-descent and adaptive-method runs."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_records, require_result


def plot_loss_and_sharpness(result, *, axes=None, label=None):
    """Loss (log scale) and sharpness against step, with the stability threshold.

    For a :class:`~stabsim.maps.GDResult` the sharpness panel draws S(θ_t) = λ_max(∇²L)
    against the threshold the run searched for (if any), and marks the first crossing. For
    an :class:`~stabsim.maps.AdaptiveResult` it draws the preconditioned sharpness
    λ_max(P_t⁻¹∇²L), which the theory says hovers at the run's ``threshold``
    (:func:`~stabsim.maps.adaptive_threshold`: (2 + 2β₁)/((1 − β₁)η), 2/η without
    momentum), with that threshold and, dotted, the raw sharpness λ_max(∇²L) (no fixed
    threshold: the preconditioner P_t changes along the run); the panel is logarithmic
    when both are positive (the two often lie orders of magnitude apart).

    Parameters
    ----------
    result : stabsim.maps.GDResult or stabsim.maps.AdaptiveResult
    axes : sequence of two matplotlib Axes, optional
        Where to draw (the loss on the first, the sharpness on the second); a new figure
        with two stacked panels otherwise.
    label : str, optional
        Names the run in the legend (default: ``"GD"`` for a GDResult, the method for an
        AdaptiveResult).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        If ``result`` is neither result, or ``axes`` is not a sequence of Axes.
    ValueError
        If ``axes`` does not hold two Axes, or the run has no records (it failed at its
        start: the message says why).
    """
    require_result(result, "stabsim.maps:GDResult", "stabsim.maps:AdaptiveResult")
    require_records(result)
    from ..maps import AdaptiveResult

    adaptive = isinstance(result, AdaptiveResult)
    if label is None:
        label = result.method if adaptive else "GD"
    fig, axes = figure_and_axes(axes, 2, sharex=True, figsize=(7.0, 5.0))
    loss_ax, sharp_ax = axes
    loss_ax.plot(result.step, result.loss, lw=0.8, label=label)
    if np.all(result.loss > 0):
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss L(θ_t)")
    if adaptive:
        sharp_ax.plot(result.step, result.preconditioned_sharpness, lw=0.8,
                      label=f"{label} λ_max(P⁻¹∇²L)")
        sharp_ax.plot(result.step, result.sharpness, lw=0.8, ls=":", color="0.4",
                      label=f"{label} λ_max(∇²L)")
        if np.all(result.sharpness > 0) and np.all(result.preconditioned_sharpness > 0):
            sharp_ax.set_yscale("log")
        sharp_ax.set_ylabel("sharpness")
    else:
        sharp_ax.plot(result.step, result.sharpness[:, 0], lw=0.8, label=f"{label} sharpness")
        sharp_ax.set_ylabel("sharpness S(θ_t)")
    if result.threshold is not None:
        sharp_ax.axhline(result.threshold, color="k", ls="--", lw=1.0,
                         label=f"threshold {result.threshold:.4g}")
    if not adaptive and result.crossing_step is not None:
        for ax in axes:
            ax.axvline(result.crossing_step, color="0.6", lw=0.8, ls=":")
    sharp_ax.set_xlabel("step t")
    sharp_ax.legend(loc="lower right", fontsize="small")
    momentum = f", β₁ = {result.beta1:g}" if adaptive and result.method == "adam" else ""
    loss_ax.set_title(f"{result.method}, η = {result.eta:.4g}{momentum}")
    return fig
