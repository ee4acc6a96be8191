"""What the notebooks of this folder share, kept out of the studies themselves.

- ``SMALL``: the size switch. ``STABSIM_NOTEBOOK_SIZE=small`` (what the tests and the
  documentation gallery use) runs each study on fewer step sizes, starts or cells, in seconds;
  unset, a notebook runs at its full size.
- Figures: in Jupyter the inline backend shows every figure a cell makes; run as a script
  (``python notebooks/01_four_phases.py``), matplotlib draws off-screen (Agg) and no window
  opens.
- :func:`table` makes measured rows a table (HTML in Jupyter, aligned text elsewhere),
  :func:`show` shows one below a cell, and :func:`conclude` states a conclusion written from
  the measured numbers (Markdown in Jupyter, plain text elsewhere).
"""

from __future__ import annotations

import html
import os
import sys

import matplotlib

SMALL = os.environ.get("STABSIM_NOTEBOOK_SIZE", "full") == "small"
INTERACTIVE = "ipykernel" in sys.modules
if not INTERACTIVE:
    matplotlib.use("Agg")


class Table:
    """Rows of measured values: an HTML table in Jupyter (``_repr_html_``), text otherwise.

    Parameters
    ----------
    rows : list of dict
        One dict per row; its keys are the column headers (the first row's order is kept).
    formats : dict, optional
        Header → format specification (``"{:.3g}"``) or callable; other values print with
        ``str``.
    """

    def __init__(self, rows, formats=None):
        if not rows:
            raise ValueError("rows must hold at least one row")
        self.columns = list(rows[0])
        self.formats = dict(formats or {})
        self.cells = [[self._format(column, row.get(column, "")) for column in self.columns]
                      for row in rows]

    def _format(self, column, value):
        spec = self.formats.get(column)
        if spec is None:
            return str(value)
        return spec(value) if callable(spec) else spec.format(value)

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.cells)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self):
        widths = [max(len(c), *(len(row[i]) for row in self.cells))
                  for i, c in enumerate(self.columns)]
        lines = [self.columns] + self.cells
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
                         for line in lines)


def table(rows, formats=None) -> Table:
    """The rows as a :class:`Table` (the value of a cell, or passed to ``display``)."""
    return Table(rows, formats)


def show(value) -> None:
    """Show ``value`` (a table, a figure) below the cell, where it is not the cell's value."""
    if INTERACTIVE:
        from IPython.display import display

        display(value)
    else:
        print(repr(value))


def conclude(text: str) -> None:
    """Show ``text`` (Markdown: a conclusion written from measured values) below the cell."""
    if INTERACTIVE:
        from IPython.display import Markdown, display

        display(Markdown(text))
    else:
        print(text)
