"""GD's matrix-free Lanczos settled by a bound on the Hessian's Frobenius norm (the
protocol's ``hessian_frobenius``; ``stabsim._lanczos.dominant_top``).

The rule: a Ritz pair (λ, y) of residual ρ has an eigenvalue μ within ρ of λ; with F ≥
‖∇²L‖_F and F < √2 (λ − ρ), every other eigenvalue ν has ν² ≤ F² − μ² < (λ − ρ)², so μ is
the top eigenvalue and nothing is left for the start mix to find, however far the Hessian
moved since the last measurement. Here the scalar network's bound; GD with a bound of its
own (a diagonal family whose top eigenvalue the warm start cannot see) in
``test_hessian_drift.py``.
"""

import numpy as np
import pytest

from stabsim.losses import ScalarNetwork
from stabsim.losses.kernels.scalar_network import WEIGHT_RANGE, hessian_frobenius


@pytest.mark.parametrize("d", [2, 3, 7, 10])
def test_scalar_network_frobenius_bounds_the_hessians_norm(d):
    # the dense Hessian from the family's hess (an independent route: prefix and suffix
    # products, not the bound's sums of inverse squares) and NumPy's Frobenius norm; 1e-13
    # relative for the rounding of the Hessian's entries
    loss = ScalarNetwork(d)
    rng = np.random.default_rng(d)
    for scale in (1e-3, 0.1, 0.5, 1.0):
        for _ in range(25):
            theta = 1.0 + scale * rng.standard_normal(d)
            norm = np.linalg.norm(loss.hessian(theta))
            assert hessian_frobenius(theta, loss.params) >= norm * (1.0 - 1e-13)


@pytest.mark.parametrize("d", [2, 5, 1000])
def test_scalar_network_frobenius_is_tight_at_the_balanced_minimiser(d):
    # at w = (1, …, 1): r = 0 and ∇²L = g gᵀ with g = (1, …, 1), whose Frobenius norm is d
    # exactly; the bound adds its rounding allowance, factors 1 + 2γ and 1 + 4γ with
    # γ = (d + 8)·eps: below 1 + 7γ while γ < 1/8
    bound = hessian_frobenius(np.ones(d), ScalarNetwork(d).params)
    eps = np.finfo(float).eps
    assert d <= bound <= d * (1.0 + 7.0 * (d + 8) * eps)


@pytest.mark.parametrize("theta", [
    [1.0, 0.0, 2.0],  # a zero weight
    [2.0 ** -501, 1.0, 1.0],  # a weight below the range
    [2.0 ** -300, 2.0 ** -300, 2.0 ** 600],  # the small ones' product below the range
    [2.0 ** 300, 2.0 ** 300, 2.0 ** -600],  # the large ones' product above it
])
def test_scalar_network_frobenius_is_infinite_where_its_products_could_leave_the_range(theta):
    theta = np.array(theta)
    assert hessian_frobenius(theta, ScalarNetwork(3).params) == np.inf
    # and just inside the range it is a finite bound
    inside = np.array([WEIGHT_RANGE ** -0.5, WEIGHT_RANGE ** 0.5, 1.0])
    assert np.isfinite(hessian_frobenius(inside, ScalarNetwork(3).params))
