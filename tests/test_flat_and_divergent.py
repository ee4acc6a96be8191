"""Flows that diverge or turn non-finite part-way, and ∇S = 0 where S ≥ 2/η.

Both used to raise (``ValueError: theta contains NaN or inf``, ``ZeroDivisionError``,
``LinAlgError``); they now end with a status, a message and the time it happened.
"""

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.comparison import compare
from stabsim.flows import central_flow, gradient_flow, solve_flow
from stabsim.losses import Quadratic
from stabsim.maps.constrained import constrained_trajectory
from stabsim.maps.projection import proj_M

UNSTABLE = Quadratic([-1.0])  # L = −θ²/2: gradient flow θ(t) = θ0 e^{ηt}
FLAT = "does not change along any direction"


@pytest.mark.parametrize("flow", [gradient_flow, central_flow])
def test_divergence_is_reported_at_the_crossing_time(flow):
    # θ(t) = e^t (η = 1) reaches divergence_norm = 1e8 at t = ln 1e8. The integrator's
    # relative error in θ (rtol = 1e-10 per step, a few hundred steps) is a time error of the
    # same size since dθ/θ = dt: 1e-8 is a hundred times that.
    result = flow(UNSTABLE, [1.0], 1.0, 1e4, stride=1.0)
    assert result.status is Status.DIVERGED
    assert "divergence_norm" in result.message
    assert result.stop_step == pytest.approx(np.log(1e8), abs=1e-8)
    # the saved states are the whole steps before the crossing, on the exact solution
    assert result.step[-1] == 18.0
    np.testing.assert_allclose(result.trajectory[:, 0], np.exp(result.step), rtol=1e-8)


def test_overflow_is_nonfinite_with_its_time():
    # without a divergence threshold θ = e^t runs into the float range: the state cannot be
    # finite past t = ln(DBL_MAX) ≈ 709.78. DOP853's dense-output table has coefficients up
    # to 528 in magnitude, summed over 12 stages, so its own arithmetic overflows once
    # |θ| > DBL_MAX/(12·528): the run must get at least to ln(DBL_MAX) − ln(12·528).
    result = gradient_flow(UNSTABLE, [1.0], 1.0, 1e4, divergence_norm=np.inf)
    top = np.log(np.finfo(float).max)
    assert result.status is Status.NONFINITE
    assert top - np.log(12 * 528) <= result.stop_step <= top
    assert np.all(np.isfinite(result.trajectory))
    assert result.step[-1] == result.stop_step


def test_a_right_hand_side_that_turns_nan_stops_where_it_does():
    # y' = 1 from 0 is integrated exactly by any Runge–Kutta method; the right-hand side is
    # NaN for y > 2, i.e. t > 2. Steps that cross 2 are rejected and shrunk until the step
    # the integrator would need is below 10 ulps of t (4.4e-15 at t = 2); each rejection
    # divides the step by at most 5, so the stop lies within a few hundred ulps of 2.
    def rhs(t, y):
        with np.errstate(invalid="ignore"):
            return 1.0 + 0.0 * np.sqrt(2.0 - y)

    result = solve_flow(rhs, [0.0], 5.0, t_eval=np.linspace(0.0, 5.0, 11))
    assert result.status is Status.NONFINITE
    assert 0.0 <= 2.0 - result.stop_step <= 1e-12
    np.testing.assert_array_equal(result.step, [0.0, 0.5, 1.0, 1.5])
    assert "t = 2" in result.message


def test_a_terminal_event_gives_the_state_where_it_fired():
    # dy/dt = y from y = 1 is e^t; the event y = 2 fires at t = ln 2, located on the
    # integrator's interpolant (error of the integration's order, rtol 1e-10)
    event = lambda t, y: y[0] - 2.0  # noqa: E731
    event.terminal = True
    result = solve_flow(lambda t, y: y, [1.0], 5.0, t_eval=np.linspace(0.0, 5.0, 11),
                        events=[event])
    assert result.status is Status.OK
    assert result.stop_step == pytest.approx(np.log(2.0), rel=1e-9)
    assert result.stop_state == pytest.approx([2.0], rel=1e-9)
    np.testing.assert_array_equal(result.step, [0.0, 0.5])  # the save times before it
    # a run to its horizon ended at no event
    assert solve_flow(lambda t, y: -y, [1.0], 1.0).stop_state is None


def test_a_terminal_event_before_the_first_save_time():
    # e^t reaches 2 at t = ln 2 < 1, the first save time: no state saved, and none needed
    event = lambda t, y: y[0] - 2.0  # noqa: E731
    event.terminal = True
    result = solve_flow(lambda t, y: y, [1.0], 5.0, t_eval=[1.0, 2.0], events=[event])
    assert result.status is Status.OK
    assert result.trajectory.shape == (0, 1) and result.step.shape == (0,)
    assert result.stop_step == pytest.approx(np.log(2.0), rel=1e-9)  # as in the test above


