"""Finite-sum losses: the examples of the regression and network families (docs/stochastic.md).

The mean over all examples of the per-example value, gradient and Hessian-vector product must
equal the full loss's to floating point; each per-example value is checked against a NumPy
formula the kernels did not compute.
"""

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
    from typing import NamedTuple

    class Lonely(NamedTuple):
        a: float

    k = quadratic_kernels
    with pytest.raises(TypeError, match="subset and examples go together"):
        register_family(Lonely, value=k.value, grad=k.grad, hvp=k.hvp, d3=k.d3,
                        examples=lambda p: 1)
