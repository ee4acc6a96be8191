"""The central flows of Scalar RMSProp and RMSProp (docs/theory.md §7, docs/adaptive.md)."""

import json

import numpy as np
import pytest
import xarray as xr

from stabsim import Status
from stabsim.flows.adaptive import rmsprop_flow, scalar_rmsprop_flow
from stabsim.flows.central import central_flow
from stabsim.losses import Network, QuadraticRegression
from stabsim.maps.adaptive import run_adaptive

NET = Network((4, 3), data="sine", n_samples=10)
ETA, BETA2 = 0.02, 0.99


@pytest.fixture(scope="module")
def late_start():
    # Scalar RMSProp from the network's initialisation reaches S_eff = 2 near step 500:
    # start the flows from the optimiser's state at step 400, still on the stable side
    w0 = NET.init(seed=0)
    g0 = NET.grad(w0)
    warm = run_adaptive(NET, w0, ETA, 400, method="scalar_rmsprop", beta2=BETA2,
                        nu0=float(g0 @ g0))
    return warm.theta, float(warm.nu[0])


@pytest.fixture(scope="module")
def scalar_flow(late_start):
    w, nu = late_start
    return scalar_rmsprop_flow(NET, w, nu, ETA, BETA2, 130.0, rtol=1e-9, atol=1e-12)


def test_scalar_flow_is_the_stable_flow_until_it_holds_s_eff_at_two(scalar_flow, late_start):
    flow = scalar_flow
    assert flow.success, flow.message
    assert len(flow.entry_steps) == 1 and flow.exit_steps == []
    on = flow.n_critical > 0
    assert 0 < on.sum() < len(on)
    # on the boundary branch d log S_eff/dt = 0 exactly; the integrator (rtol 1e-9 over
    # ~100 steps) and the event's location leave drift far below 1e-6
    np.testing.assert_allclose(ETA * flow.preconditioned_sharpness[on], 2.0, atol=1e-6)
    # the implied prediction η/√ν = 2/S(w) is the same statement
    np.testing.assert_allclose(flow.effective_step[on] * flow.sharpness[on], 2.0, atol=1e-6)
    assert np.all(flow.sigma2[on] > 0.0) and np.all(flow.sigma2[~on] == 0.0)
    assert np.all(ETA * flow.preconditioned_sharpness[~on] < 2.0)
    # before the entry it is the stable flow (both solve the same ODE to rtol 1e-9)
    w, nu = late_start
    stable = scalar_rmsprop_flow(NET, w, nu, ETA, BETA2, 130.0, stable=True, rtol=1e-9,
                                 atol=1e-12)
    assert stable.n_critical.sum() == 0
    np.testing.assert_allclose(stable.trajectory[~on], flow.trajectory[~on], atol=1e-8)
    # the stable flow passes the threshold: without σ² nothing holds S_eff at 2
    assert ETA * stable.preconditioned_sharpness[-1] > 2.0


def test_sigma2_keeps_the_effective_sharpness_still(scalar_flow):
    # independent of the closed form of σ²: along the central field (ẇ, ν̇) at a boundary
    # state, S(w + hẇ)/√(ν + hν̇) has zero derivative in h. Central differences of step h
    # have error O(h²) times the second derivative: at h = 1e-3 the slope of log S_eff,
    # O(|ẇ|·|∇S|/S) ~ 1e-2 per step off the boundary, is cut below 1e-6.
    flow = scalar_flow
    from stabsim.flows.adaptive import _ScalarField
    field = _ScalarField(NET, ETA, BETA2)
    i = np.flatnonzero(flow.n_critical > 0)[-1]
    y = np.append(flow.trajectory[i], flow.nu[i])
    rate = field.central_flow(0.0, y)

    def log_s_eff(h):
        z = y + h * rate
        return np.log(ETA * field.top(z[:-1])[0] / np.sqrt(z[-1]))

    h = 1e-3
    slope = (log_s_eff(h) - log_s_eff(-h)) / (2 * h)
    free = field.stable_flow(0.0, y)
    free_slope = (np.log(ETA * field.top(y[:-1] + h * free[:-1])[0]
                         / np.sqrt(y[-1] + h * free[-1])) - log_s_eff(0.0)) / h
    assert abs(slope) < 1e-6 * max(1.0, abs(free_slope)) + 1e-7
    assert free_slope > 1e-4  # without σ² the effective sharpness would rise


