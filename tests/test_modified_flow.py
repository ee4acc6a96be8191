"""Implicit gradient regularisation (Barrett & Dherin; docs/theory.md §5): GD against the modified
flow of L + (η/4)|∇L|² and against gradient flow, below the threshold and at the EoS.

Orders are slopes of log(error) against log(η), fitted by least squares over ≥ 3 step sizes
at a fixed horizon in continuous time s = ηt.
"""

import numpy as np
import pytest

import stabsim
from stabsim.flows import gradient_flow, modified_flow
from stabsim.losses import QuadraticRegression
from stabsim.maps import run_gd


def _slope(etas, errors):
    return np.polyfit(np.log(etas), np.log(errors), 1)[0]


def _errors(loss, theta0, eta, steps, first=0):
    """|θ_GD − θ_GF| and |θ_GD − θ_MF| at steps first..steps (flows in step time)."""
    gd = run_gd(loss, theta0, eta, steps, record_trajectory=True, find_crossing=False)
    gf = gradient_flow(loss, theta0, eta, steps, stride=1.0)
    mf = modified_flow(loss, theta0, eta, steps, stride=1.0)
    assert gf.success and mf.success
    return (np.linalg.norm(gd.trajectory[first:] - gf.trajectory[first:], axis=1),
            np.linalg.norm(gd.trajectory[first:] - mf.trajectory[first:], axis=1))


def test_right_hand_side_is_the_gradient_of_the_modified_loss():
    loss = QuadraticRegression.random(5, 3, seed=0)
    theta, eta = np.full(5, 0.3), 0.1

    def modified(th):
        return loss.value(th) + 0.25 * eta * np.sum(loss.grad(th) ** 2)

    # central differences of L + (η/4)|∇L|²: error O(h²) + O(eps/h) at h = 1e-5
    h = 1e-5
    fd = np.array([(modified(theta + h * e) - modified(theta - h * e)) / (2 * h)
                   for e in np.eye(5)])
    # one Euler step of length dt of dθ/dt = −η∇L_mod moves θ by −dt·η·∇L_mod + O(dt²)
    dt = 1e-7
    moved = modified_flow(loss, theta, eta, dt).theta  # the state at the horizon dt
    np.testing.assert_allclose((theta - moved) / (dt * eta), fd, rtol=1e-6)
    assert stabsim.modified_flow is modified_flow


def test_gd_tracks_the_modified_flow_to_second_order_below_the_threshold():
    loss = QuadraticRegression.random(5, 3, seed=0)
    theta0 = np.full(5, 0.3)
    etas = np.array([0.04, 0.02, 0.01, 0.005])
    horizon = 2.0  # continuous time s = ηt
    gf_err, mf_err = [], []
    for eta in etas:
        steps = int(round(horizon / eta))
        gd = run_gd(loss, theta0, eta, steps, find_crossing=False)
        assert np.max(gd.sharpness[:, 0]) * eta / 2 < 0.05  # far below the threshold
        e_gf, e_mf = _errors(loss, theta0, eta, steps, first=steps)
        gf_err.append(e_gf[0])
        mf_err.append(e_mf[0])
    # Backward-error analysis: GD − GF = O(η), GD − MF = O(η²). The next term of each
    # expansion is a factor O(ηS) smaller (ηS ≤ 0.07 here, S ≈ 1.6), so it moves the fitted
    # slope by a few hundredths; 0.2 covers it. Measured: 1.003 and 1.999.
    assert abs(_slope(etas, gf_err) - 1.0) < 0.2
    assert abs(_slope(etas, mf_err) - 2.0) < 0.2
    assert np.all(np.array(mf_err) < np.array(gf_err))


@pytest.mark.slow
def test_both_flows_lose_gd_at_the_edge_of_stability():
    """two_scale(η): before the crossing (s = 1; S reaches 2/η at s ≈ 2.1) the orders hold;
    over the EoS part of s ∈ [0, 12] neither flow follows GD and the error does not shrink."""
    etas = np.array([0.01, 0.005, 0.0025])
    before = {"gf": [], "mf": []}
    during = {"gf": [], "mf": []}
    for eta in etas:
        loss = QuadraticRegression.two_scale(eta)
        steps = int(round(12.0 / eta))
        e_gf, e_mf = _errors(loss, np.zeros(loss.dim), eta, steps)
        gd = run_gd(loss, np.zeros(loss.dim), eta, steps)
        tc, below = gd.crossing_step, int(round(1.0 / eta))
        assert tc is not None and tc > below
        before["gf"].append(e_gf[below])
        before["mf"].append(e_mf[below])
        during["gf"].append(np.sqrt(np.mean(e_gf[tc:] ** 2)))
        during["mf"].append(np.sqrt(np.mean(e_mf[tc:] ** 2)))
    # below the threshold: the orders 1 and 2 (margin as above; measured 1.002, 2.004)
    assert abs(_slope(etas, before["gf"]) - 1.0) < 0.2
    assert abs(_slope(etas, before["mf"]) - 2.0) < 0.2
    # at the EoS GD stays O(δ) from θ† while both flows sharpen past 2/η and drift O(1)
    # away: the error does not shrink with η (measured slopes 0.05 and 0.05, RMS ≈ 0.64),
    # far from the claimed 1 and 2 (a slope below 0.5 fails any first-order claim), and the
    # correction term does not help (the two errors agree to 1%).
    for name, claimed in (("gf", 1.0), ("mf", 2.0)):
        assert _slope(etas, during[name]) < 0.5 < claimed
    assert np.min(during["gf"]) > 0.1
    np.testing.assert_allclose(during["mf"], during["gf"], rtol=0.1)
