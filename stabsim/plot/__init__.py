"""Matplotlib figures for every result type (headless-safe: no pyplot state)."""

from .gd import plot_loss_and_sharpness
from .reduced import plot_reduced_phase_portrait, plot_reduced_series

__all__ = ["plot_loss_and_sharpness", "plot_reduced_phase_portrait", "plot_reduced_series"]
