"""GD's matrix-free Lanczos without its start mix where the family bounds how far the Hessian
moved (the protocol's ``hessian_drift``; ``stabsim._lanczos.anchored_top_eigenpair``), or
its Frobenius norm (``hessian_frobenius``; ``stabsim._lanczos.dominant_top``).

The rules: with λ' the top eigenvalue of the last Hessian measured with the mix (at θ') and
b ≥ ‖∇²L(θ) − ∇²L(θ')‖₂, Weyl's inequality gives λ_max(∇²L(θ)) ≤ λ' + b; where b ≤ τ|λ'|
and a run without the mix converges to λ ≥ λ' + b − τ|λ'|, no eigenvalue above λ is left
for the mix to find (τ the tolerance). With F ≥ ‖∇²L(θ)‖_F, a pair (λ, ρ) with F <
√2 (λ − ρ) belongs to the top eigenvalue (``test_hessian_frobenius.py``).
"""

import numpy as np
import pytest
from user_families import CosineValley, DriftOnlyScalarNetwork, FrobeniusValley

from stabsim._jit import jit
from stabsim._lanczos import (
    CHECK_REACH,
    DOMINANCE,
    anchored_top_eigenpair,
    drift,
    hessian_at,
    keep_anchor,
    lanczos_work,
    point_anchor_work,
)
from stabsim.losses import Loss, Quadratic, ScalarNetwork
from stabsim.losses.kernels.scalar_network import hessian_drift
from stabsim.losses.kernels.scalar_network import hessian_frobenius as frobenius
from stabsim.maps import run_gd
from stabsim.spectral import top_eigenpairs


def _two_norm(matrix):
    return float(np.max(np.abs(np.linalg.eigvalsh(matrix))))


@pytest.mark.parametrize("d", [2, 3, 7, 10])
def test_scalar_network_drift_bounds_the_change_of_the_hessian(d):
    # dense eigvalsh of the difference of the two dense Hessians (an independent route:
    # the family's hess, not its bound); pairs far apart, close, with zero weights and with
    # large ones; 1e-13 |H| for the rounding of the Hessians' entries
    loss = ScalarNetwork(d)
    rng = np.random.default_rng(d)
    for trial in range(60):
        theta = rng.standard_normal(d) * (0.3 if trial % 3 else 2.0) + (trial % 2)
        if trial % 5 == 0:
            theta[rng.integers(d)] = 0.0
        other = theta + rng.standard_normal(d) * 10.0 ** -rng.integers(0, 12)
        here, there = loss.hessian(theta), loss.hessian(other)
        change = _two_norm(here - there)
        rounding = 1e-13 * (_two_norm(here) + _two_norm(there))
        bound = hessian_drift(theta, loss.params, other, np.inf)
        assert bound >= change - rounding
        assert hessian_drift(theta, loss.params, theta, np.inf) >= 0.0


@pytest.mark.parametrize("theta, other", [
    # pairs found by maximising change/bound (Nelder–Mead): the bound is within a factor
    # 1.2–1.4 of the change there, so a bound without its |r'| term (ratio 1.6 at the first
    # two), with ‖C‖_F taken as √m₂ (1.15) or without the factor 2 (1.41 at the third) fails
    ((-0.07102, 0.073588, -0.070438), (0.071019, -0.073588, 0.070179)),
    ((-0.068207, -0.069583, 0.069919), (0.067892, 0.069583, -0.065016)),
    ((10.71839, 13.50644, 37.48885, 1.65096e-4), (10.73419, 13.51919, 37.49309, 1.844945e-4)),
])
def test_scalar_network_drift_holds_where_it_is_nearly_tight(theta, other):
    theta, other = np.array(theta), np.array(other)
    loss = ScalarNetwork(theta.size)
    change = _two_norm(loss.hessian(theta) - loss.hessian(other))
    bound = hessian_drift(theta, loss.params, other, np.inf)
    assert change <= bound <= 1.5 * change


