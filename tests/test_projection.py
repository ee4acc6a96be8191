"""proj_M: exact constraint gradients, KKT optimality, idempotence, and the paper's iteration."""

import re

import numpy as np
import pytest
from scipy.optimize import minimize

from stabsim._status import Status
from stabsim.comparison import compare
from stabsim.losses import Minimalist, QuadraticRegression, ScalarNetwork
from stabsim.maps.constrained import constrained_trajectory
from stabsim.maps.gd import run_gd
from stabsim.maps.projection import proj_M, stable_geometry

# Three kinds of loss: a random second-order regression model, the minimalist example and a
# depth-3 scalar network. Each has a base point b and η with 2/η = 0.8 S(b); z is a point of
# M (the projection of b) moved by 0.05 outwards along ∇S and by 0.05 in a random direction,
# so the sharpness constraint is active and z is near M, where the Euclidean projection is
# unique. (Far from M the constraint u·∇L = 0 is strongly curved and the top eigenvalues can
# collide, where M itself is ill-defined; proj_M then reports NOT_CONVERGED, or
# EIGENGAP_CLOSED when it ends with λ2 ≥ 2/η: test_eigengap_closed_when_lambda2_is_above.)
BASES = {
    "regression": (QuadraticRegression.random(6, 3, seed=0),
                   np.random.default_rng(1).normal(size=6) * 0.15),
    "minimalist": (Minimalist(), np.array([1.5, 0.7])),
    "scalar_network": (ScalarNetwork(3), np.array([0.7, 1.1, 1.4])),
}


def _case(name):
    loss, base = BASES[name]
    eta = 2.0 / (0.8 * stable_geometry(loss, base).sharpness)
    on_m = proj_M(loss, base, eta)
    assert on_m.status is Status.OK, on_m.message
    geo = on_m.geometry
    push = geo.grad_sharpness / np.linalg.norm(geo.grad_sharpness)
    kick = np.random.default_rng(2).normal(size=loss.dim)
    z = on_m.theta + 0.05 * push + 0.05 * kick / np.linalg.norm(kick)
    return loss, z, eta


def test_orthogonality_gradient_matches_finite_differences():
    # ∇(u·∇L) = S u + ∇³L[u, (S I − H)⁺ ∇L]; central differences with step h have error
    # O(h² |∇⁴|) + O(eps/h): with h = 1e-5 both are ≲ 1e-8 relative to |∇c2| ~ 1.
    loss, z, _ = _case("regression")
    geo = stable_geometry(loss, z)
    exact = geo.orthogonality_gradient(loss)
    h = 1e-5
    fd = np.array([(stable_geometry(loss, z + h * e, geo.u).u_grad
                    - stable_geometry(loss, z - h * e, geo.u).u_grad) / (2 * h)
                   for e in np.eye(loss.dim)])
    np.testing.assert_allclose(exact, fd, atol=1e-7 * np.linalg.norm(exact))


@pytest.mark.parametrize("name", BASES)
def test_constraints_hold_and_projection_is_idempotent(name):
    loss, z, eta = _case(name)
    p = proj_M(loss, z, eta, tol=1e-11)
    assert p.status is Status.OK, p.message
    # the stopping rule bounds the first-order distances (S − 2/η)₊/|∇S| and |u·∇L|/S by
    # tol·max(1, |z|); the residuals themselves are those times O(|∇S|), O(S)
    geo = p.geometry
    scale = 1e-11 * max(1.0, np.linalg.norm(z))
    assert p.sharpness_excess <= scale * np.linalg.norm(geo.grad_sharpness) * 1.01
    assert p.orthogonality <= scale * geo.sharpness * 1.01
    again = proj_M(loss, p.theta, eta, tol=1e-11)
    # idempotence to the tolerance: the second projection moves at most ~ one stopping step
    assert np.linalg.norm(again.theta - p.theta) <= 10 * scale
    assert again.n_iter <= 1


