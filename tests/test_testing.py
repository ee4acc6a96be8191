"""The public Hypothesis strategies draw what their docstrings promise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabsim.losses import Loss, ManifoldFamily, QuadraticRegression, ScalarNetwork
from stabsim.testing import (
    losses,
    manifold_losses,
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
@settings(max_examples=20)
@given(data=st.data())
def test_manifold_losses_have_a_simple_top_eigenvalue_at_the_origin(curved, data):
    loss = data.draw(manifold_losses(curved=curved, k=2, gap=2.0))
    assert isinstance(loss, ManifoldFamily) and loss.curved is curved and loss.k == 2
    assert loss.c[0] - loss.c[1] >= 0.5 - 4 * EPS  # c_1 = 2 c_2 with c_2 ≥ 0.5
    eig = loss.normal_eigenvalues(np.zeros(loss.m))
    assert eig[0] > eig[1]


@given(eta=step_sizes(1e-2, 0.5))
def test_step_sizes_in_range(eta):
    assert 1e-2 <= eta <= 0.5


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
