"""Public Hypothesis strategies for property tests of stabsim and of users' own predictions.

Requires the test dependency ``hypothesis``; the main package never imports this module.
"""

from .strategies import (
    losses,
    manifold_losses,
    minimalist_losses,
    quadratic_losses,
    realisations,
    regression_models,
    scalar_networks,
    self_regulating_potentials,
    starts,
    step_sizes,
    unit_vectors,
)

__all__ = [
    "losses",
    "manifold_losses",
    "minimalist_losses",
    "quadratic_losses",
    "realisations",
    "regression_models",
    "scalar_networks",
    "self_regulating_potentials",
    "starts",
    "step_sizes",
    "unit_vectors",
]