@pytest.mark.parametrize("name", BASES)
def test_agrees_with_scipy_slsqp(name):
    loss, z, eta = _case(name)
    p = proj_M(loss, z, eta, tol=1e-11)
    u_ref = stable_geometry(loss, z).u  # fixes the sign of u, so c2 is smooth for SLSQP

    def c2(th):
        return stable_geometry(loss, th, u_ref).u_grad

    def c1(th):
        return 2.0 / eta - np.linalg.eigvalsh(loss.hessian(th))[-1]

    ref = minimize(lambda th: 0.5 * np.sum((th - z) ** 2), p.theta + 1e-3, jac=lambda th: th - z,
                   method="SLSQP", constraints=[{"type": "eq", "fun": c2},
                                                {"type": "ineq", "fun": c1}],
                   options={"ftol": 1e-14, "maxiter": 500})
    assert ref.success, ref.message
    # SLSQP uses finite-difference constraint Jacobians (error ~ sqrt(eps) ≈ 1e-8), so the
    # two minimisers agree to ~1e-6; the distance |θ − z| agrees to second order (~1e-10)
    np.testing.assert_allclose(p.theta, ref.x, atol=1e-6)
    assert np.linalg.norm(p.theta - z) <= np.linalg.norm(ref.x - z) + 1e-9


def test_point_in_M_comes_back_unchanged():
    # A minimiser of the scalar network has ∇L = 0 (so u·∇L = 0) and, with 2/η above its
    # sharpness, S < 2/η: it lies in M, and the first SQP step is exactly zero.
    loss = ScalarNetwork(3)
    w = np.array([0.8, 1.0, 1.25])
    eta = 2.0 / (1.2 * loss.sharpness_at_minimiser(w))
    p = proj_M(loss, w, eta)
    assert p.status is Status.OK and p.n_iter == 0
    np.testing.assert_array_equal(p.theta, w)


def test_paper_iteration_converges_linearly_at_the_predicted_rate_and_is_not_nearest():
    """The paper's passes: residuals pass by pass against their linearisation.

    A pass is θ ← θ − c1₊ ∇S⊥/|∇S⊥|² − c2 u/S with c1 = S − 2/η, c2 = u·∇L. To first order
    it maps the residuals by c ← (I − J A) c, J the rows ∇c1 = ∇S and ∇c2 (exact,
    `orthogonality_gradient`), A the columns ∇S⊥/|∇S⊥|² and u/S. The u-correction moves S
    by −(u·∇S)c2/S, here below 2/η: from the first pass on c1 < 0 and only c2 is corrected,
    each pass multiplying it by ρ = 1 − ∇c2·u/S = −u·∇³L[u, (SI − H)⁺∇L]/S (the dropped
    term), with a deviation O(|c2|) from the next Taylor term. So: c1 < 0 after every
    pass; |ρ| < 1; the deviation of c2_{k+1}/c2_k from ρ has fitted order 1 in |c2_k| over
    passes 1–4 (±½: order 0 would be a wrong rate, order 2 a cancelled quadratic term);
    after three passes |u·∇L| = |ρ|²|c2_1| ≠ 0 is reported and exceeds the Euclidean
    projection's tolerance (NOT_CONVERGED); and the output is no closer to z than the
    Euclidean projection. Measured: ρ = −0.0807, ratios −0.0812, −0.0806, −0.08066,
    −0.08065, c1 ≈ −0.0092 after each pass.
    """
    loss, z, eta = _case("regression")
    u_ref = stable_geometry(loss, z).u
    passes = [proj_M(loss, z, eta, projection="paper", passes=k, u_ref=u_ref) for k in range(1, 6)]
    geos = [stable_geometry(loss, p.theta, u_ref) for p in passes]
    c1 = np.array([g.sharpness - 2.0 / eta for g in geos])
    c2 = np.array([g.u_grad for g in geos])
    assert np.all(c1 < 0), c1
    last = geos[-1]
    rate = 1.0 - last.orthogonality_gradient(loss) @ last.u / last.sharpness
    assert abs(rate) < 1.0
    deviation = np.abs(c2[1:] / c2[:-1] - rate)
    order = np.polyfit(np.log(np.abs(c2[:-1])), np.log(deviation), 1)[0]
    assert abs(order - 1.0) < 0.5, (order, c2, deviation, rate)
    three = passes[2]
    assert three.n_iter == 3 and three.projection == "paper"
    assert three.sharpness_excess == 0.0 and three.orthogonality == pytest.approx(abs(c2[2]))
    assert three.status is Status.NOT_CONVERGED
    euclid = proj_M(loss, z, eta, tol=1e-11)
    assert np.linalg.norm(three.theta - z) >= np.linalg.norm(euclid.theta - z) - 1e-12


