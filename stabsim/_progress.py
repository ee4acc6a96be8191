"""Progress bars: a Jupyter widget in a notebook, text on a terminal, nothing otherwise."""

from __future__ import annotations

import importlib.util
import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell started by ``IPKernelApp``)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def has_widgets() -> bool:
    """True when ipywidgets, which tqdm's notebook bar needs, can be imported."""
    return importlib.util.find_spec("ipywidgets") is not None


def progress_bar(total: int, *, enabled: bool | None = None, **kwargs):
    """A tqdm progress bar of ``total`` units, shown only where someone can see it.

    Parameters
    ----------
    total : int
    enabled : bool or None
        ``False``: never shown. ``None``: shown as a widget in a Jupyter notebook that has
        ipywidgets, as text when stderr is a terminal, and not at all otherwise (output to a
        file or a pipe, a notebook without ipywidgets). ``True``: shown in any case (text on
        stderr where there is no widget).
    **kwargs
        Passed to ``tqdm`` (``unit``, ``desc``, ``initial``, ``leave``, …).

    Returns
    -------
    tqdm.tqdm
        A bar; a disabled one (``update`` and ``close`` do nothing) when not shown.

    Notes
    -----
    ``tqdm.auto`` picks the widget in a notebook too, but warns in one that lacks ipywidgets;
    choosing the class here keeps such a notebook quiet.
    """
    if enabled is not False and in_notebook() and has_widgets():
        from tqdm.notebook import tqdm as widget

        return widget(total=total, **kwargs)
    from tqdm.std import tqdm

    shown = enabled or (enabled is None and sys.stderr.isatty() and not in_notebook())
    return tqdm(total=total, file=sys.stderr, disable=not shown, **kwargs)
