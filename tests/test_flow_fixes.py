"""Faults of the flows, each with the behaviour that replaced it.

- The one-eigenvalue central flow of a 1-D loss watched λ2 (−inf for d = 1) on its
  boundary branch, an event read as non-finite: a false NONFINITE.
- What ``at_eos`` and ``entry_steps`` record from a start above 2/η (S held where it
  stopped falling, not at 2/η) was described as the boundary S = 2/η.
- ``limit_map`` had no budget of evaluations: an explicit integrator ran for minutes.
- ``CentralFlowResult.to_xarray`` left out ``eigenvalues`` and ``sigma_eigenvalues``, and
  ``ManifoldFlowResult.to_xarray`` labelled values at X(τ) as GD's at θ_t and Φ(θ_t).
- Argument checks that disagreed between the flows, or with their own messages.
"""

import inspect
import re

import numpy as np
import pytest
import xarray as xr
from deadline import within
from scipy.integrate import quad
from scipy.optimize import brentq

from stabsim import Status, _export
from stabsim.flows import (
    CentralFlowResult,
    central_flow,
    gradient_flow,
    limit_map,
    manifold_flow,
    modified_flow,
    rmsprop_flow,
    scalar_rmsprop_flow,
    solve_flow,
    solve_reduced_ode,
)
from stabsim.flows._solve import MAX_RHS_EVALS
from stabsim.flows.manifold import EXPORT_LONG_NAMES
from stabsim.losses import (
    ManifoldFamily,
    Minimalist,
    Quadratic,
    QuadraticRegression,
    SelfRegulatingPotential,
)

POTENTIAL = SelfRegulatingPotential()
ETA = 1.5  # 2/η = 4/3 < f''(0) = 2
TWO_SCALE = QuadraticRegression.two_scale(0.01)


# f(x) = x²/sqrt(1 + x²), differentiated by hand
def f1(x):
    return x * (2.0 + x * x) / (1.0 + x * x) ** 1.5


def f2(x):
    return (2.0 - x * x) / (1.0 + x * x) ** 2.5


def f3(x):
    return x * (3.0 * x * x - 12.0) / (1.0 + x * x) ** 3.5


def _written_and_read(ds, path):
    _export.write_netcdf(ds, path)
    with xr.open_dataset(path) as reopened:
        return reopened.load()


# -- 1. the one-eigenvalue central flow of a 1-D loss -------------------------------------

def test_a_one_dimensional_start_above_the_threshold_is_held_where_it_starts(tmp_path):
    # at x = 0.1, S = f''(x) ≈ 1.94 > 2/η and gradient flow (towards 0, where f'' = 2)
    # would raise S: ⟨−∇L, ∇S⟩ = −f'f''' > 0, so the boundary branch holds S from t = 0.
    # In one dimension its field −η(f' + ½σ²f''') with σ² = −2f'/f''' is 0: x stays put
    x0 = 0.1
    assert f2(x0) > 2.0 / ETA and -f1(x0) * f3(x0) > 0.0
    cf = central_flow(POTENTIAL, [x0], ETA, 50.0, stride=5.0)
    assert cf.status is Status.OK, cf.message
    np.testing.assert_array_equal(cf.step, np.arange(0.0, 51.0, 5.0))
    # the field is 0 up to round-off in f' − f'·(f'''·f''')/(f'''·f''') (~1e-16 |f'|)
    np.testing.assert_allclose(cf.trajectory[:, 0], x0, rtol=0, atol=1e-12)
    assert cf.at_eos.all() and cf.entry_steps == [0.0] and cf.exit_steps == []
    # closed forms against the loss's own derivatives: round-off only
    np.testing.assert_allclose(cf.sharpness, f2(x0), rtol=1e-12)
    np.testing.assert_allclose(cf.sigma2, -2.0 * f1(x0) / f3(x0), rtol=1e-10)
    # no second eigenvalue: −inf in memory, NaN (the export's "does not exist") exported
    assert np.all(cf.lambda2 == -np.inf)
    ds = cf.to_xarray()
    for data in (ds, _written_and_read(ds, tmp_path / "potential.nc")):
        assert np.isnan(data["lambda2"].values).all()
        assert np.isnan(data["eigenvalues"].values[:, 1]).all()


