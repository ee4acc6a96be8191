"""The second-order (quadratic) regression model of Agarwala et al. (docs/theory.md §5)."""

from __future__ import annotations

import numpy as np

from .._validate import finite_array, nonnegative_int, positive_float, symmetric
from .._validate import seed as check_seed
from ._base import Loss
from .kernels.regression import RegressionParams, q_norms


class QuadraticRegression(Loss):
    """L(θ) = |z(θ)|²/(2n) with z(θ) = z₀ + Jθ + ½ Q[θ, θ] ∈ R^n, θ ∈ R^d.

    With the Jacobian J(θ) = J + Qθ (row k: J_k + Q_k θ),

        ∇L = J(θ)ᵀ z/n,    ∇²L = (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n.

    Progressive sharpening to 2/η happens for some draws of (J, Q, z₀), not all.

    Parameters
    ----------
    J : array_like, shape (n, d)
        The linear part.
    Q : array_like, shape (n, d, d)
        The quadratic part; each Q[k] must be symmetric.
    z0 : array_like, shape (n,)
        The residual at θ = 0.

    Notes
    -----
    L ≥ 0, but whether z(θ) = 0 is solvable depends on the draw, so ``min_value`` is None.
    """

    name = "regression"

    def __init__(self, J, Q, z0):
        J = finite_array("J", J, ndim=2)
        n, d = J.shape
        if n == 0 or d == 0:
            raise ValueError(f"J must have n ≥ 1 rows and d ≥ 1 columns, got shape {J.shape}")
        Q = finite_array("Q", Q, shape=(n, d, d))
        z0 = finite_array("z0", z0, shape=(n,))
        Q = symmetric("Q", Q)
        super().__init__(RegressionParams(z0, J, Q, q_norms(Q)), d, check=False)
        self.z0, self.J, self.Q, _ = self.params  # the record's arrays, held once

    def __repr__(self) -> str:
        return f"QuadraticRegression(d={self.d}, n={self.n})"

    @property
    def n(self) -> int:
        """Number of residuals."""
        return self.J.shape[0]

    @property
    def d(self) -> int:
        """Number of parameters."""
        return self.dim

    @classmethod
    def two_scale(cls, eta, *, d=6, n_slow=2, seed=1, q_scale=0.5, start=0.9):
        """A model with a sustained edge-of-stability regime at step size ``eta``.

        A draw of :meth:`random` whose first ("fast") residual is scaled by c ∝ 1/sqrt(η):
        L_η = (c² z₁² + z₂² + …)/(2n) = F/η + G with F and G fixed regression losses. GD with
        step η on L_η is GD with step 1 on ηL_η = F + ηG: a curvature scale tied to 2/η (the
        sharpness of F's fast residual) and a slow drive ηG along F's minimiser set
        {z₁ = 0}, on which |∇z₁|² — the sharpness — changes. θ₀ = 0 lies on {z₁ = 0} with
        sharpness ``start`` · 2/η + O(1) (the slow residuals add an η-independent
        curvature). Draws differ in whether the drive raises |∇z₁|² (progressive
        sharpening): the default seed 1 with q_scale 0.5 raises it steadily
        (over seeds 0–7, seeds 1, 2 and 6 sharpen smoothly; the others sharpen through a
        catapult or flatten).

        As η → 0 at fixed flow time ηt the EoS constants scale as α ∝ 1/η, β ∝ 1/η²,
        δ² = 2α/β ∝ η, and the cycle period 2π/(η sqrt(2α)) ∝ η^{-1/2} steps.
        """
        eta = positive_float("eta", eta)
        n_slow = nonnegative_int("n_slow", n_slow)
        base = cls.random(d, 1 + n_slow, seed=seed, q_scale=q_scale)
        n = 1 + n_slow
        z0 = base.z0.copy()
        z0[0] = 0.0  # θ = 0 lies on the fast residual's zero set
        scale = np.ones(n)
        scale[0] = np.sqrt(positive_float("start", start) * (2.0 / eta) * n
                           / (base.J[0] @ base.J[0]))
        return cls(base.J * scale[:, None], base.Q * scale[:, None, None], z0 * scale)

    @classmethod
    def random(cls, d, n, *, seed=None, j_scale=1.0, q_scale=1.0, z_scale=1.0):
        """Draw a model with independent Gaussian entries.

        J_ki ~ N(0, j_scale²/d), so each row of J has expected squared norm j_scale² and
        JJᵀ ≈ j_scale² I_n for d ≫ n; Q_k is a GOE matrix with off-diagonal entries
        ~ N(0, q_scale²/d), so its spectrum fills ≈ [−2 q_scale, 2 q_scale]; z0_k ~ N(0,
        z_scale²).

        Parameters
        ----------
        d, n : int
            Number of parameters and of residuals (≥ 1).
        seed : None, int or numpy.random.Generator
            Seed for ``numpy.random.default_rng``; the same seed gives the same model.
        j_scale, q_scale, z_scale : float
            Scales (> 0) of J, Q and z0.
        """
        d = nonnegative_int("d", d, minimum=1)
        n = nonnegative_int("n", n, minimum=1)
        j_scale = positive_float("j_scale", j_scale)
        q_scale = positive_float("q_scale", q_scale)
        z_scale = positive_float("z_scale", z_scale)
        rng = np.random.default_rng(check_seed("seed", seed))
        J = rng.normal(0.0, j_scale / np.sqrt(d), size=(n, d))
        A = rng.normal(0.0, q_scale / np.sqrt(d), size=(n, d, d))
        Q = (A + A.transpose(0, 2, 1)) / np.sqrt(2.0)
        z0 = rng.normal(0.0, z_scale, size=n)
        return cls(J, Q, z0)

    def residual(self, theta) -> np.ndarray:
        """z(θ) = z₀ + Jθ + ½ Q[θ, θ], shape (n,)."""
        theta = self.check_point(theta)
        return self.z0 + self.J @ theta + 0.5 * np.einsum("kij,i,j->k", self.Q, theta, theta)

    def jacobian(self, theta) -> np.ndarray:
        """J(θ) = J + Qθ, shape (n, d)."""
        theta = self.check_point(theta)
        return self.J + self.Q @ theta
