"""Every CLI failure is one ``stabsim: error: …`` line and a non-zero exit, never a traceback."""

import types
import warnings

import numpy as np
import pytest
import xarray as xr

import stabsim.demo
from stabsim.cli import main
from stabsim.sweep import SweepConfig
from stabsim.sweep.store import ChunkStore, default_workdir

SWEEP = """
[sweep]
model = "reduced"
steps = 200
[grid]
eta = [0.05, 0.1]
x0 = [0.01, 0.1]
"""
GD_SWEEP = """
[sweep]
model = "gd"
steps = 10
[loss]
name = "quadratic"
{loss}
[params]
theta0 = [1.0]
[grid]
eta = [0.1]
"""


def _error_line(capsys, code, expected):
    """The exit code is ``expected``, and stderr is one error line (returned), besides the
    notice that kernels are being compiled (there when this test runs before any other has
    compiled them)."""
    assert code == expected
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines()
             if line != "compiling kernels, first run only…"]
    assert len(lines) == 1 and lines[0].startswith("stabsim: error: "), err
    return lines[0]


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    return path


def test_an_output_that_is_a_directory_is_refused_before_the_sweep(tmp_path, config, capsys):
    (tmp_path / "out.nc").mkdir()
    line = _error_line(capsys, main(["sweep", str(config), "-o", str(tmp_path / "out.nc")]), 2)
    assert "is a directory" in line
    assert not default_workdir(tmp_path / "out.nc").exists()  # nothing ran


def test_a_zarr_output_over_a_directory_of_other_files_is_refused(tmp_path, config, capsys):
    # a .zarr result replaces the directory it is written to: one that is not a Zarr store
    # holds someone's files, which that would delete
    pytest.importorskip("zarr")
    output = tmp_path / "precious.zarr"
    output.mkdir()
    (output / "thesis.txt").write_text("chapter 1")
    line = _error_line(capsys, main(["sweep", str(config), "-o", str(output)]), 2)
    assert "is a directory that is not a Zarr store" in line
    assert not default_workdir(output).exists()  # nothing ran
    from stabsim.sweep.store import write_dataset

    with pytest.raises(ValueError, match="not a Zarr store"):  # the Python path as well
        write_dataset(xr.Dataset({"a": ("x", np.arange(2.0))}), output)
    assert (output / "thesis.txt").read_text() == "chapter 1"
    # an empty directory, or a result written before, is replaced; zarr 3's notice that
    # consolidated metadata extends its format is not the user's business
    (output / "thesis.txt").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["-q", "sweep", str(config), "-o", str(output)]) == 0
        assert main(["-q", "sweep", str(config), "-o", str(output)]) == 0
    assert not [w for w in caught if "onsolidated" in str(w.message)]
    assert xr.open_zarr(output)["regime"].shape == (2, 2)


def test_an_output_named_for_another_format_is_refused_before_the_sweep(tmp_path, config,
                                                                        capsys):
    # result.csv had been written as a netCDF file under that name
    line = _error_line(capsys, main(["sweep", str(config), "-o", str(tmp_path / "r.csv")]), 2)
    assert "must end in .nc (netCDF) or .zarr" in line
    assert not default_workdir(tmp_path / "r.csv").exists()  # nothing ran


def test_an_unwritable_output_is_refused_before_the_sweep(config, capsys):
    # /proc takes no new files, whoever runs the test (root included)
    line = _error_line(capsys, main(["sweep", str(config), "-o", "/proc/stabsim-out.nc"]), 2)
    assert "cannot write the output /proc/stabsim-out.nc" in line


@pytest.mark.parametrize("argv", [["demo", "--quick", "--out", "{file}"],
                                  ["demo", "--quick", "--out", "{file}/sub"],
                                  ["demo", "--quick", "--out", "/proc/stabsim-demo"],
                                  ["sweep", "{config}", "--workdir", "{file}"],
                                  ["sweep", "{config}", "--workdir", "/proc/stabsim-work"]])
def test_a_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path, config, capsys,
                                                                 monkeypatch, argv):
    # these had failed with exit 1 and an OSError (the demo's folder, after its argument
    # checks; the work directory, after the sweep's size estimate)
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr("stabsim.demo._outcomes", no_work)
    monkeypatch.setattr("stabsim.sweep.runner.missing_cells", no_work)
    file = tmp_path / "afile"
    file.write_text("")
    argv = [a.format(file=file, config=config) for a in argv]
    line = _error_line(capsys, main(argv), 2)
    assert "cannot" in line and argv[-1] in line


