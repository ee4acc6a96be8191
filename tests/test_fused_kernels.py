"""Fused value/gradient/Hessian kernels (and their generic versions) against the separate ones."""

import numpy as np
import pytest

from stabsim._jit import jit
from stabsim.losses import Minimalist, QuadraticRegression, ScalarNetwork
from stabsim.losses import _protocol as protocol
from stabsim.losses.kernels import regression


@jit
def _hessian_parts(theta, p, grad_out, hess_out, factor_out):
    """The protocol's hessian_parts as compiled code sees it (the family's, or the generic)."""
    return protocol.hessian_parts(theta, p, grad_out, hess_out, factor_out)


@jit
def _weighted_q(p, w, out):
    """The regression model's weighted sum of its Q_k (a function only kernels call)."""
    regression._weighted_q(p, w, out)


@jit
def _value_grad(theta, p, out):
    """The protocol's value_grad as compiled code sees it."""
    return protocol.value_grad(theta, p, out)


@pytest.mark.parametrize("zero", [None, 3])
def test_scalar_network_value_grad_is_its_value_and_r_g(zero):
    # one sweep gives L = ½ r² (r = ∏ w − 1, the product in value's order: the same bits)
    # and ∇L = r g with g_i = ∏_{j≠i} w_j, here by deleting each factor (no division, so a
    # zero weight is exact); six products of O(1) numbers each way: round-off of a few eps
    theta = np.random.default_rng(2).uniform(0.5, 1.5, 7)
    if zero is not None:
        theta[zero] = 0.0
    loss = ScalarNetwork(7)
    out = np.empty(7)
    assert _value_grad(theta, loss.params, out) == loss.value(theta)
    r = np.prod(theta) - 1.0
    g = np.array([np.prod(np.delete(theta, i)) for i in range(7)])
    np.testing.assert_allclose(out, r * g, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("loss", [
    QuadraticRegression.random(30, 4, seed=3),
    QuadraticRegression.two_scale(0.01),
    ScalarNetwork(4),
    Minimalist(),
])
def test_hessian_parts_matches_the_separate_kernels(loss):
    theta = np.random.default_rng(0).normal(size=loss.dim) * 0.5 + 0.3
    grad_out = np.empty(loss.dim)
    hess_out = np.empty((loss.dim, loss.dim))
    factor = np.empty((loss.factor_rows, loss.dim))
    value = _hessian_parts(theta, loss.params, grad_out, hess_out, factor)
    # the fused kernel sums the same terms in another order: agreement to round-off,
    # relative to the size of the terms (n·d products of O(1) factors)
    scale = 1e-12 * max(1.0, np.abs(loss.hessian(theta)).max())
    assert value == pytest.approx(loss.value(theta), rel=1e-12)
    np.testing.assert_allclose(grad_out, loss.grad(theta), rtol=1e-12, atol=scale)
    # the dense part is given by its upper triangle (the protocol): mirrored here
    dense = np.triu(hess_out) + np.triu(hess_out, 1).T
    np.testing.assert_allclose(dense + factor.T @ factor, loss.hessian(theta), rtol=1e-12,
                               atol=scale)
    np.testing.assert_array_equal(loss.hessian(theta), loss.hessian(theta).T)


def test_the_regression_factor_is_the_scaled_jacobian():
    # ∇²L = Σ_k z_k Q_k/n + FᵀF with F = J(θ)/√n, J(θ) = J + Qθ (built here with einsum)
    loss = QuadraticRegression.random(12, 5, seed=4)
    theta = np.random.default_rng(1).normal(size=12)
    hess_out, factor = np.empty((12, 12)), np.empty((5, 12))
    _hessian_parts(theta, loss.params, np.empty(12), hess_out, factor)
    jacobian = loss.J + np.einsum("kij,j->ki", loss.Q, theta)
    z = loss.z0 + loss.J @ theta + 0.5 * np.einsum("kij,i,j->k", loss.Q, theta, theta)
    np.testing.assert_allclose(factor, jacobian / np.sqrt(5), rtol=1e-13, atol=1e-14)
    # the dense part's upper triangle: all that hessian_parts gives of it
    np.testing.assert_allclose(np.triu(hess_out), np.triu(np.einsum("k,kij->ij", z, loss.Q)) / 5,
                               rtol=1e-12, atol=1e-13)


def test_two_scale_starts_at_the_requested_fraction_of_the_threshold():
    # Built as documented: the draw random(6, 3, seed=1, q_scale=0.5) with its fast row scaled
    # so that at θ = 0 (where z₁ = 0) H = μ uuᵀ + B, μ = start·2/η, u = J₁/|J₁|, and B =
    # (J_sᵀJ_s + Σ_k z_k Q_k)/n from the slow rows alone (η-independent). The top eigenvalue
    # of a rank-one term plus B solves λ = μ + uᵀBu + bᵀ(λ − B⊥)⁻¹b with b = (I − uuᵀ)Bu and
    # B⊥ the compression of B to u⊥ (secular equation), and λ ≥ μ + uᵀBu (Rayleigh), so
    # 0 ≤ λ − μ − uᵀBu ≤ |b|²/(μ − 2‖B‖₂): the relative gap Sη/2 − start is (η/2)uᵀBu to
    # within (η/2)|b|²/(μ − 2‖B‖₂) = O(η²). Round-off: eigvalsh and the scaling are off by a
    # few d ε of μ, i.e. ~d ε·start in the gap (10× that allowed). Measured at η = 0.02, 0.01,
    # 0.005: gap 1.21e-3, 6.07e-4, 3.03e-4; its second-order part 1.42e-6, 3.56e-7, 8.90e-8
    # against the bound 1.44e-6, 3.57e-7, 8.92e-8. The slow residuals' offsets z_k dropped
    # (z0 zeroed whole where only z₁ should be) moves the gap by O(η) and halves it still,
    # inside the old band |gap| < 0.01 with ratios in [1.8, 2.2]; it fails here.
    base = QuadraticRegression.random(6, 3, seed=1, q_scale=0.5)  # two_scale's defaults
    n, start = 3, 0.9
    u = base.J[0] / np.linalg.norm(base.J[0])
    slow = (base.J[1:].T @ base.J[1:] + np.einsum("k,kij->ij", base.z0[1:], base.Q[1:])) / n
    first = u @ slow @ u
    b = slow @ u - first * u
    roundoff = 10 * 6 * np.finfo(float).eps * start
    for eta in (0.02, 0.01, 0.005):
        loss = QuadraticRegression.two_scale(eta, start=start)
        top = np.linalg.eigvalsh(loss.hessian(np.zeros(loss.dim)))[-1]
        mu = start * 2.0 / eta
        second = top * eta / 2 - start - (eta / 2) * first
        bound = (eta / 2) * (b @ b) / (mu - 2.0 * np.linalg.norm(slow, 2))
        assert -roundoff <= second <= bound + roundoff, (eta, second, bound)


@pytest.mark.parametrize("n", range(1, 17))
def test_the_regression_weighted_blocks_sum_every_block_once(n):
    # Σ_k w_k Q_k, summed five blocks a pass with the last pass padded by the last block at
    # weight 0: every n from one pass short of five to four passes (the padding, the storing
    # first pass and the adding ones). Any order of summing n products is within
    # (n − 1)·eps·Σ_k |w_k Q_k| of the exact sum, and so is tensordot: twice that between them
    loss = QuadraticRegression.random(23, n, seed=n)
    w = np.random.default_rng(n).normal(size=n)
    out = np.full((23, 23), np.nan)
    _weighted_q(loss.params, w, out)
    upper = np.triu_indices(23)
    bound = 2 * n * np.finfo(float).eps * np.tensordot(np.abs(w), np.abs(loss.Q), 1)
    assert np.all(np.abs(out - np.tensordot(w, loss.Q, 1))[upper] <= bound[upper])
    assert np.isnan(out[np.tril_indices(23, -1)]).all()  # below the diagonal: left alone
