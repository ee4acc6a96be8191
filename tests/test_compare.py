"""GD against θ†, θ† + v, the reduced map, gradient flow and the central flow, in lockstep.

The regime: ``QuadraticRegression.two_scale(η)``, a second-order regression
model L_η = F/η + G that sharpens progressively from θ₀ = 0 (sharpness 0.9 · 2/η) and stays
at the edge of stability. Its EoS constants scale as δ² = 2α/β ∝ η.
"""

import warnings
from typing import NamedTuple

import numba
import numpy as np
import pytest
from two_scale_runs import two_scale_comparison

from stabsim._status import Status
from stabsim.comparison import TheoryAssumptionWarning, compare
from stabsim.flows.central import central_flow
from stabsim.losses import Loss, Quadratic, QuadraticRegression, register_family
from stabsim.maps.gd import reference_point, run_gd
from stabsim.spectral import eos_constants

ETA = 0.01


def _run(eta, flow_time):
    return two_scale_comparison(eta, flow_time)  # one run per session, shared with other files


@pytest.fixture(scope="module")
def run():
    return _run(ETA, 12.0)


def test_result_object(run):
    assert run.success, run.message
    assert set(run.statuses) == {"gd", "gradient_flow", "central_flow", "constrained",
                                 "reduced_map"}
    ds = run.to_xarray()
    assert ds.sizes["step"] == run.step.shape[0]
    assert {"dist_dagger", "dist_pred", "cf_pred_loss", "reduced_x"} <= set(ds.data_vars)
    before = slice(0, run.crossing_step)
    assert np.all(np.isnan(run.dist_dagger[before]))


def test_first_predicted_step_errs_only_at_second_order(run):
    """One step of θ† + v from the crossing misses GD by the dropped Taylor terms only.

    At t_c the prediction starts at GD's iterate (v = θ_tc − θ†_tc), and the v-update is
    GD's step minus θ†'s step with ∇L(θ† + v) expanded as ∇L(θ†) + Hv + u x y + ½x²∇S⊥
    (the exact projection displacement cancels θ†'s). So the error after one step is
    η|½∇³L[v, v] − u x y − ½x²∇S⊥| + O(η|v|³) ≤ η(½‖∇³L‖ + |∇S| + ½|∇S|)|v|²
    (|x y| ≤ |∇S⊥||v|², x² ≤ |v|², |∇S⊥| ≤ |∇S|, ‖∇³L‖ ≤ its Frobenius norm), with
    |v| = |θ_tc − θ†_tc| ≈ 5e-6 here: the constants at θ_tc stand for those on the
    segment to θ†_tc to ~1e-5 relative, and the cubic remainder is ~1e-5 of the bound,
    hence the factor 1.01. Round-off in the three O(1) vectors adds ~10 ε |θ|. Leaving
    out any kept term fails it (Hv alone is η S|v| ≈ 1e-5 here). Measured: error 1.1e-11,
    bound 1.4e-10, |θ_GD − θ†| one step later 6.4e-4.
    """
    loss = QuadraticRegression.two_scale(ETA)
    tc = run.crossing_step
    gd = run_gd(loss, np.zeros(loss.dim), ETA, tc, record_trajectory=True)
    theta = gd.trajectory[tc]
    basis = np.eye(loss.dim)
    d3_frobenius = np.sqrt(sum(np.sum(loss.d3(theta, a, b) ** 2) for a in basis for b in basis))
    grad_s = eos_constants(loss, theta, projected=False).grad_sharpness
    v2 = run.dist_dagger[tc] ** 2
    bound = 1.01 * ETA * (0.5 * d3_frobenius + 1.5 * np.linalg.norm(grad_s)) * v2
    bound += 10 * np.finfo(float).eps * max(1.0, np.linalg.norm(theta))
    assert run.dist_pred[tc + 1] <= bound, (run.dist_pred[tc + 1], bound)
    assert bound < 1e-3 * run.dist_dagger[tc + 1]  # θ† alone is off by O(|v|) already


