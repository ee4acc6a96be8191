"""Every dataset stabsim exports follows the conventions of ``stabsim._export``.

Each exporter is called on a small run, written to netCDF with the package's writer and
opened again; both the dataset in memory and the reopened file must have ``long_name`` and
``units`` on every variable and coordinate, CF flags on every coded variable, no variable
named with a Python keyword, no sentinel in place of a missing value, the provenance
attributes, and labelled axes from ``ds[var].plot()`` alone.
"""

import datetime
import json
import keyword

import matplotlib
import numba
import numpy as np
import pytest
import scipy
import xarray as xr

import stabsim
from stabsim import _export
from stabsim.compare_manifold import compare_manifold_flow
from stabsim.comparison import compare
from stabsim.losses import ManifoldFamily, Quadratic, QuadraticRegression
from stabsim.maps.gd import run_gd
from stabsim.maps.reduced import run_reduced, run_reduced_ensemble
from stabsim.sweep import SweepConfig, run_sweep

matplotlib.use("Agg")

#: coded variables: their integers mean what CF flag_values/flag_meanings say
CODED = {"status", "regime", "phase"}
PROVENANCE = ("stabsim_version", "numpy_version", "numba_version", "scipy_version", "created",
              "parameters")
#: the netCDF default float fill (9.97e36) and the common 8e34-like "missing" markers are all
#: far above any value these small runs reach (|θ|, losses and sharpnesses of order 1–100)
HUGE = 8e34


def _sweep(model, tmp_path):
    if model == "reduced":
        config = SweepConfig(model="reduced", grid={"eta": [0.05, 0.1]}, steps=300,
                             params={"x0": 0.1, "alpha": 1.0, "beta": 1.0, "y0": 0.0})
    else:
        config = SweepConfig(model="gd", grid={"eta": [0.5, 1.5, 2.5]}, steps=30,
                             loss={"name": "quadratic", "A": [[1.0]]},
                             params={"theta0": [1.0]})
    return run_sweep(config, tmp_path / f"sweep_{model}.nc", progress=False).to_xarray()


def _export_of(name, tmp_path):
    """The dataset of exporter ``name`` on a small run."""
    if name == "gd":
        return run_gd(Quadratic([1.0, 0.5]), [1.0, 1.0], 0.5, 20,
                      record_trajectory=True).to_xarray()
    if name == "compare":
        eta = 0.01
        loss = QuadraticRegression.two_scale(eta)
        return compare(loss, np.zeros(loss.dim), eta, 400, warn=False).to_xarray()
    if name == "manifold":
        loss = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])
        return compare_manifold_flow(loss, [1.0, 0.8, 0.3, 0.2], 0.02, 500,
                                     stride=100).to_xarray()
    if name == "reduced":
        return run_reduced(1e-2, 0.0, 0.05, 1.0, 1.0, 3000, cycles=3).to_xarray()
    if name == "ensemble":
        # x0 = 0 stays on the invariant line (never a boundary, never a blow-up); x0 = 0.01
        # cycles: the padded rows and the "never" of the first start must come out NaN
        return run_reduced_ensemble([0.0, 1e-2], 0.0, 0.05, 1.0, 1.0, 3000, stats=True,
                                    stride=50, cycle_extremes=True).to_xarray()
    return _sweep(name.removeprefix("sweep_"), tmp_path)


EXPORTERS = ("gd", "compare", "manifold", "reduced", "ensemble", "sweep_reduced", "sweep_gd")
#: arguments of each call above that its provenance attribute ``parameters`` must repeat
CALLED_WITH = {
    "gd": {"method": "gd", "eta": 0.5, "momentum": 0.0},
    "compare": {"eta": 0.01, "steps": 400, "theta0": [0.0] * 6, "projection": "euclidean"},
    "manifold": {"eta": 0.02, "steps": 500, "stride": 100, "method": "normalised",
                 "theta0": [1.0, 0.8, 0.3, 0.2]},
    "reduced": {"x0": 1e-2, "y0": 0.0, "eta": 0.05, "alpha": 1.0, "beta": 1.0, "steps": 3000,
                "cycles": 3},
    "ensemble": {"steps": 3000, "stride": 50, "cycle_extremes": True},
    "sweep_reduced": {"model": "reduced", "steps": 300, "grid": {"eta": [0.05, 0.1]}},
    "sweep_gd": {"model": "gd", "steps": 30, "grid": {"eta": [0.5, 1.5, 2.5]}},
}


