"""The exact GD engine against closed forms and the stability thresholds of docs/theory.md §0."""

import numpy as np
import pytest

from stabsim._status import Status, UndefinedError
from stabsim.losses import Minimalist, Quadratic, QuadraticRegression, ScalarNetwork
from stabsim.maps import empirical_threshold, reference_point, run_gd, stability_threshold


@pytest.mark.parametrize("eta_a", [0.4, 0.9, 1.3, 1.7, 2.2])
def test_one_dimensional_quadratic_matches_closed_form(eta_a):
    # GD on a x²/2 is x_t = (1 − ηa)^t x_0: the iterates must agree to round-off. The
    # engine computes x − η(ax): each step has relative error ≈ eps(1 + ηa/|1 − ηa|)
    # (cancellation when ηa is near 1), and the errors add up over t steps.
    a, x0, steps = 3.0, 0.7, 40
    eta = eta_a / a
    result = run_gd(Quadratic([a]), [x0], eta, steps, record_trajectory=True,
                    divergence_norm=1e300)
    expected = x0 * (1.0 - eta * a) ** np.arange(steps + 1)
    rtol = steps * 2.3e-16 * (2.0 + eta_a / abs(1.0 - eta_a))
    np.testing.assert_allclose(result.trajectory[:, 0], expected, rtol=rtol, atol=0)
    np.testing.assert_allclose(result.loss, 0.5 * a * expected**2, rtol=2 * rtol + 1e-15)
    assert result.status is Status.OK and result.counters["steps"] == steps


def test_three_regimes_of_the_quadratic():
    a = 2.0
    quadratic = Quadratic([a])

    def iterates(eta):
        return run_gd(quadratic, [1.0], eta, 30, record_trajectory=True,
                      divergence_norm=1e300).trajectory[:, 0]

    monotone = iterates(0.8 / a)  # η < 1/a: same sign, shrinking
    assert np.all(monotone > 0) and np.all(np.diff(monotone) < 0)
    oscillating = iterates(1.5 / a)  # 1/a < η < 2/a: alternating sign, shrinking
    assert np.all(oscillating[:-1] * oscillating[1:] < 0)
    assert np.all(np.diff(np.abs(oscillating)) < 0)
    divergent = iterates(2.1 / a)  # η > 2/a: alternating sign, growing
    assert np.all(divergent[:-1] * divergent[1:] < 0)
    assert np.all(np.diff(np.abs(divergent)) > 0)


def test_divergence_is_reported_not_hidden():
    result = run_gd(Quadratic([1.0]), [1.0], 3.0, 10_000, divergence_norm=1e6)
    assert result.status is Status.DIVERGED and not result.success
    assert "diverged" in result.message
    # |x_t| = 2^t passes 1e6 at t = 20: the records stop before the failing state
    assert result.counters["steps"] == 20
    assert len(result.loss) == 20
    assert np.all(np.isfinite(result.loss)) and np.all(np.isfinite(result.sharpness))


def test_nonfinite_is_reported():
    # without a divergence threshold, x doubles until the loss overflows to inf
    result = run_gd(Quadratic([1.0]), [1.0], 3.0, 10_000, divergence_norm=1e308)
    assert result.status is Status.NONFINITE
    assert np.all(np.isfinite(result.loss))


@pytest.mark.parametrize(
    "method, momentum",
    [("gd", 0.0), ("heavy_ball", 0.5), ("heavy_ball", 0.9), ("nesterov", 0.5), ("nesterov", 0.9)],
)
def test_thresholds_recovered_by_bisection(method, momentum):
    a = 3.0
    # The closed-form threshold T(η) is proportional to 1/η, so T(η_c) = a gives
    # η_c = T(1)/a; the bisection only ever runs the iteration.
    eta_c = stability_threshold(1.0, method, momentum) / a
    found = empirical_threshold(method, momentum, sharpness=a, rtol=1e-7)
    assert abs(found - eta_c) / eta_c < 1e-6


def test_stability_threshold_formulas():
    assert stability_threshold(0.1) == pytest.approx(20.0)
    assert stability_threshold(0.1, "heavy_ball", 0.9) == pytest.approx(38.0)
    assert stability_threshold(0.1, "nesterov", 0.9) == pytest.approx(3.8 / 0.28)
    with pytest.raises(ValueError, match="no fixed stability threshold"):
        stability_threshold(0.1, "normalised")


