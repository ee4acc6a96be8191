"""Discrete-time dynamics: exact gradient methods and the theory's maps."""

from ._reduced_results import CycleStats, ReducedEnsembleResult, ReducedResult
from .adaptive import AdaptiveResult, adaptive_threshold, run_adaptive
from .constrained import ConstrainedResult, constrained_trajectory
from .gd import (
    GDResult,
    Step,
    empirical_threshold,
    reference_point,
    run_gd,
    stability_threshold,
    step,
)
from .projection import Projection, StableGeometry, proj_M, stable_geometry
from .reduced import reduced_phase, run_reduced, run_reduced_ensemble
from .sgd import BatchSharpness, SGDResult, batch_sharpness, run_sgd

__all__ = [
    "BatchSharpness",
    "AdaptiveResult",
    "adaptive_threshold",
    "run_adaptive",
    "ConstrainedResult",
    "CycleStats",
    "GDResult",
    "Projection",
    "StableGeometry",
    "Step",
    "constrained_trajectory",
    "empirical_threshold",
    "ReducedEnsembleResult",
    "ReducedResult",
    "SGDResult",
    "batch_sharpness",
    "proj_M",
    "reduced_phase",
    "reference_point",
    "run_gd",
    "run_reduced",
    "run_reduced_ensemble",
    "run_sgd",
    "stability_threshold",
    "stable_geometry",
    "step",
]
