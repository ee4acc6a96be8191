"""The flows under every ``solve_ivp`` integrator, from the edge of their inputs, and what
their results export.

Budgets: once a run has made ``max_rhs_evals`` evaluations, the next is refused and the
integrator's step that asked for it fails (:func:`stabsim.flows.solve_flow`), whatever the
integrator: status MAX_STEPS, the message of RK45 (the budget and the time it ended),
``rhs_evals`` equal to the budget, and the states saved before, which are the full run's.
The implicit integrators had raised SciPy's ``ValueError`` (a refused evaluation, reported
as NaN, reached the LU factorisation of their Newton iteration), LSODA had taken it for a
state, and DOP853 had raised one where the refusal fell in the interpolant that locates an
event.
"""

import re

import numpy as np
import pytest
import xarray as xr

from stabsim import Status, _export
from stabsim._validate import SOLVERS
from stabsim.flows import (
    central_flow,
    gradient_flow,
    rmsprop_flow,
    scalar_rmsprop_flow,
    solve_flow,
)
from stabsim.flows.adaptive import EXPORT_LONG_NAMES
from stabsim.losses import Minimalist, QuadraticRegression

MINIMALIST = Minimalist()
START = [1.0, 0.5]
#: the central flow from START enters S = 2/η at t ≈ 2.58 and holds it to the horizon
ETA, STEPS = 0.5, 5.0
FLOWS = {"gradient_flow": gradient_flow, "central_flow": central_flow}
TWO_SCALE = QuadraticRegression.two_scale(0.01)
#: the message of a run its budget ended, without the budget and the time it quotes
QUOTED = re.compile(r"max_rhs_evals = (\d+) times by t = (\S+) ")


def _run(flow, integrator, budget):
    return FLOWS[flow](MINIMALIST, START, ETA, STEPS, stride=0.5, integrator=integrator,
                       max_rhs_evals=budget)


def _ended_by_budget(cut, full, budget, template):
    """Assert the rule of the module docstring for ``cut``, ``full`` the run to the horizon."""
    assert cut.status is Status.MAX_STEPS and cut.knob == "max_rhs_evals", cut.message
    assert cut.counters["rhs_evals"] == budget
    match = QUOTED.search(cut.message)
    assert match and int(match[1]) == budget, cut.message
    # the message prints the time to 10 significant digits
    assert float(match[2]) == pytest.approx(cut.stop_step, rel=1e-9, abs=1e-12)
    assert QUOTED.sub("", cut.message) == template
    assert 0.0 <= cut.stop_step < full.stop_step
    # the steps before the refusal are the full run's: so are the states saved on them
    k = cut.step.shape[0]
    np.testing.assert_array_equal(cut.step, full.step[:k])
    np.testing.assert_array_equal(cut.trajectory, full.trajectory[:k])
    assert k == 0 or cut.step[-1] <= cut.stop_step


@pytest.mark.parametrize("integrator", SOLVERS)
@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_every_integrator_ends_at_its_budget(flow, integrator):
    # gradient flow gives the implicit integrators the exact Jacobian, the central flow
    # none (SciPy's finite differences spend the budget too, in the set-up of Radau and BDF
    # among others). Budgets 1 to 7 end the run at or just after its start; the others at
    # ten places up to the last evaluation of the full run, on both branches of the
    # central flow.
    template = QUOTED.sub("", _run(flow, "RK45", 50).message)
    full = _run(flow, integrator, 10**6)
    assert full.success and full.stop_step == STEPS, full.message
    if flow == "central_flow":
        assert len(full.entry_steps) == 1
    n = full.counters["rhs_evals"]
    budgets = sorted(set(range(1, 8)) | set(np.linspace(8, n - 1, 10).astype(int).tolist()))
    for budget in budgets:
        _ended_by_budget(_run(flow, integrator, budget), full, budget, template)
    assert _run(flow, integrator, n).success  # what the full run made is enough


