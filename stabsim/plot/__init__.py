"""Matplotlib figures for every result type (headless-safe: no pyplot state)."""

from .gd import plot_loss_and_sharpness

__all__ = ["plot_loss_and_sharpness"]
