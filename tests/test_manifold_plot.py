"""Smoke test of the manifold-flow figures (headless)."""

import matplotlib
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from stabsim.compare_manifold import compare_manifold_flow  # noqa: E402
from stabsim.losses import ManifoldFamily  # noqa: E402
from stabsim.plot import plot_manifold_path, plot_manifold_sharpness  # noqa: E402


def test_manifold_figures_draw(tmp_path):
    loss = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])
    result = compare_manifold_flow(loss, [1.0, 0.8, 0.3, 0.2], 0.05, 200, stride=25)
    fig = plot_manifold_path(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 3
    fig.savefig(tmp_path / "path.png")
    fig = plot_manifold_sharpness(result)
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "sharpness.png")
    # drawing into given axes returns their figure
    host = Figure()
    ax = host.subplots()
    assert plot_manifold_path(result, ax=ax) is host


def test_a_comparison_without_records_is_refused_with_its_reason():
    # a weak normal curvature: Φ(θ₀) runs out of flow time, the flow is not run, no records
    c = compare_manifold_flow(ManifoldFamily([2.0, 1e-6], [[1.0], [0.0]]), [0.5, 0.1, 0.1],
                              0.01, 20, stride=10)
    assert c.step.size == 0
    for plot in (plot_manifold_path, plot_manifold_sharpness):
        with pytest.raises(ValueError, match="no records to draw: .*raise `phi_s_max`"):
            plot(c)
    # started on Γ, where normalised GD stops at once (ZERO_GRADIENT), it has the start's
    # record alone, and draws it
    c = compare_manifold_flow(ManifoldFamily([2.0, 0.5], [[1.0], [0.2]]), [0.5, 0.0, 0.0],
                              0.01, 100)
    assert c.step.tolist() == [0]
    for plot in (plot_manifold_path, plot_manifold_sharpness):
        plot(c)
