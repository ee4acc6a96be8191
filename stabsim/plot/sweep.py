"""Phase diagrams of sweep results: the class of every cell over two swept parameters."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_result

#: axis labels of the sweepable parameters
LABELS = {"eta": "step size η", "alpha": "sharpening rate α", "beta": "β = |∇S|²",
          "x0": "initial x₀", "y0": "initial y₀", "momentum": "momentum β",
          "scale": "initial scale |θ₀|", "seed": "seed"}
#: colours of the class codes 0–4 (colour-blind-safe, Okabe–Ito)
COLOURS = ("#0072B2", "#009E73", "#E69F00", "#D55E00", "#999999")


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _is_geometric(values) -> bool:
    values = np.asarray(values, dtype=np.float64)
    if values.size < 3 or np.any(values <= 0):
        return False
    ratios = values[1:] / values[:-1]
    return bool(np.allclose(ratios, ratios[0], rtol=1e-6) and abs(ratios[0] - 1.0) > 1e-9)


def _edges(values) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log grid)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5]) if v[0] <= 0 else v[0] * np.array([0.9, 1.1])
    if _is_geometric(v):
        mid = np.sqrt(v[1:] * v[:-1])
        return np.concatenate([[v[0] ** 2 / mid[0]], mid, [v[-1] ** 2 / mid[-1]]])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def plot_phase_diagram(ds, *, x=None, y=None, ax=None, title=None):
    """The class of each cell of a sweep result, over one or two swept parameters.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of ``stabsim.sweep.run_sweep`` (or read back from its file).
    x, y : str, optional
        Parameters on the horizontal and vertical axes; by default the first two swept
        ones. Further dimensions are fixed at their first value (named in the title).
        With one swept parameter the diagram is a strip.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_result(ds, "xarray:Dataset", "ds")
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    if "regime" not in ds:
        raise ValueError("not a sweep result: the dataset has no 'regime' variable")
    cls = ds["regime"]
    codes = [int(v) for v in cls.attrs["flag_values"]]
    names = cls.attrs["flag_meanings"].split()
    cmap = ListedColormap([COLOURS[c % len(COLOURS)] for c in codes])
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, len(codes))
    fig, ax = figure_and_axes(ax, figsize=(6.5, 4.8), layout="constrained")
    index = np.searchsorted(codes, cls.values)  # regime code → colour index
    if "cell" in cls.dims:  # zipped lists: a scatter over the first two coordinates
        names_xy = [n for n in ds.coords if ds[n].dims == ("cell",)]
        x = x or names_xy[0]
        y = y or (names_xy[1] if len(names_xy) > 1 else None)
        yv = ds[y].values if y else np.zeros(cls.size)
        ax.scatter(ds[x].values, yv, c=index, cmap=cmap, norm=norm, s=25)
        fixed = ""
    else:
        dims = list(cls.dims)
        x = x or dims[0]
        y = y or (next((d for d in dims if d != x), None))
        fixed_at = {d: 0 for d in dims if d not in (x, y)}
        sel = cls.isel(fixed_at)
        fixed = ", ".join(f"{d} = {ds[d].values[0]:g}" for d in fixed_at)
        plane = np.searchsorted(codes, sel.transpose(*([y] if y else []), x).values)
        xv = ds[x].values
        yv = ds[y].values if y else np.array([0.0])
        ax.pcolormesh(_edges(xv), _edges(yv), np.atleast_2d(plane), cmap=cmap, norm=norm)
        if _is_geometric(xv):
            ax.set_xscale("log")
        if y and _is_geometric(yv):
            ax.set_yscale("log")
    ax.set_xlabel(_label(x))
    if y:
        ax.set_ylabel(_label(y))
    else:
        ax.set_yticks([])
    handles = [Patch(color=COLOURS[c % len(COLOURS)], label=n.replace("_", " "))
               for c, n in zip(codes, names, strict=True)]
    ax.legend(handles=handles, title="regime", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    model = ds.attrs.get("model", "")
    heading = title or f"phase diagram ({'reduced map' if model == 'reduced' else model})"
    ax.set_title(heading + (f"\n{fixed}" if fixed else ""))
    return fig
