"""Edges of the engines: a manifold flow started off Γ, GD on sqrt(L − L_min) where the
square root is undefined, the adaptive engine's counters and its preconditioned sharpness
for a tiny ε, and records that would not fit in memory."""

import contextlib
import re

import numpy as np
import pytest
from nonfinite_families import ramp

import stabsim.maps.adaptive as adaptive_module
from stabsim import Status, compare_manifold_flow, manifold_flow
from stabsim.flows import limit_map
from stabsim.losses import ManifoldFamily, Quadratic, QuadraticRegression, ScalarNetwork
from stabsim.maps import run_adaptive, run_gd, run_sgd, step

# -- manifold_flow starts on Γ ----------------------------------------------------------

FLAT = ManifoldFamily([2.0], [[0.5]], [[0.3]])  # Γ = {z = 0}, λ1 = h(x) = 2 + ¼(x − 0.3)²
CURVED = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]],
                        K=[[[0.5, 0.1], [0.1, -0.3]], [[0.2, 0.0], [0.0, 0.1]]])
OFF = np.array([1.0, 0.05])  # 0.05 off Γ along z


def _no_work(*args, **kwargs):
    raise AssertionError("work done before theta0 was checked")


@pytest.mark.parametrize("geometry", ["chart", "ambient"])
def test_a_start_off_gamma_is_refused_before_any_work(geometry, monkeypatch):
    # before, the ambient geometry from OFF returned OK with x(T) = 1.912 where the flow from
    # Φ(OFF) ends at x = 0.9958, and the chart one silently started from (x, g(x))
    import stabsim.flows.manifold as manifold_module

    monkeypatch.setattr(manifold_module, "solve_flow", _no_work)
    monkeypatch.setattr(manifold_module, "tangent_space", _no_work)
    loss = ManifoldFamily([2.0], [[0.5]], [[0.3]])
    monkeypatch.setattr(loss, "normal_eigenvalues", _no_work)
    with pytest.raises(ValueError) as info:
        manifold_flow(loss, OFF, 0.01, 1000, stride=500, geometry=geometry)
    message = str(info.value)
    # how far off: |∇L| = h(x)·z = 2.0225·0.05 at x = 1 (∂L/∂x = ½h'(x)z² is 4e-4 of it),
    # and z − g(x) = 0.05
    assert f"|∇L(theta0)| = {np.linalg.norm(loss.grad(OFF)):.3g}" in message
    assert "|z − g(x)| = 0.05" in message
    assert "limit_map" in message and "start_tol = 1e-10" in message


@pytest.mark.parametrize(("loss", "theta0"), [
    (FLAT, OFF), (CURVED, [1.0, 0.8, 0.3, 0.2]), (ScalarNetwork(2), [1.5, 0.3]),
    (ScalarNetwork(3), [1.3, 0.9, 0.7]),
], ids=["flat", "curved", "scalar2", "scalar3"])
@pytest.mark.parametrize("geometry", ["auto", "ambient"])
def test_limit_map_outputs_are_accepted(loss, theta0, geometry):
    # Φ(θ₀) as limit_map returns it (|∇L| ≤ its default tol 1e-10, about 5e-11 here) is a
    # start on Γ for both geometries (the chart, where the loss has one, under "auto")
    limit = limit_map(loss, theta0)
    assert limit.success and limit.grad_norm <= 1e-10
    flow = manifold_flow(loss, limit.theta, 0.01, 1000, stride=500, geometry=geometry)
    assert flow.success, flow.message
    assert flow.parameters["start_tol"] == limit.tol


def test_start_tol_is_the_tolerance_limit_map_was_given():
    limit = limit_map(FLAT, OFF, tol=1e-6)
    assert limit.success and 1e-10 < limit.grad_norm <= 1e-6  # stopped at |∇L| = tol/2
    with pytest.raises(ValueError, match=r"start_tol = 1e-10"):
        manifold_flow(FLAT, limit.theta, 0.01, 1000, stride=500)
    assert manifold_flow(FLAT, limit.theta, 0.01, 1000, stride=500, start_tol=1e-6).success
    # compare_manifold_flow passes its phi_tol on: its Φ(θ₀) is the flow's start
    c = compare_manifold_flow(FLAT, OFF, 0.05, 40, stride=20, phi_tol=1e-6)
    assert c.flow_result.success and c.flow_result.parameters["start_tol"] == 1e-6