@pytest.mark.parametrize("x0", [1.5, 2.5])
def test_a_one_dimensional_flow_enters_and_holds_the_threshold(x0):
    # S = f''(x0) < 0 < 2/η: gradient flow dx/dt = −η f'(x) moves x towards 0 until
    # f''(x_e) = 2/η (x_e in (0, √2), where f'' falls from 2 to 0), at
    # t_e = ∫_{x_e}^{x0} dx/(η f'(x)); there ⟨−∇L, ∇S⟩ = −f'f''' > 0 (f''' < 0 on (0, 2)),
    # so the flow holds x_e from then on (its field is 0 in one dimension)
    x_e = brentq(lambda x: f2(x) - 2.0 / ETA, 0.0, np.sqrt(2.0), xtol=1e-15)
    t_e = quad(lambda x: 1.0 / (ETA * f1(x)), x_e, x0, epsabs=1e-13, epsrel=1e-13)[0]
    cf = central_flow(POTENTIAL, [x0], ETA, 50.0, stride=5.0)
    assert cf.status is Status.OK, cf.message
    assert cf.stop_step == 50.0 and cf.exit_steps == []
    # the event is root-found on an interpolant of rtol 1e-10 (~1e-9 in time, as in
    # test_central_flow_events.py)
    assert cf.entry_steps == [pytest.approx(t_e, abs=1e-7)]
    held = cf.step > t_e
    assert held.any() and cf.at_eos[held].all() and not cf.at_eos[~held].any()
    # the state at the entry: an interpolant of rtol 1e-10 on |x| ≤ 2.5
    np.testing.assert_allclose(cf.trajectory[held, 0], x_e, rtol=0, atol=1e-8)


# -- 2. what at_eos and entry_steps record -----------------------------------------------

def test_at_eos_says_where_s_is_held_from_a_start_above_the_threshold(tmp_path):
    # the minimalist loss from (3, 0.5) at η = 0.2 (2/η = 10): gradient flow conserves
    # x² − y² = d = 8.75 and lowers S all the way to the minimiser, x²y² = 1, where
    # S = 2(x² + y²) = 2 sqrt(d² + 4) ≈ 17.95: S is held there, far above 2/η
    loss, eta = Minimalist(), 0.2
    cf = central_flow(loss, [3.0, 0.5], eta, 100.0, stride=20.0)
    assert cf.status is Status.OK, cf.message
    assert cf.at_eos.any() and len(cf.entry_steps) == 1
    held = 2.0 * np.sqrt(8.75 ** 2 + 4.0)
    # the flow converges exponentially to the minimiser (rate ~S η): by t = 20 to round-off
    np.testing.assert_allclose(cf.sharpness[cf.at_eos], held, rtol=1e-8)
    assert held > 1.5 * 2.0 / eta
    ds = cf.to_xarray()
    for data in (ds, _written_and_read(ds, tmp_path / "central.nc")):
        at_eos = data["at_eos"].attrs["long_name"]
        assert "above 2/eta" in at_eos and "stopped falling" in at_eos
        assert at_eos != "on the boundary S = 2/eta (1) or not (0)"
        assert "above" in data["entry_steps"].attrs["long_name"]
    doc = inspect.getdoc(CentralFlowResult)
    assert "stopped falling" in doc and "on the boundary S = 2/η" not in doc
    assert "reached S = 2/η" not in doc


# -- 3. limit_map's budget --------------------------------------------------------------

def test_limit_map_has_the_budget_of_the_other_flows():
    default = inspect.signature(limit_map).parameters["max_rhs_evals"].default
    assert default == MAX_RHS_EVALS
    assert inspect.signature(gradient_flow).parameters["max_rhs_evals"].default == default


@pytest.mark.parametrize("budget", [1, 200])
def test_a_small_budget_ends_limit_map_quickly(budget):
    # RK45 at rtol 1e-10 on |θ| ≈ 3 leaves errors in θ of ~3e-10, so |∇L| (curvature ~18)
    # jitters far above tol/2 = 5e-11 and the run had no end; the budget ends it, the
    # message naming and quoting it as for the other flows. A budget of 1 is spent by the
    # start's evaluation: the result is the start itself, at flow time 0
    theta = np.array([3.0, 0.2])
    with within(30):
        limit = limit_map(Minimalist(), theta, integrator="RK45", max_rhs_evals=budget)
    assert limit.status is Status.MAX_STEPS and limit.knob == "max_rhs_evals"
    assert "`max_rhs_evals`" in limit.message
    assert f"max_rhs_evals = {budget} times" in limit.message
    # on limit_map's own clock, the flow time s (it said "by t = ..." before)
    assert f"times by s = {limit.flow_time:.10g} " in limit.message
    assert limit.counters["rhs_evals"] == budget
    assert limit.parameters["max_rhs_evals"] == budget
    if budget == 1:
        np.testing.assert_array_equal(limit.theta, theta)
        assert limit.flow_time == 0.0
    else:
        assert limit.flow_time > 0.0 and limit.grad_norm > limit.tol


