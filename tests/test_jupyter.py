"""In Jupyter: figures display inline, progress bars appear only where seen, statuses print
their names."""

import os
import pathlib
import warnings

import pytest

from stabsim import _progress
from stabsim._status import Status
from stabsim.maps import run_reduced
from stabsim.plot import plot_reduced_series

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_plot_renders_as_png_through_ipythons_display_formatter():
    formatters = pytest.importorskip("IPython.core.formatters")
    result = run_reduced(1e-3, 0.0, 0.1, 1.0, 1.0, 200)
    fig = plot_reduced_series(result)
    data, _ = formatters.DisplayFormatter().format(fig)
    # the notebook shows the richest type; a PNG means an inline image, not "<Figure ...>"
    assert data["image/png"].startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_a_plot_returned_by_a_cell_shows_inline_in_a_jupyter_kernel():
    """In a real kernel, without ``%matplotlib inline`` and without importing pyplot."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    code = ("from stabsim.maps import run_reduced\n"
            "from stabsim.plot import plot_reduced_series\n"
            "plot_reduced_series(run_reduced(1e-3, 0.0, 0.1, 1.0, 1.0, 200))")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)  # the kernel imports this checkout's stabsim
    client.start_new_kernel_client()
    try:
        client.execute_cell(notebook.cells[0], 0)
    finally:
        client._cleanup_kernel()
    (output,) = notebook.cells[0].outputs
    assert output["output_type"] == "execute_result" and "image/png" in output["data"]


def test_status_prints_its_name():
    assert str(Status.OK) == "OK"
    assert f"{Status.DIVERGED}" == "DIVERGED" and f"{Status.OK:>4}" == "  OK"
    assert repr(Status.LEFT_DOMAIN) == "Status.LEFT_DOMAIN"
    assert Status.DIVERGED == 2 and int(Status.DIVERGED) == 2  # still the kernels' integer


def _bar(monkeypatch, *, notebook, widgets, tty, enabled):
    monkeypatch.setattr(_progress, "in_notebook", lambda: notebook)
    monkeypatch.setattr(_progress, "has_widgets", lambda: widgets)
    monkeypatch.setattr(_progress.sys.stderr, "isatty", lambda: tty, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a quiet choice: no "IProgress not found" warning
        return _progress.progress_bar(10, enabled=enabled)


@pytest.mark.parametrize(("notebook", "tty", "enabled", "shown"), [
    (False, True, None, True),     # a terminal: a text bar
    (False, False, None, False),   # output to a file or a pipe: nothing
    (True, False, None, False),    # a notebook without ipywidgets: nothing, and no warning
    (False, False, True, True),    # asked for: shown anyway
    (False, True, False, False),   # declined: never
])
def test_progress_bar_is_text_only_where_seen(monkeypatch, notebook, tty, enabled, shown):
    bar = _bar(monkeypatch, notebook=notebook, widgets=False, tty=tty, enabled=enabled)
    assert bar.disable is not shown
    bar.update(10)
    bar.close()


def test_progress_bar_is_a_widget_in_a_notebook_with_ipywidgets(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as widget

    assert isinstance(_bar(monkeypatch, notebook=True, widgets=True, tty=False, enabled=None),
                      widget)


def test_outside_a_kernel_is_not_a_notebook():
    assert not _progress.in_notebook()
