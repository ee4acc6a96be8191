"""Closed forms of the loss families against independent computations, and bad input.

Eigenvalue tolerances: numpy.linalg.eigh is backward stable, so each computed eigenvalue is
within ~ d ε ‖H‖ of the exact one; we allow 64 d ε ‖H‖_F (plus the closed form's own
round-off, of the same order).
"""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from stabsim.losses import (
    FAMILIES,
    ManifoldFamily,
    Minimalist,
    Quadratic,
    QuadraticRegression,
    ReducedMapRealisation,
    ScalarNetwork,
    SelfRegulatingPotential,
    make_loss,
)
from stabsim.testing import manifold_losses, regression_models, starts

EPS = np.finfo(float).eps


def eig_tol(H):
    return 64 * H.shape[0] * EPS * (np.linalg.norm(H) + 1.0)


# --- self-regulating potential -------------------------------------------------------------


@given(x=st.floats(-50.0, 50.0))
def test_potential_closed_forms_match_kernels(x):
    loss = SelfRegulatingPotential()
    theta = np.array([x])
    # f'(x) = x · f'(x)/x and f''(x): two formulas evaluated differently, equal to round-off
    assert math.isclose(
        loss.grad(theta)[0], x * loss.effective_curvature(x), abs_tol=8 * EPS * (1 + abs(x))
    )
    assert math.isclose(
        loss.hessian(theta)[0, 0], loss.curvature(x), rel_tol=1e-13, abs_tol=8 * EPS
    )
    assert math.isclose(loss.value(theta), x * x / math.sqrt(1 + x * x), rel_tol=8 * EPS)


def test_potential_is_finite_far_out():
    loss = SelfRegulatingPotential()
    theta = np.array([1e200])
    # f(x) → |x|, f'(x) → sign(x), f''(x) → −1/|x|³·… → 0: nothing overflows
    assert loss.value(theta) == pytest.approx(1e200, rel=1e-12)
    assert loss.grad(theta)[0] == pytest.approx(1.0, rel=1e-12)
    assert np.isfinite(loss.hessian(theta)[0, 0])
    assert np.isfinite(loss.d3(theta, np.ones(1), np.ones(1))[0])


@given(eta=st.floats(1.01, 20.0))
def test_potential_orbit_is_a_period_two_orbit_of_gd(eta):
    loss = SelfRegulatingPotential()
    x = loss.orbit_amplitude(eta)
    # one GD step maps x* to −x* (to the root-finder's tolerance, a few ulps of x*)
    step = x - eta * loss.grad(np.array([x]))[0]
    assert step == pytest.approx(-x, rel=1e-12, abs=1e-14)


def test_potential_orbit_stability_boundary():
    loss = SelfRegulatingPotential()
    # η f''(x*) = 0 exactly where x* = √2 (f'' = 0), i.e. 2/η = f'(√2)/√2 = 4/3^{3/2}
    eta_c = 3 * math.sqrt(3) / 2
    assert loss.orbit_amplitude(eta_c) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert loss.orbit_is_attracting(1.2) and loss.orbit_is_attracting(eta_c - 1e-3)
    assert not loss.orbit_is_attracting(eta_c + 1e-3)
    # GD at an attracting η locks into ±x*; at a repelling η it leaves the orbit's neighbourhood
    for eta, attracting in ((1.8, True), (3.5, False)):
        x_star = loss.orbit_amplitude(eta)
        x = np.array([x_star * 1.01])
        for _ in range(2000):
            x = x - eta * loss.grad(x)
        assert bool(abs(abs(x[0]) - x_star) < 1e-8) == attracting
    with pytest.raises(ValueError, match="eta"):
        loss.orbit_amplitude(0.9)


# --- realisation of the reduced map --------------------------------------------------------


@given(
    eta=st.floats(1e-3, 1.0),
    alpha=st.floats(1e-3, 1.0),
    b=st.floats(0.1, 10.0) | st.floats(-10.0, -0.1),
    x=st.floats(-1.0, 1.0),
    y=st.floats(-0.5, 0.5),
)
@example(eta=0.875, alpha=1.0, b=1.0, x=2.225073858507e-311, y=0.125)  # x subnormal
def test_realisation_gd_step_is_the_reduced_map(eta, alpha, b, x, y):
    loss = ReducedMapRealisation(eta, alpha, b)
    y = y / eta  # keep η|y| ≤ 1/2 so that 1 + ηy > 0
    theta = loss.to_theta(x, y)
    x1, y1 = loss.from_theta(theta - eta * loss.grad(theta))
    beta = b * b
    # the same arithmetic up to association: a few ulps of the largest term, and below the
    # normal range (x subnormal) a few of the subnormal spacing, the absolute error of each
    # rounding there
    assert x1 == pytest.approx(
        -(1 + eta * y) * x, rel=0,
        abs=16 * EPS * abs(x) * (3 + eta * abs(y)) + 16 * np.finfo(float).smallest_subnormal
    )
    scale = abs(y) + eta * (alpha + beta * x * x)
    assert y1 == pytest.approx(y + eta * (alpha - beta * x * x / 2), rel=0, abs=16 * EPS * scale)
    assert loss.beta == beta and loss.delta2 == pytest.approx(2 * alpha / beta, rel=4 * EPS)