def test_scalar_flow_against_the_optimiser_before_the_edge(scalar_flow, late_start):
    # before the flow reaches S_eff = 2 it is the stable flow, the continuous limit of the
    # update: over a unit of time (one step) the update and the flow differ by O(h²) in each
    # step of effective size h = η/√ν, so over the ~100 steps before the entry the relative
    # error of ν and the distance in weights are O(η) = 0.02 with unit-order constants
    # (measured: 3.4e-3 and 1e-2). Averages are over windows of 10 steps (whole period-2
    # cycles). After the entry the flow fails (docs/adaptive.md: the optimiser's
    # oscillation needs tens of steps to grow, during which its ν keeps falling while the
    # flow's rises at once; measured relative error of ν 65% at t = 150).
    w, nu = late_start
    flow = scalar_flow
    disc = run_adaptive(NET, w, ETA, 130, method="scalar_rmsprop", beta2=BETA2, nu0=nu,
                        record_trajectory=True)
    k = np.arange(10, int(flow.entry_steps[0]) - 5, 10)
    mean_nu = np.array([disc.nu_trajectory[t - 5:t + 5, 0].mean() for t in k])
    mean_w = np.array([disc.trajectory[t - 5:t + 5].mean(0) for t in k])
    rows = np.searchsorted(flow.step, k)
    assert np.all(np.abs(mean_nu / flow.nu[rows] - 1.0) < ETA)
    assert np.all(np.linalg.norm(mean_w - flow.trajectory[rows], axis=1) < ETA)


def test_stable_flow_error_is_first_order_in_eta():
    # The stable flow is the update's continuous limit: in the time τ = ηt it is
    # dw/dτ = −∇L/√ν, dν/dτ = (c/η)(|∇L|² − ν), and one optimiser step is one explicit
    # step of size η of it (the EMA's c = (1 − β₂)/β₂ makes the lag of ν right to first
    # order). With the EMA's rate per unit τ held fixed, 1 − β₂ = η/2 (β₂ = 0.99 at
    # η = 0.02, the setting above), the global error over a fixed horizon τ = 6 is
    # C₁η + O(η²): the least-squares slope of log error on log η over η = 0.04, 0.02, 0.01
    # is 1 up to O(η) = 0.04 times the ratio of the constants; 0.15 allows a ratio of ~4
    # (measured: 1.01 for w, 0.99 for ν; over 0.02, 0.01, 0.005: 1.01 and 0.99).
    # Where it fails: at a fixed β₂ = 0.99 the EMA's own one-step error, O(1 − β₂), does not
    # shrink with η, and neither does the error (measured slopes 0.25 for w, −0.16 for ν
    # over η = 0.04, 0.02, 0.01): the flow is a limit in η only with 1 − β₂ ∝ η. All runs
    # start at ν₀ = |∇L(w₀)|² (on the flow's nullcline of ν) and stay well before the edge
    # (S_eff/2 ≤ 0.33), so no oscillation is averaged.
    from stabsim.demo.report import fitted_order

    w0 = NET.init(seed=0)
    g0 = NET.grad(w0)
    nu0 = float(g0 @ g0)
    etas = (0.04, 0.02, 0.01)
    err_w, err_nu = [], []
    for eta in etas:
        n = round(6.0 / eta)
        beta2 = 1.0 - eta / 2
        disc = run_adaptive(NET, w0, eta, n, method="scalar_rmsprop", beta2=beta2, nu0=nu0,
                            record_trajectory=True)
        flow = scalar_rmsprop_flow(NET, w0, nu0, eta, beta2, float(n), stable=True,
                                   rtol=1e-9, atol=1e-12)
        assert flow.success and disc.status is Status.OK, flow.message
        np.testing.assert_array_equal(flow.step, np.arange(n + 1))
        assert np.all(disc.effective_sharpness < 1.0)  # before the edge throughout
        err_w.append(np.linalg.norm(disc.trajectory - flow.trajectory, axis=1).max())
        err_nu.append(np.abs(disc.nu_trajectory[:, 0] / flow.nu - 1.0).max())
    assert abs(fitted_order(etas, err_w) - 1.0) < 0.15, err_w
    assert abs(fitted_order(etas, err_nu) - 1.0) < 0.15, err_nu