def test_a_budget_spent_on_the_interpolant_that_locates_an_event():
    # DOP853 evaluates the right-hand side three more times for the interpolant of a step,
    # which solve_ivp asks for after accepting the step, here to locate the terminal event
    # y = 1 inside the last one: the full run's last three evaluations. A budget that
    # refuses one of them ends the run where that step began, with the states before.
    def event(t, y):
        return y[0] - 1.0

    event.terminal, event.direction = True, 1.0

    def rhs(t, y):
        return 1.0 + 0.1 * np.sin(y)

    full = solve_flow(rhs, [0.0], 3.0, events=[event])
    assert full.success and full.stop_step < 3.0
    n = full.counters["rhs_evals"]
    template = QUOTED.sub("", solve_flow(rhs, [0.0], 3.0, integrator="RK45",
                                         max_rhs_evals=20).message)
    for budget in (n - 3, n - 2, n - 1):
        cut = solve_flow(rhs, [0.0], 3.0, events=[event], max_rhs_evals=budget)
        _ended_by_budget(cut, full, budget, template)
        assert cut.stop_step == full.step[-2]  # where the event's step began
        np.testing.assert_array_equal(cut.step, full.step[:-1])
    assert solve_flow(rhs, [0.0], 3.0, events=[event], max_rhs_evals=n).success


def test_rmsprop_flow_from_a_vanishing_second_moment():
    # The flow is defined for every ν₀ > 0: in its first instants ν grows to ~c|∇L|²t and
    # w moves by ∫ η|∂L|/√(ν₀ + c ∂L² t) dt, finite as ν₀ → 0, where it depends on ν₀
    # through √ν₀ only. From ν₀ = 1e-300 and 1e-100 (1e-150 and 1e-50 apart) the flows
    # are the same; the held eigenvalue's SDCP, formed in the basis U = P^{-1/2}V of
    # entries ~ν^{-1/4}, had overflowed at 1e-300 ("G contains NaN or inf"). Both solve
    # the stiff first instants at rtol 1e-10 with different steps: measured 6e-11 apart in
    # w and 6e-10 relative in ν, allowed 1e-8 and 1e-7.
    runs = [rmsprop_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), np.full(TWO_SCALE.dim, nu0),
                         0.01, 0.99, 0.5, stride=0.125) for nu0 in (1e-300, 1e-100)]
    tiny, small = runs
    for run in runs:
        assert run.success, run.message
        assert np.all(run.sigma2[1:] > 0.0)  # the SDCP holds the eigenvalue: X ≠ 0
    np.testing.assert_array_equal(tiny.step, small.step)
    np.testing.assert_allclose(tiny.trajectory, small.trajectory, rtol=0, atol=1e-8)
    np.testing.assert_allclose(tiny.nu[1:], small.nu[1:], rtol=1e-7)
    np.testing.assert_allclose(tiny.sigma2, small.sigma2, rtol=1e-7)


def _written_and_read(ds, path):
    """``ds`` written with the package's netCDF writer and read back."""
    _export.write_netcdf(ds, path)
    with xr.open_dataset(path) as reopened:
        return reopened.load()


@pytest.mark.parametrize("method", ["scalar_rmsprop", "rmsprop"])
def test_adaptive_exports_describe_their_own_threshold(method, tmp_path):
    # the flows hold the preconditioned sharpness at 2/η, not S: the records that say so
    # carry the method's long_name, not GD's ("on the boundary S = 2/eta"), in memory and
    # on disk; the prediction's long_name is the formula of its values (to round-off: the
    # export holds the very floats the formula gave)
    nu0 = 1.0 if method == "scalar_rmsprop" else np.ones(TWO_SCALE.dim)
    flow = (scalar_rmsprop_flow if method == "scalar_rmsprop" else rmsprop_flow)(
        TWO_SCALE, np.zeros(TWO_SCALE.dim), nu0, 0.01, 0.99, 30.0, stride=5.0)
    assert flow.success and len(flow.entry_steps) == 1, flow.message  # near t = 19.5
    ds = flow.to_xarray()
    for data in (ds, _written_and_read(ds, tmp_path / f"{method}.nc")):
        for name in ("at_eos", "n_critical", "cf_pred_loss", "cf_sigma2",
                     "preconditioned_sharpness"):
            assert data[name].attrs["long_name"] == EXPORT_LONG_NAMES[method][name], name
            assert data[name].attrs["long_name"] != _export.VARIABLES[name][0], name
            assert data[name].attrs["units"] == "1", name
        assert "sqrt(nu)" in data["at_eos"].attrs["long_name"]
    loss, sigma2 = ds["loss"].values, ds["cf_sigma2"].values
    if method == "scalar_rmsprop":
        assert ds["cf_pred_loss"].attrs["long_name"].endswith("L(w) + sigma^2 S(w)/2")
        expected = loss + 0.5 * sigma2 * ds["sharpness"].values
    else:
        assert ds["cf_pred_loss"].attrs["long_name"].endswith("L(w) + tr X")
        expected = loss + sigma2
    assert np.any(sigma2 > 0.0)
    np.testing.assert_array_equal(ds["cf_pred_loss"].values, expected)
    # GD's central flow keeps GD's description
    gd = central_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), 0.01, 5.0).to_xarray()
    assert gd["at_eos"].attrs["long_name"] == _export.VARIABLES["at_eos"][0]