def test_crossing_and_reference_point_on_a_sharpening_loss():
    # L = ½(c + w) x² − w... written as a quadratic in x with curvature rising along w:
    # use a 2-D quadratic whose sharpness is constant to check that no crossing is found,
    # and the realisation loss (test_losses) for a real crossing.
    result = run_gd(Quadratic([1.0, 0.5]), [1.0, 1.0], 0.5, 50)
    assert result.crossing_step is None
    with pytest.raises(ValueError, match="no crossing"):
        reference_point(Quadratic([1.0, 0.5]), result)
    # sharpness 5 ≥ 2/η = 4 at the start: the crossing is step 0
    result = run_gd(Quadratic([5.0, 0.5]), [1.0, 1.0], 0.5, 5)
    assert result.crossing_step == 0


def test_records_follow_the_stride_and_final_state():
    quadratic = Quadratic([1.0, 2.0])
    full = run_gd(quadratic, [1.0, -1.0], 0.3, 100, record_trajectory=True)
    strided = run_gd(quadratic, [1.0, -1.0], 0.3, 100, stride=7, record_trajectory=True,
                     chunk_steps=13)
    # every 7th step and the last one (100), as the package's `stride` means everywhere
    at = [*range(0, 101, 7), 100]
    np.testing.assert_array_equal(strided.step, at)
    np.testing.assert_array_equal(strided.trajectory, full.trajectory[at])
    for name in ("loss", "grad_norm", "sharpness"):  # the last row is measured like the rest
        np.testing.assert_array_equal(getattr(strided, name), getattr(full, name)[at])
    np.testing.assert_array_equal(strided.theta, full.trajectory[-1])
    assert strided.counters["records"] == 16
    # a stride that divides the steps records the last step once
    assert run_gd(quadratic, [1.0, -1.0], 0.3, 98, stride=7).step[-1] == 98
    assert run_gd(quadratic, [1.0, -1.0], 0.3, 98, stride=7).step.size == 15
    dataset = full.to_xarray()
    assert dataset.sizes["step"] == 101 and dataset.attrs["status"] == "OK"


def test_top_k_matches_dense_eigensolver():
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    matrix = basis @ np.diag(np.linspace(-1.0, 3.0, 40)) @ basis.T
    matrix = 0.5 * (matrix + matrix.T)
    result = run_gd(Quadratic(matrix), rng.normal(size=40), 0.1, 3, top_k=3)
    expected = np.sort(np.linalg.eigvalsh(matrix))[::-1][:3]
    np.testing.assert_allclose(result.sharpness, np.tile(expected, (4, 1)), rtol=1e-12)


def test_deflated_lanczos_finds_both_copies_of_a_repeated_top_eigenvalue():
    # a double top eigenvalue 3: Lanczos from one start sees one direction of its eigenspace
    # (the start's component in it); deflating that vector leaves the other, so the second
    # value is 3 as well (a Krylov method without deflation returns 3 only once)
    rng = np.random.default_rng(7)
    basis = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    values = np.concatenate([[3.0, 3.0], np.linspace(-1.0, 2.0, 28)])
    matrix = basis @ np.diag(values) @ basis.T
    matrix = 0.5 * (matrix + matrix.T)
    result = run_gd(Quadratic(matrix), rng.normal(size=30), 0.01, 2, top_k=3,
                    eigensolver="lanczos")
    # Ritz values from residual ≤ 1e-10·3 lie within it of an eigenvalue (Bauer–Fike)
    np.testing.assert_allclose(result.sharpness, np.tile([3.0, 3.0, 2.0], (3, 1)), rtol=0,
                               atol=(1 + 2) * 3e-10)


