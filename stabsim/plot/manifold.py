"""Figures of the flows on Γ of normalised GD / GD on sqrt(L), and of the methods against
them (docs/theory.md §4)."""

from __future__ import annotations

import numbers

import numpy as np

from ._figure import figure_and_axes, require_records, require_result


def _coordinates(coords, d: int) -> tuple[int, int]:
    """``coords`` as two indices of θ ∈ R^d in [0, d − 1] (a negative one counts from the
    end, as in Python), or ``TypeError``/``ValueError`` naming it and the valid range."""
    wanted = f"coords must be two int indices of θ in [{-d}, {d - 1}] (d = {d})"
    if not isinstance(coords, list | tuple | np.ndarray) or len(coords) != 2 or not all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in coords):
        raise TypeError(f"{wanted}, got {coords!r}")
    if not all(-d <= c < d for c in coords):
        raise ValueError(f"{wanted}, got {coords!r}")
    return int(coords[0]) % d, int(coords[1]) % d


def plot_manifold_path(result, *, ax=None, coords=(0, 1)):
    """The path of the manifold flow X(τ) on Γ and, for a comparison, Φ(θ_t) (the method's
    iterates, projected) against it.

    Parameters
    ----------
    result : stabsim.compare_manifold.ManifoldComparison or stabsim.flows.ManifoldFlowResult
        A comparison (the flow, Φ(θ_t) and Φ(θ₀)), or a flow alone (its path and X(0)).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    coords : pair of int
        The two coordinates of θ ∈ R^d to draw, each in [−d, d − 1] (a negative index
        counts from the end; by default the chart coordinates x₀, x₁ of the manifold
        family).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        If ``result`` is neither result, ``coords`` is not a pair of ints, or ``ax`` is not
        an Axes.
    ValueError
        If the result has no records (a run that failed at its start), or a coordinate is
        out of [−d, d − 1].
    """
    require_result(result, "stabsim.compare_manifold:ManifoldComparison",
                   "stabsim.flows:ManifoldFlowResult")
    require_records(result)
    from ..flows import ManifoldFlowResult

    alone = isinstance(result, ManifoldFlowResult)
    flow = result.trajectory if alone else result.flow
    i, j = _coordinates(coords, flow.shape[1])
    fig, ax = figure_and_axes(ax, figsize=(5.5, 5.0))
    ax.plot(flow[:, i], flow[:, j], color="k", lw=1.2,
            label=f"manifold flow (c = {result.coefficient:g})")
    if alone:
        ax.plot(flow[0, i], flow[0, j], "s", color="k", ms=5.0, label="X(0)")
        ax.set_title(f"{result.method} GD's flow on Γ, η = {result.eta:.4g}")
    else:
        ax.plot(result.phi[:, i], result.phi[:, j], "o", ms=3.0, color="C1",
                label=f"Φ(θ_t), {result.method} GD")
        ax.plot(flow[0, i], flow[0, j], "s", color="k", ms=5.0, label="Φ(θ₀)")
        ax.set_title(f"{result.method} GD, η = {result.eta:.4g}, "
                     f"max error {result.max_error():.2g}")
    ax.set_xlabel(f"θ[{i}]")
    ax.set_ylabel(f"θ[{j}]")
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_manifold_sharpness(result, *, axes=None):
    """λ1(∇²L) along the path against τ = η²t, and the tracking error |Φ(θ_t) − X(τ)|.

    Parameters
    ----------
    result : stabsim.compare_manifold.ManifoldComparison
    axes : sequence of two matplotlib Axes, optional
        Where to draw; a new figure with two stacked panels otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the comparison has no records (a run that failed at its start).
    """
    require_result(result, "stabsim.compare_manifold:ManifoldComparison")
    require_records(result)
    fig, axes = figure_and_axes(axes, 2, sharex=True, figsize=(7.0, 5.0))
    lam_ax, err_ax = axes
    lam_ax.plot(result.tau, result.flow_lambda1, color="k", lw=1.2, label="λ1 on the flow")
    lam_ax.plot(result.tau, result.lambda1, "o", ms=3.0, color="C1", label="λ1 at Φ(θ_t)")
    lam_ax.set_ylabel("λ1(∇²L)")
    lam_ax.legend(loc="best", fontsize="small")
    positive = result.error > 0
    err_ax.semilogy(result.tau[positive], result.error[positive], color="C3", lw=1.0)
    err_ax.axhline(result.eta, color="0.5", ls="--", lw=0.8, label="η")
    err_ax.set_xlabel("τ = η² t")
    err_ax.set_ylabel("|Φ(θ_t) − X(τ)|")
    err_ax.legend(loc="best", fontsize="small")
    lam_ax.set_title(f"{result.method} GD, η = {result.eta:.4g}")
    return fig
