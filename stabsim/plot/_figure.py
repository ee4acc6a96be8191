"""Figure creation and argument checks shared by the plot modules (headless-safe)."""

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
    """``(figure, axes)``: the caller's axes with their figure, or a new figure from
    :func:`new_axes` when ``given`` is None.

    With ``n_rows = 1`` the caller's ``ax`` must be one matplotlib Axes; otherwise its
    ``axes`` must be a sequence (list, tuple or array) of ``n_rows`` Axes, one per panel.
    ``TypeError`` for anything else, ``ValueError`` for a sequence of another length, each
    naming the argument (``ax`` or ``axes``), before anything is drawn.
    """
    if given is None:
        return new_axes(n_rows, **kwargs)
    import numpy as np
    from matplotlib.axes import Axes

    if n_rows == 1:
        if not isinstance(given, Axes):
            raise TypeError(f"ax must be a matplotlib Axes, got {type(given).__name__}")
        return given.figure, given
    wanted = f"a sequence of {n_rows} matplotlib Axes (one per panel, top to bottom)"
    if not isinstance(given, list | tuple | np.ndarray):
        raise TypeError(f"axes must be {wanted}, got {type(given).__name__}")
    if len(given) != n_rows:
        raise ValueError(f"axes must be {wanted}, got a sequence of {len(given)}")
    kinds = sorted({type(a).__name__ for a in given if not isinstance(a, Axes)})
    if kinds:
        raise TypeError(f"axes must be {wanted}, got a sequence holding {', '.join(kinds)}")
    return given[0].figure, given


def require_result(value, *kinds: str, name: str = "result") -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of one of the classes ``kinds``
    (each ``"module:Class"``, imported on use so that a figure module stays light)."""
    import importlib

    classes = []
    for kind in kinds:
        module, cls = kind.split(":")
        classes.append(getattr(importlib.import_module(module), cls))
    if not isinstance(value, tuple(classes)):
        wanted = " or ".join(kind.replace(":", ".") for kind in kinds)
        raise TypeError(f"{name} must be a {wanted}, got {type(value).__name__}")


def require_records(result, name: str = "result") -> None:
    """Raise ``ValueError`` if ``result`` (a :class:`stabsim._result.Result` with a ``step``
    axis) has no records to draw, saying why (its status message)."""
    if len(result.step) == 0:
        raise ValueError(f"{name} has no records to draw: {result.message}")
