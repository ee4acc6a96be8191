"""GD against θ†, θ† + v, the reduced map, gradient flow and the central flow, in lockstep.

The regime: ``QuadraticRegression.two_scale(η)``, a second-order regression
model L_η = F/η + G that sharpens progressively from θ₀ = 0 (sharpness 0.9 · 2/η) and stays
at the edge of stability. Its EoS constants scale as δ² = 2α/β ∝ η.
"""

import warnings

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.compare import TheoryAssumptionWarning, compare
from stabsim.losses import Quadratic, QuadraticRegression

ETA = 0.01


def _run(eta, flow_time):
    loss = QuadraticRegression.two_scale(eta)
    return compare(loss, np.zeros(loss.dim), eta, int(round(flow_time / eta)), warn=False)


@pytest.fixture(scope="module")
def run():
    return _run(ETA, 12.0)


def test_result_object(run):
    assert run.success, run.message
    assert set(run.statuses) == {"gd", "gradient_flow", "central_flow", "constrained",
                                 "reduced_map"}
    ds = run.to_xarray()
    assert ds.sizes["step"] == run.steps.shape[0]
    assert {"dist_dagger", "dist_pred", "cf_pred_loss", "reduced_x"} <= set(ds.data_vars)
    before = slice(0, run.crossing_step)
    assert np.all(np.isnan(run.dist_dagger[before]))
    # the predictions start at GD's iterate: θ†_tc + v_tc = θ_tc exactly
    assert run.dist_pred[run.crossing_step] == 0.0


def test_sharpness_hovers_around_two_over_eta(run):
    w = run.whole_cycles()
    rel = run.gd_sharpness[w] * ETA / 2.0
    # Once at the EoS the sharpness oscillates around 2/η and never runs away. The excursion
    # is y_max of the reduced map's orbit, set by its conserved quantity from the tiny x at
    # the crossing; ±50% covers it for this start (it is ≈ ±35%, against the 2x that gradient
    # flow reaches) while still excluding both divergence and a return to stability.
    assert np.all(np.abs(rel - 1.0) < 0.5)
    # Over whole cycles the time average of S − 2/η is the average of y, which is O(η α) per
    # step around 0: within 5% of 2/η.
    assert abs(np.mean(rel) - 1.0) < 0.05
    assert np.nanmax(run.gf_sharpness) * ETA / 2.0 > 1.5  # gradient flow sharpens past it


def test_gd_stays_near_the_constrained_trajectory_not_gradient_flow(run):
    averages = run.cycle_averages()
    # |θ_GD − θ†| = O(δ) stays bounded while |θ_GD − θ_GF| = O(1) grows with the drift:
    # require a factor 3 (both measured over the same whole cycles).
    assert averages["rms_dist_dagger"] < averages["rms_dist_gf"] / 3.0
    # θ† and the central flow w(t) are the same curve to leading order (docs/theory.md §3)
    assert abs(averages["rms_dist_cf"] - averages["rms_dist_dagger"]) < (
        0.1 * averages["rms_dist_dagger"])


def test_cycle_averaged_loss_matches_central_flow(run):
    averages = run.cycle_averages()
    w = run.whole_cycles()
    # the averages are the plain means over the window (an independent recomputation)
    assert averages["excess_loss"] == pytest.approx(np.mean(run.gd_loss[w] - run.cf_loss[w]))
    excess_gd, excess_pred = averages["excess_loss"], averages["predicted_excess_loss"]
    # E[L(θ_t)] ≈ L(w) + σ²/η: over whole cycles mean x² = δ² exactly for the reduced map,
    # so the excess loss is right to leading order; the neglected terms (the cubic term of L
    # along u, the motion of w inside a cycle, the window's partial steps) are smaller by a
    # factor O(δ)-relative, ≈ 0.1 at η = 0.01 — so 15%.
    assert abs(excess_gd - excess_pred) < 0.15 * excess_pred
    # and mean x² over the same cycles is δ² (σ² = δ², docs/theory.md §3)
    assert abs(averages["mean_x2"] / averages["mean_sigma2"] - 1.0) < 0.15


def test_diagnostics(run):
    eos = slice(run.crossing_step, None)
    assert run.alpha_star > 0
    assert np.all(run.lambda2_margin[eos] > 0)
    # The full-vector prediction holds while |v⊥| = O(δ); over 12 flow-time units its
    # off-axis part grows (the discrete dynamics spiral out, docs/theory.md §1) and the comparison
    # says so — in the first cycle it is still O(δ).
    first = slice(run.crossing_step, run.whole_cycles().start)
    assert np.nanmax(run.vperp_over_delta[first]) < 1.0
    flagged = np.nanmax(run.vperp_over_delta) > 1.0
    assert flagged == any("v_perp" in text for text in run.warnings)
    with pytest.warns(TheoryAssumptionWarning) if run.warnings else warnings.catch_warnings():
        compare(QuadraticRegression.two_scale(ETA), np.zeros(6), ETA, run.steps[-1])


