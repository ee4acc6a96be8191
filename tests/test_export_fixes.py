"""Exports write whatever the size of their integers, share no data with their result, and
a whole lists its parts that failed alike once.

- netCDF-3 (xarray's scipy engine, the writer's fallback) has no int64: an integer past
  2³¹ − 1, in an attribute or a variable, must still write, and read back (with
  ``stabsim._export.read_netcdf``, which ``stabsim plot`` uses) with its value and type;
- editing what ``to_xarray()`` returns must leave the result as it was;
- ``combine_parts`` must not repeat one message for each of many parts.
"""

import matplotlib
import numpy as np
import pytest
import xarray as xr

import stabsim
import stabsim.plot.sweep
from stabsim import Status, _export
from stabsim._result import Result, combine_parts
from stabsim.cli import main
from stabsim.losses import ManifoldFamily, Minimalist
from stabsim.sweep import SweepConfig, run_sweep
from stabsim.sweep.catapult import catapult_sweep

matplotlib.use("Agg")

BIG = 2**31 + 5  # past int32
HUGE = 3 * 2**40 + 1  # far past int32, below 2**53


@pytest.fixture
def netcdf3(monkeypatch):
    """The writer's fallback engine, whatever is installed."""
    monkeypatch.setattr(_export, "netcdf_engine", lambda: "scipy")


def _large_integers():
    ds = xr.Dataset(
        {"stop_step": ("trajectory", np.array([7, HUGE], np.int64)),
         "n_critical": ("step", np.array([0, 1, 2], np.int64)),  # fits int32
         # NaN for "never": int32 with _FillValue -1 on disk while the values fit
         "first_blowup": ("trajectory", np.array([np.nan, float(BIG)]))},
        coords={"step": np.array([0, BIG, 2 * BIG], np.int64), "trajectory": [0, 1]},
        attrs={"counter_steps": 2_468_630_208, "steps": np.int64(10**10), "cycles": 2,
               "eta": 0.5})
    ds["step"].attrs["stride"] = np.int64(BIG)
    _export.integer_on_disk(ds["first_blowup"])
    return ds


def test_integers_past_int32_write_to_netcdf3_and_read_back(netcdf3, tmp_path):
    ds = _large_integers()
    path = tmp_path / "big.nc"
    _export.write_netcdf(ds, path)
    back = _export.read_netcdf(path)
    for name in ("stop_step", "n_critical", "step", "trajectory", "first_blowup"):
        assert back[name].dtype == ds[name].dtype, name
        np.testing.assert_array_equal(back[name].values, ds[name].values, err_msg=name)
    assert back["stop_step"].values[1] == 3 * 2**40 + 1
    assert back["step"].values.tolist() == [0, 2**31 + 5, 2**32 + 10]
    assert np.isnan(back["first_blowup"].values[0])
    assert back["first_blowup"].values[1] == 2**31 + 5
    assert back.attrs["counter_steps"] == 2_468_630_208
    assert back.attrs["steps"] == 10**10
    assert back.attrs["cycles"] == 2 and back.attrs["eta"] == 0.5
    for name in ("counter_steps", "steps", "cycles"):
        assert np.asarray(back.attrs[name]).dtype == np.int64, name
    assert back["step"].attrs["stride"] == 2**31 + 5
    # no bookkeeping attribute is left once the types are restored
    assert not any(k.startswith("stabsim_") for k in back.attrs)
    assert not any(k.startswith("stabsim_") for v in back.variables.values() for k in v.attrs)


def test_what_another_reader_finds_in_the_netcdf3_file(netcdf3, tmp_path):
    path = tmp_path / "big.nc"
    _export.write_netcdf(_large_integers(), path)
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        # past int32: float64, exact; within: int32; each says its type in memory
        assert raw["stop_step"].dtype == np.float64
        assert raw["stop_step"].values.tolist() == [7.0, 3 * 2.0**40 + 1]
        assert raw["n_critical"].dtype == np.int32
        for name in ("stop_step", "n_critical", "step"):
            assert raw[name].attrs["stabsim_dtype"] == "int64", name
        assert raw.attrs["counter_steps"] == 2_468_630_208.0
        # a whole-number variable that cannot be int32 is float64 with NaN, no fill -1
        assert raw["first_blowup"].dtype == np.float64
        assert np.isnan(raw["first_blowup"].values[0])


def test_the_writer_leaves_the_dataset_as_it_was(netcdf3, tmp_path):
    ds = _large_integers()
    _export.write_netcdf(ds, tmp_path / "big.nc")
    assert ds["stop_step"].dtype == np.int64 and "stabsim_dtype" not in ds["stop_step"].attrs
    assert ds.attrs["counter_steps"] == 2_468_630_208 and len(ds.attrs) == 4
    assert ds["first_blowup"].encoding["dtype"] == "int32"


def test_integers_float64_cannot_hold_are_refused_by_name(netcdf3, tmp_path):
    with pytest.raises(ValueError, match=r"attribute 'steps' of the dataset .* 2\*\*53"):
        _export.write_netcdf(xr.Dataset(attrs={"steps": 2**53 + 1}), tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"variable 'step' .* 2\*\*53"):
        _export.write_netcdf(xr.Dataset(coords={"step": [0, 2**60]}), tmp_path / "b.nc")


def test_a_reduced_run_with_a_horizon_past_int32_writes(netcdf3, tmp_path):
    # the run stops after its second cycle; its parameter steps = 10¹⁰ is an attribute
    result = stabsim.run_reduced(1e-3, 0.0, 0.01, 1.0, 1.0, 10**10, cycles=2, stride=10**8)
    path = tmp_path / "reduced.nc"
    _export.write_netcdf(result.to_xarray(), path)
    back = _export.read_netcdf(path)
    assert back.attrs["steps"] == 10_000_000_000 and back.attrs["stride"] == 100_000_000
    assert back["step"].dtype == result.step.dtype
    np.testing.assert_array_equal(back["step"].values, result.step)


