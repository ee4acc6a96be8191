"""The figures refuse bad ``coords`` and ``axes`` before drawing, naming the argument and what
it must be, and draw the adaptive runs and standalone manifold flows their docstrings list."""

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from stabsim.compare_manifold import compare_manifold_flow  # noqa: E402
from stabsim.flows import manifold_flow  # noqa: E402
from stabsim.losses import ManifoldFamily, ScalarNetwork  # noqa: E402
from stabsim.maps import run_adaptive, run_gd  # noqa: E402
from stabsim.maps.reduced import run_reduced  # noqa: E402
from stabsim.plot import (  # noqa: E402
    plot_loss_and_sharpness,
    plot_manifold_path,
    plot_manifold_sharpness,
    plot_reduced_phase_portrait,
    plot_reduced_series,
)

#: m = 2 chart coordinates and k = 2 normal ones: θ ∈ R^4
MANIFOLD = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])
START = [1.0, 0.8, 0.3, 0.2]
NET = ScalarNetwork(3)
NET_START = [1.3, 0.9, 0.7]


@pytest.fixture(scope="module")
def comparison():
    return compare_manifold_flow(MANIFOLD, START, 0.05, 200, stride=25)


@pytest.fixture(scope="module")
def flow():
    return manifold_flow(MANIFOLD, MANIFOLD.on_manifold(START[:2]), 0.05, 200, stride=25)


@pytest.fixture(scope="module")
def gd():
    return run_gd(NET, NET_START, 0.05, 20)


def _drawn(ax):
    """What a figure function left on ``ax``."""
    return len(ax.lines) + len(ax.collections) + len(ax.patches)


# -- coords of plot_manifold_path ---------------------------------------------------------------


@pytest.mark.parametrize("which", ["comparison", "flow"])
@pytest.mark.parametrize(("coords", "error"), [
    ((0, 4), ValueError), ((-5, 0), ValueError), ((0,), TypeError), ((0, 1, 2), TypeError),
    (("a", "b"), TypeError), ((0.0, 1.0), TypeError), ((True, 0), TypeError), (3, TypeError),
    ("01", TypeError), (None, TypeError)])
def test_bad_coords_are_refused_with_the_valid_range_before_drawing(request, which, coords,
                                                                    error):
    ax = Figure().subplots()
    with pytest.raises(error, match=r"coords must be two int indices of θ in \[-4, 3\] "
                                    r"\(d = 4\)"):
        plot_manifold_path(request.getfixturevalue(which), ax=ax, coords=coords)
    assert _drawn(ax) == 0


def test_coords_draw_the_coordinates_they_name(comparison):
    for coords, (i, j) in [((2, 3), (2, 3)), (np.array([3, 0]), (3, 0)), ((-1, 0), (3, 0)),
                           ((np.int64(1), np.int32(2)), (1, 2))]:
        ax = plot_manifold_path(comparison, coords=coords).axes[0]
        flow_line = ax.lines[0]
        assert np.array_equal(flow_line.get_xdata(), comparison.flow[:, i])
        assert np.array_equal(flow_line.get_ydata(), comparison.flow[:, j])
        assert (ax.get_xlabel(), ax.get_ylabel()) == (f"θ[{i}]", f"θ[{j}]")


# -- axes and ax ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reduced():
    return run_reduced(0.3, -0.2, 0.05, 1.0, 2.0, 100)


#: the figures of two panels, with a result each can draw
TWO_PANELS = [(plot_loss_and_sharpness, "gd"), (plot_reduced_series, "reduced"),
              (plot_manifold_sharpness, "comparison")]


@pytest.mark.parametrize(("plot", "which"), TWO_PANELS)
def test_a_single_axes_where_two_are_wanted_is_refused(request, plot, which):
    ax = Figure().subplots()
    with pytest.raises(TypeError, match="axes must be a sequence of 2 matplotlib Axes .*"
                                        "got Axes"):
        plot(request.getfixturevalue(which), axes=ax)
    assert _drawn(ax) == 0


@pytest.mark.parametrize(("plot", "which"), TWO_PANELS)
def test_a_wrong_number_of_axes_is_refused(request, plot, which):
    axes = Figure().subplots(3)
    with pytest.raises(ValueError, match="axes must be a sequence of 2 matplotlib Axes .*"
                                         "got a sequence of 3"):
        plot(request.getfixturevalue(which), axes=axes)
    assert all(_drawn(ax) == 0 for ax in axes)


@pytest.mark.parametrize("axes", [[None, None], "ab", Figure().subplots(2, 1, squeeze=False)])
def test_axes_that_are_not_a_sequence_of_axes_are_refused(gd, axes):
    with pytest.raises(TypeError, match="axes must be a sequence of 2 matplotlib Axes"):
        plot_loss_and_sharpness(gd, axes=axes)


