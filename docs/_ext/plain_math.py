"""Read the docstrings' plain-text mathematics as text, not as reStructuredText markup.

stabsim's docstrings write norms and absolute values as ``|x|``, ``|∇L|²`` and so on, in
plain text. reStructuredText reads ``|...|`` as a substitution reference and fails on it
(an undefined substitution, or a start-string without end-string). This extension escapes
each ``|`` of a docstring before it is parsed, except where ``|`` is already literal: inside
``inline literals``, in literal blocks (after a line ending in ``::``) and in doctest blocks.
Nothing else is changed.
"""

from __future__ import annotations


def _escape_inline(line: str) -> str:
    """Escape ``|`` outside double-backquoted inline literals (odd pieces of the split)."""
    pieces = line.split("``")
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].replace("\\|", "|").replace("|", "\\|")
    return "``".join(pieces)


def escape_bars(lines: list[str]) -> list[str]:
    """The docstring ``lines`` with every markup-significant ``|`` escaped."""
    out = []
    literal_indent = None  # indentation of the line that opened a literal block
    in_doctest = False
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            in_doctest = False
            out.append(line)
            continue
        if literal_indent is not None and indent > literal_indent:
            out.append(line)
            continue
        literal_indent = None
        if in_doctest or stripped.startswith(">>>"):
            in_doctest = True
            out.append(line)
            continue
        out.append(_escape_inline(line))
        if stripped.endswith("::"):
            literal_indent = indent
    return out


def _process(app, what, name, obj, options, lines):
    lines[:] = escape_bars(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
