"""Sweep configs: grid → dataset shape and coordinates, and clear errors for bad input."""

import numpy as np
import pytest

from stabsim.cli import main
from stabsim.sweep import SweepConfig, run_sweep

REDUCED_TOML = """
[sweep]
model = "reduced"
steps = 200

[params]
alpha = 2.0

[grid]
eta = {start = 0.01, stop = 0.05, num = 3}
x0 = {start = 1e-3, stop = 1e-1, num = 4, spacing = "log"}
"""


def test_grid_gives_dataset_dims_and_coords(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(REDUCED_TOML)
    config = SweepConfig.from_toml(path)
    ds = run_sweep(config).to_xarray()
    assert ds["regime"].dims == ("eta", "x0")
    assert ds["regime"].shape == (3, 4)
    np.testing.assert_array_equal(ds["eta"], np.linspace(0.01, 0.05, 3))
    np.testing.assert_array_equal(ds["x0"], np.geomspace(1e-3, 1e-1, 4))
    assert set(ds.data_vars) >= {"regime", "status", "cycles", "final_rel_sharpness"}
    assert '"alpha": 2.0' in ds.attrs["config"]
    assert "numba" in ds.attrs["versions"]


def test_zip_lists_give_one_cell_dimension():
    config = SweepConfig(model="reduced", grid={"eta": [0.01, 0.02, 0.03], "x0": [0.1, 0.2, 0.3]},
                         combine="zip", steps=100)
    ds = run_sweep(config).to_xarray()
    assert ds["regime"].dims == ("cell",)
    np.testing.assert_array_equal(ds["x0"], [0.1, 0.2, 0.3])
    assert ds["eta"].dims == ("cell",)


def test_loss_parameters_sweep_as_loss_dot_name():
    config = SweepConfig.from_dict({
        "sweep": {"model": "gd", "steps": 20},
        "loss": {"name": "scalar_network"},
        "params": {"theta0": "random", "scale": 1.2},
        "grid": {"eta": [0.1, 0.2], "loss": {"depth": [2, 3]}, "seed": [0, 1]},
    })
    ds = run_sweep(config).to_xarray()
    assert ds["regime"].dims == ("eta", "loss.depth", "seed")
    assert ds["loss.depth"].values.tolist() == [2, 3]
    # random starts of norm `scale`: the seed changes the start, hence the loss
    assert np.ptp(ds["initial_loss"].isel(eta=0, **{"loss.depth": 0}).values) > 0


@pytest.mark.parametrize("data, key", [
    ({"sweep": {"model": "reduced"}, "grid": {"etta": [0.1]}}, "etta"),
    ({"sweep": {"model": "reduced"}, "grid": {"eta": []}}, "eta"),
    ({"sweep": {"model": "reduced", "stepz": 3}, "grid": {"eta": [0.1]}}, "stepz"),
    ({"sweep": {"model": "reduced"}, "grid": {"eta": [0.1]}, "parms": {}}, "parms"),
    ({"sweep": {"model": "reduced"}, "params": {"gamma": 1.0}, "grid": {"eta": [0.1]}}, "gamma"),
    ({"sweep": {"model": "reduced"}, "grid": {"eta": [0.1, -0.1]}}, "eta"),
    ({"sweep": {"model": "reduced"}, "grid": {"x0": [0.1]}}, "eta"),
    ({"sweep": {"model": "reduced"}, "grid": {"eta": {"start": 0.1, "stop": 1}}}, "eta"),
    ({"sweep": {"model": "gd"}, "grid": {"eta": [0.1]}}, "loss"),
    ({"sweep": {"model": "gd"}, "loss": {"name": "quadratic", "A": [1.0]},
      "grid": {"eta": [0.1], "theta0": [1.0]}}, "theta0"),
    ({"sweep": {"model": "fancy"}, "grid": {"eta": [0.1]}}, "model"),
])
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ValueError, match=key):
        SweepConfig.from_dict(data)


def test_bad_loss_parameter_names_it():
    with pytest.raises(ValueError, match="depht"):  # when the config is made, before a run
        SweepConfig(model="gd", grid={"eta": [0.1], "loss.depht": [3]},
                    loss={"name": "scalar_network"}, steps=5)


def test_malformed_toml_is_a_clear_cli_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[sweep\nmodel = 'reduced'\n")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "malformed TOML" in err and "bad.toml" in err


def test_unknown_grid_key_is_a_clear_cli_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(REDUCED_TOML.replace("x0 =", "x1 ="))
    assert main(["sweep", str(path)]) == 2
    assert "'x1'" in capsys.readouterr().err


def test_long_sweep_needs_yes_when_not_interactive(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    path = tmp_path / "long.toml"
    path.write_text("""
[sweep]
model = "gd"
steps = 1000000000
stride = 1000
[loss]
name = "quadratic"
A = [1.0]
[params]
theta0 = [1.0]
[grid]
eta = {start = 0.1, stop = 1.0, num = 50}
""")
    assert main(["sweep", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "hours" in err and "--yes" in err
    assert not (tmp_path / "long.nc").exists()


def test_help_shows_an_example_config(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "[grid]" in out and "model = " in out