def test_rmsprop_flow_reduces_to_the_gd_central_flow():
    # with ν frozen (β₂ → 1: c = (1 − β₂)/β₂ ≈ 1e-12) and uniform, ν = ν₀·1, the RMSProp
    # flow is GD's central flow with step η/√ν₀ (module docstring of
    # stabsim.flows.adaptive): the general-form SDCP is η times GD's. Both solve their ODE to
    # rtol 1e-10; the c-terms move the state by ~1e-12 per unit time.
    eta_gd = 0.01
    loss = QuadraticRegression.two_scale(eta_gd)
    nu0, eta = 4.0, 0.02  # η/√ν₀ = 0.01
    t_end = 400.0
    gd = central_flow(loss, np.zeros(loss.dim), eta_gd, t_end, stride=50.0)
    rms = rmsprop_flow(loss, np.zeros(loss.dim), np.full(loss.dim, nu0), eta, 1.0 - 1e-12,
                       t_end, stride=50.0)
    assert gd.success and rms.success, (gd.message, rms.message)
    assert gd.entry_steps and rms.entry_steps
    assert rms.entry_steps[0] == pytest.approx(gd.entry_steps[0], rel=1e-6)
    np.testing.assert_allclose(rms.trajectory, gd.trajectory, atol=1e-7)
    # tr X of the general form against GD's σ²: Σ = U X Uᵀ with U = P^{-1/2}V, so
    # σ² = (η/√ν₀) X on the one critical direction
    on = rms.n_critical > 0
    np.testing.assert_allclose(eta / np.sqrt(nu0) * rms.sigma2[on], gd.sigma2[on], rtol=1e-6)


@pytest.mark.slow
def test_frozen_flows_start_like_gd_and_end_where_lambda2_reaches_the_threshold():
    # ν frozen (as above): both flows are GD's central flow with step η/√ν₀. From a start
    # above the threshold that the stable flow lowers, all three follow it until S returns
    # to the threshold, and end (EIGENGAP_CLOSED) where λ2 reaches it (tests/
    # test_central_flow.py). Same ODE at rtol 1e-10, different programs and step sequences:
    # states to ~1e-9, event times to ~1e-9 steps (1e-7 and 1e-6 allow for the growth).
    loss = QuadraticRegression.random(100, 10, seed=0)
    theta0 = np.zeros(100)
    eta_gd = 2.2 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    nu0 = 4.0
    gd = central_flow(loss, theta0, eta_gd, 7.0, stride=0.5)
    scalar = scalar_rmsprop_flow(loss, theta0, nu0, 2.0 * eta_gd, 1.0 - 1e-12, 7.0,
                                 stride=0.5)
    diagonal = rmsprop_flow(loss, theta0, np.full(100, nu0), 2.0 * eta_gd, 1.0 - 1e-12, 7.0,
                            stride=0.5)
    assert gd.status is Status.EIGENGAP_CLOSED
    for flow in (scalar, diagonal):
        assert flow.status is Status.EIGENGAP_CLOSED, flow.message
        assert flow.stop_step == pytest.approx(gd.stop_step, abs=1e-6)
        assert flow.entry_steps[-1] == pytest.approx(gd.entry_steps[-1], abs=1e-6)
        np.testing.assert_array_equal(flow.step, gd.step)
        np.testing.assert_allclose(flow.trajectory, gd.trajectory, rtol=0, atol=1e-7)
    assert scalar.n_critical[0] == 0  # not held at the start: the stable flow lowers S_eff


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"nu0": -1.0}, "nu0"), ({"beta2": 0.0}, "beta2"), ({"beta2": 1.0}, "beta2"),
    ({"eta": 0.0}, "eta"), ({"nu0": [1.0, 2.0]}, "nu0"),
])
def test_bad_inputs_name_the_argument(kwargs, name):
    args = {"nu0": 1.0, "eta": 0.1, "beta2": 0.9} | kwargs
    with pytest.raises(ValueError, match=name):
        scalar_rmsprop_flow(NET, np.zeros(NET.dim), args["nu0"], args["eta"], args["beta2"],
                            10.0)


def test_export_and_status(scalar_flow):
    ds = scalar_flow.to_xarray()
    assert ds.nu.attrs["units"] == "1" and ds.attrs["status"] == "OK"
    assert scalar_flow.status is Status.OK


TWO_SCALE = QuadraticRegression.two_scale(0.01)