def test_a_vector_field_that_switches_ends_at_the_budget():
    # dy/dt = −sign(y) from y = 1 reaches 0 at t = 1 and then slides along y = 0: an explicit
    # integrator's steps shrink without end there (27 million evaluations reach t = 1 + 1e-5).
    # With a budget the run stops at t = 1 (the last step accepted, within the sliding
    # layer: |y| ≲ atol) and keeps the states saved before.
    result = solve_flow(lambda t, y: -np.sign(y), [1.0], 1.5,
                        t_eval=np.linspace(0.0, 1.5, 7), max_rhs_evals=20_000)
    assert result.status is Status.MAX_STEPS and result.knob == "max_rhs_evals"
    assert "`max_rhs_evals`" in result.message
    assert 1.0 <= result.stop_step < 1.0 + 1e-6
    np.testing.assert_array_equal(result.step, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(result.trajectory[:, 0], [1.0, 0.75, 0.5, 0.25, 0.0],
                               atol=1e-9)  # y = 1 − t, exact to the integrator's tolerance
    # evaluations past the budget are refused, not made (solve_flow): exactly the budget
    assert result.counters["rhs_evals"] == 20_000


def test_a_right_hand_side_that_is_nan_at_the_start():
    result = solve_flow(lambda t, y: np.full_like(y, np.nan), [1.0], 1.0)
    assert result.status is Status.NONFINITE and result.stop_step == 0.0
    assert result.trajectory.shape == (0, 1)


def test_divergence_norm_is_validated():
    with pytest.raises(ValueError, match="divergence_norm"):
        gradient_flow(UNSTABLE, [1.0], 1.0, 1.0, divergence_norm=0.0)
    with pytest.raises(ValueError, match="divergence_norm"):
        central_flow(UNSTABLE, [1.0], 1.0, 1.0, divergence_norm=np.nan)
    with pytest.raises(ValueError, match="divergence_norm"):
        gradient_flow(UNSTABLE, [10.0], 1.0, 1.0, divergence_norm=5.0)


# A quadratic has ∇S = ∇³L[u, u] = 0 everywhere; with η = 1 its sharpness 3 is above 2/η.
ABOVE = Quadratic([3.0, 1.0])
START = np.array([1.0, 1.0])


@pytest.mark.parametrize("max_critical", [1, 2])
def test_central_flow_with_flat_sharpness(max_critical):
    result = central_flow(ABOVE, START, 1.0, 10.0, max_critical=max_critical)
    assert result.status is Status.FLAT_SHARPNESS
    assert FLAT in result.message and "t = 0" in result.message
    assert result.stop_step == 0.0
    np.testing.assert_array_equal(result.trajectory, START[None, :])


def test_central_flow_below_the_threshold_is_untouched():
    # S = 1.5 < 2/η: gradient flow, θ_i(t) = e^{−a_i t} exactly
    result = central_flow(Quadratic([1.5, 1.0]), START, 1.0, 3.0)
    assert result.status is Status.OK
    np.testing.assert_allclose(result.theta, np.exp([-4.5, -3.0]), rtol=1e-8)


@pytest.mark.parametrize("method", ["euclidean", "paper"])
def test_projection_with_flat_sharpness(method):
    result = proj_M(ABOVE, START, 1.0, projection=method)
    assert result.status is Status.FLAT_SHARPNESS and FLAT in result.message


def test_projection_below_the_threshold_on_a_quadratic():
    # S ≤ 2/η holds everywhere and u = e_1, so M = {u·∇L = 1.5 θ_1 = 0}: the nearest point
    # of M is (0, θ_2), reached by one exact SQP step (the constraint is linear)
    result = proj_M(Quadratic([1.5, 1.0]), START, 1.0)
    assert result.status is Status.OK
    np.testing.assert_allclose(result.theta, [0.0, 1.0], atol=1e-15)


def test_constrained_trajectory_with_flat_sharpness():
    result = constrained_trajectory(ABOVE, START, 1.0, 5)
    assert result.status is Status.FLAT_SHARPNESS and FLAT in result.message
    # the start itself fails (∇S⊥ = 0 at θ†_0): no row is kept, and no final state
    assert result.trajectory.shape == (0, 2) and result.theta is None


def test_compare_with_flat_sharpness():
    result = compare(ABOVE, START, 1.0, 10)
    for name in ("central_flow", "constrained", "reduced_map"):
        assert result.statuses[name] is Status.FLAT_SHARPNESS
    assert FLAT in result.message
    assert result.warnings == []  # α* is undefined, which the status says; no α ≤ 0 warning
