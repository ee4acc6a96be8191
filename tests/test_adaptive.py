"""The adaptive engine (RMSProp, Adam, Scalar RMSProp) against NumPy and dense eigensolvers."""

import numpy as np
import pytest
import scipy.linalg
from ctrl_c import ctrl_c_in_loop

from stabsim import Status
from stabsim.losses import Network, Quadratic, QuadraticRegression
from stabsim.maps.adaptive import adaptive_threshold, run_adaptive

NET = Network((4, 3), data="sine", n_samples=10)
THETA0 = np.random.default_rng(0).normal(scale=0.5, size=NET.dim)


def _numpy_run(loss, theta, eta, steps, method, beta1, beta2, eps, bias):
    """The update of docs/theory.md §7 transcribed in NumPy (module docstring of
    stabsim.maps._adaptive_kernels)."""
    w = np.array(theta, dtype=float)
    nu = 0.0 if method == "scalar_rmsprop" else np.zeros_like(w)
    m = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = loss.grad(w)
        nu = beta2 * nu + (1 - beta2) * (g @ g if method == "scalar_rmsprop" else g * g)
        m = beta1 * m + (1 - beta1) * g if method == "adam" else g
        nu_hat = nu / (1 - beta2**t) if bias else nu
        m_hat = m / (1 - beta1**t) if (bias and method == "adam") else m
        w = w - eta * m_hat / (np.sqrt(nu_hat) + eps)
    return w, nu, m


