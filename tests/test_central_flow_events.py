"""The central flow's exit event and a coupled k = 2 flow, against closed forms (docs/theory.md §3).

Both losses are cubic polynomials whose fast coordinates x start at 0 and stay there (∇L
has no x-component at x = 0), so the flow moves only the slow coordinates w, and on each
branch it has a closed form:

- exit: L(x, w₁, w₂) = ½(A + b w₁)x² − c w₁(1 − w₂) − m w₂. S = A + b w₁ with u = e_x and
  ∇S = (0, b, 0); ⟨−∇L, ∇S⟩ = bc(1 − w₂) falls through 0 when w₂ reaches 1.
- coupled k = 2: L(x, w) = ½ xᵀ(A₀ + Σ_k w_k B_k)x − f·w with x ∈ R², w ∈ R⁴ and generic
  symmetric B_k, so the two critical directions share the w's (the SDCP's Gram matrix is
  not block-diagonal).
"""

from typing import NamedTuple

import numba
import numpy as np
import pytest
from scipy.optimize import brentq

from stabsim.flows import central_flow
from stabsim.losses import Loss, register_family

ETA = 0.01
BOUND = 2.0 / ETA


# --- the exit loss, p.v = [A, b, c, m] -------------------------------------------------------
@numba.njit
def _exit_value(th, p):
    return (0.5 * (p.v[0] + p.v[1] * th[1]) * th[0] * th[0] - p.v[2] * th[1] * (1.0 - th[2])
            - p.v[3] * th[2])


@numba.njit
def _exit_grad(th, p, out):
    out[0] = (p.v[0] + p.v[1] * th[1]) * th[0]
    out[1] = 0.5 * p.v[1] * th[0] * th[0] - p.v[2] * (1.0 - th[2])
    out[2] = p.v[2] * th[1] - p.v[3]


@numba.njit
def _exit_hess(th, p, out):
    out[:, :] = 0.0
    out[0, 0] = p.v[0] + p.v[1] * th[1]
    out[0, 1] = out[1, 0] = p.v[1] * th[0]
    out[1, 2] = out[2, 1] = p.v[2]


@numba.njit
def _exit_d3(th, p, u, v, out):
    # the only nonzero third derivative is ∂³L/∂x²∂w₁ = b
    out[0] = p.v[1] * (u[0] * v[1] + u[1] * v[0])
    out[1] = p.v[1] * u[0] * v[0]
    out[2] = 0.0


@numba.njit
def _exit_hvp(th, p, v, out):
    h = np.empty((3, 3))
    _exit_hess(th, p, h)
    out[:] = h @ v


class ExitLoss(NamedTuple):
    """p.v = [A, b, c, m]."""

    v: np.ndarray


register_family(ExitLoss, value=_exit_value, grad=_exit_grad, hvp=_exit_hvp, d3=_exit_d3,
                hess=_exit_hess, shapes={"v": (4,)})


def _slow_gradient_flow(w0, c, m, s):
    """Gradient flow of −c w₁(1 − w₂) − m w₂ after flow time s = ηt (x = 0): with fixed point
    W* = (m/c, 1) and D = w0 − W*, W(s) = W* + cosh(cs) D − sinh(cs) (D₂, D₁)."""
    fixed = np.array([m / c, 1.0])
    d = np.asarray(w0, dtype=float) - fixed
    return fixed + np.cosh(c * s) * d - np.sinh(c * s) * d[::-1]


