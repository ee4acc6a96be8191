"""Φ, P_Γ, the manifold flows and the normalised / sqrt-L engines on closed-form cases.

docs/theory.md §4. The manifold family L(x, z) = ½ Σ_j h_j(x)(z_j − g_j(x))² knows its manifold
Γ = {z = g(x)}, so the numerical geometry (gradient-flow limit, Hessian null space, ambient
flow) is checked against its closed forms.
"""

import functools

import numpy as np
import pytest
import user_families

from stabsim._status import Status
from stabsim.compare_manifold import compare_manifold_flow
from stabsim.flows import limit_map, manifold_flow, tangent_projection, tangent_space
from stabsim.losses import Loss, ManifoldFamily, Quadratic, ScalarNetwork
from stabsim.maps import run_gd

K = [[[0.5, 0.1], [0.1, -0.3]], [[0.2, 0.0], [0.0, 0.1]]]


def family(curved):
    return ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]],
                          K=K if curved else None)


# the same loss as ManifoldFamily(c=[1], s=[[4]]): L(x, z) = ½ (1 + 2x²) z², as user code
@functools.cache  # one instance: its kernels compile once per process
def custom_loss():
    return Loss(user_families.Bowl(), 2, min_value=0.0)


@pytest.mark.parametrize("curved", [False, True])
def test_limit_map_lands_on_the_manifold(curved):
    loss = family(curved)
    limit = limit_map(loss, [1.0, 0.8, 0.3, 0.2], tol=1e-10)
    assert limit.success and limit.grad_norm <= 1e-10
    x, z = loss.split(limit.theta)
    # |∇L| ≥ μ |z − g(x)|·|∇w|, μ = the smallest normal eigenvalue (≥ min c = 0.5 here), so
    # the distance to Γ is at most tol / μ
    assert np.abs(z - loss.g(x)).max() <= 1e-10 / 0.5
    # Φ is the identity on Γ, and Φ∘Φ = Φ
    again = limit_map(loss, limit.theta, tol=1e-10)
    assert again.flow_time == 0.0 and np.array_equal(again.theta, limit.theta)


def test_limit_map_reports_an_unreached_tolerance():
    limit = limit_map(family(False), [1.0, 0.8, 0.3, 0.2], tol=1e-10, s_max=0.01)
    assert limit.status is Status.MAX_STEPS and not limit.success
    assert limit.grad_norm > 1e-10


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_limit_map_of_an_unbounded_flow_says_so_without_warnings():
    # L = ½(θ2² − θ1²): the flow is θ(s) = (e^s, e^−s), unbounded, with |∇L| = |θ|; it
    # overflows past s = ln(largest float), and the last finite state is kept
    limit = limit_map(Quadratic([[-1.0, 0.0], [0.0, 1.0]]), [1.0, 1.0])
    assert limit.status is Status.NONFINITE and np.all(np.isfinite(limit.theta))
    big = np.finfo(float).max
    assert limit.flow_time <= np.log(big)
    # LSODA's local error, rtol = 1e-10 a step, accumulates over its thousands of steps
    assert limit.theta[0] == pytest.approx(np.exp(limit.flow_time), rel=1e-6)
    assert limit.grad_norm == pytest.approx(np.hypot(*limit.theta), rel=1e-15)
    # the message is about this flow: where it got to, and why Φ(θ) is not reached
    assert f"flow time s = {limit.flow_time:.6g}" in limit.message
    assert f"|θ| = {np.hypot(*limit.theta):.3g}" in limit.message
    assert "Φ(θ) is not reached" in limit.message and "unbounded below" in limit.message


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_limit_map_from_a_start_whose_gradient_norm_overflows_in_squares():
    # |∇L| = |θ| = √2·1e200 is a float, though its square is not; Φ(θ) = 0 (L = ½|θ|²)
    limit = limit_map(Quadratic(np.eye(2)), [1e200, 1e200], tol=1e-10)
    assert limit.success and limit.grad_norm <= 1e-10
    assert np.abs(limit.theta).max() <= 1e-10


