"""The central flow with k > 1 critical eigenvalues: the SDCP solver and the k = 2 flow.

The flow test loss is a block-diagonal sum L(θ₁, θ₂) = L_a(θ₁) + L_b(θ₂) of two
``QuadraticRegression.two_scale`` draws (seeds 1 and 2, both sharpening smoothly to 2/η),
written as one QuadraticRegression with block-structured J, Q, z₀. Block a reaches 2/η near
t ≈ 210, block b near t ≈ 320; after that two eigenvalues are critical. Because the blocks
are decoupled (∇³L[u_a, u_b] = 0 across them) Σ is block-diagonal and the k = 2 flow must be
the pair of k = 1 flows of the blocks run alone: an independent check.
"""

import numpy as np
import pytest
from scipy.optimize import minimize

from stabsim.flows import central_flow
from stabsim.flows._sdcp import sdcp_data, sdcp_gradient, sdcp_objective, solve_sdcp
from stabsim.losses import QuadraticRegression
from stabsim.maps.gd import run_gd

ETA = 0.01
STEPS = 2000  # flow time ηt = 20: ~4 EoS cycles of each block (periods ≈ 440 steps)


def _random_instance(rng, k, d):
    T = rng.normal(size=(k, k, d))
    T = 0.5 * (T + T.transpose(1, 0, 2))  # ∇³L[u_a, u_b] is symmetric in a, b
    return sdcp_data(T, rng.normal(size=d))


