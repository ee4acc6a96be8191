"""Derivatives of every loss family, checked against finite differences and each other.

Tolerances. A central difference D(h) = (F(θ + he) − F(θ − he))/(2h) has truncation error
c h² + O(h⁴) and rounding error ≤ ε·max|F|·C/h, where C bounds the ulps lost evaluating F
(sums of a few dozen terms of comparable size: C = 100 is generous). The truncation error of
D(h/2) is ≈ (D(h) − D(h/2))/3, so |exact − D(h/2)| ≤ |D(h) − D(h/2)| + rounding holds with a
factor-3 margin, yet a wrong derivative (an O(1) error) fails it. Identities between two
exact computations (hvp vs hess·v, symmetries) hold to round-off: ≤ 64 d ε times the size of
the summed terms.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabsim._jit import jit
from stabsim.losses import BUILTIN_KERNELS, CustomLoss, specialise
from stabsim.losses._dispatch import grad as loss_grad
from stabsim.testing import (
    losses,
    manifold_losses,
    minimalist_losses,
    quadratic_losses,
    realisations,
    regression_models,
    scalar_networks,
    self_regulating_potentials,
    starts,
    unit_vectors,
)

EPS = np.finfo(float).eps
H_STEP = 1e-4  # balances h² truncation against ε/h rounding for |θ| = O(1)


def assert_fd(exact, fun, theta, direction, what):
    """Check ``exact`` = d/dt fun(θ + t·direction) at t = 0 (Richardson-based tolerance)."""

    def central(h):
        plus = np.asarray(fun(theta + h * direction))
        minus = np.asarray(fun(theta - h * direction))
        return (plus - minus) / (2 * h), max(np.max(np.abs(plus)), np.max(np.abs(minus)))

    d_h, size_h = central(H_STEP)
    d_h2, size_h2 = central(H_STEP / 2)
    rounding = 100 * EPS * max(size_h, size_h2, 1.0) / (H_STEP / 2)
    tol = np.abs(d_h - d_h2) + rounding
    err = np.abs(np.asarray(exact) - d_h2)
    assert np.all(err <= tol), f"{what}: error {err} > tolerance {tol}"


def check_derivatives(loss, theta, u, v):
    """Every derivative of ``loss`` at θ against finite differences and its siblings."""
    d = loss.dim
    eye = np.eye(d)
    g = loss.grad(theta)
    H = loss.hessian(theta)
    for i in range(d):
        assert_fd(g[i], loss.value, theta, eye[i], f"grad[{i}] vs value")
        assert_fd(H[:, i], loss.grad, theta, eye[i], f"hess[:, {i}] vs grad")
    # d3[u, v] = d/dt H(θ + t v) u: the third derivative against the Hessian-vector product
    assert_fd(loss.d3(theta, u, v), lambda t: loss.hvp(t, u), theta, v, "d3[u, v] vs hvp")
    # d3[u, u]_i = ∂_i (uᵀ H(θ) u): against the dense Hessian
    duu = loss.d3(theta, u, u)
    for i in range(d):
        assert_fd(duu[i], lambda t: u @ loss.hessian(t) @ u, theta, eye[i], f"d3[u,u][{i}]")
    size_h = np.abs(H).sum() + 1.0
    assert np.allclose(loss.hvp(theta, v), H @ v, rtol=0, atol=64 * d * EPS * size_h)
    assert np.allclose(H, H.T, rtol=0, atol=64 * d * EPS * size_h)
    d3_uv, d3_vu = loss.d3(theta, u, v), loss.d3(theta, v, u)
    size_t = np.abs(d3_uv).max() + np.abs(duu).max() + 1.0
    assert np.allclose(d3_uv, d3_vu, rtol=0, atol=64 * d * EPS * size_t)


FAMILIES = {
    "quadratic": quadratic_losses(),
    "self_regulating": self_regulating_potentials(),
    "realisation": realisations(),
    "scalar_network": scalar_networks(),
    "minimalist": minimalist_losses(),
    "regression": regression_models(),
    "manifold_flat": manifold_losses(curved=False),
    "manifold_curved": manifold_losses(curved=True),
}


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=15)
@given(data=st.data())
def test_builtin_derivatives(family, data):
    loss = data.draw(FAMILIES[family], label="loss")
    theta = data.draw(starts(loss, scale=1.5), label="theta")
    u = data.draw(unit_vectors(loss.dim), label="u")
    v = data.draw(unit_vectors(loss.dim), label="v")
    check_derivatives(loss, theta, u, v)


@settings(max_examples=10)
@given(data=st.data())
def test_any_family_derivatives(data):
    loss = data.draw(losses(), label="loss")
    theta = data.draw(starts(loss, scale=1.0), label="theta")
    check_derivatives(loss, theta, *data.draw(st.tuples(*[unit_vectors(loss.dim)] * 2)))


# A user-defined loss: L(x, y, z) = (a − x)² + b (y − x²)² + c (z − y²)² (Rosenbrock chain),
# p = [a, b, c]. Its third derivatives: L_xxx = 24 b x, L_xxy = −4 b, L_yyy = 24 c y,
# L_yyz = −4 c.
@numba.njit
def _rb_value(theta, p):
    x, y, z = theta[0], theta[1], theta[2]
    return (p[0] - x) ** 2 + p[1] * (y - x * x) ** 2 + p[2] * (z - y * y) ** 2


@numba.njit
def _rb_grad(theta, p, out):
    x, y, z = theta[0], theta[1], theta[2]
    out[0] = -2.0 * (p[0] - x) - 4.0 * p[1] * x * (y - x * x)
    out[1] = 2.0 * p[1] * (y - x * x) - 4.0 * p[2] * y * (z - y * y)
    out[2] = 2.0 * p[2] * (z - y * y)


@numba.njit
def _rb_hess(theta, p, out):
    x, y, z = theta[0], theta[1], theta[2]
    out[:, :] = 0.0
    out[0, 0] = 2.0 - 4.0 * p[1] * (y - 3.0 * x * x)
    out[0, 1] = out[1, 0] = -4.0 * p[1] * x
    out[1, 1] = 2.0 * p[1] - 4.0 * p[2] * (z - 3.0 * y * y)
    out[1, 2] = out[2, 1] = -4.0 * p[2] * y
    out[2, 2] = 2.0 * p[2]


@numba.njit
def _rb_d3(theta, p, u, v, out):
    x, y, b, c = theta[0], theta[1], p[1], p[2]
    out[0] = 24.0 * b * x * u[0] * v[0] - 4.0 * b * (u[0] * v[1] + u[1] * v[0])
    out[1] = -4.0 * b * u[0] * v[0] + 24.0 * c * y * u[1] * v[1]
    out[1] -= 4.0 * c * (u[1] * v[2] + u[2] * v[1])
    out[2] = -4.0 * c * u[1] * v[1]


@numba.njit
def _rb_hvp(theta, p, v, out):
    x, y, z = theta[0], theta[1], theta[2]
    hxx = 2.0 - 4.0 * p[1] * (y - 3.0 * x * x)
    hyy = 2.0 * p[1] - 4.0 * p[2] * (z - 3.0 * y * y)
    out[0] = hxx * v[0] - 4.0 * p[1] * x * v[1]
    out[1] = -4.0 * p[1] * x * v[0] + hyy * v[1] - 4.0 * p[2] * y * v[2]
    out[2] = -4.0 * p[2] * y * v[1] + 2.0 * p[2] * v[2]


@pytest.fixture(scope="module")
def rosenbrock():
    return CustomLoss(_rb_value, _rb_grad, _rb_hess, _rb_d3, _rb_hvp, params=[1.0, 5.0, 3.0], dim=3)


@pytest.fixture(scope="module")
def rosenbrock_default_hvp():
    return CustomLoss(_rb_value, _rb_grad, _rb_hess, _rb_d3, params=[1.0, 5.0, 3.0], dim=3)


@settings(max_examples=15)
@given(
    theta=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3).map(np.array),
    u=unit_vectors(3),
    v=unit_vectors(3),
)
def test_custom_loss_derivatives(rosenbrock, rosenbrock_default_hvp, theta, u, v):
    check_derivatives(rosenbrock, theta, u, v)
    check_derivatives(rosenbrock_default_hvp, theta, u, v)


def test_custom_loss_minimum(rosenbrock):
    # the minimiser of the chain is (a, a², a⁴) = (1, 1, 1), where L = 0 and ∇L = 0 exactly
    assert rosenbrock.value(np.ones(3)) == 0.0
    assert np.all(rosenbrock.grad(np.ones(3)) == 0.0)


@jit
def _gd(kind, theta, p, eta, steps):
    """A kernel reaching the loss through the dispatch name ``loss_grad`` (GD in place)."""
    g = np.empty_like(theta)
    for _ in range(steps):
        loss_grad(kind, theta, p, g)
        for i in range(theta.shape[0]):
            theta[i] -= eta * g[i]


def test_specialise_runs_kernels_on_custom_and_builtin_losses(rosenbrock):
    from stabsim.losses import ScalarNetwork

    start = np.array([0.3, -0.2, 0.5])
    kernel = specialise(_gd, rosenbrock)
    assert kernel is not _gd and rosenbrock.kernels is not BUILTIN_KERNELS
    theta = start.copy()
    kernel(rosenbrock.kind, theta, rosenbrock.params, 1e-3, 50)
    expected = start.copy()
    for _ in range(50):  # the same GD through the Python interface: identical operations
        expected -= 1e-3 * rosenbrock.grad(expected)
    assert np.array_equal(theta, expected)
    network = ScalarNetwork(3)
    assert specialise(_gd, network) is _gd


def test_custom_loss_rejects_plain_python_functions():
    def value(theta, p):
        return 0.0

    with pytest.raises(ValueError, match=r"value must be a Numba-compiled.*numba\.njit"):
        CustomLoss(value, _rb_grad, _rb_hess, _rb_d3, dim=3)
    with pytest.raises(ValueError, match=r"hvp must be a Numba-compiled"):
        CustomLoss(_rb_value, _rb_grad, _rb_hess, _rb_d3, hvp=np.dot, dim=3)


@numba.njit
def _partial_grad(theta, p, out):
    out[0] = 1.0  # forgets the other entries


@numba.njit
def _wrong_signature_grad(theta, out):
    out[0] = 1.0


def test_custom_loss_checks_its_functions_at_a_test_point():
    with pytest.raises(ValueError, match=r"grad gave a non-finite result"):
        CustomLoss(_rb_value, _partial_grad, _rb_hess, _rb_d3, params=[1.0, 5.0, 3.0], dim=3)
    with pytest.raises(ValueError, match=r"grad failed at the test point"):
        CustomLoss(_rb_value, _wrong_signature_grad, _rb_hess, _rb_d3, params=[1, 5, 3], dim=3)
    with pytest.raises(ValueError, match="dim"):
        CustomLoss(_rb_value, _rb_grad, _rb_hess, _rb_d3, params=[1.0, 5.0, 3.0], dim=0)
    with pytest.raises(ValueError, match="params"):
        CustomLoss(_rb_value, _rb_grad, _rb_hess, _rb_d3, params=[1.0, np.nan, 3.0], dim=3)
