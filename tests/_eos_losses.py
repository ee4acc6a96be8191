"""A second-order regression model with a sustained edge-of-stability regime.

``two_scale_regression(eta)`` is a :class:`~stabsim.losses.QuadraticRegression` whose first
residual is scaled by c ∝ 1/sqrt(η): L_η = (c² z₁² + z₂² + z₃²)/(2n) = F/η + G, with F and G
fixed (η-independent) regression losses. GD with step η on L_η is GD with step 1 on
ηL_η = F + ηG: a fixed curvature scale tied to 2/η (the sharpness of F's fast residual) and a
slow drive ηG along F's minimiser set {z₁ = 0}, where |∇z₁|² — the sharpness — changes.
Random draws differ in whether that drive raises |∇z₁|² (progressive sharpening) or lowers
it; seed 1 with q_scale 0.5 raises it steadily (searched over seeds 0–7 and q_scale 0.5, 1:
seeds 1, 2 and 6 sharpen smoothly, the others sharpen through a catapult or flatten), and
θ₀ = 0 starts on {z₁ = 0} with sharpness 0.9 · 2/η.

Scalings as η → 0 at fixed flow time τ = ηt (THEORY §1 constants at the EoS): ∇S ∝ 1/η and
∇L ≈ ∇G = O(1) on {z₁ = 0}, so α = −∇L·∇S ∝ 1/η, β = |∇S|² ∝ 1/η², δ² = 2α/β ∝ η; the cycle
period 2π/(η sqrt(2α)) ∝ η^{-1/2} steps and a fixed flow time is ∝ 1/η steps.
"""

import numpy as np

from stabsim.losses import QuadraticRegression

D, N_SLOW, SEED, Q_SCALE, START = 6, 2, 1, 0.5, 0.9


def two_scale_regression(eta, *, d=D, n_slow=N_SLOW, seed=SEED, q_scale=Q_SCALE, start=START):
    """L_η = F/η + G (module docstring); θ = 0 has sharpness ≈ ``start`` · 2/η."""
    base = QuadraticRegression.random(d, 1 + n_slow, seed=seed, q_scale=q_scale)
    n = 1 + n_slow
    z0 = base.z0.copy()
    z0[0] = 0.0  # θ = 0 lies on the fast residual's zero set
    scale = np.ones(n)
    scale[0] = np.sqrt(start * (2.0 / eta) * n / (base.J[0] @ base.J[0]))
    return QuadraticRegression(base.J * scale[:, None], base.Q * scale[:, None, None],
                               z0 * scale)