def test_central_flow_exports_its_entry_and_exit_times(tmp_path):
    # as the adaptive flows' results do: along dimensions entry and exit, in steps, with
    # the long names of stabsim._export; the netCDF file gives them back, the empty exit
    # times (a dimension of size 0) included
    flow = central_flow(MINIMALIST, START, ETA, STEPS, stride=0.5)
    assert flow.success and len(flow.entry_steps) == 1 and flow.exit_steps == []
    ds = flow.to_xarray()
    reopened = _written_and_read(ds, tmp_path / "central.nc")
    for data in (ds, reopened):
        for name, dim, times in (("entry_steps", "entry", flow.entry_steps),
                                 ("exit_steps", "exit", flow.exit_steps)):
            assert data[name].dims == (dim,)
            np.testing.assert_array_equal(data[name].values, times)
            assert data[name].attrs["units"] == "steps"
            assert data[name].attrs["long_name"] == _export.VARIABLES[name][0]


@pytest.mark.parametrize("integrator", ["Radau", "BDF"])
def test_a_nan_right_hand_side_ends_an_implicit_integrator_nonfinite(integrator):
    # Radau and BDF passed the NaN to Newton's LU factorisation, which raised SciPy's
    # ValueError out of the flow; the explicit integrators end NONFINITE. The field is finite
    # up to y = 2 (reached at t = ln 2 from y0 = 1, y' = y), NaN beyond
    from stabsim.flows._solve import solve_flow

    result = solve_flow(lambda t, y: np.where(y > 2.0, np.nan, y), [1.0, 0.5], 5.0,
                        integrator=integrator)
    assert result.status == Status.NONFINITE
    assert np.all(np.isfinite(result.trajectory))
    # the run stops at an accepted step before the region (y ≤ 2 there: t ≤ ln 2)
    assert result.stop_step <= np.log(2.0)
    assert result.trajectory[-1][0] <= 2.0


@pytest.mark.parametrize("integrator", ["Radau", "BDF", "LSODA", "RK45"])
def test_a_flow_that_leaves_the_float_range_ends_nonfinite(integrator):
    # Gradient flow on ½(−x² + ½y²) from (1, 1): x = eᵗ leaves the doubles at
    # t = ln(max) ≈ 709.78 with every right-hand side finite before. Radau's Newton sums
    # of those finite values overflowed first and SciPy's LU solve raised its ValueError out
    # of gradient_flow, limit_map and central_flow; every integrator
    # now ends NONFINITE, before that time, with finite states kept
    from stabsim.losses import Quadratic

    result = gradient_flow(Quadratic([-1.0, 0.5]), [1.0, 1.0], 1.0, 800, rtol=1e-6,
                           divergence_norm=np.inf, integrator=integrator)
    assert result.status is Status.NONFINITE
    assert np.all(np.isfinite(result.trajectory))
    assert result.stop_step < np.log(np.finfo(float).max)
    # nothing but the overflow stops it: |x| = e^t is within a few orders of the largest
    # double there (the integrators' sums scale it by step factors of order 1–10)
    assert abs(result.trajectory[-1][0]) > 1e300