@pytest.mark.parametrize("curved", [False, True])
def test_tangent_projection_numeric_matches_closed_form(curved):
    loss = family(curved)
    for x in ([1.0, 0.8], [-0.4, 0.3], [0.2, -1.1]):
        X = loss.on_manifold(x)
        closed = tangent_projection(loss, X, geometry="closed")
        numeric = tangent_projection(loss, X, geometry="numeric")
        # eigh's eigenvectors are exact to ~eps·(λ1/gap) with gap ≥ min normal eigenvalue
        np.testing.assert_allclose(numeric, closed, atol=1e-12)
        space = tangent_space(loss, X)
        assert space.rank == loss.m and space.separation < 1e-12
        np.testing.assert_allclose(space.lambda1, loss.lambda1(x), rtol=1e-12)


@pytest.mark.parametrize("geometry", ["closed", "numeric"])
def test_tangent_projection_is_an_orthogonal_projector(geometry):
    loss = family(True)
    P = tangent_projection(loss, loss.on_manifold([0.7, -0.2]), geometry=geometry)
    np.testing.assert_allclose(P @ P, P, atol=1e-13)
    np.testing.assert_allclose(P, P.T, atol=1e-13)
    assert np.linalg.matrix_rank(P, tol=1e-8) == loss.m  # rank = dim Γ
    np.testing.assert_allclose(np.trace(P), loss.m, atol=1e-12)


def test_closed_geometry_needs_a_closed_form():
    with pytest.raises(ValueError, match="geometry"):
        tangent_projection(custom_loss(), [0.3, 0.0], geometry="closed")
    with pytest.raises(ValueError, match="geometry"):
        tangent_projection(family(False), [0.3, 0.0, 0.0, 0.0], geometry="exact")


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_flat_flow_matches_its_closed_form(method):
    # h(x) = 1 + 2x² on Γ = {z = 0}: λ1 = h. Normalised GD: dx/dτ = −¼ h'/h = −x/(1 + 2x²),
    # whose solutions keep ln x + x² + τ constant; GD on sqrt L: dx/dτ = −⅛ h' = −x/2.
    loss = ManifoldFamily([1.0], [[4.0]])
    # η = 1: the slow time τ = η² t is the step count t
    flow = manifold_flow(loss, [1.0, 0.0], 1.0, 2.0, method=method, stride=0.25)
    assert flow.success and flow.geometry == "chart"
    tau = flow.tau
    np.testing.assert_allclose(tau, np.linspace(0.0, 2.0, 9), rtol=0, atol=1e-15)
    x = flow.trajectory[:, 0]
    if method == "normalised":
        invariant = np.log(x) + x**2 + tau
        np.testing.assert_allclose(invariant, 1.0, atol=1e-9)  # integrator rtol 1e-10
    else:
        np.testing.assert_allclose(x, np.exp(-tau / 2), rtol=1e-9)
    np.testing.assert_allclose(flow.lambda1, 1.0 + 2.0 * x**2, rtol=1e-12)


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_ambient_flow_matches_chart_flow(method):
    loss = family(True)
    X0 = loss.on_manifold([1.0, 0.8])
    chart = manifold_flow(loss, X0, 1.0, 1.0, method=method, stride=0.2, geometry="chart")
    ambient = manifold_flow(loss, X0, 1.0, 1.0, method=method, stride=0.2,
                            geometry="ambient")
    assert chart.success and ambient.success
    # both integrate the same field to rtol 1e-10; the ambient one also through Hellmann–
    # Feynman ∇λ1 = ∇³L[u, u] and a numerical null space, exact to ~1e-12
    np.testing.assert_allclose(ambient.trajectory, chart.trajectory, atol=1e-8)
    assert ambient.grad_norm.max() < 1e-9  # the restoring term keeps it on Γ
    assert chart.grad_norm.max() < 1e-13