def test_stabsim_plot_reads_the_types_back(netcdf3, tmp_path, monkeypatch):
    config = SweepConfig(model="gd", grid={"eta": [0.5, 1.5], "seed": [0, 7]}, steps=30,
                         loss={"name": "quadratic", "A": [[1.0, 0.0], [0.0, 2.0]]})
    path = tmp_path / "seeds.nc"
    written = run_sweep(config, path, progress=False).to_xarray()
    assert written["seed"].dtype == np.int64
    seen = []
    original = stabsim.plot.sweep.plot_phase_diagram

    def spy(ds, **kwargs):
        seen.append(ds)
        return original(ds, **kwargs)

    monkeypatch.setattr(stabsim.plot.sweep, "plot_phase_diagram", spy)
    assert main(["plot", str(path), "--x", "eta", "--y", "seed"]) == 0
    assert seen[0]["seed"].dtype == np.int64
    assert seen[0]["seed"].values.tolist() == [0, 7]


def _sweep():
    return run_sweep(SweepConfig(model="reduced", grid={"eta": [0.05, 0.1]}, steps=300,
                                 params={"x0": 0.1, "alpha": 1.0, "beta": 1.0, "y0": 0.0}),
                     progress=False)


RESULTS = {
    "run_gd": lambda: stabsim.run_gd(Minimalist(), [0.5, 1.0], 0.5, 10,
                                     record_trajectory=True),
    "run_reduced": lambda: stabsim.run_reduced(0.1, 0.0, 0.1, 1.0, 1.0, 200, cycles=2),
    "run_reduced_ensemble": lambda: stabsim.run_reduced_ensemble(
        [0.1, 0.2], 0.0, 0.1, 1.0, 1.0, 200, stats=True, stride=10),
    "run_sweep": _sweep,
    "catapult_sweep": lambda: catapult_sweep([8], [1.0, 5.0], steps=50),
}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_editing_an_export_leaves_the_result_alone(name):
    result = RESULTS[name]()
    before = result.to_xarray().copy(deep=True)
    ds = result.to_xarray()
    edited = [n for n in ds.data_vars if ds[n].dtype.kind in "fiu" and ds[n].size]
    assert edited
    for n in edited:
        ds[n].values[...] = 123
    ds.attrs["edited"] = 1
    again = result.to_xarray()
    for n in edited:
        np.testing.assert_array_equal(again[n].values, before[n].values, err_msg=n)
    assert "edited" not in again.attrs


def test_the_gd_example_of_the_report():
    gd = stabsim.run_gd(Minimalist(), [0.5, 1.0], 0.5, 10, record_trajectory=True)
    first = float(gd.loss[0])
    ds = gd.to_xarray()
    ds["loss"][0] = 123
    assert gd.loss[0] == first != 123


def test_a_sweep_exports_a_new_dataset_each_call():
    result = _sweep()
    ds = result.to_xarray()
    assert ds is not result.to_xarray() and ds is not result.dataset
    ds["regime"][...] = 0
    ds["regime"].attrs["flag_meanings"] = "edited"
    assert result.dataset["regime"].attrs["flag_meanings"] != "edited"


def _part(status, knob=None, detail=None):
    return Result(status=status, counters={}, parameters={}, knob=knob, detail=detail)


def test_parts_that_failed_alike_are_listed_once():
    parts = {"flow": _part(Status.MAX_STEPS, "max_rhs_evals", "not run"),
             "gd": _part(Status.OK)}
    parts |= {f"limit_map[{k}]": _part(Status.MAX_STEPS, "max_rhs_evals", "by t = 0")
              for k in range(51)}
    parts["limit_map[7]"] = _part(Status.MAX_STEPS, "max_rhs_evals", "by t = 3")
    status, knob, detail = combine_parts(parts)
    assert status is Status.MAX_STEPS and knob == "max_rhs_evals"
    assert detail == ("flow: not run; limit_map[0-6, 8-50] (50 parts): by t = 0; "
                      "limit_map[7]: by t = 3")


def test_alike_parts_of_any_names_and_the_severity_rule():
    diverged = _part(Status.DIVERGED)
    parts = {"a": _part(Status.MAX_STEPS, "steps"), "b": diverged, "c": diverged,
             "x[2]": diverged, "x[3]": diverged, "x[9]": diverged,
             "d": _part(Status.NONFINITE, detail="at step 4"),
             "e": _part(Status.NONFINITE, detail="at step 4")}
    status, knob, detail = combine_parts(parts)
    assert status is Status.NONFINITE and knob is None  # the most severe, not the commonest
    assert detail == (f"a: {parts['a'].message}; b, c, x[2-3, 9] (5 parts): "
                      f"{diverged.message}; d, e (2 parts): at step 4")
    # bare statuses (no result) group alike too
    status, _, detail = combine_parts({f"cell[{k}]": Status.LEFT_DOMAIN for k in range(4)})
    assert status is Status.LEFT_DOMAIN
    assert detail == f"cell[0-3] (4 parts): {Status.LEFT_DOMAIN.message}"


def test_the_manifold_comparison_of_the_report_is_short():
    loss = ManifoldFamily([2.0, 0.5], [[1.0], [0.2]])
    result = stabsim.compare_manifold_flow(loss, [0.5, 0.1, 0.1], 0.01, 2000,
                                           phi_max_rhs_evals=3)
    assert result.status is Status.MAX_STEPS
    assert result.message.count("limit_map[") == 1
    assert result.message.count("max_rhs_evals = 3") == 1
    assert len(result.message) < 600