def test_a_config_in_proc(capsys):
    line = _error_line(capsys, main(["sweep", "/proc/self/mem"]), 2)
    assert "/proc/self/mem" in line


def test_a_loss_parameter_that_is_a_table(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(GD_SWEEP.format(loss="A = {x = 1}"))
    assert "[loss] 'quadratic'" in _error_line(capsys, main(["sweep", str(path)]), 2)


def test_deeply_nested_toml_arrays(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(GD_SWEEP.format(loss="A = " + "[" * 5000 + "1.0" + "]" * 5000))
    assert "nested too deeply" in _error_line(capsys, main(["sweep", str(path)]), 2)


def test_plotting_a_file_without_flag_attributes(tmp_path, capsys):
    path = tmp_path / "other.nc"
    xr.Dataset({"regime": ("eta", np.array([1, 2], np.int8))},
               coords={"eta": [0.1, 0.2]}).to_netcdf(path, engine="scipy")
    line = _error_line(capsys, main(["plot", str(path)]), 2)
    assert "not a stabsim sweep result" in line


def test_plotting_a_file_that_is_not_a_dataset(tmp_path, capsys):
    path = tmp_path / "garbage.nc"
    path.write_bytes(b"\x00garbage" * 100)
    assert str(path) in _error_line(capsys, main(["plot", str(path)]), 2)


def test_plotting_zarr_without_zarr(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "zarr" else real(name, *a))
    (tmp_path / "r.zarr").mkdir()
    line = _error_line(capsys, main(["plot", str(tmp_path / "r.zarr")]), 2)
    assert "needs the zarr package" in line


def test_a_busy_work_directory(tmp_path, config, capsys):
    output = tmp_path / "out.nc"
    store = ChunkStore(default_workdir(output), SweepConfig.from_toml(config))
    with store.open():
        line = _error_line(capsys, main(["sweep", str(config), "-o", str(output)]), 1)
    assert "another sweep is working in" in line and "pid " in line


@pytest.mark.parametrize("argv", [["sweep"], ["plot", "a.nc", "--bogus"], ["nope"]])
def test_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    _error_line(capsys, exit_.value.code, 2)


@pytest.mark.parametrize("argv", [["-q", "-v", "plot", "r.nc"], ["plot", "r.nc", "-q", "-v"],
                                  ["-q", "plot", "r.nc", "-v"], ["-v", "plot", "r.nc", "-q"]])
def test_quiet_and_verbose_together_are_refused_wherever_each_goes(argv, capsys):
    # one before the command and one after it had been accepted, quiet winning silently
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert "not allowed with" in _error_line(capsys, exit_.value.code, 2)


def test_demo_exits_1_when_a_check_disagrees(tmp_path, capsys, monkeypatch):
    finding = types.SimpleNamespace(holds=False, experiment="e", quantity="q", measured="1")
    monkeypatch.setattr(stabsim.demo, "run", lambda out, **_: [finding])
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert "NO " in capsys.readouterr().err
    finding.holds = True
    assert main(["demo", "--out", str(tmp_path)]) == 0


def test_a_value_of_the_wrong_kind_is_bad_input(tmp_path, capsys):
    # TOML gives model = 3 an integer: a TypeError naming `model`, exit code 2 like any
    # other bad input
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.replace('model = "reduced"', "model = 3"))
    line = _error_line(capsys, main(["sweep", str(path)]), 2)
    assert line == ("stabsim: error: model must be one of the strings ['adaptive', 'gd', "
                    "'reduced', 'sgd'], got int 3")


@pytest.mark.parametrize("source, raised", [("def f(:\n", "SyntaxError: invalid syntax"),
                                            ("raise RuntimeError('no data here')\n",
                                             "RuntimeError: no data here")])
def test_a_loss_module_that_fails_at_import_is_reported_as_such(tmp_path, capsys,
                                                                 monkeypatch, source, raised):
    # only ImportError and AttributeError had been said to be a failed import; a syntax error
    # or an error the module raised was "bad parameter value (SyntaxError: ...)"
    (tmp_path / "cli_errors_broken.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "sweep.toml"
    path.write_text(GD_SWEEP.replace('"quadratic"', '"cli_errors_broken:f"').format(loss=""))
    line = _error_line(capsys, main(["sweep", str(path)]), 2)
    assert ("cannot import 'f' from 'cli_errors_broken': importing 'cli_errors_broken' "
            f"raised {raised}") in line
    assert "bad parameter value" not in line
