"""Every engine and flow driven into divergence, overflow and NaN ends with a status.

Each case runs one engine or flow into trouble (an unstable step size, a divergent flow, a
float overflow, a derivative that turns NaN part-way) and asserts the status that says
what happened, and that the records the result keeps are all finite: a run stops at the
first bad value and keeps what came before. The spectral functions, which have no status,
raise ``NonFiniteError`` instead of returning a finite eigenvalue of a NaN Hessian (LAPACK
reads one triangle only) or NaN constants.
"""

import dataclasses

import numpy as np
import pytest
from nonfinite_families import ramp

from stabsim import Status
from stabsim._status import NonFiniteError
from stabsim.flows import (
    central_flow,
    gradient_flow,
    limit_map,
    manifold_flow,
    solve_flow,
    solve_reduced_ode,
)
from stabsim.losses import Minimalist, Quadratic
from stabsim.maps import (
    constrained_trajectory,
    proj_M,
    run_gd,
    run_reduced,
    run_reduced_ensemble,
    stable_geometry,
    step,
)
from stabsim.spectral import eos_constants, sharpness, top_eigenpairs, tracked_top_eigenpairs

# L = 2θ²: GD is stable for η < 2/4 = 0.5; at η = 0.6 |θ| grows by |1 − 4η| = 1.4 a step
STEEP = Quadratic([4.0])
UNSTABLE = Quadratic([-1.0])  # L = −θ²/2: gradient flow θ(t) = θ0 e^{ηt}
#: a Ramp past whose cut θ₀ > 1 one derivative is NaN; every run below starts at θ₀ = 0,
#: and GD and the flows move θ₀ up by η a = 0.1 per step: the cut is met part-way, at t = 10
START = [0.0, 0.3]
GD_METHODS = ("gd", "heavy_ball", "nesterov", "normalised", "sqrt")

#: the record arrays of each result type (the fields that must hold no NaN)
RECORDS = {
    "GDResult": ("loss", "grad_norm", "sharpness", "eig_residual", "trajectory", "theta"),
    "Step": ("theta", "buf"),
    "FlowResult": ("step", "trajectory"),
    "ReducedODEResult": ("step", "trajectory", "log_x2"),
    "CentralFlowResult": ("step", "trajectory", "loss", "sharpness", "grad_norm2"),
    "ManifoldFlowResult": ("step", "trajectory", "lambda1", "rel_gap", "grad_norm"),
    "LimitPoint": ("theta",),
    "ReducedResult": ("x", "y"),
    "ConstrainedResult": ("trajectory", "loss", "sharpness"),
    "Projection": ("theta",),
}


def assert_finite_records(result):
    for name in RECORDS[type(result).__name__]:
        value = getattr(result, name)
        if value is not None:
            assert np.all(np.isfinite(value)), f"{type(result).__name__}.{name} has NaN/inf"


