"""Finite-sum losses: the examples of the regression and network families (docs/stochastic.md).

The mean over all examples of the per-example value, gradient and Hessian-vector product must
equal the full loss's to floating point; each per-example value is checked against a NumPy
formula the kernels did not compute.
"""

from typing import NamedTuple

import numba
import numpy as np
import pytest

from stabsim import Loss, Network, QuadraticRegression, register_family
from stabsim.losses.kernels import quadratic as quadratic_kernels

EPS = np.finfo(float).eps


def _losses():
    regression = QuadraticRegression.random(6, 9, seed=3)
    network = Network((5,), activation="tanh", data="teacher", input_dim=2, n_samples=7,
                      seed=2)
    return [(regression, np.random.default_rng(0).normal(size=6)),
            (network, network.init(1))]


def _mean_matches(terms, full, inner):
    """|mean_i t_i − full| within the rounding of two length-N sums of the terms and of the
    terms' own computation: each per-example term and the full value carry a relative
    error of a few (inner + N) ulp of the magnitudes summed (Higham, Accuracy and Stability,
    §4.2: |fl(Σ x) − Σ x| ≤ γ_N Σ |x|), so 8 (inner + N) ε · mean |t_i| bounds the gap."""
    terms = np.asarray(terms)
    n = terms.shape[0]
    scale = np.abs(terms).mean(axis=0) + np.abs(full)
    assert np.all(np.abs(terms.mean(axis=0) - full) <= 8 * (inner + n) * EPS * scale + 1e-300)


@pytest.mark.parametrize("index", [0, 1])
def test_mean_of_examples_is_the_loss(index):
    loss, theta = _losses()[index]
    n = loss.n_examples
    assert loss.finite_sum
    v = np.random.default_rng(5).normal(size=loss.dim)
    singles = [loss.batch([i]) for i in range(n)]
    inner = loss.dim * 8  # operations per term: a few passes over θ per layer / row of Q_k
    _mean_matches([s.value(theta) for s in singles], loss.value(theta), inner)
    _mean_matches([s.grad(theta) for s in singles], loss.grad(theta), inner)
    _mean_matches([s.hvp(theta, v) for s in singles], loss.hvp(theta, v), inner)
    # every example, in order: the same numbers in the same order, hence the same arithmetic
    whole = loss.batch(np.arange(n))
    assert whole.value(theta) == loss.value(theta)
    assert np.array_equal(whole.grad(theta), loss.grad(theta))
    assert np.array_equal(whole.hvp(theta, v), loss.hvp(theta, v))


def test_per_example_losses_against_numpy():
    """ℓ_k = z_k(θ)²/2 for the regression model and |f(x_n) − y_n|²/2 for the network,
    from their NumPy methods ``residual`` and ``predict``."""
    (regression, theta_r), (network, theta_n) = _losses()
    z = regression.residual(theta_r)
    for k in range(regression.n):
        assert regression.batch([k]).value(theta_r) == pytest.approx(0.5 * z[k] ** 2,
                                                                     rel=1e-12)
    f = network.predict(theta_n)
    for i in range(network.n_samples):
        want = 0.5 * np.sum((f[i] - network.Y[i]) ** 2)
        assert network.batch([i]).value(theta_n) == pytest.approx(want, rel=1e-12)


def test_repeated_index_counts_twice():
    """L_B for B = (0, 0, 3) is (2 ℓ_0 + ℓ_3)/3 (a multiset, as drawn with replacement)."""
    for loss, theta in _losses():
        want = (2 * loss.batch([0]).value(theta) + loss.batch([3]).value(theta)) / 3
        assert loss.batch([0, 0, 3]).value(theta) == pytest.approx(want, rel=1e-13)


def test_bad_indices_and_non_sums():
    loss, _ = _losses()[0]
    for bad in ([], [9], [-1], [[0, 1]], [0.5]):
        with pytest.raises(ValueError, match="indices"):
            loss.batch(bad)
    quadratic = Loss(quadratic_kernels.QuadraticParams(np.diag([1.0, 2.0])), 2)
    assert not quadratic.finite_sum and quadratic.n_examples is None
    with pytest.raises(TypeError, match="not a finite sum"):
        quadratic.batch([0])


def test_subset_needs_examples():
    class Lonely(NamedTuple):
        a: float

    k = quadratic_kernels
    with pytest.raises(TypeError, match="subset and examples go together"):
        register_family(Lonely, value=k.value, grad=k.grad, hvp=k.hvp, d3=k.d3,
                        examples=lambda p: 1)


class Wells(NamedTuple):
    """ℓ_i(θ) = ½ |θ − c_i|² for the rows c_i of C: L = ½ mean_i |θ − c_i|² (a user family)."""

    C: np.ndarray


@numba.njit(cache=True)
def _wells_value(theta, p):
    total = 0.0
    for i in range(p.C.shape[0]):
        for j in range(theta.shape[0]):
            total += 0.5 * (theta[j] - p.C[i, j]) ** 2
    return total / p.C.shape[0]


@numba.njit(cache=True)
def _wells_grad(theta, p, out):
    for j in range(theta.shape[0]):
        out[j] = theta[j] - p.C[:, j].mean()


@numba.njit(cache=True)
def _wells_hvp(theta, p, v, out):
    out[:] = v


@numba.njit(cache=True)
def _wells_d3(theta, p, u, v, out):
    out[:] = 0.0


@numba.njit(cache=True)
def _wells_subset(p, indices):
    return Wells(p.C[indices])


register_family(Wells, value=_wells_value, grad=_wells_grad, hvp=_wells_hvp, d3=_wells_d3,
                subset=_wells_subset, examples=lambda p: p.C.shape[0],
                shapes={"C": (None, "d")})


def test_a_user_family_is_a_finite_sum():
    """A family defined outside stabsim registers subset and examples like a built-in one;
    the batch on B = {i, j} is ½ mean over B of |θ − c_k|², by NumPy."""
    C = np.arange(12.0).reshape(4, 3)
    loss = Loss(Wells(C), 3)
    theta = np.array([0.5, -1.0, 2.0])
    assert loss.finite_sum and loss.n_examples == 4
    want = 0.5 * np.mean(np.sum((theta - C[[1, 3]]) ** 2, axis=1))
    assert loss.batch([1, 3]).value(theta) == pytest.approx(want, rel=1e-15)
    assert np.allclose(loss.batch([1, 3]).grad(theta), theta - C[[1, 3]].mean(axis=0),
                       rtol=1e-15, atol=0)