@pytest.fixture(params=EXPORTERS)
def written(request, tmp_path):
    """(exporter, in memory, reopened from the netCDF file the package writes)."""
    ds = _export_of(request.param, tmp_path)
    path = tmp_path / f"{request.param}.nc"
    _export.write_netcdf(ds, path)
    with xr.open_dataset(path) as reopened:
        yield request.param, ds, reopened.load()


def _check_conventions(ds):
    for name, variable in ds.variables.items():
        assert not keyword.iskeyword(name), name
        assert variable.attrs.get("long_name"), name
        assert variable.attrs.get("units") in ("1", "steps"), name
        values = variable.values
        if name in CODED:
            assert {"flag_values", "flag_meanings"} <= set(variable.attrs), name
            codes = np.asarray(variable.attrs["flag_values"])
            meanings = variable.attrs["flag_meanings"].split()
            assert len(meanings) == codes.size == np.unique(codes).size, name
            assert codes.dtype == values.dtype, name  # CF: flag_values of the variable's type
            assert np.isin(values, codes).all(), name  # every code stored has a meaning
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            assert not (np.abs(finite) >= HUGE).any(), name
            if variable.attrs["units"] == "steps":  # a step is ≥ 0: −1 can only be "never"
                assert (finite >= 0).all(), name
        elif values.dtype.kind in "iu" and variable.attrs["units"] == "steps":
            assert (values >= 0).all(), name
    for attribute in PROVENANCE:
        assert attribute in ds.attrs, attribute
    assert ds.attrs["stabsim_version"] == stabsim.__version__
    assert ds.attrs["numpy_version"] == np.__version__
    assert ds.attrs["numba_version"] == numba.__version__
    assert ds.attrs["scipy_version"] == scipy.__version__
    created = datetime.datetime.fromisoformat(ds.attrs["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert isinstance(json.loads(ds.attrs["parameters"]), dict)


def test_every_export_follows_the_conventions_in_memory_and_on_disk(written):
    exporter, ds, reopened = written
    for data in (ds, reopened):
        _check_conventions(data)
        parameters = json.loads(data.attrs["parameters"])
        for name, value in CALLED_WITH[exporter].items():
            assert parameters[name] == value, (exporter, name)
    assert set(reopened.variables) == set(ds.variables)
    for name in ds.data_vars:  # the file round-trips: NaN stays NaN, codes stay codes
        np.testing.assert_array_equal(reopened[name].values, ds[name].values, err_msg=name)


def test_plot_labels_come_from_the_attributes(written):
    import matplotlib.pyplot as plt

    _, _, ds = written
    name = next(n for n in ds.data_vars if ds[n].ndim == 1 and ds[n].dims[0] in ds.coords)
    variable = ds[name]
    axis = ds[variable.dims[0]]
    figure = plt.figure()
    try:
        variable.plot()
        ax = figure.axes[0]
        # xarray's label: "long_name [units]", wrapped onto lines of about 30 characters
        for label, source in ((ax.get_xlabel(), axis), (ax.get_ylabel(), variable)):
            expected = f"{source.attrs['long_name']} [{source.attrs['units']}]"
            assert " ".join(label.split()) == expected
    finally:
        plt.close(figure)


def test_sweep_regime_replaces_class(tmp_path):
    ds = _sweep("reduced", tmp_path)
    assert "regime" in ds and "class" not in ds
    assert ds["regime"].attrs["flag_meanings"]


def test_finish_refuses_keywords_and_undescribed_variables():
    with pytest.raises(ValueError, match="'class' is a Python keyword"):
        _export.finish(xr.Dataset({"class": ("step", [0, 1])}), {})
    with pytest.raises(ValueError, match="'mystery' has no long_name"):
        _export.finish(xr.Dataset({"mystery": ("step", [0.0, 1.0])}), {})
    with pytest.raises(TypeError, match="parameters must be a dict"):
        _export.finish(xr.Dataset({"loss": ("step", [0.0, 1.0])}), [("eta", 0.1)])


@pytest.mark.parametrize(("installed", "engine"), [
    ({"netCDF4", "h5netcdf", "h5py"}, "netcdf4"), ({"h5netcdf", "h5py"}, "h5netcdf"),
    ({"h5netcdf"}, "scipy"), ({"h5py"}, "scipy"), (set(), "scipy")])
def test_the_writer_prefers_netcdf4(monkeypatch, installed, engine):
    find_spec = _export.importlib.util.find_spec

    def fake(module, *args):
        if module in ("netCDF4", "h5netcdf", "h5py"):
            return object() if module in installed else None
        return find_spec(module, *args)

    monkeypatch.setattr(_export.importlib.util, "find_spec", fake)
    assert _export.netcdf_engine() == engine
