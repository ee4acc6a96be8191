"""The minimalist example of Zhu et al. (docs/theory.md §5)."""

from __future__ import annotations

import numpy as np

from .._validate import finite_float
from ._base import Loss
from .kernels.minimalist import MinimalistParams


class Minimalist(Loss):
    """ℓ(x, y) = ¼ (x²y² − 1)², θ = (x, y).

    The minimisers are the hyperbolas xy = ±1. There ∇²ℓ = 2 [[y², xy], [xy, x²]] (rank one),
    so the sharpness is 2(x² + y²) ≥ 4. Gradient flow conserves x² − y² = c, so its
    solution on xy = 1 has sharpness 2√(c² + 4). When that exceeds 2/η and the start lies
    in a bounded range, GD at step η converges, non-monotonically, to a minimiser with
    sharpness just below 2/η (docs/theory.md §5). Otherwise it need not: below, GD ends
    near the gradient-flow solution (from (1.2, 0.8) at η = 0.05, S·η/2 = 0.108); too far
    above, it diverges (from (3.0, 0.4) at η = 0.3).
    """

    name = "minimalist"
    min_value = 0.0

    def __init__(self):
        super().__init__(MinimalistParams(), 2, check=False)

    @staticmethod
    def minimiser(x) -> np.ndarray:
        """The minimiser (x, 1/x) on the branch xy = 1, for x ≠ 0."""
        x = finite_float("x", x)
        if x == 0.0:
            raise ValueError("x must be nonzero")
        return np.array([x, 1.0 / x])

    def sharpness_at_minimiser(self, theta, rtol: float = 1e-8) -> float:
        """2(x² + y²) at a minimiser (||xy| − 1| ≤ ``rtol``)."""
        x, y = self.check_point(theta)
        if abs(abs(x * y) - 1.0) > rtol:
            raise ValueError(f"theta is not a minimiser: |xy| − 1 = {abs(x * y) - 1.0:.3g}")
        return 2.0 * (x * x + y * y)
