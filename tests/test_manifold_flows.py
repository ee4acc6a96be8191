"""Normalised GD and GD on sqrt(L) track their flows on Γ with error O(η) (docs/theory.md §4).

Where the O(η) comes from (measured, see compare_manifold's docstring):

- on a flat Γ, once the iterates oscillate across Γ the drift of x per two steps is the flow's
  Euler step with relative error O(η²), so the O(η) error is made in the transient: the
  O(1/η) steps of the approach to Γ follow the gradient-flow path only to O(η);
- on a curved Γ the period-2 orbit is in general not centred on Γ: its offset o ∈ [−A, A]
  (A the half-amplitude) is set by the approach and relaxes only slowly, and the drift
  error is ∝ η·o/A. That keeps the error O(η) but makes its constant depend on the start,
  so the order is fitted on the root mean square over several starts. For GD on sqrt(L)
  the offset moves to an attracting, nearly one-sided orbit; err/η reaches its limit only
  for η ≲ 0.01 (at η = 0.04 → 0.01 it still grows by half), hence the η values below.
"""

import functools
import math

import numpy as np
import pytest

from stabsim.compare_manifold import compare_manifold_flow
from stabsim.losses import ManifoldFamily
from stabsim.spectral import sharpness_gradient

K = [[[0.5, 0.1], [0.1, -0.3]], [[0.2, 0.0], [0.0, 0.1]]]
# four starts: on a curved Γ the error constant depends on the start
STARTS = ([1.0, 0.8, 0.3, 0.2], [0.6, 1.1, -0.4, 0.3], [1.3, 0.4, 0.5, -0.2],
          [0.8, 0.5, -0.25, -0.35])
ETAS = (0.01, 0.005, 0.0025)  # 10⁴ … 1.6·10⁵ steps for T = 1: milliseconds in the engine
T = 1.0
WRONG = {"normalised": 0.5, "sqrt": 0.25}  # twice the theory's constants 1/4 and 1/8


def family(curved):
    # h1 ∈ [2, ~4] stays well above h2 ∈ [0.5, ~0.8] on the region visited: λ1 simple
    return ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]],
                          K=K if curved else None)


