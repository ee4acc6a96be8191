"""The validation notebooks (notebooks/*.py, jupytext py:percent) run headless and pass their
asserts.

Each notebook is converted by jupytext to the ``.ipynb`` a reader opens, and executed cell by
cell in a Jupyter kernel through ``nbclient``, at its small size
(``STABSIM_NOTEBOOK_SIZE=small``), in ``notebooks/`` (where its helper module ``_study.py``
lives), importing this checkout. Its asserts are the checks. The executed notebook is then
stored as the documentation gallery's outputs for that code (``docs/_ext/gallery_store.py``),
so the docs build (``tests/test_docs.py``, run after this file) renders them instead of
executing every notebook again: each notebook runs once per test run.
"""

import os
import pathlib
import re
import sys
import time

import pytest

#: one worker runs the gallery chain in order (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("gallery")
ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SLOW = {"08_bring_your_own_network"}  # notebooks whose small size takes more than ~20 s

sys.path.insert(0, str(ROOT / "docs" / "_ext"))
try:
    import gallery_store
finally:
    sys.path.remove(str(ROOT / "docs" / "_ext"))


def _notebooks():
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
            for p in paths]


def test_notebooks_exist():
    assert len(_notebooks()) >= 1


@pytest.mark.parametrize("path", _notebooks())
def test_notebook_is_readable_by_jupytext(path):
    nb = gallery_store.read(path)
    kinds = {cell.cell_type for cell in nb.cells}
    assert kinds == {"markdown", "code"}
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"


#: the test harness a reader should not see in a notebook's visible code: the size switch,
#: the backend selection and the kernel detection live in notebooks/_study.py, and results
#: are shown as tables and conclusions, not printed
HARNESS = ("os.environ", "matplotlib.use", "sys.modules", "INTERACTIVE", "print(")


@pytest.mark.parametrize("path", _notebooks())
def test_notebook_hides_its_harness(path):
    """A notebook reads as a study: its first code cell, hidden (tag ``remove-cell``), holds
    the imports and the size switch from ``_study``; no other code cell imports at top level
    or shows any of :data:`HARNESS`."""
    code = [cell for cell in gallery_store.read(path).cells if cell.cell_type == "code"]
    hidden = [cell for cell in code if "remove-cell" in cell.metadata.get("tags", [])]
    assert hidden == code[:1], "one hidden setup cell, the first code cell"
    assert re.search(r"^from _study import ", code[0].source, re.MULTILINE)
    for cell in code[1:]:
        shown = [word for word in HARNESS if word in cell.source]
        assert not shown, (shown, cell.source[:200])
        assert not re.search(r"^(import|from \S+ import) ", cell.source, re.MULTILINE), \
            cell.source[:200]


@pytest.mark.parametrize("path", _notebooks())
def test_notebook_executes_headless_at_small_size(path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("STABSIM_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # the .ipynb jupytext writes for a reader, read back: what Jupyter opens
    notebook = nbformat.reads(nbformat.writes(gallery_store.read(path)), as_version=4)
    gallery_store.forget(notebook)  # a failure below leaves no stale outputs for the docs
    started = time.perf_counter()
    # record_timing=False: per-cell timestamps in the cell metadata would change the code's
    # cache key (jupyter-cache hashes the code cells with their metadata)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    gallery_store.store(notebook, ROOT / "docs" / "gallery" / path.name,
                        time.perf_counter() - started)
    assert gallery_store.stored(path)  # the docs build finds these outputs: no second run
