"""The engines' deflated Lanczos (``run_gd(top_k=k)`` on Hessian-vector products) at a
repeated top eigenvalue.

Each pair had started from the same fixed mix vector: the first pair's eigenvector is the
part of that vector in the top eigenspace E, so the next start, projected off it, kept
nothing of E, and the second pair converged to the next eigenvalue below E with a residual
of round-off (status OK). A balanced start of a scalar network, the usual one, has such an
eigenvalue along the whole run.
"""

import numpy as np
import pytest

from stabsim.losses import Quadratic, ScalarNetwork
from stabsim.maps import run_gd

EPS = np.finfo(float).eps


def _dense_top(loss, theta, k):
    """The top k eigenvalues of the Hessian assembled from d products, by ``eigvalsh``."""
    hessian = np.array([loss.hvp(theta, e) for e in np.eye(loss.dim)])
    return np.sort(np.linalg.eigvalsh(0.5 * (hessian + hessian.T)))[::-1][:k]


def _within_residual(measured, exact, residual):
    # a Ritz value with residual r has an eigenvalue within r of it (symmetric operator);
    # plus eigvalsh's own rounding, a few ulps of the largest eigenvalue
    scale = np.max(np.abs(exact))
    assert np.all(np.abs(measured - exact) <= residual + 8 * EPS * scale), (measured, exact)


@pytest.mark.parametrize("k", [2, 3])
def test_a_double_top_eigenvalue_of_a_quadratic(k):
    loss = Quadratic([3.0, 3.0, 1.0])
    result = run_gd(loss, np.full(3, 0.1), 0.01, 0, top_k=k, eigensolver="lanczos")
    assert result.success
    _within_residual(result.sharpness[0], [3.0, 3.0, 1.0][:k], result.eig_residual[0])


@pytest.mark.parametrize("k", [2, 3])
def test_the_balanced_start_of_a_scalar_network(k):
    # GD keeps the start balanced, so the top eigenvalue stays double along the run
    loss = ScalarNetwork(3)
    theta0 = np.full(3, 0.5)
    result = run_gd(loss, theta0, 0.01, 100, top_k=k, stride=50, eigensolver="lanczos",
                    record_trajectory=True)
    assert result.success
    for t, theta in enumerate(result.trajectory):
        exact = _dense_top(loss, theta, k)
        assert exact[0] - exact[1] <= 1e-12 * exact[0]  # the case: a double top eigenvalue
        _within_residual(result.sharpness[t], exact, result.eig_residual[t])
