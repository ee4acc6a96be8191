"""The catapult phase diagram of the uv model, with the large-width and measured boundaries."""

from __future__ import annotations

from .sweep import add_to_legend, plot_phase_diagram


def plot_catapult(ds, boundaries=None, *, ax=None, title=None):
    """Classes of GD on the uv model over (ηλ₀, width), with the phase boundaries.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`stabsim.sweep.catapult.catapult_sweep`.
    boundaries : xarray.Dataset, optional
        A result of :func:`stabsim.sweep.catapult.catapult_boundaries` (in any order of its
        dimensions ``width`` and ``seed``, or a selection of one seed or width): its mean
        over seeds (NaN ignored) is drawn per width (markers, in the legend as "measured
        …").
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
        markers = []
        for name, marker in (("lazy_catapult", "<"), ("catapult_diverged", ">")):
            widths, means = _seed_means(boundaries, name)
            markers += axis.plot(means, widths, marker, color="black", linestyle="none",
                                 label=f"measured {name.replace('_', '/')}")
        add_to_legend(axis, markers)
    axis.set_xlabel("ηλ₀ (λ₀: NTK eigenvalue at the start)")
    axis.set_ylabel("width m")
    return fig


def _seed_means(boundaries, name):
    """(widths, mean over seeds) of the boundary ``name`` of a
    :func:`~stabsim.sweep.catapult.catapult_boundaries` result, by dimension name: the mean
    over ``seed`` where it is a dimension, the values as they are where it is not."""
    given = values = boundaries[name]
    if "seed" in values.dims:
        values = values.mean("seed")  # NaN (a bracket of the wrong classes) left out
    if "width" not in values.dims and "width" in values.coords:  # one width selected
        values = values.expand_dims("width")
    if values.dims != ("width",):
        raise ValueError(f"boundaries[{name!r}] has dimensions {given.dims}: pass a result "
                         "of catapult_boundaries, over dimensions width and seed (or a "
                         "selection of one of them)")
    return values["width"].values, values.values
