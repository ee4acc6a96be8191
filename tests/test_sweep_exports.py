"""Sweep results hold no infinities or sentinels: NaN with a CF _FillValue and a status.

And cells that would not fit in memory when the compiled kernel's threads run them side
by side are refused when the config is made, before any kernel (an allocation that fails
inside a parallel loop surfaces as ``SystemError ... returned a result with an exception
set``, naming nothing).
"""

import math

import numba
import numpy as np
import pytest
import xarray as xr

import stabsim._validate
from stabsim import Status
from stabsim.sweep import SweepConfig, run_sweep

ALPHA = BETA = 1.0
DELTA = math.sqrt(2.0 * ALPHA / BETA)  # the period-2 orbit (±δ, 0)


def _reduced(x0s, steps=200):
    return SweepConfig(model="reduced", grid={"x0": x0s}, steps=steps,
                       params={"eta": 0.1, "alpha": ALPHA, "beta": BETA, "y0": 0.0})


def _float_variables(ds):
    return [name for name in ds.data_vars if ds[name].dtype.kind == "f"]


def test_undefined_energy_ratios_are_nan_with_a_status():
    # E = H − H_min: on the invariant line x = 0, E₀ = ∞ (H has −α ln x²); on the period-2
    # orbit E₀ = 0. Either way E_T/E₀ is not a number, though the run itself is fine.
    ds = run_sweep(_reduced([0.0, DELTA, 0.1]), progress=False).to_xarray()
    assert ds["status"].values.tolist() == [Status.UNDEFINED, Status.UNDEFINED, Status.OK]
    assert np.isnan(ds["energy_growth"].values[:2]).all()
    assert np.isfinite(ds["energy_growth"].values[2])
    for name in _float_variables(ds):  # NaN is the only missing value: no inf
        assert not np.isinf(ds[name].values).any(), name
    assert "E_0 = 0" in Status.UNDEFINED.message and "E_0 = ∞" in Status.UNDEFINED.message


def test_the_status_variable_says_what_its_codes_mean():
    ds = run_sweep(_reduced([0.1]), progress=False).to_xarray()
    meanings = ds["status"].attrs["flag_meanings"].split()
    assert dict(zip(ds["status"].attrs["flag_values"].tolist(), meanings, strict=True)) == {
        s.value: s.name.lower() for s in Status}


def test_never_is_nan_in_memory_and_the_fill_value_on_disk(tmp_path):
    # x0 = 0 never blows up (x stays 0); x0 = 0.1 does (first_blowup ≥ 0)
    path = tmp_path / "out.nc"
    ds = run_sweep(_reduced([0.0, 0.1]), path, progress=False).to_xarray()
    blowup = ds["first_blowup"].values
    assert np.isnan(blowup[0]) and blowup[1] >= 0
    raw = xr.open_dataset(path, mask_and_scale=False)
    assert raw["first_blowup"].dtype == np.int32
    assert raw["first_blowup"].attrs["_FillValue"] == -1
    assert raw["first_blowup"].values[0] == -1
    decoded = xr.open_dataset(path)
    np.testing.assert_array_equal(decoded["first_blowup"].values, blowup)
    for name in ds.data_vars:
        np.testing.assert_array_equal(decoded[name].values, ds[name].values)


def test_normalised_gd_on_the_minimiser_is_undefined_not_infinite():
    # L = θ²/2 from θ₀ = 1 with normalised steps of 0.5: θ₂ = 0 exactly, the last state
    # recorded; there the effective step η/|∇L| is infinite, and so S h/2
    config = SweepConfig(model="gd", method="normalised", grid={"eta": [0.5, 0.3]},
                         loss={"name": "quadratic", "A": [[1.0]]},
                         params={"theta0": [1.0]}, steps=2)
    ds = run_sweep(config, progress=False).to_xarray()
    assert ds["status"].values.tolist() == [Status.UNDEFINED, Status.OK]
    assert np.isnan(ds["max_rel_sharpness"].values[0])
    assert ds["final_loss"].values[0] == 0.0
    for name in _float_variables(ds):
        assert not np.isinf(ds[name].values).any(), name


@pytest.fixture
def small_machine(monkeypatch):
    """A machine of 8 MiB: half of it, 4 MiB, is what a sweep may take."""
    monkeypatch.setattr(stabsim._validate, "memory_bytes", lambda: 8 * 2**20)


def test_cells_too_large_for_the_threads_are_refused_before_any_kernel(small_machine,
                                                                       monkeypatch):
    compiled = []
    original = numba.core.dispatcher.Dispatcher.compile
    monkeypatch.setattr(numba.core.dispatcher.Dispatcher, "compile",
                        lambda self, sig: compiled.append(self) or original(self, sig))
    # a scalar network of depth 20000: each cell holds ~34 vectors of 20000 floats (5 MB)
    with pytest.raises(ValueError, match="dimension 20000"):
        SweepConfig(model="gd", grid={"eta": [0.01, 0.02]}, steps=5,
                    loss={"name": "scalar_network", "depth": 20000})
    # 10⁶ records of 4 floats: 32 MB per cell
    with pytest.raises(ValueError, match="1000001 records"):
        SweepConfig(model="gd", grid={"eta": [0.01]}, steps=10**6,
                    loss={"name": "quadratic", "A": [[1.0]]}, params={"theta0": [1.0]})
    assert not any("cells_kernel" in d.py_func.__name__ for d in compiled)


def test_cells_that_fit_are_accepted(small_machine):
    config = SweepConfig(model="gd", grid={"eta": [0.01]}, steps=10**3,
                         loss={"name": "quadratic", "A": [[1.0]]}, params={"theta0": [1.0]})
    assert config.n_cells == 1