def test_gd_x_and_the_predicted_x_are_measured_along_the_same_u():
    # x_t = u·(θ_t − θ†_t) of GD and x_t = u·v_t of the prediction: at the crossing v is
    # θ_tc − θ†_tc itself, so the two are equal there, along whichever sign of u. compare
    # had measured GD's along a u of its own, whose sign at θ†_0 came out opposite to θ†'s
    # here (η = 0.05, seed 0: gd_x = +3.9e-4, pred_x = −3.9e-4 at the crossing, anti-phased
    # from there on)
    loss = QuadraticRegression.two_scale(0.05, seed=0)
    run = compare(loss, np.zeros(loss.dim), 0.05, 60, warn=False)
    tc = run.crossing_step
    assert tc is not None and run.statuses["constrained"] is Status.OK
    # the same dot product, summed in another order: a few ulps of |v| apart
    assert abs(run.gd_x[tc] - run.pred_x[tc]) <= 8 * np.finfo(float).eps * run.dist_dagger[tc]
    assert abs(run.gd_x[tc]) > 1e-3 * run.dist_dagger[tc]  # not a zero that hides the sign
    steps = np.arange(tc, tc + 5)
    assert np.all(np.sign(run.gd_x[steps]) == np.sign(run.pred_x[steps]))


def test_sharpness_hovers_around_two_over_eta(run):
    w = run.whole_cycles()  # exists: GD's sharpness came back up through 2/η at least twice
    rel = run.gd_sharpness[w] * ETA / 2.0
    # Held at the edge, not following gradient flow: over whole cycles GD's sharpness stays
    # below the largest sharpness gradient flow reaches (which is well past 2/η). The size of
    # the excursion around 2/η is a theory claim about its order in η only (y_max of the
    # reduced map's orbit, (η/2) y_max = O(η^½)); it is tested by regression over three
    # step sizes in test_errors_shrink_with_eta_at_the_theoretical_rate.
    gf_top = np.nanmax(run.gf_sharpness) * ETA / 2.0
    assert gf_top > 1.5  # gradient flow sharpens well past the threshold
    assert np.max(rel) < gf_top
    # (Its time average over whole cycles is 2/η to relative O(η), also tested by order.)


def test_gd_stays_nearer_the_constrained_trajectory_than_gradient_flow(run):
    averages = run.cycle_averages()
    # |θ_GD − θ†| = O(δ) = O(η^½) while |θ_GD − θ_GF| = O(1): GD is nearer θ† (the ratio's
    # order ½ in η is tested in test_errors_shrink_with_eta_at_the_theoretical_rate)
    assert averages["rms_dist_dagger"] < averages["rms_dist_gf"]
    # θ† and the central flow w(t) are the same curve to leading order (docs/theory.md §3):
    # their RMS distances to GD agree to relative O(η), an order in η tested in
    # test_errors_shrink_with_eta_at_the_theoretical_rate (at one η the constant is unknown,
    # so a band here would be fitted).


def test_diagnostics(run):
    eos = slice(run.crossing_step, None)
    assert run.alpha_star > 0
    assert np.all(run.lambda2_margin[eos] > 0)
    # The full-vector prediction holds while |v⊥| = O(δ); over 12 flow-time units its
    # off-axis part grows (the discrete dynamics spiral out, docs/theory.md §1) and the comparison
    # says so — in the first cycle it is still O(δ).
    first_cycle = run.whole_cycles().start
    top = np.nanmax(run.vperp_over_delta[run.crossing_step:first_cycle])
    assert top < 1.0
    flagged = np.nanmax(run.vperp_over_delta) > 1.0
    assert flagged == any("v_perp" in text for text in run.warnings)
    # The warning fires exactly when |v⊥|/δ passes `vperp_limit`: over the first cycle, a
    # limit below its largest value must warn and the default limit 1 (above it) must not.
    loss = QuadraticRegression.two_scale(ETA)
    with pytest.warns(TheoryAssumptionWarning, match="v_perp"):
        compare(loss, np.zeros(loss.dim), ETA, first_cycle, vperp_limit=0.5 * top)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compare(loss, np.zeros(loss.dim), ETA, first_cycle)
    assert not any("v_perp" in str(item.message) for item in caught)


def _gradient_norms(eta, steps):
    """|∇L|² along GD, and |∇L(w)|² and the predicted time average of GD's |∇L|²
    (``predicted_grad_norm2``) along the central flow, at steps 0 … steps."""
    loss = QuadraticRegression.two_scale(eta)
    gd = run_gd(loss, np.zeros(loss.dim), eta, steps, record_trajectory=True)
    cf = central_flow(loss, np.zeros(loss.dim), eta, float(steps), stride=1.0)
    gd_g2 = np.array([loss.grad(theta) @ loss.grad(theta) for theta in gd.trajectory])
    return gd_g2, cf.grad_norm2, cf.predicted_grad_norm2