@pytest.mark.parametrize(("method", "beta1", "eps", "bias"), [
    ("rmsprop", 0.0, 0.0, False), ("rmsprop", 0.0, 1e-3, True),
    ("adam", 0.9, 0.0, False), ("adam", 0.9, 1e-8, True),
    ("scalar_rmsprop", 0.0, 0.0, False), ("scalar_rmsprop", 0.0, 1e-2, True),
])
def test_steps_match_a_numpy_transcription(method, beta1, eps, bias):
    # the same arithmetic in the same order up to the compiled loss's gradient: the iterates
    # agree to round-off amplified over a few steps (d = 27 entries of size ~1, 5 steps)
    eta, beta2, steps = 0.01, 0.95, 5
    result = run_adaptive(NET, THETA0, eta, steps, method=method, beta1=beta1, beta2=beta2,
                          eps=eps, bias_correction=bias, record_trajectory=True)
    assert result.status is Status.OK
    w, nu, m = _numpy_run(NET, THETA0, eta, steps, method, beta1, beta2, eps, bias)
    np.testing.assert_allclose(result.theta, w, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(result.nu, np.atleast_1d(nu), rtol=1e-11)
    if method == "adam":
        np.testing.assert_allclose(result.m, m, rtol=1e-11, atol=1e-14)
    w1 = _numpy_run(NET, THETA0, eta, 1, method, beta1, beta2, eps, bias)[0]
    np.testing.assert_allclose(result.trajectory[1], w1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result.loss, [NET.value(x) for x in result.trajectory],
                               rtol=1e-13)


REGRESSION = QuadraticRegression.random(7, 4, seed=3, q_scale=0.3)
SPD = np.array([[3.0, 1.0, 0.5], [1.0, 2.0, -0.4], [0.5, -0.4, 1.5]])


@pytest.mark.parametrize(("loss", "eigensolver", "method", "bias"), [
    (NET, "auto", "rmsprop", False),  # Lanczos on D H D products
    (NET, "auto", "adam", True),
    (REGRESSION, "auto", "adam", True),  # Lanczos on the dense D H D plus the factor F D
    (Quadratic(SPD), "eigh", "rmsprop", False),  # eigh of the dense D H D
    (Quadratic(SPD[:2, :2]), "auto", "adam", False),  # d = 2: closed form
], ids=["net-rmsprop", "net-adam", "regression-dense-lanczos", "quadratic-eigh", "2d-closed-form"])
def test_preconditioned_sharpness_is_the_generalised_eigenvalue(loss, eigensolver, method, bias):
    # λ_max(P⁻¹H), measured as the raw sharpness is, against (a) eigh of the dense D H D and
    # (b) scipy's generalised problem H u = λ P u. A unit vector with residual r lies within r
    # of an eigenvalue (the symmetric residual bound; r = 0 for the direct solvers), so the
    # gap is at most the recorded residual plus the round-off of the dense solvers (1e-12 of
    # the scale).
    eps, beta2, stride = 1e-4, 0.9, 7
    theta0 = THETA0 if loss is NET else np.linspace(0.3, 0.8, loss.dim)
    result = run_adaptive(loss, theta0, 0.02, 21, method=method, beta1=0.5 if method == "adam"
                          else 0.0, beta2=beta2, eps=eps, bias_correction=bias, stride=stride,
                          record_trajectory=True, eig_tol=1e-12, eigensolver=eigensolver)
    assert result.status is Status.OK and len(result.step) == 4
    for row, t in enumerate(result.step):
        nu = result.nu_trajectory[row] / ((1 - beta2 ** (t + 1)) if bias else 1.0)
        p = np.sqrt(nu) + eps
        H = loss.hessian(result.trajectory[row])
        d_half = 1.0 / np.sqrt(p)
        dense = np.linalg.eigvalsh(d_half[:, None] * H * d_half[None, :])[-1]
        general = scipy.linalg.eigh(H, np.diag(p), eigvals_only=True)[-1]
        lam = result.preconditioned_sharpness[row]
        bound = result.preconditioned_residual[row] + 1e-12 * abs(dense)
        assert abs(lam - dense) <= bound
        assert abs(lam - general) <= bound + 1e-11 * abs(general)
        raw = np.linalg.eigvalsh(H)[-1]
        assert abs(result.sharpness[row] - raw) <= result.eig_residual[row] + 1e-12 * raw


def test_scalar_preconditioned_sharpness_is_the_effective_sharpness():
    # P = (√ν + ε) I: λ_max(P⁻¹H) = S/(√ν + ε), and the threshold is 2/η, so the effective
    # sharpness ηS/√ν of docs/theory.md §7 is 2 × effective_sharpness
    eta = 0.05
    result = run_adaptive(NET, THETA0, eta, 12, method="scalar_rmsprop", beta2=0.9, stride=4)
    s_eff = eta * result.sharpness / np.sqrt(result.nu_trajectory[:, 0])
    np.testing.assert_allclose(result.preconditioned_sharpness * eta, s_eff, rtol=1e-14)
    np.testing.assert_allclose(2.0 * result.effective_sharpness, s_eff, rtol=1e-14)


def test_chunks_and_strides_give_the_numbers_of_one_call():
    # the state the kernel keeps between chunks (w, ν_{t−1}, m_{t−1}, the warm starts) is
    # the whole state: chunk boundaries change nothing; the last step is recorded though 23
    # is not a multiple of the stride
    kwargs = dict(method="adam", beta1=0.9, beta2=0.99, bias_correction=True, stride=5)
    one = run_adaptive(NET, THETA0, 0.01, 23, **kwargs)
    chunked = run_adaptive(NET, THETA0, 0.01, 23, chunk_steps=3, **kwargs)
    np.testing.assert_array_equal(one.step, [0, 5, 10, 15, 20, 23])
    np.testing.assert_array_equal(one.theta, chunked.theta)
    np.testing.assert_array_equal(one.loss, chunked.loss)


@pytest.mark.parametrize("method", ["rmsprop", "adam", "scalar_rmsprop"])
def test_a_run_continued_from_its_state_goes_on_exactly(method):
    # AdaptiveResult: continue from theta and nu, and m for Adam, with first_step the steps
    # already taken (the bias corrections depend on the step number); the same floats in the
    # same order, so equality is exact. The RMSProps have no momentum: their m is zeros (it had
    # held the last gradient, which m0 refuses for them)
    kwargs = dict(method=method, beta1=0.9 if method == "adam" else 0.0, beta2=0.99)
    for bias in (False, True):
        kwargs.update(bias_correction=bias)
        whole = run_adaptive(NET, THETA0, 0.01, 10, **kwargs)
        first = run_adaptive(NET, THETA0, 0.01, 4, **kwargs)
        state = dict(nu0=first.nu, m0=first.m) if method == "adam" else dict(nu0=first.nu)
        if method != "adam":
            np.testing.assert_array_equal(first.m, np.zeros(NET.dim))
        rest = run_adaptive(NET, first.theta, 0.01, 6, first_step=4, **state, **kwargs)
        np.testing.assert_array_equal(whole.theta, rest.theta)
        np.testing.assert_array_equal(whole.nu, rest.nu)
        np.testing.assert_array_equal(whole.m, rest.m)
        np.testing.assert_array_equal(whole.loss[4:], rest.loss)
        # the sharpness by Lanczos from another warm start: equal to its tolerance (eig_tol
        # 1e-10 relative residual bounds the eigenvalue error)
        np.testing.assert_allclose(whole.preconditioned_sharpness[4:],
                                   rest.preconditioned_sharpness, rtol=1e-10)
    # without first_step the corrections restart at t = 0: a different run (a failing
    # control of the test above)
    restarted = run_adaptive(NET, first.theta, 0.01, 6, **state, **kwargs)
    assert not np.array_equal(whole.theta, restarted.theta)


def test_frozen_preconditioner_and_threshold_formula():
    # β₂ = 1 keeps ν = ν0: on a 1-D quadratic a x²/2 with β₁ = 0 the update is
    # x ← (1 − ηa/√ν0) x exactly, and λ_max(P⁻¹H) = a/√ν0
    a, nu0, eta = 3.0, 4.0, 0.5
    result = run_adaptive(Quadratic([a]), [1.0], eta, 6, beta2=1.0, nu0=[nu0],
                          record_trajectory=True)
    expected = (1.0 - eta * a / np.sqrt(nu0)) ** np.arange(7)
    np.testing.assert_allclose(result.trajectory[:, 0], expected, rtol=1e-14)
    np.testing.assert_allclose(result.preconditioned_sharpness, a / np.sqrt(nu0), rtol=1e-14)
    assert adaptive_threshold(0.1, 0.9) == pytest.approx(380.0, rel=1e-14)
    assert adaptive_threshold(0.1) == pytest.approx(20.0, rel=1e-14)


def test_statuses_and_their_messages():
    quad = Quadratic([1.0, 2.0])
    # frozen ν = 1, η = 3 > 2/λ: |x| triples per step and passes 1e6
    diverged = run_adaptive(quad, [1.0, 1.0], 3.0, 1000, beta2=1.0, nu0=[1.0, 1.0],
                            divergence_norm=1e6)
    assert diverged.status is Status.DIVERGED and 0 < diverged.counters["steps"] < 1000
    assert np.all(np.isfinite(diverged.loss)) and len(diverged.loss) == \
        diverged.counters["steps"]
    nonfinite = run_adaptive(quad, [1.0, 1.0], 3.0, 10_000, beta2=1.0, nu0=[1.0, 1.0],
                             divergence_norm=1e308)
    assert nonfinite.status is Status.NONFINITE
    # one Lanczos product cannot resolve the top eigenvalue of a 27-dimensional Hessian
    budget = run_adaptive(NET, THETA0, 0.01, 5, eig_max_products=1, eigensolver="lanczos")
    assert budget.status is Status.NOT_CONVERGED and "eig_max_products" in budget.message


@pytest.mark.parametrize("method", ["rmsprop", "adam", "scalar_rmsprop"])
def test_a_zero_preconditioner_entry_with_eps_0(method):
    # Quadratic ½(x² + 2y²) from (1, 0): g₀ = (1, 0), so with ν₋₁ = 0 and ε = 0 the first
    # ν has ν_y = 0 (for Scalar RMSProp, ν = |g|² = 1 > 0 and nothing fails), and at (0, 0)
    # g = 0, ν = 0 for every method. There P = diag(√ν̂ + ε) is singular, so λ_max(P⁻¹∇²L)
    # is undefined: a non-finite status at step 0, with the cause. Before, Scalar RMSProp
    # recorded S/0 = inf as its preconditioned sharpness with status OK.
    quad = Quadratic([1.0, 2.0])
    for start, fails in (([1.0, 0.0], method != "scalar_rmsprop"), ([0.0, 0.0], True)):
        run = run_adaptive(quad, start, 0.1, 5, method=method)
        if not fails:
            assert run.success and np.all(np.isfinite(run.preconditioned_sharpness))
            continue
        # from (0, 0), an exact critical point with no momentum (m₋₁ = 0), the method stays
        # where it is: ZERO_GRADIENT; from (1, 0) it is not one: NONFINITE
        at_critical = not np.any(start)
        assert run.status is (Status.ZERO_GRADIENT if at_critical else Status.NONFINITE)
        assert run.counters["steps"] == 0 and run.singular_preconditioner
        assert "ν has a zero entry" in run.message and "pass eps > 0" in run.message
        # with ε > 0 it is finite: y's gradient stays 0 (∇L = (x, 2y)), so ν_y = 0 and the
        # block of y is 2/ε (from (0, 0), every block: 1/ε and 2/ε)
        done = run_adaptive(quad, start, 0.1, 5, method=method, eps=1e-3)
        assert done.success
        np.testing.assert_allclose(done.preconditioned_sharpness, 2.0 / 1e-3, rtol=1e-12)
    # a run that diverges with ε = 0 and ν > 0 is not given that cause
    nonfinite = run_adaptive(quad, [1.0, 1.0], 3.0, 10_000, beta2=1.0, nu0=[1.0, 1.0],
                             divergence_norm=1e308, method="rmsprop")
    assert nonfinite.status is Status.NONFINITE and "zero entry" not in nonfinite.message
    assert not nonfinite.singular_preconditioner


def test_a_zero_entry_of_nu_is_reported_as_what_happened():
    # A singular P stops a run at a finite state: the message says so, without the NONFINITE
    # status's general "step size far past the stability threshold", and claims a history of
    # the gradient only where there is one.
    # β₂ = 0 is sign descent: from (1, 1) on ½|w|² with η = 1 it lands exactly on the
    # minimiser, where g = 0 and ν = g² = 0 after a nonzero ν at step 0
    run = run_adaptive(Quadratic(np.eye(2)), [1.0, 1.0], 1.0, 5, beta2=0.0)
    # g = 0 there and the RMSProps have no momentum: the method stays, an exact critical point
    assert run.status is Status.ZERO_GRADIENT and run.singular_preconditioner
    assert run.counters["steps"] == 1 and np.array_equal(run.theta, [0.0, 0.0])
    assert run.message.startswith("at step 1, ν has a zero entry")
    assert "β₂ = 0 makes ν the square of this step's gradient" in run.message
    # a positive nu0 would not help (β₂ν₋₁ = 0); the method stays there, converged
    assert "an exact critical point with no momentum left, where the method stays" in run.message
    assert run.message.endswith("pass eps > 0 for a preconditioned sharpness there")
    assert "threshold" not in run.message and "so far" not in run.message
    assert run.to_xarray().attrs["message"] == run.message
    # Adam lands there too, at η = 2 with β₁ = 0.5, but its m = (0.5, 0.5) ≠ 0 would move it
    # on (dividing by √ν̂ = 0): not a point it stays at, NONFINITE; with β₁ = 0 it is
    # RMSProp, m_t = β₁ m_{t−1} = 0, and it stays
    for beta1, status in ((0.5, Status.NONFINITE), (0.0, Status.ZERO_GRADIENT)):
        adam = run_adaptive(Quadratic(np.eye(2)), [1.0, 1.0], 2.0 if beta1 else 1.0, 5,
                            method="adam", beta1=beta1, beta2=0.0)
        assert np.array_equal(adam.theta, [0.0, 0.0]) and adam.counters["steps"] == 1
        assert adam.status is status and adam.singular_preconditioner
    # 0 < β₂ < 1 from a start whose second gradient entry is 0: ν₋₁ = nu0 = 0 there too
    run = run_adaptive(Quadratic([1.0, 2.0]), [1.0, 0.0], 0.1, 5, beta2=0.9)
    assert run.singular_preconditioner and "(index 1)" in run.message
    assert "so is ν₋₁ there (nu0, 0 by default)" in run.message
    assert run.message.endswith("pass eps > 0 or a positive nu0")
    assert "threshold" not in run.message


def test_a_zero_entry_of_nu_stops_a_run_the_same_between_records():
    # Adam with β₁ = 0.5, β₂ = 0, ε = 0 from (0.25, 0.75) on ½|w|² at η = 0.25: at step 4
    # g₀ = 0 while m₀ ≠ 0, so the update would divide m by √ν̂ = 0. A recorded step stops
    # on its singular P; an unrecorded one had made w₀ = inf, ended NONFINITE at step 5
    # blamed on the step size, and the sweep had classed the cell as diverged
    from stabsim.sweep.adaptive_cells import adaptive_sweep

    quad = Quadratic(np.eye(2))
    runs = [run_adaptive(quad, [0.25, 0.75], 0.25, 20, method="adam", beta1=0.5, beta2=0.0,
                         eps=0.0, stride=stride) for stride in (1, 3)]
    for run in runs:
        assert run.status is Status.NONFINITE and run.singular_preconditioner
        assert run.counters["steps"] == 4 and np.all(np.isfinite(run.theta))
        assert run.message.startswith("at step 4, ν has a zero entry (index 0)")
    np.testing.assert_array_equal(runs[0].theta, runs[1].theta)
    with pytest.raises(ValueError, match="without a class: its preconditioner is singular"):
        adaptive_sweep(quad, [0.25, 0.75], [0.25], [0.0], 6, method="adam", beta1=0.5,
                       eps=0.0, stride=3)


def test_beta2_1_needs_a_positive_nu0_where_eps_is_0():
    # β₂ = 1 keeps ν at nu0 whatever the gradient: without a positive nu0 and with ε = 0, P
    # is singular from step 0 (it had run, to a NONFINITE status blamed on the step size)
    quad = Quadratic([3.0, 1.0])
    for nu0 in (None, [1.0, 0.0]):
        with pytest.raises(ValueError, match="beta2 = 1 needs a positive nu0"):
            run_adaptive(quad, [1.0, 1.0], 0.01, 20, beta2=1.0, nu0=nu0)
    # P = εI: GD with step η/ε; P = diag(√nu0): frozen RMSProp
    assert run_adaptive(quad, [1.0, 1.0], 0.01, 20, beta2=1.0, eps=1.0).success
    assert run_adaptive(quad, [1.0, 1.0], 0.01, 20, beta2=1.0, nu0=[1.0, 4.0]).success


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_between_chunks_returns_the_part_done():
    run_adaptive(Quadratic([1.0]), [1.0], 0.1, 10, stride=10)  # compiled before the Ctrl-C
    with ctrl_c_in_loop(0.3) as sent:
        result = run_adaptive(Quadratic([1.0]), [1.0], 0.1, 10**10, stride=10**9,
                              chunk_steps=10**5)
    assert sent, "the run ended before the Ctrl-C"
    assert result.status is Status.INTERRUPTED
    assert 0 < result.counters["steps"] < 10**10


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"method": "sgd"}, ValueError, "method"),
    ({"beta1": 0.9}, ValueError, "beta1"),
    ({"beta2": 1.5}, ValueError, "beta2"),
    ({"beta2": 1.0, "bias_correction": True}, ValueError, "bias_correction"),
    ({"eps": -1.0}, ValueError, "eps"),
    ({"nu0": [-1.0, 0.0]}, ValueError, "nu0"),
    ({"bias_correction": 1}, TypeError, "bias_correction"),
    ({"m0": [0.0, 0.0]}, ValueError, "m0"),
])
def test_bad_inputs_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        run_adaptive(Quadratic([1.0, 2.0]), [1.0, 1.0], 0.1, 3, **kwargs)


