"""θ† + v against GD (docs/theory.md §2) on ``QuadraticRegression.two_scale(η)``.

The predictions θ_t ≈ θ†_t + v_t, L(θ_t) ≈ L(θ†_t) + x_t²/η and S(θ_t) ≈ S(θ†_t) + y_t +
(u·∇S)x_t hold while v is O(δ): from the crossing until GD's first blow-up (|x| reaching δ,
phase III). To keep the orbit at the theory's scale the start is GD's iterate at the
crossing kicked by κδ along u (κ = 1e-2, so that ln(δ²/x²) at the start — which sets the
orbit's size — does not depend on η); from GD's own round-off-sized x the orbit grows as η
shrinks and the unmodelled u-component of ½∇³L[v, v] takes over (measured below).
"""

import numpy as np
import pytest

from stabsim.losses import QuadraticRegression
from stabsim.maps import run_gd
from stabsim.maps.constrained import constrained_trajectory
from stabsim.maps.projection import stable_geometry
from stabsim.spectral import eos_constants

KICK = 1e-2


def _gd_x(loss, dag, iterates):
    """GD's x_t = u(θ†_t)·(θ_t − θ†_t), u signed consistently along θ†."""
    out, prev = np.empty(len(iterates)), None
    for t, (theta, dagger) in enumerate(zip(iterates, dag.trajectory, strict=True)):
        u = stable_geometry(loss, dagger, prev).u
        out[t], prev = u @ (theta - dagger), u
    return out


def _kicked(eta):
    loss = QuadraticRegression.two_scale(eta)
    first = run_gd(loss, np.zeros(loss.dim), eta, int(round(3.0 / eta)), record_trajectory=True)
    at = first.trajectory[first.crossing_step]
    const = eos_constants(loss, at)
    start = at + KICK * const.delta * const.u
    steps = int(round(3.0 / eta))
    gd = run_gd(loss, start, eta, steps, record_trajectory=True, find_crossing=False)
    dag = constrained_trajectory(loss, start, eta, steps)
    return loss, gd, dag


def _errors(eta):
    loss, gd, dag = _kicked(eta)
    delta = np.sqrt(dag.delta2)
    gd_x = _gd_x(loss, dag, gd.trajectory)
    blow = int(np.argmax(np.abs(gd_x) >= delta))  # GD's first entry into phase III
    predicted_blow = int(np.argmax(np.abs(dag.x) >= delta))
    w = slice(0, blow)

    def rms(a):
        return float(np.sqrt(np.mean(a[w] ** 2)))

    return {
        "blow": blow, "predicted_blow": predicted_blow,
        "theta": rms(np.linalg.norm(gd.trajectory - dag.predicted_theta, axis=1)),
        "theta_dagger": rms(np.linalg.norm(gd.trajectory - dag.trajectory, axis=1)),
        "loss": rms(gd.loss - dag.predicted_loss),
        "excess": rms(gd.loss - dag.loss),
        "sharpness": rms(gd.sharpness[:, 0] - dag.predicted_sharpness),
        "y": rms(dag.y),
        "vperp": float(np.max(dag.v_perp[w] / delta[w])),
    }


@pytest.fixture(scope="module")
def errors():
    etas = np.array([0.01, 0.005, 0.0025])
    return etas, [_errors(eta) for eta in etas]


def test_predictions_hold_until_the_first_blow_up(errors):
    _, runs = errors
    for r in runs:
        assert r["vperp"] < 1.0  # the window where docs/theory.md §2 says the predictions hold
        # the blow-up is predicted to the step (measured: one step late at each η)
        assert abs(r["predicted_blow"] - r["blow"]) <= 2
        # θ† + v is better than θ† by a factor O(δ) (δ = 0.012–0.024; measured 0.021–0.011)
        assert r["theta"] < 0.1 * r["theta_dagger"]
        # the loss and sharpness predictions: relative errors O(δ) against the excess
        # L(θ) − L(θ†) = O(x²/η) and the RMS of y (measured 0.23–0.12 ≈ 10δ and
        # 0.032–0.015 ≈ 1.3δ); the bounds allow twice those constants at the largest δ
        assert r["loss"] < 0.5 * r["excess"]
        assert r["sharpness"] < 0.1 * r["y"]


def test_prediction_errors_shrink_at_the_theoretical_rate(errors):
    """With δ² = 2α/β ∝ η on this model: |θ − θ†| = O(δ) (order ½); the neglected terms of
    θ† + v are O(δ²) (order 1); those of the loss, cubic in v against x²/η = O(1), are O(δ)
    (order ½); those of the sharpness, quadratic in v against y = O(δ⁻¹), are O(1)
    (order 0). The margin 0.25 covers the next term of each expansion (a further relative
    O(δ) ≈ 0.1) and the window's cut at a whole step (measured orders 0.53, 1.00, 0.55,
    0.05)."""
    etas, runs = errors

    def order(key):
        return np.polyfit(np.log(etas), np.log([r[key] for r in runs]), 1)[0]

    assert abs(order("theta_dagger") - 0.5) < 0.25
    assert abs(order("theta") - 1.0) < 0.25
    assert abs(order("loss") - 0.5) < 0.25
    assert abs(order("sharpness")) < 0.25


