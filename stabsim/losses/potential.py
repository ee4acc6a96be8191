"""The 1-D self-regulating potential f(x) = x²/sqrt(1 + x²) (docs/theory.md §5)."""

from __future__ import annotations

import math

import numpy as np

from .._validate import finite_float, positive_float
from ._base import Loss
from .kernels.potential import PotentialParams


class SelfRegulatingPotential(Loss):
    """f(x) = x²/sqrt(1 + x²): curvature 2 at the minimiser 0, flat far out.

    GD at step η > 1 cannot settle at 0 (there f'' = 2 > 2/η); instead it can lock into the
    period-2 orbit ±x*(η) whose effective curvature is f'(x*)/x* = 2/η. The orbit attracts
    while 0 < η f''(x*) < 2, i.e. for 1 < η < 3√3/2 (where x* = √2 and f''(x*) = 0).

    Closed forms (docs/theory.md §5):
    f'(x)/x = (2 + x²)/(1 + x²)^{3/2} and f''(x) = (2 − x²)/(1 + x²)^{5/2}.

    The loss has no parameters; θ = (x,).
    """

    name = "self_regulating"
    min_value = 0.0

    def __init__(self):
        super().__init__(PotentialParams(), 1, check=False)

    @staticmethod
    def effective_curvature(x) -> float:
        """f'(x)/x = (2 + x²)/(1 + x²)^{3/2} (its limit 2 at x = 0)."""
        t = finite_float("x", x) ** 2
        return (2.0 + t) / (1.0 + t) ** 1.5

    @staticmethod
    def curvature(x) -> float:
        """f''(x) = (2 − x²)/(1 + x²)^{5/2}."""
        t = finite_float("x", x) ** 2
        return (2.0 - t) / (1.0 + t) ** 2.5

    def orbit_amplitude(self, eta) -> float:
        """The amplitude x* > 0 of the period-2 GD orbit ±x*, solving f'(x*)/x* = 2/η.

        f'(x)/x decreases from 2 at x = 0 to 0, and f'(x)/x < 2/sqrt(1 + x²), so the root is
        unique and lies in (0, sqrt(η² − 1)].

        Raises
        ------
        ValueError
            If η ≤ 1 (then 2/η ≥ 2 and GD converges to 0: there is no orbit).
        """
        eta = positive_float("eta", eta)
        if eta <= 1.0:
            raise ValueError(f"eta must be > 1 for a period-2 orbit to exist, got {eta!r}")
        target = 2.0 / eta
        upper = math.sqrt(eta * eta - 1.0)
        from scipy.optimize import brentq  # here, not with the module: its import takes 0.1 s

        return brentq(
            lambda x: self.effective_curvature(x) - target,
            0.0,
            upper,
            xtol=1e-15,
            rtol=4 * np.finfo(float).eps,
        )

    def orbit_is_attracting(self, eta) -> bool:
        """Whether the period-2 orbit ±x*(η) attracts: 0 < η f''(x*) < 2.

        The two-step GD map has derivative (1 − η f''(x*))² at x* (f'' is even).
        """
        q = positive_float("eta", eta) * self.curvature(self.orbit_amplitude(eta))
        return 0.0 < q < 2.0