def test_scalar_network_drift_vanishes_at_a_minimiser_and_is_zero_for_a_quadratic():
    # at a balanced minimiser (P = 1 exactly: every weight 1) both points give r = 0 and
    # w − w' = 0: the bound is exactly 0; a quadratic's Hessian never moves
    loss = ScalarNetwork(6)
    ones = np.ones(6)
    assert hessian_drift(ones, loss.params, ones.copy(), np.inf) == 0.0
    quadratic = Quadratic(np.diag([3.0, 1.0]))
    drift = quadratic.family.functions["hessian_drift"]
    assert drift(np.array([1.0, 2.0]), quadratic.params, np.array([-5.0, 0.5]), 0.0) == 0.0


def _valley(factor=1.0, early=0.0, check=True):
    return Loss(CosineValley(0.6, 0.1, factor, early), 3, check=check)


def _valley_run(loss, steps=120):
    # θ₁ moves from 1.4 (cos = 0.17 below a = 0.6) towards 0 (cos → 1): the top eigenvalue
    # passes from e₀, the warm start, to e₁, which the warm start's Krylov space never
    # reaches (the Hessian is diagonal): only the start mix finds it
    theta0 = np.array([1.0, 1.4, 1.0])
    return run_gd(loss, theta0, 0.5, steps, eigensolver="lanczos", record_trajectory=True,
                  find_crossing=False, eig_tol=1e-10)


def _frobenius_valley(factor=1.0 + 1e-14, check=True):
    return Loss(FrobeniusValley(0.6, 0.1, factor), 3, check=check)


@pytest.mark.parametrize("make", [_valley, _frobenius_valley])
def test_gd_with_a_true_bound_finds_the_top_eigenvalue_the_warm_start_cannot_see(make):
    # the Frobenius bound: F² = 0.37 + cos² θ₁ < 2 (0.6 − ρ)² only while cos² θ₁ < 0.35,
    # below the tracked 0.6; from there on it settles nothing and the mix finds e₁
    result = _valley_run(make())
    assert result.success
    exact = np.maximum(0.6, np.cos(result.trajectory[:, 1]))  # diag(a, cos θ₁, c), c = 0.1
    # converged: every residual within the tolerance (relative to the Ritz value, which is
    # the scale here: no eigenvalue is negative), and the Ritz value within its residual of
    # an eigenvalue (Bauer–Fike), here the top one
    assert np.all(result.eig_residual <= 1e-10 * result.sharpness[:, 0])
    assert np.all(np.abs(result.sharpness[:, 0] - exact) <= result.eig_residual + 1e-15)
    assert exact[0] == 0.6 and exact[-1] > 0.99  # the top eigenvector did change


@pytest.mark.parametrize("make", [_valley, _frobenius_valley])
def test_gd_leaves_the_mix_out_once_the_bound_leaves_nothing_for_it_to_find(make):
    # the drift bound: once θ₁ moves less than τ λ' = 1e-10 a step (it decays as
    # (1 − η)^t); the Frobenius bound: once cos θ₁ is the tracked top (F² = 0.37 + cos² θ₁
    # < 2 cos² θ₁ for cos θ₁ > 0.61), however θ₁ moves. Then every measurement is one
    # product (the previous eigenvector meets the tolerance at once); before, each is
    # mixed (two or more). So 300 more steps at the end cost exactly 300 more products
    loss = make()
    short, long = _valley_run(loss, 200), _valley_run(loss, 500)
    assert abs(short.trajectory[-1, 1]) < 1e-12
    assert np.all(np.diff(short.trajectory[-20:, 1]) != 0.0)  # and still moves
    assert long.counters["lanczos_products"] - short.counters["lanczos_products"] == 300
    # with a bound far above every limit and every norm (factor 1e300) every start is mixed
    unbounded = _valley_run(make(factor=1e300), 200)
    assert unbounded.counters["lanczos_products"] >= 2 * 201
    np.testing.assert_allclose(unbounded.sharpness, short.sharpness, rtol=1e-9)


