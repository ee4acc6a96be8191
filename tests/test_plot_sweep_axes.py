"""Phase diagrams of sweeps: every cell drawn at its own values, the axes chosen, extreme
values drawn, and the figure's output checked before any work."""

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from stabsim.cli import main  # noqa: E402
from stabsim.plot import plot_phase_diagram  # noqa: E402
from stabsim.plot.sweep import LABELS  # noqa: E402
from stabsim.sweep import SweepConfig, run_sweep  # noqa: E402

#: grid values not in increasing order (x0 a geometric sequence once sorted)
UNSORTED = {"eta": [0.3, 0.01, 0.1, 0.02], "x0": [0.1, 0.001, 0.01]}
TOP = np.finfo(np.float64).max


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Three tiny reduced-map sweeps, written to files: a product over ``UNSORTED``, the
    same lists zipped, and a strip over two huge step sizes."""
    where = tmp_path_factory.mktemp("sweeps")
    configs = {"product": SweepConfig(model="reduced", grid=UNSORTED, steps=200),
               "zip": SweepConfig(model="reduced", grid={"eta": UNSORTED["eta"],
                                                         "x0": [0.5, 0.001, 0.1, 0.2]},
                                  combine="zip", steps=200),
               "huge": SweepConfig(model="reduced", grid={"eta": [1e300, 1e308]}, steps=200)}
    out = {}
    for name, config in configs.items():
        path = where / f"{name}.nc"
        out[name] = (run_sweep(config, path, progress=False).to_xarray(), path)
    return out


def _colour_index(ds, **at) -> int:
    """The colour index a diagram gives the cell of ``ds`` at these parameter values."""
    codes = [int(c) for c in ds["regime"].attrs["flag_values"]]
    return codes.index(int(ds["regime"].sel(at)))


def _mesh(fig):
    """The diagram's axes and its one collection (a quad mesh, or the points of a zip)."""
    (ax,) = [a for a in fig.axes if a.collections]
    (mesh,) = ax.collections
    return ax, mesh


def _edges(mesh):
    """The x and y edges of a rectilinear quad mesh, as drawn."""
    xy = mesh.get_coordinates()
    return xy[0, :, 0], xy[:, 0, 1]


def _drawn_at(mesh, x, y) -> list:
    """The colour indices of every cell of ``mesh`` whose rectangle holds the point (x, y)."""
    xy = mesh.get_coordinates()
    xa, xb = xy[:-1, :-1, 0], xy[:-1, 1:, 0]
    ya, yb = xy[:-1, :-1, 1], xy[1:, :-1, 1]
    inside = ((np.minimum(xa, xb) <= x) & (x <= np.maximum(xa, xb))
              & (np.minimum(ya, yb) <= y) & (y <= np.maximum(ya, yb)))
    return np.asarray(mesh.get_array()).reshape(inside.shape)[inside].tolist()


def _drawn(label: str, value: float) -> float:
    """Where an axis with this label draws ``value``: divided by a power of ten for
    ``"… / 1e308"``, its logarithm for ``"log₁₀ …"``."""
    if label.startswith("log₁₀ "):
        return float(np.log10(value))
    _, slash, power = label.rpartition(" / ")
    return value / float(power) if slash else value


def _error(capsys) -> str:
    """The one ``stabsim: error:`` line on stderr."""
    (line,) = [line for line in capsys.readouterr().err.splitlines()
               if line.startswith("stabsim: error:")]
    return line


def test_values_listed_out_of_order_are_drawn_at_their_own_cells(results):
    ds, _ = results["product"]
    assert len(np.unique(ds["regime"])) > 2  # the cells are told apart by colour
    ax, mesh = _mesh(plot_phase_diagram(ds))
    assert (ax.get_xlabel(), ax.get_ylabel()) == (LABELS["eta"], LABELS["x0"])
    xe, ye = _edges(mesh)
    assert np.all(np.diff(xe) > 0) and np.all(np.diff(ye) > 0)
    for eta in UNSORTED["eta"]:
        for x0 in UNSORTED["x0"]:
            assert _drawn_at(mesh, eta, x0) == [_colour_index(ds, eta=eta, x0=x0)]
    assert ax.get_yscale() == "log"  # 0.001, 0.01, 0.1
    assert ds["eta"].values.tolist() == UNSORTED["eta"]  # the result is left as stored


