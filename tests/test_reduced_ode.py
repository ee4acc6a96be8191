"""The ODE limit of the reduced map (docs/theory.md §1)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stabsim._status import Status
from stabsim.flows.reduced_ode import (
    reduced_fixed_point,
    reduced_hamiltonian,
    small_orbit_period,
    solve_reduced_ode,
)


@given(st.floats(0.05, 2.0), st.floats(-1.0, 1.0), st.floats(0.2, 3.0), st.floats(0.2, 3.0))
def test_hamiltonian_is_conserved(x0, y0, alpha, beta):
    eta = 0.1
    r = solve_reduced_ode(x0, y0, eta, alpha, beta, 300.0, rtol=1e-11, atol=1e-12)
    assert r.status == Status.OK
    h = reduced_hamiltonian(np.sqrt(r.trajectory[:, 0]), r.trajectory[:, 1], alpha, beta)
    # solver tolerance: rtol 1e-11 per step on (ln X, y), over a few hundred steps
    assert np.max(np.abs(h - h[0])) <= 1e-7 * (1.0 + abs(h[0]))


def test_fixed_point_is_stationary_and_minimises_h():
    alpha, beta = 1.5, 0.7
    d2, y = reduced_fixed_point(alpha, beta)
    assert d2 == pytest.approx(2 * alpha / beta) and y == 0.0
    r = solve_reduced_ode(np.sqrt(d2), 0.0, 0.05, alpha, beta, 1000.0)
    # the start ln δ² is rounded (a few ε) and the solver runs at rtol 1e-10: the state
    # may wander by solver-tolerance amounts around the centre, never away
    np.testing.assert_allclose(r.trajectory[:, 0], d2, rtol=1e-9)
    np.testing.assert_allclose(r.trajectory[:, 1], 0.0, atol=1e-9)
    grid = np.linspace(0.5, 2.0, 31) * np.sqrt(d2)
    h = reduced_hamiltonian(grid[:, None], np.linspace(-1, 1, 31)[None, :], alpha, beta)
    assert h.min() >= reduced_hamiltonian(np.sqrt(d2), 0.0, alpha, beta)


@pytest.mark.parametrize("eta, alpha", [(0.01, 1.0), (0.1, 0.3)])
def test_small_orbit_period(eta, alpha):
    beta = 2.0
    d = np.sqrt(2 * alpha / beta)
    period = small_orbit_period(eta, alpha)
    r = solve_reduced_ode(1.001 * d, 0.0, eta, alpha, beta, 3 * period,
                          stride=3 * period / 30_000)
    t, y = r.step, r.trajectory[:, 1]
    k = np.flatnonzero((y[:-1] <= 0) & (y[1:] > 0))  # y upward zero crossings, one per orbit
    ups = t[k] - y[k] * (t[k + 1] - t[k]) / (y[k + 1] - y[k])  # linearly interpolated
    # With s = ln(X/δ²): s'' + ω²(eˢ − 1) = 0, ω = η√(2α), i.e. s'' + ω²(s + s²/2 + s³/6) = 0,
    # whose frequency at amplitude a is ω(1 + (3/48 − 5/48)a²) (Landau–Lifshitz §28): the
    # period is P(1 + a²/24), with a = 2 ln 1.001 here (1.7e-7). Left over: the O(a³)
    # difference between the turning point and the first harmonic's amplitude (≤ a³ = 8e-9),
    # the solver's phase error at rtol 1e-10 over three orbits (allowed 100 rtol), and the
    # interpolation: y'' = −η²β y X = 0 at the crossing, so the secant's root is off by
    # ≤ ω²Δt³/6, 7e-12 of P at Δt = P/10⁴. Measured 1.66672e-7 and 1.66764e-7, 1.66893e-7
    # against a²/24 = 1.66500e-7 (off by ≤ 4e-10). A right-hand side scaled by 1.0008
    # (period 8e-4 short) passed the old rtol 1e-3 and fails here.
    a = 2.0 * np.log(1.001)
    shift = np.diff(ups) / period - 1.0 - a**2 / 24.0
    assert np.all(np.abs(shift) <= a**3 + 100 * 1e-10), shift


@pytest.mark.parametrize("kwargs, name", [
    (dict(x0=0.0), "x0"), (dict(eta=0.0), "eta"), (dict(alpha=-1.0), "alpha"),
    (dict(beta=np.nan), "beta"), (dict(y0=np.inf), "y0"), (dict(steps=0.0), "steps"),
])
def test_bad_input(kwargs, name):
    args = dict(x0=0.5, y0=0.0, eta=0.1, alpha=1.0, beta=2.0, steps=10.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        solve_reduced_ode(**args)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("x0", [1e200, -2.0 * np.sqrt(np.finfo(float).max)])
def test_a_start_whose_square_overflows_is_reported_without_warnings(x0):
    # x0² is past the largest float, so the column X = x² cannot hold the start (nor, for
    # x0 = 1e200, can dy/dt = η(α − βx²/2): ηβ/2 = 0.01 makes up for a factor 100 only)
    r = solve_reduced_ode(x0, 0.0, 0.01, 1.0, 2.0, 1000.0)
    assert r.status is Status.NONFINITE and r.stop_step == 0.0
    assert r.step.size == 0 and r.trajectory.shape == (0, 2)
    assert "overflows" in r.message and "t = 0" in r.message


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_hamiltonian_is_infinite_on_the_line_x_0_without_warnings():
    # H = y² + (β/2)x² − α ln x² with ln 0 = −inf
    h = reduced_hamiltonian([0.0, -0.0, 0.0], [0.0, 3.0, -1e100], 1.0, 2.0)
    assert np.array_equal(h, np.full(3, np.inf))


def test_hamiltonian_broadcasts_x_and_y_or_names_them():
    x, y = np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0])
    h = reduced_hamiltonian(x[:, None], y, 1.5, 0.5)
    assert h.shape == (3, 2)
    np.testing.assert_array_equal(h[:, 1], reduced_hamiltonian(x, 0.0, 1.5, 0.5))
    with pytest.raises(ValueError, match=r"^y has shape \(3,\), .* the shape \(2,\) of x$"):
        reduced_hamiltonian([1.0, 2.0], [0.0, 1.0, 2.0], 1.0, 2.0)


def test_the_hamiltonian_beyond_the_range_of_x_squared():
    # H = y² + (β/2)x² − 2α ln|x|: x² underflows to 0 below |x| = 2.2e-162 (H had been +inf)
    # and overflows past 1.3e154 (H had been inf − inf = NaN); the closed form is finite,
    # resp. +inf
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = reduced_hamiltonian(1e-200, 0.5, 1.0, 2.0)
        huge = reduced_hamiltonian(1e200, 0.5, 1.0, 2.0)
    assert tiny == pytest.approx(0.25 - 2.0 * math.log(1e-200), rel=1e-15)
    assert huge == np.inf


def test_an_orbit_whose_x_squared_underflows_keeps_ln_x_squared_and_says_so():
    # y0 = 100 drives ln X down to −1880, where X = e^ℓ is 0 in floating point: H of the
    # column X is +inf, while ℓ (the variable integrated) still conserves H
    eta, alpha, beta = 0.1, 1.0, 1.0
    r = solve_reduced_ode(1.0, 100.0, eta, alpha, beta, 100.0, stride=1.0)
    x2, y, log_x2 = r.trajectory[:, 0], r.trajectory[:, 1], r.log_x2
    assert r.status is Status.OK and log_x2.min() < -1800.0
    tiny = np.finfo(float).tiny
    below, zero = np.count_nonzero(x2 < tiny), np.count_nonzero(x2 == 0.0)
    assert zero > 0
    assert (f"below the smallest normal double (2.2e-308) at {below} of {x2.size} saved times"
            in r.message)
    assert f"({zero} of them 0)" in r.message and "`log_x2`" in r.message
    assert f"x2_below_normal={below}" in repr(r)
    h = y**2 + 0.5 * beta * np.exp(log_x2) - alpha * log_x2  # THEORY.md's H with ℓ = ln x²
    # solver tolerance: DOP853 holds the local error of (ℓ, y) near rtol = 1e-10 of |y| ≤ 100
    # and |ℓ| ≤ 1880, an error in H = 1e4 of at most 2|y|·1e-8 + α·1.9e-7 = 2e-6 a step, over
    # the ~60 steps its 708 evaluations make (12 a step): 1.2e-4 absolute, 1.2e-8 relative
    # (measured 6e-8 absolute)
    np.testing.assert_allclose(h, h[0], rtol=1.2e-8, atol=0)
    normal = x2 >= tiny  # there X = e^ℓ is correctly rounded: ln X = ℓ to a few ulps of ℓ
    np.testing.assert_allclose(np.log(x2[normal]), log_x2[normal], rtol=4 * np.finfo(float).eps,
                               atol=4 * np.finfo(float).eps)
    np.testing.assert_array_equal(r.to_xarray()["log_x2"].values, log_x2)
