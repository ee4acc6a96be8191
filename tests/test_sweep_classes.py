"""Sweep classification on cells whose answer is known."""

import numpy as np

from stabsim.sweep import GDClass, MapClass, SweepConfig, run_sweep


def _gd(loss, theta0, etas, steps, **kwargs):
    config = SweepConfig(model="gd", grid={"eta": etas}, params={"theta0": theta0}, loss=loss,
                         steps=steps, **kwargs)
    return run_sweep(config).to_xarray()


def test_quadratic_converges_below_2_over_a_and_diverges_above():
    # 1-D quadratic a x²/2 with a = 4: stable for eta < 2/a = 0.5, divergent above
    etas = [0.1, 0.3, 0.45, 0.49, 0.51, 0.6]
    ds = _gd({"name": "quadratic", "A": [4.0]}, [1.0], etas, 400)
    expected = [GDClass.CONVERGED] * 4 + [GDClass.DIVERGED] * 2
    assert ds["regime"].values.tolist() == expected
    np.testing.assert_allclose(ds["final_rel_sharpness"], 2.0 * np.array(etas), rtol=1e-12)
    # never reached: NaN (the CF _FillValue −1 on disk)
    np.testing.assert_array_equal(ds["steps_to_threshold"], [np.nan] * 4 + [0, 0])


def test_minimalist_example_converges_just_below_the_threshold():
    # Zhu et al.: from a sharp start, GD settles on a minimiser with sharpness just
    # below 2/eta, after passing the threshold: it converged (its loss fell to round-off, so
    # no oscillation is left), although its late sharpness lies within the band
    ds = _gd({"name": "minimalist"}, [2.0, 0.3], [0.05, 0.3], 2000)
    assert ds["regime"].values.tolist() == [GDClass.CONVERGED, GDClass.CONVERGED]
    eos = ds.sel(eta=0.3)
    assert 0.95 < float(eos["mean_rel_sharpness"]) <= 1.0
    assert int(eos["steps_to_threshold"]) >= 0
    assert float(eos["final_loss"]) < 1e-12


def test_normalised_gd_sits_at_the_edge_of_stability():
    # docs/theory.md §4: effective step times lambda_1 = 2 on the period-2 orbit
    ds = _gd({"name": "scalar_network", "depth": 3}, [1.5, 0.8, 0.9], [0.01], 2000,
             method="normalised")
    assert int(ds["regime"][0]) == GDClass.EDGE_OF_STABILITY
    assert abs(float(ds["mean_rel_sharpness"][0]) - 1.0) < 0.02


def test_reduced_map_classes():
    delta = np.sqrt(2.0)  # alpha = beta = 1
    config = SweepConfig(model="reduced", grid={"x0": [1e-3, delta], "eta": [0.01, 0.5]},
                         params={"alpha": 1.0, "beta": 1.0, "y0": 0.0}, steps=5000)
    ds = run_sweep(config).to_xarray()
    small = ds.sel(x0=1e-3)
    # small eta: self-stabilisation cycles; large eta: the first blow-up overshoots
    # so far that 1 + eta*y <= 0
    assert int(small["regime"].sel(eta=0.01)) == MapClass.CYCLING
    assert int(small["cycles"].sel(eta=0.01)) >= 2
    assert int(small["regime"].sel(eta=0.5)) == MapClass.LEFT_DOMAIN
    assert int(small["steps_run"].sel(eta=0.5)) < 5000
    # started on the period-2 orbit (±delta, 0): it stays there
    assert int(ds["regime"].sel(x0=delta, eta=0.01)) == MapClass.CONVERGING


def test_reduced_map_overflow_is_diverged():
    # 1 + eta*y0 = 1e198: x squared overflows after one step
    config = SweepConfig(model="reduced", grid={"y0": [1e200]},
                         params={"eta": 0.01, "x0": 1e-3}, steps=5000)
    ds = run_sweep(config).to_xarray()
    assert int(ds["regime"][0]) == MapClass.DIVERGED


def test_a_start_on_the_line_x_0_is_not_converging():
    # x' = −(1 + ηy)x keeps x = 0, while y' = y + η(α − βx²/2) grows by ηα a step: the
    # state never cycles and the sharpness passes 2/η for good. E = H − H_min is infinite
    # there (−α ln x²), and inf ≤ inf had classed the cell as converging.
    config = SweepConfig(model="reduced", grid={"x0": [0.0]},
                         params={"eta": 0.1, "y0": 0.0}, steps=200)
    ds = run_sweep(config).to_xarray()
    assert int(ds["regime"][0]) == MapClass.TRANSIENT
    assert int(ds["cycles"][0]) == 0