def test_limit_map_without_a_budget_is_the_same_run():
    # LSODA converges in a few hundred evaluations: None and the default budget agree
    loss, theta = Minimalist(), [3.0, 0.2]
    free, bounded = limit_map(loss, theta, max_rhs_evals=None), limit_map(loss, theta)
    assert free.success and bounded.success and free.knob == "s_max"
    np.testing.assert_array_equal(free.theta, bounded.theta)
    # gradient flow conserves x² − y² (= 8.96), and Φ has x²y² = 1: x² = (d + sqrt(d² + 4))/2;
    # Φ is within tol/μ ≈ 1e-11 of it, and LSODA's rtol 1e-10 errors accumulate
    d = 9.0 - 0.04
    x2 = (d + np.sqrt(d * d + 4.0)) / 2.0
    np.testing.assert_allclose(free.theta ** 2, [x2, x2 - d], rtol=1e-8)


# -- 4. the central flow's spectra, exported ---------------------------------------------

def test_central_flow_exports_its_spectra(tmp_path):
    # two eigenvalues watched (max_critical = 2) on a 2-D loss: three columns, the third
    # beyond d (−inf in memory, NaN exported); Σ's two eigenvalues along their own dimension
    loss = Minimalist()
    cf = central_flow(loss, [3.0, 0.2], 1.0 / 6.0, 60.0, stride=10.0, max_critical=2)
    assert cf.status is Status.OK and cf.at_eos.any(), cf.message
    n = cf.step.shape[0]
    assert cf.eigenvalues.shape == (n, 3) and cf.sigma_eigenvalues.shape == (n, 2)
    # the Hessian's spectrum at each saved state, computed here (Lanczos tol 1e-13 against
    # eigh: round-off relative to S)
    spectra = np.array([np.linalg.eigvalsh(loss.hessian(w))[::-1] for w in cf.trajectory])
    ds = cf.to_xarray()
    for data in (ds, _written_and_read(ds, tmp_path / "spectra.nc")):
        eigenvalues = data["eigenvalues"]
        assert eigenvalues.dims == ("step", "eig") and eigenvalues.shape == (n, 3)
        np.testing.assert_allclose(eigenvalues.values[:, :2], spectra, rtol=1e-10)
        assert np.isnan(eigenvalues.values[:, 2]).all()
        sigma = data["sigma_eigenvalues"]
        assert sigma.dims == ("step", "sigma_eig") and sigma.shape == (n, 2)
        np.testing.assert_array_equal(sigma.values, cf.sigma_eigenvalues)
        # Σ's eigenvalues sum to tr Σ (one nonzero here: one eigenvalue held)
        np.testing.assert_allclose(sigma.values.sum(axis=1), data["sigma2"].values,
                                   rtol=1e-12, atol=0)
        for name in ("eigenvalues", "sigma_eigenvalues"):
            assert data[name].attrs["long_name"] == _export.VARIABLES[name][0], name
            assert data[name].attrs["units"] == "1", name


# -- 5. the manifold flow's own long names ---------------------------------------------------

def test_manifold_flow_export_describes_the_flow_point(tmp_path):
    loss = ManifoldFamily([3.0, 1.0], [[0.5, 0.2], [0.1, 0.3]])
    flow = manifold_flow(loss, loss.on_manifold(np.array([0.5, -0.4])), 0.05, 100.0,
                         stride=50.0)
    assert flow.success, flow.message
    ds = flow.to_xarray()
    for data in (ds, _written_and_read(ds, tmp_path / "manifold.nc")):
        for name in ("theta", "lambda1", "rel_gap", "grad_norm"):
            long_name = data[name].attrs["long_name"]
            assert long_name == EXPORT_LONG_NAMES[name], name
            assert "X(tau)" in long_name, name
            assert "theta_t" not in long_name and "Phi" not in long_name, name
            assert data[name].attrs["units"] == "1", name
        np.testing.assert_array_equal(data["lambda1"].values, flow.lambda1)
        np.testing.assert_array_equal(data["theta"].values, flow.trajectory)


# -- 6. argument checks --------------------------------------------------------------------