def test_flow_stops_where_the_top_eigenvalue_becomes_degenerate():
    # h1 = 1 + 2x² falls under the flow from 3 (x = 1) and meets h2 = 2 at x = 1/√2; with
    # ln x + x² + τ constant (previous test) that is τ* = ½ + ½ ln 2
    loss = ManifoldFamily([1.0, 2.0], [[4.0], [0.0]])
    flow = manifold_flow(loss, [1.0, 0.0, 0.0], 1.0, 2.0, gap_tol=1e-6)  # η = 1: τ = t
    assert flow.status is Status.EIGENGAP_CLOSED and not flow.success
    assert "gap_tol" in flow.message and "met" in flow.message
    # the event sits where (h1 − h2)/h1 = 1e-6, i.e. Δτ ≈ 1e-6·h1/|dh1/dτ| ~ 1e-6 before τ*
    assert flow.stop_step == pytest.approx(0.5 + 0.5 * np.log(2.0), abs=1e-5)
    with pytest.raises(ValueError, match="not simple"):
        manifold_flow(loss, [1.0 / np.sqrt(2.0), 0.0, 0.0], 1.0, 1.0)


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_engine_reports_a_zero_gradient_on_an_exact_minimiser(method):
    loss = family(True)
    minimiser = loss.on_manifold([0.5, 0.0])  # g(x) is exact here: z = g(x) to round-off
    assert np.all(loss.grad(minimiser) == 0.0)
    result = run_gd(loss, minimiser, 0.01, 10, method=method)
    assert result.status is Status.ZERO_GRADIENT and not result.success
    assert result.counters["steps"] == 0 and "zero" in result.message


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_user_defined_loss_runs_like_the_builtin_one(method):
    custom, builtin = custom_loss(), ManifoldFamily([1.0], [[4.0]])
    theta0, eta = [0.9, 0.4], 0.03
    a = run_gd(custom, theta0, eta, 500, method=method, record_trajectory=True)
    b = run_gd(builtin, theta0, eta, 500, method=method, record_trajectory=True)
    assert a.success and b.success
    # same formula, different evaluation order: round-off per step, amplified by the
    # period-2 dynamics only linearly over 500 steps
    np.testing.assert_allclose(a.trajectory, b.trajectory, atol=1e-11)
    # the ambient flow of the user loss (numeric P_Γ, ∇³L) against the chart flow
    X0 = limit_map(custom, theta0).theta
    flow_a = manifold_flow(custom, X0, 1.0, 1.0, method=method, stride=0.25)
    flow_b = manifold_flow(builtin, X0, 1.0, 1.0, method=method, stride=0.25)
    assert flow_a.geometry == "ambient" and flow_b.geometry == "chart"
    np.testing.assert_allclose(flow_a.trajectory, flow_b.trajectory, atol=1e-8)


def test_bad_arguments_are_named():
    loss = family(False)
    X0 = loss.on_manifold([1.0, 0.8])
    with pytest.raises(ValueError, match="method"):
        manifold_flow(loss, X0, 1.0, 1.0, method="adam")
    with pytest.raises(ValueError, match="steps"):
        manifold_flow(loss, X0, 1.0, -1.0)
    with pytest.raises(ValueError, match="eta"):
        manifold_flow(loss, X0, 0.0, 1.0)
    with pytest.raises(ValueError, match="geometry"):
        manifold_flow(custom_loss(), [0.5, 0.0], 1.0, 1.0, geometry="chart")
    with pytest.raises(ValueError, match="tol"):
        limit_map(loss, X0, tol=0.0)