@pytest.mark.slow
def test_errors_shrink_with_eta_at_the_theoretical_rate():
    """Fitted orders in η over η = 0.01, 0.005, 0.0025 at a fixed flow time ηt = 12.

    Theory (docs/theory.md §1–§3 with the scalings of QuadraticRegression.two_scale,
    δ² = 2α/β ∝ η and α ∝ 1/η), over whole EoS cycles:
    - the RMS of |θ_GD − θ†| is O(δ) (x ~ δ along u, y/|∇S⊥| ~ δ along ∇S⊥): order ½;
      its ratio to the RMS of |θ_GD − θ_GF|, which is O(1), also order ½;
    - the excess loss mean L_GD − L(w) = σ²/η = δ²/η: order 0;
    - the excursion of the sharpness, max (η/2)|S − 2/η|, is (η/2) y_max with y_max² =
      𝓗(x_c, y_c) − 𝓗_min ∝ α ln(δ²/x_c²) (the reduced map's conserved quantity, §1):
      order ½ (up to the logarithm);
    - its mean is 2/η to relative O(η): S − 2/η ≈ y + (u·∇S)x + ½x²∇²S[u, u], where the
      x term cancels over whole cycles, x² = O(δ²), and |x| returning to its size over a
      cycle makes Σ ln(1 + ηy) = 0, i.e. mean (η/2)y = η² mean y²/4 = O(η) (y = O(η^-½));
      a relative error: order 1;
    - the relative errors of three predictions — mean x² = σ² (= δ²), E[L] = L(w) + σ²/η and
      E|∇L|² = |∇L(w)|² + 4σ²/η² (∇L(w + x u) = ∇L(w) + (2/η) x u + …) — are relative
      O(δ²): x alternates sign every step, so odd-order terms cancel over whole cycles and
      the first correction is relative O(x²) = O(δ²): order 1;
    - the RMS distances of GD to the central flow w and to θ† agree to relative O(η): with
      a = θ_GD − θ† = O(δ) and b = w − θ† = O(η) (θ† is the projected Euler discretisation
      of the flow), |θ_GD − w|² = |a|² − 2a·b + |b|²; b is slow while the x-part of a
      alternates sign every step and its ∇S⊥-part (∝ y) averages to a relative O(η) over
      whole cycles, so mean a·b = O(η²δ) and the relative difference of the RMS is
      (mean|b|² − 2 mean a·b)/(2 mean|a|²) = O(η²/δ²) = O(η): order 1 (without the
      cancellation it would be |b|/|a| = O(η/δ), order ½; the neighbour above is 3/2).
    δ ∝ η^½, so the candidate orders are multiples of ½. The bands, ±¼, tell the claimed
    order from its neighbours (δ to the next power up or down); for the relative errors the
    neighbour above is order 2, since with odd terms cancelled the next is O(δ⁴), so the band
    is (¾, 3/2); for the central flow against θ† it is 3/2, so (¾, 5/4). Measured: x² 1.02,
    loss 1.22, |∇L|² 1.23, mean S 1.35, distance 0.65, ratio 0.52, excess −0.01, excursion
    0.53, w against θ† 1.05 (relative errors at η = 0.01: x² 5.7%, loss 7.1%, |∇L|² 10.7%,
    mean S 3.6%, w against θ† 0.113%; at η = 0.0025: 1.4%, 1.3%, 1.9%, 0.56%, 0.026%).
    A central flow run 2% too fast (w at flow time 1.02 ηt, an O(1) gap to θ† at every η)
    passed the old band |Δrms| < 0.1 rms at η = 0.01 and fails the order.
    """
    etas = np.array([0.01, 0.005, 0.0025])
    measured = {name: [] for name in ("x2_error", "loss_error", "grad_error", "mean_error",
                                      "dist", "dist_ratio", "excess", "excursion",
                                      "cf_vs_dagger")}
    for eta in etas:
        steps = int(round(12.0 / eta))
        r = _run(eta, 12.0)
        w = r.whole_cycles()
        averages = r.cycle_averages()
        gd_g2, cf_g2, cf_predicted = _gradient_norms(eta, steps)
        grad_excess = np.mean(gd_g2[w] - cf_g2[w])
        grad_predicted = np.mean(cf_predicted[w] - cf_g2[w])  # the flow's 4σ²/η²
        excess, predicted = averages["excess_loss"], averages["predicted_excess_loss"]
        measured["x2_error"].append(abs(averages["mean_x2"] / averages["mean_sigma2"] - 1.0))
        measured["loss_error"].append(abs(excess - predicted) / predicted)
        measured["grad_error"].append(abs(grad_excess - grad_predicted) / grad_predicted)
        measured["dist"].append(averages["rms_dist_dagger"])
        measured["dist_ratio"].append(averages["rms_dist_dagger"] / averages["rms_dist_gf"])
        measured["excess"].append(excess)
        rel = r.gd_sharpness[w] * eta / 2.0
        measured["mean_error"].append(abs(np.mean(rel) - 1.0))
        measured["excursion"].append(np.max(np.abs(rel - 1.0)))
        measured["cf_vs_dagger"].append(
            abs(averages["rms_dist_cf"] / averages["rms_dist_dagger"] - 1.0))
    order = {name: np.polyfit(np.log(etas), np.log(values), 1)[0]
             for name, values in measured.items()}
    for name in ("x2_error", "loss_error", "grad_error", "mean_error"):
        assert 0.75 < order[name] < 1.5, (name, order, measured)
    for name in ("dist", "dist_ratio", "excursion"):
        assert abs(order[name] - 0.5) < 0.25, (name, order, measured)
    assert abs(order["excess"]) < 0.25, (order, measured)
    assert 0.75 < order["cf_vs_dagger"] < 1.25, (order, measured)


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


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_minimalist_where_its_stable_set_degenerates():
    """The minimalist loss from (0.5, 0.1), where the stable set M is degenerate.

    On the minimisers xy = 1 the sharpness is 2(x² + y²) ≥ 4, with equality at (1, 1) only,
    and off them u·∇L ≠ 0 except on the axes (critical points with S = 0) and on the
    diagonals x = ±y with (xy)² < 1/2 (S = |xy| − |xy|³ ≤ 0.385; docs/theory.md). So near
    the minimisers M is the single point (1, 1) at η = 1/2, where its two constraint
    gradients are parallel, and at η = 0.6 it holds no minimiser: θ† from these iterates
    sits on the axis x = 0, where ∇²L = diag(−y², 0), and v = θ − θ† grows by 1 + η y² a
    step until it overflows. Both used to raise LinAlgError from the projection's singular
    J Jᵀ.
    """
    from stabsim.losses import Minimalist

    run = compare(Minimalist(), [0.5, 0.1], 0.5, 200, warn=False)
    assert run.statuses["constrained"] is Status.NOT_CONVERGED
    assert "parallel at the last iterate" in run.message
    # at a looser tolerance than the √ε that fixes the point, every projection converges;
    # the reference point is the minimiser (1, 1), where α* = 0: no reduced map
    loose = compare(Minimalist(), [0.5, 0.1], 0.5, 200, warn=False, tol=1e-7)
    assert {name for name, status in loose.statuses.items()
            if status is not Status.OK} == {"reduced_map"}
    assert loose.statuses["reduced_map"] is Status.UNDEFINED and loose.alpha_star == 0.0

    run = compare(Minimalist(), [0.5, 0.1], 0.6, 200, warn=False)
    assert run.statuses["constrained"] is Status.NONFINITE and "overflowed" in run.message
    rows = ~np.isnan(run.dist_dagger)
    assert 1 < rows.sum() < 200 and np.all(np.isfinite(run.dagger_sharpness[rows]))
    assert np.all(run.dagger_sharpness[rows][1:] <= 1e-12)  # S = 0 on the axis


