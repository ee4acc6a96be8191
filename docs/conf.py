"""Sphinx configuration of the stabsim documentation.

Build (no network access needed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here fetches anything: no intersphinx, the default theme, MathJax only referenced by
the rendered pages (the browser loads it), the CLI reference generated from the real parser
by the local extension ``_ext/stabsim_cli.py``. The gallery's notebooks (``notebooks/``,
reached through the ``gallery`` link) are rendered from the store of executed notebooks
(``_ext/gallery_store.py``), which the notebook tests fill; a notebook with no stored outputs
for its current code is executed in a local Jupyter kernel. Delete
``docs/_build/.jupyter_cache`` to run them all again (for instance after changing stabsim
itself without running the tests).
"""

from __future__ import annotations

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
# document the checkout the docs belong to, not whatever stabsim is installed; with
# STABSIM_DOCS_INSTALLED=1, the installed stabsim (tests/test_wheel.py builds these docs
# against a wheel installed in a fresh environment)
INSTALLED = bool(os.environ.get("STABSIM_DOCS_INSTALLED"))
if not INSTALLED:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

from gallery_store import CACHE, READER  # noqa: E402

import stabsim  # noqa: E402

project = "stabsim"
author = "the stabsim developers"
copyright = "the stabsim developers"  # noqa: A001  (Sphinx's name for the notice)
release = stabsim.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown (it includes myst_parser) and the notebook gallery
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "stabsim_cli",
    "plain_math",
]

root_doc = "index"
# the gallery is the jupytext .py notebooks: an .ipynb made from one (jupytext --to notebook)
# beside it would be a second source of the same page
# (gallery/_study.py is the notebooks' helper module, not a page; studies/ holds scripts that
# measure the tables of the pages, run by hand: minutes each, not pages)
exclude_patterns = ["_build", "_ext", "conf.py", "gallery/__pycache__", "gallery/*.ipynb",
                    "gallery/_*.py", "**/.ipynb_checkpoints", "studies"]

# The gallery: docs/gallery links to notebooks/, whose jupytext (py:percent) notebooks are
# read as notebooks and rendered with their outputs. "cache": a notebook whose code has
# stored outputs in the execution cache (jupyter-cache) is rendered from them, figures
# included, without running anything; tests/test_notebooks.py stores every notebook it
# executes there (gallery_store), so in a test run each notebook executes once. A notebook
# without stored outputs is executed here at its small size in a Jupyter kernel, the way a
# reader runs it, and stored.
nb_custom_formats = {".py": list(READER)}
nb_execution_mode = "cache"
nb_execution_cache_path = str(CACHE)
nb_execution_raise_on_error = True  # a notebook whose asserts fail fails the build
nb_execution_timeout = 600
nb_merge_streams = True
# conclusions computed in a notebook (IPython Markdown outputs) may hold $...$ mathematics
nb_render_markdown_format = "myst"
os.environ.setdefault("STABSIM_NOTEBOOK_SIZE", "small")  # inherited by the kernels
# the kernels import the stabsim the build itself documents
if not INSTALLED:
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

# MyST: $...$ and $$...$$ math (rendered by MathJax), amsmath environments, and anchors for
# headings so that pages can link to "theory.md#..." sections.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# The docstrings are numpydoc-style: napoleon reads them without the numpydoc package.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# "Attributes" sections are rendered like "Parameters" (a field list of names, types and
# descriptions), not as attribute directives or :ivar: fields: the result classes list
# several attributes on one line ("loss, sharpness : ndarray"), which :ivar: would misread
# as a type followed by a name, and a dataclass field would otherwise be described twice.
napoleon_custom_sections = [("Attributes", "params_style")]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# only where the docstring documents the parameter: a dataclass's constructor would otherwise
# repeat its "Attributes" section as an undocumented "Parameters" list
autodoc_typehints_description_target = "documented"

html_theme = "alabaster"
html_title = f"stabsim {release}"
# wide enough for the command-line help (88 columns, and the sweep example's fixed lines)
html_theme_options = {"page_width": "1200px", "body_max_width": "none"}
