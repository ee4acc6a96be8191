"""The central flow: gradient flow below 2/η, held on S = 2/η after, σ² ≥ 0, L decreasing."""

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.flows.central import GAP_CLOSED, _integrate, central_flow
from stabsim.flows.gradient import gradient_flow
from stabsim.losses import Quadratic, QuadraticRegression

ETA = 0.01
T_END = 800.0  # steps: sharpening reaches 2/η near t ≈ 200 (flow time ηt ≈ 2), then EoS


@pytest.fixture(scope="module")
def flow():
    loss = QuadraticRegression.two_scale(ETA)
    return loss, central_flow(loss, np.zeros(loss.dim), ETA, T_END)


def test_gradient_flow_until_the_threshold(flow):
    loss, cf = flow
    assert cf.success, cf.message
    assert len(cf.entry_steps) >= 1
    t_in = cf.entry_steps[0]
    before = cf.step < t_in
    gf = gradient_flow(loss, np.zeros(loss.dim), ETA, T_END, stride=1.0)
    np.testing.assert_array_equal(gf.step, cf.step)  # both record every step
    # both integrate the same ODE with rtol 1e-10: they agree to ~1e-9 relative
    np.testing.assert_allclose(cf.trajectory[before], gf.trajectory[before], rtol=0, atol=1e-8)
    assert np.all(cf.sharpness[before] < 2.0 / ETA)


def test_boundary_branch_holds_the_sharpness_at_two_over_eta(flow):
    _, cf = flow
    on = cf.at_eos
    assert on.sum() > 100
    # dS/dt = 0 exactly on the branch; drift only from the integrator (rtol 1e-10 over
    # ~600 steps of time, each changing S by O(η α) ~ 1e-1): well below 1e-7 relative
    np.testing.assert_allclose(cf.sharpness[on] * ETA / 2.0, 1.0, atol=1e-7)
    assert np.all(cf.sigma2[on] > 0.0) and np.all(cf.sigma2[~on] == 0.0)


def test_loss_decreases_monotonically(flow):
    _, cf = flow
    # L decreases along both branches (dL/dt = −η|P∇L|² ≤ 0); allow round-off of L ~ 1e-15
    assert np.all(np.diff(cf.loss) <= 1e-13)
    # (The predicted averages L + σ²/η and |∇L|² + 4σ²/η², as ``predicted_loss`` and
    # ``predicted_grad_norm2`` give them, are tested against GD's time averages, at the
    # rate the theory claims, in tests/test_compare.py::
    # test_errors_shrink_with_eta_at_the_theoretical_rate.)


def test_a_start_above_the_threshold_that_gradient_flow_lowers_is_gradient_flow():
    # S(θ₀) = 1.1 · 2/η with ⟨−∇L, ∇S⟩ < 0: holding S would take σ² < 0, so the flow is
    # gradient flow, S falls below 2/η, and the boundary branch begins only when S rises
    # back to 2/η (then held there). Up to t = 5 only: near t = 5.5 λ2 reaches 2/η too.
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta = 2.2 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    cf = central_flow(loss, theta0, eta, 5.0, stride=0.25)
    assert cf.status is Status.OK and not cf.at_eos[0] and len(cf.entry_steps) == 1
    before = cf.step < cf.entry_steps[0]
    assert cf.sharpness[before].min() * eta / 2.0 < 0.8  # S fell well below 2/η
    gf = gradient_flow(loss, theta0, eta, 5.0, stride=0.25)
    # the same ODE with rtol 1e-10 until the entry: they agree to ~1e-9 relative
    np.testing.assert_allclose(cf.trajectory[before], gf.trajectory[before], rtol=0, atol=1e-8)
    # held at 2/η once there: only the integrator's drift (rtol 1e-10 over 3 steps)
    np.testing.assert_allclose(cf.sharpness[cf.at_eos] * eta / 2.0, 1.0, atol=1e-7)
    assert cf.at_eos[-1]


@pytest.fixture(scope="module")
def gap():
    # the start of the test above, followed on: λ2 rises to 2/η = λ1 near t = 5.5
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta = 2.2 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    one = central_flow(loss, theta0, eta, 7.0, stride=0.5)
    two = central_flow(loss, theta0, eta, 6.5, stride=0.5, max_critical=2)
    return loss, eta, one, two


@pytest.mark.slow
def test_the_one_eigenvalue_flow_ends_where_lambda2_reaches_the_threshold(gap):
    # Where λ2 meets λ1 = 2/η the top eigenvector is no longer defined: the run ends there
    # (EIGENGAP_CLOSED) instead of chattering at the crossing. Independently, the k = 2
    # flow (the SDCP over the top eigenspace, a different program) is this flow while it
    # holds one eigenvalue and takes its second at the same event: the two times agree to
    # the event location's accuracy on interpolants of rtol 1e-10 (a state error ~1e-10|w|
    # moves the root by ~1e-9 here).
    loss, eta, one, two = gap
    assert one.status is Status.EIGENGAP_CLOSED
    assert "λ2 reached the stability threshold" in one.message
    assert 5.0 < one.stop_step < 6.0 and one.step[-1] < one.stop_step
    # on the boundary branch the kept states are inside the theory (λ2 < λ1 = 2/η); the
    # start has λ2 above 2/η too, which the gradient-flow branch lowers
    lambda2 = [np.linalg.eigvalsh(loss.hessian(w))[-2] for w in one.trajectory[one.at_eos]]
    assert len(lambda2) > 5 and np.all(np.array(lambda2) < 2.0 / eta)
    assert two.status is Status.OK and two.n_critical[-1] == 2
    assert two.entry_steps[-1] == pytest.approx(one.stop_step, abs=1e-7)