@pytest.mark.slow
def test_errors_shrink_with_eta_at_the_theoretical_rate():
    """Fitted orders in η over η = 0.01, 0.005, 0.0025 at a fixed flow time ηt = 12.

    Theory (docs/theory.md §1–§3 with the scalings of QuadraticRegression.two_scale, δ² = 2α/β ∝ η):
    - mean x² over whole cycles = δ² (the reduced map's exact identity): order 1;
    - the RMS of |θ_GD − θ†| over whole cycles is O(δ) (x ~ δ along u, y/|∇S⊥| ~ δ along
      ∇S⊥): order 1/2;
    - the excess loss mean L_GD − L(w) = σ²/η = δ²/η: order 0;
    - the relative error of the central-flow prediction of that excess: x alternates sign
      every step, so odd-order terms (the cubic term of L along u) cancel over whole cycles
      and the first correction is quartic, relative O(x²) = O(δ²): order 1.
    The bands are ±0.25 (±0.5 for the last, a small difference of two averages whose
    η = 0.01 point is not yet asymptotic): the slopes over a factor 4 in η also carry the
    slowly varying orbit size (set by ln(δ²/x²) at the crossing, docs/theory.md §1) and the cut
    of the window at cycle boundaries, which move them by less than that.
    """
    etas = np.array([0.01, 0.005, 0.0025])
    measured = {"x2": [], "dist": [], "excess": [], "loss_error": []}
    for eta in etas:
        r = _run(eta, 12.0)
        w = r.whole_cycles()
        excess = np.mean(r.gd_loss[w] - r.cf_loss[w])
        predicted = np.mean(r.cf_sigma2[w]) / eta
        measured["x2"].append(np.mean(r.gd_x[w] ** 2))
        measured["dist"].append(np.sqrt(np.mean(r.dist_dagger[w] ** 2)))
        measured["excess"].append(excess)
        measured["loss_error"].append(abs(excess - predicted) / predicted)
    order = {name: np.polyfit(np.log(etas), np.log(values), 1)[0]
             for name, values in measured.items()}
    assert abs(order["x2"] - 1.0) < 0.25, order
    assert abs(order["dist"] - 0.5) < 0.25, order
    assert abs(order["excess"]) < 0.25, order
    assert abs(order["loss_error"] - 1.0) < 0.5, order


def test_warns_when_the_threshold_is_never_reached():
    with pytest.warns(TheoryAssumptionWarning, match="never reached"):
        r = compare(Quadratic([1.0, 0.5]), [1.0, 1.0], 0.5, 20)
    assert r.crossing_step is None and r.status is Status.OK


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        compare(Quadratic([1.0]), [1.0], 0.5, 0)
    with pytest.raises(ValueError):
        compare(Quadratic([1.0]), [1.0], 0.5, 10, projection="nearest")


def test_plots_are_agg_safe(run):
    import matplotlib

    matplotlib.use("Agg")
    from stabsim.plot import plot_comparison, plot_x_prediction

    fig = plot_comparison(run)
    assert len(fig.axes) == 3 and fig.axes[0].get_title().startswith("GD against")
    fig2 = plot_x_prediction(run, ax=fig.axes[0])
    assert fig2 is fig
    assert len(plot_x_prediction(run).axes) == 1


def test_minimalist_ends_at_the_edge_not_at_the_gradient_flow_solution():
    """Minimalist example (docs/theory.md §5): GD ends at a minimiser with sharpness just below 2/η.

    From (1.8, 0.4) gradient flow reaches a minimiser of sharpness ≈ 7.3 while 2/η = 5.1
    (η puts 2/η at 60% of the way from S(θ₀) to it). GD crosses 2/η in a catapult (the
    four-phase picture does not describe that first step), then settles; θ† and the central
    flow settle at the same point, gradient flow does not.
    """
    from stabsim.losses import Minimalist

    eta = 2.0 / (1.80 + 0.6 * (7.34 - 1.80))
    r = compare(Minimalist(), [1.8, 0.4], eta, 400, warn=False)
    end = r.gd_sharpness[-1] * eta / 2.0
    # "just below": at most 2/η, and above 0.95 · 2/η — GD's last EoS cycle ends with
    # y = S − 2/η of order −ηα·(cycle length) ≈ −1% here, against +43% for gradient flow
    assert 0.95 < end <= 1.0
    assert r.gf_sharpness[-1] * eta / 2.0 > 1.3
    # GD's end point is the constrained trajectory's and the central flow's (both hold S at
    # 2/η, GD ends within ~1% of it: distances ~ 1% of the 0.4 that separate it from GF)
    assert r.dist_dagger[-1] < 0.05 * r.dist_gf[-1]
    assert r.dist_cf[-1] < 0.05 * r.dist_gf[-1]
