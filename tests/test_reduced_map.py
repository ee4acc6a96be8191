"""The reduced four-phase (x, y) map of Damian et al. (docs/theory.md §1)."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stabsim._status import Status
from stabsim.flows.reduced_ode import reduced_hamiltonian, small_orbit_period
from stabsim.maps.reduced import reduced_phase, run_reduced, run_reduced_ensemble

EPS = np.finfo(np.float64).eps

etas = st.floats(0.005, 0.3)
rates = st.floats(0.1, 5.0)
starts_x = st.floats(0.05, 2.0) | st.floats(-2.0, -0.05)
starts_y = st.floats(-1.0, 1.0)


def literal_map(x0, y0, eta, alpha, beta, steps):
    """docs/theory.md §1 eq. (3) written out literally in plain Python; stops like the kernels do.

    Returns the states and the status/step at which the trajectory stopped.
    """
    xs, ys = [x0], [y0]
    x, y = x0, y0
    for t in range(steps + 1):
        if not (math.isfinite(x) and math.isfinite(y)):
            return np.array(xs[:-1]), np.array(ys[:-1]), Status.NONFINITE, t
        if 1.0 + eta * y <= 0.0:
            return np.array(xs[:-1]), np.array(ys[:-1]), Status.LEFT_DOMAIN, t
        if t == steps:
            break
        x, y = -(1.0 + eta * y) * x, y + eta * (alpha - beta * x * x / 2)
        xs.append(x)
        ys.append(y)
    return np.array(xs), np.array(ys), Status.OK, steps


@given(starts_x, starts_y, etas, rates, rates)
def test_phases_follow_the_cyclic_order(x0, y0, eta, alpha, beta):
    r = run_reduced(x0, y0, eta, alpha, beta, 600)
    p = r.phase.astype(int)
    assert set(np.unique(p)) <= {1, 2, 3, 4}
    nxt = p[1:]
    assert np.all((nxt == p[:-1]) | (nxt == p[:-1] % 4 + 1))


@given(starts_x, starts_y, etas, rates, rates)
def test_phase_labels_are_the_quadrants(x0, y0, eta, alpha, beta):
    r = run_reduced(x0, y0, eta, alpha, beta, 300)
    d2 = 2 * alpha / beta
    x2 = r.x ** 2
    quadrant = np.where(x2 < d2, np.where(r.y <= 0, 1, 2), np.where(r.y > 0, 3, 4))
    # the kernels decide x² < δ² as ηα − (ηβ/2)x² > 0: the two rules may disagree only
    # within a few rounding errors of the boundary x² = δ²
    near = np.abs(x2 - d2) <= 8 * EPS * d2
    assert np.all((quadrant == r.phase) | near)


@given(starts_x, starts_y, etas, rates, rates, st.data())
def test_window_identity_holds_to_round_off(x0, y0, eta, alpha, beta, data):
    r = run_reduced(x0, y0, eta, alpha, beta, 400)
    n = r.x.size
    assume(n >= 2)
    s = data.draw(st.integers(0, n - 2))
    e = data.draw(st.integers(s + 1, n - 1))
    x2 = r.x[s:e] ** 2
    lhs = x2.mean()
    rhs = 2 * alpha / beta - 2 * (r.y[e] - r.y[s]) / (eta * beta * (e - s))
    # floating point: each of the e − s y-updates rounds by ≤ ε(|y| + |increment|), and
    # the identity divides their sum by ηβ(e − s)/2; the mean of x² rounds by ≤ ε max x²
    scale = np.abs(r.y[s:e + 1]).max() + eta * alpha + eta * beta * x2.max()
    tol = 8 * EPS * (2 * scale / (eta * beta) + x2.max())
    assert abs(lhs - rhs) <= tol


@given(starts_x, starts_y, etas, rates, rates)
def test_x_to_minus_x_symmetry_is_exact(x0, y0, eta, alpha, beta):
    a = run_reduced(x0, y0, eta, alpha, beta, 300)
    b = run_reduced(-x0, y0, eta, alpha, beta, 300)
    np.testing.assert_array_equal(b.x, -a.x)  # negation is exact in floating point
    np.testing.assert_array_equal(b.y, a.y)
    assert a.status == b.status and a.stop_step == b.stop_step


@pytest.mark.parametrize("eta, alpha", [(0.01, 1.0), (0.02, 0.5), (0.005, 2.0)])
def test_small_orbits_have_the_predicted_period(eta, alpha):
    beta = 3.0
    delta = math.sqrt(2 * alpha / beta)
    r = run_reduced(1.02 * delta, 0.0, eta, alpha, beta, 20_000, cycles=4)
    assert r.status == Status.OK
    lengths = r.cycles.cycle_length[:3]
    # In s = ln(x²/δ²) the map is s' = s + 2 ln|1 + ηy|, y' = y + ηα(1 − eˢ): linearised,
    # [[1, 2η], [−ηα, 1]], eigenvalues √(1 + ω²) e^{±iφ} with ω = η√(2α), φ = atan ω, so a
    # small orbit takes 2π/atan(ω) = P(1 + ω²/3 + …) steps (P = 2π/ω, small_orbit_period);
    # at amplitude a (= 2 ln 1.02 in s, the start) the nonlinearity eˢ − 1 = s + s²/2 + s³/6
    # lengthens it by a²/24 (Landau–Lifshitz §28): T = (2π/atan ω)(1 + a²/24). Left over:
    # O(a³) = 6e-5 of T, more than the a² growth of the outward spiral (√(1 + ω²) per step,
    # a² × 1.09 a cycle at most here: 7e-6 of T). A cycle starts and ends at the first state
    # past a crossing, so each length is T to within one step, and three consecutive ones sum
    # to 3T within one step (the boundaries telescope). Measured lengths − T: −0.35, −0.35,
    # 0.65; 0.78, −0.22, −0.22; 0.62, −0.38, −0.38 (sums −0.04, 0.33, −0.14), against the old
    # band 0.03 P ≈ 9–19 steps. Cycle lengths counted inclusively (one step long each)
    # passed it and fail here.
    omega = eta * math.sqrt(2 * alpha)
    amplitude = 2 * math.log(1.02)
    period = 2 * math.pi / math.atan(omega) * (1 + amplitude**2 / 24)
    slack = 3 * period * amplitude**3
    assert abs(small_orbit_period(eta, alpha) - 2 * math.pi / omega) <= 1e-12 * period
    assert np.all(np.abs(lengths - period) <= 1 + slack), lengths - period
    assert abs(lengths.sum() - 3 * period) <= 1 + slack, lengths.sum() - 3 * period


def drift_per_cycle(eta):
    alpha, beta = 1.0, 2.0
    r = run_reduced(0.5, 0.0, eta, alpha, beta, 200_000, cycles=4)
    assert r.status == Status.OK
    h = r.cycles.boundary_H[:4]
    return np.diff(h).mean()


def test_hamiltonian_drifts_up_by_order_eta_per_cycle():
    etas_ = np.array([0.01, 0.005, 0.0025, 0.00125])
    drift = np.array([drift_per_cycle(e) for e in etas_])
    assert np.all(drift > 0)  # the discrete map spirals outwards
    order = np.polyfit(np.log(etas_), np.log(drift), 1)[0]
    assert 0.8 <= order <= 1.2  # docs/theory.md §1: H grows by O(η) per cycle
    halving = drift[:-1] / drift[1:]
    assert np.all(np.abs(halving - 2.0) <= 0.4)  # halves (within 20%) when η halves


def test_boundary_hamiltonian_matches_the_saved_states():
    r = run_reduced(0.3, -0.2, 0.02, 1.0, 2.0, 3000)
    k = r.cycles.n_boundaries
    assert k >= 2
    b = r.cycles.boundary_step[:k]
    np.testing.assert_array_equal(r.phase[b], 1)
    np.testing.assert_array_equal(r.phase[b - 1], 4)
    h = reduced_hamiltonian(r.x[b], r.y[b], 1.0, 2.0)
    np.testing.assert_allclose(r.cycles.boundary_H[:k], h, rtol=4 * EPS)
    np.testing.assert_array_equal(r.cycles.cycle_length[:k - 1], np.diff(b))
    means = [np.mean(r.x[b[i]:b[i + 1]] ** 2) for i in range(k - 1)]
    # a running sum against numpy's pairwise sum: ≤ n ε relative
    np.testing.assert_allclose(r.cycles.cycle_mean_x2[:k - 1], means, rtol=np.diff(b).max() * EPS)
    assert r.cycles.y_max == r.y.max() and r.cycles.y_min == r.y.min()
    assert r.cycles.max_abs_x == np.abs(r.x).max()
    first = np.flatnonzero((r.phase[:-1] == 2) & (r.phase[1:] == 3))[0] + 1
    assert r.cycles.first_blowup == first


def random_ensemble(rng, n):
    return (rng.uniform(-1.5, 1.5, n), rng.uniform(-1.0, 1.0, n), rng.uniform(0.01, 0.4, n),
            rng.uniform(0.2, 3.0, n), rng.uniform(0.2, 3.0, n))


@pytest.mark.parametrize("stats", [False, True])
def test_ensemble_matches_single_trajectories_and_numpy(stats):
    rng = np.random.default_rng(7)
    args = random_ensemble(rng, 300)
    steps = 333  # not a multiple of the chunk lengths or the unroll
    ens = run_reduced_ensemble(*args, steps, stats=stats, stride=5)
    assert set(np.unique(ens.status_codes)) >= {Status.OK, Status.LEFT_DOMAIN}
    for i in range(0, 300, 7):
        one = run_reduced(*(a[i] for a in args), steps, stride=5)
        # same operations in the same order, no fast-math: bit-for-bit equal
        assert ens.status_codes[i] == one.status and ens.stop_step[i] == one.stop_step
        assert ens.x_final[i] == one.x_final and ens.y_final[i] == one.y_final
        m = one.x.size
        np.testing.assert_array_equal(ens.x[:m, i], one.x)
        assert np.all(np.isnan(ens.x[m:, i]))
        if stats:
            c, k = ens.cycles, one.cycles.n_boundaries
            assert c.n_boundaries[i] == k and c.first_blowup[i] == one.cycles.first_blowup
            assert (c.y_max[i], c.y_min[i], c.max_abs_x[i]) == (
                one.cycles.y_max, one.cycles.y_min, one.cycles.max_abs_x)
            k = min(k, c.boundary_step.shape[1])
            np.testing.assert_array_equal(c.boundary_step[i, :k], one.cycles.boundary_step[:k])
            np.testing.assert_array_equal(c.boundary_H[i, :k], one.cycles.boundary_H[:k])
            nc = max(k - 1, 0)
            np.testing.assert_array_equal(c.cycle_mean_x2[i, :nc], one.cycles.cycle_mean_x2[:nc])
    # NumPy over the ensemble, the same expression order: IEEE arithmetic without
    # contraction is deterministic, so equality is exact where no trajectory stopped
    x, y, eta, alpha, beta = (np.asarray(a, dtype=float) for a in args)
    ea, hb = eta * alpha, eta * beta * 0.5
    with np.errstate(all="ignore"):  # stopped trajectories overflow here; not compared
        for _ in range(steps):
            x, y = -(1.0 + eta * y) * x, y + (ea - hb * (x * x))
    ok = ens.status_codes == Status.OK
    np.testing.assert_array_equal(ens.x_final[ok], x[ok])
    np.testing.assert_array_equal(ens.y_final[ok], y[ok])


@pytest.mark.parametrize("stats", [False, True])
def test_ensemble_numbers_do_not_depend_on_the_thread_count(stats):
    # the blocks are shared between threads (interleaved); every path computes the same
    # floats, so one thread and two give the same bits
    import numba

    args = random_ensemble(np.random.default_rng(11), 5 * 256 + 3)  # 6 blocks, one partial
    kwargs = {"stats": stats, "stride": 9, "cycle_extremes": stats}
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one thread here: nothing to compare")
    numba.set_num_threads(1)
    try:
        serial = run_reduced_ensemble(*args, 400, **kwargs)
    finally:
        numba.set_num_threads(threads)
    shared = run_reduced_ensemble(*args, 400, **kwargs)
    assert set(np.unique(shared.status_codes)) >= {Status.OK, Status.LEFT_DOMAIN}
    for name in ("x_final", "y_final", "status_codes", "stop_step", "x", "y"):
        assert getattr(shared, name).tobytes() == getattr(serial, name).tobytes(), name
    if stats:
        for name in ("n_boundaries", "boundary_step", "boundary_H", "cycle_length",
                     "cycle_mean_x2", "y_max", "y_min", "max_abs_x", "first_blowup",
                     "cycle_y_max", "cycle_y_min", "cycle_max_abs_x"):
            assert getattr(shared.cycles, name).tobytes() == \
                getattr(serial.cycles, name).tobytes(), name


def test_a_kernel_part_inside_a_pool_thread_runs_its_work_in_that_thread():
    # a job started from a pool thread gets one thread (waiting on the pool from inside it
    # could wait for itself)
    import threading

    from stabsim._threads import _pool, in_threads, kernel_threads

    def job():
        seen = []
        in_threads(lambda part: seen.append(threading.get_ident()), range(4),
                   kernel_threads(4))
        return kernel_threads(4), set(seen) == {threading.get_ident()}

    assert _pool(1).submit(job).result() == (1, True)


def test_ensemble_agrees_with_the_literal_formula():
    # THEORY's y + η(α − βx²/2) rounds differently from y + (ηα − (ηβ/2)x²): ≤ 3ε per
    # step relative to the increment; over 200 steps of an orbit that stays O(1) the
    # perturbations add up to ≲ 200 × 3ε × (growth of a perturbation over an orbit ≲ 10)
    eta, alpha, beta = 0.05, 1.0, 2.0
    x0 = np.linspace(0.5, 1.5, 11)
    ens = run_reduced_ensemble(x0, 0.0, eta, alpha, beta, 200)
    for i, x in enumerate(x0):
        xs, ys, status, _ = literal_map(x, 0.0, eta, alpha, beta, 200)
        assert status == Status.OK == ens.status_codes[i]
        assert abs(ens.x_final[i] - xs[-1]) <= 200 * 3 * EPS * 10 * np.abs(xs).max()
        assert abs(ens.y_final[i] - ys[-1]) <= 200 * 3 * EPS * 10 * np.abs(ys).max()


def test_ensemble_broadcasts_and_reshapes():
    ens = run_reduced_ensemble(np.linspace(0.2, 1.0, 3)[:, None], 0.0, [0.01, 0.02], 1.0,
                               2.0, 50)
    assert ens.shape == (3, 2) and ens.x_final.shape == (6,)
    assert ens.reshape(ens.x_final).shape == (3, 2)
    assert ens.success and ens.status == Status.OK


# Large η: the orbit spirals out (H grows by O(η) per cycle) until a phase IV dip of y
# reaches 1 + ηy ≤ 0; or a start deep in phase III, where y falls by η(βx²/2 − α) a step.
DOMAIN_CASES = [(1.2, 0.0, 0.3, 1.0, 1.0), (0.01, 0.0, 0.25, 1.0, 1.0),
                (3.0, 0.3, 0.05, 0.5, 1.0), (10.0, 0.5, 1.0, 1.0, 1.0)]
# NaN/inf: x² overflows at once; or x = 0 while y rises by ηα = 1e307 a step to inf
NONFINITE_CASES = [(1e200, 0.0, 1.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1e307, 1.0)]


@pytest.mark.parametrize("case", DOMAIN_CASES + NONFINITE_CASES)
def test_status_and_stop_step_match_a_plain_loop(case):
    _, ys, status, t = literal_map(*case, 5000)
    r = run_reduced(*case, 5000)
    assert r.status == status and r.stop_step == t and not r.success
    assert status in (Status.LEFT_DOMAIN, Status.NONFINITE)
    assert "eta" in r.message or "NaN" in r.message
    # in the ensemble, among healthy neighbours, in both kernels
    args = [np.full(600, v) for v in (0.5, 0.0, 0.02, 1.0, 2.0)]
    for a, v in zip(args, case, strict=True):
        a[333] = v
    for stats in (False, True):
        ens = run_reduced_ensemble(*args, 5000, stats=stats)
        assert ens.status_codes[333] == status and ens.stop_step[333] == t
        assert np.all(np.delete(ens.status_codes, 333) == Status.OK)
        assert ens.status == status and not ens.success


def test_start_outside_the_domain_stops_at_step_zero():
    r = run_reduced(0.5, -2.0, 1.0, 1.0, 1.0, 10)
    assert r.status == Status.LEFT_DOMAIN and r.stop_step == 0 and r.x.size == 0


def test_cycle_target_and_max_steps():
    r = run_reduced(0.5, 0.0, 0.02, 1.0, 2.0, 100_000, cycles=3)
    assert r.status == Status.OK and r.cycles.n_boundaries == 3
    assert r.stop_step == r.cycles.boundary_step[2] == r.step[-1]
    short = run_reduced(0.5, 0.0, 0.02, 1.0, 2.0, 10, cycles=3)
    assert short.status == Status.MAX_STEPS and short.stop_step == 10
    ens = run_reduced_ensemble([0.5, 0.5], 0.0, 0.02, 1.0, 2.0, 100_000, stats=True,
                               cycles=3)
    assert np.all(ens.stop_step == r.stop_step) and np.all(ens.x_final == r.x_final)


def test_phase_function_matches_the_kernels():
    r = run_reduced(0.3, -0.2, 0.05, 1.0, 2.0, 500)
    np.testing.assert_array_equal(reduced_phase(r.x, r.y, 0.05, 1.0, 2.0), r.phase)


def test_to_xarray():
    r = run_reduced(0.3, -0.2, 0.05, 1.0, 2.0, 500, stride=2)
    ds = r.to_xarray()
    assert ds.sizes["step"] == 251 and ds.attrs["status"] == "OK"
    np.testing.assert_array_equal(ds["x"].values, r.x)
    ens = run_reduced_ensemble([0.3, 0.4], -0.2, 0.05, 1.0, 2.0, 500, stats=True, stride=10)
    ds = ens.to_xarray()
    assert ds["x"].dims == ("step", "trajectory") and ds.sizes["step"] == 51
    assert ds["boundary_H"].dims == ("trajectory", "boundary")


@pytest.mark.parametrize("kwargs, name", [
    (dict(eta=0.0), "eta"), (dict(eta=-1.0), "eta"), (dict(alpha=0.0), "alpha"),
    (dict(beta=-2.0), "beta"), (dict(x0=np.nan), "x0"), (dict(y0=np.inf), "y0"),
    (dict(eta=np.nan), "eta"), (dict(steps=-1), "steps"), (dict(stride=0), "stride"),
])
def test_bad_input_names_the_argument(kwargs, name):
    args = dict(x0=0.5, y0=0.0, eta=0.1, alpha=1.0, beta=2.0, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        run_reduced(**args)
    with pytest.raises(ValueError, match=name):
        run_reduced_ensemble(**{k: v if k in ("steps", "stride") else np.full(3, v)
                                for k, v in args.items()})


def test_mismatched_shapes_name_the_argument():
    with pytest.raises(ValueError, match="alpha"):
        run_reduced_ensemble(np.ones(3), 0.0, 0.1, np.ones(4), 1.0, 10)
    with pytest.raises(ValueError, match="alpha"):
        run_reduced_ensemble(0.5, 0.0, [0.1, 0.2, 0.3, 0.5], [1.0, 2.0], 1.0, 10)
    with pytest.raises(ValueError, match="beta"):
        run_reduced_ensemble(0.5, 0.0, 0.1, 1.0, [[1.0, -1.0]], 10)


@pytest.mark.parametrize("x0, eta", [([], 0.1), (np.empty((0, 3)), 0.1),
                                     (np.ones(3), np.empty((0, 1)))])
def test_an_empty_ensemble_is_refused(x0, eta):
    # no trajectory to run (and netCDF-3 would take a length-0 dimension for the unlimited one)
    with pytest.raises(ValueError, match="no trajectory"):
        run_reduced_ensemble(x0, 0.0, eta, 1.0, 2.0, 100, stride=10)


def test_mismatched_shapes_name_every_argument_involved():
    with pytest.raises(ValueError, match=r"^y has shape \(3,\), .* the shape \(2,\) of x$"):
        reduced_phase([0.1, 0.2], [0.0, 1.0, 2.0], 0.1, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"^alpha has shape \(4,\), .* of x0, y0, eta$"):
        run_reduced_ensemble(np.ones(3), 0.0, 0.1, np.ones(4), 1.0, 10)


@pytest.mark.parametrize("stats", [False, True])
def test_an_ensemble_stops_calling_its_kernels_once_every_trajectory_stopped(monkeypatch,
                                                                            stats):
    # the map of docs/theory.md §1 from x0 = 1, y0 = 0 at η = 0.5, α = β = 1 leaves its
    # domain (1 + ηy ≤ 0) within a few steps; a budget of 2^62 steps had meant
    # 2^62 / CHUNK_STEPS ≈ 2.7e11 further calls with nothing to run
    import stabsim.maps.reduced as reduced_module

    x, y, left = 1.0, 0.0, 0
    while 1.0 + 0.5 * y > 0.0:
        x, y, left = -(1.0 + 0.5 * y) * x, y + 0.5 * (1.0 - 0.5 * x * x), left + 1

    calls = []
    original = reduced_module.in_parts

    def counting(kernel, args, threads):
        calls.append(args[5:7])  # (t0, t1) of the call
        return original(kernel, args, threads)

    monkeypatch.setattr(reduced_module, "in_parts", counting)
    steps = 2**62
    result = run_reduced_ensemble(np.array([1.0, 1.0]), 0.0, 0.5, 1.0, 1.0, steps, stats=stats)
    assert list(result.status_codes) == [Status.LEFT_DOMAIN] * 2
    assert list(result.stop_step) == [left, left]
    assert len(calls) == 1 and calls[0][0] == 0 and calls[0][1] < steps


def test_the_export_keeps_the_final_state(tmp_path):
    # LEFT_DOMAIN at step 7: the offending state is not among the saved ones, only in
    # x_final, y_final, which the export must keep (as the ensemble's does)
    from stabsim import _export

    r = run_reduced(1.0, 150.0, 0.01, 1.0, 2.0, 100)
    assert r.status == Status.LEFT_DOMAIN and r.stop_step == 7
    ds = r.to_xarray()
    assert ds["x_final"].item() == r.x_final and ds["y_final"].item() == r.y_final
    assert ds["x_final"].attrs["long_name"] == "final x"
    path = tmp_path / "reduced.nc"
    _export.write_netcdf(ds, path)
    back = _export.read_netcdf(path)
    assert back["x_final"].item() == r.x_final and back["y_final"].item() == r.y_final
