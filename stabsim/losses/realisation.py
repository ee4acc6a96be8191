"""A loss on which GD is exactly the reduced (x, y) map (docs/theory.md §1)."""

from __future__ import annotations

import numpy as np

from .._validate import finite_array, finite_float, positive_float
from ._base import Loss
from .kernels.realisation import RealisationParams


class ReducedMapRealisation(Loss):
    """L(x, w) = ½ (2/η + b w) x² − (α/b) w, θ = (x, w).

    GD at step η is ``x' = −(1 + η b w) x``, ``w' = w − η (½ b x² − α/b)``; in the variables
    (x, y = b w) this is exactly the reduced map of Damian et al.

        x_{t+1} = −(1 + η y_t) x_t,    y_{t+1} = y_t + η (α − β x_t²/2),    β = b².

    Its sharpness is not that of the map's θ* (this loss is indefinite); it is a test bed that
    reproduces the map to round-off through any GD engine. L is unbounded below.

    Parameters
    ----------
    eta : float
        The step size η > 0 the realisation is built for.
    alpha : float
        The progressive-sharpening rate α (the theory assumes α > 0; any finite value works).
    b : float
        Scale of w, nonzero; β = b².

    Notes
    -----
    Its parameter record is ``RealisationParams(eta, alpha, b)``.
    """

    name = "realisation"
    min_value = -np.inf

    def __init__(self, eta, alpha, b=1.0):
        self.eta = positive_float("eta", eta)
        self.alpha = finite_float("alpha", alpha)
        self.b = finite_float("b", b)
        if self.b == 0.0:
            raise ValueError("b must be nonzero")
        super().__init__(RealisationParams(self.eta, self.alpha, self.b), 2, check=False)

    @property
    def beta(self) -> float:
        """β = b²."""
        return self.b * self.b

    @property
    def delta2(self) -> float:
        """δ² = 2α/β, the mean of x² over a cycle of the map."""
        return 2.0 * self.alpha / self.beta

    def to_theta(self, x, y) -> np.ndarray:
        """θ = (x, y/b) for the map state (x, y)."""
        return np.array([finite_float("x", x), finite_float("y", y) / self.b])

    def from_theta(self, theta) -> tuple[float, float]:
        """The map state (x, y) = (θ_0, b θ_1); ``theta`` may also be an array (..., 2)."""
        theta = finite_array("theta", theta)
        if theta.shape[-1:] != (2,):
            raise ValueError(f"theta must have last dimension 2, got shape {theta.shape}")
        x = theta[..., 0]
        y = self.b * theta[..., 1]
        if theta.ndim == 1:
            return float(x), float(y)
        return x, y