@functools.cache
def comparisons(curved, method, coefficient=None, n_starts=4):
    loss = family(curved)
    # the slow-time horizon T is ⌈T/η²⌉ steps; about 10 records
    return [[compare_manifold_flow(loss, start, eta, math.ceil(T / eta**2), method=method,
                                   stride=max(1, math.ceil(T / eta**2) // 10),
                                   coefficient=coefficient) for start in STARTS[:n_starts]]
            for eta in ETAS]


def fitted_order(errors):
    """Slope of log(error) against log(η) by least squares."""
    return float(np.polyfit(np.log(ETAS), np.log(errors), 1)[0])


def rms_max_error(rows):
    return np.array([np.sqrt(np.mean([c.max_error() ** 2 for c in row])) for row in rows])


@pytest.mark.parametrize("curved", [False, True], ids=["flat", "curved"])
@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_tracking_error_is_first_order_in_eta(curved, method):
    rows = comparisons(curved, method)
    assert all(c.success for row in rows for c in row), [c.message for r in rows for c in r]
    errors = rms_max_error(rows)
    order = fitted_order(errors)
    assert 0.8 <= order <= 1.2, (errors, order)


@pytest.mark.parametrize("curved", [False, True], ids=["flat", "curved"])
@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_wrong_constant_does_not_converge(curved, method):
    # negative control: with twice the constant the flow runs twice as fast, so the error at
    # τ = T is the O(1) distance the flow travels, whatever η
    wrong = comparisons(curved, method, WRONG[method], n_starts=1)
    errors = np.array([row[0].max_error() for row in wrong])
    assert abs(fitted_order(errors)) < 0.2, errors
    right = comparisons(curved, method)[-1][0].max_error()
    assert errors[-1] > 20.0 * right, (errors[-1], right)


def _slope_of_log_lambda1_along_u(comparison, row, loss):
    """κ = |u·∇ log λ1| at Φ(θ_t), with ∇λ1 = ∇³L[u, u]: λ1's relative change across Γ."""
    phi = comparison.phi[row]
    u = np.linalg.eigh(loss.hessian(phi))[1][:, -1]
    return abs(u @ sharpness_gradient(loss, phi, u)) / comparison.lambda1[row]


@pytest.mark.parametrize("curved", [False, True], ids=["flat", "curved"])
@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_oscillation_amplitude_and_edge_of_stability(curved, method):
    # Across Γ, |∇L| ≈ λ1|d|(1 + κd/2) and sqrt(L − L_min) ≈ sqrt(λ1/2)|d|(1 + κd/6) at a
    # displacement d along u (κ = u·∇ log λ1, 0 on a flat Γ), with |d| ≤ 2A. Hence
    # - half-amplitude: exactly η/2·alignment for normalised GD, and η|∇L|/(4 sqrt L) =
    #   A(1 + κd/3) for sqrt: relative error ≤ (2/3)κA, bounded here by κA;
    # - the two-step harmonic mean of e = λ1 × effective step: 2 on a period-2 orbit of the
    #   linearised map, shifted by ≈ 2κ·o·(1 or 2/3) for an orbit offset o, |o| ≤ A.
    # Second-order terms ((κd)², and the jump's misalignment with u squared) are below η²
    # for this loss.
    loss = family(curved)
    for eta, row in zip(ETAS, comparisons(curved, method), strict=True):
        for c in row:
            window = np.flatnonzero(c.window(0.1))  # the O(1/η)-step approach is over
            kappa = max(_slope_of_log_lambda1_along_u(c, i, loss) for i in window)
            amp = c.predicted_half_amplitude[window]
            amp_error = np.abs(c.half_amplitude[window] / amp - 1.0)
            assert np.all(amp_error <= kappa * amp + eta**2), (eta, amp_error.max())
            eos_error = np.abs(c.eos_harmonic[window] - 2.0)
            assert np.all(eos_error <= 2.0 * kappa * amp + eta**2), (eta, eos_error.max())


def test_result_exports_to_xarray():
    c = comparisons(True, "normalised")[0][0]
    ds = c.to_xarray()
    assert ds.attrs["status"] == "OK" and ds.attrs["method"] == "normalised"
    assert ds.sizes["step"] == c.step.shape[0] and ds.sizes["param"] == 4
    # the dataset carries the result's own arrays, each under its own name
    for name in ("phi", "flow", "error", "lambda1", "half_amplitude", "eos_harmonic"):
        np.testing.assert_array_equal(ds[name].values, getattr(c, name))
    np.testing.assert_array_equal(ds["tau"].values, c.tau)


def test_bad_arguments_are_named():
    loss = family(False)
    with pytest.raises(ValueError, match="method"):
        compare_manifold_flow(loss, STARTS[0], 0.01, 100, method="gd")
    with pytest.raises(ValueError, match="eta"):
        compare_manifold_flow(loss, STARTS[0], 0.0, 100)
    with pytest.raises(ValueError, match="theta0"):
        compare_manifold_flow(loss, [1.0, 2.0], 0.01, 100)


def test_an_oscillation_that_is_undefined_makes_the_comparison_undefined():
    # L = ½ z², Γ = {z = 0}: normalised GD from z = 0.5 at η = 0.25 reaches z = 0 exactly at
    # step 2, where ∇L = 0 and the next step is undefined (0/0). Its rows there are NaN,
    # which a result may hold only under a status that says why: UNDEFINED, naming the step.
    loss = ManifoldFamily([1.0], [[0.0]])
    c = compare_manifold_flow(loss, [0.0, 0.5], 0.25, 2, stride=1)
    assert c.status.name == "UNDEFINED"
    assert "oscillation at step 1 is undefined" in c.message  # θ_2 = 0 is one step later
    assert np.isnan(c.eos_harmonic[1]) and np.isfinite(c.eos_harmonic[0])
    # where every row is defined the comparison stays OK
    assert comparisons(True, "normalised")[0][0].status.name == "OK"


def test_a_comparison_without_records_has_no_error_to_maximise():
    # started on Γ, normalised GD has ∇L = 0 at once (ZERO_GRADIENT): its one record is the
    # start, where Φ(θ₀) = θ₀ is the flow's start too (error 0), and where the step, and
    # with it the oscillation, is undefined (NaN, as the status says)
    c = compare_manifold_flow(ManifoldFamily([2.0, 0.5], [[1.0], [0.2]]), [0.5, 0.0, 0.0],
                              0.01, 100)
    assert c.status.name == "ZERO_GRADIENT" and c.step.tolist() == [0]
    assert c.max_error() == 0.0 and np.all(np.isnan(c.half_amplitude))
    assert np.isnan(c.max_error(tau0=1e-3))  # no record from there on
    assert np.isnan(comparisons(True, "normalised")[0][0].max_error(tau0=10.0))  # past T = 1


def test_a_limit_map_out_of_flow_time_names_this_calls_knob():
    # a weak normal curvature (h₂ = 1e-6) makes the gradient flow to Γ slow: Φ runs out of
    # flow time, and the message must name the knob compare_manifold_flow has
    loss = ManifoldFamily([2.0, 1e-6], [[1.0], [0.0]])
    c = compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 20, stride=10)
    assert c.status.name == "MAX_STEPS" and c.knob == "phi_s_max"
    assert "`s_max`" not in c.message and "`phi_s_max`" in c.message
    longer = compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 20, stride=10,
                                   phi_s_max=1e12)
    assert longer.knob != "phi_s_max"