QUAD = Quadratic([2.0, 1.0])
MANIFOLD = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]])
RTOL_CALLS = {
    "solve_flow": lambda rtol: solve_flow(lambda t, y: -y, [1.0], 1.0, rtol=rtol),
    "gradient_flow": lambda rtol: gradient_flow(QUAD, [1.0, 1.0], 0.1, 1.0, rtol=rtol),
    "modified_flow": lambda rtol: modified_flow(QUAD, [1.0, 1.0], 0.1, 1.0, rtol=rtol),
    "central_flow": lambda rtol: central_flow(QUAD, [1.0, 1.0], 0.1, 1.0, rtol=rtol),
    "manifold_flow": lambda rtol: manifold_flow(MANIFOLD, MANIFOLD.on_manifold([1.0, 0.8]),
                                                0.1, 1.0, rtol=rtol),
    "limit_map": lambda rtol: limit_map(QUAD, [1.0, 1.0], rtol=rtol),
    "scalar_rmsprop_flow": lambda rtol: scalar_rmsprop_flow(QUAD, [1.0, 1.0], 1.0, 0.1, 0.9,
                                                            1.0, rtol=rtol),
    "rmsprop_flow": lambda rtol: rmsprop_flow(QUAD, [1.0, 1.0], [1.0, 1.0], 0.1, 0.9, 1.0,
                                              rtol=rtol),
    "solve_reduced_ode": lambda rtol: solve_reduced_ode(0.1, 0.0, 0.1, 1.0, 1.0, 1.0,
                                                        rtol=rtol),
}


@pytest.mark.parametrize("rtol", [1.0, 2.0])
@pytest.mark.parametrize("flow", sorted(RTOL_CALLS))
def test_every_flow_refuses_a_relative_tolerance_of_one_or_more(flow, rtol):
    # a relative error of 1 accepts any step: gradient flow of the minimalist loss at
    # rtol = 2 ended NONFINITE
    with pytest.raises(ValueError, match=r"rtol must lie in \(0, 1\)"):
        RTOL_CALLS[flow](rtol)


def test_a_relative_tolerance_below_one_is_accepted():
    # e^{-0.2 t} at t = 1 (η = 0.1, curvature 2), to rtol = 0.5's loose accuracy
    run = gradient_flow(QUAD, [1.0, 1.0], 0.1, 1.0, rtol=0.5)
    assert run.success
    np.testing.assert_allclose(run.theta, np.exp([-0.2, -0.1]), rtol=0.1)


@pytest.mark.parametrize("beta2", [0, 0.0, -0.1, 1.0, 2.0])
@pytest.mark.parametrize("flow", ["scalar", "diagonal"])
def test_the_beta2_message_states_the_interval_checked(flow, beta2):
    # 0 was refused with "must be > 0" and −0.1 with "must lie in [0, 1)", which admits 0
    with pytest.raises(ValueError) as info:
        if flow == "scalar":
            scalar_rmsprop_flow(QUAD, [1.0, 1.0], 1.0, 0.1, beta2, 1.0)
        else:
            rmsprop_flow(QUAD, [1.0, 1.0], [1.0, 1.0], 0.1, beta2, 1.0)
    assert str(info.value) == f"beta2 must lie in (0, 1), got {float(beta2)!r}"


@pytest.mark.parametrize("beta2", [1e-3, 0.999])
def test_beta2_inside_the_interval_is_accepted(beta2):
    # a quadratic far below the threshold: the stable flow to t = 1
    assert scalar_rmsprop_flow(QUAD, [1.0, 1.0], 1.0, 0.01, beta2, 1.0).success


def _adaptive(flow, **options):
    if flow == "scalar":
        return scalar_rmsprop_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), 1.0, 0.01, 0.99, 30.0,
                                   stride=5.0, **options)
    return rmsprop_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), np.ones(TWO_SCALE.dim), 0.01,
                        0.99, 30.0, stride=5.0, **options)


@pytest.mark.parametrize("flow", ["central", "scalar", "diagonal"])
def test_no_budget_is_none_as_for_gradient_flow(flow):
    # the same run with the default budget, which it never meets (the adaptive flows take
    # a few hundred evaluations to t = 30, the central flow of the minimalist loss ~200)
    if flow == "central":
        def run(**options):
            return central_flow(Minimalist(), [3.0, 0.2], 1.0 / 6.0, 10.0, **options)
    else:
        def run(**options):
            return _adaptive(flow, **options)
    free, bounded = run(max_rhs_evals=None), run()
    assert free.success and bounded.success, free.message
    assert free.parameters["max_rhs_evals"] is None
    assert free.counters["rhs_evals"] == bounded.counters["rhs_evals"]
    np.testing.assert_array_equal(free.trajectory, bounded.trajectory)


