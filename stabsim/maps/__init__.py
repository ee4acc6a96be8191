"""Discrete-time dynamics: exact gradient methods and the theory's maps."""

from ._reduced_results import CycleStats, ReducedEnsembleResult, ReducedResult
from .gd import GDResult, empirical_threshold, reference_point, run_gd, stability_threshold
from .reduced import reduced_phase, run_reduced, run_reduced_ensemble

__all__ = [
    "CycleStats",
    "GDResult",
    "empirical_threshold",
    "ReducedEnsembleResult",
    "ReducedResult",
    "reduced_phase",
    "reference_point",
    "run_gd",
    "run_reduced",
    "run_reduced_ensemble",
    "stability_threshold",
]