def test_exit_event_where_sharpening_stops():
    A, b, c, m = 180.0, 10.0, 1.0, 2.2
    w0 = np.array([0.0, -2.0])
    loss = Loss(ExitLoss(np.array([A, b, c, m])), 3)
    t_end = 1600.0
    times = np.arange(0.0, t_end + 1.0)
    cf = central_flow(loss, [0.0, *w0], ETA, t_end)  # every step
    assert cf.success, cf.message
    # entry: gradient flow until S = A + b w₁ reaches 2/η, i.e. w₁ = w_b
    w_b = (BOUND - A) / b
    t_in = brentq(lambda t: _slow_gradient_flow(w0, c, m, ETA * t)[0] - w_b, 0.0, 1000.0,
                  xtol=1e-12)
    w_in = _slow_gradient_flow(w0, c, m, ETA * t_in)
    # on the boundary w₁ = w_b and w₂ rises at η(m − c w_b); ⟨−∇L, ∇S⟩ = bc(1 − w₂) > 0
    # until w₂ = 1, where the flow exits
    rate = ETA * (m - c * w_b)
    t_out = t_in + (1.0 - w_in[1]) / rate
    assert len(cf.entry_steps) == 1 and len(cf.exit_steps) == 1
    # event times are root-found on an integration at rtol 1e-10 (measured ~1e-9 steps)
    assert cf.entry_steps[0] == pytest.approx(t_in, abs=1e-6)
    assert cf.exit_steps[0] == pytest.approx(t_out, abs=1e-6)
    # the three branches against their closed forms (integration error ~1e-10 relative)
    before, on, after = times < t_in, (times > t_in) & (times < t_out), times > t_out
    expected = np.empty((times.size, 2))
    expected[before] = [_slow_gradient_flow(w0, c, m, ETA * t) for t in times[before]]
    expected[on, 0] = w_b
    expected[on, 1] = w_in[1] + rate * (times[on] - t_in)
    expected[after] = [_slow_gradient_flow([w_b, 1.0], c, m, ETA * (t - t_out))
                       for t in times[after]]
    np.testing.assert_allclose(cf.trajectory[:, 1:], expected, rtol=0, atol=1e-7)
    assert np.all(cf.trajectory[:, 0] == 0.0)
    # σ² = 2⟨−∇L, ∇S⟩/|∇S|² = 2c(1 − w₂)/b on the boundary, falling to 0 at the exit; after
    # it S falls below 2/η (w₁ decreases once w₂ > 1) and σ² = 0
    np.testing.assert_allclose(cf.sigma2[on], 2.0 * c * (1.0 - expected[on, 1]) / b,
                               rtol=0, atol=1e-7)
    assert np.all(cf.sigma2[after] == 0.0) and np.all(cf.sharpness[after] < BOUND)
    assert cf.sharpness[-1] < BOUND * (1 - 1e-3)


# --- the coupled k = 2 loss: θ = (x₁, x₂, w₁..w₄), p.v = [A₀ (4), B (16), f (4)] ------------
K = 4


@numba.njit
def _matrix(th, p):
    a = p.v[0:4].reshape(2, 2).copy()
    for k in range(K):
        a += th[2 + k] * p.v[4 + 4 * k:8 + 4 * k].reshape(2, 2)
    return a


@numba.njit
def _k2_value(th, p):
    a = _matrix(th, p)
    x = th[:2]
    return 0.5 * (x @ a @ x) - p.v[20:24] @ th[2:]


@numba.njit
def _k2_grad(th, p, out):
    a = _matrix(th, p)
    x = th[:2].copy()
    out[:2] = a @ x
    for k in range(K):
        bk = p.v[4 + 4 * k:8 + 4 * k].reshape(2, 2)
        out[2 + k] = 0.5 * (x @ bk @ x) - p.v[20 + k]


@numba.njit
def _k2_hess(th, p, out):
    out[:, :] = 0.0
    out[:2, :2] = _matrix(th, p)
    x = th[:2].copy()
    for k in range(K):
        col = p.v[4 + 4 * k:8 + 4 * k].reshape(2, 2) @ x
        out[:2, 2 + k] = col
        out[2 + k, :2] = col


@numba.njit
def _k2_d3(th, p, u, v, out):
    # the only nonzero third derivatives are ∂³L/∂x_i∂x_j∂w_k = (B_k)_ij
    ux, vx = u[:2].copy(), v[:2].copy()
    out[:2] = 0.0
    for k in range(K):
        bk = p.v[4 + 4 * k:8 + 4 * k].reshape(2, 2)
        out[:2] += bk @ vx * u[2 + k] + bk @ ux * v[2 + k]
        out[2 + k] = ux @ bk @ vx