def test_exact_projection_displacement_does_not_seed_a_spurious_oscillation():
    """From GD's own crossing (no kick) at η = 0.01: the paper's first-order ½ηδ²∇S⊥ term
    misses the projection's shift along u, which sets x off by a step in the first update
    and starts an oscillation that blows up 11 steps before GD's; the exact displacement
    follows GD (measured: x_{t_c+1} 3.433e-8 against GD's 3.434e-8, the paper's 6.77e-8;
    blow-up 4 steps late)."""
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    steps = 400
    gd = run_gd(loss, np.zeros(loss.dim), eta, steps, record_trajectory=True)
    tc = gd.crossing_step
    window = gd.trajectory[tc:]
    blows = {}
    for displacement in ("exact", "paper"):
        dag = constrained_trajectory(loss, window[0], eta, steps - tc,
                                     displacement=displacement)
        gd_x = _gd_x(loss, dag, window)
        delta = 0.1 * np.sqrt(dag.delta2)
        blows[displacement] = (int(np.argmax(np.abs(gd_x) > delta)),
                               int(np.argmax(np.abs(dag.x) > delta)))
        first = abs(dag.x[1] / gd_x[1] - 1.0)
        # the exact displacement reproduces GD's first step to the size of the dropped
        # terms (relative O(δ²) ≈ 1e-3); the paper's form misses it by O(1)
        if displacement == "exact":
            assert first < 1e-3
        else:
            assert first > 0.5
    gd_blow, exact_blow = blows["exact"]
    _, paper_blow = blows["paper"]
    assert abs(exact_blow - gd_blow) < abs(paper_blow - gd_blow)
    with pytest.raises(ValueError, match="displacement"):
        constrained_trajectory(loss, window[0], eta, 3, displacement="first_order")


def test_no_sharpness_force_while_theta_dagger_is_inside_the_stable_set():
    """From θ₀ = 0 (S = 0.9·2/η) until GD's crossing, θ† stays strictly inside S < 2/η:
    only u·∇L = 0 constrains it. The exact displacement then has no ∇S⊥ part and θ† + v
    follows GD up to the terms quadratic in v (relative O(|v|) with |v| ≤ 4.4e-4; measured
    error 2e-7 at most); the paper's −½δ²∇S⊥ force pushes v along ∇S⊥ by ηα/|∇S⊥| ≈ 6e-4 a
    step regardless (measured error 0.10 at the crossing)."""
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    gd = run_gd(loss, np.zeros(loss.dim), eta, 300, record_trajectory=True)
    tc = gd.crossing_step
    before = gd.trajectory[:tc]
    errors = {}
    for displacement in ("exact", "paper"):
        dag = constrained_trajectory(loss, before[0], eta, tc - 1, displacement=displacement)
        assert np.all(dag.sharpness < 2.0 / eta)
        errors[displacement] = np.linalg.norm(before - dag.predicted_theta, axis=1)
        lag = np.max(np.linalg.norm(before - dag.trajectory, axis=1))
    assert np.max(errors["exact"]) < 1e-2 * lag
    assert errors["paper"][-1] > 10 * lag


def test_u_is_the_top_eigenvector_at_theta_dagger_with_its_sign_carried_along():
    # x_t = u·v_t is measured along the result's u: the unit top eigenvector of ∇²L(θ†_t)
    # (checked against eigh), with the sign of the row before (u_t·u_{t−1} > 0), the first
    # that of u_ref
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    gd = run_gd(loss, np.zeros(loss.dim), eta, 400, record_trajectory=True)
    assert gd.crossing_step is not None
    start = gd.trajectory[gd.crossing_step]
    top = np.linalg.eigh(loss.hessian(start))[1][:, -1]
    for reference in (top, -top):
        dag = constrained_trajectory(loss, start, eta, 30, u_ref=reference)
        assert dag.u.shape == dag.v.shape and dag.u[0] @ reference > 0.0
        for theta, u, v, x in zip(dag.trajectory, dag.u, dag.v, dag.x, strict=True):
            values, vectors = np.linalg.eigh(loss.hessian(theta))
            # a unit vector within the projection's eigen-solve tolerance of the top one
            # (gap λ₁ − λ₂ ≫ 1e-10 here, so the angle is ~1e-10 or less)
            assert abs(np.linalg.norm(u) - 1.0) < 1e-12
            assert abs(abs(u @ vectors[:, -1]) - 1.0) < 1e-9
            assert x == u @ v
        assert np.all(np.einsum("ij,ij->i", dag.u[1:], dag.u[:-1]) > 0.0)
