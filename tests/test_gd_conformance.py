"""One conformance test for the gradient methods: every rule, every kind of loss, one core.

``step`` and ``run_gd`` drive the same compiled update, so repeating ``step`` must give the
iterates of ``run_gd`` bit for bit; a run is deterministic; a run past the stability
threshold ends in a status with no NaN in what it recorded; the records export to xarray.
"""

import numpy as np
import pytest
import user_families

from stabsim import Status, run_gd, step
from stabsim.losses import Loss, Minimalist, Quadratic, ScalarNetwork

METHODS = ["gd", "heavy_ball", "nesterov", "normalised", "sqrt"]
LOSSES = {
    "minimalist": (Minimalist, [0.6, 1.9]),
    "scalar_network": (lambda: ScalarNetwork(3), [1.1, 0.8, 1.2]),
    "user_family": (lambda: Loss(user_families.Rosenbrock(1.0, 5.0, 3.0), 3, min_value=0.0),
                    [0.3, -0.2, 0.5]),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("method", METHODS)
def test_step_repeats_run_gd_exactly_and_runs_are_deterministic(name, method):
    make, start = LOSSES[name]
    loss = make()
    eta, momentum, n = 0.01, (0.5 if method in ("heavy_ball", "nesterov") else 0.0), 25
    result = run_gd(loss, start, eta, n, method=method, momentum=momentum,
                    record_trajectory=True)
    assert result.status is Status.OK
    theta, buf = np.asarray(start, float), None
    for t in range(n + 1):
        assert np.array_equal(result.trajectory[t], theta)  # same floats, step after step
        nxt = step(loss, theta, eta, method=method, momentum=momentum, buf=buf)
        assert nxt.status is Status.OK
        theta, buf = nxt.theta, nxt.buf
    again = run_gd(loss, start, eta, n, method=method, momentum=momentum,
                   record_trajectory=True)
    for field in ("loss", "grad_norm", "sharpness", "trajectory", "theta"):
        assert np.array_equal(getattr(result, field), getattr(again, field))
    ds = result.to_xarray()
    assert ds.sizes["step"] == n + 1 and np.array_equal(ds["loss"].values, result.loss)


@pytest.mark.parametrize("method", ["gd", "heavy_ball", "nesterov"])
def test_past_the_threshold_a_run_stops_with_a_status_and_no_nan(method):
    # S x²/2 with S = 1: GD diverges for η > 2 (heavy ball β = 0.5: η > 3; Nesterov β = 0.5:
    # η > 1.5)
    loss = Quadratic([1.0])
    momentum = 0.5 if method != "gd" else 0.0
    result = run_gd(loss, [1.0], 4.0, 10_000, method=method, momentum=momentum,
                    divergence_norm=1e6)
    assert result.status is Status.DIVERGED
    assert 0 < result.counters["steps"] < 10_000
    for field in ("loss", "grad_norm", "sharpness"):
        assert np.all(np.isfinite(getattr(result, field)))


def test_normalised_step_at_a_critical_point_is_a_zero_gradient_status():
    loss = Minimalist()
    minimiser = Minimalist.minimiser(1.0)  # xy = 1: ∇ℓ = 0 exactly
    result = step(loss, minimiser, 0.1, method="normalised")
    assert result.status is Status.ZERO_GRADIENT
    assert np.array_equal(result.theta, minimiser)
    assert run_gd(loss, minimiser, 0.1, 5, method="normalised").status is Status.ZERO_GRADIENT


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
def test_a_run_that_stops_at_a_critical_point_keeps_its_record(method):
    # ½θ² from 1: normalised GD with η = 1/2 steps by η sign(θ), and GD on sqrt L = |θ|/√2
    # with η = √2/2 by η sign(θ)/√2; both by 1/2, to 0.5 and then to 0 exactly. The state
    # θ₂ = 0 is measured and recorded before the step from it, which is undefined, is
    # refused: its row (L = 0, S = 1) is kept; it had been dropped, the records ending at
    # step 1 while `theta` and the counters said step 2
    eta = 0.5 if method == "normalised" else 0.5 * np.sqrt(2.0)
    run = run_gd(Quadratic([1.0]), [1.0], eta, 10, method=method, record_trajectory=True)
    assert run.status is Status.ZERO_GRADIENT and run.counters["steps"] == 2
    assert run.theta.tolist() == [0.0]
    np.testing.assert_array_equal(run.step, [0, 1, 2])
    np.testing.assert_array_equal(run.trajectory[:, 0], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(run.loss, [0.5, 0.125, 0.0])
    np.testing.assert_array_equal(run.sharpness[:, 0], [1.0, 1.0, 1.0])
    # with a stride that skips step 2, nothing more is kept than the recorded steps
    assert run_gd(Quadratic([1.0]), [1.0], eta, 10, method=method, stride=3).step.tolist() == [0]


def test_a_sqrt_run_that_cannot_step_with_a_nonzero_gradient_keeps_no_record_of_it():
    # L(θ₀) = loss_min with ∇L ≠ 0: the step η∇L/(2 sqrt(L − L_min)) is infinite, a
    # NONFINITE stop, which keeps only the records made before (none): the state's record
    # had been kept as if it were a critical point's
    run = run_gd(Quadratic([1.0]), [1.0], 0.1, 5, method="sqrt", loss_min=0.5)
    assert run.status is Status.NONFINITE and run.counters["steps"] == 0
    assert run.step.size == 0 and run.loss.size == 0