def test_the_predictions_run_over_the_steps_gd_made():
    # The minimalist loss near its saddle with η = 2/S(θ₀) = 5065: GD diverges at step 4,
    # while the gradient flow reaches the minimisers, where η S ≈ 2·10⁴ makes it stiff (an
    # explicit step of at most ~3/(ηS)): 60 steps of it took 2.3 million evaluations. The
    # flows now stop where GD did, with a budget of 1,000 evaluations a step by default.
    from stabsim.losses import Minimalist

    start, eta = [0.01405122867771369] * 2, 5064.906276123299
    run = compare(Minimalist(), start, eta, 60, warn=False)
    assert run.statuses["gd"] is Status.DIVERGED and run.counters["steps"] == 4
    for record in (run.gd_loss, run.cf_loss):
        assert not np.isnan(record[:4]).any() and np.isnan(record[4:]).all()
    # 3 steps of this gradient flow take ~1e5 evaluations: the budget of 3,000 ends it, and
    # evaluations past it are refused, not made (solve_flow): exactly the budget
    assert run.statuses["gradient_flow"] is Status.MAX_STEPS
    assert "max_rhs_evals = 3000 times" in run.message
    assert run.counters["gradient_flow_rhs_evals"] == 3000
    # with the budget raised it reaches GD's last step, and its records past it are NaN
    run = compare(Minimalist(), start, eta, 60, warn=False, max_rhs_evals=500_000)
    assert run.statuses["gradient_flow"] is Status.OK
    assert not np.isnan(run.gf_loss[:4]).any() and np.isnan(run.gf_loss[4:]).all()