def test_export():
    result = run_adaptive(NET, THETA0, 0.01, 4, method="adam", beta1=0.9, record_trajectory=True)
    ds = result.to_xarray()
    assert ds.preconditioned_sharpness.attrs["units"] == "1"
    np.testing.assert_array_equal(ds.nu.values, result.nu_trajectory)
    assert ds.attrs["status"] == "OK" and ds.attrs["counter_steps"] == 4
    assert "AdaptiveResult(status=OK" in repr(result)


def test_a_nearly_repeated_top_pair_is_measured_after_the_thin_restarts_stall(thick_switches):
    # diag(0, …, 1 − 1e-8, 1), d = 100: Lanczos restarted from one Ritz vector stalls on the
    # pair (tests/test_gd.py); the run goes on from the stalled step with thick restarts.
    # The raw sharpness is then within its residual of 1 (Bauer–Fike), and the iterates,
    # which do not depend on the measurement, are eigh's run's bit for bit
    d = 100
    diagonal = np.linspace(0.0, 1.0, d)
    diagonal[-2] = 1.0 - 1e-8
    loss = Quadratic(np.diag(diagonal))
    run = run_adaptive(loss, np.ones(d), 0.01, 4, method="adam", beta1=0.9, eps=1e-8,
                       eigensolver="lanczos", record_trajectory=True)
    assert run.success and thick_switches == ["MatrixFree"]
    assert np.all(np.abs(run.sharpness - 1.0) <= run.eig_residual + 2e-16)
    dense = run_adaptive(loss, np.ones(d), 0.01, 4, method="adam", beta1=0.9, eps=1e-8,
                         eigensolver="eigh", record_trajectory=True)
    np.testing.assert_array_equal(run.trajectory, dense.trajectory)
