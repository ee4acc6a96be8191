"""Sweep configs: grid → dataset shape and coordinates, and clear errors for bad input."""

import textwrap

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.cli import main
from stabsim.sweep import SweepConfig, run_sweep
from stabsim.sweep.classify import GDClass

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

#: a finite sum of N = 7 examples in d = 5 (QuadraticRegression.random)
REGRESSION_LOSS = {"name": "regression.random", "d": 5, "n": 7, "seed": 4, "q_scale": 0.7}
_LOSS_TOML = """
[loss]
name = "regression.random"
d = 5
n = 7
seed = 4
q_scale = 0.7

[params]
theta0 = [0.3, 0.3, 0.3, 0.3, 0.3]
"""
ADAPTIVE_TOML = """
[sweep]
model = "adaptive"
method = "rmsprop"
steps = 60
stride = 3

[grid]
eta = [0.01, 0.1, 1.0]
beta2 = [0.5, 0.9]
""" + _LOSS_TOML
SGD_TOML = """
[sweep]
model = "sgd"
steps = 60
stride = 3

[grid]
eta = [0.1, 0.5, 5.0]
batch_size = [2, 7]
""" + _LOSS_TOML + """batch_seed = 2
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


def test_zip_lists_may_repeat_a_value():
    # cell k takes entry k of each list: (0.1, 0.01) and (0.1, 0.02) are two cells
    config = SweepConfig(model="reduced", grid={"eta": [0.1, 0.1, 0.3], "x0": [0.01, 0.02, 0.03]},
                         combine="zip", steps=100)
    ds = run_sweep(config).to_xarray()
    np.testing.assert_array_equal(ds["eta"], [0.1, 0.1, 0.3])
    # a product grid of a repeated value would hold the same cells twice
    with pytest.raises(ValueError, match="'eta' has repeated values"):
        SweepConfig(model="reduced", grid={"eta": [0.1, 0.1]}, steps=100)


@pytest.mark.parametrize("data, message", [
    # a setting the model would not use
    ({"sweep": {"model": "reduced", "method": "nesterov"}, "grid": {"eta": [0.1]}},
     r"does not use \['method'\]"),
    ({"sweep": {"model": "reduced", "stride": 7, "divergence_norm": 1e-3},
      "grid": {"eta": [0.1]}}, r"does not use \['stride', 'divergence_norm'\]"),
    ({"sweep": {"model": "reduced"}, "classify": {"band": 0.9, "window": 0.01},
      "grid": {"eta": [0.1]}}, r"does not use \['band', 'window'\]"),
    ({"sweep": {"model": "gd"}, "loss": {"name": "quadratic", "A": [1.0]},
      "params": {"theta0": [1.0]}, "grid": {"eta": [0.1], "seed": [0, 1]}},
     "with theta0 given it is not used"),
    ({"sweep": {"model": "sgd"}, "loss": dict(REGRESSION_LOSS),
      "params": {"batch_size": 2, "batch_sharpness": "exact"},
      "grid": {"eta": [0.1], "bs_batches": [8, 16]}}, "with batch_sharpness = 'exact'"),
    # the GD cells record every stride-th step: final_loss had been that of step 0 here
    ({"sweep": {"model": "gd", "steps": 5, "stride": 10}, "loss": {"name": "minimalist"},
      "grid": {"eta": [0.1]}}, "stride that divides steps"),
    # a grid value is a coordinate of the result: netCDF-3 could not store this one, and
    # the sweep had failed after computing every cell
    ({"sweep": {"model": "gd"}, "loss": {"name": "minimalist"},
      "grid": {"eta": [0.1], "seed": [2**31]}}, "'seed' has 2147483648, outside the 32-bit"),
    # one parameter given twice: the second value had silently won
    ({"sweep": {"model": "gd"}, "loss": {"name": "scalar_network", "depth": 3},
      "grid": {"eta": [0.1], "loss": {"depth": [4, 5]}}},
     r"\['loss.depth'\] appear in both \[loss\] and \[grid\]"),
    ({"sweep": {"model": "gd"}, "loss": {"name": "scalar_network"},
      "grid": {"eta": [0.1], "loss.depth": [3], "loss": {"depth": [4, 5]}}},
     "gives 'loss.depth' twice"),
])
def test_a_setting_that_would_be_ignored_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig.from_dict(data)


def test_a_config_made_again_with_its_defaults_filled_in_is_accepted():
    # the runner makes a config again with dataclasses.replace, which passes the defaults
    # (method, band, window) that the first one resolved
    import dataclasses

    config = SweepConfig(model="reduced", grid={"eta": [0.1]}, steps=10)
    assert dataclasses.replace(config, steps=1).method == config.method


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
    # the adaptive and SGD sweeps: each bad value names its key
    ({"sweep": {"model": "adaptive"}, "loss": {"name": "quadratic", "A": [1.0]},
      "grid": {"eta": [0.1], "beta2": [0.9, 1.0]}}, "beta2"),
    ({"sweep": {"model": "adaptive"}, "loss": {"name": "quadratic", "A": [1.0]},
      "grid": {"eta": [0.1], "beta2": [-0.1]}}, "beta2"),
    ({"sweep": {"model": "adaptive", "method": "rmsprop"}, "params": {"beta1": 0.9},
      "loss": {"name": "quadratic", "A": [1.0]}, "grid": {"eta": [0.1]}}, "beta1"),
    ({"sweep": {"model": "adaptive", "method": "heavy_ball"},
      "loss": {"name": "quadratic", "A": [1.0]}, "grid": {"eta": [0.1]}}, "method"),
    ({"sweep": {"model": "adaptive"}, "loss": {"name": "quadratic", "A": [1.0]},
      "params": {"eps": -1e-8}, "grid": {"eta": [0.1]}}, "eps"),
    ({"sweep": {"model": "sgd"}, "loss": {"name": "quadratic", "A": [1.0]},
      "params": {"batch_size": 1}, "grid": {"eta": [0.1]}}, "finite sum"),
    ({"sweep": {"model": "sgd"}, "loss": dict(REGRESSION_LOSS),
      "grid": {"eta": [0.1]}}, "batch_size"),
    ({"sweep": {"model": "sgd"}, "loss": dict(REGRESSION_LOSS),
      "grid": {"eta": [0.1], "batch_size": [2, 8]}}, "batch_size"),
    ({"sweep": {"model": "sgd"}, "loss": dict(REGRESSION_LOSS),
      "params": {"batch_size": 2, "bs_batches": 1}, "grid": {"eta": [0.1]}}, "bs_batches"),
    ({"sweep": {"model": "sgd"}, "loss": dict(REGRESSION_LOSS),
      "params": {"batch_size": 2}, "grid": {"eta": [0.1], "replacement": [True]}},
     "replacement"),
])
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ValueError, match=key):
        SweepConfig.from_dict(data)


def _same_cells(ds, direct):
    """Every variable of the direct sweep, cell by cell, to the last bit (NaN = NaN)."""
    assert ds["regime"].dims == direct["regime"].dims
    for name in ("eta", *direct.data_vars):
        np.testing.assert_array_equal(ds[name].values, direct[name].values, err_msg=name)
    for name in ds.variables:  # the export conventions of the GD sweep
        assert {"long_name", "units"} <= set(ds[name].attrs), name


def test_adaptive_config_is_the_direct_sweep_cell_by_cell(tmp_path):
    # run_sweep and adaptive_sweep run each cell through the same run_adaptive call (the
    # classification band and window at their defaults on both sides): the same floats
    from stabsim.losses import QuadraticRegression
    from stabsim.sweep.adaptive_cells import adaptive_sweep

    path = tmp_path / "adaptive.toml"
    path.write_text(ADAPTIVE_TOML)
    ds = run_sweep(path).to_xarray()
    loss = QuadraticRegression.random(5, 7, seed=4, q_scale=0.7)
    direct = adaptive_sweep(loss, [0.3] * 5, [0.01, 0.1, 1.0], [0.5, 0.9], 60,
                            method="rmsprop", stride=3).to_xarray()
    _same_cells(ds, direct)
    np.testing.assert_array_equal(ds["beta2"], [0.5, 0.9])
    assert ds.attrs["model"] == "adaptive"


def test_sgd_config_is_the_direct_sweep_cell_by_cell(tmp_path):
    # as above, run_sgd per cell, with the batches drawn from the seed batch_seed
    from stabsim.losses import QuadraticRegression
    from stabsim.sweep.sgd_cells import sgd_sweep

    path = tmp_path / "sgd.toml"
    path.write_text(SGD_TOML)
    ds = run_sweep(path).to_xarray()
    loss = QuadraticRegression.random(5, 7, seed=4, q_scale=0.7)
    direct = sgd_sweep(loss, [0.3] * 5, [0.1, 0.5, 5.0], [2, 7], steps=60, stride=3,
                       seed=2).to_xarray()
    _same_cells(ds, direct)
    assert ds["batch_size"].values.tolist() == [2, 7]
    assert ds.attrs["model"] == "sgd"


def test_cli_writes_adaptive_and_sgd_sweeps(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import xarray as xr

    import stabsim

    root = str(Path(stabsim.__file__).parent.parent)  # the stabsim under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH",
                                                                             "")])}
    for name, text, second in (("adaptive", ADAPTIVE_TOML, "beta2"),
                               ("sgd", SGD_TOML, "batch_size")):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        done = subprocess.run([sys.executable, "-m", "stabsim", "sweep", str(path),
                               "--no-progress"], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        ds = xr.load_dataset(tmp_path / f"{name}.nc")
        assert ds["regime"].dims == ("eta", second) and ds.attrs["model"] == name


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
stride = 3125
[loss]
name = "quadratic"
A = [1.0]
[params]
theta0 = [1.0]
[grid]
eta = {start = 0.1, stop = 1.0, num = 10000}
""")
    # 10^4 cells × 10^9 steps: over an hour at 1 ns a step, whatever the machine (50 cells
    # had passed on the estimate's old excess: the fixed cost of a call times the steps)
    assert main(["sweep", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "hours" in err and "--yes" in err
    assert not (tmp_path / "long.nc").exists()


def test_help_shows_an_example_config(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "[grid]" in out and "model = " in out


def test_a_random_constructors_parameters_under_the_familys_name_point_to_it():
    # `QuadraticRegression.random(d, n, seed)` is "regression.random" in a config; its
    # parameters given to "regression" (which takes the arrays J, Q, z0) say so
    with pytest.raises(ValueError) as info:
        SweepConfig(model="gd", grid={"eta": [0.1]}, loss={"name": "regression", "d": 5, "n": 2},
                    params={"theta0": "random"})
    assert "unknown parameter(s) ['d', 'n']" in str(info.value)
    assert "or name = 'regression.random', which takes ['d', 'n', 'seed'" in str(info.value)


def test_a_loss_that_comes_out_different_when_built_again_is_refused(tmp_path, monkeypatch):
    # the cells build the loss once per chunk (and per worker): without a seed,
    # "regression.random" drew a model of its own for each chunk under one key
    # (initial losses 0.586, 0.639, 0.128 in one run, 0.074, 0.439, 0.148 in the next)
    loss = {"name": "regression.random", "d": 3, "n": 4}
    with pytest.raises(ValueError, match="different loss each time.*fix its seed"):
        SweepConfig(model="gd", grid={"eta": [0.1, 0.2]}, loss=loss, steps=20,
                    params={"theta0": [0.1, 0.1, 0.1]})
    SweepConfig(model="gd", grid={"eta": [0.1, 0.2]}, loss={**loss, "seed": 0}, steps=20,
                params={"theta0": [0.1, 0.1, 0.1]})
    # a user's factory that draws without a seed, likewise
    (tmp_path / "drawing_factory.py").write_text(textwrap.dedent("""
        import numpy as np
        from stabsim.losses import Quadratic

        def make(seed=None):
            return Quadratic(np.diag(np.random.default_rng(seed).uniform(1, 2, 2)))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="different loss each time"):
        SweepConfig(model="gd", grid={"eta": [0.1]}, loss={"name": "drawing_factory:make"},
                    steps=20, params={"theta0": [0.1, 0.1]})
    SweepConfig(model="gd", grid={"eta": [0.1]}, loss={"name": "drawing_factory:make",
                                                        "seed": 1},
                steps=20, params={"theta0": [0.1, 0.1]})


def test_a_factory_that_redraws_what_its_jax_loss_reads_is_refused(tmp_path, monkeypatch):
    # a JAX loss reads its globals when its provenance is taken: taken after the second
    # build, both provenances saw the second draw, and the factory passed
    pytest.importorskip("jax")
    (tmp_path / "global_draw.py").write_text(textwrap.dedent("""
        import jax.numpy as jnp
        import numpy as np
        from stabsim.losses import from_jax

        DATA = None

        def _loss(theta):
            return jnp.sum((DATA @ theta - 1.0) ** 2)

        def make():
            global DATA
            DATA = np.random.default_rng().normal(size=(4, 3))
            return from_jax(_loss, 3)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="different loss each time"):
        SweepConfig(model="gd", grid={"eta": [0.1]}, loss={"name": "global_draw:make"},
                    steps=20, params={"theta0": [0.1, 0.1, 0.1]})


@pytest.mark.parametrize("method", ["gd", "normalised", "sqrt"])
@pytest.mark.parametrize("where", ["params", "grid"])
def test_a_gd_sweep_refuses_a_momentum_its_method_has_no_use_for(method, where):
    # normalised GD and GD on sqrt L never read the momentum: a grid over it gave identical
    # cells, where run_gd refuses it (and method 'gd' was refused only inside the first
    # cell's run); heavy ball takes it
    if where == "grid":
        params, grid = {"theta0": [0.5, 0.1], "eta": 0.1}, {"momentum": [0.0, 0.5]}
    else:
        params, grid = {"theta0": [0.5, 0.1], "momentum": 0.5}, {"eta": [0.1, 0.2]}
    with pytest.raises(ValueError, match=f"method {method!r} has none"):
        SweepConfig(model="gd", loss={"name": "minimalist"}, steps=10, method=method,
                    params=params, grid=grid)
    SweepConfig(model="gd", loss={"name": "minimalist"}, steps=10, method="heavy_ball",
                params=params, grid=grid)


@pytest.mark.parametrize("method", ["normalised", "sqrt"])
@pytest.mark.parametrize("start", [[1.0, 1.0], [0.0, 0.0]])
def test_a_gd_cell_that_starts_at_a_critical_point_is_converged(method, start):
    # the minimalist loss's minimiser (1, 1) and its critical point (0, 0): normalised GD and
    # GD on sqrt L stop at once (ZERO_GRADIENT), whose NaN final loss (before the state's
    # record was kept) had made the cell 'diverged'; every method stays
    # at such a point. The cell keeps step 0's record: its final loss is L there, ¼(x²y² − 1)²
    config = SweepConfig(model="gd", method=method, grid={"eta": [0.1]},
                         loss={"name": "minimalist"}, params={"theta0": start}, steps=10)
    ds = run_sweep(config).to_xarray()
    assert ds.status.item() == Status.ZERO_GRADIENT and ds.steps_run.item() == 0
    assert ds.regime.item() == GDClass.CONVERGED
    assert ds.final_loss.item() == 0.25 * (start[0] ** 2 * start[1] ** 2 - 1.0) ** 2


def test_a_cell_that_lands_on_a_critical_point_keeps_its_loss_and_its_r_statistics():
    # normalised GD on ½θ² from 1 with η = 1/4 steps by 1/4 and lands on 0 at step 4: the
    # critical state's record gives the final loss, L(0) = 0, while r = S h/2 with
    # h = η/|∇L| = η/|θ| is undefined there; the r statistics are those of the states
    # before it: r = 1/8, 1/6, 1/4, 1/2 at θ = 1, 3/4, 1/2, 1/4 (they had all become NaN
    # once the critical record was kept)
    config = SweepConfig(model="gd", method="normalised", grid={"eta": [0.25]},
                         loss={"name": "quadratic", "A": [1.0]}, params={"theta0": [1.0]},
                         steps=10, stride=1)
    ds = run_sweep(config).to_xarray()
    assert ds.status.item() == Status.ZERO_GRADIENT and ds.steps_run.item() == 4
    assert ds.final_loss.item() == 0.0 and ds.initial_loss.item() == 0.5
    assert ds.final_rel_sharpness.item() == 0.5 and ds.max_rel_sharpness.item() == 0.5
    assert np.isfinite(ds.mean_rel_sharpness.item())


def test_a_sqrt_sweep_on_a_loss_without_a_known_minimum_is_refused_when_made():
    # it had failed only inside run_sweep, with run_gd's advice to pass loss_min, which a
    # sweep does not take
    with pytest.raises(ValueError, match="method 'sqrt' descends sqrt.*has none"):
        SweepConfig(model="gd", method="sqrt", grid={"eta": [0.1]}, steps=10,
                    loss={"name": "network", "hidden": [4], "n_samples": 6})
    SweepConfig(model="gd", method="sqrt", grid={"eta": [0.1]}, steps=10,
                loss={"name": "minimalist"}, params={"theta0": [0.5, 0.1]})


def test_configs_hash_as_they_compare():
    # equal configs (field by field: 2 == 2.0) hash alike, so configs key a dict or a set
    written = SweepConfig(model="reduced", grid={"eta": [0.1, 0.2]}, params={"alpha": 2})
    same = SweepConfig(model="reduced", grid={"eta": [0.1, 0.2]}, params={"alpha": 2.0})
    other = SweepConfig(model="reduced", grid={"eta": [0.1, 0.3]}, params={"alpha": 2.0})
    assert written == same and hash(written) == hash(same)
    assert written != other
    results = {written: "first", other: "second"}
    assert results[same] == "first" and len({written, same, other}) == 2
