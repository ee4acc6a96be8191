"""Spectral tools against numpy.linalg.eigh, ARPACK and finite differences."""

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from stabsim._jit import jit
from stabsim._lanczos import (
    START_MIX,
    DenseHessian,
    anchor_work,
    anchored_top_eigenpair,
    hessian_at,
    lanczos_work,
    top_eigenpair,
    warm_start_check,
)
from stabsim._lanczos import hypot as inline_hypot
from stabsim._lanczos import top_of_2x2 as inline_top_of_2x2
from stabsim._lanczos import top_ritz_pair as inline_top_ritz_pair
from stabsim._status import FlatSharpnessError
from stabsim.losses import Minimalist, Network, Quadratic, QuadraticRegression, ScalarNetwork
from stabsim.maps import run_gd
from stabsim.maps.gd import measured_top_pairs
from stabsim.spectral import (
    SMALL_DIM,
    _lowest_eigenpair,
    align_sign,
    eos_constants,
    pairs_measured_by,
    sharpness,
    sharpness_gradient,
    top_eigenpairs,
    tracked_top_eigenpair,
    tracked_top_eigenpairs,
)

EPS = np.finfo(float).eps


# an inline helper (compiled into its callers): tested compiled, as kernels use it


@jit
def _top_ritz_pair(diag, offdiag, k, below, vec_out, scratch):
    return inline_top_ritz_pair(diag, offdiag, k, below, vec_out, scratch)


@jit
def top_ritz_pairs(diag, offdiag, k):
    """The top eigenpair of every leading block T_1, ..., T_k, each from the one before (as
    Lanczos calls it): the eigenvalues, and the eigenvectors in the rows of a k × k array."""
    tops = np.empty(k)
    vectors = np.zeros((k, k))
    scratch = np.empty(k)
    top = np.nan
    for i in range(1, k + 1):
        top = inline_top_ritz_pair(diag, offdiag, i, top, vectors[i - 1], scratch)
        tops[i - 1] = top
    return tops, vectors
hypot = jit(lambda a, b: inline_hypot(a, b))
top_of_2x2 = jit(lambda a, b, c: inline_top_of_2x2(a, b, c))


@pytest.mark.parametrize("a, b", [(3.0, 4.0), (0.0, 0.0), (-5e-170, 1e-170), (3e200, -4e200),
                                  (1e-300, 0.0), (np.inf, 1.0), (1.0, -np.inf), (np.nan, 1.0),
                                  (2.0, np.nan), (1e145, 1e145), (1e-145, 2e-145)])
def test_hypot_matches_numpy_without_overflow(a, b):
    # the square root of a² + b² rounds twice: within 2 units in the last place of libm's
    expected = np.hypot(a, b)
    got = hypot(a, b)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=2 * EPS, abs=0.0)


# entries 0 or of size ≥ 1e-50, so that they stay normal numbers when scaled by 1e-200
# (a subnormal number has fewer significant bits: no relative accuracy is possible there)
_ENTRY = st.floats(-1, 1).map(lambda v: v if abs(v) >= 1e-50 else 0.0)


@given(_ENTRY, _ENTRY, _ENTRY, st.sampled_from([1e-200, 1.0, 1e200]))
def test_top_of_2x2_matches_eigh(a, b, c, size):
    a, b, c = size * a, size * b, size * c
    lam, x, y = top_of_2x2(a, b, c)
    values, vectors = np.linalg.eigh(np.array([[a, b], [b, c]]) / size)
    # both backward stable: the eigenvalue within a few eps of the matrix's norm
    scale = max(abs(a), abs(b), abs(c))
    assert abs(lam - size * values[-1]) <= 8 * EPS * scale
    assert x >= 0.0 and np.hypot(x, y) == pytest.approx(1.0, abs=4 * EPS)
    # an eigenvector, measured by its residual (the vector is ill-determined only when the
    # gap between the eigenvalues is tiny)
    residual = np.hypot(a * x + b * y - lam * x, b * x + c * y - lam * y)
    assert residual <= 8 * EPS * scale


@jit
def _continued_and_fresh(theta, p, v0, tol):
    """Lanczos without the mix from v0 on ∇²L(θ) by products, twice: continuing from the
    product A v0 of a warm start's check (``given``), and making every product itself:
    (λ, residual, products) of each, and each one's vector."""
    d = theta.shape[0]
    work = lanczos_work(d, 20, None)
    op = hessian_at(theta, p)
    continued, fresh = np.empty(d), np.empty(d)
    warm_start_check(op, v0, work.w)
    lam_c, residual_c, products_c, _ = top_eigenpair(op, v0, work, 1000, tol, continued, 0.0,
                                                     True)
    lam_f, residual_f, products_f, _ = top_eigenpair(op, v0, work, 1000, tol, fresh, 0.0,
                                                     False)
    return (lam_c, residual_c, products_c), (lam_f, residual_f, products_f), continued, fresh


@pytest.mark.parametrize("size", [1.0, 1e200, 1e-200])
def test_lanczos_continued_from_a_checks_product_is_the_fresh_run(size):
    # the same Krylov space up to round-off (A(v0/|v0|) against (A v0)/|v0|), so the same
    # number of products, both within their residuals of the top eigenvalue (Bauer–Fike),
    # and the same vector to the tolerance; at 1e±200 the first product is out of the range
    # Lanczos takes unscaled, and each run makes it again, scaled (the continued run counts
    # the check's product as its first)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 30))
    A = size * (A + A.T)
    loss = Quadratic(A)
    top = np.linalg.eigvalsh(A)[-1]
    v0 = rng.standard_normal(30)
    continued, fresh, u_c, u_f = _continued_and_fresh(np.zeros(30), loss.params, v0, 1e-10)
    assert continued[2] == fresh[2] > 1
    for lam, residual, _ in (continued, fresh):
        assert 0.0 < residual <= 1e-10 * abs(lam)
        assert abs(lam - top) <= residual + 1e-14 * abs(top)
    assert abs(u_c @ u_f) == pytest.approx(1.0, abs=1e-8)


@jit
def _lanczos_kernel(H, F, v0, restart, max_products, tol, vec_out, thick):
    work = lanczos_work(v0.shape[0], restart, thick)
    return top_eigenpair(DenseHessian(H, F), v0, work, max_products, tol, vec_out, START_MIX, False)


def _lanczos(H, F, v0, restart, max_products, tol, vec_out, thick=None):
    """The engine's Lanczos on the dense operator H + FᵀF, with thin restarts (the engines'
    first choice) or, with ``thick=True``, thick ones (their choice after a stall)."""
    return _lanczos_kernel(H, F, v0, restart, max_products, tol, vec_out, thick)


@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from([1e-150, 1.0, 1e150]),
       st.sampled_from([1.0, 1e-9, 0.0]))
