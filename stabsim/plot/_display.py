"""The figure class of stabsim's plots: a matplotlib ``Figure`` that Jupyter shows inline."""

from __future__ import annotations

import io

import matplotlib.figure


class Figure(matplotlib.figure.Figure):
    """A matplotlib figure that renders inline in Jupyter without ``%matplotlib inline``.

    stabsim's plots make their figures without pyplot (no global state, no window), so no
    backend registers them for display; this class gives IPython a PNG rendering
    (``_repr_png_``), shown when the figure is the value of a cell or passed to
    ``IPython.display.display``. Where the inline backend is active, its own formatter
    renders the figure instead (one image either way).
    """

    def _repr_png_(self) -> bytes:
        """The figure as PNG bytes, trimmed to its drawn area as the inline backend does."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
