"""Derivatives of every loss family, checked against finite differences and each other.

Tolerances. A central difference D(h) = (F(θ + he) − F(θ − he))/(2h) has truncation error
c h² + O(h⁴) and rounding error ≤ ε·max|F|·C/h, where C bounds the ulps lost evaluating F
(sums of a few dozen terms of comparable size: C = 100 is generous). The truncation error of
D(h/2) is ≈ (D(h) − D(h/2))/3, so |exact − D(h/2)| ≤ |D(h) − D(h/2)| + rounding holds with a
factor-3 margin, yet a wrong derivative (an O(1) error) fails it. Identities between two
exact computations (hvp vs hess·v, symmetries) hold to round-off: ≤ 64 d ε times the size of
the summed terms.
"""

import numpy as np
import pytest
import user_families
from hypothesis import given, settings
from hypothesis import strategies as st

from stabsim.losses import Loss
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


# A user-defined family (tests/user_families.py): the Rosenbrock chain, with and without a
# dense Hessian (without: the generic one, d Hessian-vector products).
@pytest.fixture(scope="module")
def rosenbrock():
    return Loss(user_families.Rosenbrock(1.0, 5.0, 3.0), 3)


@pytest.fixture(scope="module")
def rosenbrock_without_hess():
    return Loss(user_families.RosenbrockNoHess(1.0, 5.0, 3.0), 3)


@settings(max_examples=15)
@given(
    theta=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3).map(np.array),
    u=unit_vectors(3),
    v=unit_vectors(3),
)
def test_user_family_derivatives(rosenbrock, rosenbrock_without_hess, theta, u, v):
    check_derivatives(rosenbrock, theta, u, v)
    check_derivatives(rosenbrock_without_hess, theta, u, v)


def test_user_family_minimum(rosenbrock):
    # the minimiser of the chain is (a, a², a⁴) = (1, 1, 1), where L = 0 and ∇L = 0 exactly
    assert rosenbrock.value(np.ones(3)) == 0.0
    assert np.all(rosenbrock.grad(np.ones(3)) == 0.0)