@example(k=3, seed=689167323, size=1e150, coupling=0.0)  # T_2's top an ulp below a_2 (below)
def test_top_ritz_pair_matches_eigh(k, seed, size, coupling):
    # weak or no coupling: eigenvalues of T_k within round-off of those of T_{k-1}, as when
    # Lanczos has converged
    rng = np.random.default_rng(seed)
    diag, offdiag = size * rng.normal(size=k), coupling * size * rng.normal(size=k)
    tops, vectors = top_ritz_pairs(diag, offdiag, k)
    for i in range(1, k + 1):
        matrix = np.diag(diag[:i]) + np.diag(offdiag[:i - 1], 1) + np.diag(offdiag[:i - 1], -1)
        values = np.linalg.eigvalsh(matrix)
        scale = np.abs(matrix).sum(axis=1).max()
        # both the Newton/Sturm-count iteration and LAPACK's eigvalsh are backward stable:
        # each eigenvalue is exact for a matrix within O(i·eps·|T|) of T
        assert abs(tops[i - 1] - values[-1]) <= 4 * i * EPS * scale
        vector = vectors[i - 1, :i]
        # a unit vector (normalised to round-off), signed, and an eigenvector: residual at
        # round-off over the gap-free bound
        assert abs(np.linalg.norm(vector) - 1.0) <= 4 * i * EPS and vector[0] >= 0.0
        assert np.linalg.norm(matrix @ vector - tops[i - 1] * vector) <= 1e-10 * scale


@pytest.mark.parametrize("exponent", [-500, 0, 28, 498, 960])
def test_top_ritz_vector_where_the_shift_falls_on_a_diagonal_entry(exponent):
    # T = diag(−2^e, a, 2^(e−1)) with a just above 2^e and the λ of T_2 one ulp below a (what
    # the 2 × 2 closed form gave for T_2 = diag(−c, a) in a case hypothesis found): T_3's top
    # is λ, the shift λ + 2 eps·scale (0.9 ulp of a) lands exactly on a, and that pivot is
    # zero. The eigenvector is e_2; before the pivot's floor scaled with T, the solve
    # overflowed to NaN from |T| ≈ 1.8e8 on (2^28 ≈ 2.7e8)
    size = np.ldexp(1.0, exponent)
    a = np.ldexp(1.0 + 2.0**-50, exponent)
    diag = np.array([-size, a, 0.5 * size])
    below = np.nextafter(a, 0.0)
    assert below + 2e-16 * a == a  # the zero pivot this case is about
    vector, scratch = np.zeros(3), np.empty(3)
    top = _top_ritz_pair(diag, np.zeros(3), 3, below, vector, scratch)
    assert abs(top - a) <= 4 * EPS * a  # the bracket's width (tridiagonal_top)
    assert np.all(np.isfinite(vector))
    # e_2 to round-off: the other entries are the solve's O(eps) relative error
    assert vector[1] == 1.0 and np.max(np.abs(vector[[0, 2]])) <= 4 * EPS


@given(st.integers(2, 80), st.integers(0, 2**32 - 1), st.booleans())
def test_lanczos_matches_eigh(d, seed, warm):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    values = np.sort(rng.normal(size=d))
    values[-1] = values[-2] + 0.5  # a gapped top eigenvalue, as at the EoS
    matrix = (basis * values) @ basis.T
    matrix = 0.5 * (matrix + matrix.T)
    start = basis[:, -1] + 0.1 * rng.normal(size=d) if warm else rng.normal(size=d)
    vector = np.empty(d)
    lam, residual, _, _ = _lanczos(matrix, np.empty((0, d)), np.ascontiguousarray(start), d,
                                4 * d, 1e-12, vector)
    reference = np.linalg.eigvalsh(matrix)[-1]
    scale = max(1.0, abs(reference))
    # residual tolerance 1e-12·|λ| bounds the eigenvalue error by residual²/gap + round-off
    assert abs(lam - reference) <= 1e-10 * scale
    assert residual <= 1e-10 * scale
    # the reported residual is the returned pair's, measured with the dense matrix: they
    # differ by round-off (d products of O(|A|) terms)
    assert abs(np.linalg.norm(matrix @ vector - lam * vector) - residual) <= 1e-12 * scale
    assert np.dot(vector, start) >= 0.0


@given(st.integers(2, 60), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_lanczos_with_a_factor_matches_eigh_of_the_sum(d, rows, seed):
    # top eigenpair of H + FᵀF with F applied as thin products, against eigh of the dense sum
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(d, d))
    dense = 0.5 * (dense + dense.T)
    factor = rng.normal(size=(rows, d))
    total = dense + factor.T @ factor
    values, vectors = np.linalg.eigh(total)
    assume(values[-1] - values[-2] > 1e-3 * abs(values[-1]))  # else the eigenvector is ill-posed
    vector = np.empty(d)
    lam, residual, _, _ = _lanczos(dense, factor, rng.normal(size=d), d, 4 * d, 1e-12, vector)
    scale = max(1.0, abs(values[-1]))
    assert abs(lam - values[-1]) <= 1e-10 * scale
    # the reported residual is that of the returned pair, checked with the dense sum
    assert residual <= 1e-10 * scale
    assert np.linalg.norm(total @ vector - lam * vector) <= residual + 1e-12 * scale