# --- scalar networks -----------------------------------------------------------------------

positive_product_weights = (
    st.integers(2, 6)
    .flatmap(
        lambda depth: st.lists(
            st.floats(0.3, 1.8) | st.floats(-1.8, -0.3), min_size=depth, max_size=depth
        ).filter(lambda w: np.prod(np.sign(w)) > 0)
    )
    .map(np.array)
)


@given(w=positive_product_weights)
def test_gfs_sharpness_is_the_top_eigenvalue_at_the_gfs(w):
    loss = ScalarNetwork(len(w))
    w_star = loss.gfs(w)
    # w*² − w² is the same shift s for every layer, and ∏ w* = 1 (root to ~ d ε)
    shift = w_star**2 - w**2
    assert np.allclose(shift, shift[0], rtol=0, atol=64 * EPS * np.max(w_star**2))
    assert np.prod(w_star) == pytest.approx(1.0, abs=64 * len(w) * EPS)
    assert np.all(np.sign(w_star) == np.sign(w))
    H = loss.hessian(w_star)
    top = np.linalg.eigvalsh(H)[-1]
    assert loss.gfs_sharpness(w) == pytest.approx(top, rel=0, abs=eig_tol(H) + 1e-12 * top)
    assert loss.sharpness_at_minimiser(w_star) == pytest.approx(
        top, rel=0, abs=eig_tol(H) + 1e-12 * top
    )
    # AM–GM: no minimiser is flatter than the balanced one, whose sharpness is the depth
    assert top >= len(w) * (1 - 1e-12)


@settings(max_examples=8)
@given(w=positive_product_weights)
def test_gfs_is_the_limit_of_gradient_flow(w):
    loss = ScalarNetwork(len(w))
    # Gradient flow converges at rate ≥ λ_min⁺ = ψ ≥ depth ≥ 2 near the GFS; t = 60 leaves
    # e^{−120}, far below the integrator's tolerance, which sets the comparison tolerance.
    sol = solve_ivp(
        lambda t, y: -loss.grad(y), (0.0, 60.0), w, method="DOP853", rtol=1e-11, atol=1e-13
    )
    assert sol.success
    assert np.allclose(sol.y[:, -1], loss.gfs(w), rtol=0, atol=1e-7)