def _boundaries(sharpness, eta, crossing):
    """Cycle boundaries by their definition: ½(S_t + S_{t+1}) rises through 2/η."""
    pair = 0.5 * (sharpness[1:] + sharpness[:-1])
    return [t for t in range(crossing + 1, pair.size)
            if pair[t - 1] <= 2 / eta < pair[t]]


def test_cycle_averages_stop_where_a_part_stopped(run):
    import dataclasses

    rises = _boundaries(run.gd_sharpness, ETA, run.crossing_step)
    full = run.cycle_averages()
    assert (full["start"], full["end"]) == (rises[0], rises[-1])
    # a sharpness that cycles every 100 steps after the crossing (±1% around 2/η), so that
    # the run has many whole cycles, boundaries at crossing + 100 k
    t = np.arange(run.step.size)
    cycling = np.where((t - run.crossing_step) % 100 < 50, 1.01, 0.99) * 2 / ETA
    cycling[:run.crossing_step] = 0.5 / ETA
    rises = _boundaries(cycling, ETA, run.crossing_step)
    assert rises[:3] == [run.crossing_step + 100, run.crossing_step + 200,
                         run.crossing_step + 300]
    # θ† stopped inside the third cycle: its records are NaN from there on
    stop = rises[2] + 3
    dist = run.dist_dagger.copy()
    gd_x = run.gd_x.copy()
    dist[stop:] = np.nan
    gd_x[stop:] = np.nan
    statuses = dict(run.statuses, constrained=Status.NOT_CONVERGED)
    stopped = dataclasses.replace(run, gd_sharpness=cycling, dist_dagger=dist, gd_x=gd_x,
                                  statuses=statuses)
    averages = stopped.cycle_averages()
    assert (averages["start"], averages["end"]) == (rises[0], rises[2])
    window = slice(rises[0], rises[2])
    assert averages["rms_dist_dagger"] == np.sqrt(np.mean(dist[window] ** 2))
    assert averages["mean_x2"] == np.mean(gd_x[window] ** 2)
    assert all(np.isfinite(value) for value in averages.values())
    # stopped inside the first cycle: no whole cycle is left, and the message says why
    dist[rises[1] - 1:] = np.nan
    early = dataclasses.replace(stopped, dist_dagger=dist)
    with pytest.raises(ValueError, match=r"constrained \(NOT_CONVERGED\)"):
        early.cycle_averages()


def test_the_reduced_map_from_the_centred_reference_point_is_gd_on_the_realisation():
    # GD on the realisation is the map in (x, y = b w) measured from (0, 0), the one point
    # with S = 2/η and u·∇L = 0. The bisection point alone lay between the crossing's two
    # iterates, whose x have opposite signs: x* came out +1.17e-3 for GD's −5.86e-4, and
    # the map from it left GD by 1.2e-2 within 40 steps
    from stabsim.losses import ReducedMapRealisation

    eta, alpha, b = 0.05, 1.0, 2.0
    loss = ReducedMapRealisation(eta, alpha, b)
    run = compare(loss, loss.to_theta(1e-3, -1.0), eta, 200, warn=False)
    tc = run.crossing_step
    assert run.statuses["reduced_map"] is Status.OK and tc > 0
    assert run.alpha_star == pytest.approx(alpha, rel=1e-14)  # round-off of ∇L·∇S⊥
    assert run.beta_star == pytest.approx(b * b, rel=1e-14)
    # the same arithmetic up to order: round-off, amplified by the map's expansion over the
    # run (|x| grows from 6e-4 to 3.4), far below 1e-12 of the orbit's size
    size = np.nanmax(np.abs(run.gd_x_star[tc:]))
    assert np.nanmax(np.abs(run.reduced_x[tc:] - run.gd_x_star[tc:])) < 1e-12 * size
    assert np.nanmax(np.abs(run.reduced_y[tc:] - run.gd_y_star[tc:])) < 1e-12 * size


