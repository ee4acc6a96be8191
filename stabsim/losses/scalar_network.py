"""Scalar networks L(w) = ½ (∏ w_i − 1)² (Kreisler et al.; docs/theory.md §5)."""

from __future__ import annotations

import math

import numpy as np

from .._validate import nonnegative_int
from ._base import Loss
from .kernels.scalar_network import ScalarNetworkParams


class ScalarNetwork(Loss):
    """L(w) = ½ (∏_i w_i − 1)² for w ∈ R^depth, depth ≥ 2.

    The minimisers are {∏ w_i = 1}. There ∇²L = g gᵀ with g_i = ∏_{j≠i} w_j = 1/w_i, so the
    sharpness of a minimiser is |g|² = Σ_i 1/w_i² ≥ depth (equality at the balanced
    minimisers |w_i| = 1, by AM–GM).

    Gradient flow conserves w_i² − w_j², and keeps ∏ w_i > 0 if it starts there (P = ∏ w_i
    moves monotonically towards 1), so its limit, the gradient-flow solution (GFS), is

        w*_i = sign(w_i) sqrt(w_i² + s),   ∏_i (w_i² + s) = 1,

    and its sharpness, the GFS sharpness, is ψ(w) = Σ_i 1/(w_i² + s) (= |g(w*)|² above).

    Parameters
    ----------
    depth : int
        Number of scalar layers, ≥ 2.
    """

    name = "scalar_network"
    min_value = 0.0

    def __init__(self, depth):
        depth = nonnegative_int("depth", depth, minimum=2)
        super().__init__(ScalarNetworkParams(), depth, check=False)

    def __repr__(self) -> str:
        return f"ScalarNetwork(depth={self.dim})"

    @property
    def depth(self) -> int:
        """Number of layers."""
        return self.dim

    def _gfs_squares(self, w) -> np.ndarray:
        """w*² = w² + s, with s found by brentq in τ = log(s + min w²)."""
        w = self.check_point(w, "w")
        if np.prod(np.sign(w)) <= 0.0:
            raise ValueError(
                "w must have a positive product ∏ w_i > 0 (no zero entry, an even number of "
                "negative entries): only then does gradient flow reach ∏ w_i = 1"
            )
        a = w * w - np.min(w * w)  # ≥ 0 with a zero entry; w*² = a + t, t = e^τ
        # F(τ) = Σ log(a_i + e^τ) is increasing, F(0) ≥ 0 and F(τ) < 0 below τ_lo.
        tau_lo = -(self.dim - 1) * math.log1p(float(np.max(a))) - 1.0
        from scipy.optimize import brentq  # here, not with the module: its import takes 0.1 s

        tau = brentq(
            lambda tau: float(np.sum(np.log(a + math.exp(tau)))),
            tau_lo,
            0.0,
            xtol=1e-15,
            rtol=4 * np.finfo(float).eps,
        )
        return a + math.exp(tau)

    def gfs(self, w) -> np.ndarray:
        """The gradient-flow solution w* reached from ``w`` (requires ∏ w_i > 0)."""
        return np.sign(self.check_point(w, "w")) * np.sqrt(self._gfs_squares(w))

    def gfs_sharpness(self, w) -> float:
        """ψ(w) = Σ_i 1/(w_i² + s), the sharpness λ_max(∇²L(w*)) of the GFS."""
        return float(np.sum(1.0 / self._gfs_squares(w)))

    def sharpness_at_minimiser(self, w, rtol: float = 1e-8) -> float:
        """λ_max(∇²L(w)) = Σ_i 1/w_i² at a minimiser (|∏ w_i − 1| ≤ ``rtol``)."""
        w = self.check_point(w, "w")
        if abs(np.prod(w) - 1.0) > rtol:
            raise ValueError(f"w is not a minimiser: ∏ w_i − 1 = {np.prod(w) - 1.0:.3g}")
        return float(np.sum(1.0 / (w * w)))
