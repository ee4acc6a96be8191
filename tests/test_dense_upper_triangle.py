"""The dense part of ``hessian_parts`` is given by its upper triangle: the kernels that take it
read nothing below the diagonal, and agree with the full symmetric matrix."""

import numpy as np
import pytest
import user_families

from stabsim import compare
from stabsim._jit import jit
from stabsim._lanczos import Anchor, DenseHessian, dense_drift
from stabsim._linalg import apply_sum
from stabsim.losses import Loss, QuadraticRegression
from stabsim.maps import run_adaptive, run_gd, run_sgd

EPS = np.finfo(float).eps


@jit
def _apply_sum(H, F, v, out):
    apply_sum(H, F, v, out)


@jit
def _dense_drift(H, F, H_anchor, F_anchor, limit):
    return dense_drift(DenseHessian(H, F), Anchor(H_anchor, F_anchor, np.full(1, np.nan)),
                       limit)


def _upper_with_nan_below(a):
    """``a``'s upper triangle, NaN below the diagonal (which must never be read)."""
    return np.where(np.triu(np.ones(a.shape, dtype=bool)), a, np.nan)


def _symmetric(d, rng):
    a = rng.normal(size=(d, d))
    return a + a.T


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7, 8, 9, 100, 101])
def test_the_dense_product_reads_the_upper_triangle_only(d):
    # (H + FᵀF) v with H given by its upper triangle: each entry of the result is a sum of
    # d + rows·(d + 1) products, so any order of summing is within that many eps of the exact
    # value times the sum of the terms' sizes, and so is NumPy's: twice that between them
    rng = np.random.default_rng(d)
    H, F, v = _symmetric(d, rng), rng.normal(size=(3, d)), rng.normal(size=d)
    out = np.full(d, np.nan)
    _apply_sum(_upper_with_nan_below(H), F, v, out)
    sizes = np.abs(H) @ np.abs(v) + np.abs(F).T @ (np.abs(F) @ np.abs(v))
    bound = 2 * (d + 3 * (d + 1)) * EPS * sizes
    assert np.all(np.abs(out - (H @ v + F.T @ (F @ v))) <= bound)


@pytest.mark.parametrize("d", [1, 2, 5, 100])
def test_the_drift_bound_is_the_frobenius_bound_of_the_full_matrices(d):
    # ‖H − H'‖_F + ‖F − F'‖_F (‖F‖_F + ‖F'‖_F) of the full symmetric matrices, from their upper
    # triangles (a limit no sum reaches: nothing is cut short); the kernel's sums are
    # reassociated, a relative O(d² eps) at most
    rng = np.random.default_rng(d)
    H, H_anchor = _symmetric(d, rng), _symmetric(d, rng)
    F, F_anchor = rng.normal(size=(2, d)), rng.normal(size=(2, d))
    expected = (np.linalg.norm(H - H_anchor) + np.linalg.norm(F - F_anchor)
                * (np.linalg.norm(F) + np.linalg.norm(F_anchor)))
    got = _dense_drift(_upper_with_nan_below(H), F, _upper_with_nan_below(H_anchor), F_anchor,
                       1e300)
    assert got == pytest.approx(expected, rel=4 * d * d * EPS)


def _twins(d, n, seed):
    """The regression model and the same numbers in the family whose ``hessian_parts``
    writes NaN below the diagonal."""
    loss = QuadraticRegression.random(d, n, seed=seed)
    twin = Loss(user_families.UpperOnlyRegression(loss.z0, loss.J, loss.Q), d)
    return loss, twin


def _same(a, b):
    for name in ("loss", "sharpness", "eig_residual", "grad_norm"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.status == b.status


@pytest.mark.parametrize("d, top_k, eigensolver", [
    (12, 1, "auto"),  # Lanczos on the dense parts, with the anchor's drift bound
    (12, 2, "auto"),  # eigh of the dense Hessian
    (12, 1, "eigh"),
    (2, 1, "auto"),  # the 2 × 2 closed form
])
def test_gd_never_reads_below_the_diagonal(d, top_k, eigensolver):
    # the same operations on the same upper triangles: the same bits; a NaN read from below
    # the diagonal would end the twin's run NONFINITE
    loss, twin = _twins(d, 4, seed=d)
    theta0 = np.random.default_rng(1).normal(size=d) * 0.1
    eta = 0.5 / float(np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    runs = [run_gd(f, theta0, eta, 60, top_k=top_k, eigensolver=eigensolver)
            for f in (loss, twin)]
    assert runs[0].status.name == "OK"
    _same(*runs)


def test_the_adaptive_and_stochastic_engines_never_read_below_the_diagonal():
    loss, twin = _twins(12, 4, seed=3)
    theta0 = np.random.default_rng(2).normal(size=12) * 0.3
    adam = [run_adaptive(f, theta0, 0.01, 40, method="adam") for f in (loss, twin)]
    assert adam[0].status.name == "OK"
    _same(*adam)
    np.testing.assert_array_equal(adam[0].preconditioned_sharpness,
                                  adam[1].preconditioned_sharpness)
    sgd = [run_sgd(f, theta0, 0.05, 40, batch_size=2) for f in (loss, twin)]
    assert sgd[0].status.name == "OK"
    _same(*sgd)


def test_the_projection_never_reads_below_the_diagonal():
    # compare from above 2/η: GD crosses at once and θ† runs on the dense measurement of the
    # tracked eigenpair (d > SMALL_DIM, so Lanczos on the dense parts rather than eigh)
    loss, twin = _twins(40, 3, seed=4)
    theta0 = np.random.default_rng(3).normal(size=40) * 0.3
    eta = 2.2 / float(np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    a, b = (compare(f, theta0, eta, 4, warn=False) for f in (loss, twin))
    assert np.isfinite(a.dagger_sharpness).any()
    for name in ("gd_sharpness", "gd_lambda2", "dagger_sharpness", "dist_dagger", "cf_loss"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