def test_a_limit_map_out_of_evaluations_names_this_calls_knob():
    # each Φ's budget of gradient evaluations is this call's phi_max_rhs_evals (limit_map's
    # max_rhs_evals): the slow flow to Γ above runs out of 50 of them long before its flow
    # time
    loss = ManifoldFamily([2.0, 1e-6], [[1.0], [0.0]])
    c = compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 20, stride=10,
                              phi_max_rhs_evals=50)
    assert c.status.name == "MAX_STEPS" and c.knob == "phi_max_rhs_evals"
    assert "`max_rhs_evals`" not in c.message and "`phi_max_rhs_evals`" in c.message
    assert c.parameters["phi_max_rhs_evals"] == 50
    # three Φ (of the records at steps 0, 10 and 20), each within its budget
    assert c.counters["limit_map_rhs_evals"] <= 3 * 50


def test_a_manifold_flow_out_of_evaluations_names_this_calls_knob():
    # the flow's budget of evaluations is this call's flow_max_rhs_evals (manifold_flow's
    # max_rhs_evals): a flow that runs out of it is named by that knob
    loss = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])
    c = compare_manifold_flow(loss, [1.0, 0.8, 0.3, 0.2], 0.05, 40, stride=20,
                              flow_max_rhs_evals=5)
    assert c.status.name == "MAX_STEPS" and c.knob == "flow_max_rhs_evals"
    assert "`flow_max_rhs_evals`" in c.message and c.counters["flow_rhs_evals"] == 5
    assert c.parameters["flow_max_rhs_evals"] == 5
    assert compare_manifold_flow(loss, [1.0, 0.8, 0.3, 0.2], 0.05, 40, stride=20,
                                 flow_max_rhs_evals=None).success


def test_the_offset_keeps_its_sign_along_the_run():
    # the centre of the oscillation and Φ(θ_t) move slowly, so u·((θ_t + θ_{t+1})/2 − Φ(θ_t))
    # is continuous: u is signed by the previous row's, not by the eigensolver (which gave
    # −0.0029 at rows 15-17 and +0.0029 from row 18 here); at row 0 u's largest entry is > 0
    loss = ManifoldFamily([2.0, 0.5], [[1.0], [0.2]])
    c = compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 4000, stride=40)
    assert c.success and np.all(np.isfinite(c.offset))
    assert np.all(np.sign(c.offset) == np.sign(c.offset[0])), c.offset
    # row 0 by its own rule, from a dense eigenvector and one GD step computed here
    theta0 = np.array([0.5, 0.1, 0.1])
    u = np.linalg.eigh(loss.hessian(c.phi[0]))[1][:, -1]
    u = u if u[np.argmax(np.abs(u))] > 0 else -u
    theta1 = theta0 - 0.01 * loss.grad(theta0)
    assert np.sign(c.offset[0]) == np.sign(u @ ((theta0 + theta1) / 2 - c.phi[0]))