def test_a_false_drift_bound_is_refused_at_construction_and_misleads_the_engine():
    with pytest.raises(ValueError, match="hessian_drift returned 0.0 .*upper bound"):
        _valley(factor=0.0)
    with pytest.raises(ValueError, match="hessian_drift returned 0.0 at limit"):
        _valley(early=1.0)
    # unchecked, the false claim that the Hessian never moves keeps the engine on the old
    # eigenvalue: what the construction check is for
    _stays_on_the_warm_starts_eigenvalue(_valley(factor=0.0, check=False))


def _stays_on_the_warm_starts_eigenvalue(loss):
    """GD on a valley whose false bound went unchecked returns 0.6, the warm start's
    eigenvalue, to the end, where cos θ₁ > 0.99 is the top one."""
    result = _valley_run(loss)
    assert result.success
    assert result.sharpness[-1, 0] == pytest.approx(0.6, rel=1e-9)
    assert np.cos(result.trajectory[-1, 1]) > 0.99


def test_a_false_frobenius_bound_is_refused_at_construction_and_misleads_the_engine():
    # half the norm: below it at every point, and below |λ| at the check's power-iteration
    # vector, so the check's lower bound catches it; and 0.99 of it, since in d = 3 the
    # check's three orthonormal vectors give the norm itself (to round-off, 1e-9 allowed)
    for factor in (0.5, 0.99):
        with pytest.raises(ValueError, match="hessian_frobenius returned .* upper bound"):
            _frobenius_valley(factor=factor)
    # unchecked, the false bound certifies the warm start's 0.6 at every step: what the
    # construction check is for
    _stays_on_the_warm_starts_eigenvalue(_frobenius_valley(factor=0.5, check=False))


def test_scalar_network_gd_at_its_fixed_point_takes_one_product_a_step():
    # GD from near the balanced minimiser at η = 1/d reaches θ with P = 1 to round-off in a
    # few steps and then stops moving: every later measurement is of the same Hessian, with
    # the bound taken once, and takes one product
    d = 100
    rng = np.random.default_rng(0)
    theta0 = 1.0 + 0.1 * rng.standard_normal(d) / np.sqrt(d)
    loss = ScalarNetwork(d)
    short = run_gd(loss, theta0, 1.0 / d, 500, find_crossing=False, record_trajectory=True)
    long = run_gd(loss, theta0, 1.0 / d, 1500, find_crossing=False)
    assert np.all(short.trajectory[-100:] == short.trajectory[-1])
    assert long.counters["lanczos_products"] - short.counters["lanczos_products"] == 1000
    exact = np.linalg.eigvalsh(loss.hessian(short.trajectory[-1]))[-1]
    assert abs(short.sharpness[-1, 0] - exact) <= short.eig_residual[-1] + 1e-14 * exact


@pytest.mark.parametrize("d", [100, 1000])
def test_scalar_network_gd_takes_one_product_from_its_first_step_at_rest(d):
    # the same run from its first step at rest on: θ moved far in the steps before (the
    # engine then mixes without taking the bound for a few measurements), and every
    # measurement after the first at rest is at the point of that one, the anchor's or the
    # last bound's, where the bound is 0 and the stored eigenvector settles it with one
    # product (run n + 1 measures one point more than run n)
    rng = np.random.default_rng(0)
    theta0 = 1.0 + 0.1 * rng.standard_normal(d) / np.sqrt(d)
    loss = ScalarNetwork(d)
    path = run_gd(loss, theta0, 1.0 / d, 30, find_crossing=False, record_trajectory=True)
    rest = next(t for t in range(31) if np.array_equal(path.trajectory[t], path.trajectory[-1]))
    assert 0 < rest < 20
    products = [run_gd(loss, theta0, 1.0 / d, n, find_crossing=False).counters[
        "lanczos_products"] for n in range(rest, rest + 6)]
    assert np.diff(products).tolist() == [1] * 5