def test_a_nan_gradient_at_the_start_is_left_to_the_integrator():
    # no distance to Γ can be measured: the flow reports NONFINITE, as every flow does
    flow = manifold_flow(ramp("grad", a=0.0, cut=-1.0), [2.0, 0.0], 1.0, 1.0,
                         geometry="ambient")
    assert flow.status is Status.NONFINITE


def test_a_comparison_whose_start_is_not_reached_runs_no_flow():
    # h₂ = 1e-6 makes the gradient flow to Γ slow: Φ(θ₀) runs out of flow time 0.037 off Γ
    # along the soft direction (|∇L| = 3.7e-8), a start the flow would refuse
    loss = ManifoldFamily([2.0, 1e-6], [[1.0], [0.0]])
    c = compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 20, stride=10)
    assert c.status is Status.MAX_STEPS and c.knob == "phi_s_max"
    assert c.flow_result is None and c.step.size == 0 and c.counters["flow_rhs_evals"] == 0
    assert "manifold flow" in c.message and "not run" in c.message
    assert c.coefficient == 0.25  # the theory's constant of normalised GD


def test_a_comparison_on_sqrt_with_the_last_iterate_below_loss_min_says_so():
    # L = z² (h = 2), θ₀ = (0, 1), L_min = ½: one step of GD on sqrt(L − ½) moves z by
    # η·2z/(2 sqrt(½)) = 0.707 to z = 0.293, L = 0.086 < ½. The oscillation of that last
    # record is undefined (run_gd refuses to start there), and so is the one before, whose
    # e_{t+1} needs sqrt(L − ½) at z = 0.293: the message names that first one
    loss = ManifoldFamily([2.0], [[0.0]])
    c = compare_manifold_flow(loss, [0.0, 1.0], 0.5, 1, stride=1, method="sqrt",
                              loss_min=0.5)
    assert c.status is Status.UNDEFINED and c.gd.loss[1] < 0.5
    assert np.all(np.isnan(c.half_amplitude[1:])) and np.isfinite(c.half_amplitude[0])
    assert "oscillation at step 0 is undefined" in c.message and "L < L_min" in c.message


# -- GD on sqrt(L − L_min) ---------------------------------------------------------------

NET3 = ScalarNetwork(3)
START3 = [1.3, 0.9, 0.7]  # L = ½(0.819 − 1)² = 0.0164


@pytest.mark.parametrize("run", [
    lambda loss_min: run_gd(NET3, START3, 0.05, 20, method="sqrt", loss_min=loss_min),
    lambda loss_min: step(NET3, START3, 0.05, method="sqrt", loss_min=loss_min),
], ids=["run_gd", "step"])
def test_a_loss_min_above_the_start_is_refused(run):
    with pytest.raises(ValueError, match=r"L\(theta0\) = 0\.01638\d* < loss_min = 1\.0"):
        run(1.0)
    with pytest.raises(ValueError, match="undefined"):
        run(0.02)


def test_a_loss_that_falls_below_loss_min_is_named():
    # L(θ₀) = 0.0164 ≥ 0.01, and one step later L = 3.4e-4 < 0.01
    r = run_gd(NET3, START3, 0.05, 200, method="sqrt", loss_min=0.01)
    assert r.status is Status.NONFINITE and r.counters["steps"] == 1
    assert "at step 1" in r.message and "went below loss_min" in r.message


def test_a_loss_min_reached_with_a_nonzero_gradient_is_an_infinite_step():
    # loss_min = L(θ₀) exactly: L − L_min = 0 with ∇L ≠ 0, a step η∇L/0; not a zero gradient
    r = run_gd(NET3, START3, 0.05, 20, method="sqrt", loss_min=NET3.value(START3))
    assert r.status is Status.NONFINITE and r.counters["steps"] == 0
    assert "infinite" in r.message and "L − loss_min = 0" in r.message


