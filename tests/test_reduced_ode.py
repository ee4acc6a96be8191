"""The ODE limit of the reduced map (docs/theory.md §1)."""

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
    ups = t[1:][(y[:-1] <= 0) & (y[1:] > 0)]  # y upward zero crossings, one per orbit
    # amplitude 1e-3: nonlinear period shift O(1e-6); grid resolution 1e-4 of the period
    np.testing.assert_allclose(np.diff(ups), period, rtol=1e-3)


@pytest.mark.parametrize("kwargs, name", [
    (dict(x0=0.0), "x0"), (dict(eta=0.0), "eta"), (dict(alpha=-1.0), "alpha"),
    (dict(beta=np.nan), "beta"), (dict(y0=np.inf), "y0"), (dict(steps=0.0), "steps"),
])
def test_bad_input(kwargs, name):
    args = dict(x0=0.5, y0=0.0, eta=0.1, alpha=1.0, beta=2.0, steps=10.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        solve_reduced_ode(**args)
