"""Discrete-time dynamics: exact gradient methods and the theory's maps."""

from .gd import GDResult, reference_point, run_gd, stability_threshold

__all__ = ["GDResult", "reference_point", "run_gd", "stability_threshold"]