@numba.njit
def _k2_hvp(th, p, v, out):
    h = np.empty((2 + K, 2 + K))
    _k2_hess(th, p, h)
    out[:] = h @ v


class CoupledLoss(NamedTuple):
    """p.v = [A₀ (4), B (16), f (4)]."""

    v: np.ndarray


register_family(CoupledLoss, value=_k2_value, grad=_k2_grad, hvp=_k2_hvp, d3=_k2_d3,
                hess=_k2_hess, shapes={"v": (24,)})


def _coupled_case():
    rng = np.random.default_rng(3)
    a0 = np.array([[0.88, 0.05], [0.05, 0.8]]) * BOUND
    B = rng.normal(size=(K, 2, 2))
    B = B + B.transpose(0, 2, 1)
    N = np.array([[bk[0, 0], 2 * bk[0, 1], bk[1, 1]] for bk in B]).T  # ⟨Σ, B_k⟩ = (Nᵀs)_k
    # the drive f = Nᵀ r + (a null-space part): gradient flow w' = ηf raises A(w) at the
    # PD rate Σ_k f_k B_k, and once both eigenvalues are held the null part moves w on
    f = 3.0 * (N.T @ np.array([2.0, 0.6, 1.5]) + 0.5 * np.linalg.svd(N)[2][-1])
    return a0, B, N, f