CASES = {
    # -- exact methods: too large a step, an overflow, a NaN part-way ----------------
    **{f"run_gd-{m}-diverges": (lambda m=m: run_gd(STEEP, [1.0], 0.6, 500, method=m),
                                {Status.DIVERGED}) for m in ("gd", "heavy_ball", "nesterov")},
    # normalised GD moves |θ| by η a step on L = −θ²/2: past divergence_norm = 10 in 15 steps
    "run_gd-normalised-diverges": (lambda: run_gd(UNSTABLE, [1.0], 0.6, 500,
                                                  method="normalised", divergence_norm=10.0),
                                   {Status.DIVERGED}),
    # GD on sqrt(L − L_min) with L_min = −1 above the loss's infimum: L − L_min = 1 − θ²/2
    # turns negative past θ = √2 and its square root NaN
    "run_gd-sqrt-below-loss-min": (
        lambda: run_gd(UNSTABLE, [1.0], 0.6, 500, method="sqrt", loss_min=-1.0),
        {Status.NONFINITE}),
    **{f"run_gd-{m}-overflows": (lambda m=m: run_gd(
        STEEP, [1.0], 0.6, 5000, method=m, divergence_norm=1e308), {Status.NONFINITE})
       for m in ("gd", "heavy_ball", "nesterov")},
    # (GD on sqrt(L + 10) takes steps η∇L/(2√(L + 10)) ≈ 0.016 here: the cut in ~60 steps)
    **{f"run_gd-{m}-nan-gradient": (lambda m=m: run_gd(
        ramp("grad"), START, 0.1, 300, method=m, loss_min=-10.0 if m == "sqrt" else None),
        {Status.NONFINITE}) for m in GD_METHODS},
    **{f"run_gd-nan-hessian-{e}": (lambda e=e: run_gd(
        ramp("hessian"), START, 0.1, 100, eigensolver=e), {Status.NONFINITE})
       for e in ("lanczos", "eigh")},
    "run_gd-nan-hessian-top2": (lambda: run_gd(ramp("hessian"), START, 0.1, 100, top_k=2),
                                {Status.NONFINITE}),
    "step-nan-gradient": (lambda: step(ramp("grad"), [2.0, 0.3], 0.1), {Status.NONFINITE}),
    "step-overflow": (lambda: step(STEEP, [1e308], 0.6), {Status.NONFINITE}),
    # -- the reduced map ----------------------------------------------------------
    # x0² = 1e320 overflows: y₁ = −inf
    "run_reduced-overflows": (lambda: run_reduced(1e160, 0.0, 0.01, 1.0, 1.0, 100),
                              {Status.NONFINITE}),
    "run_reduced-leaves-domain": (lambda: run_reduced(0.1, 0.0, 0.3, 1.0, 1.0, 2000),
                                  {Status.LEFT_DOMAIN}),
    # -- projections and the constrained trajectory -------------------------------
    "proj_M-nan-hessian": (lambda: proj_M(ramp("hessian"), [2.0, 0.3], 0.1),
                           {Status.NONFINITE}),
    "proj_M-overflow": (lambda: proj_M(Minimalist(), [1e200, 1.0], 0.1), {Status.NONFINITE}),
    # L = ¼(x²y² − 1)² from x = 1e200: x²y² overflows
    "constrained-overflow": (
        lambda: constrained_trajectory(Minimalist(), [1e200, 1.0], 0.1, 30),
        {Status.NONFINITE}),
    # -- flows: divergence, overflow, NaN part-way --------------------------------
    "gradient_flow-diverges": (lambda: gradient_flow(UNSTABLE, [1.0], 1.0, 100.0),
                               {Status.DIVERGED}),
    "gradient_flow-overflows": (lambda: gradient_flow(UNSTABLE, [1.0], 1.0, 1e4,
                                                      divergence_norm=np.inf),
                                {Status.NONFINITE}),
    "gradient_flow-nan-gradient": (lambda: gradient_flow(ramp("grad"), START, 0.1, 40.0),
                                   {Status.NONFINITE}),
    "central_flow-diverges": (lambda: central_flow(UNSTABLE, [1.0], 1.0, 100.0),
                              {Status.DIVERGED}),
    "central_flow-overflows": (lambda: central_flow(UNSTABLE, [1.0], 1.0, 1e4,
                                                    stride=1e4, divergence_norm=np.inf),
                               {Status.NONFINITE}),
    "central_flow-nan-gradient": (lambda: central_flow(ramp("grad"), START, 0.1, 40.0),
                                  {Status.NONFINITE}),
    "central_flow-nan-hessian": (lambda: central_flow(ramp("hessian"), START, 0.1, 40.0),
                                 {Status.NONFINITE}),
    "central_flow-multi-nan-hessian": (lambda: central_flow(
        ramp("hessian", dim=3), START + [0.2], 0.1, 40.0, max_critical=2), {Status.NONFINITE}),
    # ∇L = (−1, θ₁) never vanishes: the flow runs on to the cut, at flow time 1
    "limit_map-nan-gradient": (lambda: limit_map(ramp("grad"), START), {Status.NONFINITE}),
    "limit_map-nan-at-start": (lambda: limit_map(ramp("grad", cut=-1.0), START),
                               {Status.NONFINITE}),
    # x0² = 1e320 is past the float range: dy/dt = η(α − βx²/2) is −inf at the start
    "solve_reduced_ode-overflows": (lambda: solve_reduced_ode(1e160, 0.0, 1.0, 1.0, 1.0, 1e3),
                                    {Status.NONFINITE}),
    # d(ln x²)/dt = 2ηy = 2e160: no step the integrator can take is short enough
    "solve_reduced_ode-too-stiff": (lambda: solve_reduced_ode(1.0, 1e160, 1.0, 1.0, 1.0, 1e3),
                                    {Status.NOT_CONVERGED}),
    "solve_flow-nan-part-way": (lambda: solve_flow(
        lambda t, y: np.where(y < 2.0, 1.0, np.nan), [0.0], 5.0), {Status.NONFINITE}),
    "manifold_flow-nan-hessian": (lambda: manifold_flow(  # (2, 0): on Γ of this ramp
        ramp("hessian", a=0.0), [2.0, 0.0], 1.0, 1.0, geometry="ambient"), {Status.NONFINITE}),
}


