"""The gallery's store of executed notebooks, shared by the docs build and the notebook tests.

The gallery pages are the jupytext notebooks of ``notebooks/`` (``docs/gallery`` links there),
read as notebooks and rendered with their outputs by myst-nb from its execution cache
(jupyter-cache, ``nb_execution_mode = "cache"`` in ``docs/conf.py``). That cache is keyed on
a notebook's code cells and kernel: when a notebook's code has an entry, the build renders
the stored outputs without running anything; otherwise it executes the notebook in a
Jupyter kernel and fails on an error. ``tests/test_notebooks.py`` executes every notebook
once per test run and stores the result here with :func:`store`, so the documentation build
that follows renders those outputs instead of executing each notebook a second time.
"""

from __future__ import annotations

import pathlib

DOCS = pathlib.Path(__file__).resolve().parents[1]
#: myst-nb's execution cache (``nb_execution_cache_path``)
CACHE = DOCS / "_build" / ".jupyter_cache"
#: how the gallery reads a notebook file (myst-nb's ``nb_custom_formats`` for ``.py``)
READER = ("jupytext.reads", {"fmt": "py:percent"})


def read(path):
    """The notebook of the jupytext file ``path``, read exactly as the docs build reads it
    (the same function and format, so that its code hashes to the same cache key)."""
    import jupytext

    return jupytext.reads(pathlib.Path(path).read_text(encoding="utf-8"), **READER[1])


def stored(path) -> bool:
    """Whether the store holds outputs for the current code of the notebook file ``path``
    (what the docs build then renders without executing it)."""
    from jupyter_cache import get_cache

    try:
        get_cache(str(CACHE)).match_cache_notebook(read(path))
    except KeyError:
        return False
    return True


def forget(notebook) -> None:
    """Drop the stored outputs of ``notebook``'s code, if any: a notebook that then fails to
    execute leaves nothing for the docs build to render, which executes it and fails too."""
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE))
    try:
        record = cache.match_cache_notebook(notebook)
    except KeyError:
        return
    cache.remove_cache(record.pk)


def store(executed, path, seconds: float) -> None:
    """Store the executed notebook ``executed`` (read from ``path``) as the outputs of its code,
    replacing any stored before, in the form myst-nb stores its own executions."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    get_cache(str(CACHE)).cache_notebook_bundle(
        CacheBundleIn(executed, str(path), data={"execution_seconds": seconds}),
        check_validity=False, overwrite=True)
