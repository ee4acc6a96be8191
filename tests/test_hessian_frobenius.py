"""GD's matrix-free Lanczos settled by a bound on the Hessian's Frobenius norm (the
protocol's ``hessian_frobenius``; ``stabsim._lanczos.dominant_top``).

The rule: a Ritz pair (λ, y) of residual ρ has an eigenvalue μ within ρ of λ; with F ≥
‖∇²L‖_F and F < √2 (λ − ρ), every other eigenvalue ν has ν² ≤ F² − μ² < (λ − ρ)², so μ is
the top eigenvalue and nothing is left for the start mix to find, however far the Hessian
moved since the last measurement.
"""

import numpy as np
import pytest
from user_families import FrobeniusValley

from stabsim.losses import Loss, ScalarNetwork
from stabsim.losses.kernels.scalar_network import WEIGHT_RANGE, hessian_frobenius
from stabsim.maps import run_gd


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


def _valley(factor=1.0 + 1e-14, check=True):
    return Loss(FrobeniusValley(0.6, 0.1, factor), 3, check=check)


def _valley_run(loss, steps=120):
    # θ₁ moves from 1.4 (cos = 0.17 below a = 0.6) towards 0 (cos → 1): the top eigenvalue
    # passes from e₀, the warm start, to e₁, which the warm start's Krylov space never
    # reaches (the Hessian is diagonal): only the start mix finds it
    theta0 = np.array([1.0, 1.4, 1.0])
    return run_gd(loss, theta0, 0.5, steps, eigensolver="lanczos", record_trajectory=True,
                  find_crossing=False, eig_tol=1e-10)


def test_gd_with_a_frobenius_bound_finds_the_top_eigenvalue_the_warm_start_cannot_see():
    # F² = 0.37 + cos² θ₁ < 2 (0.6 − ρ)² only while cos² θ₁ < 0.35, below the tracked 0.6:
    # from there on the bound settles nothing, the start is mixed, and the mix finds e₁
    result = _valley_run(_valley())
    assert result.success
    exact = np.maximum(0.6, np.cos(result.trajectory[:, 1]))  # diag(a, cos θ₁, c), c = 0.1
    # converged (every residual within the tolerance relative to the Ritz value, which is
    # the scale here), and the Ritz value within its residual of the top eigenvalue
    assert np.all(result.eig_residual <= 1e-10 * result.sharpness[:, 0])
    assert np.all(np.abs(result.sharpness[:, 0] - exact) <= result.eig_residual + 1e-15)
    assert exact[0] == 0.6 and exact[-1] > 0.99  # the top eigenvector did change


def test_gd_with_a_frobenius_bound_takes_one_product_where_the_top_eigenvalue_dominates():
    # once cos θ₁ is the tracked top (F² = 0.37 + cos² θ₁ < 2 cos² θ₁ for cos θ₁ > 0.61)
    # and θ₁ moves less than τ cos θ₁ a step, the previous eigenvector meets the tolerance
    # at once and the bound settles it: the last 300 steps cost 300 products; θ₁ still
    # moves at each step of the first 200 (it decays as (1 − η)^t), so no Weyl-type
    # argument on the change of the Hessian is needed (none is registered)
    loss = _valley()
    short, long = _valley_run(loss, 200), _valley_run(loss, 500)
    assert long.counters["lanczos_products"] - short.counters["lanczos_products"] == 300
    assert np.all(np.diff(short.trajectory[-20:, 1]) != 0.0)
    without = _valley_run(_valley(factor=1e300), 200)
    # with a bound far above every norm every start is mixed: two or more products each
    assert without.counters["lanczos_products"] >= 2 * 201
    np.testing.assert_allclose(without.sharpness, short.sharpness, rtol=1e-9)


def test_a_false_frobenius_bound_is_refused_at_construction_and_misleads_the_engine():
    # half the norm: below it at every point, and below |λ| at the check's power-iteration
    # vector, so the check's lower bound catches it
    with pytest.raises(ValueError, match="hessian_frobenius returned .* upper bound"):
        _valley(factor=0.5)
    # unchecked, the false bound certifies the warm start's 0.6 at every step: what the
    # construction check is for
    result = _valley_run(_valley(factor=0.5, check=False))
    assert result.success
    assert result.sharpness[-1, 0] == pytest.approx(0.6, rel=1e-9)
    assert np.cos(result.trajectory[-1, 1]) > 0.99