def test_a_sequence_where_one_axes_is_wanted_is_refused(reduced):
    ax = Figure().subplots()
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes, got list"):
        plot_reduced_phase_portrait(reduced, ax=[ax])
    assert _drawn(ax) == 0


def test_two_given_axes_are_drawn_on(gd):
    host = Figure()
    for axes in (host.subplots(2), list(host.subplots(2))):
        assert plot_loss_and_sharpness(gd, axes=axes) is host
        assert all(_drawn(ax) > 0 for ax in axes)


# -- an AdaptiveResult in plot_loss_and_sharpness --------------------------------------------


@pytest.mark.parametrize(("method", "beta1"), [("rmsprop", 0.0), ("adam", 0.9),
                                                ("scalar_rmsprop", 0.0)])
def test_an_adaptive_run_draws_its_loss_and_both_sharpnesses_against_its_threshold(method,
                                                                                   beta1):
    result = run_adaptive(NET, NET_START, 0.01, 60, method=method, beta1=beta1)
    fig = plot_loss_and_sharpness(result)
    assert isinstance(fig, Figure)
    loss_ax, sharp_ax = fig.axes
    (loss_line,) = loss_ax.lines
    assert np.array_equal(loss_line.get_ydata(), result.loss)
    assert loss_line.get_label() == method
    pre, raw, threshold = sharp_ax.lines
    assert np.array_equal(pre.get_ydata(), result.preconditioned_sharpness)
    assert pre.get_label() == f"{method} λ_max(P⁻¹∇²L)"
    assert np.array_equal(raw.get_ydata(), result.sharpness)
    assert raw.get_label() == f"{method} λ_max(∇²L)"
    assert np.all(np.asarray(threshold.get_ydata()) == result.threshold)  # (2 + 2β₁)/((1 − β₁)η)
    assert threshold.get_label() == f"threshold {result.threshold:.4g}"
    assert sharp_ax.get_yscale() == "log"  # both sharpnesses are positive here
    legend = [t.get_text() for t in sharp_ax.get_legend().get_texts()]
    assert legend == [pre.get_label(), raw.get_label(), threshold.get_label()]
    assert ("β₁ = 0.9" in loss_ax.get_title()) == (method == "adam")
    fig.savefig(io.BytesIO(), format="png")


def test_an_adams_threshold_is_not_two_over_eta():
    result = run_adaptive(NET, NET_START, 0.01, 10, method="adam", beta1=0.9)
    threshold = plot_loss_and_sharpness(result).axes[1].lines[2]
    assert np.allclose(threshold.get_ydata(), 38.0 / 0.01, rtol=1e-12)


def test_a_gd_run_keeps_its_figure(gd):
    loss_ax, sharp_ax = plot_loss_and_sharpness(gd).axes
    assert [line.get_label() for line in loss_ax.lines] == ["GD"]
    assert sharp_ax.lines[0].get_label() == "GD sharpness"
    assert np.array_equal(sharp_ax.lines[0].get_ydata(), gd.sharpness[:, 0])


# -- a ManifoldFlowResult in plot_manifold_path ------------------------------------------------


def test_a_manifold_flow_alone_draws_its_path_and_start(flow):
    assert flow.success and flow.step.size > 1
    fig = plot_manifold_path(flow, coords=(0, 1))
    (ax,) = fig.axes
    path, start = ax.lines
    assert np.array_equal(path.get_xdata(), flow.trajectory[:, 0])
    assert np.array_equal(path.get_ydata(), flow.trajectory[:, 1])
    assert path.get_label() == f"manifold flow (c = {flow.coefficient:g})"
    assert (start.get_xdata()[0], start.get_ydata()[0]) == tuple(flow.trajectory[0, :2])
    assert start.get_label() == "X(0)"
    assert "normalised GD's flow on Γ" in ax.get_title()
    fig.savefig(io.BytesIO(), format="png")



def test_runs_failed_at_their_start_are_refused_with_their_message():
    from stabsim.losses import Minimalist, QuadraticRegression
    from stabsim.maps import run_sgd
    from stabsim.plot import plot_batch_sharpness

    # |θ₀| = 1e300: the loss overflows at step 0, so the run has no record at all
    gd = run_gd(Minimalist(), np.array([1e300, 1e300]), 0.1, 10)
    assert gd.step.size == 0 and not gd.success
    with pytest.raises(ValueError, match="no records to draw: a NaN or inf appeared"):
        plot_loss_and_sharpness(gd)
    loss = QuadraticRegression.random(5, 7, seed=4)
    sgd = run_sgd(loss, np.full(loss.dim, 1e300), 0.1, 10, batch_size=2)
    assert sgd.step.size == 0 and not sgd.success
    with pytest.raises(ValueError, match="no records to draw"):
        plot_batch_sharpness([sgd])