@pytest.mark.parametrize("flow", ["scalar", "diagonal"])
def test_max_switches_zero_stops_the_adaptive_flows_at_the_first_switch(flow):
    # as central_flow's max_switches = 0: the run ends at its first switch (the entry near
    # t = 19.5), status MAX_STEPS naming max_switches, with the records before it
    full = _adaptive(flow)
    assert full.success and len(full.entry_steps) == 1, full.message
    entry = full.entry_steps[0]
    cut = _adaptive(flow, max_switches=0)
    assert cut.status is Status.MAX_STEPS and cut.knob == "max_switches", cut.message
    assert cut.stop_step == entry and cut.entry_steps == []
    before = full.step < entry
    np.testing.assert_array_equal(cut.step, full.step[before])
    np.testing.assert_array_equal(cut.trajectory, full.trajectory[before])
    # the central flow does the same
    central = central_flow(TWO_SCALE, np.zeros(TWO_SCALE.dim), 0.01, 300.0, stride=100.0,
                           max_switches=0)
    assert central.status is Status.MAX_STEPS and central.knob == "max_switches"


@pytest.mark.parametrize("max_critical", [1, 2])
def test_a_flat_sharpness_says_that_grad_s_is_zero(max_critical):
    # a quadratic: ∇S = ∇³L[u, u] = 0 everywhere, and S = 3 ≥ 2/η = 2 at the start
    cf = central_flow(Quadratic([3.0, 1.0]), [1.0, 1.0], 1.0, 10.0, max_critical=max_critical)
    assert cf.status is Status.FLAT_SHARPNESS
    assert re.search(r"∇S = 0", cf.detail) and "no direction lowers" in cf.detail
    assert "t = 0" in cf.detail


def test_a_scalar_rmsprop_start_above_the_threshold_is_held_where_s_eff_stops_falling():
    # From (3, 0.5) on the minimalist loss with ν₀ = 1, η = 0.2: S_eff = ηS/√ν = 10.8 > 2.
    # The stable flow lowers S_eff, then (ν decaying with |∇L|²) raises it again, above 2
    # throughout; it had stayed on the stable flow, S_eff 3.74 → 4.58 by t = 50, status OK.
    # Now S_eff is held where the stable flow stops lowering it, as for GD's central flow.
    from stabsim.flows.adaptive import scalar_rmsprop_flow

    loss, start, eta, beta2 = Minimalist(), [3.0, 0.5], 0.2, 0.99
    flow = scalar_rmsprop_flow(loss, start, 1.0, eta, beta2, 50.0, stride=5.0)
    assert flow.success and len(flow.entry_steps) == 1 and flow.exit_steps == []
    entry = flow.entry_steps[0]
    held = flow.n_critical > 0
    assert not held[0] and held[1:].all()
    s_eff = eta * flow.preconditioned_sharpness  # η S/√ν: the record is S/√ν
    # held: constant to the integrator's tolerance (rtol 1e-10 over the run)
    np.testing.assert_allclose(s_eff[held], s_eff[held][0], rtol=1e-8)
    assert s_eff[held][0] > 2.0
    # where it is held the stable flow stops lowering S_eff: its slope there, by a central
    # difference of the stable flow (h = 1e-3: error O(h²)), is ≈ 0 next to its slope at
    # half that time
    h = 1e-3
    # (saved every h/2, interpolated by a cubic spline: error O(h⁴))
    stable = scalar_rmsprop_flow(loss, start, 1.0, eta, beta2, entry + 2 * h, stride=h / 2,
                                 stable=True)
    times = [0.5 * entry - h, 0.5 * entry + h, entry - h, entry + h]
    from scipy.interpolate import CubicSpline

    s_stable = CubicSpline(stable.step, eta * stable.preconditioned_sharpness)(times)
    early = (s_stable[1] - s_stable[0]) / (2 * h)
    at_entry = (s_stable[3] - s_stable[2]) / (2 * h)
    assert early < 0.0 and abs(at_entry) < 1e-3 * abs(early)
    # the level held is the stable flow's S_eff at the entry
    assert s_eff[held][0] == pytest.approx(s_stable[2:].mean(), rel=1e-6)