def test_the_reduced_map_is_undefined_without_a_centre_at_the_threshold():
    # the minimalist loss at η = 0.6 > 1/2: no point near the minimisers has S = 2/η and
    # u·∇L = 0 (docs/theory.md §2), so θ* is undefined, and the map's records are NaN
    from stabsim.losses import Minimalist

    run = compare(Minimalist(), [0.5, 0.1], 0.6, 40, warn=False)
    assert run.crossing_step > 0
    assert run.statuses["reduced_map"] is Status.UNDEFINED
    assert "θ* is undefined" in run.message
    assert np.all(np.isnan(run.reduced_x)) and np.isnan(run.alpha_star)


def test_an_undefined_reference_point_is_named_first_and_alone():
    # the start of the test above has S(θ₀) < 2/η and GD crosses it: the reduced map's part
    # names the missing centre first, and not the case of a start at or past 2/η (the
    # general list of UNDEFINED's cases had led its message, with that case in it). Over 200
    # steps θ† overflows (NONFINITE), so the part keeps its message inside the whole's
    from stabsim.losses import Minimalist

    run = compare(Minimalist(), [0.5, 0.1], 0.6, 200, warn=False)
    assert run.gd_sharpness[0] < 2.0 / 0.6 and run.crossing_step > 0
    assert run.status is Status.NONFINITE
    assert run.statuses["reduced_map"] is Status.UNDEFINED
    assert "reduced_map: θ* is undefined: no point with S = 3.333333333" in run.message
    assert "S(θ₀) ≥ 2/η" not in run.message


def test_the_reduced_map_is_undefined_where_alpha_star_is_not_positive():
    # the minimalist loss from a start whose GD crosses 2/η at step 6 and settles on the
    # minimiser with S = 2(x² + y²) = 2/η: that minimiser is the centre θ* (S = 2/η, ∇L = 0),
    # so α* = −∇L·∇S⊥ = 0 and the map (defined for α > 0) has no records. Its part had no
    # status, and the comparison read OK beside NaN records
    from stabsim.losses import Minimalist
    from stabsim.maps.gd import reference_point

    loss, eta = Minimalist(), 0.43590624786635573
    start = [0.3199073273015396, 0.6884896829519951]
    run = compare(loss, start, eta, 60, warn=False)
    assert run.crossing_step > 0 and not run.alpha_star > 0
    assert run.statuses["reduced_map"] is Status.UNDEFINED
    assert run.status is Status.UNDEFINED and "α* = " in run.message
    assert np.all(np.isnan(run.reduced_x)) and np.all(np.isnan(run.reduced_y))
    # θ* is that minimiser, by the closed forms: xy = 1 and S = 2(x² + y²) = 2/η (to the
    # round-off of Newton's last step)
    x, y = reference_point(loss, run_gd(loss, start, eta, 60, record_trajectory=True))
    assert x * y == pytest.approx(1.0, rel=1e-12)
    assert 2.0 * (x * x + y * y) == pytest.approx(2.0 / eta, rel=1e-12)
    # at η = 0.43 the same α* = 0 comes out +4.6e-32 by round-off: θ* is a critical point to
    # round-off, and the map is undefined there too (it had run, with δ* ~ 1e-16)
    near = compare(loss, start, 0.43, 60, warn=False)
    assert near.crossing_step > 0 and abs(near.alpha_star) < 1e-30
    assert near.statuses["reduced_map"] is Status.UNDEFINED
    assert "critical point to round-off" in near.message
    assert np.all(np.isnan(near.reduced_x))


class CubicRealisation(NamedTuple):
    """L(x, w) = ½(s + b w) x² + c x³/6 − (a/b) w: the map's realisation (s = 2/η) with a
    cubic term, which tilts ∇S = (c, b) towards u = e_x."""

    s: float
    a: float
    b: float
    c: float


@numba.njit
def _cubic_value(theta, p):
    x, w = theta[0], theta[1]
    return 0.5 * (p.s + p.b * w) * x * x + p.c * x**3 / 6.0 - p.a / p.b * w


@numba.njit
def _cubic_grad(theta, p, out):
    x, w = theta[0], theta[1]
    out[0] = (p.s + p.b * w) * x + 0.5 * p.c * x * x
    out[1] = 0.5 * p.b * x * x - p.a / p.b