def _two_scale_flow(method, steps, **options):
    """The flow ``method`` of the two-scale model from 0 with ν₀ = 1, η = 0.01, β₂ = 0.99:
    S_eff reaches 2 near t = 19.5."""
    if method == "scalar_rmsprop":
        return scalar_rmsprop_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), 1.0, 0.01, 0.99,
                                   steps, **options)
    return rmsprop_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), np.ones(TWO_SCALE.dim), 0.01,
                        0.99, steps, **options)


@pytest.mark.parametrize("method", ["scalar_rmsprop", "rmsprop"])
def test_stride_none_is_refused_by_name_as_by_the_central_flow(method):
    # stride's docstring: a number, as for central_flow, whose record model the flows share
    # (each branch's states read off its interpolant at the record times)
    with pytest.raises(ValueError, match="stride") as adaptive:
        _two_scale_flow(method, 30.0, stride=None)
    with pytest.raises(ValueError, match="stride") as central:
        central_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), 0.01, 30.0, stride=None)
    assert str(adaptive.value) == str(central.value)


def test_records_are_the_multiples_of_stride_after_a_switch_too():
    # stride's docstring: the states at the multiples k·stride up to steps, and at steps.
    # 1/3 is not a float, and the branch switch at t ≈ 19.7 is not one of its multiples:
    # the records after it are still the times k·stride themselves
    stride, steps = 1.0 / 3.0, 100.0
    flow = _two_scale_flow("scalar_rmsprop", steps, stride=stride)
    assert flow.success and len(flow.entry_steps) == 1, flow.message
    assert 0.0 < flow.entry_steps[0] < steps
    multiples = stride * np.arange(int(steps / stride) + 2)
    np.testing.assert_array_equal(flow.step, np.append(multiples[multiples < steps], steps))


@pytest.mark.parametrize("method", ["scalar_rmsprop", "rmsprop"])
def test_export_holds_what_the_central_flows_does_and_round_trips(method, tmp_path):
    # as CentralFlowResult's export: every record along step (n_critical and at_eos among
    # them), stop_step, and every parameter of the call; and the entry and exit times.
    # Every variable has long_name and units (steps for times); the netCDF-3 file of the
    # SciPy engine gives it all back unchanged, the empty exit times included
    call = {"stride": 10.0, "rtol": 1e-9, "atol": 1e-11, "integrator": "DOP853",
            "max_switches": 7, "divergence_norm": 1e6, "max_rhs_evals": 50_000}
    if method == "rmsprop":
        call.update(max_critical=2, exit_band=1e-5, eigensolver="eigh")
    flow = _two_scale_flow(method, 100.0, **call)
    assert flow.success and len(flow.entry_steps) == 1 and flow.exit_steps == [], flow.message
    ds = flow.to_xarray()
    np.testing.assert_array_equal(ds["theta"].values, flow.trajectory)
    np.testing.assert_array_equal(ds["nu"].values, flow.nu)
    np.testing.assert_array_equal(ds["n_critical"].values, flow.n_critical)
    np.testing.assert_array_equal(ds["at_eos"].values, flow.n_critical > 0)
    assert 0 < ds["at_eos"].values.sum() < ds.sizes["step"]
    np.testing.assert_array_equal(ds["entry_steps"].values, flow.entry_steps)
    np.testing.assert_array_equal(ds["exit_steps"].values, flow.exit_steps)
    assert ds.attrs["stop_step"] == flow.stop_step == 100.0
    parameters = json.loads(ds.attrs["parameters"])
    assert parameters == flow.parameters
    assert parameters == call | {"method": method, "loss": TWO_SCALE.provenance, "eta": 0.01,
                                 "beta2": 0.99, "steps": 100.0, "stable": False}
    for name, variable in ds.variables.items():
        assert variable.attrs["long_name"], name
        assert variable.attrs["units"] == ("steps" if name.endswith("step")
                                           or name.endswith("steps") else "1"), name
    path = tmp_path / f"{method}.nc"
    ds.to_netcdf(path, engine="scipy")
    reopened = xr.load_dataset(path)
    assert set(reopened.variables) == set(ds.variables)
    for name, variable in ds.variables.items():
        assert reopened[name].dims == variable.dims, name
        np.testing.assert_array_equal(reopened[name].values, variable.values, err_msg=name)
        assert reopened[name].attrs["units"] == variable.attrs["units"], name
    assert reopened.attrs["stop_step"] == flow.stop_step
    assert json.loads(reopened.attrs["parameters"]) == parameters


