"""``compare`` on ``QuadraticRegression.two_scale(η)`` from θ = 0 over a flow time ηt, run once
per test session.

tests/test_compare.py, tests/test_delta_convention.py and tests/test_projected_convention.py
fit orders in η to the same comparisons (η = 0.01, 0.005, 0.0025 at flow time 12, the
largest step size also on its own). A comparison is deterministic (runs repeat bit for bit,
tests/test_gd_conformance.py) and those tests only read it, so one run per step size serves
them all.
"""

import functools

import numpy as np

from stabsim.comparison import compare
from stabsim.losses import QuadraticRegression


@functools.cache
def two_scale_comparison(eta: float, flow_time: float = 12.0):
    """GD against θ†, θ† + v, gradient flow and the central flow for ``flow_time/η`` steps."""
    loss = QuadraticRegression.two_scale(eta)
    return compare(loss, np.zeros(loss.dim), eta, int(round(flow_time / eta)), warn=False)
