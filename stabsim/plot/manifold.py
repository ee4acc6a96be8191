"""Figures of normalised GD / GD on sqrt(L) against their flows on Γ (docs/theory.md §4)."""

from __future__ import annotations

from ._figure import figure_and_axes, require_records, require_result


def plot_manifold_path(result, *, ax=None, coords=(0, 1)):
    """The path on Γ of Φ(θ_t) (the method's iterates, projected) against the flow X(τ).

    Parameters
    ----------
    result : stabsim.compare_manifold.ManifoldComparison
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    coords : pair of int
        The two coordinates of θ to draw (the chart coordinates x₀, x₁ of the manifold
        family by default).

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
    fig, ax = figure_and_axes(ax, figsize=(5.5, 5.0))
    i, j = coords
    ax.plot(result.flow[:, i], result.flow[:, j], color="k", lw=1.2,
            label=f"manifold flow (c = {result.coefficient:g})")
    ax.plot(result.phi[:, i], result.phi[:, j], "o", ms=3.0, color="C1",
            label=f"Φ(θ_t), {result.method} GD")
    ax.plot(result.flow[0, i], result.flow[0, j], "s", color="k", ms=5.0, label="Φ(θ₀)")
    ax.set_xlabel(f"θ[{i}]")
    ax.set_ylabel(f"θ[{j}]")
    ax.set_title(f"{result.method} GD, η = {result.eta:.4g}, "
                 f"max error {result.max_error():.2g}")
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