@pytest.mark.parametrize(("theta", "words"), [
    ([1.0, 1.0, 1.0], "minimiser with L = loss_min, where the step η∇L/(2 sqrt(L − loss_min)) "
                      "is 0/0"),
    ([0.0, 0.0, 0.0], "critical point above loss_min, where the step "
                      "η∇L/(2 sqrt(L − loss_min)) is 0"),
])
def test_a_zero_gradient_of_sqrt_says_what_its_step_is(theta, words):
    # ∏w = 1 (L = 0 = L_min) and w = 0 (L = ½, a saddle): ∇L = 0 exactly at both
    for result in (run_gd(NET3, theta, 0.05, 20, method="sqrt"),
                   step(NET3, theta, 0.05, method="sqrt")):
        assert result.status is Status.ZERO_GRADIENT and words in result.message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nonfinite_loss_min_is_named_as_such(bad):
    # ScalarNetwork has min_value 0: the fault is the value given, not the loss
    with pytest.raises(ValueError, match="loss_min must be finite") as info:
        run_gd(NET3, START3, 0.05, 20, method="sqrt", loss_min=bad)
    assert "no known" not in str(info.value)


# -- run_adaptive: gradients counted, tiny ε ------------------------------------------


@pytest.mark.parametrize(("args", "kwargs", "status", "steps"), [
    # ε = 0 and ν₁ = 0 on the second coordinate: no preconditioned sharpness at step 0
    ((Quadratic([1.0, 2.0]), [1.0, 0.0], 0.01, 10), {}, Status.NONFINITE, 0),
    # the first step is 10η = 10 (ν = 0.01 g²): |w_1| = 9 > 5
    ((Quadratic([1.0]), [1.0], 1.0, 10), {"divergence_norm": 5.0}, Status.DIVERGED, 1),
    ((Quadratic([1.0, 2.0]), [1.0, 0.5], 0.01, 10), {}, Status.OK, 10),
])
def test_adaptive_counts_the_gradient_of_the_state_it_stopped_at(args, kwargs, status, steps):
    # the engine evaluates ∇L at each state it reaches before checking it: one per update
    # and one at the last (or failing) state
    r = run_adaptive(*args, **kwargs)
    assert r.status is status
    assert r.counters == {"steps": steps, "gradients": steps + 1}


def test_adaptive_interrupted_counts_the_states_evaluated(monkeypatch):
    # Ctrl-C read after the first chunk of 3 steps: states 0, 1, 2 evaluated, 3 not reached
    class AfterOneChunk:
        asked = 0

        @property
        def requested(self):
            self.asked += 1
            return self.asked > 1

    @contextlib.contextmanager
    def interrupt_after_one_chunk():
        yield AfterOneChunk()

    monkeypatch.setattr(adaptive_module, "deferred_interrupt", interrupt_after_one_chunk)
    r = run_adaptive(Quadratic([1.0, 2.0]), [1.0, 0.5], 0.01, 10, chunk_steps=3)
    assert r.status is Status.INTERRUPTED
    assert r.counters == {"steps": 3, "gradients": 3}


@pytest.mark.parametrize("eigensolver", ["lanczos", "eigh"])
@pytest.mark.parametrize("eps", [1e-8, 1e-160, 1e-300])
def test_preconditioned_sharpness_for_a_tiny_eps(eps, eigensolver):
    # ν stays 0 on the coordinate whose gradient is 0, so λ_max(P⁻¹H) = 2/ε there: 2e160 and
    # 2e300 are finite, but the products with D H D (D = P^{-1/2} = ε^{-1/2}) squared in
    # Lanczos's dot products overflowed from ε ≈ 1e-154. Against NumPy's eigvalsh of D H D
    # from the recorded ν: to eig_tol = 1e-10 (the relative residual, which bounds the error
    # of a Ritz value of a symmetric operator) for Lanczos, to round-off for eigh
    loss = Quadratic([1.0, 2.0, 3.0])
    r = run_adaptive(loss, [1.0, 0.0, 1.0], 0.01, 2, eps=eps, eigensolver=eigensolver,
                     record_trajectory=True)
    assert r.success, r.message
    for t in range(3):
        scale = 1.0 / np.sqrt(np.sqrt(r.nu_trajectory[t]) + eps)
        H = loss.hessian(r.trajectory[t])
        expected = np.linalg.eigvalsh(scale[:, None] * H * scale[None, :])[-1]
        rtol = 1e-10 if eigensolver == "lanczos" else 1e-14
        assert r.preconditioned_sharpness[t] == pytest.approx(expected, rel=rtol)
        assert r.preconditioned_residual[t] <= 1e-10 * r.preconditioned_sharpness[t]
    assert r.preconditioned_sharpness[0] == pytest.approx(2.0 / eps, rel=1e-10)