def _case(name):
    case = CASES[name]
    if hasattr(case, "marks"):  # a pytest.param
        return pytest.param(name, *case.values, marks=case.marks, id=name)
    return pytest.param(name, *case, id=name)


@pytest.mark.parametrize(("name", "run", "statuses"), [_case(name) for name in sorted(CASES)])
def test_a_run_into_trouble_ends_with_a_status(name, run, statuses):
    with np.errstate(all="ignore"):
        result = run()
    assert result.status in statuses, f"{name}: {result.status!r}"
    assert_finite_records(result)


def test_an_ensemble_reports_each_trajectory():
    # one overflowing, one leaving the domain, one fine: a status each, and the final
    # states of the two that stopped are the last finite states before the stop
    result = run_reduced_ensemble([1e160, 0.1, 0.1], 0.0, [0.01, 0.3, 0.01], 1.0, 1.0, 2000)
    assert result.status_codes.tolist() == [Status.NONFINITE, Status.LEFT_DOMAIN, Status.OK]
    assert np.all(np.isfinite(result.y_final[1:]))


@pytest.mark.parametrize("call", [
    lambda: top_eigenpairs(ramp("hessian"), [2.0, 0.3]),
    lambda: top_eigenpairs(ramp("hessian", dim=5), [2.0, 0.3, 0.0, 0.0, 0.0],
                           eigensolver="lanczos"),
    lambda: sharpness(ramp("hessian"), [2.0, 0.3]),
    lambda: eos_constants(ramp("hessian"), [2.0, 0.3]),
    lambda: eos_constants(ramp("d3"), [2.0, 0.3]),
    # the compiled Lanczos of the flows' inner loops (d = 40 > SMALL_DIM), both pairs
    lambda: tracked_top_eigenpairs(ramp("hessian", dim=40), np.r_[2.0, 0.3, np.zeros(38)], 2),
], ids=["eigh", "lanczos", "sharpness", "eos-hessian", "eos-d3", "tracked"])
def test_spectral_functions_refuse_a_nan_derivative(call):
    # H = [[0, NaN], [0, 1]]: eigh reads the lower triangle and would answer {0, 1}
    with pytest.raises(NonFiniteError, match="NONFINITE"):
        call()


def test_a_nan_hessian_leaves_no_finite_geometry():
    geometry = stable_geometry(ramp("hessian"), [2.0, 0.3])
    assert np.isnan(geometry.sharpness) and np.isnan(geometry.lambda2)
    assert np.all(np.isnan(geometry.u)) and np.all(np.isnan(geometry.grad_sharpness))


def test_records_table_names_real_fields():
    # the table above must not silently check nothing
    from stabsim.flows import CentralFlowResult, FlowResult, LimitPoint, ManifoldFlowResult
    from stabsim.maps import ConstrainedResult, GDResult, Projection, ReducedResult

    for cls in (GDResult, FlowResult, CentralFlowResult, ManifoldFlowResult, LimitPoint,
                ReducedResult, ConstrainedResult, Projection):
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(RECORDS[cls.__name__]) <= names, cls.__name__


def test_a_central_field_where_the_hessian_overflows_is_nan_not_an_error():
    # x²y² overflows at (1e100, 1e100) on the minimalist loss, so its top eigenvector is
    # NaN there; ∇S = ∇³L[u, u] from it raised ValueError inside a right-hand side (met
    # part-way by a flow at η ≈ 1e263 from a Hypothesis start), instead of a NaN that
    # solve_flow reports as NONFINITE
    from stabsim.flows.central import _Field, _MultiField

    w = np.array([1e100, 1e100])
    field = _Field(Minimalist(), 0.1)
    assert not np.all(np.isfinite(field.boundary_flow(0.0, w)))
    assert not np.isfinite(field.leaves_boundary(0.0, w)) and not field.flat(w, True)
    multi = _MultiField(Minimalist(), 0.1, 2, 0.1)
    assert not np.all(np.isfinite(multi.flow(2)(0.0, w))) and not multi.flat(w, 2)