@jit
def _warm_start_scaled(theta, p, v0, tol, scale):
    """The engine's anchored Lanczos on ∇²L(θ) by products, then again at the same θ from
    its own vector times ``scale`` (in place, as the engines warm-start): (λ, residual,
    products, converged) of the second run, its start and the vector it returned."""
    d = theta.shape[0]
    work = lanczos_work(d, 20, None)
    anchor = point_anchor_work(d)
    vector = v0.copy()
    anchored_top_eigenpair(hessian_at(theta, p), anchor, vector, work, 1000, tol, vector)
    for i in range(d):
        vector[i] *= scale
    start = vector.copy()
    lam, residual, products, converged = anchored_top_eigenpair(
        hessian_at(theta, p), anchor, vector, work, 1000, tol, vector)
    return lam, residual, products, converged, start, vector


@pytest.mark.parametrize("scale", [1.0, 3.0, 1e-3])
def test_an_accepted_warm_start_returns_the_unit_vector_along_it(scale):
    # diag(1, 2, 3), a quadratic (bound 0): the first run resolves λ = 3 on e_2 (a Krylov
    # space of all of R³); the second, at the same point from that vector scaled, is settled
    # by its first product, on the vector itself, and returns it as a unit vector: scaled by
    # 1/|v| (to a few eps), or left as it is where |v| is 1 (the same bits)
    loss = Quadratic(np.diag([1.0, 2.0, 3.0]))
    lam, residual, products, converged, start, vector = _warm_start_scaled(
        np.ones(3), loss.params, np.ones(3), 1e-10, scale)
    assert converged and products == 1
    assert lam == pytest.approx(3.0, rel=1e-14) and residual <= 1e-10 * lam
    assert abs(np.linalg.norm(vector) - 1.0) <= 4 * np.finfo(float).eps
    np.testing.assert_allclose(vector, start / np.linalg.norm(start), rtol=0, atol=4e-16)
    if abs(start @ start - 1.0) <= 1e-14:
        np.testing.assert_array_equal(vector, start)


@jit
def _anchored_on_products(theta, p, v0, tol, restart):
    """The engine's anchored Lanczos on ∇²L(θ) by products, twice at the same θ (a family
    with a bound: the second run leaves the mix out), the second from ``restart``:
    (λ, residual, products, converged) of the second."""
    d = theta.shape[0]
    work = lanczos_work(d, 20, None)
    anchor = point_anchor_work(d)
    vector = v0.copy()
    anchored_top_eigenpair(hessian_at(theta, p), anchor, vector, work, 1000, tol, vector)
    vector[:] = restart
    return anchored_top_eigenpair(hessian_at(theta, p), anchor, vector, work, 1000, tol, vector)


@pytest.mark.parametrize("gap, angle", [(1e-4, 1e-4), (1e-6, np.pi / 2 - 1e-4)])
def test_the_unmixed_first_product_is_returned_only_within_both_conditions(gap, angle):
    # diag(2 − g, 1, 2), top 2 on e_2, a quadratic (bound 0, so the second run leaves the
    # mix out; three dimensions, so that Lanczos resolves any gap in three products); the
    # start cos φ e_2 + sin φ e_0 has Rayleigh quotient 2 − g sin²φ and
    # residual g sin φ cos φ, against tol·λ ≈ 2e-10 (tol = 1e-10). g = 1e-4, φ = 1e-4:
    # quotient 2 − 1e-12, within Weyl's allowance, residual 1e-8, above the tolerance.
    # g = 1e-6, φ = π/2 − 1e-4: residual 1e-10, within the tolerance, quotient 2 − 1e-6,
    # below λ' − tol·λ'. Either way the first product is not the answer: Lanczos goes on
    loss = Quadratic(np.diag([2.0 - gap, 1.0, 2.0]))
    restart = np.array([np.sin(angle), 0.0, np.cos(angle)])
    lam, residual, products, converged = _anchored_on_products(
        np.ones(3), loss.params, np.ones(3), 1e-10, restart)
    assert converged and products > 1
    assert residual <= 1e-10 * lam
    assert lam == pytest.approx(2.0, rel=1e-13)


