"""Budgets of right-hand-side evaluations (``max_rhs_evals``) of the flows.

The rule (:func:`stabsim.flows.solve_flow`): once a run has made ``max_rhs_evals``
evaluations, every further one is refused without calling the right-hand side, so the
integrator's step that meets the refusal is rejected and no step spends anything past the
budget. ``counters["rhs_evals"]`` counts the evaluations made: never more than the budget,
and exactly the budget when it ended the run (status MAX_STEPS). A run made of branches
(the central flows) has one budget, each branch charged what the earlier ones spent. The
message names the budget, quotes the value the caller set, and the time the run ended.
"""

import inspect
import re

import numpy as np
import pytest
from deadline import within

from stabsim import Status
from stabsim.flows import (
    central_flow,
    gradient_flow,
    manifold_flow,
    modified_flow,
    rmsprop_flow,
    scalar_rmsprop_flow,
    solve_flow,
)
from stabsim.flows._solve import MAX_RHS_EVALS
from stabsim.flows.central import _integrate
from stabsim.losses import ManifoldFamily, Quadratic, QuadraticRegression

TWO_SCALE = QuadraticRegression.two_scale(0.01)
START = np.zeros(TWO_SCALE.dim)
MANIFOLD = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])


def quoted(result):
    """The budget and the time the message of a run ended by its budget quotes."""
    match = re.search(r"max_rhs_evals = (\d+) times by t = (\S+) ", result.message)
    assert match, result.message
    return int(match[1]), float(match[2])


def ended_by_budget(result, budget):
    """Assert the rule of the module docstring for a run that ``budget`` ended."""
    assert result.status is Status.MAX_STEPS and result.knob == "max_rhs_evals", result.message
    assert "`max_rhs_evals`" in result.message
    assert quoted(result) == (budget, pytest.approx(result.stop_step, rel=1e-9, abs=1e-12))
    assert result.counters["rhs_evals"] == budget


def test_the_counter_is_the_evaluations_made():
    # dy/dt = −sign(y) slides along y = 0 from t = 1 on, where an explicit integrator's
    # steps shrink without end: the budget ends it there (y = 1 − t before is exact for the
    # integrator, and cheap). The right-hand side counts its calls.
    calls = []

    def rhs(t, y):
        calls.append(t)
        return -np.sign(y)

    result = solve_flow(rhs, [1.0], 1.5, t_eval=np.linspace(0.0, 1.5, 7), max_rhs_evals=500)
    ended_by_budget(result, 500)
    assert len(calls) == 500
    assert result.stop_step == pytest.approx(1.0, abs=1e-6)


def test_a_budget_spent_by_the_start_ends_the_run_there():
    # the start's evaluation is the whole budget: the integrator's own first one (at the
    # start again) would be refused, which made its first step size NaN, and a NaN step
    # never falls below the smallest one: the run never ended
    with within(20):
        result = solve_flow(lambda t, y: -y, [1.0], 1.0, max_rhs_evals=1)
    ended_by_budget(result, 1)
    assert result.stop_step == 0.0 and result.step.size == 0


def test_a_budget_spent_at_the_start_refuses_at_once():
    # a start where the earlier stretches of a run spent the whole budget: nothing is
    # evaluated, and the run ends at the start
    calls = []
    result = solve_flow(lambda t, y: calls.append(t) or -y, [1.0], 3.0, t_start=2.0,
                        max_rhs_evals=10, rhs_evals_spent=10)
    assert calls == [] and result.step.size == 0 and result.stop_step == 2.0
    assert result.status is Status.MAX_STEPS and quoted(result) == (10, 2.0)
    assert result.counters["rhs_evals"] == 0


@pytest.mark.parametrize("budget", [5, 2000])
@pytest.mark.parametrize("flow", [scalar_rmsprop_flow, rmsprop_flow])
def test_the_adaptive_flows_keep_one_budget_over_their_branches(flow, budget):
    # the full runs enter the edge of stability near t = 19.5 and take 3,668 evaluations
    # (scalar) and 4,688 (rmsprop) to t = 300: 5 runs out on the first branch, at the
    # start, and 2,000 on the second, after the entry
    nu0 = 1.0 if flow is scalar_rmsprop_flow else np.ones(TWO_SCALE.dim)
    run = flow(TWO_SCALE, START, nu0, 0.01, 0.99, 300.0, stride=10.0, max_rhs_evals=budget)
    ended_by_budget(run, budget)
    if budget == 2000:
        assert len(run.entry_steps) == 1 and run.entry_steps[0] < run.stop_step < 300.0
        assert run.n_critical[-1] > 0