@pytest.mark.parametrize("d", [3, 40, 400])
def test_lanczos_finds_a_top_eigenvalue_outside_the_start_vectors_invariant_subspace(d):
    # the start is an exact eigenvector of a lower eigenvalue, as a warm start is after a
    # catapult or inside a symmetric model: its Krylov space alone is {v0} and never sees the
    # top; the fixed mix vector (weight START_MIX) makes the residual test resolve it
    values = np.linspace(1.0, 2.0, d)
    matrix = np.diag(values)
    start = np.zeros(d)
    start[d // 2] = 1.0
    vector = np.empty(d)
    lam, residual, _, converged = _lanczos(matrix, np.empty((0, d)), start, min(d, 30), 100 * d,
                                           1e-12, vector)
    # converged to the tolerance: the top to round-off over the residual bound residual²/gap
    assert converged and lam == pytest.approx(2.0, rel=1e-12, abs=0)
    assert abs(vector[-1]) == pytest.approx(1.0, rel=1e-10)


@jit
def _anchored_twice(first, second, v0, tol, tilt=0.0):
    """The engine's anchored Lanczos on two dense operators in turn (no factor), the second
    warm-started from the first's vector (plus ``tilt`` times the first unit vector):
    (λ, products) of each, and the second's residual."""
    d = v0.shape[0]
    work = lanczos_work(d, 20, None)
    anchor = anchor_work(d, 0)
    vector = np.empty(d)
    factor = np.empty((0, d))
    lam1, _, products1, _ = anchored_top_eigenpair(DenseHessian(first, factor), anchor, v0, work,
                                                   1000, tol, vector)
    start = vector.copy()
    start[0] += tilt
    lam2, residual2, products2, converged = anchored_top_eigenpair(
        DenseHessian(second, factor), anchor, start, work, 1000, tol, vector)
    return lam1, products1, lam2, products2, converged, residual2


def test_an_unmoved_operator_is_measured_without_the_mix_in_one_product():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((60, 60))
    matrix = a + a.T
    lam1, products1, lam2, products2, converged, _ = _anchored_twice(matrix, matrix,
                                                                     np.ones(60), 1e-10)
    top = np.linalg.eigvalsh(matrix)[-1]
    assert products1 > 1 and products2 == 1 and converged
    # a Rayleigh quotient with residual ≤ tol·|λ| errs by at most residual²/gap: round-off
    assert lam2 == pytest.approx(top, rel=1e-13)


def test_an_unmoved_operator_from_a_tilted_start_is_measured_to_the_tolerance():
    # the operator has not moved (δ = 0), so the mix is left out; the start is the top
    # eigenvector e_29 (eigenvalue 2) tilted by t = 1e-4 along e_0 (eigenvalue 2 − g,
    # g = 1e-4): its Rayleigh quotient is 2 − t²g/(1 + t²) ≈ 2 − 1e-12, inside Weyl's
    # allowance tol·λ' = 2e-10, but its residual t g/(1 + t²) ≈ 1e-8 is far above tol·|λ|,
    # so Lanczos goes on from it to the tolerance
    values = np.linspace(1.0, 2.0, 30)
    values[0] = 2.0 - 1e-4
    matrix = np.diag(values)
    start = np.zeros(30)
    start[-1] = 1.0
    _, _, lam2, products2, converged, residual2 = _anchored_twice(matrix, matrix, start,
                                                                  1e-10, 1e-4)
    assert converged and products2 > 1
    assert residual2 <= 1e-10 * lam2
    assert lam2 == pytest.approx(2.0, rel=1e-13)


@pytest.mark.parametrize("moved, shift", [(1, 2e-11), (-1, -1.5e-10), (1, 0.3)])
def test_the_anchor_bounds_a_top_eigenvalue_the_warm_start_cannot_see(moved, shift):
    # the warm start e_29 is an exact eigenvector (eigenvalue 2): without the mix its Krylov
    # space never sees e_1 (eigenvalue 2 − 1e-11). One of the two eigenvalues moves by
    # `shift`, and Weyl's inequality with δ = |shift| bounds what the unmixed run can miss by
    # tol·|λ'| (λ' = 2, tol = 1e-10). e_1 rising by 2e-11 (to the top) is within that bound;
    # e_29 falling by 1.5e-10 leaves the unmixed value below λ' + δ − tol·|λ'|, and e_1 rising
    # by 0.3 is a δ above tol·|λ'|: both take the mixed run, which resolves e_1
    tol = 1e-10
    values = np.linspace(1.0, 2.0, 30)
    values[1] = 2.0 - 1e-11
    before = np.diag(values)
    values[moved] += shift
    after = np.diag(values)
    start = np.zeros(30)
    start[-1] = 1.0
    lam1, _, lam2, products2, converged, _ = _anchored_twice(before, after, start, tol)
    top = values.max()
    assert lam1 == pytest.approx(2.0, rel=1e-14) and converged
    assert top - tol * 2.0 <= lam2 <= top * (1 + 4 * EPS)
    if shift == 2e-11:  # within the bound: the unmixed run, one product
        assert products2 == 1
    else:
        assert products2 > 1
    if shift == 0.3:
        assert lam2 == pytest.approx(top, rel=1e-12)


def test_lanczos_reports_a_nonfinite_matrix_as_nan():
    d = 8
    matrix = np.diag(np.arange(1.0, d + 1))
    matrix[0, 0] = np.nan  # orthogonal to the top eigenvector e_{d−1}, the start vector
    start = np.zeros(d)
    start[-1] = 1.0
    lam, residual, _, _ = _lanczos(matrix, np.empty((0, d)), start, d, 4 * d, 1e-12, np.empty(d))
    assert np.isnan(lam) and np.isnan(residual)


@given(st.integers(20, 120), st.integers(0, 2**32 - 1), st.sampled_from([None, True]))
def test_restarted_lanczos_converges_with_a_short_basis(d, seed, thick):
    # restarts of length 4, thin or thick, still reach the tolerance (within the budget) on a
    # matrix whose top eigenvalue is separated by a gap of 10% of the spread
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    values = np.sort(rng.uniform(-1.0, 1.0, size=d))
    values[-1] = 1.2
    matrix = (basis * values) @ basis.T
    matrix = 0.5 * (matrix + matrix.T)
    vector = np.empty(d)
    lam, residual, products, converged = _lanczos(matrix, np.empty((0, d)), rng.normal(size=d),
                                                  4, 5000, 1e-12, vector, thick)
    assert converged and residual <= 1e-12 * abs(lam)
    assert abs(lam - np.linalg.eigvalsh(matrix)[-1]) <= 1e-10
    # the reported residual is that of the returned pair
    assert np.linalg.norm(matrix @ vector - lam * vector) <= residual + 1e-13
    # normalised by |s| (|Q s| = |s| for an orthonormal basis) and again at each restart:
    # unit to round-off of the basis's orthogonality, a few eps per vector of the basis
    assert abs(np.linalg.norm(vector) - 1.0) <= 4 * 4 * EPS


@pytest.mark.parametrize("d, gap", [(1000, 1e-6), (1000, 1e-8), (300, 1e-7)])
def test_lanczos_kept_as_a_pair_resolves_nearly_equal_top_eigenvalues(d, gap):
    # diag(0, …, 1 − g, 1) from (1, …, 1), restarts of 20: restarted from its top Ritz vector
    # alone Lanczos stalls (residual 1.7e-8 through 3,000 products at d = 1000, g = 1e-8),
    # which is why the engines go on with thick restarts after a stall (the thin run is
    # checked to stall: else this test would not show what the thick restart is for);
    # restarted from the pair it converges, to the top eigenvalue (within its residual of 1,
    # Bauer–Fike, which tells 1 from 1 − g), and the residual it reports after dozens of
    # restarts bounds the returned pair's true one (1e-13: the rounding of that check)
    diagonal = np.linspace(0.0, 1.0, d)
    diagonal[-2] = 1.0 - gap
    vector = np.empty(d)
    *_, thin_converged = _lanczos(np.diag(diagonal), np.empty((0, d)), np.ones(d), 20, 3000,
                                  1e-10, vector)
    assert not thin_converged
    lam, residual, products, converged = _lanczos(np.diag(diagonal), np.empty((0, d)),
                                                  np.ones(d), 20, 5000, 1e-10, vector, True)
    assert converged and residual <= 1e-10 * abs(lam) and products > 100
    assert abs(lam - 1.0) <= residual
    assert np.linalg.norm(diagonal * vector - lam * vector) <= residual + 1e-13


@pytest.mark.parametrize("size", [1.0, 1e-155, 1e-160, 1e150])
def test_the_returned_vector_is_unit_where_the_products_underflow(size):
    # below ‖A‖ ≈ 1e-154 the squares of the products underflow: the products are scaled up
    # (the first product's size sets the factor), the basis is orthonormal and Q s/|s| unit
    # (and it is measured and normalised wherever it is not). Unit to round-off: a sum of d
    # squares, a square root and a division, a few eps
    matrix = size * np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
    vector = np.empty(3)
    lam, _, _, _ = _lanczos(matrix, np.empty((0, 3)), np.array([1.0, 0.0, 0.0]), 20, 100,
                            1e-10, vector)
    assert abs(np.linalg.norm(vector) - 1.0) <= 4 * EPS
    assert vector[0] >= 0.0  # signed along the start


@pytest.mark.parametrize("thick", [None, True])
@pytest.mark.parametrize("size", [1e-300, 1e-200, 1e-162, 1e-150, 1e-140, 1.0, 1e140, 1e155,
                                  1e200, 1e300])
def test_lanczos_is_right_at_every_scale_of_the_operator(size, thick):
    # Lanczos squares the products: at 1e-162·A β underflowed to 0 and λ was 58% off with
    # converged=True, and from 1.3e154·A |w|² overflowed and λ was NaN. The products are now
    # scaled to about 1 (a rounding more each), so at every size the answer meets the
    # tolerance as at size 1: converged,
    # its residual at most tol·|λ| (the relative-residual criterion) and honest (against
    # NumPy's, computed on A and scaled, to round-off), λ within that residual of
    # size·λ_max(A) (Bauer–Fike, A symmetric), and the vector unit to a few eps
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(30, 30))
    matrix += matrix.T
    top = np.linalg.eigvalsh(matrix)[-1]
    vector = np.empty(30)
    lam, residual, _, converged = _lanczos(size * matrix, np.empty((0, 30)),
                                           rng.normal(size=30), 20, 400, 1e-10, vector, thick)
    assert converged and np.isfinite(lam)
    assert residual <= 1e-10 * abs(lam)
    honest = size * np.linalg.norm(matrix @ vector - (lam / size) * vector)
    assert honest <= residual + 64 * EPS * abs(lam)
    assert abs(lam - size * top) <= residual + 64 * EPS * abs(lam)
    assert abs(np.linalg.norm(vector) - 1.0) <= 4 * EPS


