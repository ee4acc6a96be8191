"""The catapult phase diagram of the uv model, with the large-width and measured boundaries."""

from __future__ import annotations

import numpy as np

from .sweep import plot_phase_diagram


def plot_catapult(ds, boundaries=None, *, ax=None, title=None):
    """Classes of GD on the uv model over (ηλ₀, width), with the phase boundaries.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`stabsim.sweep.catapult.catapult_sweep`.
    boundaries : xarray.Dataset, optional
        A result of :func:`stabsim.sweep.catapult.catapult_boundaries`: its mean over seeds
        is drawn per width (markers).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The large-width boundaries ηλ₀ = 2 and 4 are dashed vertical lines.
    """
    from ..sweep.catapult import LARGE_WIDTH_BOUNDARIES

    fig = plot_phase_diagram(ds, x="eta_lambda", y="width", ax=ax,
                             title=title or "GD on the uv model")
    axis = fig.axes[0] if ax is None else ax
    for c in LARGE_WIDTH_BOUNDARIES:
        axis.axvline(c, color="black", linestyle="--", linewidth=1.0)
    if boundaries is not None:
        widths = boundaries["width"].values
        for name, marker in (("lazy_catapult", "<"), ("catapult_diverged", ">")):
            axis.plot(np.nanmean(boundaries[name].values, axis=1), widths, marker,
                      color="black", linestyle="none", label=f"measured {name.replace('_', '/')}")
    axis.set_xlabel("ηλ₀ (λ₀: NTK eigenvalue at the start)")
    axis.set_ylabel("width m")
    return fig