def test_the_central_and_gradient_flows_quote_the_same_budget():
    # stabsim.compare runs both with one budget: both messages quote it
    budget = 3000
    central = central_flow(TWO_SCALE, START, 0.01, 800.0, stride=10.0, max_rhs_evals=budget)
    gradient = gradient_flow(TWO_SCALE, START, 0.01, 800.0, stride=10.0,
                             max_rhs_evals=budget)
    for run in (central, gradient):
        ended_by_budget(run, budget)
    assert central.entry_steps and central.entry_steps[0] < central.stop_step  # a 2nd branch


class _Ramp:
    """dy/dt = 1 until y = 1 (t = 1), then dy/dt = 2; counts each branch's evaluations."""

    def __init__(self):
        self.calls = {False: 0, True: 0}

    def flat(self, y, branch):
        return False

    def active(self, y, branch):
        return False

    def plan(self, branch):
        def rhs(t, y):
            self.calls[branch] += 1
            return np.full(1, 2.0 if branch else 1.0)

        return rhs, ([] if branch else [(lambda t, y: y[0] - 1.0, 1.0, True)])


def _ramp(budget):
    field = _Ramp()
    with within(20):
        run = _integrate(field, False, np.zeros(1), 2.0, np.array([0.0, 0.5, 1.5, 2.0]),
                         {"rtol": 1e-10, "atol": 1e-12, "max_rhs_evals": budget}, np.inf, 10)
    return field, run


@pytest.mark.parametrize("left", [0, 1, 2])
def test_a_budget_spent_at_a_branch_switch_ends_the_run_there(left):
    field, (*_, status, _, nfev, _, _, entries, _, t_stop, _) = _ramp(10_000)
    assert status is Status.OK and entries == [pytest.approx(1.0)] and t_stop == 2.0
    first = field.calls[False]
    assert nfev == first + field.calls[True]  # every evaluation made is counted
    # a budget that leaves the second branch 0, 1 or 2 evaluations (its look at the start
    # for an equilibrium, then solve_flow's at the start): it makes those and ends there
    field, (t, _, _, status, message, nfev, _, _, _, _, t_stop, knob) = _ramp(first + left)
    assert status is Status.MAX_STEPS and knob == "max_rhs_evals"
    assert field.calls == {False: first, True: left} and nfev == first + left
    assert t_stop == pytest.approx(1.0) and t.tolist() == [0.0, 0.5]
    match = re.search(r"max_rhs_evals = (\d+) times by t = (\S+) ", message)
    assert (int(match[1]), float(match[2])) == (first + left,
                                                pytest.approx(t_stop, rel=1e-9))


@pytest.mark.parametrize("flow", [modified_flow, manifold_flow])
def test_modified_and_manifold_flows_have_the_budget_of_gradient_flow(flow):
    default = inspect.signature(gradient_flow).parameters["max_rhs_evals"].default
    assert default == MAX_RHS_EVALS
    assert inspect.signature(flow).parameters["max_rhs_evals"].default == default


def test_the_modified_flow_far_past_two_over_eta_ends_at_its_budget():
    # ηλ = 100: along that eigenvector the flow decays at r = ηλ(1 + ηλ/2) = 5,100 per
    # step, so an explicit integrator's steps are a few times 1/r, and 2,000 steps take
    # tens of millions of evaluations (it ran past 120 s without a budget)
    loss = Quadratic(np.diag([1.0, 100.0]))
    run = modified_flow(loss, [1.0, 1.0], 1.0, 2000.0, stride=100.0, max_rhs_evals=5000)
    ended_by_budget(run, 5000)
    assert 0.0 < run.stop_step < 100.0 and run.step.tolist() == [0.0]


@pytest.mark.parametrize(("flow", "args"), [
    (modified_flow, (Quadratic(np.diag([1.0, 100.0])), [1.0, 1.0], 0.01, 20.0)),
    (manifold_flow, (MANIFOLD, MANIFOLD.on_manifold([1.0, 0.8]), 0.1, 20.0)),  # a start on Γ
])
def test_none_is_no_budget_and_a_budget_is_at_most_what_is_made(flow, args):
    # the run to the horizon makes n evaluations: a budget of n lets it finish, one of
    # n − 1 ends it (the last refused may be one of the last step's, at the horizon), and
    # None sets none; the records of the cut run are the full run's, up to its stop
    full = flow(*args, stride=5.0, max_rhs_evals=None)
    assert full.success, full.message
    n = full.counters["rhs_evals"]
    assert flow(*args, stride=5.0, max_rhs_evals=n).success
    cut = flow(*args, stride=5.0, max_rhs_evals=n - 1)
    ended_by_budget(cut, n - 1)
    assert cut.step.shape[0] < full.step.shape[0]
    np.testing.assert_array_equal(cut.step, full.step[:cut.step.shape[0]])
    np.testing.assert_array_equal(cut.trajectory, full.trajectory[:cut.step.shape[0]])