def test_a_restart_length_of_one_is_taken_as_two():
    # a one-vector basis holds only its start, whose Ritz vector is the start again: restarts
    # of length 1 never converged. The workspace holds at least two vectors (d ≥ 2), so the
    # run reaches the tolerance like one of restart length 2
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(6, 6))
    matrix += matrix.T
    start = rng.normal(size=6)
    one, two = np.empty(6), np.empty(6)
    got = _lanczos(matrix, np.empty((0, 6)), start, 1, 5000, 1e-10, one)
    expected = _lanczos(matrix, np.empty((0, 6)), start, 2, 5000, 1e-10, two)
    assert got == expected and np.array_equal(one, two)
    assert got[3] and got[1] <= 1e-10 * abs(got[0])


def test_a_nan_start_gives_the_vector_its_positive_sign():
    # a non-finite start counts as none (the mix vector alone): nothing to sign against, and
    # the one product's vector keeps the sign the start gave it
    vector = np.empty(1)
    lam, _, products, _ = _lanczos(np.array([[3.0]]), np.empty((0, 1)), np.array([np.nan]), 1,
                                   10, 1e-12, vector)
    assert lam == 3.0 and products == 1
    assert vector[0] > 0.0


@given(st.integers(2, 60), st.integers(0, 2**32 - 1), st.sampled_from([2, 4, 20]),
       st.sampled_from([None, True]))
def test_lanczos_warm_started_in_place_gives_what_it_gives_from_a_copy(d, seed, restart,
                                                                       thick):
    # the engines pass their last eigenvector as both v0 and vec_out: every entry of v0 is
    # read before that entry of vec_out is written, so λ, the residual, the products and the
    # vector's direction are those of a call from a copy bit for bit; only after a restart
    # may the sign differ (it then follows the restart's vector)
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(d, d))
    dense = 0.5 * (dense + dense.T)
    start = rng.normal(size=d)
    from_copy = np.empty(d)
    expected = _lanczos(dense, np.empty((0, d)), start.copy(), restart, 40 * d, 1e-12,
                        from_copy, thick)
    in_place = start.copy()
    got = _lanczos(dense, np.empty((0, d)), in_place, restart, 40 * d, 1e-12, in_place, thick)
    assert got == expected
    sign = 1.0 if got[2] <= restart else np.sign(np.dot(in_place, from_copy))
    np.testing.assert_array_equal(in_place, sign * from_copy)


def test_a_krylov_space_that_spans_every_direction_is_exact():
    # d = 2 with a small top eigenvalue beside a large negative one (the minimalist loss at
    # the edge of stability): β after two steps is round-off of the norm, not of λ, and the
    # two-dimensional Krylov space is all of R²: the Ritz pair is exact, not "unconverged"
    matrix = np.array([[-40.0, 3.0], [3.0, 0.5]])
    vector = np.empty(2)
    lam, residual, products, converged = _lanczos(matrix, np.empty((0, 2)), np.ones(2), 2,
                                                  1000, 1e-10, vector)
    assert converged and products <= 3
    assert abs(lam - np.linalg.eigvalsh(matrix)[-1]) <= 1e-13 * 40.0
    assert np.linalg.norm(matrix @ vector - lam * vector) <= 1e-13 * 40.0


def test_lanczos_reports_a_missed_tolerance_when_the_budget_runs_out():
    d = 50
    matrix = np.diag(np.linspace(0.0, 1.0, d))  # top gap 0.02: slow convergence
    lam, residual, products, converged = _lanczos(matrix, np.empty((0, d)), np.ones(d), 3, 6,
                                                  1e-12, np.empty(d))
    assert products <= 7 and residual > 1e-12 * abs(lam) and not converged


def test_top_eigenpairs_dense_and_lanczos_agree():
    loss = QuadraticRegression.random(60, 8, seed=4)
    theta = np.random.default_rng(0).normal(size=60) * 0.3
    dense = top_eigenpairs(loss, theta, 3, eigensolver="eigh")
    iterative = top_eigenpairs(loss, theta, 3, eigensolver="lanczos", tol=1e-12)
    reference = np.sort(np.linalg.eigvalsh(loss.hessian(theta)))[::-1][:3]
    np.testing.assert_allclose(dense.values, reference, rtol=1e-12)
    np.testing.assert_allclose(iterative.values, reference, rtol=1e-9)
    assert np.all(dense.residuals < 1e-10) and np.all(iterative.residuals < 1e-8)
    assert dense.gap == pytest.approx(reference[0] - reference[1], rel=1e-12)