@pytest.mark.parametrize("given", [{"y": "eta"}, {"x": "x0"}])
def test_the_default_axis_differs_from_the_one_given(results, given):
    ds, path = results["product"]
    ax, mesh = _mesh(plot_phase_diagram(ds, **given))
    assert (ax.get_xlabel(), ax.get_ylabel()) == (LABELS["x0"], LABELS["eta"])
    for eta in UNSORTED["eta"]:
        for x0 in UNSORTED["x0"]:
            assert _drawn_at(mesh, x0, eta) == [_colour_index(ds, eta=eta, x0=x0)]
    (axis, name), = given.items()
    figure = path.with_name(f"{axis}.png")
    assert main(["plot", str(path), f"--{axis}", name, "-o", str(figure)]) == 0

    zipped, _ = results["zip"]
    ax, points = _mesh(plot_phase_diagram(zipped, **given))
    assert (ax.get_xlabel(), ax.get_ylabel()) == (LABELS["x0"], LABELS["eta"])
    assert points.get_offsets().tolist() == np.column_stack([zipped["x0"], zipped["eta"]]).tolist()


@pytest.mark.parametrize("which", ["product", "zip"])
def test_the_same_parameter_on_both_axes_is_a_clear_error(results, which, capsys):
    ds, path = results[which]
    with pytest.raises(ValueError, match="x and y are both 'eta'"):
        plot_phase_diagram(ds, x="eta", y="eta")
    assert main(["plot", str(path), "--x", "eta", "--y", "eta"]) == 2
    assert "x and y are both 'eta'" in _error(capsys)


def test_a_lone_swept_parameter_is_not_a_vertical_axis(results):
    ds, _ = results["huge"]
    with pytest.raises(ValueError, match="only swept parameter"):
        plot_phase_diagram(ds, y="eta")


def _drawn_without_warnings(ds):
    """The phase diagram of ``ds`` drawn and saved with warnings as errors: its axes, mesh
    and horizontal cell edges, checked finite and strictly increasing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_phase_diagram(ds)
        fig.savefig(io.BytesIO(), format="png")
    ax, mesh = _mesh(fig)
    xe, _ = _edges(mesh)
    assert np.all(np.isfinite(xe)) and np.all(np.diff(xe) > 0)
    return ax, mesh, xe


def test_huge_step_sizes_are_drawn_at_their_own_cells(results):
    ds, path = results["huge"]
    ax, mesh, _ = _drawn_without_warnings(ds)
    for eta in ds["eta"].values:
        assert _drawn_at(mesh, _drawn(ax.get_xlabel(), eta), 0.0) == [_colour_index(ds, eta=eta)]
    assert main(["plot", str(path)]) == 0 and path.with_suffix(".png").exists()


@pytest.mark.parametrize("eta, apart", [
    ([TOP], True),
    ([-1e20], True),
    ([-TOP, TOP], True),
    ([1e-250, 1e-200, 1e-150], True),  # a log axis
    ([1e300, 1e304, 1e308], True),  # too close to the largest float for a log axis
    ([1e-300, 1e4, 1e308], True),  # over 600 decades
    ([np.nextafter(TOP, 0), TOP], False),  # neighbouring floats: no room between them
    ([5e-324, 1e-323, 1.5e-323], False),
])
def test_any_finite_values_give_finite_increasing_edges(results, eta, apart):
    """Every set of finite values gets cells with finite, strictly increasing edges, drawn
    without a warning; each value in its own cell wherever floats leave room for it."""
    like, _ = results["product"]
    x0 = [0.0, 1.0]
    regime = (np.arange(len(eta) * len(x0)) % 5).reshape(len(eta), len(x0)).astype(np.int8)
    ds = xr.Dataset({"regime": (("eta", "x0"), regime, like["regime"].attrs)},
                    coords={"eta": eta, "x0": x0}, attrs={"model": "reduced"})
    ax, mesh, xe = _drawn_without_warnings(ds)
    if ax.get_xscale() == "log":
        assert np.all(xe > 0)
    if apart:
        for value in eta:
            at = _drawn(ax.get_xlabel(), value)
            for x in x0:
                assert _drawn_at(mesh, at, x) == [_colour_index(ds, eta=value, x0=x)]


def test_an_output_that_cannot_be_written_is_refused_before_any_work(results, tmp_path,
                                                                       capsys, monkeypatch):
    _, path = results["product"]
    work = []
    monkeypatch.setattr(xr, "load_dataset", lambda *a, **k: work.append("read"))
    (tmp_path / "afile").write_text("")
    outputs = [tmp_path, tmp_path / "afile" / "x.png"]  # a directory; a file's "child"
    if Path("/proc").is_dir():
        outputs.append(Path("/proc/x.png"))  # a file system that takes no new files
    for output in outputs:
        assert main(["plot", str(path), "-o", str(output)]) == 2
        assert f"the output {output}" in _error(capsys)
    # a format Matplotlib does not write had failed only when the figure was saved
    assert main(["plot", str(path), "-o", str(tmp_path / "phase.xyz")]) == 2
    assert "must end in one of the formats Matplotlib writes" in _error(capsys)
    assert work == []


def test_an_output_in_a_new_directory_is_written(results, tmp_path):
    _, path = results["product"]
    output = tmp_path / "new" / "dir" / "phase.png"
    assert main(["plot", str(path), "-o", str(output)]) == 0
    assert output.stat().st_size > 0
