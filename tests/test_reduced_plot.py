"""Smoke tests of the reduced-map figures."""

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from stabsim.maps.reduced import run_reduced  # noqa: E402
from stabsim.plot import plot_reduced_phase_portrait, plot_reduced_series  # noqa: E402


def test_phase_portrait_and_series():
    r = run_reduced(0.3, -0.2, 0.05, 1.0, 2.0, 600)
    fig = plot_reduced_phase_portrait(r)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 4  # all four phases are visited
    fig = plot_reduced_series(r)
    assert [a.get_ylabel() for a in fig.axes] == ["x_t", "y_t"]
    assert fig.axes[1].get_xlabel() == "step t"
    fig2 = Figure()
    ax = fig2.subplots()
    assert plot_reduced_phase_portrait(r, ax=ax) is fig2
