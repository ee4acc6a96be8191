"""The H + FᵀF product kernels against NumPy's dense products."""

import math
from fractions import Fraction

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


@pytest.mark.parametrize("size", [0.0, 1e-300, 1e-160, 1e-150, 1.0, 1e150, 1e160, 1e300])
@pytest.mark.parametrize("d", [1, 7, 100])
def test_the_norm_of_a_vector_at_every_scale(size, d):
    # against the scaled norm s·|v/s| in NumPy: a sum of d squares in another order, a square
    # root, a scaling: a few eps·d. Squares of entries past 1e154 overflow and those below
    # 1e-154 underflow (subnormal entries: the next test)
    v = size * np.random.default_rng(d).uniform(0.5, 1.0, d)
    expected = np.max(v) * np.linalg.norm(v / np.max(v)) if size else 0.0
    rtol = 4 * d * np.finfo(float).eps
    assert norm_of(v) == pytest.approx(expected, rel=rtol, abs=0.0)


@pytest.mark.parametrize("d", [1, 7, 100])
@pytest.mark.parametrize("kind", ["smallest", "mixed"])
def test_the_norm_of_a_subnormal_vector_against_exact_integers(d, kind):
    # Subnormal entries are integer multiples c_i of m = 5e-324 = 2⁻¹⁰⁷⁴, so |v| = m √Σc_i²
    # exactly, computed here with integers (math.isqrt), independently of the code. The
    # result is a double, and below 2⁻¹⁰²² the doubles are the multiples of m: its error is at
    # least the distance to the nearest multiple. The code's fallback s·√Σ(v_i/s)² (s the
    # largest |v_i|) makes the relative error of d divisions, d-term sum and square root
    # (≤ (d + 2) ε) and then rounds s·√… to the grid (≤ m/2): |result − m√S| ≤ m/2 +
    # (d + 2) ε m√S, with S = Σc_i². "smallest": every entry m (size 5e-324 × [0.5, 1)
    # rounds up to m), |v| = round(√d) m; "mixed": c_i up to 2⁴⁰ with both signs, where a
    # band of rtol 1e-2 (the old one, against NumPy's s·|v/s|, the fallback's own formula)
    # would admit errors of 10⁴ m. Both v and −v: the old case had positive entries only,
    # and a fallback taking s = max v_i (no abs) passed it; it returns 0 for −v here.
    m = 5e-324
    rng = np.random.default_rng(d)
    if kind == "smallest":
        v = m * rng.uniform(0.5, 1.0, d)
    else:
        v = rng.integers(1, 2**40, d) * rng.choice([-1.0, 1.0], d) * m  # exact: c < 2⁵³
    counts = [int(abs(Fraction(x)) * 2**1074) for x in v]
    assert all(Fraction(c, 2**1074) == abs(Fraction(x)) for c, x in zip(counts, v, strict=True))
    total = sum(c * c for c in counts)
    # |got − √S| ≤ t = ½ + (d + 2) ε √S, checked in exact rationals as (got − t)² ≤ S ≤
    # (got + t)², with √S ≤ isqrt(S) + 1 in t (where t < ½ by more than √S's distance to
    # a half-integer, as for "smallest", this is the nearest multiple of m itself)
    t = Fraction(1, 2) + (d + 2) * Fraction(np.finfo(float).eps) * (math.isqrt(total) + 1)
    for w in (v, -v):
        got = Fraction(norm_of(w)) * 2**1074  # the result in units of m (an integer)
        assert got.denominator == 1
        assert (got - t) ** 2 <= total <= (got + t) ** 2, (got, math.isqrt(total))
        if kind == "smallest":
            assert got == round(math.sqrt(d))  # √d is irrational or an integer: no tie


def test_the_norm_of_a_vector_with_a_non_finite_entry():
    # inf for an infinite entry (a large entry with it: the squares overflow either way), NaN
    # for a NaN one, whatever the other entries
    for big in (1.0, 1e200):
        assert norm_of(np.array([big, np.inf, 2.0])) == np.inf
        assert norm_of(np.array([big, -np.inf])) == np.inf
        assert np.isnan(norm_of(np.array([big, np.nan, np.inf])))
        assert np.isnan(norm_of(np.array([np.nan, big])))