@jit
def _bounds_around_a_new_anchor(p, first_anchor, point, second_anchor, limit):
    """The engine's bound at ``point`` against the anchor at ``first_anchor``, then at the
    same point after the anchor moved to ``second_anchor``, then at ``second_anchor``."""
    anchor = point_anchor_work(point.shape[0])
    keep_anchor(hessian_at(first_anchor, p), anchor, 1.0)
    before = drift(hessian_at(point, p), anchor, limit)
    keep_anchor(hessian_at(second_anchor, p), anchor, 1.0)
    after = drift(hessian_at(point, p), anchor, limit)
    return before, after, drift(hessian_at(second_anchor, p), anchor, limit)


def test_a_new_anchor_clears_the_bound_kept_for_a_point():
    # the bound at a point is kept for the next measurement at the same point (GD at a fixed
    # point); it is a bound against the anchor, so a new anchor must not reuse it: the same
    # point against the new anchor gets the family's bound against that anchor, and the
    # anchor's own point gets 0 (its Hessian is the anchor's, exactly)
    # the first anchor a balanced minimiser (product of the weights 1 exactly), where the
    # bound at a point 1e-9 away is far below the limit, and so is kept; the second anchor's
    # bound there (0.18) above the limit but within MAX_MOVED = 16 times it, so that no wait
    # follows
    loss = ScalarNetwork(3)
    first_anchor = np.array([1.0, 2.0, 0.5])
    point = first_anchor + 1e-9
    second_anchor = np.array([1.01, 2.0, 0.5])
    limit = 0.05
    before, after, at_anchor = _bounds_around_a_new_anchor(loss.params, first_anchor, point,
                                                           second_anchor, limit)
    assert before == hessian_drift(point, loss.params, first_anchor, limit) <= limit
    assert after == hessian_drift(point, loss.params, second_anchor, limit) > limit
    assert at_anchor == 0.0


def test_the_anchors_own_point_is_bounded_by_zero_where_the_familys_bound_is_not():
    # the scalar network's bound at a point against itself is 2|r| ‖C‖_F (r = P − 1), not 0;
    # back at the anchor's own point after a bound taken elsewhere (GD on a 2-cycle), the
    # Hessian is the anchor's exactly, and the engine's bound is 0
    loss = ScalarNetwork(3)
    anchor_point = np.array([1.0, 2.0, 0.6])  # P = 1.2
    elsewhere = np.array([1.0, 2.0, 0.4])
    assert hessian_drift(anchor_point, loss.params, anchor_point, 0.0) > 0.0
    limit = 10.0  # above both of the family's bounds: each is kept as the last one taken
    first, second, third = _bounds_after_leaving(loss.params, anchor_point, elsewhere, limit)
    assert first == hessian_drift(elsewhere, loss.params, anchor_point, limit) > 0.0
    assert second == 0.0 and third == first


@jit
def _bounds_after_leaving(p, anchor_point, elsewhere, limit):
    """The engine's bounds at ``elsewhere``, at the anchor's own point, then at ``elsewhere``
    again, against the anchor kept at ``anchor_point``."""
    anchor = point_anchor_work(anchor_point.shape[0])
    keep_anchor(hessian_at(anchor_point, p), anchor, 1.0)
    first = drift(hessian_at(elsewhere, p), anchor, limit)
    second = drift(hessian_at(anchor_point, p), anchor, limit)
    return first, second, drift(hessian_at(elsewhere, p), anchor, limit)