def test_lanczos_without_a_start_vector_gives_the_same_result_every_call():
    # ARPACK's own start is random: from it, five calls gave two different eigenvalues
    loss = QuadraticRegression.random(60, 8, seed=4)
    theta = np.random.default_rng(0).normal(size=60) * 0.3
    calls = [top_eigenpairs(loss, theta, 2, eigensolver="lanczos", tol=1e-12) for _ in range(5)]
    for pairs in calls[1:]:
        assert np.array_equal(pairs.values, calls[0].values)
        assert np.array_equal(pairs.vectors, calls[0].vectors)
    lowest = {_lowest_eigenpair(loss, theta, tol=1e-12)[0] for _ in range(5)}
    assert len(lowest) == 1
    assert lowest.pop() == pytest.approx(np.linalg.eigvalsh(loss.hessian(theta))[0], rel=1e-9)


def test_a_zero_start_vector_counts_as_none():
    # it has no direction (nor a sign to follow): each eigensolver runs as without v0
    loss = QuadraticRegression.random(10, 4, seed=0)
    theta = np.full(10, 0.1)
    for eigensolver in ("eigh", "lanczos"):
        zero = top_eigenpairs(loss, theta, 2, eigensolver=eigensolver, v0=np.zeros(10))
        none = top_eigenpairs(loss, theta, 2, eigensolver=eigensolver)
        np.testing.assert_array_equal(zero.values, none.values)
        np.testing.assert_array_equal(zero.vectors, none.vectors)


def test_eos_constants_take_a_zero_start_vector_as_none_on_the_lanczos_path():
    loss = ScalarNetwork(40)  # d = 40 > 32: "auto" takes Lanczos
    theta = np.linspace(0.9, 1.1, 40)
    zero, none = eos_constants(loss, theta, v0=np.zeros(40)), eos_constants(loss, theta)
    assert zero.sharpness == none.sharpness and zero.alpha == none.alpha
    np.testing.assert_array_equal(zero.u, none.u)


@pytest.mark.parametrize("tiny, direction", [(5e-324, np.eye(10)[3]), (1e-320, np.ones(10))])
def test_only_the_direction_of_the_start_vector_counts(tiny, direction):
    # v0 is scaled to max |v0_i| = 1, exactly here: a subnormal v0 starts Lanczos as its
    # direction does
    loss = QuadraticRegression.random(10, 4, seed=0)
    theta = np.full(10, 0.1)
    small = top_eigenpairs(loss, theta, 2, eigensolver="lanczos", v0=tiny * direction)
    unit = top_eigenpairs(loss, theta, 2, eigensolver="lanczos", v0=direction)
    np.testing.assert_array_equal(small.values, unit.values)
    np.testing.assert_array_equal(small.vectors, unit.vectors)


def test_sign_is_kept_along_a_trajectory():
    loss = ScalarNetwork(3)
    theta = np.array([0.6, 1.1, 1.4])
    first = top_eigenpairs(loss, theta).vectors[:, 0]
    flipped = top_eigenpairs(loss, theta + 1e-3, v0=-first).vectors[:, 0]
    assert np.dot(flipped, -first) > 0
    np.testing.assert_array_equal(align_sign(first, -first), -first)


@pytest.mark.parametrize("loss, theta", [
    (ScalarNetwork(3), np.array([0.6, 1.1, 1.4])),
    (Minimalist(), np.array([0.7, 1.3])),
    (QuadraticRegression.random(6, 3, seed=1), np.linspace(-0.3, 0.4, 6)),
])
def test_sharpness_gradient_matches_finite_differences(loss, theta):
    # ∂S/∂θ_i by the fourth-order central stencil D(h) = (S(−2h) − 8S(−h) + 8S(h) − S(2h))/12h
    # at h and h/2. Truncation: D(h) = S' + c h⁴ + O(h⁶), so D(h) − D(h/2) = (15/16) c h⁴ and
    # the error of D(h/2) is ≈ |D(h) − D(h/2)|/15 (Richardson, from the differences
    # themselves, not from ∇³L); doubled for the neglected O(h⁶). Round-off: each λ_max
    # (eigvalsh of the assembled H, backward stable) is off by at most about d ε ‖H‖₂ (Weyl;
    # d covers LAPACK's p(n) and the assembly of H), and the weights sum to 18/12, so each
    # estimate carries 1.5 d ε ‖H‖₂ / step. Measured at h = 2e-3: error 7.2e-11, 4.2e-10,
    # 1.4e-12 against bounds 1.5e-10, 8.4e-10, 6.5e-12; ∇S off by 1e-6 relative (an error of
    # 1.5e-6 to 1.9e-5 here) fails, as it passed rtol = 1e-6.
    h = 2e-3
    d = loss.dim

    def stencil(e, step):
        points = [theta + k * step * e for k in (-2, -1, 1, 2)]
        s = [sharpness(loss, p) for p in points]
        norm = max(np.max(np.abs(np.linalg.eigvalsh(loss.hessian(p)))) for p in points)
        return (s[0] - 8.0 * s[1] + 8.0 * s[2] - s[3]) / (12.0 * step), 1.5 * d * EPS * norm / step

    coarse, coarse_roundoff = zip(*(stencil(e, h) for e in np.eye(d)), strict=True)
    fine, fine_roundoff = zip(*(stencil(e, h / 2) for e in np.eye(d)), strict=True)
    fine = np.array(fine)
    truncation = 2.0 * np.max(np.abs(np.array(coarse) - fine)) / 15.0
    bound = truncation + max(coarse_roundoff) + max(fine_roundoff)
    err = np.max(np.abs(sharpness_gradient(loss, theta) - fine))
    assert err <= bound, (err, bound)


def test_eos_constants_in_both_conventions():
    loss = QuadraticRegression.random(6, 3, seed=1)
    theta = np.linspace(-0.3, 0.4, 6)
    full = eos_constants(loss, theta, projected=False)
    proj = eos_constants(loss, theta)  # the default: ∇S⊥
    assert proj.projected and not full.projected
    u = full.u
    # ∇S⊥ = ∇S − (u·∇S)u is orthogonal to u and |∇S|² = |∇S⊥|² + (u·∇S)² (Pythagoras): both
    # to round-off of the O(|∇S|) vectors
    assert abs(proj.direction @ u) < 1e-12 * np.linalg.norm(proj.grad_sharpness)
    assert full.beta == pytest.approx(proj.beta + (u @ full.grad_sharpness) ** 2, rel=1e-12)
    # What the constants mean (docs/theory.md §1): α is the rate at which a gradient step
    # sharpens, dS/dh along −∇L (along −∇L⊥ = −(I − uuᵀ)∇L for α⊥ = −∇L·∇S⊥), and β is dS/dh
    # along the direction itself (∇S·∇S⊥ = |∇S⊥|²). One-sided differences of λ_max (eigvalsh)
    # over h = 1e-3, 5e-4, 2.5e-4 have error (h/2) d²S/dh² + O(h²) + O(ε S/h): fitted order
    # 1 in h; a wrong constant leaves an O(1) error (order 0), a symmetric error cancels to
    # order 2, hence the band ±½.
    grad = loss.grad(theta)
    steps = np.array([1e-3, 5e-4, 2.5e-4])
    cases = {"alpha": (-grad, full.alpha),
             "alpha_perp": (-(grad - (u @ grad) * u), proj.alpha),
             "beta": (full.grad_sharpness, full.beta),
             "beta_perp": (proj.direction, proj.beta)}
    base = sharpness(loss, theta)
    for name, (direction, value) in cases.items():
        errors = [abs((sharpness(loss, theta + h * direction) - base) / h - value)
                  for h in steps]
        order = np.polyfit(np.log(steps), np.log(errors), 1)[0]
        assert abs(order - 1.0) < 0.5, (name, order, errors)


