"""The H + FᵀF product kernels against NumPy's dense products."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stabsim import _linalg
from stabsim._jit import jit

# the helpers are inline (compiled into their callers): test them compiled, as kernels use them
dot = jit(lambda a, b: _linalg.dot(a, b))
apply_sum = jit(lambda H, factor, v, out: _linalg.apply_sum(H, factor, v, out))
add_gram = jit(lambda out, factor: _linalg.add_gram(out, factor))
norm_of = jit(lambda v: _linalg.norm_of(v, _linalg.dot(v, v)))


@given(st.integers(1, 40), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_products_match_the_dense_sum(d, rows, seed):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(d, d))
    dense += dense.T
    factor = rng.normal(size=(rows, d))
    v = rng.normal(size=d)
    total = dense + factor.T @ factor
    out = np.empty(d)
    # the dense part by its upper triangle: NaN below the diagonal must never be read
    apply_sum(np.where(np.triu(np.ones((d, d), dtype=bool)), dense, np.nan), factor, v, out)
    # sums of d + rows·d products of O(1) terms, in another order than BLAS: round-off
    tol = 1e-13 * (d + rows * d)
    np.testing.assert_allclose(out, total @ v, rtol=0, atol=tol)
    gram = dense.copy()
    add_gram(gram, factor)
    np.testing.assert_allclose(gram, total, rtol=0, atol=tol)
    assert abs(dot(v, v) - v @ v) <= 1e-14 * (v @ v)


def test_a_nonfinite_entry_reaches_the_product_where_the_vector_is_zero():
    for bad in (np.nan, np.inf):
        dense = np.eye(4)
        dense[1, 2] = bad  # H_21 = H_12 (the upper triangle gives both) meets v[1] = 0
        factor = np.zeros((1, 4))
        v = np.array([1.0, 0.0, 1.0, 1.0])
        out = np.empty(4)
        apply_sum(dense, factor, v, out)
        assert not np.isfinite(out[2])
        factor[0, 1] = bad
        apply_sum(np.eye(4), factor, v, out)
        assert not np.all(np.isfinite(out))


def test_the_norm_without_overflow():
    # stabsim._norm.norm, shared by the flows' divergence check and the projection: NumPy's
    # norm to round-off where it is finite, and finite (with no warning) past 1e154
    import warnings

    from stabsim._norm import norm

    rng = np.random.default_rng(0)
    v = rng.normal(size=50)
    assert abs(norm(v) - np.linalg.norm(v)) <= 4 * np.finfo(float).eps * np.linalg.norm(v)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert norm(np.array([1e200, 1e200])) == pytest.approx(np.sqrt(2) * 1e200, rel=1e-15)
    assert norm(np.zeros(3)) == 0.0 and norm(np.empty(0)) == 0.0
    assert np.isnan(norm(np.array([1.0, np.nan]))) and norm(np.array([np.inf, 1.0])) == np.inf


@pytest.mark.parametrize("size", [0.0, 5e-324, 1e-300, 1e-160, 1e-150, 1.0, 1e150, 1e160, 1e300])
@pytest.mark.parametrize("d", [1, 7, 100])
def test_the_norm_of_a_vector_at_every_scale(size, d):
    # against the scaled norm s·|v/s| in NumPy: a sum of d squares in another order, a square
    # root, a scaling: a few eps·d. Squares of entries past 1e154 overflow and those below
    # 1e-154 underflow; a subnormal largest entry has too few digits for any norm but its own
    v = size * np.random.default_rng(d).uniform(0.5, 1.0, d)
    expected = np.max(v) * np.linalg.norm(v / np.max(v)) if size else 0.0
    rtol = 1e-2 if size == 5e-324 else 4 * d * np.finfo(float).eps
    assert norm_of(v) == pytest.approx(expected, rel=rtol, abs=0.0)


def test_the_norm_of_a_vector_with_a_non_finite_entry():
    # inf for an infinite entry (a large entry with it: the squares overflow either way), NaN
    # for a NaN one, whatever the other entries
    for big in (1.0, 1e200):
        assert norm_of(np.array([big, np.inf, 2.0])) == np.inf
        assert norm_of(np.array([big, -np.inf])) == np.inf
        assert np.isnan(norm_of(np.array([big, np.nan, np.inf])))
        assert np.isnan(norm_of(np.array([np.nan, big])))
