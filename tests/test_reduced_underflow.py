"""The reduced map stops where x underflows (status UNDERFLOW), on every path.

In exact arithmetic x never reaches 0 from x0 ≠ 0 while 1 + ηy ≠ 0, but an orbit that
spirals out passes ever closer to x = 0 in phase I, and in floating point x can fall
through the subnormal range to exactly 0, where the map then stays for ever with y growing
by ηα a step. Every path must stop at the first state with 0 < |x_t| ≤ tiny, the smallest
normal double; a start at x0 = 0 stays on that line and runs on.
"""

import functools
import math

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.maps.reduced import run_reduced, run_reduced_ensemble
from stabsim.sweep import MapClass, SweepConfig, run_sweep

TINY = np.finfo(np.float64).tiny
#: the reproduction: η = 0.01, x0 = 1e-4, y0 = 0, α = β = 1 (the reduced sweep's defaults)
REPRO = (1e-4, 0.0, 0.01, 1.0, 1.0)
STEPS = 40_000


def plain_map(x0, y0, eta, alpha, beta, steps, *, stop_on_underflow=True):
    """The map in plain Python floats, in the kernels' order (``_reduced_step``'s docstring:
    ``d = ηα − (ηβ/2)·(x·x)``, ``x' = −(1 + η y)·x``, ``y' = y + d``), stopping like they do.

    Returns the states before the stop, the status and the stop step.
    """
    ea = eta * alpha
    hb = eta * beta * 0.5
    xs, ys = [], []
    x, y = x0, y0
    for t in range(steps + 1):
        if not (math.isfinite(x) and math.isfinite(y)):
            return np.array(xs), np.array(ys), Status.NONFINITE, t
        if 1.0 + eta * y <= 0.0:
            return np.array(xs), np.array(ys), Status.LEFT_DOMAIN, t
        if stop_on_underflow and 0.0 < abs(x) <= TINY:
            return np.array(xs), np.array(ys), Status.UNDERFLOW, t
        xs.append(x)
        ys.append(y)
        if t == steps:
            break
        x, y = -(1.0 + eta * y) * x, y + (ea - hb * (x * x))
    return np.array(xs), np.array(ys), Status.OK, steps


@functools.cache
def repro_stop():
    """The step at which the reproduction first has |x| ≤ tiny, by the plain loop."""
    xs, _, status, t = plain_map(*REPRO, STEPS)
    assert status is Status.UNDERFLOW
    return t


def test_the_reproduction_reaches_exactly_zero_without_the_check():
    # the defect: run on, x passes through the subnormal range and becomes 0 inside the
    # domain, after which y grows by ηα a step where the exact map would blow up again
    xs, ys, status, _ = plain_map(*REPRO, STEPS, stop_on_underflow=False)
    assert status is Status.OK
    zero = int(np.argmax(xs == 0.0))
    assert xs[zero] == 0.0 and repro_stop() < zero < STEPS
    assert np.all(xs[:zero] != 0.0)
    r = run_reduced(*REPRO, STEPS)
    assert r.status is Status.UNDERFLOW and r.stop_step == repro_stop() < zero


def test_the_reproduction_stops_where_x_first_reaches_tiny():
    t = repro_stop()
    xs, ys, _, _ = plain_map(*REPRO, STEPS, stop_on_underflow=False)
    r = run_reduced(*REPRO, STEPS)
    assert r.status is Status.UNDERFLOW and not r.success
    assert r.stop_step == t == r.counters["steps"]
    assert abs(xs[t]) < TINY <= abs(xs[t - 1])
    assert r.x_final == xs[t] and r.y_final == ys[t]
    # the states before the stop are the run's as before, and the message says what
    # happened, where, and what to do
    assert np.array_equal(r.step, np.arange(t)) and np.array_equal(r.x, xs[:t])
    assert np.array_equal(r.y, ys[:t])
    assert f"x underflowed at step {t}" in r.message
    assert "floating point can no longer follow the trajectory" in r.message
    assert "fewer steps" in r.message and "x0" in r.message


@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize(("start", "back"), [
    # from just above tiny with y slightly negative, |x| is below tiny at states 5–16, well
    # inside the first chunk of either ensemble kernel
    ((TINY * 1.004, -0.1, 0.01, 1.0, 1.0), 17),
    # at η = 0.5, α = 4 only at states 1 and 2, between the starts of the vector steppers'
    # passes of four steps, where |x| is above 2 tiny
    ((TINY * 3.0, -1.6, 0.5, 4.0, 1.0), 3),
], ids=["inside a chunk", "between passes"])
def test_a_dip_below_tiny_inside_a_chunk_is_caught(start, back, stats):
    _, _, status, t = plain_map(*start, 64)
    assert status is Status.UNDERFLOW and 0 < t < back
    free, _, _, _ = plain_map(*start, 64, stop_on_underflow=False)
    assert abs(free[back - 1]) <= TINY
    assert np.all(np.abs(free[back:]) > TINY)  # a test at the chunk's end would miss it
    r = run_reduced(*start, 64)
    ens = run_reduced_ensemble(*start, 64, stats=stats)
    assert (r.status, r.stop_step) == (Status.UNDERFLOW, t)
    assert ens.status_codes.tolist() == [Status.UNDERFLOW] and ens.stop_step.tolist() == [t]
    assert ens.x_final[0] == r.x_final and ens.y_final[0] == r.y_final


