"""Matplotlib figures for every result type (headless-safe: no pyplot state)."""

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