@pytest.mark.slow
def test_a_start_holding_k_with_lambda_k_plus_1_above_the_threshold_ends_at_once(gap):
    # At the k = 2 flow's last state λ1 = λ2 = 2/η; with η 1% larger both sit above the
    # threshold and the loss sharpens there, so each flow starts by holding what it may:
    # with at most one, λ2 ≥ 2/η beside it leaves the flow undefined from t = 0; with two
    # it goes on.
    loss, eta, _, two = gap
    w = two.trajectory[-1]
    assert np.all(np.linalg.eigvalsh(loss.hessian(w))[-2:] * 1.01 * eta / 2.0 > 1.0)
    one = central_flow(loss, w, 1.01 * eta, 1.0, stride=0.5)
    assert one.status is Status.EIGENGAP_CLOSED and one.stop_step == 0.0
    assert "λ2 is at or above the stability threshold at t = 0" in one.message
    assert one.step.tolist() == [0.0] and one.at_eos[0]
    both = central_flow(loss, w, 1.01 * eta, 1.0, stride=0.5, max_critical=2)
    assert both.status is Status.OK and both.n_critical.tolist() == [2, 2, 2]


class _Crossing:
    """A one-branch field for the branch loop alone: dy/dt = 1 from y = 0, and the event
    y − 1 rising through 0 ending a flow that holds k (GAP_CLOSED), its held force set by
    ``push``."""

    def __init__(self, push):
        self.push = push

    def flat(self, y, branch):
        return False

    def active(self, y, branch):
        return self.push

    def plan(self, branch):
        return (lambda t, y: np.ones(1)), [(lambda t, y: y[0] - 1.0, 1.0, GAP_CLOSED)]


@pytest.mark.parametrize("push", [True, False])
def test_lambda_k_plus_1_crossing_ends_the_run_only_where_the_held_set_pushes(push):
    times = np.array([0.0, 0.5, 1.5, 2.0])
    t, states, _, status, message, *_, switches, entries, exits, t_stop, _ = _integrate(
        _Crossing(push), 1, np.zeros(1), 2.0, times,
        {"rtol": 1e-10, "atol": 1e-12, "max_rhs_evals": 10_000}, np.inf, 10)
    if push:  # ends at y = 1 (t = 1, to the event's root-finding accuracy)
        assert status is Status.EIGENGAP_CLOSED and "λ2 reached" in message
        assert t_stop == pytest.approx(1.0, abs=1e-9) and t.tolist() == [0.0, 0.5]
    else:  # at rest: the same branch goes on to the horizon, no entry or exit recorded
        assert status is Status.OK and t_stop == 2.0 and switches == 1
        assert t.tolist() == times.tolist() and entries == [0.0] and exits == []
        np.testing.assert_allclose(states[:, 0], times, atol=1e-9)


def test_a_budget_of_right_hand_side_evaluations_ends_the_run(flow):
    # the module's flow (9,507 evaluations to t = 800) with a budget of 2,000: it stops
    # part-way, names the budget, and keeps the states it reached, equal to the full run's
    loss, full = flow
    cut = central_flow(loss, np.zeros(loss.dim), ETA, T_END, max_rhs_evals=2000)
    assert cut.status is Status.MAX_STEPS and cut.knob == "max_rhs_evals"
    assert "`max_rhs_evals`" in cut.message and 0.0 < cut.stop_step < T_END
    # evaluations past the budget are refused, not made (solve_flow): exactly the budget
    assert cut.counters["rhs_evals"] == 2000
    n = cut.step.shape[0]
    np.testing.assert_array_equal(cut.step, full.step[:n])
    # the same integration up to there, step for step: identical states
    np.testing.assert_array_equal(cut.trajectory, full.trajectory[:n])
    with pytest.raises(ValueError, match="max_rhs_evals"):
        central_flow(loss, np.zeros(loss.dim), ETA, T_END, max_rhs_evals=0)


def test_below_threshold_it_is_gradient_flow():
    # On a quadratic with S < 2/η the sharpness never reaches the bound: no switch.
    loss = Quadratic([1.0, 0.5])
    cf = central_flow(loss, [1.0, -1.0], 1.0, 10.0)
    assert cf.status is Status.OK and cf.entry_steps == [] and not cf.at_eos.any()
    np.testing.assert_allclose(cf.trajectory[-1], [np.exp(-10.0), -np.exp(-5.0)], rtol=1e-8)


@pytest.mark.parametrize("kwargs", [{"eta": 0.0}, {"steps": -1.0}, {"stride": 0.0},
                                    {"stride": -1.0}])
def test_bad_arguments_raise(kwargs):
    args = {"eta": 1.0, "steps": 10.0} | kwargs
    with pytest.raises(ValueError):
        central_flow(Quadratic([1.0, 0.5]), [1.0, -1.0], **args)