@pytest.mark.parametrize("d", [12, 20, 40])
def test_deflated_lanczos_gives_negative_eigenvalues_below_the_top(d):
    # One positive eigenvalue, the rest negative: P A P (P off the top vector) is 0 on that
    # vector, so a basis vector that leaks back along it gives λ₂ = 0 with a tiny residual.
    # The reorthogonalisation put such a leak in (O(eps |A|), dominant once the Krylov
    # space used up P's range): top_k = 2 gave [3, −6e-15] for [3, −1] at d = 20, and a
    # scalar network's [35.6, −1.06, −1.06] came out [35.6, −1.1e-11, −1.2e-11], status OK
    rng = np.random.default_rng(d)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    values = np.concatenate([[3.0], -np.linspace(1.0, 2.0, d - 1)])
    rotated = basis @ np.diag(values) @ basis.T
    for matrix in (np.diag(values), 0.5 * (rotated + rotated.T)):
        result = run_gd(Quadratic(matrix), np.ones(d), 0.01, 0, top_k=3,
                        eigensolver="lanczos")
        assert result.status is Status.OK
        # each Ritz value has residual ≤ 1e-10·|A| (|A| = 3), so it lies within that of an
        # eigenvalue of the deflated operator (Bauer–Fike), plus what the locked vectors'
        # own error (≤ 3e-10/gap, gap ≥ 1 here) moves it by, for each of the two above it
        expected = np.sort(np.linalg.eigvalsh(matrix))[::-1][:3]
        np.testing.assert_allclose(result.sharpness[0], expected, rtol=0, atol=(1 + 2) * 3e-10)
    # the scalar network of the finding (λ₁ ≈ 35.6 far above λ₂ ≈ −1.06: the locked vector's
    # error, ≤ 1e-10·|A|/36, moves λ₂ by far less than the residual bound)
    network = ScalarNetwork(10)
    theta = 1.05 + 0.001 * np.arange(10)
    result = run_gd(network, theta, 1e-4, 0, top_k=2)
    expected = np.sort(np.linalg.eigvalsh(network.hessian(theta)))[::-1][:2]
    np.testing.assert_allclose(result.sharpness[0], expected, rtol=0,
                               atol=2 * 1e-10 * expected[0])