def test_rmsprop_flow_against_the_optimiser_up_to_the_edge():
    # RMSProp from the network's initialisation (ν₀ the mean squared gradient), η = 0.005:
    # from its state at step 420 the general-form flow is the stable flow (X = 0) until
    # λ_max(P⁻¹H) reaches 2/η. Before that it is the update's continuous limit: over the
    # ~35 steps the relative error of ν and the distance in weights are O(η) = 0.005 with
    # unit-order constants (measured 3e-3 and 4e-3, averages over windows of 10 steps), and
    # the flow's entry moves by O(η) times the ~100-step time scale of the sharpening: well
    # within 5 steps of the optimiser's first crossing. (After the entry the optimiser
    # overshoots, to 2.07 times the threshold at step 88 and 1.84 averaged over the 10
    # steps around step 80, before it settles: docs/adaptive.md.)
    eta = 0.005
    w0 = NET.init(seed=0)
    g0 = NET.grad(w0)
    warm = run_adaptive(NET, w0, eta, 420, beta2=BETA2, nu0=np.full(NET.dim, g0 @ g0 / NET.dim))
    w, nu = warm.theta, warm.nu.copy()
    flow = rmsprop_flow(NET, w, nu, eta, BETA2, 40.0, max_critical=2, rtol=1e-8, atol=1e-11)
    disc = run_adaptive(NET, w, eta, 40, beta2=BETA2, nu0=nu, record_trajectory=True)
    assert flow.success and len(flow.entry_steps) == 1, flow.message
    crossing = disc.step[np.argmax(disc.effective_sharpness >= 1.0)]
    assert abs(flow.entry_steps[0] - crossing) <= 5.0
    for t in (10, 20, 30):
        if t + 5 > flow.entry_steps[0]:
            break
        mean_nu = disc.nu_trajectory[t - 5:t + 5].mean(0)
        mean_w = disc.trajectory[t - 5:t + 5].mean(0)
        assert np.linalg.norm(mean_nu - flow.nu[t]) / np.linalg.norm(flow.nu[t]) < eta
        assert np.linalg.norm(mean_w - flow.trajectory[t]) < eta
    on = flow.n_critical > 0
    np.testing.assert_allclose(eta * flow.preconditioned_sharpness[on], 2.0, atol=1e-6)


# On the edge of stability, against the optimiser. The loss: a regression model with a
# manifold of minimisers (n = 2 residuals, d = 4), where both optimisers from θ = 0 reach
# the edge once and then hover on it, drifting along the manifold (measured: S_eff/2 within
# 1% of 1 for Scalar RMSProp, λ_max(P⁻¹H)/(2/η) within 0.3% for RMSProp, late in a run of
# 10⁴ steps at η = 0.02).
EDGE_LOSS = QuadraticRegression.random(4, 2, seed=0)
EDGE_ETAS = (0.04, 0.02, 0.01)
EDGE_HORIZON, EDGE_WINDOW = 3.0, 1.5  # slow time η²t: the run's end, the window's start
CYCLE = 5  # cycle averages over steps t − 5 … t + 5 (below)


def _cycle_mean(values, t):
    """The average of ``values`` (indexed by step) over whole period-2 cycles centred at
    step t: the trapezoid rule over the ten steps t − 5 … t + 5 (end weights ½), which
    cancels (−1)ᵗ exactly and is centred on t itself (an average over an even number of
    consecutive steps is centred half a step off)."""
    weights = np.ones(2 * CYCLE + 1)
    weights[[0, -1]] = 0.5
    return np.tensordot(weights / (2 * CYCLE), values[t - CYCLE:t + CYCLE + 1], axes=(0, 0))