@numba.njit
def _cubic_hvp(theta, p, v, out):
    x, w = theta[0], theta[1]
    out[0] = (p.s + p.b * w + p.c * x) * v[0] + p.b * x * v[1]
    out[1] = p.b * x * v[0]


@numba.njit
def _cubic_d3(theta, p, u, v, out):
    out[0] = p.c * u[0] * v[0] + p.b * (u[0] * v[1] + u[1] * v[0])
    out[1] = p.b * u[0] * v[0]


register_family(CubicRealisation, value=_cubic_value, grad=_cubic_grad, hvp=_cubic_hvp,
                d3=_cubic_d3)


def test_the_centre_is_found_where_it_lies_several_crossing_steps_away():
    # u·∇S = c = 10 against |∇S⊥| = b = 2: GD's sharpness, which carries (u·∇S)x, reaches 2/η
    # early, and the centre θ* = (0, 0) (S = 2/η, u = e_x, u·∇L = 0 there) lay 0.05–0.075
    # from the crossing pair, beyond a reach of one crossing step (0.044): the reduced map
    # was reported UNDEFINED. At θ* the constants are exact:
    # α = −∇L·∇S⊥ = (a/b)·b = a and β = b²
    eta, a, b = 0.05, 1.0, 2.0
    loss = Loss(CubicRealisation(2.0 / eta, a, b, 10.0), 2)
    run = compare(loss, [0.03, -0.5], eta, 200, warn=False)
    assert run.statuses["reduced_map"] is Status.OK
    assert run.alpha_star == pytest.approx(a, rel=1e-12)  # round-off of ∇L·∇S⊥ and Newton's
    assert run.beta_star == pytest.approx(b * b, rel=1e-12)  # steps, stopped at 1e-12
    # u·∇S/|∇S⊥| = 600: the centre lies about 300 crossing steps off, which steps capped at
    # one crossing step (tried) did not reach in 200; Newton's own
    # steps take a few
    eta, a, b = 0.1, 1e-6, 0.005
    loss = Loss(CubicRealisation(2.0 / eta, a, b, 3.0), 2)
    result = run_gd(loss, [-1e-3, -0.59], eta, 400)
    star = reference_point(loss, result)
    assert np.abs(star).max() < 1e-9  # (0, 0), the centre, to Newton's tolerance


@pytest.fixture(scope="module")
def diverged():
    # q_scale = 4 makes GD's oscillation at the edge grow: it diverges at step 48, after the
    # crossing at step 19 and before one whole EoS cycle ends
    loss = QuadraticRegression.two_scale(0.01, seed=4, q_scale=4.0)
    return loss, compare(loss, np.zeros(loss.dim), 0.01, 300, warn=False)


def test_cycles_of_a_run_where_gd_diverged_name_the_parts_that_stopped(diverged):
    _, run = diverged
    assert run.statuses["gd"] is Status.DIVERGED
    for method in (run.cycle_averages, run.whole_cycles):
        with pytest.raises(ValueError, match=r"parts that stopped: gd \(DIVERGED\)") as info:
            method()
        assert "run longer" not in str(info.value)


def test_a_start_past_divergence_norm_is_refused_naming_compares_argument():
    loss = Quadratic(np.array([1.0, 3.0]))
    with pytest.raises(ValueError, match=r"theta0 has norm 2e\+08, not below divergence_norm "
                                         r"= 1e\+08.*pass a larger `divergence_norm`"):
        compare(loss, [2e8, 0.0], 0.1, 10, warn=False)
    # GD and both flows take it: every part runs from there
    run = compare(loss, [2e8, 0.0], 0.1, 10, warn=False, divergence_norm=1e9)
    assert run.success and set(run.statuses) == {"gd", "gradient_flow", "central_flow"}
    assert run.parameters["divergence_norm"] == 1e9


def test_a_diverged_gd_is_followed_further_by_compares_divergence_norm(diverged):
    loss, run = diverged
    assert run.status is Status.DIVERGED and "`divergence_norm`" in run.message
    further = compare(loss, np.zeros(loss.dim), 0.01, 300, warn=False, divergence_norm=1e12)
    assert further.counters["steps"] > run.counters["steps"]