def wide_family():
    # m = 40 coordinates along Γ and k = 2 normal ones: d = 42 is above the dense limit of
    # "auto" (32), and the normal space has dimension 2 (h1 ≈ 2 stays above h2 ≈ 0.5)
    rng = np.random.default_rng(3)
    m = 40
    bend = rng.normal(scale=0.05, size=(2, m, m))
    return ManifoldFamily([2.0, 0.5], np.vstack([np.full(m, 0.02), np.full(m, 0.01)]),
                          K=0.5 * (bend + bend.transpose(0, 2, 1)))


def test_lanczos_tangent_space_is_the_dense_one_from_the_normal_pairs_alone():
    loss = wide_family()
    X = loss.on_manifold(np.random.default_rng(4).normal(scale=0.3, size=loss.m))
    dense = tangent_space(loss, X, eigensolver="eigh")
    sparse = tangent_space(loss, X)  # "auto": Lanczos at d = 42
    assert not sparse.complete and sparse.eigenvectors.shape[1] <= 4  # O(d r), not d × d
    assert sparse.rank == dense.rank == loss.m
    # ARPACK at relative accuracy 1e-13: eigenvalues to that, eigenvectors (hence P_Γ v and
    # the normal solve) to 1e-13·λ1/gap with the gap to the null space λ2 ≈ 0.5, λ1 ≈ 2
    assert sparse.lambda1 == pytest.approx(dense.lambda1, rel=1e-12)
    v = np.random.default_rng(5).normal(size=loss.dim)
    np.testing.assert_allclose(sparse.project(v), dense.projector @ v, atol=1e-10)
    np.testing.assert_allclose(sparse.projector, dense.projector, atol=1e-10)
    np.testing.assert_allclose(sparse.normal_solve(v), dense.normal_solve(v), atol=1e-10)
    assert sparse.separation < 1e-9 and dense.separation < 1e-9  # |λ_null| is round-off
    with pytest.raises(ValueError, match="eigensolver='eigh'"):
        sparse.basis  # noqa: B018 (the d × rank basis exists only on the dense path)


def test_lanczos_tangent_space_started_from_a_nearby_one_is_the_same_space(monkeypatch):
    # from the pairs of a point 1e-3 away: the dense space's eigenpairs to their tolerance
    # (1e-13·λ1 residuals: λ1 to 1e-12 relative, the projector to 1e-13·λ1/gap ≈ 1e-12,
    # as the test above allows 1e-10), with the top pairs never from ARPACK (the smallest
    # eigenvalue is ARPACK's, started from the nearby one's vector)
    import stabsim.spectral as spectral

    loss = wide_family()
    rng = np.random.default_rng(4)
    X = loss.on_manifold(rng.normal(scale=0.3, size=loss.m))
    nearby = tangent_space(loss, loss.on_manifold(X[:loss.m] + 1e-3), eigensolver="lanczos")

    def no_arpack(*args, **kwargs):
        raise AssertionError("ARPACK was called for the top pairs")

    dense = tangent_space(loss, X, eigensolver="eigh")
    monkeypatch.setattr(spectral, "_unchecked_top_eigenpairs", no_arpack)
    warm = tangent_space(loss, X, eigensolver="lanczos", near=nearby)
    assert not warm.complete and warm.rank == dense.rank == loss.m
    assert warm.lambda1 == pytest.approx(dense.lambda1, rel=1e-12)
    assert warm.lowest == pytest.approx(dense.lowest, abs=1e-12 * dense.lambda1)
    np.testing.assert_allclose(warm.projector, dense.projector, atol=1e-10)
    v = rng.normal(size=loss.dim)
    np.testing.assert_allclose(warm.normal_solve(v), dense.normal_solve(v), atol=1e-10)
    with pytest.raises(TypeError, match="near must be the TangentSpace"):
        tangent_space(loss, X, near=np.eye(loss.dim))
    with pytest.raises(TypeError, match="dimension 42"):
        tangent_space(loss, X, near=tangent_space(ManifoldFamily([1.0], [[4.0]]), [0.3, 0.0]))