def _edge_errors(method, eta):
    """The optimiser and its central flow from θ = 0, ν₀ = the squared gradient there, with
    1 − β₂ = η/2, to the slow time η²t = 3; over the window η²t ∈ [1.5, 3] (on the edge), the
    largest distance of the optimiser's cycle-averaged w from the flow's, relative error of
    its cycle-averaged ν (in norm for RMSProp), and error of its cycle-averaged loss against
    the flow's ``predicted_loss`` relative to the oscillation's share of it (½σ²S, tr X);
    for Scalar RMSProp also the relative error of σ² against the optimiser's cycle-averaged
    |w_t − w̄|², which is σ² (Σ = σ²uuᵀ) to leading order."""
    n = round(EDGE_HORIZON / eta ** 2)
    beta2 = 1.0 - eta / 2.0
    w0 = np.zeros(EDGE_LOSS.dim)
    g0 = EDGE_LOSS.grad(w0)
    scalar = method == "scalar_rmsprop"
    nu0 = float(g0 @ g0) if scalar else g0 * g0
    disc = run_adaptive(EDGE_LOSS, w0, eta, n + CYCLE, method=method, beta2=beta2, nu0=nu0,
                        record_trajectory=True)
    # Radau: on the edge the flow is stiff (the normal direction relaxes in a step or two,
    # the drift along the manifold takes 1/η² steps); at rtol 1e-8 it agrees with DOP853 at
    # rtol 1e-9 to 5e-8 in w and ν (measured at η = 0.01), far below the errors measured
    flow = (scalar_rmsprop_flow if scalar else rmsprop_flow)(
        EDGE_LOSS, w0, nu0, eta, beta2, float(n), stride=float(round(0.05 / eta ** 2)),
        rtol=1e-8, atol=1e-13, integrator="Radau")
    assert disc.status is Status.OK and flow.success, flow.message
    assert len(flow.entry_steps) == 1 and flow.exit_steps == [], (flow.entry_steps,
                                                                  flow.exit_steps)
    rows = np.flatnonzero(flow.step >= EDGE_WINDOW / eta ** 2)
    assert np.all(flow.n_critical[rows])
    # the window starts at least 7 damping times 2/c of the approach to the edge after the
    # entry (the test's comment), c = (1 − β₂)/β₂
    assert (EDGE_WINDOW / eta ** 2 - flow.entry_steps[0]) * (1.0 - beta2) / beta2 / 2.0 > 7.0
    steps = flow.step[rows].astype(int)
    np.testing.assert_array_equal(steps, flow.step[rows])
    # the optimiser is on the edge over the window: its cycle-averaged preconditioned
    # sharpness is at the threshold to O(η), here within η itself (measured: within 0.07η)
    seff = np.array([_cycle_mean(disc.effective_sharpness, t) for t in steps])
    assert np.all(np.abs(seff - 1.0) < eta), seff
    flow_nu = flow.nu.reshape(len(flow.step), -1)[rows]
    mean_w = np.array([_cycle_mean(disc.trajectory, t) for t in steps])
    mean_nu = np.array([_cycle_mean(disc.nu_trajectory, t) for t in steps])
    mean_loss = np.array([_cycle_mean(disc.loss, t) for t in steps])
    share = flow.predicted_loss[rows] - flow.loss[rows]
    errors = {
        "w": np.linalg.norm(mean_w - flow.trajectory[rows], axis=1).max(),
        "nu": (np.linalg.norm(mean_nu - flow_nu, axis=1) / np.linalg.norm(flow_nu, axis=1)).max(),
        "loss": (np.abs(mean_loss - flow.predicted_loss[rows]) / share).max(),
    }
    if scalar:
        spread = np.array([_cycle_mean(np.sum((disc.trajectory[t - CYCLE - 1:t + CYCLE + 2]
                                               - mean_w[i]) ** 2, axis=1), CYCLE + 1)
                           for i, t in enumerate(steps)])
        errors["sigma2"] = np.abs(spread / flow.sigma2[rows] - 1.0).max()
    return errors, flow.loss[rows].max() / share.min()


def _assert_first_order(method):
    from stabsim.demo.report import fitted_order

    runs = [_edge_errors(method, eta) for eta in EDGE_ETAS]
    for name in runs[0][0]:
        errors = [run[0][name] for run in runs]
        # the theory's claim is O(η) (the test's comment): a one-sided bound on the order.
        # Half an order of tolerance: over a factor 4 in η, an O(η²) term beside the O(η)
        # one, or constants that differ between the η, move the least-squares slope by a
        # few tenths (measured 1.38–2.17, above 1); an error that does not shrink with η
        # (a wrong flow: the mutations of the test's comment) has order ≈ 0, half an order
        # below the bound
        assert fitted_order(EDGE_ETAS, errors) > 0.5, (name, errors)
    # the flow's L(w) is a small part of its predicted loss (the optimiser sits on the
    # manifold of minimisers, L = 0): the loss comparison tests the σ² (tr X) term itself
    assert max(run[1] for run in runs) < 0.01


