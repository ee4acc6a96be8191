"""proj_M, θ† and compare at the edges of the theory: a repeated top eigenvalue (u undefined),
a start at or past 2/η (θ* undefined), ∇S⊥ = 0 at θ*, and a point past the float range.

Every test turns NumPy's RuntimeWarnings into errors: the status is the report, and no
warning may escape.
"""

import numpy as np
import pytest

from stabsim import compare, sharpness
from stabsim._status import Status
from stabsim.losses import Minimalist, Quadratic, QuadraticRegression, ScalarNetwork
from stabsim.maps.constrained import constrained_trajectory
from stabsim.maps.projection import proj_M
from stabsim.spectral import hessian_spectrum, top_eigenpairs

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

D = 40  # above SMALL_DIM = 32: the conjugate-gradient and dense-family solves for r


def _rotated_quadratic(d):
    """Q diag(2, 2, 1 … 0.1) Qᵀ (a random rotation Q): a top eigenvalue 2 of multiplicity two
    whose eigenvectors are no coordinate axes, and Q."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
    return Quadratic(q @ np.diag(np.r_[2.0, 2.0, np.linspace(1.0, 0.1, d - 2)]) @ q.T), q


def _regression():
    """A regression model (a family that prefers the dense Hessian) at d = 40 with
    H(0) = diag(1/3, 1/3, 1/12, 0, …): the top eigenvalue is double along e0, e1."""
    jac = np.zeros((3, D))
    jac[0, 0] = jac[1, 1] = 1.0
    jac[2, 2] = 0.5
    curv = np.zeros((3, D, D))
    curv[2, 3, 3] = 1.0
    return QuadraticRegression(jac, curv, np.zeros(3))


def _off_m():
    """(loss, z, η) with a double top eigenvalue at z and ∇L(z) with a part in its
    eigenspace E: u·∇L depends on which unit u of E is taken, so it is undefined."""
    rotated, q = _rotated_quadratic(D)
    small, q_small = _rotated_quadratic(20)
    e = np.eye(D)
    return {
        "dense spectrum": (Quadratic(np.eye(3)), np.array([1.0, 2.0, 3.0]), 1.0),
        "rotated, dense spectrum": (small, q_small[:, 0], 0.9),
        "conjugate gradients": (Quadratic(np.eye(D)), np.arange(1.0, D + 1), 1.0),
        "rotated, conjugate gradients": (rotated, q[:, 0] + q[:, 1], 0.9),
        "dense family": (_regression(), e[0] + 2.0 * e[1], 1.0),
    }


def _on_m():
    """(loss, z, η) with a repeated top eigenvalue at z, S(z) ≤ 2/η and no part of ∇L(z) in
    the top eigenspace E: u·∇L = 0 for every unit u of E, so z is in M by its definition."""
    rotated, q = _rotated_quadratic(D)
    return {
        # critical points where the Hessian is 0: S = λ2 = 0 and ∇L = 0
        "minimalist origin": (Minimalist(), np.zeros(2), 0.3),
        "scalar network origin": (ScalarNetwork(3), np.zeros(3), 0.3),
        # ∇L ≠ 0, orthogonal to E
        "quadratic, dense spectrum": (Quadratic(np.diag([1.0, 1.0, 0.5])),
                                      np.array([0.0, 0.0, 1.0]), 1.0),
        "quadratic, conjugate gradients": (rotated, q[:, 5], 0.9),
        "dense family": (_regression(), np.eye(D)[2], 1.0),
        # on the boundary S = 2/η: M's sharpness constraint is S ≤ 2/η, not S < 2/η
        "on the boundary": (Quadratic(np.diag([1.0, 1.0, 0.5])),
                            np.array([0.0, 0.0, 1.0]), 2.0),
    }


def _top_eigenspace_part(loss, z):
    """|P_E ∇L(z)| and the multiplicity of S(z), from the dense spectrum (an independent
    check of the cases; eigh's eigenvalues are exact to d ε ‖H‖, far below 1e-9)."""
    values, vectors = hessian_spectrum(loss, z)
    top = vectors[:, values >= values[0] - 1e-9 * max(1.0, abs(values[0]))]
    return float(np.linalg.norm(top.T @ loss.grad(z))), top.shape[1]


@pytest.mark.parametrize("case", list(_off_m()))
@pytest.mark.parametrize("projection", ["euclidean", "paper"])
def test_repeated_top_eigenvalue_off_m_is_eigengap_closed(case, projection):
    loss, z, eta = _off_m()[case]
    part, multiplicity = _top_eigenspace_part(loss, z)
    assert multiplicity >= 2 and part > 0.1  # the case is what it claims to be
    p = proj_M(loss, z, eta, projection=projection)
    assert p.status is Status.EIGENGAP_CLOSED, p.message
    assert "repeated" in p.message and "u·∇L = 0" in p.message
    if projection == "euclidean":  # it stops where the constraint is undefined: at z
        np.testing.assert_array_equal(p.theta, z)
        assert p.n_iter == 0


@pytest.mark.parametrize("case", list(_on_m()))
def test_repeated_top_eigenvalue_on_m_comes_back_unchanged(case):
    loss, z, eta = _on_m()[case]
    part, multiplicity = _top_eigenspace_part(loss, z)
    # zero to the rounding of the rotated cases' products, about d ε |∇L|
    assert multiplicity >= 2
    assert part <= loss.dim * np.finfo(float).eps * np.linalg.norm(loss.grad(z))
    assert sharpness(loss, z) <= 2.0 / eta
    p = proj_M(loss, z, eta)
    assert p.status is Status.OK, p.message
    np.testing.assert_array_equal(p.theta, z)
    assert p.n_iter == 0


@pytest.mark.parametrize("case", ["minimalist origin", "scalar network origin"])
def test_paper_projection_at_a_zero_hessian_critical_point(case):
    # ∇L = 0, S = 0: the paper's passes have nothing to remove (they divided 0 by 0 before)
    loss, z, eta = _on_m()[case]
    p = proj_M(loss, z, eta, projection="paper")
    assert p.status is Status.OK, p.message
    np.testing.assert_array_equal(p.theta, z)


def test_constrained_trajectory_stops_at_a_repeated_top_eigenvalue():
    loss, z, eta = _off_m()["dense spectrum"]
    dag = constrained_trajectory(loss, z, eta, 3)
    assert dag.status is Status.EIGENGAP_CLOSED, dag.message
    assert "repeated" in dag.message
    assert dag.trajectory.shape == (0, 3)  # no row is made where θ†_0 is undefined


def test_compare_reports_the_repeated_top_eigenvalue_of_theta_dagger():
    c = compare(Quadratic(np.eye(3)), [1.0, 2.0, 3.0], 2.0, 3, warn=False)
    assert c.statuses["constrained"] is Status.EIGENGAP_CLOSED
    assert "repeated" in c.message
    assert c.statuses["gd"] is Status.OK  # the other parts still ran


def test_projection_far_past_the_float_range_reports_nonfinite_without_a_warning():
    # |z| = 1.4e200: |z|² overflows, |z| does not; ∇L ~ |z|⁵ is inf
    for projection in ("euclidean", "paper"):
        p = proj_M(Minimalist(), [1e200, 1e200], 0.3, projection=projection)
        assert p.status is Status.NONFINITE


def test_flat_sharpness_of_compare_says_which_gradient_vanishes():
    # On the diagonal x = y of the minimalist loss the swap x ↔ y is a symmetry: GD stays
    # there, u = (1, 1)/√2 and ∇S = ∇³L[u, u] ∥ (1, 1), so ∇S⊥ = 0 while ∇S ≠ 0.
    loss, eta = Minimalist(), 0.51
    c = compare(loss, [0.9, 0.9], eta, 20, warn=False)
    assert c.crossing_step == 1  # from below: S(θ₀) = 1.29 < 2/η = 3.92
    assert c.statuses["reduced_map"] is Status.FLAT_SHARPNESS
    assert "grad S perp" in c.message and "reference point" in c.message
    theta = np.full(2, 0.9)  # on the diagonal, as θ* is
    u = top_eigenpairs(loss, theta).vectors[:, 0]
    grad_s = loss.d3(theta, u, u)
    assert np.linalg.norm(grad_s) > 1.0  # ∇S itself is not 0
    # ∇S⊥ is zero to round-off: |∇S| times a few ε
    perp = grad_s - (u @ grad_s) * u
    assert np.linalg.norm(perp) <= 8 * np.finfo(float).eps * np.linalg.norm(grad_s)


@pytest.mark.parametrize("c", [2.5, 2.0])
def test_compare_from_at_or_past_the_threshold_leaves_the_reduced_map_undefined(c):
    loss = QuadraticRegression.two_scale(0.01)
    theta0 = np.zeros(loss.dim)
    eta = c / sharpness(loss, theta0)
    cmp = compare(loss, theta0, eta, 60, warn=False)
    # at c = 2.0, S(θ₀) = 2/η to round-off, and GD's record of it is ≥ 2/η
    assert cmp.gd_sharpness[0] >= 2.0 / eta
    assert cmp.crossing_step == 0
    assert cmp.statuses["reduced_map"] is Status.UNDEFINED
    assert "S(θ₀)" in cmp.message and "from below" in cmp.message
    assert np.all(np.isnan(cmp.reduced_x)) and np.all(np.isnan(cmp.gd_x_star))
    assert np.isnan(cmp.alpha_star)
    # θ† and the flows still ran
    assert np.isfinite(cmp.dist_dagger[0]) and np.all(np.isfinite(cmp.dist_cf))


def test_compare_from_below_the_threshold_runs_the_reduced_map_off_its_invariant_line():
    loss = QuadraticRegression.two_scale(0.01)
    theta0 = np.zeros(loss.dim)
    eta = 1.99 / sharpness(loss, theta0)
    cmp = compare(loss, theta0, eta, 60, warn=False)
    tc = cmp.crossing_step
    assert tc >= 1 and cmp.gd_sharpness[tc - 1] < 2.0 / eta
    assert cmp.statuses["reduced_map"] is Status.OK
    assert cmp.reduced_x[tc] != 0.0  # x*_{t_c} = u*·(θ_{t_c} − θ*) with θ* before θ_{t_c}


def test_paper_projection_of_a_quadratic_below_the_threshold():
    # ∇S⊥ = 0 everywhere and S = 2 < 2/η = 4: the pass along ∇S⊥ has nothing to remove (it
    # computed 0·(0/0) before); the pass along u removes u·∇L exactly: (1, 1) − e₂ (2/2)
    p = proj_M(Quadratic(np.diag([1.0, 2.0])), [1.0, 1.0], 0.5, projection="paper")
    assert p.status is Status.OK, p.message
    np.testing.assert_array_equal(p.theta, [1.0, 0.0])


def test_a_projection_that_stalls_off_m_says_so():
    # f(x) = x²/√(1 + x²) has f' = 0 only at 0, where S = f''(0) = 2 > 2/η = 4/3 at η = 1.5:
    # M = {S ≤ 2/η, f' = 0} is empty. The SQP iteration from 0.5 stalls at a stationary
    # point of its merit function, near x = 0.2516, moving by ~1e-13 an iteration; it had
    # said only to raise max_iter, which moves it as little
    from stabsim.losses import SelfRegulatingPotential

    loss = SelfRegulatingPotential()
    assert abs(loss.hessian(np.zeros(1))[0, 0] - 2.0) < 1e-15  # S at the one critical point
    short, long = (proj_M(loss, [0.5], 1.5, max_iter=n) for n in (50, 500))
    for p in (short, long):
        assert p.status is Status.NOT_CONVERGED and "stalled" in p.message
        assert "M holds no point near z" in p.message
    assert abs(long.theta[0] - short.theta[0]) <= 1e-9  # 450 more iterations: no progress
    # a projection that merely ran out of iterations does not claim a stall
    quad = proj_M(Minimalist(), [1.2, 0.9], 0.6, max_iter=1)
    assert quad.status is Status.NOT_CONVERGED and "stalled" not in quad.message
