"""The public Hypothesis strategies draw what their docstrings promise."""

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from stabsim.losses import Loss, ManifoldFamily, QuadraticRegression, ScalarNetwork
from stabsim.testing import (
    losses,
    manifold_losses,
    networks,
    quadratic_losses,
    realisations,
    regression_models,
    scalar_networks,
    starts,
    step_sizes,
    unit_vectors,
)

EPS = np.finfo(float).eps


@given(loss=quadratic_losses(dim=4, min_eigenvalue=0.5, max_eigenvalue=3.0))
def test_quadratic_losses_have_the_requested_spectrum(loss):
    eig = np.linalg.eigvalsh(loss.A)
    tol = 64 * 4 * EPS * 3.0  # eigh and the orthogonal similarity, each backward stable
    assert loss.dim == 4 and eig[0] >= 0.5 - tol and eig[-1] <= 3.0 + tol


@given(net=scalar_networks(depth=st.integers(3, 5)))
def test_scalar_networks_depth(net):
    assert isinstance(net, ScalarNetwork) and 3 <= net.depth <= 5


@given(model=regression_models(d=7, n=2))
def test_regression_models_shapes(model):
    assert isinstance(model, QuadraticRegression) and (model.d, model.n) == (7, 2)


@given(loss=realisations(eta=0.05))
def test_realisations_use_the_given_step_size(loss):
    assert loss.eta == 0.05 and loss.alpha > 0 and loss.b != 0


@pytest.mark.parametrize("curved", [False, True])
@pytest.mark.parametrize("gap", [1.01, 2.0])
@settings(max_examples=40)
@given(data=st.data())
def test_manifold_losses_have_the_gap_at_the_origin(curved, gap, data):
    # With c_1 = gap × (the largest other c_j) alone, h_2(0) = c_2 + ½ Σ s_2i μ_2i² could
    # reach past h_1(0): at gap 1.1, h(0) = (1.12, 1.31).
    loss = data.draw(manifold_losses(curved=curved, k=data.draw(st.integers(2, 3)), gap=gap))
    assert isinstance(loss, ManifoldFamily) and loss.curved is curved
    eig = loss.normal_eigenvalues(np.zeros(loss.m))
    # λ1 = h_1(0) ≥ gap λ2 exactly; c_1 and h_1(0) each take a few roundings
    assert eig[0] >= gap * eig[1] * (1.0 - 8 * EPS)
    assert np.isclose(eig[0], loss.h(np.zeros(loss.m))[0], rtol=4 * EPS, atol=0.0)


@given(eta=step_sizes(1e-2, 0.5))
def test_step_sizes_in_range(eta):
    assert 1e-2 <= eta <= 0.5


@pytest.mark.parametrize("bound", ["min_value", "max_value"])
def test_step_sizes_draw_their_bounds(bound):
    # exp(log(1e-3)) and exp(log(3.0)) are not 1e-3 and 3.0, so a map through exp alone never
    # draws these bounds, which are where a test's edge cases are
    low, high = 1e-3, 3.0
    target = low if bound == "min_value" else high
    assert find(step_sizes(low, high), lambda eta: eta == target) == target


def test_step_sizes_bad_range():
    with pytest.raises(ValueError, match="min_value"):
        step_sizes(0.0, 1.0)


@given(data=st.data())
def test_starts_and_losses(data):
    loss = data.draw(losses())
    assert isinstance(loss, Loss)
    theta = data.draw(starts(loss, scale=0.5, centre=np.ones(loss.dim)))
    assert theta.shape == (loss.dim,) and theta.dtype == np.float64 and theta.flags.c_contiguous
    assert np.all(np.abs(theta - 1.0) <= 0.5)
    assert np.isfinite(loss.value(theta))


@given(u=unit_vectors(5))
def test_unit_vectors(u):
    assert u.shape == (5,) and abs(np.linalg.norm(u) - 1.0) <= 4 * EPS


def _positive_definite(matrix, sign=1, shift=0) -> bool:
    """Whether shift·I + sign·matrix is positive definite, decided exactly: the pivots of
    Gaussian elimination in rational arithmetic (a float is a rational) are all > 0."""
    from fractions import Fraction

    m = [[sign * Fraction(float(x)) + (shift if i == j else 0) for j, x in enumerate(row)]
         for i, row in enumerate(matrix)]
    for k in range(len(m)):
        if m[k][k] <= 0:
            return False
        for i in range(k + 1, len(m)):
            f = m[i][k] / m[k][k]
            for j in range(k, len(m)):
                m[i][j] -= f * m[k][j]
    return True


@settings(max_examples=100, deadline=None)
@given(quadratic_losses(min_eigenvalue=0.0, max_eigenvalue=1.0))
def test_quadratic_spectra_stay_in_their_range(loss):
    # a rotated diagonal had left [0, 1] by round-off in about one draw in five (an
    # eigenvalue −1.6e-18, a sharpness 1 + 4e-16): a convexity or stability test on them
    # failed falsely. Decided exactly (eigvalsh's own error is as large as the fault):
    # A and I − A are positive definite, so every eigenvalue lies in (0, 1)
    assert _positive_definite(loss.A)
    assert _positive_definite(loss.A, sign=-1, shift=1)


@settings(max_examples=20, deadline=None)
@given(networks(hidden=st.integers(1, 3), n_samples=4))
def test_networks_take_a_strategy_of_one_width(net):
    # hidden=st.integers(...) had failed at every draw ("'int' object is not iterable")
    assert len(net.sizes) == 3 and 1 <= net.sizes[1] <= 3
