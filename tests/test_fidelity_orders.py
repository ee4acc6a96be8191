"""Stated limits tested at their rate, and the 1-D potential's 2-cycles (docs/theory.md §1, §5).

Orders are slopes of log(error) against log(η) fitted by least squares over ≥ 3 step sizes.
(GD → gradient flow at order 1 below the threshold is in tests/test_modified_flow.py.)
"""

import numpy as np
import pytest

from stabsim.flows import small_orbit_period, solve_reduced_ode
from stabsim.losses import SelfRegulatingPotential
from stabsim.maps import run_gd, run_reduced

PITCHFORK_ETA = 3.0 * np.sqrt(3.0) / 2.0  # η f''(x*) = 0: x* = √2


def test_reduced_map_tends_to_its_ode_limit_at_first_order():
    alpha = beta = 1.0
    x0, y0 = 1.0, -0.5
    etas = np.array([0.01, 0.005, 0.0025])
    errors = []
    for eta in etas:
        # a fixed horizon in continuous time s = ηt: two small-orbit periods
        steps = int(round(2 * small_orbit_period(eta, alpha)))
        mapped = run_reduced(x0, y0, eta, alpha, beta, steps)
        ode = solve_reduced_ode(x0, y0, eta, alpha, beta, steps, stride=1.0)
        assert mapped.success and ode.success
        # the map's x alternates in sign; the ODE is for X = x², which does not
        errors.append(np.max(np.hypot(mapped.x ** 2 - ode.trajectory[:, 0],
                                      mapped.y - ode.trajectory[:, 1])))
    slope = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    # The map is the Euler-type step of the ODE with an O(η) local correction (the map
    # is not conservative: H drifts O(η) per cycle, docs/theory.md §1), so the error over a fixed
    # s-horizon is O(η). The next term is a further factor O(η × orbit size) ≈ 0.1 at the
    # largest η (the error there is ≈ 0.27 on an orbit of size ≈ 2): margin 0.2. Measured
    # 1.06.
    assert abs(slope - 1.0) < 0.2, (slope, errors)


def _settle(eta, x0, steps=20000):
    loss = SelfRegulatingPotential()
    run = run_gd(loss, [x0], eta, steps, record_trajectory=True, find_crossing=False)
    assert run.success, run.message
    return run.trajectory[-2:, 0]


def _fprime(x):
    """f'(x) = x(2 + x²)/(1 + x²)^{3/2} for f(x) = x²/sqrt(1 + x²)."""
    return x * (2.0 + x * x) / (1.0 + x * x) ** 1.5


def _step(x, eta):
    """One GD step x − η f'(x)."""
    return x - eta * _fprime(x)


def test_period_doubling_of_the_minimiser_at_eta_one():
    # At η = 1 the fixed point 0 has multiplier 1 − η f''(0) = −1 and a 2-cycle ±x* is born:
    # f'(x)/x = 2 − 2x² + O(x⁴) = 2/η gives x*² = (η − 1) + O((η − 1)²) (a flip bifurcation's
    # square-root law)
    loss = SelfRegulatingPotential()
    for gap in (1e-2, 1e-3, 1e-4):
        ratio = loss.orbit_amplitude(1.0 + gap) ** 2 / gap
        assert abs(ratio - 1.0) < 3 * gap  # the O(η − 1) correction, with room
    # and GD from near 0 settles on it
    eta = 1.05
    a, b = _settle(eta, 0.01)
    np.testing.assert_allclose(np.abs([a, b]), loss.orbit_amplitude(eta), rtol=1e-10)
    assert a * b < 0


@pytest.mark.parametrize("eta", [2.0, 2.5])
def test_symmetric_two_cycle_attracts_below_the_pitchfork(eta):
    loss = SelfRegulatingPotential()
    x_star = loss.orbit_amplitude(eta)
    assert loss.orbit_is_attracting(eta)
    a, b = _settle(eta, 0.3 * x_star)
    # multiplier (1 − ηf''(x*))² < 1: GD converges onto ±x* up to round-off
    np.testing.assert_allclose([a, -b] if a > 0 else [-a, b], x_star, rtol=1e-10)


@pytest.mark.parametrize("eta", [2.7, 3.0, 3.3])
def test_past_the_pitchfork_gd_settles_on_an_asymmetric_two_cycle(eta):
    """Past η = 3√3/2, f''(x*) < 0 and the symmetric orbit's multiplier (1 − ηf''(x*))²
    exceeds 1 through +1 (not −1): a pitchfork of the 2-cycle, not a period doubling. GD
    leaves ±x* for a 2-cycle (a, −b) with a ≠ b — still period 2."""
    loss = SelfRegulatingPotential()
    x_star = loss.orbit_amplitude(eta)
    assert not loss.orbit_is_attracting(eta) and loss.curvature(x_star) < 0
    first, second = _settle(eta, x_star * (1 + 1e-6))
    a, b = abs(first), abs(second)
    assert first * second < 0
    # a period-2 orbit: two more steps return to the same point (round-off of the step)
    assert _step(_step(first, eta), eta) == pytest.approx(first, rel=1e-12)
    assert abs(a - b) > 0.1 * x_star  # far from symmetric (measured 0.3–1.5 x*)
    # On a 2-cycle a → −b → a: η f'(a) = η f'(b) = a + b, so the effective curvatures
    # e = ηf'(x)/x satisfy (e_a − 1)(e_b − 1) = 1 (the harmonic-mean identity of docs/theory.md §5)
    assert eta * _fprime(a) == pytest.approx(a + b, rel=1e-12)
    assert eta * _fprime(b) == pytest.approx(a + b, rel=1e-12)
    e_a, e_b = eta * _fprime(a) / a, eta * _fprime(b) / b
    assert (e_a - 1.0) * (e_b - 1.0) == pytest.approx(1.0, rel=1e-12)
    # the new orbit is stable: its multiplier (1 − ηf''(a))(1 − ηf''(b)) lies in (−1, 1)
    multiplier = (1 - eta * loss.curvature(a)) * (1 - eta * loss.curvature(b))
    assert abs(multiplier) < 1


def test_the_symmetric_orbit_loses_stability_at_three_root_three_over_two():
    # x*(3√3/2) = √2, where f'' = 0: the multiplier (1 − ηf''(x*))² passes through +1
    loss = SelfRegulatingPotential()
    assert loss.orbit_amplitude(PITCHFORK_ETA) == pytest.approx(np.sqrt(2.0), rel=1e-12)
    assert loss.orbit_is_attracting(PITCHFORK_ETA - 1e-6)
    assert not loss.orbit_is_attracting(PITCHFORK_ETA + 1e-6)
