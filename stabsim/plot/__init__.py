"""Matplotlib figures of stabsim's results (headless-safe: no pyplot state).

- :func:`plot_loss_and_sharpness`: a :class:`~stabsim.maps.GDResult` or an
  :class:`~stabsim.maps.AdaptiveResult`;
- :func:`plot_batch_sharpness`: :class:`~stabsim.maps.SGDResult` runs;
- :func:`plot_reduced_phase_portrait`, :func:`plot_reduced_series`: a
  :class:`~stabsim.maps.ReducedResult`;
- :func:`plot_comparison`, :func:`plot_x_prediction`: a
  :class:`~stabsim.comparison.Comparison`;
- :func:`plot_manifold_path`: a :class:`~stabsim.compare_manifold.ManifoldComparison` or a
  :class:`~stabsim.flows.ManifoldFlowResult`; :func:`plot_manifold_sharpness`: a
  ManifoldComparison;
- :func:`plot_phase_diagram`: a sweep result as an ``xarray.Dataset`` (and
  ``stabsim.plot.catapult.plot_catapult`` a catapult sweep of the uv model).

The other results (flows, projections, ensembles and the like) have no figure here; their
``to_xarray()`` holds what they recorded.
"""

from .compare import plot_comparison, plot_x_prediction
from .gd import plot_loss_and_sharpness
from .manifold import plot_manifold_path, plot_manifold_sharpness
from .reduced import plot_reduced_phase_portrait, plot_reduced_series
from .sgd import plot_batch_sharpness
from .sweep import plot_phase_diagram

__all__ = [
    "plot_batch_sharpness",
    "plot_comparison",
    "plot_loss_and_sharpness",
    "plot_manifold_path",
    "plot_manifold_sharpness",
    "plot_phase_diagram",
    "plot_reduced_phase_portrait",
    "plot_reduced_series",
    "plot_x_prediction",
]
