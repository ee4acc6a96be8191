"""Phase diagrams of sweep results: the class of every cell over two swept parameters."""

from __future__ import annotations

import numpy as np

from ._figure import figure_and_axes, require_result

#: axis labels of the sweepable parameters
LABELS = {"eta": "step size η", "alpha": "sharpening rate α", "beta": "β = |∇S|²",
          "x0": "initial x₀", "y0": "initial y₀", "momentum": "momentum β",
          "scale": "initial scale |θ₀|", "seed": "seed"}
#: colours of the class codes 0–4 (colour-blind-safe, Okabe–Ito)
COLOURS = ("#0072B2", "#009E73", "#E69F00", "#D55E00", "#999999", "#CC79A7")
#: edge colour of the cells with no class (NaN regime), which are drawn blank
NO_DATA = "#555555"
#: Matplotlib computes margins and tick steps past an axis's limits, which overflow near the
#: largest float: a linear axis reaching beyond ±DRAWABLE is drawn divided by a power of ten,
#: a log axis reaching beyond 10**LOG_DECADES as log₁₀ of the values on a linear axis
DRAWABLE = 1e300
LOG_DECADES = (-300.0, 200.0)


def _label(name: str, form: str = "{}") -> str:
    return form.format(LABELS.get(name, name))


def _is_geometric(values) -> bool:
    values = np.asarray(values, dtype=np.float64)
    if values.size < 3 or np.any(values <= 0):
        return False
    with np.errstate(over="ignore"):  # a ratio past the largest float is not a grid step
        ratios = values[1:] / values[:-1]
    return bool(np.allclose(ratios, ratios[0], rtol=1e-6) and abs(ratios[0] - 1.0) > 1e-9)


def _power(values) -> int:
    """The power of ten a linear axis divides ``values`` by (0 if within ``±DRAWABLE``)."""
    largest = float(np.max(np.abs(values)))
    return int(np.floor(np.log10(largest))) if largest > DRAWABLE else 0