def test_scalar_flow_on_the_edge_follows_the_optimiser_to_first_order_in_eta():
    # The central flow on its boundary branch against Scalar RMSProp itself (the tests
    # above check the branch only along the flow's own field, or stop at the entry).
    # The limit: as for the stable flow (test_stable_flow_error_is_first_order_in_eta),
    # the flow is the optimiser's limit only with 1 − β₂ ∝ η; here 1 − β₂ = η/2. On the
    # edge S_eff = 2 gives √ν = ηS/2, and ν's balance |∇L|² + σ²S² = ν with |∇L| = O(η²)
    # (the normal force ½σ²∇S balances it) gives σ² = η²/4 to leading order: a period-2
    # oscillation of half-amplitude η/2, and a drift −(2/S)·½σ²∇S = −(η²/4)∇log S along the
    # manifold of minimisers: normalised GD's flow on the slow time η²t (docs/theory.md §4,
    # whose error is O(η) over a fixed slow horizon), so the comparison runs to a fixed η²t.
    # The flow is the second-order (in the oscillation) average of the update, with the
    # update read as one explicit step of it: the neglected terms are one order higher in
    # the amplitude O(η), in the step, and in the EMA's one-step error O(1 − β₂) = O(η).
    # So the claim is: distance in w, and relative errors of ν, of σ² and of the loss's
    # oscillation share ½σ²S, all O(η) on the edge; asserted as a fitted order > 0.5 over
    # η = 0.04, 0.02, 0.01 (_assert_first_order). Measured (docs/adaptive.md): w 1.2e-2,
    # 4.8e-3, 1.8e-3; ν 1.8e-2, 7.3e-3, 2.7e-3; loss 9.2e-3, 3.6e-3, 1.4e-3 (order 1.38
    # each); σ² 2.6e-3, 5.1e-4, 1.3e-4 (order 2.17).
    # The window η²t ∈ [1.5, 3] leaves out the approach to the edge: the optimiser's
    # oscillation grows from round-off after the entry and rings about the flow's, damped
    # by ν's EMA (the ν-equation is the only damping term of the linearised amplitude–ν
    # dynamics, whose trace is −c: e-folding 2/c ≈ 4/η steps, measured ≈ 85 steps at
    # η = 0.04); the window starts more than 7 such times after the entry (asserted).
    # Mutations this catches (each gives errors that do not shrink, order ≈ 0): ν's term
    # σ²S² doubled with its matching term cS²/(2ν) in σ²'s denominator (then σ² = η²/8:
    # w 0.23–0.27, ν 0.30–0.34, loss 0.81–0.83, σ² 0.98–0.99); predicted_loss L + σ²S
    # instead of L + ½σ²S (the loss only: 0.50).
    _assert_first_order("scalar_rmsprop")


def test_rmsprop_flow_on_the_edge_follows_the_optimiser_to_first_order_in_eta():
    # As above for diagonal RMSProp and its general-form flow (the ν-vector, the loss
    # against L + tr X, the distance in w), 1 − β₂ = η/2: on the edge P = diag(√ν)/η with
    # λ_max(P⁻¹H) = 2/η, and ν's balance ν = (∇L)² + diag((HU)X(HU)ᵀ) with HU = 2PU sets
    # X = O(η²); the neglected terms are again one order higher in η. Measured: w 2.2e-2,
    # 6.2e-3, 2.9e-3 (order 1.46); ν 3.1e-2, 8.2e-3, 3.8e-3 (1.50); loss 8.8e-3, 2.5e-3,
    # 1.1e-3 (1.48). Mutations this catches (order ≈ 0): the ν-term diag((HU)X(HU)ᵀ)
    # doubled with its matching term in 𝒢 (w 0.36–0.39, ν 0.37–0.39, loss 0.80);
    # predicted_loss L + 2 tr X (the loss only: 0.50).
    _assert_first_order("rmsprop")