def test_delta_is_refused_without_progressive_sharpening():
    loss = ScalarNetwork(3)
    theta = np.array([1.2, 1.1, 1.0])  # ∏w > 1: GD shrinks the weights and the sharpness
    # with ∇S the gradient step flattens (α = −∇L·∇S ≈ −9.5: S(θ − h∇L) − S(θ) ≈ −9.5 h by
    # differences); with ∇S⊥ the u-component of ∇L is left out and α⊥ ≈ +0.004 > 0, so the
    # unprojected convention is the one without progressive sharpening here
    constants = eos_constants(loss, theta, projected=False)
    assert constants.alpha < 0
    assert (sharpness(loss, theta - 1e-4 * loss.grad(theta)) - sharpness(loss, theta)) < 0
    with pytest.raises(ValueError, match="delta is undefined"):
        _ = constants.delta


def test_engine_sharpness_matches_eigvalsh_at_d100():
    # the GD engine's Lanczos sharpness against a dense eigensolver at the same iterates
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta = 2.0 / (1.5 * np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    result = run_gd(loss, theta0, eta, 200, stride=10, record_trajectory=True,
                    eigensolver="lanczos")
    dense = np.array([np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory])
    np.testing.assert_allclose(result.sharpness[:, 0], dense, rtol=1e-8)


def test_engine_measures_an_unmoved_hessian_in_one_product_and_stays_exact():
    # the regression model's dense measurement at a minimum: the Hessian stops moving, so
    # each step's Lanczos run is one product without the mix (anchored_top_eigenpair), and
    # the sharpness stays that of eigvalsh to the anchor's bound tol·S (tol = 1e-10)
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta = 2.0 / (1.5 * np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    short = run_gd(loss, theta0, eta, 300)
    result = run_gd(loss, theta0, eta, 600, stride=20, record_trajectory=True)
    assert result.loss[-1] < 1e-25  # at the minimum
    assert result.counters["lanczos_products"] - short.counters["lanczos_products"] == 300
    dense = np.array([np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory])
    np.testing.assert_allclose(result.sharpness[:, 0], dense, rtol=1e-10)


def test_bad_input():
    loss = ScalarNetwork(3)
    with pytest.raises(ValueError, match="k must be"):
        top_eigenpairs(loss, np.ones(3), 4)
    with pytest.raises(ValueError, match="eigensolver"):
        top_eigenpairs(loss, np.ones(3), eigensolver="power")
    with pytest.raises(ValueError, match="theta"):
        sharpness(loss, np.ones(2))


def test_tracked_top_eigenpair_matches_eigh_on_a_network():
    from stabsim.losses import Network

    net = Network((8, 8), data="sine", n_samples=12)  # d = 97: the compiled Lanczos path
    theta = net.init(seed=3)
    values, vectors = np.linalg.eigh(net.hessian(theta))
    scale = np.abs(values).max()
    lam, u = tracked_top_eigenpair(net, theta)
    # stopped at residual 1e-13·|H| (a lower bound on |H|): a Ritz value is within its
    # residual of an eigenvalue, and with the start mix it is the top one
    assert abs(lam - values[-1]) <= 1e-12 * scale
    assert np.linalg.norm(net.hvp(theta, u) - lam * u) <= 1e-12 * scale
    # the angle to the eigenvector is at most residual / gap ≈ 3e-12 (gap / |H| = 0.34 here)
    assert abs(abs(u @ vectors[:, -1]) - 1.0) <= 1e-12
    # warm-started at a nearby point, it keeps the sign of the vector it was given
    nearby = theta + 1e-3 * np.random.default_rng(0).normal(size=net.dim)
    _, u_near = tracked_top_eigenpair(net, nearby, -u)
    assert u_near @ u < 0.0


def test_tracked_top_eigenpair_resolves_a_nearly_repeated_pair_with_thick_restarts(
        monkeypatch):
    # diag(0, …, 1 − 1e-8, 1), d = 100: the thin restarts stall on the pair; the thick ones,
    # tried next, resolve it without ARPACK (which would come last): within the residual
    # tolerance 1e-13·|H| of 1 (Bauer–Fike), the vector within an angle of residual / gap
    # = 1e-13 / 1e-8 of e_99 (Davis–Kahan), so |u_99| ≥ cos(1e-5) ≈ 1 − 5e-11
    import stabsim.spectral as spectral

    def no_arpack(*args, **kwargs):
        raise AssertionError("ARPACK was called")

    engine_for = spectral.engine_for
    attempts = []  # (thick, products, converged) of each Lanczos call

    def counting(kernel, family):
        engine = engine_for(kernel, family)

        def call(*args):
            residual, products, converged = engine(*args)
            attempts.append((args[6], products, converged))
            return residual, products, converged

        return call

    diagonal = np.linspace(0.0, 1.0, 100)
    diagonal[-2] = 1.0 - 1e-8
    monkeypatch.setattr(spectral, "_unchecked_top_eigenpairs", no_arpack)
    monkeypatch.setattr(spectral, "engine_for", counting)
    lam, u = tracked_top_eigenpair(Quadratic(np.diag(diagonal)), np.ones(100))
    assert abs(lam - 1.0) <= 1e-13
    assert abs(u[-1]) >= 1.0 - 1e-10
    # the thin restarts stop at a fifth of the budget (every call along a flow on such a
    # Hessian spends that much before the thick ones)
    assert attempts[0] == (None, spectral.TRACKED_MAX_PRODUCTS // 5, False)
    assert [thick for thick, *_ in attempts] == [None, True] and attempts[1][2]


def test_tracked_second_pair_nearly_repeated_is_resolved_by_thick_restarts(monkeypatch):
    # diag(0, …, 1 − 1e-8, 1, 2), d = 100: the top pair is clear, the second sits on a
    # nearly repeated pair, where thin restarts stall on the deflated operator; the thick
    # ones resolve it without ARPACK: λ2 within the tolerance 1e-13·|H| = 2e-13 of 1 (Bauer–
    # Fike, plus the top pair's residual: 2 bounds), its vector within an angle of residual /
    # gap = 2e-13 / 1e-8 of e_98, so |u_98| ≥ cos(2e-5) ≈ 1 − 2e-10
    import stabsim.spectral as spectral

    def no_arpack(*args, **kwargs):
        raise AssertionError("ARPACK was called")

    engine_for = spectral.engine_for
    attempts = []  # (thick, converged) of each Lanczos call

    def counting(kernel, family):
        engine = engine_for(kernel, family)

        def call(*args):
            residual, products, converged = engine(*args)
            attempts.append((args[6], converged))
            return residual, products, converged

        return call

    diagonal = np.linspace(0.0, 1.0, 99)
    diagonal[-2] = 1.0 - 1e-8
    diagonal = np.r_[diagonal, 2.0]
    monkeypatch.setattr(spectral, "_unchecked_top_eigenpairs", no_arpack)
    monkeypatch.setattr(spectral, "engine_for", counting)
    values, vectors = tracked_top_eigenpairs(Quadratic(np.diag(diagonal)), np.ones(100), 2)
    assert attempts == [(None, False), (True, True)]
    assert abs(values[0] - 2.0) <= 2e-13 and abs(values[1] - 1.0) <= 4e-13
    assert abs(vectors[99, 0]) >= 1.0 - 1e-12 and abs(vectors[98, 1]) >= 1.0 - 2e-10


def test_tracked_top_eigenpairs_match_eigh_on_a_network():
    net = Network((8, 8), data="sine", n_samples=12)  # d = 97: the compiled Lanczos path
    theta = net.init(seed=3)
    values = np.linalg.eigvalsh(net.hessian(theta))[::-1]
    scale = np.abs(values).max()
    k = 3
    tops, vectors = tracked_top_eigenpairs(net, theta, k)
    assert vectors.shape == (net.dim, k)
    for i in range(k):
        # pair i stopped at residual ≤ 1e-13·s (s ≤ ‖H‖₂) on P_i H P_i, so at most (i + 1)
        # such bounds on H (the parts along the pairs above it are their residuals'); the
        # products recomputed here add rounding of about d·eps·‖H‖₂
        bound = ((i + 1) * 1e-13 + net.dim * np.finfo(float).eps) * scale
        u = vectors[:, i]
        assert abs(np.linalg.norm(u) - 1.0) <= 1e-14
        assert np.linalg.norm(net.hvp(theta, u) - tops[i] * u) <= bound
        # a Ritz value lies within its residual of an eigenvalue (Weyl), and with the
        # start mix of each pair it is the (i + 1)-th largest
        assert abs(tops[i] - values[i]) <= bound
    # warm-started from the pairs of the opposite sign, each pair keeps the sign it was given
    _, again = tracked_top_eigenpairs(net, theta, 2, -vectors[:, :2])
    assert np.all(np.sum(again * vectors[:, :2], axis=0) < 0.0)


def test_central_flow_on_a_network_takes_its_spectrum_without_arpack(monkeypatch):
    # λ2, which ends the one-eigenvalue flow (EIGENGAP_CLOSED) and is recorded, comes from
    # the compiled deflated Lanczos; its records agree with eigh at every saved state
    import stabsim.spectral as spectral
    from stabsim import central_flow

    def no_arpack(*args, **kwargs):
        raise AssertionError("ARPACK was called")

    net = Network((6, 6), data="sine", n_samples=12)  # d = 55
    theta = net.init(seed=0)
    s0 = np.linalg.eigvalsh(net.hessian(theta))[-1]
    monkeypatch.setattr(spectral, "_unchecked_top_eigenpairs", no_arpack)
    flow = central_flow(net, theta, 1.9 / s0, 60)
    assert flow.success, flow.message
    for w, s, lambda2 in zip(flow.trajectory, flow.sharpness, flow.lambda2, strict=True):
        values = np.linalg.eigvalsh(net.hessian(w))
        # residuals ≤ 1e-13·‖H‖₂ and 2e-13·‖H‖₂ (test above), with d·eps·‖H‖₂ of rounding in
        # the dense Hessian's eigenvalues
        tol = (2e-13 + net.dim * np.finfo(float).eps) * np.abs(values).max()
        assert abs(s - values[-1]) <= tol and abs(lambda2 - values[-2]) <= tol


def test_a_zero_hessian_above_the_dense_size_has_eigenvalue_zero():
    # ARPACK stops with "Starting vector is zero" (its error -9) when every product it makes
    # is 0: that error had reached the user from sharpness, top_eigenpairs, eos_constants
    # and the flows (a linear network without biases at θ = 0, d = 48).
    # The dense eigh takes over there, exact
    zero = Quadratic(np.zeros(40))
    pairs = top_eigenpairs(zero, np.ones(40), 2)
    np.testing.assert_array_equal(pairs.values, [0.0, 0.0])
    np.testing.assert_allclose(np.linalg.norm(pairs.vectors, axis=0), 1.0, rtol=1e-15)
    assert pairs.eigensolver == "eigh"
    linear = Network((6, 6), activation="identity", bias=False, n_samples=8)
    assert linear.dim > SMALL_DIM and sharpness(linear, np.zeros(linear.dim)) == 0.0
    # the constants are undefined, as said: the top eigenvalue 0 is repeated 40 times (and
    # ∇³L = 0 besides)
    with pytest.raises(ValueError, match="not told apart"):
        eos_constants(zero, np.ones(40))
    # a Hessian ARPACK can work on is still its business
    assert top_eigenpairs(Quadratic(np.r_[np.zeros(39), 1.0]), np.ones(40)).eigensolver \
        == "lanczos"
    assert _lowest_eigenpair(zero, np.ones(40), tol=1e-10)[0] == 0.0


@pytest.mark.parametrize("scale", [1e-309, 1e-30, 1e-20, 1.0, 1e250])
def test_lanczos_is_relative_at_any_scale_of_the_hessian(scale):
    # ARPACK stops at tol·max(ε^(2/3), |λ|): on an unscaled Hessian of size 1e-20 its top
    # eigenvalue came out 1e-3 off at d = 100; the residuals' norm overflowed to inf past
    # 1e154, and the scaling's 2^-log2 overflowed below 1e-308. Checked against eigvalsh; the
    # tolerance 1e-10 bounds each residual relative to |λ1|, and so each eigenvalue's error
    # (Bauer–Fike)
    d = 100
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
    a = (q * (scale * np.linspace(-1.0, 1.0, d))) @ q.T
    a = (a + a.T) / 2
    pairs = top_eigenpairs(Quadratic(a), np.zeros(d), 3, eigensolver="lanczos")
    exact = np.linalg.eigvalsh(a)[::-1][:3]
    assert np.all(np.abs(pairs.values - exact) <= 1e-10 * abs(exact[0]))
    assert np.all(pairs.residuals <= 1e-10 * abs(exact[0]))


def test_lanczos_takes_k_up_to_d_minus_1():
    a = np.diag(np.arange(1.0, 6.0))
    pairs = top_eigenpairs(Quadratic(a), np.zeros(5), 4, eigensolver="lanczos")
    np.testing.assert_allclose(pairs.values, [5.0, 4.0, 3.0, 2.0], rtol=1e-10)
    with pytest.raises(ValueError, match="needs k < d = 5"):
        top_eigenpairs(Quadratic(a), np.zeros(5), 5, eigensolver="lanczos")


@pytest.mark.parametrize("rotated", [False, True])
def test_eos_constants_refuse_a_top_eigenvalue_not_told_apart_from_the_next(rotated):
    # diag(1, 2, 2), and a random rotation of it, whose eigh eigenvalues differ by round-off
    # and whose residuals are a few eps: the top may be repeated, and ∇S = ∇³L[u, u] would
    # depend on the u taken
    hessian = np.diag([1.0, 2.0, 2.0])
    if rotated:
        basis = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
        hessian = basis @ hessian @ basis.T
        hessian = 0.5 * (hessian + hessian.T)
    with pytest.raises(ValueError, match="not told apart"):
        eos_constants(Quadratic(hessian), np.ones(3))


def test_eos_constants_take_a_top_eigenvalue_told_apart_from_the_next():
    # a gap of 1e-9 is a million times eigh's residuals (eps·|H|): the top is simple, and the
    # constants go on to β, which a quadratic's ∇³L = 0 makes 0
    with pytest.raises(FlatSharpnessError):
        eos_constants(Quadratic(np.diag([1.0, 2.0 - 1e-9, 2.0])), np.ones(3))


_ONE_DRIVER = """
import numpy as np
from numba.core import event
from stabsim.losses import Network
from stabsim.maps import run_gd
from stabsim.spectral import tracked_top_eigenpair, tracked_top_eigenpairs

compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        compiled.append(getattr(ev.data["dispatcher"], "py_func", None))

    def on_end(self, ev):
        pass

event.register("numba:compile", Compiles())
net = Network((6, 6), data="sine", n_samples=12)  # d = 55: the compiled Lanczos path
theta = net.init(seed=0)
run_gd(net, theta, 0.1, 3, top_k=2)
tracked_top_eigenpairs(net, theta, 2)
tracked_top_eigenpair(net, theta)
print(sum(getattr(f, "__qualname__", "") == "top_eigenpair" for f in compiled))
"""


@pytest.mark.slow
def test_gd_measuring_two_eigenvalues_and_the_flows_share_one_lanczos_driver(tmp_path):
    # GD's measurement of two eigenvalues and the flows' tracked pairs (one or two) use the
    # same operator, a deflated one, so a process that runs them compiles Lanczos's driver
    # (stabsim._lanczos.top_eigenpair, the larger part of a first call's Lanczos) once;
    # compare, which runs all three, compiled it twice before
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # nothing cached: all compile
    out = subprocess.run([sys.executable, "-c", _ONE_DRIVER], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out.split()[-1] == "1"


def test_gd_engine_measures_the_tracked_pairs_as_their_own_entry_point_and_compiles_nothing():
    # the same compiled Lanczos on the same operator from the same starts, reached through
    # GD's engine run for no step: equal bit for bit; and with the arguments of run_gd's
    # types, a process that has run GD with top_k = 2 compiles nothing more for it
    import numba

    net = Network((8, 8), data="sine", n_samples=12)  # d = 97: the compiled Lanczos path
    theta = net.init(seed=3)
    run_gd(net, theta, 0.01, 2, top_k=2)
    starts = np.random.default_rng(1).normal(size=(net.dim, 2))
    compiled = []

    class Listener(numba.core.event.Listener):
        def on_start(self, event):
            compiled.append(event.data["dispatcher"])

        def on_end(self, event):
            pass

    for k, start in ((1, None), (2, None), (1, starts[:, :1]), (2, starts)):
        expected = tracked_top_eigenpairs(net, theta, k, start)
        with numba.core.event.install_listener("numba:compile", Listener()), \
                pairs_measured_by(measured_top_pairs):
            got = tracked_top_eigenpairs(net, theta, k, start)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert compiled == []


def test_gd_engine_reports_a_nonfinite_point_and_a_spent_budget():
    net = Network((8, 8), data="sine", n_samples=12)
    d = net.dim
    theta = net.init(seed=3)
    tops, vectors = np.empty(1), np.zeros(d)
    # θ with a NaN weight: the loss is NaN, nothing measured
    bad = theta.copy()
    bad[0] = np.nan
    assert np.isnan(measured_top_pairs(net, bad, vectors, tops, 200, 1e-13, None)[0])
    # one product cannot meet 1e-13 from a generic start (a Krylov space of one vector)
    residual, converged = measured_top_pairs(net, theta, vectors, tops, 1, 1e-13, None)
    assert residual == np.inf and not converged
    residual, converged = measured_top_pairs(net, theta, vectors, tops, 200, 1e-13, None)
    assert converged and residual <= 1e-13 * np.abs(np.linalg.eigvalsh(net.hessian(theta))).max()


def test_tracked_scaled_pairs_match_eigh_of_the_scaled_hessian_and_fall_back_to_it(
        monkeypatch):
    # D H D with H the Hessian of a network (d = 97) and D = diag(scale): the compiled
    # Lanczos's pairs against eigh of the dense matrix, each within the bound of
    # test_tracked_top_eigenpairs_match_eigh_on_a_network; then, its runs made to report a
    # stall, the fallback is that eigh itself
    import stabsim.spectral as spectral
    from stabsim.spectral import tracked_scaled_top_eigenpairs

    net = Network((8, 8), data="sine", n_samples=12)
    theta = net.init(seed=3)
    scale = np.linspace(0.5, 2.0, net.dim)
    dense = scale[:, None] * net.hessian(theta) * scale[None, :]
    values, vectors = np.linalg.eigh(dense)
    values, vectors = values[::-1], vectors[:, ::-1]
    size = np.abs(values).max()
    k = 3
    tops, pairs = tracked_scaled_top_eigenpairs(net, theta, scale, k)
    for i in range(k):
        bound = ((i + 1) * 1e-13 + net.dim * EPS) * size
        assert abs(tops[i] - values[i]) <= bound
        assert np.linalg.norm(dense @ pairs[:, i] - tops[i] * pairs[:, i]) <= bound

    def stalled(kernel, family):
        return lambda *args: (0.1, args[4], False)  # residual, products, converged

    monkeypatch.setattr(spectral, "engine_for", stalled)
    tops, pairs = tracked_scaled_top_eigenpairs(net, theta, scale, k)
    np.testing.assert_array_equal(tops, values[:k])
    np.testing.assert_array_equal(np.abs(pairs), np.abs(vectors[:, :k]))
    # where the dense matrix would not fit, the fallback refuses it, naming d and its bytes
    # (97² · 8 = 75,272; with 100,000 bytes available, half of them usable)
    import stabsim.losses._base as base

    monkeypatch.setattr(base, "_available_memory", lambda: 100_000)
    with pytest.raises(ValueError, match=r"preconditioned Hessian \(Lanczos stalled\) at "
                                         r"dim = 97 takes 75,272 bytes"):
        tracked_scaled_top_eigenpairs(net, theta, scale, k)