@jit
def _products_along(points, p, v0, tol):
    """The engine's anchored Lanczos at each row of ``points`` in turn, warm-started in place
    from v0 and then from each measurement's vector: the products of each."""
    d = points.shape[1]
    work = lanczos_work(d, 20, None)
    anchor = point_anchor_work(d)
    vector = v0.copy()
    products = np.empty(points.shape[0], dtype=np.int64)
    for i in range(points.shape[0]):
        products[i] = anchored_top_eigenpair(hessian_at(points[i], p), anchor, vector, work,
                                             1000, tol, vector)[2]
    return products


def test_gd_on_a_round_off_two_cycle_takes_one_product_a_step_and_stays_exact():
    # GD at η = 1.9/d converges to the balanced minimiser oscillating, and ends on a
    # period-2 cycle at round-off (θ_{t+2} = θ_t bit for bit, P − 1 = ±5e-11) on which the
    # Hessian moves by about 3 tolerances a step (d = 10⁵: τ|λ| = 1e-5), its top eigenvalue
    # by as much. By Weyl's inequality alone (the scalar network's kernels registered
    # without hessian_frobenius): mixed at the cycle's lower phase, the anchor is there;
    # back at it the bound is 0, and at the higher phase λ rose from λ' by more than the
    # bound less τ|λ'| (no room above λ), so every later measurement is the warm start's one
    # product. From the higher phase the check at the lower one must fail (λ fell) and that
    # measurement mixes. The scalar network itself also bounds ‖∇²L‖_F, by F < √2 (λ − ρ)
    # at both phases, so GD on it takes one product a step from either. Each phase's
    # sharpness is within the tolerance of ARPACK's.
    d = 10**5
    loss = ScalarNetwork(d)
    rng = np.random.default_rng(0)
    theta0 = 1.0 + 0.1 * rng.standard_normal(d) / np.sqrt(d)
    eta = 1.9 / d
    start = run_gd(loss, theta0, eta, 500, find_crossing=False).theta
    cycle = run_gd(loss, start, eta, 2, find_crossing=False, record_trajectory=True)
    assert np.array_equal(cycle.trajectory[2], start)
    assert not np.array_equal(cycle.trajectory[1], start)
    sharpness = cycle.sharpness[:2, 0]
    low, high = (cycle.trajectory[i] for i in np.argsort(sharpness))
    limit = 1e-10 * sharpness.max()
    moved = hessian_drift(high, loss.params, low, 0.0)
    assert limit < moved <= CHECK_REACH * limit  # the check beyond the limit is exercised
    assert hessian_drift(low, loss.params, low, 0.0) > limit  # and the anchor's own point

    weyl = DriftOnlyScalarNetwork()
    vector = top_eigenpairs(loss, low, 1, tol=1e-14).vectors[:, 0]
    from_low = _products_along(np.array([low, high, low, high, low]), weyl, vector, 1e-10)
    assert from_low[0] > 1 and from_low[1:].tolist() == [1] * 4
    from_high = _products_along(np.array([high, low, high, low]), weyl, vector, 1e-10)
    assert from_high[1] > 1 and from_high[2:].tolist() == [1] * 2

    for point, top in ((low, sharpness.min()), (high, sharpness.max())):
        # the engine's residual is at most τ λ, so λ − ρ ≥ (1 − τ) λ
        assert frobenius(point, loss.params) < DOMINANCE * (1.0 - 1e-10) * top

    def products(begin, steps):
        return run_gd(loss, begin, eta, steps, find_crossing=False).counters[
            "lanczos_products"]

    for begin in (low, high):
        assert np.diff([products(begin, n) for n in range(1, 5)]).tolist() == [1] * 3
    for point, value in zip(cycle.trajectory[:2], sharpness, strict=True):
        reference = top_eigenpairs(loss, point, 1, tol=1e-14).values[0]
        # the engine's tolerance 1e-10 relative, and ARPACK's 1e-14
        assert abs(value - reference) <= (1e-10 + 1e-14) * reference