def test_lanczos_tangent_space_refuses_what_is_not_near_a_manifold_of_minimisers():
    # a saddle with a clean null space: top eigenvalues 5, 3, then 0s, and one −1 that the
    # top eigenpairs never show; the smallest eigenvalue is checked for it
    saddle = Quadratic(np.diag(np.r_[5.0, 3.0, np.zeros(37), -1.0]))
    with pytest.raises(ValueError, match="eigenvalue -1 < -rel_tol"):
        tangent_space(saddle, np.zeros(40), eigensolver="lanczos")
    # far off Γ no eigenvalue of the top d − 2 is null (checked by eigh first)
    loss = wide_family()
    X = loss.on_manifold(np.full(loss.m, 0.3))
    X[loss.m:] += [40.0, -40.0]
    values = np.linalg.eigvalsh(loss.hessian(X))[::-1]
    assert np.all(np.abs(values[:-2]) > 1e-6 * values[0])
    with pytest.raises(ValueError, match="no null space"):
        tangent_space(loss, X, eigensolver="lanczos")


@pytest.mark.slow
def test_ambient_flow_on_lanczos_matches_the_chart_flow():
    loss = wide_family()
    X0 = loss.on_manifold(np.random.default_rng(6).normal(scale=0.3, size=loss.m))
    chart = manifold_flow(loss, X0, 1.0, 0.5, stride=0.25, geometry="chart")
    ambient = manifold_flow(loss, X0, 1.0, 0.5, stride=0.25, geometry="ambient",
                            eigensolver="lanczos")
    assert chart.success and ambient.success, (chart.message, ambient.message)
    # as test_ambient_flow_matches_chart_flow: the same field to rtol 1e-10, here with the
    # normal eigenpairs from ARPACK at 1e-13
    np.testing.assert_allclose(ambient.trajectory, chart.trajectory, atol=1e-8)
    assert ambient.parameters["eigensolver"] == "lanczos"


@pytest.mark.parametrize("eigensolver", ["auto", "lanczos"])
def test_an_ambient_trial_point_lanczos_cannot_split_does_not_stop_the_flow(eigensolver):
    # d = 36 > 32, so "auto" takes Lanczos. One of the integrator's trial points lies
    # |z − g(x)| ≈ 1e-5 off Γ, where the tangent curvatures (±1e-5) pass rel_tol·λ1: the
    # Lanczos split refuses it (an eigenvalue below −rel_tol·λ1). That ValueError had
    # escaped from inside the integrator. Now "auto" splits such a
    # point densely, as "eigh" does, and "lanczos" rejects the trial step (NaN), which the
    # integrator retries shorter
    rng = np.random.default_rng(0)
    m, k = 34, 2
    slopes = rng.uniform(0, 0.2, (k, m))
    K = rng.standard_normal((k, m, m)) * 0.1
    loss = ManifoldFamily([3.0, 1.0], slopes, K=0.5 * (K + K.transpose(0, 2, 1)))
    X0 = loss.on_manifold(rng.standard_normal(m) * 0.3)
    chart = manifold_flow(loss, X0, 0.01, 2000.0, geometry="chart", stride=1000.0)
    ambient = manifold_flow(loss, X0, 0.01, 2000.0, geometry="ambient", stride=1000.0,
                            eigensolver=eigensolver)
    assert chart.success and ambient.success, ambient.message
    # as test_ambient_flow_matches_chart_flow: the same field to rtol 1e-10
    np.testing.assert_allclose(ambient.trajectory, chart.trajectory, atol=1e-8)
    if eigensolver == "lanczos":
        # an implicit integrator cannot retry a NaN step: it stops, and says why (it had
        # said only that a right-hand side was not finite)
        radau = manifold_flow(loss, X0, 0.01, 2000.0, geometry="ambient", stride=1000.0,
                              eigensolver=eigensolver, integrator="Radau")
        assert radau.status is Status.NONFINITE
        assert "eigensolver='lanczos' could not split the Hessian" in radau.message