def test_eigengap_closed_when_lambda2_is_above():
    # θ† from a start above 2/η with λ2 above too (the regression model at η = 2.2/S(0),
    # where λ2(0) = 1.023·2/η): the projection of its step 2 cannot reach M, and ends where
    # λ1 ≈ λ2 > 2/η. A step along ∇S lowers the top eigenvalue only, and λ2 takes its place.
    # Checked with a dense eigensolver: λ2 ≥ 2/η and S > 2/η (not on M) at the output.
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta = 2.2 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    run = constrained_trajectory(loss, theta0, eta, 5)
    assert run.status is Status.EIGENGAP_CLOSED and "the projection of step 2" in run.message
    assert run.trajectory.shape[0] == 2 and np.all(np.isfinite(run.sharpness))
    last = run.trajectory[-1]
    p = proj_M(loss, last - eta * loss.grad(last), eta)
    assert p.status is Status.EIGENGAP_CLOSED and not p.success
    values = np.linalg.eigvalsh(loss.hessian(p.theta))
    assert values[-2] >= 2.0 / eta and values[-1] > 2.0 / eta
    # the message's λ2 and S: Lanczos values (tolerance 1e-10 relative) printed to 6 digits
    shown = re.search(r"λ2 = (\S+) ≥ 2/η = \S+ beside S = (\S+) ", p.message)
    np.testing.assert_allclose([float(shown[1]), float(shown[2])], values[[-2, -1]], rtol=1e-5)


def test_parallel_constraints_minimalist_flattest_minimiser():
    # The minimalist loss at η = 1/2. On its minimisers xy = 1 the sharpness is
    # 2(x² + y²) = 4 + 2(x − 1/x)² ≥ 4 = 2/η, and off them u·∇L ≠ 0, so near (1, 1) M is the
    # single point (1, 1), where ∇S and ∇(u·∇L) = S u both lie along (1, 1). Before, the
    # SQP step's `solve` of J Jᵀ raised LinAlgError here (from GD's iterate after 200 steps
    # from (0.5, 0.1), which `compare` projects).
    loss, eta, z = Minimalist(), 0.5, np.array([1.0556, 0.9682])
    scale = np.linalg.norm(z)
    # S − 2/η = 8 s² + O(s³) at a distance s along the minimisers, and S is known to about ε S:
    # the point is fixed to about √ε, which a tolerance of 1e-10 asks to beat
    p = proj_M(loss, z, eta, tol=1e-10)
    assert p.status is Status.NOT_CONVERGED and "parallel" in p.message
    assert "larger `max_iter` does not" in p.message
    assert np.linalg.norm(p.theta - 1.0) <= 10 * np.sqrt(np.finfo(float).eps) * scale
    # with a looser tolerance it converges: Gauss–Newton on the double root c1 = 8 s² halves
    # s each step, so the step it stops at (≤ tol·|z|) is half the distance left
    tol = 1e-7
    p = proj_M(loss, z, eta, tol=tol)
    assert p.success
    assert np.linalg.norm(p.theta - 1.0) <= 2 * tol * scale * (1 + 1e-6)
    # at (1, 1) itself the rows are parallel exactly: the step is 0, and θ comes back
    p = proj_M(loss, np.ones(2), eta)
    assert p.success and p.n_iter == 0 and np.array_equal(p.theta, np.ones(2))


@pytest.mark.parametrize("z", [[1e100, 1e100], [1e80, 1.0]])
def test_a_start_where_the_hessian_overflows_is_nonfinite(z):
    # x²y² overflows on the minimalist loss there: ∇²L is not finite, so neither are S, u
    # and ∇c2 (asking for ∇c2 = S u + ∇³L[u, r] raised ValueError for a while)
    p = proj_M(Minimalist(), z, 0.5)
    assert p.status is Status.NONFINITE and not p.success


def test_projection_step_with_parallel_rows_is_the_least_norm_one():
    # rank-one J: the step is to_z plus the least-norm correction δ with J δ nearest
    # −c − J to_z, i.e. δ = J⁺(−c − J to_z) (here by `pinv`), and Jᵀμ = δ
    from stabsim.maps.projection import _equality_step

    J = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]])
    c, to_z = np.array([0.5, 1.0]), np.array([0.3, -0.1, 0.7])
    step, mu = _equality_step(J, c, to_z)
    delta = np.linalg.pinv(J) @ (-c - J @ to_z)
    np.testing.assert_allclose(step, to_z + delta, rtol=0, atol=1e-15)
    np.testing.assert_allclose(J @ step, -c, rtol=0, atol=1e-15)  # consistent: met exactly
    np.testing.assert_allclose(J.T @ mu, delta, rtol=0, atol=1e-15)