def _edges(values) -> np.ndarray:
    """Cell edges around increasing centres, strictly increasing: the midpoints between
    neighbours and, outside the outermost centres, their mirror images; ``v ± 0.1 |v|``
    around a lone centre (``± 0.5`` at zero). Finite for centres within ``±DRAWABLE``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        half = 0.1 * abs(v[0]) if v[0] != 0 else 0.5
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mid = 0.5 * (v[1:] + v[:-1])
        edges = np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
    if np.all(np.diff(edges) > 0):
        return edges
    # centres a few float steps apart (or subnormal) round to tied edges: one step up each
    for i in range(1, edges.size):
        edges[i] = max(edges[i], np.nextafter(edges[i - 1], np.inf))
    return edges


def _axis(values) -> tuple:
    """How an axis draws the cells around increasing ``values``.

    Returns
    -------
    edges : ndarray
        The cell edges in the axis's coordinates, finite and strictly increasing.
    log : bool
        Whether the axis is logarithmic (for values in a geometric sequence).
    form : str
        The axis label with ``{}`` for the parameter's: ``"{} / 1e308"`` when the axis
        shows the values divided by a power of ten, ``"log₁₀ {}"`` when it shows their
        logarithms (see ``DRAWABLE``).
    """
    v = np.asarray(values, dtype=np.float64)
    if _is_geometric(v):
        exponents = _edges(np.log10(v))  # geometric midpoints
        if LOG_DECADES[0] <= exponents[0] and exponents[-1] <= LOG_DECADES[1]:
            return 10.0**exponents, True, "{}"
        return exponents, False, "log₁₀ {}"
    scaled, form = _scaled(v)
    return _edges(scaled), False, form


def _scaled(values) -> tuple:
    """``values`` as a linear axis draws them, and the form of its label (see :func:`_axis`)."""
    power = _power(values)
    return values / 10.0**power, f"{{}} / 1e{power}" if power else "{}"


def _axes(swept: list, x, y) -> tuple:
    """The parameters on the horizontal and vertical axes: ``x`` and ``y`` if given, else the
    first swept parameters other than the one given (``y`` None for a single one)."""
    if not swept:
        raise ValueError("the result has no swept parameter to draw along an axis (its "
                         "'regime' is one cell, as after .isel or .sel of every dimension): "
                         "keep at least one dimension")
    for name in (x, y):
        if name is not None and name not in swept:
            raise ValueError(f"{name!r} is not a swept parameter of the result; it sweeps "
                             f"{swept}")
    if x is not None and x == y:
        raise ValueError(f"x and y are both {x!r}: give two different swept parameters")
    if x is None:
        x = next((name for name in swept if name != y), None)
        if x is None:
            raise ValueError(f"{y!r} is the only swept parameter: put it on the x axis, or "
                             f"leave x and y out")
    if y is None:
        y = next((name for name in swept if name != x), None)
    return x, y


def _classes(ds) -> tuple:
    """The regime codes and names of a sweep result, checked (see :func:`plot_phase_diagram`)."""
    if "regime" not in ds:
        raise ValueError("not a sweep result: the dataset has no 'regime' variable")
    cls = ds["regime"]
    if not {"flag_values", "flag_meanings"} <= set(cls.attrs):
        raise ValueError("not a sweep result: its 'regime' variable needs the attributes "
                         "flag_values and flag_meanings (the class codes and their names)")
    codes = [int(v) for v in np.atleast_1d(cls.attrs["flag_values"])]
    names = str(cls.attrs["flag_meanings"]).split()
    if len(names) != len(codes):
        raise ValueError(f"the 'regime' variable has {len(codes)} flag_values {codes} but "
                         f"{len(names)} flag_meanings {names}: they must name one class each")
    empty = [d for d in cls.dims if cls.sizes[d] == 0]
    if empty:
        raise ValueError(f"the result has no cells to draw: dimension(s) {empty} have "
                         f"length 0 (an empty selection?)")
    return codes, names


def _colour_index(values, codes) -> np.ndarray:
    """The position in ``codes`` of each cell's regime code (the index of its colour); NaN
    for a cell with no class (NaN regime), which is drawn blank."""
    values = np.asarray(values, dtype=np.float64)
    unknown = np.unique(values[np.isfinite(values) & ~np.isin(values, codes)])
    if unknown.size:
        raise ValueError(f"regime has code(s) {unknown.tolist()} that are not among its "
                         f"flag_values {codes}")
    index = np.full(values.shape, np.nan)
    for position, code in enumerate(codes):
        index[values == code] = position
    return index


def plot_phase_diagram(ds, *, x=None, y=None, ax=None, title=None):
    """The class of each cell of a sweep result, over one or two swept parameters.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of ``stabsim.sweep.run_sweep`` (or read back from its file).
    x, y : str, optional
        Parameters on the horizontal and vertical axes, two different swept ones; by
        default the first swept ones other than the one given. Further dimensions are fixed
        at their first value (named in the title). With one swept parameter the diagram is
        a strip. Each cell is drawn at its own values, in whatever order the sweep listed
        them; an axis whose values form a geometric sequence is logarithmic. Values beyond
        ``±1e300`` are drawn divided by a power of ten, and a log axis that would reach
        beyond 1e-300 or 1e200 shows log₁₀ of its values; the axis label says so.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Cells whose ``regime`` is NaN (no class, as after ``Dataset.where``) are drawn blank
    (hollow points for zipped lists), as "no data" in the legend.

    Raises
    ------
    TypeError
        If ``ds`` is not an ``xarray.Dataset`` (for a ``SweepResult``, pass its
        ``to_xarray()``).
    ValueError
        If ``ds`` is not a sweep result (no ``regime`` with as many ``flag_meanings`` as
        ``flag_values``, or a regime code not among them), has no cells (a dimension of
        length 0) or no swept parameter (a single cell), ``x`` or ``y`` is not a swept
        parameter, they are the same, or ``y`` is the only swept parameter.
    """
    import xarray as xr

    if not isinstance(ds, xr.Dataset) and hasattr(ds, "to_xarray"):  # a SweepResult
        raise TypeError(f"ds must be a xarray.Dataset, got {type(ds).__name__}: pass its "
                        f"to_xarray()")
    require_result(ds, "xarray:Dataset", name="ds")
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    codes, names = _classes(ds)
    cls = ds["regime"]
    cmap = ListedColormap([COLOURS[c % len(COLOURS)] for c in codes])
    norm = BoundaryNorm(np.arange(len(codes) + 1) - 0.5, len(codes))
    fig, ax = figure_and_axes(ax, figsize=(6.5, 4.8), layout="constrained")
    if "cell" in cls.dims:  # zipped lists: a scatter over the first two coordinates
        x, y = _axes([n for n in ds.coords if ds[n].dims == ("cell",)], x, y)
        xs, x_form = _scaled(ds[x].values)
        ys, y_form = _scaled(ds[y].values) if y else (np.zeros(cls.size), "{}")
        index = _colour_index(cls.values, codes)
        blank = np.isnan(index)
        ax.scatter(xs[~blank], ys[~blank], c=index[~blank], cmap=cmap, norm=norm, s=25)
        if blank.any():
            ax.scatter(xs[blank], ys[blank], s=25, facecolors="none", edgecolors=NO_DATA)
        fixed = ""
    else:
        dims = list(cls.dims)
        x, y = _axes(dims, x, y)
        fixed_at = {d: 0 for d in dims if d not in (x, y)}
        shown = [y, x] if y else [x]
        # cells are stored in the order the config lists the values; edges need them sorted
        sel = cls.isel(fixed_at).sortby(shown).transpose(*shown)
        fixed = ", ".join(f"{d} = {ds[d].values[0]:g}" for d in fixed_at)
        plane = np.ma.masked_invalid(np.atleast_2d(_colour_index(sel.values, codes)))
        blank = np.ma.getmaskarray(plane)
        xe, x_log, x_form = _axis(sel[x].values)
        ye, y_log, y_form = _axis(sel[y].values) if y else (_edges([0.0]), False, "{}")
        ax.pcolormesh(xe, ye, plane, cmap=cmap, norm=norm)  # masked cells: not drawn
        if x_log:
            ax.set_xscale("log")
        if y_log:
            ax.set_yscale("log")
    ax.set_xlabel(_label(x, x_form))
    if y:
        ax.set_ylabel(_label(y, y_form))
    else:
        ax.set_yticks([])
    handles = [Patch(color=COLOURS[c % len(COLOURS)], label=n.replace("_", " "))
               for c, n in zip(codes, names, strict=True)]
    if blank.any():
        handles.append(Patch(facecolor="none", edgecolor=NO_DATA, label="no data"))
    _regime_legend(ax, handles, [handle.get_label() for handle in handles])
    model = ds.attrs.get("model", "")
    heading = title or f"phase diagram ({'reduced map' if model == 'reduced' else model})"
    ax.set_title(heading + (f"\n{fixed}" if fixed else ""))
    return fig


def _regime_legend(ax, handles, labels) -> None:
    """The legend of a phase diagram, right of ``ax``: ``handles`` with ``labels``."""
    ax.legend(handles=handles, labels=labels, title="regime", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)


def add_to_legend(ax, artists) -> None:
    """Rebuild the legend of the phase diagram on ``ax`` with ``artists`` (by their labels)
    after its entries."""
    legend = ax.get_legend()
    _regime_legend(ax, [*legend.legend_handles, *artists],
                   [text.get_text() for text in legend.get_texts()]
                   + [artist.get_label() for artist in artists])