def test_the_budgets_its_parts_name_are_compares_own():
    # GD's eigensolver and the central flow's switches: a budget that runs out is named, and
    # compare passes it on (d = 4 scalar network: GD's top two eigenpairs by Lanczos, which
    # one product cannot resolve; the two-scale model switches to the EoS branch at t ≈ 210)
    from stabsim.losses import ScalarNetwork

    start = np.array([1.3, 0.9, 0.8, 1.1])
    run = compare(ScalarNetwork(4), start, 0.4, 50, warn=False, eig_max_products=1)
    assert run.statuses["gd"] is Status.NOT_CONVERGED and run.knob == "eig_max_products"
    assert compare(ScalarNetwork(4), start, 0.4, 50, warn=False).success
    loss = QuadraticRegression.two_scale(0.01)
    run = compare(loss, np.zeros(6), 0.01, 300, warn=False, max_switches=0)
    assert run.statuses["central_flow"] is Status.MAX_STEPS and run.knob == "max_switches"
    assert run.parameters["max_switches"] == 0


def test_the_paper_projection_that_misses_its_tolerance_names_passes():
    # the paper's projection runs a number of passes, compare's `passes`: the budget the
    # message names, and more passes meet the tolerance
    loss = QuadraticRegression.two_scale(0.01)
    run = compare(loss, np.zeros(6), 0.01, 400, projection="paper", warn=False)
    assert run.statuses["constrained"] is Status.NOT_CONVERGED
    assert run.knob == "passes" and "`passes`" in run.message
    assert compare(loss, np.zeros(6), 0.01, 400, projection="paper", passes=6,
                   warn=False).success


def test_a_flat_constrained_trajectory_does_not_advise_projected_false():
    # θ† uses ∇S⊥ whatever `projected` is: in one dimension ∇S⊥ = 0, and projected=False,
    # passed already, cannot help it
    from stabsim.losses import SelfRegulatingPotential

    run = compare(SelfRegulatingPotential(), [3.0], 1.5, 50, projected=False, warn=False)
    assert run.statuses["constrained"] is Status.FLAT_SHARPNESS
    assert "projected" not in run.message


def test_gd_lambda2_is_the_second_eigenvalue_at_each_gd_iterate():
    # on a network above d = 32, where GD measures by Lanczos on products (λ2 on the Hessian
    # with the top eigenvector deflated): against eigvalsh of the dense Hessian at GD's
    # iterates (run_gd is deterministic: compare's GD, top_k = 2, made these same iterates).
    # Lanczos stops at a residual |H x − λ x| ≤ tol·|H| (tol = 1e-10), which bounds the
    # eigenvalue's error for a symmetric H (to second order in the error of the deflated
    # eigenvector); eigvalsh adds a round-off of about d·eps·|H| ≈ 1e-14·|H|
    from stabsim.losses import Network

    loss = Network((4, 4), degree=3, n_samples=16)
    assert loss.dim > 32
    theta = loss.init(0)
    eta = 1.9 / np.linalg.eigvalsh(loss.hessian(theta))[-1]
    run = compare(loss, theta, eta, 30, warn=False)
    iterates = run_gd(loss, theta, eta, 30, top_k=2, record_trajectory=True).trajectory
    spectra = [np.linalg.eigvalsh(loss.hessian(w)) for w in iterates]
    second = np.array([values[-2] for values in spectra])
    norm = np.array([np.abs(values).max() for values in spectra])
    assert np.all(np.abs(run.gd_lambda2 - second) <= (1e-10 + 1e-13) * norm)


def test_the_flows_and_theta_dagger_take_their_pairs_from_gds_engine(monkeypatch):
    # compare compiles GD's engine first; the tracked pairs of the flows and of θ† are then
    # measured by it, never by their own entry point (which a cold first call would compile)
    import stabsim.spectral as spectral
    from stabsim.losses import Network
    from stabsim.spectral import sharpness, tracked_top_eigenpair

    def entry_point(*args):
        raise AssertionError("the tracked pairs' own entry point was called")

    monkeypatch.setattr(spectral, "_lanczos_pairs", entry_point)
    net = Network((8, 8), data="sine", n_samples=12)  # d = 97: pairs on products
    theta0 = net.init(seed=0)
    run = compare(net, theta0, 2.2 / sharpness(net, theta0), 5, warn=False)
    assert run.statuses["central_flow"] == Status.OK
    assert run.statuses["constrained"] == Status.OK
    assert np.all(np.isfinite(run.dagger_sharpness[run.crossing_step:]))
    with pytest.raises(AssertionError, match="own entry point"):  # outside compare
        tracked_top_eigenpair(net, theta0)
