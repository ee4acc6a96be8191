"""Smoke tests of the reduced-map figures."""

import matplotlib
import numpy as np
import pytest

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


def test_a_run_without_records_is_refused_with_its_reason():
    # 1 + ηy0 = −1 ≤ 0: the map leaves its domain before its first record
    result = run_reduced(0.1, -20.0, 0.1, 1.0, 1.0, 100)
    assert result.step.size == 0
    for plot in (plot_reduced_phase_portrait, plot_reduced_series):
        with pytest.raises(ValueError, match="no records to draw: the reduced map left"):
            plot(result)


def test_a_comparison_whose_distances_are_all_zero_or_nan_draws_without_warnings():
    # far past 2/η GD diverges at once: no distance is positive and finite, and a log axis
    # had drawn with "Data has no positive values" warnings
    import warnings

    from stabsim import compare
    from stabsim.losses import QuadraticRegression
    from stabsim.plot import plot_comparison

    loss = QuadraticRegression.two_scale(0.01)
    result = compare(loss, np.zeros(loss.dim), 5.0, 50, warn=False)
    assert result.status.name == "DIVERGED"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_comparison(result)
    assert fig.axes[2].get_yscale() == "linear"
