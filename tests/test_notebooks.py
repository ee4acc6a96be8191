"""The validation notebooks (notebooks/*.py, jupytext py:percent) run and pass their asserts.

Each notebook asserts on the numbers it computes; here it is executed at its small size
(``STABSIM_NOTEBOOK_SIZE=small``) in this process, so compiled kernels are shared between
notebooks, and jupytext must be able to read it.
"""

import pathlib
import runpy

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SLOW = {"08_bring_your_own_network"}  # notebooks whose small size takes more than ~20 s


def _notebooks():
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
            for p in paths]


def test_notebooks_exist():
    assert len(_notebooks()) >= 1


@pytest.mark.parametrize("path", _notebooks())
def test_notebook_is_readable_by_jupytext(path):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(path)
    kinds = {cell.cell_type for cell in nb.cells}
    assert kinds == {"markdown", "code"}
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"


@pytest.mark.parametrize("path", _notebooks())
def test_notebook_runs_at_small_size(path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("STABSIM_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    runpy.run_path(str(path), run_name="__main__")