def test_coupled_k2_flow_is_the_projected_gradient_flow():
    a0, B, N, f = _coupled_case()
    params = np.concatenate([a0.ravel(), B.reshape(-1), f])
    loss = Loss(CoupledLoss(params), 2 + K)
    t_end = 800.0  # entries measured at t ≈ 24 and 492
    times = np.arange(0.0, t_end + 1.0)
    cf = central_flow(loss, np.zeros(2 + K), ETA, t_end, max_critical=2)  # every step
    assert cf.success, cf.message
    assert len(cf.entry_steps) == 2 and cf.exit_steps == []
    # first entry: gradient flow w = ηtf until λ_max(A₀ + ηt Σf_kB_k) = 2/η
    drive = np.einsum("k,kij->ij", f, B)
    t1 = brentq(lambda t: np.linalg.eigvalsh(a0 + ETA * t * drive)[-1] - BOUND, 0.0, 1e3,
                xtol=1e-12)
    assert cf.entry_steps[0] == pytest.approx(t1, abs=1e-6)
    # the SDCP here is coupled: the Gram matrix of T_ab = ∇³L[u_a, u_b] = (0, u_aᵀB_k u_b)
    # has off-diagonal blocks (a block-diagonal loss would have ⟨T_11, T_22⟩ = 0)
    t2 = cf.entry_steps[1]
    both = times > t2
    w2 = cf.trajectory[np.argmax(both), 2:]
    u = np.linalg.eigh(loss.hessian(cf.trajectory[np.argmax(both)]))[1][:, ::-1][:2, :2]
    T11, T22 = (np.einsum("i,kij,j->k", u[:, a], B, u[:, a]) for a in (0, 1))
    assert abs(T11 @ T22) > 0.1 * np.linalg.norm(T11) * np.linalg.norm(T22)
    # With both eigenvalues held, A(w) = (2/η)I, so w moves on the line
    # {Σ_k w_k B_k = const}: the velocity is −η times the projection of ∇_w L = −f onto the
    # null space of N, and Σ solves ½ Nᵀs = −(I − P)∇_w L exactly (s = (Σ11, Σ12, Σ22)).
    null = np.linalg.svd(N)[2][-1]
    velocity = ETA * (null @ f) * null
    np.testing.assert_allclose(cf.trajectory[both, 2:], w2 + np.outer(times[both] - times[both][0],
                                                                    velocity),
                               rtol=0, atol=1e-7)
    s = 2.0 * np.linalg.solve(N @ N.T, N @ f)
    sigma = np.array([[s[0], s[1]], [s[1], s[2]]])
    assert np.all(np.linalg.eigvalsh(sigma) > 0)  # complementarity: both directions active
    assert abs(sigma[0, 1]) > 0.1 * np.trace(sigma)  # not diagonal in the x basis
    # Σ's spectrum from the SDCP solved along the flow, against the closed form (the SDCP
    # solver's tolerance ~1e-12 and the states' 1e-7 give ≤ 1e-6 relative)
    scale = np.trace(sigma)
    np.testing.assert_allclose(cf.trace_sigma[both], scale, rtol=1e-6)
    np.testing.assert_allclose(cf.sigma_eigenvalues[both],
                               np.tile(np.linalg.eigvalsh(sigma)[::-1], (both.sum(), 1)),
                               rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(cf.eigenvalues[both, :2] / BOUND, 1.0, atol=1e-7)
    assert np.all(np.diff(cf.loss) <= 1e-9)  # L decreases monotonically (round-off of L)


@pytest.mark.parametrize("max_critical", [1, 2])
@pytest.mark.parametrize("eta", [0.5, 0.51])
def test_a_start_at_a_critical_point_stays_there(eta, max_critical):
    # The minimalist loss at (1, 1): ∇L = 0 exactly (x²y² − 1 = 0), S = 4, so S = 2/η at
    # η = 1/2 and S > 2/η at 0.51. With ∇L = 0 nothing held pushes (σ² = max(0, −2∇L·∇S/|∇S|²)
    # = 0, the SDCP's S = 0), so every branch's field vanishes and the solution is constant.
    # Before, each branch's events, identically 0 there, fired at once: 101 switches at t = 0,
    # MAX_STEPS with no state saved.
    from stabsim.losses import Minimalist

    run = central_flow(Minimalist(), np.ones(2), eta, 3.0, max_critical=max_critical)
    assert run.success and run.counters["switches"] == 0
    assert run.trajectory.shape == (4, 2) and np.array_equal(run.trajectory, np.ones((4, 2)))


def test_a_start_above_the_threshold_never_lets_s_rise_while_above():
    # Gradient flow lowers S at the start (⟨−∇L, ∇S⟩ = −7.7 < 0), but only to 1.0499·2/η and
    # then raises it. The gradient-flow branch's only event (S rising through 2/η) could not
    # fire from above: the flow stayed gradient flow with S·η/2 reaching 1.48, status OK.
    # Now the flow holds S where gradient flow stops lowering it, as max_critical=2 does.
    import stabsim
    from stabsim.losses import QuadraticRegression

    loss = QuadraticRegression.two_scale(0.01)
    theta0 = np.zeros(loss.dim)
    eta = 2.1 / stabsim.sharpness(loss, theta0)
    flow = stabsim.central_flow(loss, theta0, eta, 400)
    assert flow.success and len(flow.entry_steps) == 1
    ratio = flow.sharpness * eta / 2.0
    # S never rises above 2/η: non-increasing to the integration's accuracy (rtol = 1e-10
    # per unit time over t = 400: a drift of at most 4e-8 relative)
    assert np.all(np.diff(ratio) <= 4e-8 * ratio[:-1])
    held = flow.step > flow.entry_steps[0]
    assert np.ptp(ratio[held]) <= 4e-8 * ratio[held].max()
    # the k = 2 flow holds S from the start, and the SDCP lets it fall (X = 0) exactly while
    # the stable flow lowers it: it ends at the same level, the minimum of S along gradient
    # flow, where a timing error δt of either event moves S by O(δt²) only
    two = stabsim.central_flow(loss, theta0, eta, 400, max_critical=2)
    assert abs(two.sharpness[-1] * eta / 2.0 - ratio[-1]) <= 1e-6 * ratio[-1]