@pytest.mark.parametrize("seed", range(40))
def test_sdcp_solution_satisfies_kkt_and_beats_scipy(seed):
    rng = np.random.default_rng(seed)
    k, d = int(rng.integers(1, 4)), int(rng.integers(2, 9))
    G, C = _random_instance(rng, k, d)
    sol = solve_sdcp(G, C)
    assert sol.success, sol.residual
    S, D = sol.S, sdcp_gradient(sol.S, G, C)
    scale_s, scale_d = max(np.linalg.norm(S), 1e-300), np.linalg.norm(C)
    # KKT: S ⪰ 0, ∇f(S) = ½GS − C ⪰ 0, ⟨S, ∇f⟩ = 0. The solver's natural residual is
    # ≤ 1e-12 relative; the conditions then hold to ~1e-10 relative (κ(G) of these draws
    # is ≲ 1e2, which multiplies the residual)
    assert np.linalg.eigvalsh(S)[0] >= -1e-12 * scale_s
    assert np.linalg.eigvalsh(D)[0] >= -1e-10 * scale_d
    assert abs(np.sum(S * D)) <= 1e-10 * scale_s * scale_d
    # brute force: S = BBᵀ over all k×k B (no spurious minima for a convex f with full-size
    # B), BFGS from 4 random starts; ours is at least as low up to BFGS's own ~1e-10
    def f_of_b(b):
        B = b.reshape(k, k)
        return sdcp_objective(B @ B.T, G, C)

    best = min(minimize(f_of_b, rng.normal(size=k * k), method="BFGS",
                        options={"gtol": 1e-12}).fun for _ in range(4))
    f_ours = sdcp_objective(S, G, C)
    assert f_ours <= best + 1e-9 * max(1.0, abs(best))
    # f is strictly convex in the force M s = Σ S_ab T_ab, so ⟨S, G S⟩ is unique: compare it
    # with BFGS's minimiser via the objective, which pins it to the same ~1e-9
    assert f_ours == pytest.approx(best, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("c_sign", [1.0, -1.0])
def test_sdcp_for_k_equal_one_is_the_sigma2_formula(c_sign):
    rng = np.random.default_rng(3)
    grad_s, grad_l = rng.normal(size=5), rng.normal(size=5)
    grad_l *= c_sign * np.sign(-grad_l @ grad_s)  # ⟨−∇L, ∇S⟩ has the sign c_sign
    G, C = sdcp_data(grad_s[None, None, :], grad_l)
    sigma2 = max(0.0, 2.0 * float(-grad_l @ grad_s) / float(grad_s @ grad_s))
    # the one-variable case is solved in closed form by the free minimiser: to round-off
    assert solve_sdcp(G, C).S[0, 0] == pytest.approx(sigma2, rel=1e-13, abs=1e-15)
    assert (sigma2 > 0) == (c_sign > 0)


def test_sdcp_rank_deficient_solution():
    # C = diag(1, −1) with G = identity-like: the free minimiser diag(2, −2)/g is not PSD;
    # the solution is diag(2/g, 0) with ∇f = diag(0, 1) ⪰ 0 (complementary)
    T = np.zeros((2, 2, 3))
    T[0, 0, 0], T[1, 1, 1], T[0, 1, 2] = 1.0, 1.0, 1.0
    G, _ = sdcp_data(T, np.zeros(3))
    sol = solve_sdcp(G, np.diag([1.0, -1.0]))
    np.testing.assert_allclose(sol.S, np.diag([2.0, 0.0]), atol=1e-12)
    # and a PSD-cone boundary solution with an off-diagonal direction (Newton polish path)
    rng = np.random.default_rng(7)
    G, C = _random_instance(rng, 3, 8)
    C = C - 3.0 * np.trace(C) * np.eye(3) / 3.0 - 2.0 * np.outer(*[rng.normal(size=3)] * 2)
    sol = solve_sdcp(G, C)
    assert sol.success and sol.residual <= 1e-12


def _blocks(a, b):
    """L_a(θ₁) + L_b(θ₂) as one QuadraticRegression: |z|²/(2n) with the block residuals
    scaled by sqrt(n/n_block) so that each keeps its own |z_block|²/(2 n_block)."""
    n, d = a.n + b.n, a.d + b.d
    sa, sb = np.sqrt(n / a.n), np.sqrt(n / b.n)
    J, Q = np.zeros((n, d)), np.zeros((n, d, d))
    J[:a.n, :a.d], J[a.n:, a.d:] = sa * a.J, sb * b.J
    Q[:a.n, :a.d, :a.d], Q[a.n:, a.d:, a.d:] = sa * a.Q, sb * b.Q
    return QuadraticRegression(J, Q, np.concatenate([sa * a.z0, sb * b.z0]))


@pytest.fixture(scope="module")
def two_blocks():
    a = QuadraticRegression.two_scale(ETA, seed=1)
    b = QuadraticRegression.two_scale(ETA, seed=2)
    loss = _blocks(a, b)
    cf = central_flow(loss, np.zeros(loss.dim), ETA, float(STEPS), max_critical=2)
    return a, b, loss, cf


def test_block_loss_is_the_sum(two_blocks):
    a, b, loss, _ = two_blocks
    theta = np.random.default_rng(0).normal(size=loss.dim)
    assert loss.value(theta) == pytest.approx(a.value(theta[:6]) + b.value(theta[6:]),
                                              rel=1e-14)


def test_k2_flow_is_the_pair_of_block_flows(two_blocks):
    a, b, loss, cf = two_blocks
    assert cf.success, cf.message
    assert len(cf.entry_steps) == 2 and cf.exit_steps == []
    fa = central_flow(a, np.zeros(6), ETA, float(STEPS))
    fb = central_flow(b, np.zeros(6), ETA, float(STEPS))
    # the same events: both root-found to the integrator's tolerance (measured ~1e-9 steps)
    np.testing.assert_allclose(cf.entry_steps, fa.entry_steps + fb.entry_steps, atol=1e-6)
    # the same ODE integrated at rtol 1e-10 by two step-size sequences: the states agree to
    # ~1e-9 (measured 2e-10 and 2e-9 at t = 600); 1e-7 allows the growth over 2000 steps
    np.testing.assert_allclose(cf.trajectory[:, :6], fa.trajectory, rtol=0, atol=1e-7)
    np.testing.assert_allclose(cf.trajectory[:, 6:], fb.trajectory, rtol=0, atol=1e-7)
    # Σ is block-diagonal: tr Σ = σ²_a + σ²_b and its eigenvalues are {σ²_a, σ²_b}.
    # σ² = 2C/|∇S|² inherits the ~1e-9 state difference amplified by |∇C|/|∇S|² (C is small
    # right after an entry): measured 5e-7 of max tr Σ; 1e-5 of it
    scale = float(np.max(cf.trace_sigma))
    np.testing.assert_allclose(cf.trace_sigma, fa.sigma2 + fb.sigma2, rtol=0,
                               atol=1e-5 * scale)
    pair = np.sort(np.column_stack([fa.sigma2, fb.sigma2]), axis=1)[:, ::-1]
    np.testing.assert_allclose(cf.sigma_eigenvalues, pair, rtol=0, atol=1e-5 * scale)


def test_k2_flow_holds_both_eigenvalues_and_decreases_the_loss(two_blocks):
    *_, cf = two_blocks
    both = cf.n_critical == 2
    assert both.sum() > 1000
    # dλ/dt = 0 for both on the branch; drift only from the integrator (rtol 1e-10), as for
    # k = 1: well below 1e-7 relative (measured ~2e-11)
    np.testing.assert_allclose(cf.eigenvalues[both, :2] * ETA / 2.0, 1.0, atol=1e-7)
    assert np.all(cf.eigenvalues[:, 2] < 2.0 / ETA)  # no third eigenvalue reaches the bound
    assert np.all(cf.sigma_eigenvalues[both] > 0.0)
    # dL/dt = −η⟨∇L, ∇L + ½ΣS_ab T_ab⟩ ≤ 0 (the SDCP's optimality); round-off of L ~ 1e-13
    assert np.all(np.diff(cf.loss) <= 1e-13)


def _rises(sharpness):
    """Steps where the two-step average of a sharpness rises through 2/η (cycle starts)."""
    excess = 0.5 * (sharpness[1:] + sharpness[:-1]) - 2.0 / ETA
    return np.flatnonzero((excess[:-1] <= 0) & (excess[1:] > 0)) + 1


def test_gd_cycle_averaged_loss_matches_l_plus_trace_sigma_over_eta(two_blocks):
    a, b, loss, cf = two_blocks
    gd = run_gd(loss, np.zeros(loss.dim), ETA, STEPS, record_trajectory=True)
    assert gd.success, gd.message
    # each block's EoS cycles, from its own sharpness along GD
    rises_a = _rises(np.array([np.linalg.eigvalsh(a.hessian(th[:6]))[-1]
                               for th in gd.trajectory]))
    rises_b = _rises(np.array([np.linalg.eigvalsh(b.hessian(th[6:]))[-1]
                               for th in gd.trajectory]))
    assert rises_a.size >= 3 and rises_b.size >= 3
    # window: block a's whole cycles; block b starts inside it from below 2/η (before its
    # crossing GD tracks gradient flow, excess O(η²) and σ²_b = 0), and the window's end
    # misses b's nearest cycle boundary by `gap` steps
    window = slice(int(rises_a[0]), int(rises_a[-1]))
    gap = int(np.min(np.abs(rises_b - rises_a[-1])))
    excess = np.mean(gd.loss[window] - cf.loss[window])
    predicted = np.mean(cf.trace_sigma[window]) / ETA
    # E[L(θ_t)] ≈ L(w) + tr Σ/η: per block the k = 1 argument of tests/test_compare.py,
    # O(δ)-relative corrections ≈ 0.1 at η = 0.01, so 15%; plus b's partial cycle, whose
    # excess is at most the cycle's mean excess times gap/length (measured: gap 32 steps of
    # 1787, and a relative error −6%)
    allowance = 0.15 + gap / (window.stop - window.start)
    assert abs(excess - predicted) < allowance * predicted, (excess, predicted, gap)


def test_general_flow_with_one_critical_eigenvalue_is_the_one_eigenvalue_flow():
    """max_critical = 2 on a loss whose second eigenvalue stays below 2/η: the SDCP path.

    Two code paths for one ODE: the k = 1 flow (σ² in closed form, exit when σ² reaches 0)
    and the general flow (Σ from the SDCP with m = 1, re-solved at every right-hand side;
    exit when λ₁ falls below (1 − exit_band)·2/η). While one eigenvalue is critical and σ²
    stays positive they integrate the same vector field at rtol 1e-10 with different step
    sequences: the states agree to the integrator's ~1e-9 (as for the block flows above);
    σ² = 2⟨−∇L, ∇S⟩/|∇S|² then agrees to the same 1e-5 of its largest value (it is a
    small difference right after the entry), and the entry times to 1e-6 steps.
    """
    loss = QuadraticRegression.two_scale(ETA)
    one = central_flow(loss, np.zeros(loss.dim), ETA, 400.0)
    general = central_flow(loss, np.zeros(loss.dim), ETA, 400.0, max_critical=2)
    assert one.success and general.success, (one.message, general.message)
    assert np.all(general.eigenvalues[:, 1] < 2.0 / ETA)  # one critical direction only
    assert len(one.entry_steps) == 1 and one.exit_steps == [] and general.exit_steps == []
    np.testing.assert_allclose(general.entry_steps, one.entry_steps, atol=1e-6)
    np.testing.assert_array_equal(general.n_critical, one.n_critical)
    np.testing.assert_allclose(general.trajectory, one.trajectory, rtol=0, atol=1e-7)
    scale = float(np.max(one.sigma2))
    np.testing.assert_allclose(general.trace_sigma, one.sigma2, rtol=0, atol=1e-5 * scale)


def test_general_flow_on_products_is_the_one_eigenvalue_flow_without_arpack(monkeypatch):
    """The test above on a network of d = 97, whose top pairs are measured on
    Hessian-vector products: the general flow's k + 1 = 3 pairs by the warm-started,
    deflated Lanczos of the flows (ARPACK, which they once took, refused here), the same
    tolerances for the same reasons."""
    import stabsim.spectral as spectral
    from stabsim.losses import Network
    from stabsim.spectral import sharpness

    net = Network((8, 8), data="sine", n_samples=12)
    theta0 = net.init(seed=0)
    eta = 1.5 / sharpness(net, theta0)

    def no_arpack(*args, **kwargs):
        raise AssertionError("ARPACK was called")

    monkeypatch.setattr(spectral, "_unchecked_top_eigenpairs", no_arpack)
    one = central_flow(net, theta0, eta, 300.0)
    general = central_flow(net, theta0, eta, 300.0, max_critical=2)
    assert one.success and general.success, (one.message, general.message)
    assert np.all(general.eigenvalues[:, 1] < 2.0 / eta)  # one critical direction only
    assert len(one.entry_steps) == 1 and one.exit_steps == [] and general.exit_steps == []
    np.testing.assert_allclose(general.entry_steps, one.entry_steps, atol=1e-6)
    np.testing.assert_array_equal(general.n_critical, one.n_critical)
    np.testing.assert_allclose(general.trajectory, one.trajectory, rtol=0, atol=1e-7)
    scale = float(np.max(one.sigma2))
    np.testing.assert_allclose(general.trace_sigma, one.sigma2, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("kwargs", [{"max_critical": 0}, {"exit_band": 0.0},
                                    {"exit_band": 1.5}])
def test_bad_arguments_raise(kwargs):
    loss = QuadraticRegression.two_scale(ETA)
    with pytest.raises(ValueError):
        central_flow(loss, np.zeros(loss.dim), ETA, 10.0, **kwargs)


# |∇L|² of the records, ~1e320 here, overflows to inf (a true value past the float range)
@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
def test_an_overflowing_sdcp_is_a_nonfinite_status():
    # The same flow on c·L with η/c (GD on c·L with step η/c is GD on L with step η, and so
    # is the central flow), with c = 1e160 by residuals scaled by 1e80: at the first entry
    # G = T ⊗ T (T = ∇³L[u, u] ~ 1e160) overflows. That had raised ValueError from the SDCP
    # solver ("C contains NaN or inf") instead of a status; the one
    # eigenvalue branch stopped NONFINITE there already
    a = QuadraticRegression.two_scale(ETA, seed=1)
    big = QuadraticRegression(1e80 * a.J, 1e80 * a.Q, 1e80 * a.z0)
    flow = central_flow(big, np.zeros(6), ETA / 1e160, 400.0, max_critical=2)
    assert flow.status.name == "NONFINITE" and np.all(np.isfinite(flow.loss))
    # up to that entry it is the flow of L: the same entry, root-found to the integrator's
    # tolerance (as in test_k2_flow_is_the_pair_of_block_flows)
    np.testing.assert_allclose(flow.entry_steps,
                               central_flow(a, np.zeros(6), ETA, 400.0).entry_steps, atol=1e-6)
    assert central_flow(big, np.zeros(6), ETA / 1e160, 400.0).status.name == "NONFINITE"
