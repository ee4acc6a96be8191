"""GD's dense Lanczos without the dense part of the Hessian where the family bounds it below
an allowance (the protocol's ``hessian_parts_within``): the regression model near a
zero-loss minimiser, and a family built so that each branch of the engine's rule is taken.

The rule (``stabsim.maps._gd_kernels._measure``): with a dense part h of 2-norm at most b
left out, Lanczos measures A − h to half the tolerance τ and reports the residual
|(A − h)v − λv| + b, which bounds |Av − λv|; it is accepted where b ≤ τ|λ|/2, and
otherwise the whole Hessian is formed and measured again.
"""

import numpy as np
import pytest
from user_families import LeftOutIdentity

from stabsim.losses import Loss, QuadraticRegression
from stabsim.losses.kernels.regression import RegressionParams, hessian_parts_within
from stabsim.maps import run_gd


def test_regression_bound_is_the_weighted_sum_of_block_norms_and_bounds_the_dense_part():
    loss = QuadraticRegression.random(12, 4, seed=3)
    theta = np.random.default_rng(0).standard_normal(12) * 0.3
    z, n = loss.residual(theta), loss.n
    dense = np.einsum("k,kij->ij", z / n, loss.Q)  # W = Σ_k z_k Q_k / n
    # the bound as documented: Σ_k |z_k| ‖Q_k‖_F / n ≥ ‖W‖_F ≥ ‖W‖₂ (triangle inequality)
    expected = np.sum(np.abs(z) * np.linalg.norm(loss.Q, axis=(1, 2))) / n
    assert expected >= np.max(np.abs(np.linalg.eigvalsh(dense)))
    for allowance, written in ((0.0, True), (expected * (1 - 1e-12), True),
                               (expected * (1 + 1e-12), False), (np.inf, False)):
        g, hess, factor = np.empty(12), np.full((12, 12), np.nan), np.empty((n, 12))
        value, bound = hessian_parts_within(theta, loss.params, g, hess, factor, allowance)
        # the same passes as the model's value and gradient: equal to round-off
        assert value == pytest.approx(loss.value(theta), rel=1e-13)
        np.testing.assert_allclose(g, loss.grad(theta), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(factor, loss.jacobian(theta) / np.sqrt(n), rtol=1e-13)
        if written:
            assert bound == -1.0
            np.testing.assert_allclose(np.triu(hess), np.triu(dense), rtol=1e-12, atol=1e-14)
        else:
            assert bound == pytest.approx(expected, rel=1e-13)
            assert np.isnan(hess).all()  # left as it was


def test_gd_near_a_zero_loss_minimiser_leaves_the_dense_part_out_within_its_residual():
    # over-parameterised (n < d): GD reaches z = 0 to round-off in ~200 steps, where the
    # bound on W is ~1e-15 against the allowance τ S/2 ≈ 4e-11, and only the steps before
    # (and the first anchor) form W
    loss = QuadraticRegression.random(40, 6, seed=0)
    theta0 = np.zeros(40)
    eta = 1.0 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    result = run_gd(loss, theta0, eta, 600, record_trajectory=True, eig_tol=1e-10)
    assert result.success
    counters = result.counters
    assert counters["dense_hessians"] < counters["records"] // 2
    exact = np.array([np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory])
    sharp, residual = result.sharpness[:, 0], result.eig_residual
    # Weyl/Bauer–Fike: the Ritz value is within its residual of an eigenvalue of the
    # whole Hessian (here the top one: the next is far below); 1e-14·S for eigvalsh's and
    # the Hessian's rounding
    assert np.all(np.abs(sharp - exact) <= residual + 1e-14 * exact)
    assert np.all(residual <= 1e-10 * sharp)


@pytest.mark.parametrize("factor_of_allowance", [0.98, 1.0000005])
def test_a_bound_too_large_beside_the_top_eigenvalue_measures_the_whole_hessian(
        factor_of_allowance):
    # L = ½ a θ₀² + ½ c|θ|²: A = a e₀e₀ᵀ + cI, top eigenvalue a + c, the factor's alone a.
    # The first measurement forms the whole Hessian (no anchor yet: allowance 0) and
    # anchors λ' = a + c; each later one is offered the allowance τ(a + c)/2, below which
    # the family leaves cI out with the bound c. Lanczos then finds λ = a, accepted where
    # c ≤ τa/2, with |λ − (a + c)| = c ≤ the residual reported; with c in (τa/2, τ(a+c)/2)
    # it is not, and the engine must measure A itself (without that: NOT_CONVERGED).
    tol, a = 1e-3, 1.0
    c = factor_of_allowance * 0.5 * tol * a
    loss = Loss(LeftOutIdentity(a, c, c, 0.0), 3)
    result = run_gd(loss, np.array([0.3, -0.2, 0.1]), 0.5, 8, eig_tol=tol,
                    find_crossing=False)
    assert result.success, result.message
    counters = result.counters
    sharp, residual = result.sharpness[:, 0], result.eig_residual
    # Bauer–Fike: each value is within its residual of the eigenvalue a + c of A (1e-15
    # for the rounding of the residual's terms)
    assert np.all(np.abs(sharp - (a + c)) <= residual + 1e-15)
    assert np.all(residual <= tol * sharp)
    if factor_of_allowance < 1.0:
        assert counters["dense_hessians"] == 1  # the first measurement only
        # the later ones measured a e₀e₀ᵀ (eigenvalue a), each to τ/2 less the bound added
        assert np.all(residual[1:] >= c)
        assert np.all(np.abs(sharp[1:] - a) <= residual[1:] - c + 1e-15)
    else:
        # every step: the attempt without cI, then A itself
        assert counters["dense_hessians"] == counters["records"]


@pytest.mark.parametrize(("seed", "d", "n"), [(1, 30, 3), (2, 12, 4), (3, 12, 4)])
def test_each_residual_reported_is_within_the_tolerance_where_the_bound_is_not_negligible(
        seed, d, n):
    # at τ = 1e-3 the bound b on W passes through the size of τS/2 as GD converges, so the
    # attempts without W are accepted with b a sizeable part of the residual: Lanczos must
    # have run to τ/2 for |(A − W)v − λv| + b ≤ τS (Lanczos to τ gave up to 1.33 τS here)
    tol = 1e-3
    loss = QuadraticRegression.random(d, n, seed=seed)
    eta = 1.0 / np.linalg.eigvalsh(loss.hessian(np.zeros(d)))[-1]
    result = run_gd(loss, np.zeros(d), eta, 1500, record_trajectory=True, eig_tol=tol)
    assert result.success
    sharp, residual = result.sharpness[:, 0], result.eig_residual
    assert np.all(residual <= tol * sharp)
    # Bauer–Fike: an eigenvalue of the whole Hessian within the residual (at this τ the
    # start mix resolves no gap below about τ S 10³ √d, so not always the top one); 1e-14·S
    # for the rounding of the Hessian and eigvalsh
    for theta, s, r in zip(result.trajectory, sharp, residual, strict=True):
        nearest = np.min(np.abs(np.linalg.eigvalsh(loss.hessian(theta)) - s))
        assert nearest <= r + 1e-14 * s


def test_a_bound_that_stays_too_large_is_attempted_once_a_chunk():
    # c in (τa/2, τ(a + c)/2) at every step: after the first attempt is rejected, the
    # allowance offered stays below that bound, so each later step forms cI at once. The
    # products are then those of the same run with the part never left out (claimed above
    # every allowance), plus the one rejected attempt and the measurement after it, each
    # within the budget of one measurement; an attempt at each of the 400 steps would add
    # at least one product each. d = 30: the switch between cI and zeros moves the operator
    # by |cI|_F = c√30 > τa, so each measurement after a switch takes the start mix again
    # and anchors the top eigenvalue of what it measured (a, then a + c), and the allowance
    # offered from the anchor alone would stay above c
    tol, a, budget, d = 1e-3, 1.0, 50, 30
    c = 1.0000005 * 0.5 * tol * a
    theta0 = np.linspace(-0.3, 0.3, d)
    runs = [run_gd(Loss(LeftOutIdentity(a, c, claimed, 0.0), d), theta0, 0.5, 400,
                   eig_tol=tol, eig_max_products=budget, find_crossing=False)
            for claimed in (c, 1e300)]
    assert all(run.success for run in runs)
    window, never = (run.counters["lanczos_products"] for run in runs)
    assert never <= window <= never + 2 * budget
    for run in runs:  # Bauer–Fike, as above
        assert np.all(np.abs(run.sharpness[:, 0] - (a + c)) <= run.eig_residual + 1e-15)


def test_a_bound_below_the_dense_part_it_leaves_out_is_refused_at_construction():
    with pytest.raises(ValueError, match="hessian_parts_within left the dense part out with "
                                         "the bound b = 0.01, below its 2-norm 0.1"):
        Loss(LeftOutIdentity(1.0, 0.1, 0.01, 0.0), 3)
    with pytest.raises(ValueError, match="left the dense part out .* but wrote into hess_out"):
        Loss(LeftOutIdentity(1.0, 0.1, 0.1, 1.0), 3)
    with pytest.raises(ValueError, match="the factor it writes must be that of hessian_parts"):
        Loss(LeftOutIdentity(1.0, 0.1, 0.1, 2.0), 3)
    regression = QuadraticRegression.random(5, 3, seed=1)
    z0, J, Q, _ = regression.params
    with pytest.raises(ValueError, match="hessian_parts_within left the dense part out"):
        Loss(RegressionParams(z0, J, Q, np.zeros(3)), 5)  # Q_norms that bound nothing