@pytest.mark.parametrize(("d", "top_k"), [(10, 10), (14, 12), (29, 28)])
def test_deflated_lanczos_starts_in_the_deflated_range(d, top_k):
    # The pairs' mix vectors span few directions (the hash is affine modulo 1): a later
    # pair's start can lie in the span of the locked vectors, and projected once it was
    # round-off along them, where P A P is 0: 2·I gave λ = 0.08 for its 10th pair with status
    # OK. The start is now projected twice, and replaced where nothing of it is left. Every
    # pair is an eigenpair of 2·I to round-off here
    result = run_gd(Quadratic(2.0 * np.ones(d)), np.ones(d), 0.01, 0, top_k=top_k,
                    eigensolver="lanczos")
    assert result.status is Status.OK
    np.testing.assert_allclose(result.sharpness[0], 2.0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("top_k", [7, 10])
def test_deflated_lanczos_at_a_balanced_scalar_network(top_k):
    # at the balanced point θ = 1.05·(1, …, 1) the mix vectors of pairs 7 on lie in the span
    # of the earlier pairs' vectors (with (1, …, 1), the top one, removed): the 7th value came
    # out −0.082 for −0.929 with status OK. Each value within its residual bound (1e-10·|λ₁|
    # per pair above it and its own, Bauer–Fike) of eigvalsh's
    network = ScalarNetwork(10)
    theta = 1.05 * np.ones(10)
    result = run_gd(network, theta, 1e-4, 1, top_k=top_k)
    assert result.status is Status.OK
    expected = np.sort(np.linalg.eigvalsh(network.hessian(theta)))[::-1][:top_k]
    bound = (1 + np.arange(top_k)) * 1e-10 * expected[0]
    assert np.all(np.abs(result.sharpness[0] - expected) <= bound)


@pytest.mark.parametrize(("loss", "theta", "top_k"), [
    (ScalarNetwork(4), 0.5 * np.ones(4), 3),
    (ScalarNetwork(10), 0.9 * np.ones(10), 6),
    (Quadratic(np.r_[[5.0] * 10, 2.0]), np.ones(11), 10),
], ids=["balanced-4", "balanced-10", "diagonal-repeated"])
def test_deflated_lanczos_finds_every_copy_of_an_aligned_repeated_eigenvalue(loss, theta,
                                                                             top_k):
    # An eigenspace aligned with the coordinates or with the complement of (1, …, 1): the
    # pairs' mix vectors, strided sequences of an affine hash, spanned few directions and
    # later pairs' starts had nothing in it: a balanced scalar network of d = 4 gave
    # [0.234, 0.234, −0.641] for a triple 0.234, and diag(5 × 10, 2) nine 5s then 2, status
    # OK. Each value within its residual bounds (Bauer–Fike, 1e-10 of
    # |λ₁| per pair above it and its own) of eigvalsh's
    result = run_gd(loss, theta, 0.01, 0, top_k=top_k, eigensolver="lanczos")
    assert result.status is Status.OK
    expected = np.sort(np.linalg.eigvalsh(loss.hessian(theta)))[::-1][:top_k]
    bound = (1 + np.arange(top_k)) * 1e-10 * abs(expected[0])
    assert np.all(np.abs(result.sharpness[0] - expected) <= bound)


def test_deflated_lanczos_below_a_rank_two_hessian_measures_against_its_size():
    # H of rank 2 (a linear network at its minimum, say): P H P deflated twice is round-off,
    # and a tolerance relative to its own size (1e-10 of ~1e-16) was out of reach (1000
    # products, NOT_CONVERGED). Relative to |λ₁| ≤ |H| it converges: λ₃ = 0 within 1e-10·3
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    matrix = basis @ np.diag(np.r_[3.0, 2.0, np.zeros(38)]) @ basis.T
    result = run_gd(Quadratic(0.5 * (matrix + matrix.T)), rng.normal(size=40), 0.01, 3,
                    top_k=3, eigensolver="lanczos")
    assert result.status is Status.OK
    np.testing.assert_allclose(result.sharpness, np.tile([3.0, 2.0, 0.0], (4, 1)), rtol=0,
                               atol=3 * 3e-10)
    assert result.counters["lanczos_products"] < 200  # 4 measurements of 3 pairs


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"eta": 0.0}, "eta"),
        ({"eta": float("nan")}, "eta"),
        ({"eta": -1.0}, "eta"),
        ({"theta0": [1.0, 2.0, 3.0]}, "theta0"),
        ({"theta0": [np.nan, 1.0]}, "theta0"),
        ({"steps": -1}, "steps"),
        ({"method": "adam"}, "method"),
        ({"momentum": 1.0}, "momentum"),
        ({"stride": 0}, "stride"),
        ({"top_k": 3}, "top_k"),
        ({"eigensolver": "power"}, "eigensolver"),
        ({"method": "sqrt", "loss_min": float("inf")}, "loss_min"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    arguments = {"theta0": [1.0, 1.0], "eta": 0.1, "steps": 10}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        run_gd(Quadratic([1.0, 2.0]), arguments.pop("theta0"), arguments.pop("eta"),
               arguments.pop("steps"), **arguments)


def test_gd_on_the_exact_realisation_reproduces_the_reduced_map():
    # docs/theory.md §1: GD on ½(2/η + bw)x² − (α/b)w is the reduced map in (x, y = bw), β = b².
    from stabsim.losses import ReducedMapRealisation
    from stabsim.maps import run_reduced

    eta, alpha, b, steps = 0.05, 0.4, 1.7, 3000
    loss = ReducedMapRealisation(eta, alpha, b)
    x0, y0 = 1e-3, -0.5
    gd = run_gd(loss, loss.to_theta(x0, y0), eta, steps, record_trajectory=True,
                find_crossing=False, eigensolver="eigh")
    reduced = run_reduced(x0, y0, eta, alpha, b * b, steps)
    assert gd.status is Status.OK and reduced.status is Status.OK
    x, y = loss.from_theta(gd.trajectory)
    # round-off: the two evaluate the same update in different orders, and errors grow with
    # the map's expansion; compare relative to the orbit's size
    np.testing.assert_allclose(x, reduced.x, rtol=0, atol=1e-9 * np.abs(reduced.x).max())
    np.testing.assert_allclose(y, reduced.y, rtol=0, atol=1e-9 * np.abs(reduced.y).max())


def test_crossing_and_reference_point_on_the_realisation():
    from stabsim.losses import ReducedMapRealisation

    eta = 0.1
    loss = ReducedMapRealisation(eta, alpha=0.5, b=1.0)
    result = run_gd(loss, loss.to_theta(1e-4, -1.0), eta, 200, record_trajectory=True)
    t = result.crossing_step
    assert t is not None
    top = [np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory[t - 1:t + 1]]
    assert top[0] < 2 / eta <= top[1]  # independent check of "first crossing"
    star = reference_point(loss, result)
    # bisection to 1e-12 of the segment: S(θ*) within that times |dS/ds| of 2/η
    assert abs(np.linalg.eigvalsh(loss.hessian(star))[-1] - 2 / eta) < 1e-8


@pytest.mark.parametrize("eigensolver", ["eigh", "lanczos"])
def test_a_nonfinite_hessian_is_a_status_not_an_exception(eigensolver):
    # a user loss ½ Σ c_i θ_i² whose Hessian entry (0, 0) is NaN once |θ_0| < 0.5: the engine
    # must stop with NONFINITE. The top eigenvector is e_{d−1}, orthogonal to the NaN entry,
    # so Lanczos sees it only because every entry enters its products (NaN·0 = NaN).
    import user_families

    from stabsim.losses import Loss

    d = 40
    curvature = np.ones(d)
    curvature[0], curvature[-1] = 10.0, 20.0
    start = np.ones(d)
    loss = Loss(user_families.Diagonal(curvature), d, check_points=[start])
    result = run_gd(loss, start, 0.01, 50, eigensolver=eigensolver)
    assert result.status is Status.NONFINITE
    # θ_0 = 0.9^t passes 0.5 at t = 7, where the Hessian turns NaN
    assert result.counters["steps"] == 7 and np.all(np.isfinite(result.sharpness))
    np.testing.assert_allclose(result.sharpness[:, 0], 20.0, rtol=1e-10)


def test_a_two_parameter_loss_at_the_edge_of_stability_is_measured_to_the_end():
    # the minimalist loss near its EoS: the top eigenvalue (≈ 2/η ≈ 5) sits beside a large
    # negative one, so two Lanczos steps leave β at round-off of the norm rather than of λ;
    # the two-dimensional Krylov space is all of R² and the Ritz value exact (it once stopped
    # here with NOT_CONVERGED). The run must end OK, with eigh's sharpness along the way.
    loss = Minimalist()
    start = 1.9615 * np.array([1.0, 0.075])
    lanczos = run_gd(loss, start, 0.39103, 3000, record_trajectory=True)
    dense = run_gd(loss, start, 0.39103, 3000, eigensolver="eigh")
    assert lanczos.status is Status.OK and dense.status is Status.OK
    # a Ritz value lies within its residual, ≤ 1e-10·‖H‖, of an eigenvalue
    norms = np.array([np.abs(np.linalg.eigvalsh(loss.hessian(t))).max()
                      for t in lanczos.trajectory])
    assert np.all(np.abs(lanczos.sharpness[:, 0] - dense.sharpness[:, 0]) <= 1e-10 * norms
                  + 1e-15 * norms)


@pytest.mark.parametrize(("loss", "eigensolver", "dense"), [
    (Quadratic([3.0, 2.0, 1.0, 0.5]), "lanczos", False),
    (Minimalist(), "auto", True),  # d = 2: the closed form of the dense Hessian
    (Quadratic([3.0, 2.0, 1.0, 0.5]), "eigh", True),
])
def test_work_counters_follow_the_loop(loss, eigensolver, dense):
    # every state t = 0..steps is evaluated once (one gradient); every recorded state is
    # measured once: by Lanczos (at least one product, at most the budget each) or by a
    # dense solver (one dense Hessian, no products)
    steps, stride = 40, 4
    theta0 = np.linspace(0.4, 0.9, loss.dim)
    result = run_gd(loss, theta0, 0.1, steps, stride=stride, find_crossing=False,
                    eigensolver=eigensolver, eig_max_products=50)
    counters = result.counters
    assert result.success and counters["steps"] == steps
    assert counters["gradients"] == steps + 1
    assert counters["records"] == steps // stride + 1
    if dense:
        assert counters["dense_hessians"] == counters["records"]
        assert counters["lanczos_products"] == 0
    else:
        assert counters["dense_hessians"] == 0
        assert counters["records"] <= counters["lanczos_products"] <= 50 * counters["records"]


@pytest.mark.parametrize("d, n", [(2, 3), (1, 2), (2, 1)])
def test_closed_form_sharpness_of_a_tiny_model_with_a_factor_matches_eigh(d, n):
    # d ≤ 2 takes the closed-form top eigenpair of H + FᵀF (the Gauss–Newton factor F of n
    # rows added entry by entry); eigensolver="eigh" forms the same sum and calls LAPACK.
    # Both are backward stable: the sharpness agrees to a few ulps of |H|, and the iterates,
    # which do not depend on the sharpness, are identical
    loss = QuadraticRegression.random(d, n, seed=5)
    theta0 = np.full(d, 0.3)
    closed = run_gd(loss, theta0, 0.05, 50)
    dense = run_gd(loss, theta0, 0.05, 50, eigensolver="eigh")
    assert closed.status is Status.OK and dense.status is Status.OK
    scale = np.abs(dense.sharpness).max()
    np.testing.assert_allclose(closed.sharpness, dense.sharpness, rtol=0, atol=8e-16 * scale)
    np.testing.assert_array_equal(closed.loss, dense.loss)


@pytest.mark.parametrize("kwargs, why", [
    ({}, "stayed below the threshold 20"),  # S = 1 < 2/η = 20 all along
    ({"find_crossing": False}, "find_crossing=False"),
    ({"method": "normalised"}, "method='normalised' has no stability threshold"),
])
def test_reference_point_without_a_crossing_says_why(kwargs, why):
    loss = Quadratic(np.diag([1.0, 0.5]))
    with pytest.raises(ValueError, match="no crossing of the stability threshold: .*" + why):
        reference_point(loss, run_gd(loss, np.ones(2), 0.1, 5, **kwargs))


def test_reference_point_refuses_a_start_at_or_past_the_threshold():
    # it returned θ₀ (S(θ₀) = 1.25·2/η), against its promise |S(θ*) − 2/η| ≤ tol
    loss = Quadratic([1.0, 0.5])
    result = run_gd(loss, [1.0, 1.0], 2.5, 3)
    assert result.crossing_step == 0
    with pytest.raises(ValueError, match="never crosses it from below"):
        reference_point(loss, result)


def test_the_reference_point_is_at_the_threshold_and_the_centre_of_the_oscillation():
    # S(θ*) = 2/η and u·∇L(θ*) = 0, checked by a dense eigh of the Hessian at θ* (Newton's
    # steps stop below 1e-12 of the crossing step: both conditions to about that times their
    # slopes, S ~ 200 and |∇²L| ~ 200 here)
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    result = run_gd(loss, np.zeros(loss.dim), eta, 300)
    star = reference_point(loss, result)
    values, vectors = np.linalg.eigh(loss.hessian(star))
    assert abs(values[-1] - 2 / eta) < 1e-9 * (2 / eta)
    assert abs(vectors[:, -1] @ loss.grad(star)) < 1e-9 * (2 / eta) * np.linalg.norm(
        result.crossing_pair[1] - result.crossing_pair[0])


@pytest.mark.parametrize(("start", "eta"), [([0.6, 0.6001], 0.49), ([0.6, 0.601], 0.45),
                                            ([2.0, 0.2], 0.48)])
def test_a_point_the_crossing_does_not_straddle_is_not_the_reference_point(start, eta):
    # near the minimalist loss's diagonal ∇S⊥ is small, and Newton's long step along it
    # reaches the mirror image of the minimiser GD nears ((−1.106, −0.904) from the first
    # start, 34 crossing steps away, both iterates' x of one sign), which compare had used
    # with status OK: it is refused, as not the centre
    loss = Minimalist()
    result = run_gd(loss, start, eta, 300)
    with pytest.raises(UndefinedError, match="not between GD's iterates along u"):
        reference_point(loss, result)


def test_a_crossing_whose_oscillation_is_round_off_still_has_its_reference_point():
    # at the first crossing on a network GD's x is round-off (x/length ~ 1e-14): the
    # straddle test had refused the point on its sign. Checked by a
    # dense eigh at θ*: S = 2/η and u·∇L = 0 to Newton's tolerance (1e-12 of the step)
    from stabsim.losses import Network

    eta = 0.1
    net = Network((8, 8))
    result = run_gd(net, net.init(seed=0), eta, 3000)
    star = reference_point(net, result)
    values, vectors = np.linalg.eigh(net.hessian(star))
    assert abs(values[-1] - 2 / eta) < 1e-9 * (2 / eta)
    assert abs(vectors[:, -1] @ net.grad(star)) < 1e-9 * (2 / eta) * np.linalg.norm(
        result.crossing_pair[1] - result.crossing_pair[0])


@pytest.mark.parametrize("gap", [1e-6, 1e-8, 1e-10])
@pytest.mark.parametrize("top_k", [1, 2])
def test_a_nearly_repeated_top_pair_is_measured_by_lanczos(gap, top_k, thick_switches):
    # diag(0, …, 1 − g, 1), d = 100, from (1, …, 1): restarted from one Ritz vector (the
    # engine's first choice), Lanczos stays above its tolerance at any budget (a residual of
    # 8.8e-6 at g = 1e-6); the run goes on from the stalled step with the pair kept across
    # restarts, which resolves the two. Checked against the exact eigenvalues: each
    # recorded one within its residual (Bauer–Fike) of 1 and 1 − g, which the residual
    # bound (≤ tol·|λ₁| = 1e-10) tells apart for g ≥ 1e-8; at g = 1e-10 either is within
    # the tolerance of the top (eps for the rounding of the diagonal). The updates do not
    # depend on the measurement: the iterates are eigh's run's, bit for bit
    d = 100
    diagonal = np.linspace(0.0, 1.0, d)
    diagonal[-2] = 1.0 - gap
    loss = Quadratic(np.diag(diagonal))
    run = run_gd(loss, np.ones(d), 0.5, 5, top_k=top_k, eigensolver="lanczos", stride=2,
                 record_trajectory=True)
    assert run.success
    assert thick_switches == ["MatrixFree" if top_k == 1 else "MatrixFreeDeflated"]
    np.testing.assert_array_equal(run.step, [0, 2, 4, 5])
    assert np.all(run.eig_residual <= 1e-10)
    exact = np.array([1.0, 1.0 - gap])[:top_k]
    assert np.all(np.abs(run.sharpness - exact) <= run.eig_residual[:, None] + 2e-16)
    dense = run_gd(loss, np.ones(d), 0.5, 5, eigensolver="eigh", stride=2,
                   record_trajectory=True)
    np.testing.assert_array_equal(run.trajectory, dense.trajectory)


def test_a_stall_at_the_last_state_measured_on_its_own_is_named_as_one_in_the_loop(
        monkeypatch, thick_switches):
    # steps = 5, stride = 2: the state after the last update (step 5) is measured by a call
    # of its own after the loop. A measurement there that stalls with thin and then thick
    # restarts (a stand-in engine that reports NOT_CONVERGED for that call only: such a
    # stall, at one step alone, depends on the last bits of a run's product counts) gets
    # the message of a stall in the loop, and the records of steps 0, 2 and 4
    import stabsim.maps.gd as gd

    engine_for = gd.engine_for

    def stalling_at_the_last_state(kernel, family):
        engine = engine_for(kernel, family)

        def call(*args):
            start, n_steps = args[5], args[6]
            if start == 0 and n_steps == 0:
                return int(Status.NOT_CONVERGED), 0
            return engine(*args)

        return call

    monkeypatch.setattr(gd, "engine_for", stalling_at_the_last_state)
    d = 40
    loss = Quadratic(np.linspace(0.1, 1.0, d))
    run = run_gd(loss, np.ones(d), 0.5, 5, stride=2, eigensolver="lanczos")
    assert run.status is Status.NOT_CONVERGED and thick_switches == ["MatrixFree"]
    assert "`eig_max_products`" in run.message and "three or more" in run.message
    np.testing.assert_array_equal(run.step, [0, 2, 4])


def test_a_cluster_of_top_eigenvalues_is_measured_by_eigh_and_named_when_lanczos_stalls():
    # three top eigenvalues 1e-8 apart: eigh gives them to round-off (eps·|H|); a Lanczos run
    # that misses its tolerance (here its budget of one product) says in its message that
    # such a cluster can hold Lanczos above it at any budget and that eigh measures it
    d = 100
    diagonal = np.linspace(0.0, 1.0, d)
    diagonal[-3:] = [1.0 - 2e-8, 1.0 - 1e-8, 1.0]
    loss = Quadratic(np.diag(diagonal))
    dense = run_gd(loss, np.ones(d), 0.5, 5, eigensolver="eigh", top_k=3)
    assert dense.success
    np.testing.assert_allclose(dense.sharpness, [[1.0, 1.0 - 1e-8, 1.0 - 2e-8]] * 6,
                               rtol=0, atol=1e-15)
    stalled = run_gd(loss, np.ones(d), 0.5, 5, eig_max_products=1)
    assert stalled.status is Status.NOT_CONVERGED
    assert "`eig_max_products`" in stalled.message and "three or more" in stalled.message
    assert "eigensolver='eigh'" in stalled.message