def test_an_ambient_flow_from_a_non_finite_start_reports_nonfinite():
    # ∇L is NaN at (1e200, 1e200, 0) (the product overflows): the start check leaves that to
    # the integrator, which reports NONFINITE; validating the start's tangent space had
    # raised NonFiniteError instead
    flow = manifold_flow(ScalarNetwork(3), [1e200, 1e200, 0.0], 0.1, 1.0, geometry="ambient")
    assert flow.status is Status.NONFINITE


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_the_ambient_flow_at_d_1_is_stationary(method):
    # Γ = {0} is a point; its one eigenvalue has no second beside it (λ2 = 0: gap 1)
    flow = manifold_flow(Quadratic([1.0]), [0.0], 0.1, 100, method=method)
    assert flow.status is Status.OK and flow.geometry == "ambient"
    assert np.all(flow.trajectory == 0.0) and np.all(flow.rel_gap == 1.0)
    comparison = compare_manifold_flow(Quadratic([1.0]), [0.3], 0.1, 100, method=method)
    assert comparison.success


def test_settings_that_would_move_the_ambient_flow_off_gamma_are_refused():
    loss = ManifoldFamily([2.0, 1.0], [[1.0, 0.5], [0.0, 0.0]], K=K)
    X0 = loss.on_manifold(np.array([1.0, 0.8]))
    with pytest.raises(ValueError, match="restoring must be >= 0"):
        manifold_flow(loss, X0, 0.05, 10, geometry="ambient", restoring=-10.0)
    for null_tol in (1.0, 2.0):  # every eigenvalue null: P_Γ the identity
        with pytest.raises(ValueError, match=r"null_tol must lie in \(0, 1\)"):
            manifold_flow(loss, X0, 0.05, 10, geometry="ambient", null_tol=null_tol)
    assert manifold_flow(loss, X0, 0.05, 10, geometry="ambient", restoring=0.0).success


def test_compare_refuses_an_undefined_flow_before_running_gd(monkeypatch):
    import stabsim.compare_manifold as module

    def no_gd(*args, **kwargs):
        raise AssertionError("GD ran before the refusal")

    monkeypatch.setattr(module, "run_gd", no_gd)
    with pytest.raises(ValueError, match="has no chart"):
        compare_manifold_flow(ScalarNetwork(3), [1.4, 0.8, 0.9], 0.01, 20000,
                              geometry="chart")
    # two equal normal curvatures: λ1 is double at Φ(θ₀), the start, named as such
    with pytest.raises(ValueError, match=r"at Φ\(theta0\) \(the flow's start\) is not simple"):
        compare_manifold_flow(ManifoldFamily([1.0, 1.0], [[0.0], [0.0]]), [0.3, 0.2, 0.1],
                              0.1, 100)


def test_the_closed_form_projection_takes_what_limit_map_returns():
    # μ = 1e-3 normal curvature: limit_map stops at |∇L| ≤ 1e-10, about 1e-10/μ ~ 5e-8 off
    # Γ along z, farther than the closed form's own 1e-8 (relative) allowance
    loss = ManifoldFamily([2.0, 1e-3], [[1.0, 0.5], [0.0, 0.0]], K=K)
    limit = limit_map(loss, [1.0, 0.8, 0.3, 0.5])
    assert limit.success
    closed = tangent_projection(loss, limit.theta)
    numeric = tangent_projection(loss, limit.theta, geometry="numeric")
    # the numeric projector is taken at the point, the closed one at (x, g(x)), 5e-8 away:
    # they differ by that distance times the derivative of P_Γ (of order 1 here)
    np.testing.assert_allclose(closed, numeric, atol=1e-6)
    with pytest.raises(ValueError, match="not on the manifold"):
        tangent_projection(loss, limit.theta + 1e-3)
