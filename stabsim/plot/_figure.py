"""Figure creation shared by the plot modules (headless-safe)."""

from __future__ import annotations


def new_axes(n_rows: int = 1, n_cols: int = 1, **kwargs):
    """A new figure and its axes, created without touching pyplot's global state.

    Making the figure directly (not with ``pyplot.subplots``) works on machines with no
    display and leaves no open pyplot figures behind in long sweeps or tests; the figure is a
    :class:`stabsim.plot._display.Figure`, which Jupyter shows inline.
    """
    from ._display import Figure

    fig = Figure(**{k: kwargs.pop(k) for k in ("figsize", "layout") if k in kwargs})
    axes = fig.subplots(n_rows, n_cols, squeeze=True, **kwargs)
    return fig, axes


def figure_and_axes(given, n_rows: int = 1, **kwargs):
    """``(figure, axes)``: the caller's axes (one Axes or a sequence) with their figure, or
    a new figure from :func:`new_axes` when ``given`` is None."""
    if given is None:
        return new_axes(n_rows, **kwargs)
    first = given[0] if hasattr(given, "__len__") else given  # a sequence of Axes, or one
    return first.figure, given


def require_result(value, kind: str, name: str = "result") -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of the class ``kind``
    (``"module:Class"``, imported on use so that a figure module stays light)."""
    import importlib

    module, cls = kind.split(":")
    if not isinstance(value, getattr(importlib.import_module(module), cls)):
        raise TypeError(f"{name} must be a {module}.{cls}, got {type(value).__name__}")


def require_records(result, name: str = "result") -> None:
    """Raise ``ValueError`` if ``result`` (a :class:`stabsim._result.Result` with a ``step``
    axis) has no records to draw, saying why (its status message)."""
    if len(result.step) == 0:
        raise ValueError(f"{name} has no records to draw: {result.message}")