def test_a_preconditioned_sharpness_past_the_float_range_is_nonfinite():
    # 2/ε = 2e310 for ε = 1e-310: not a double
    r = run_adaptive(Quadratic([1.0, 2.0, 3.0]), [1.0, 0.0, 1.0], 0.01, 2, eps=1e-310)
    assert r.status is Status.NONFINITE and r.counters["steps"] == 0


# -- records that do not fit -------------------------------------------------------------

HUGE = 10**11
REGRESSION = QuadraticRegression(np.eye(3)[:2], np.zeros((2, 3, 3)), [1.0, -1.0])


@pytest.mark.parametrize(("run", "width"), [
    (lambda **kw: run_gd(Quadratic([1.0, 2.0]), [1.0, 0.5], 0.01, HUGE, **kw), 3 + 1),
    (lambda **kw: run_adaptive(Quadratic([1.0, 2.0]), [1.0, 0.5], 0.01, HUGE, **kw), 6),
    (lambda **kw: run_sgd(REGRESSION, np.zeros(3), 0.01, HUGE, batch_size=1, **kw), 7),
], ids=["run_gd", "run_adaptive", "run_sgd"])
@pytest.mark.parametrize("record_trajectory", [False, True])
def test_records_that_would_not_fit_are_refused_by_name(run, width, record_trajectory):
    # HUGE + 1 rows of `width` floats (d = 2 or 3 more with the trajectory; ν's d more for
    # the adaptive engine): NumPy raised MemoryError for 745 GiB and more
    with pytest.raises(ValueError) as info:
        run(record_trajectory=record_trajectory)
    message = str(info.value)
    assert re.search(rf"steps = {HUGE} at stride = 1 would take [\d.e+]+ GiB", message)
    assert "raise `stride` or lower `steps`" in message
    if not record_trajectory:
        assert f"{8 * (HUGE + 1) * width / 2**30:.3g} GiB" in message


def test_gd_measures_the_sharpness_of_a_tiny_hessian():
    # a quadratic scaled to ‖A‖ ≈ 1e-169: the squares of Lanczos's products underflowed and
    # run_gd reported the sharpness 80% low with status OK. Now it is that of A, scaled: within
    # the relative-residual tolerance 1e-10 (Bauer–Fike, A symmetric) at every record
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(40, 40))
    matrix += matrix.T
    top = np.linalg.eigvalsh(matrix)[-1]
    size = 1e-170
    r = run_gd(Quadratic(size * matrix), rng.normal(size=40), 1.0 / (size * top), 5)
    assert r.success, r.message
    np.testing.assert_allclose(r.sharpness[:, 0], size * top, rtol=1e-10)


@pytest.mark.parametrize("size", [1e170, 1e-170])
def test_gd_records_the_gradient_norm_at_every_scale(size):
    # at ‖A‖ ≈ 1e170 the gradient (≈ 1e171) is finite but its square is not: GD ended at once
    # with "a NaN or inf appeared"; at 1e-170 the square underflowed to 0. Now the norm is
    # that of the scaled gradient, to round-off (a sum of 40 squares and a scaling), and GD
    # runs: the same iterates, in units of the scale, as on A itself
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(40, 40))
    matrix = matrix @ matrix.T / 40
    theta0 = rng.normal(size=40)
    eta = 1.0 / np.linalg.eigvalsh(matrix)[-1]
    scaled = run_gd(Quadratic(size * matrix), theta0, eta / size, 5)
    assert scaled.success, scaled.message
    unit = run_gd(Quadratic(matrix), theta0, eta, 5)
    np.testing.assert_allclose(scaled.grad_norm / size, unit.grad_norm, rtol=1e-13)


@pytest.mark.parametrize("method", ["adam", "rmsprop", "scalar_rmsprop"])
def test_adaptive_methods_stop_where_the_squares_of_their_state_overflow(method):
    # ν is built from g_i² (Σ g_i² for scalar RMSProp): at a gradient of 1e170 it is inf, the
    # step m/(√ν + ε) is 0 and θ would never move. That is NONFINITE, not a run that stands
    # still with status OK (what a finite |g| alone let through)
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(6, 6))
    matrix = matrix @ matrix.T / 6 + np.eye(6)
    r = run_adaptive(Quadratic(1e170 * matrix), rng.normal(size=6), 0.01, 20, method=method)
    assert r.status is Status.NONFINITE