#: starts and parameters (x0, y0, η, α, β) of lanes that underflow, stay normal, leave the
#: domain, overflow, start subnormal, or start on the line x = 0 (η ≤ 0.02: the final-state
#: kernel runs them in full-length chunks)
LANES = [
    REPRO,
    (2e-4, 0.0, 0.01, 1.0, 1.0),
    (1e-4, 0.0, 0.02, 1.0, 1.0),
    (TINY * 1.004, -0.1, 0.01, 1.0, 1.0),
    (1e-310, 0.0, 0.01, 1.0, 1.0),
    (0.5, 0.0, 0.01, 1.0, 1.0),
    (0.9, 0.1, 0.013, 1.0, 2.0),
    (0.0, 0.0, 0.01, 1.0, 1.0),
    (-0.0, 0.3, 0.02, 1.0, 2.0),
    (1e-3, 0.0, 0.02, 1.0, 2.0),
    (1e-4, -0.5, 0.015, 2.0, 1.0),
    (1e-3, 1e200, 0.01, 1.0, 1.0),
]


@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize("end", ["before", "at", "past"])
def test_ensemble_lanes_agree_with_the_single_path(stats, end):
    # the run ends one state before the reproduction's underflow, at it (the last state's
    # check), or past it
    steps = {"before": repro_stop() - 1, "at": repro_stop(), "past": STEPS}[end]
    x0, y0, eta, alpha, beta = (np.array(v) for v in zip(*LANES, strict=True))
    ens = run_reduced_ensemble(x0, y0, eta, alpha, beta, steps, stats=stats, stride=97)
    expected = [plain_map(*lane, steps) for lane in LANES]
    assert ens.status_codes.tolist() == [status for _, _, status, _ in expected]
    assert ens.stop_step.tolist() == [t for _, _, _, t in expected]
    assert (ens.status_codes[0] == Status.UNDERFLOW) == (end != "before")
    assert {Status.UNDERFLOW, Status.OK} <= set(ens.status_codes.tolist())
    for i, lane in enumerate(LANES):
        r = run_reduced(*lane, steps, stride=97, max_cycles=16)
        assert (ens.status_codes[i], ens.stop_step[i]) == (r.status, r.stop_step), lane
        assert ens.x_final[i] == r.x_final and ens.y_final[i] == r.y_final, lane
        kept = ens.step <= r.stop_step
        rows = np.flatnonzero(kept)[: r.x.size]
        np.testing.assert_array_equal(ens.x[rows, i], r.x)
        np.testing.assert_array_equal(ens.y[rows, i], r.y)
        assert np.isnan(ens.x[rows.size:, i]).all()
        if stats:
            c, rc = ens.cycles, r.cycles
            assert c.n_boundaries[i] == rc.n_boundaries and c.first_blowup[i] == rc.first_blowup
            assert (c.y_max[i], c.y_min[i], c.max_abs_x[i]) == (rc.y_max, rc.y_min,
                                                                 rc.max_abs_x), lane
            np.testing.assert_array_equal(c.boundary_step[i], rc.boundary_step[:17])
            np.testing.assert_array_equal(c.cycle_mean_x2[i], rc.cycle_mean_x2[:16])
    # a normal trajectory's final state is the plain loop's, as before
    for i, (xs, ys, status, _) in enumerate(expected):
        if status is Status.OK:
            assert ens.x_final[i] == xs[-1] and ens.y_final[i] == ys[-1]


def test_the_sweep_cell_reports_underflow():
    config = SweepConfig(model="reduced", grid={"x0": [1e-4, 0.5, 0.0]},
                         params={"eta": 0.01, "y0": 0.0}, steps=STEPS)
    ds = run_sweep(config, progress=False).to_xarray()
    # the start on the line x = 0 keeps its UNDEFINED energy ratio and its class
    assert ds["status"].values.tolist() == [Status.UNDERFLOW, Status.OK, Status.UNDEFINED]
    assert ds["regime"].values.tolist() == [MapClass.UNDERFLOW, MapClass.CYCLING,
                                            MapClass.TRANSIENT]
    assert int(ds["steps_run"][0]) == repro_stop()
    assert np.isfinite(ds["energy_growth"].values[:2]).all()
    assert "underflow" in ds["regime"].attrs["flag_meanings"].split()
    assert "underflow" in ds["status"].attrs["flag_meanings"].split()