def test_not_converged_status_when_budget_too_small():
    loss, z, eta = _case("regression")
    p = proj_M(loss, z, eta, max_iter=1, tol=1e-14)
    assert p.status is Status.NOT_CONVERGED and not p.success


@pytest.mark.parametrize("kwargs", [{"eta": -1.0}, {"projection": "exact"}, {"tol": 0.0},
                                    {"max_iter": 0}])
def test_bad_arguments_raise(kwargs):
    loss, z, _ = _case("regression")
    args = {"eta": 0.5} | kwargs
    with pytest.raises(ValueError):
        proj_M(loss, z, **args)


# -- each projection's budget: max_iter for "euclidean", passes for "paper" ------------------

BUDGET_OF = {"euclidean": "max_iter", "paper": "passes"}


@pytest.fixture(scope="module")
def gd_iterate():
    """two_scale(0.01) and GD's iterate 50 steps past its crossing (t_c = 210)."""
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    gd = run_gd(loss, np.zeros(loss.dim), eta, 261, record_trajectory=True)
    return loss, gd.trajectory[260], eta


def _refusal(projection, other):
    return (rf"^{other} = 1 is the budget of projection '{_owner(other)}' only; projection "
            rf"'{projection}' does not use it \(leave {other} unset; this projection's "
            rf"budget is {BUDGET_OF[projection]}\)$")


def _owner(name):
    return next(p for p, budget in BUDGET_OF.items() if budget == name)


@pytest.mark.parametrize(("projection", "other"), [("euclidean", "passes"),
                                                   ("paper", "max_iter")])
def test_each_projection_refuses_the_budget_of_the_other(gd_iterate, projection, other):
    # passes = 1 and 50 had given the Euclidean projection bit for bit, as had max_iter = 1
    # and 500 the paper's
    loss, z, eta = gd_iterate
    for run in (proj_M, lambda *a, **k: constrained_trajectory(*a, 3, **k),
                lambda *a, **k: compare(*a, 3, warn=False, **k)):
        with pytest.raises(ValueError, match=_refusal(projection, other)):
            run(loss, z, eta, projection=projection, **{other: 1})


@pytest.mark.parametrize(("projection", "default"), [("euclidean", 50), ("paper", 3)])
def test_the_parameters_hold_the_budget_in_use_only(gd_iterate, projection, default):
    loss, z, eta = gd_iterate
    name, other = BUDGET_OF[projection], "passes" if projection == "euclidean" else "max_iter"
    p = proj_M(loss, z, eta, projection=projection)
    dag = constrained_trajectory(loss, z, eta, 1, projection=projection)
    for parameters in (p.parameters, dag.parameters):
        assert parameters[name] == default and other not in parameters
    given = proj_M(loss, z, eta, projection=projection, **{name: 2})
    assert given.parameters[name] == 2 and other not in given.parameters
    assert given.n_iter <= 2


def test_the_constrained_trajectory_runs_the_passes_it_is_given(gd_iterate):
    # it had no passes argument: the paper's projection ran three passes every step
    loss, z, eta = gd_iterate
    runs = {k: constrained_trajectory(loss, z, eta, 4, projection="paper", passes=k)
            for k in (1, 3, 5)}
    for k, run in runs.items():
        assert np.array_equal(run.n_iter, np.full(5, k))
        assert run.parameters["passes"] == k
    # the excess 0.14 a single pass leaves at this z (proj_M's docstring) is not met
    assert not runs[1].success and "raise `passes`" in runs[1].message
    # each pass shrinks the residual: five leave less than three
    assert runs[5].residuals[0, 0] < runs[3].residuals[0, 0]
    three = proj_M(loss, z, eta, projection="paper")
    np.testing.assert_array_equal(runs[3].trajectory[0], three.theta)


def test_compare_runs_the_passes_it_is_given():
    # two_scale(0.01) crosses 2/η at step 210: θ† makes 61 rows over 270 steps
    loss = QuadraticRegression.two_scale(0.01)
    for k in (1, 2):
        run = compare(loss, np.zeros(loss.dim), 0.01, 270, warn=False, projection="paper",
                      passes=k)
        assert run.crossing_step == 210
        assert run.counters["projection_iterations"] == 61 * k
        assert run.parameters["passes"] == k and "max_iter" not in run.parameters
        assert "raise `passes`" in run.message