def test_scalar_network_bad_input():
    with pytest.raises(ValueError, match="depth"):
        ScalarNetwork(1)
    with pytest.raises(ValueError, match="depth"):
        ScalarNetwork(2.5)
    loss = ScalarNetwork(3)
    with pytest.raises(ValueError, match="positive product"):
        loss.gfs([1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match="w must have shape"):
        loss.gfs([1.0, 1.0])
    with pytest.raises(ValueError, match="not a minimiser"):
        loss.sharpness_at_minimiser([1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="theta contains NaN"):
        loss.grad([1.0, np.nan, 2.0])


# --- minimalist example --------------------------------------------------------------------


@given(x=st.floats(0.2, 5.0) | st.floats(-5.0, -0.2), sign=st.sampled_from([1.0, -1.0]))
def test_minimalist_sharpness_at_minimisers(x, sign):
    loss = Minimalist()
    theta = np.array([x, sign / x])
    H = loss.hessian(theta)
    eig = np.linalg.eigvalsh(H)
    assert loss.value(theta) == pytest.approx(0.0, abs=16 * EPS)
    assert loss.sharpness_at_minimiser(theta) == pytest.approx(eig[-1], rel=0, abs=eig_tol(H))
    assert eig[0] == pytest.approx(0.0, abs=eig_tol(H))  # the tangent of xy = ±1 is flat
    assert np.allclose(loss.minimiser(x), [x, 1 / x])


# --- quadratic regression ------------------------------------------------------------------


@settings(max_examples=20)
@given(data=st.data())
def test_regression_against_numpy(data):
    loss = data.draw(regression_models())
    theta = data.draw(starts(loss, scale=1.0))
    J, Q, z0, n = loss.J, loss.Q, loss.z0, loss.n
    z = z0 + J @ theta + 0.5 * np.einsum("kij,i,j->k", Q, theta, theta)
    Jt = J + np.einsum("kij,j->ki", Q, theta)
    H = (Jt.T @ Jt + np.einsum("k,kij->ij", z, Q)) / n
    scale = 64 * loss.d * EPS * (1 + np.abs(J).sum() + np.abs(Q).sum() + np.abs(z0).sum()) ** 2
    assert np.allclose(loss.residual(theta), z, rtol=0, atol=scale)
    assert np.allclose(loss.jacobian(theta), Jt, rtol=0, atol=scale)
    assert loss.value(theta) == pytest.approx(z @ z / (2 * n), rel=0, abs=scale)
    assert np.allclose(loss.grad(theta), Jt.T @ z / n, rtol=0, atol=scale)
    assert np.allclose(loss.hessian(theta), H, rtol=0, atol=scale)
    assert np.array_equal(loss.hessian(theta), loss.hessian(theta).T)


def test_regression_random_is_seeded_and_scaled():
    a = QuadraticRegression.random(50, 4, seed=7, j_scale=2.0)
    b = QuadraticRegression.random(50, 4, seed=7, j_scale=2.0)
    c = QuadraticRegression.random(50, 4, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.params, b.params, strict=True))
    assert not any(np.array_equal(x, y) for x, y in zip(a.params, c.params, strict=True))
    # rows of J have E|J_k|² = j_scale² = 4; over 4 rows of 50 entries the relative spread of
    # the mean is sqrt(2/200) = 0.1, so ±50% is a > 4σ band
    assert np.mean(np.sum(a.J**2, axis=1)) == pytest.approx(4.0, rel=0.5)
    assert all(np.array_equal(q, q.T) for q in a.Q)


def test_regression_bad_input():
    J = np.ones((2, 3))
    Q = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="Q must have shape"):
        QuadraticRegression(J, np.zeros((2, 3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="z0 must have shape"):
        QuadraticRegression(J, Q, np.zeros(3))
    with pytest.raises(ValueError, match="z0 contains NaN"):
        QuadraticRegression(J, Q, [0.0, np.inf])
    with pytest.raises(ValueError, match="J must be 2-dimensional"):
        QuadraticRegression(np.ones(3), Q, np.zeros(2))
    asym = Q.copy()
    asym[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="Q must be symmetric"):
        QuadraticRegression(J, asym, np.zeros(2))
    with pytest.raises(ValueError, match="q_scale"):
        QuadraticRegression.random(3, 2, q_scale=0.0)
    with pytest.raises(ValueError, match="d must be"):
        QuadraticRegression.random(0, 2)


# --- manifold family -----------------------------------------------------------------------


def _x_near_origin(loss):
    return st.lists(st.floats(-0.5, 0.5), min_size=loss.m, max_size=loss.m).map(np.array)


@settings(max_examples=30)
@given(data=st.data())
def test_manifold_spectrum_on_gamma(data):
    loss = data.draw(manifold_losses())
    x = data.draw(_x_near_origin(loss))
    X = loss.on_manifold(x)
    H = loss.hessian(X)
    eig = np.linalg.eigvalsh(H)
    tol = eig_tol(H)
    assert loss.value(X) == pytest.approx(0.0, abs=64 * EPS * np.abs(X).max() ** 2)
    # rank k: m zero eigenvalues (the tangent space), then the k normal ones
    assert np.allclose(eig[: loss.m], 0.0, atol=tol)
    assert np.allclose(np.sort(loss.normal_eigenvalues(x)), eig[loss.m :], rtol=0, atol=tol)
    assert loss.lambda1(x) == pytest.approx(eig[-1], rel=0, abs=tol)
    if not loss.curved:
        assert loss.lambda1(x) == pytest.approx(np.max(loss.h(x)), rel=4 * EPS)
    # P_Γ is the orthogonal projector onto ker H = T_XΓ
    P = loss.tangent_projection(X)
    assert np.allclose(P @ P, P, atol=64 * EPS) and np.allclose(P, P.T, atol=64 * EPS)
    assert np.trace(P) == pytest.approx(loss.m, abs=64 * EPS * loss.dim)
    assert np.allclose(H @ P, 0.0, atol=tol)
    u = loss.top_eigenvector(x)
    assert np.allclose(H @ u, loss.lambda1(x) * u, atol=tol)


@settings(max_examples=30)
@given(data=st.data())
def test_manifold_gradient_of_lambda1(data):
    loss = data.draw(manifold_losses())
    x = data.draw(_x_near_origin(loss))
    eig = loss.normal_eigenvalues(x)
    assume(len(eig) == 1 or eig[0] - eig[1] > 0.1)  # λ1 simple, so differentiable
    grad = loss.grad_lambda1(x)
    # against finite differences of λ1 (eigh to ~64 d ε; step 1e-5 keeps h² λ1''' ≲ 1e-9)
    h = 1e-5
    for i in range(loss.m):
        e = np.eye(loss.m)[i]
        fd = (loss.lambda1(x + h * e) - loss.lambda1(x - h * e)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=0, abs=1e-7 * (1 + abs(fd)))
    # against Hellmann–Feynman through the third-derivative kernel: ∇_θ λ1 = ∇³L[u, u], and
    # the chain rule for x ↦ (x, g(x)) gives ∇_x λ1 = Tᵀ ∇³L[u, u]
    X = loss.on_manifold(x)
    u = loss.top_eigenvector(x)
    ambient = loss.d3(X, u, u)
    T = loss.tangent_basis(x)
    size = 64 * loss.dim * EPS * (1 + np.abs(ambient).max()) * (1 + np.abs(T).max())
    assert np.allclose(grad, T.T @ ambient, rtol=1e-10, atol=size)
    projected = loss.tangent_projection(X) @ ambient
    assert np.allclose(loss.projected_grad_lambda1(x), projected, rtol=1e-10, atol=size)


def test_manifold_bad_input():
    s = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"c\[1\] must be finite and > 0"):
        ManifoldFamily([1.0, 0.0], s)
    with pytest.raises(ValueError, match=r"c\[0\] must be finite and > 0"):
        ManifoldFamily([-1.0, 1.0], s)
    with pytest.raises(ValueError, match="s must have shape"):
        ManifoldFamily([1.0, 1.0, 1.0], s)
    with pytest.raises(ValueError, match="s must be nonnegative"):
        ManifoldFamily([1.0, 1.0], -s)
    with pytest.raises(ValueError, match="centres must have shape"):
        ManifoldFamily([1.0, 1.0], s, centres=np.zeros((2, 2)))
    K = np.zeros((2, 3, 3))
    K[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="K must be symmetric"):
        ManifoldFamily([1.0, 1.0], s, K=K)
    loss = ManifoldFamily([2.0, 1.0], s, K=K + K.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="not on the manifold"):
        loss.tangent_projection(np.ones(5))
    with pytest.raises(ValueError, match="x must have shape"):
        loss.lambda1(np.zeros(2))


# --- make_loss -----------------------------------------------------------------------------


def test_make_loss_builds_every_family():
    examples = {
        "quadratic": {"A": [1.0, 2.0]},
        "self_regulating": {},
        "realisation": {"eta": 0.1, "alpha": 0.5, "b": 2.0},
        "scalar_network": {"depth": 4},
        "minimalist": {},
        "regression": {"J": np.ones((2, 3)), "Q": np.zeros((2, 3, 3)), "z0": np.ones(2)},
        "manifold": {"c": [2.0, 1.0], "s": np.ones((2, 3))},
        "network": {"hidden": (3,), "n_samples": 4},
        "uv_model": {"width": 3},
    }
    assert set(examples) == set(FAMILIES)
    for name, params in examples.items():
        loss = make_loss(name, **params)
        assert isinstance(loss, FAMILIES[name]) and loss.name == name
        assert np.isfinite(loss.value(np.full(loss.dim, 0.3)))


def test_make_loss_bad_input():
    with pytest.raises(ValueError, match=r"name must be one of .*'scalar_network'.*got 'scalar'"):
        make_loss("scalar", depth=3)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['width'\].*'depth'"):
        make_loss("scalar_network", depth=3, width=2)
    with pytest.raises(ValueError, match=r"needs the parameter\(s\) \['depth'\]"):
        make_loss("scalar_network")
    with pytest.raises(ValueError, match="depth"):
        make_loss("scalar_network", depth=1)
    with pytest.raises(ValueError, match="eta"):
        make_loss("realisation", eta=-1.0, alpha=1.0)
    with pytest.raises(ValueError, match="b must be nonzero"):
        make_loss("realisation", eta=0.1, alpha=1.0, b=0.0)


def test_a_singular_semidefinite_quadratic_has_minimum_zero():
    from stabsim.maps import run_gd

    # v vᵀ has exact eigenvalues |v|², 0, 0; eigvalsh returns the zeros as ±ε|v|²-sized
    # numbers of either sign, which had made min_value −inf for most draws (15 of 20)
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.normal(size=(3, 1))
        assert Quadratic(v @ v.T).min_value == 0.0
    assert Quadratic([1.0, 0.0]).min_value == 0.0
    assert Quadratic([1.0, -1e-10]).min_value == -np.inf  # far beyond round-off
    v = np.array([[1.0], [0.3], [-0.7]])
    # GD on sqrt(L − 0) along v: L(θ) = ½ (v·θ)², so sqrt(L) = |v·θ|/√2, a V whose
    # gradient has norm |v|/√2 everywhere off the valley
    result = run_gd(Quadratic(v @ v.T), [1.0, 0.0, 0.0], 0.01, 5, method="sqrt")
    assert result.success, result.message