def test_rmsprop_flow_on_products_is_the_dense_flow(monkeypatch):
    # RMSProp on the 8-8 network (d = 97) from its state at step 480, 30 steps before the
    # flow enters the edge (η = 0.005): the generalised pairs on Hessian-vector products
    # (compiled Lanczos, residual 1e-13 of the largest) or by eigh of the dense matrix
    # drive the same ODE at rtol 1e-10, so the states agree to the integrator's ~1e-9 and
    # the entry times to ~1e-9 steps (1e-7 and 1e-6 allow for the growth, as for GD's
    # central flow in tests/test_central_flow_multi.py); σ² to 1e-5 of its largest value
    net = Network((8, 8), data="sine", n_samples=12)
    eta = 0.005
    w0 = net.init(seed=0)
    g0 = net.grad(w0)
    warm = run_adaptive(net, w0, eta, 480, beta2=BETA2, nu0=np.full(net.dim, g0 @ g0 / net.dim))
    w, nu = warm.theta, warm.nu.copy()
    dense = rmsprop_flow(net, w, nu, eta, BETA2, 60.0, max_critical=2, eigensolver="eigh")

    def no_dense(*args):
        raise AssertionError("the dense Hessian was formed")

    monkeypatch.setattr(net, "_hessian", no_dense)
    products = rmsprop_flow(net, w, nu, eta, BETA2, 60.0, max_critical=2)  # "auto": d > 32
    assert dense.success and products.success, (dense.message, products.message)
    assert len(dense.entry_steps) == 1
    np.testing.assert_allclose(products.entry_steps, dense.entry_steps, atol=1e-6)
    np.testing.assert_array_equal(products.n_critical, dense.n_critical)
    np.testing.assert_allclose(products.trajectory, dense.trajectory, rtol=0, atol=1e-7)
    np.testing.assert_allclose(products.nu, dense.nu, rtol=1e-7)
    scale = float(np.max(dense.sigma2))
    np.testing.assert_allclose(products.sigma2, dense.sigma2, rtol=0, atol=1e-5 * scale)
    # the records' sharpness: the tracked pair to residual 1e-13·λ against eigvalsh
    np.testing.assert_allclose(products.sharpness, dense.sharpness, rtol=1e-10)


@pytest.mark.slow
def test_rmsprop_flow_where_the_dense_hessian_would_not_fit():
    # the scalar network at d = 200,000 (its dense Hessian: 320 GB), all weights w = 1 + 1/d,
    # ν = 1: D = √η I, and ∇²L = (P² + rP)/w² 11ᵀ − rP/w² I (P = wᵈ, r = P − 1) has the top
    # eigenvalue (d(P² + rP) − rP)/w², so the preconditioned sharpness at t = 0 is η times
    # it, to the Lanczos residual 1e-13 of it and the rounding of P, a product of d factors
    # (at most d·eps relative, twice in P²: 4·d·eps allows both here and in the kernel);
    # η = 1/(12 d) puts it near 1 (below 2: the stable flow)
    from stabsim.losses import ScalarNetwork

    d = 200_000
    loss = ScalarNetwork(d)
    w = 1.0 + 1.0 / d
    eta = 1.0 / (12.0 * d)
    theta0, nu0 = np.full(d, w), np.ones(d)
    with pytest.raises(ValueError, match="320,000,000,000 bytes"):
        rmsprop_flow(loss, theta0, nu0, eta, BETA2, 1.0, eigensolver="eigh")
    flow = rmsprop_flow(loss, theta0, nu0, eta, BETA2, 1.0)
    assert flow.success, flow.message
    P = w ** d
    r = P - 1.0
    top = (d * (P * P + r * P) - r * P) / (w * w)
    bound = 4 * d * np.finfo(float).eps
    assert eta * flow.preconditioned_sharpness[0] == pytest.approx(eta * top, rel=bound)
    assert flow.sharpness[0] == pytest.approx(top, rel=bound)


def test_rmsprop_flow_on_products_where_auto_would_take_eigh():
    # the two-scale model (d = 6, a family that prefers the dense Hessian): "lanczos" asked
    # for explicitly drives the same ODE as "eigh" through the edge (S_eff reaches 2 near
    # t = 19.5), so the states agree to the integrator's ~1e-9 (1e-7 allows for growth, as
    # above); an unknown eigensolver is refused by name
    dense = _two_scale_flow("rmsprop", 40.0, max_critical=2, eigensolver="eigh")
    products = _two_scale_flow("rmsprop", 40.0, max_critical=2, eigensolver="lanczos")
    assert dense.success and products.success, (dense.message, products.message)
    assert len(dense.entry_steps) == 1
    np.testing.assert_allclose(products.entry_steps, dense.entry_steps, atol=1e-6)
    np.testing.assert_allclose(products.trajectory, dense.trajectory, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="eigensolver"):
        _two_scale_flow("rmsprop", 1.0, eigensolver="arpack")
