"""The catapult phase diagram of the uv model (THEORY §6; stabsim.sweep.catapult)."""

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.losses import UVModel
from stabsim.sweep.catapult import catapult_boundaries, catapult_sweep
from stabsim.sweep.classify import CatapultClass, classify_catapult


def test_classify_catapult():
    status = np.array([Status.OK, Status.OK, Status.DIVERGED, Status.OK, Status.NONFINITE])
    initial = np.ones(5)
    final = np.array([0.1, 0.1, 0.1, 2.0, np.nan])
    peak = np.array([1.0, 3.0, 1.0, 2.0, np.nan])
    expected = [CatapultClass.LAZY, CatapultClass.CATAPULT, CatapultClass.DIVERGED,
                CatapultClass.UNRESOLVED, CatapultClass.DIVERGED]
    assert list(classify_catapult(status, initial, final, peak)) == expected


def test_boundaries_match_the_one_step_map():
    # y = 0: λ falls iff ηλ < 4, so the catapult/diverged boundary is 4 at every width; the
    # lazy/catapult one is the smaller root c₁ of a c² − c + 2 = 0, a = f₀² x²/(λ₀² m)
    # (derived in stabsim.sweep.catapult). Bisection brackets each to within tol.
    tol = 1e-6
    widths, seeds = [16, 64], [0, 2]
    b = catapult_boundaries(widths, seeds=seeds, steps=1000, tol=tol)
    for i, m in enumerate(widths):
        model = UVModel(m)
        for k, s in enumerate(seeds):
            theta0 = model.init(s)
            lam0 = model.ntk_eigenvalue(theta0)
            f0 = model.predict(theta0)[0, 0]
            a = f0 * f0 / (lam0 * lam0 * m)
            c1 = (1.0 - np.sqrt(1.0 - 8.0 * a)) / (2.0 * a)
            assert abs(b.lazy_catapult.values[i, k] - c1) <= tol
            assert abs(b.catapult_diverged.values[i, k] - 4.0) <= tol
            assert c1 > 2.0  # finite width moves the boundary up: c₁ = 2 + 4a + O(a²)


def test_sweep_phases():
    ds = catapult_sweep([32, 128], [1.0, 3.0, 5.0], steps=1000).to_xarray()
    for m in (32, 128):
        row = ds.sel(width=m)
        assert list(row["regime"].values) == [CatapultClass.LAZY, CatapultClass.CATAPULT,
                                             CatapultClass.DIVERGED]
        # After a catapult GD converges where ηλ < 2 (the minimiser is stable); a lazy run
        # ends with ηλ still below 2 too; here λ only falls (ηλ < 4).
        final = row["final_eta_lambda"].values
        assert final[0] < 1.0 and final[1] < 2.0
        assert row["peak_loss"].values[1] > row["initial_loss"].values[1]


@pytest.mark.parametrize("kwargs", [{"widths": [0]}, {"eta_lambda": [-1.0]}, {"steps": 0},
                                    {"widths": [4, 4]}, {"eta_lambda": [1.0, 1.0]}, {"x": 0.0},
                                    {"x": np.inf}, {"divergence_norm": 1.0}])
def test_bad_arguments(kwargs):
    # a repeated width or ηλ₀ had given repeated coordinates; x = 0 makes λ₀ = 0 and had
    # failed as "eta must be finite" after a division by zero; a divergence_norm below
    # |θ₀| ≈ √(2m) = 2.8 stopped every run before its first record, and the sweep raised
    # an IndexError
    args = {"widths": [4], "eta_lambda": [1.0], **kwargs}
    widths, grid = args.pop("widths"), args.pop("eta_lambda")
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        catapult_sweep(widths, grid, **args)
    if "eta_lambda" not in kwargs:  # the boundaries take the same widths, steps and example
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            catapult_boundaries(widths, **args)


def test_a_run_that_overflows_has_nan_statistics_and_no_warning():
    # ηλ₀ = 1e308: θ overflows at once; λ_T = |θ|² x²/m is inf, which a result keeps as NaN
    # beside the run's status (missing values are NaN, never inf)
    with np.errstate(all="raise"):
        ds = catapult_sweep([4], [1e308], steps=20).to_xarray()
    assert int(ds["regime"][0, 0]) == CatapultClass.DIVERGED
    assert int(ds["status"][0, 0]) in (Status.DIVERGED, Status.NONFINITE)
    for name in ("final_eta_lambda", "final_loss", "peak_loss", "initial_loss"):
        assert not np.isinf(ds[name].values).any(), name


def test_boundaries_carry_the_export_conventions():
    b = catapult_boundaries([8], steps=50, tol=0.5)
    for name in b.variables:
        assert {"long_name", "units"} <= set(b[name].attrs), name
    assert '"steps": 50' in b.attrs["parameters"]


def test_plot():
    from stabsim.plot.catapult import plot_catapult

    ds = catapult_sweep([8, 16], [1.0, 3.0], steps=200).to_xarray()
    fig = plot_catapult(ds, catapult_boundaries([8, 16], steps=200, tol=1e-2))
    lines = [ln.get_xdata()[0] for ln in fig.axes[0].get_lines()
             if ln.get_linestyle() == "--"]
    assert sorted(lines) == [2.0, 4.0]


def _measured(boundaries):
    """The "measured" markers plot_catapult draws from ``boundaries`` (label → (x, width))
    and its legend's texts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stabsim.plot.catapult import plot_catapult

    fig = plot_catapult(catapult_sweep([8, 16], [1.0, 3.0], steps=200).to_xarray(),
                        boundaries)
    axis = fig.axes[0]
    drawn = {ln.get_label(): (ln.get_xdata().tolist(), ln.get_ydata().tolist())
             for ln in axis.get_lines() if ln.get_label().startswith("measured")}
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    plt.close(fig)
    return drawn, legend


def _boundaries():
    import xarray as xr

    # values with exact means, different per width, and a NaN (a bracket of the wrong
    # classes), which the mean leaves out: width 8 → 2.25, width 16 → 2.125
    lazy = [[2.0, 2.5], [np.nan, 2.125]]
    return xr.Dataset({"lazy_catapult": (("width", "seed"), lazy),
                       "catapult_diverged": (("width", "seed"), np.add(lazy, 2.0))},
                      coords={"width": [8, 16], "seed": [0, 1]})


def test_plot_averages_the_boundaries_over_seeds_by_name():
    b = _boundaries()
    drawn = _measured(b)[0]
    assert drawn["measured lazy/catapult"] == ([2.25, 2.125], [8, 16])
    assert drawn["measured catapult/diverged"] == ([4.25, 4.125], [8, 16])
    assert _measured(b.transpose("seed", "width"))[0] == drawn
    # one seed: its values as they are
    x, widths = _measured(b.isel(seed=0))[0]["measured lazy/catapult"]
    assert widths == [8, 16] and x[0] == 2.0 and np.isnan(x[1])


def test_plot_lists_the_measured_boundaries_in_the_legend():
    legend = _measured(_boundaries())[1]
    # the regimes' entries, then the markers'
    assert legend[-2:] == ["measured lazy/catapult", "measured catapult/diverged"]
    assert {"lazy", "catapult", "diverged"} <= set(legend[:-2])
