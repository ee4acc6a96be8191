# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The four phases: the reduced map against exact GD
#
# Damian, Nichani & Lee, *Self-Stabilization* (ICLR 2023), reduce GD at the edge of stability
# (EoS) to a two-variable map (docs/theory.md §1):
#
# $$x_{t+1} = -(1 + \eta y_t)\,x_t, \qquad y_{t+1} = y_t + \eta(\alpha - \beta x_t^2/2),$$
#
# with $x_t = u\cdot(\theta_t - \theta^*)$ the displacement along the top eigenvector,
# $y_t = \nabla S\cdot(\theta_t-\theta^*) \approx S(\theta_t) - 2/\eta$, and the constants
# $\alpha = -\nabla L\cdot\nabla S$, $\beta = |\nabla S|^2$, $\delta^2 = 2\alpha/\beta$ measured at
# the reference point $\theta^*$ where GD's sharpness first reaches $2/\eta$. The orbit visits
# the four quadrants of the $(y, x^2-\delta^2)$ plane in the order I progressive sharpening →
# II blow-up → III self-stabilisation → IV return to stability.
#
# This notebook checks two things:
#
# 1. **Exact realisation** (docs/theory.md §1, *derived*): GD on
#    $L(x, w) = \tfrac12(2/\eta + b w)x^2 - (\alpha/b) w$ *is* the map. GD run by the engine,
#    $\theta^*$ found by `reference_point` and the constants measured by `eos_constants` at
#    $\theta^*$ must reproduce the map's $\alpha$, $\beta = b^2$ and its orbit to round-off, and
#    the whole-cycle mean of $x^2$ must be $\delta^2$ (the map's exact window identity).
# 2. **A non-trivial loss**, a second-order regression model with a sustained EoS (the
#    two-scale construction of the test suite, reproduced below), where the map is only a
#    prediction: we measure $\alpha, \beta, \delta$ at $\theta^*$, run the map from GD's
#    $(x, y)$ and compare GD's $x_t$ with the map's over the first cycle.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
from _study import SMALL, conclude, table

from stabsim.losses import QuadraticRegression, ReducedMapRealisation
from stabsim.maps import reduced_phase, reference_point, run_gd, run_reduced
from stabsim.spectral import eos_constants

# %% [markdown]
# ## 1. The exact realisation
#
# Start below the threshold ($y_0 < 0$) with a tiny $x_0$: GD sharpens progressively, crosses
# $2/\eta$, and `reference_point` bisects the crossing segment for $S = 2/\eta$, then centres
# the point on GD's oscillation ($u\cdot\nabla L = 0$, which the map, with no constant term
# in its $x$-update, assumes). On this loss
# $\nabla^2 L = \begin{pmatrix} 2/\eta + b w & b x\\ b x & 0\end{pmatrix}$ and
# $\nabla L = ((2/\eta + bw)x,\ b x^2/2 - \alpha/b)$, so the two conditions hold at
# $\theta^* = (0, 0)$, where $u = e_x$, $\nabla S = (0, b)$: the constants are the map's
# $\alpha$ and $\beta = b^2$ exactly, and the measured ones may differ by round-off only
# (a few ulps of α and β, far inside the 1e-12 allowed). GD itself must equal the map up to
# round-off amplified by the map's expansion.

# %%
ETA_R, ALPHA_R, B_R = 0.05, 0.4, 1.7
STEPS_R = 3000
real = ReducedMapRealisation(ETA_R, ALPHA_R, B_R)
x0_r, y0_r = 1e-3, -0.5
gd_r = run_gd(real, real.to_theta(x0_r, y0_r), ETA_R, STEPS_R, record_trajectory=True,
              eigensolver="eigh")
star_r = reference_point(real, gd_r)
const_r = eos_constants(real, star_r)
map_r = run_reduced(x0_r, y0_r, ETA_R, ALPHA_R, real.beta, STEPS_R)
x_gd_r, y_gd_r = real.from_theta(gd_r.trajectory)
x_star = abs(star_r[0])
bound = 1e-12  # round-off (see above)
# relative to the orbit's size: floating point, amplified by the map's expansion
err_x = np.max(np.abs(x_gd_r - map_r.x)) / np.max(np.abs(map_r.x))
err_y = np.max(np.abs(y_gd_r - map_r.y)) / np.max(np.abs(map_r.y))
table([
    {"quantity": "α at θ*", "measured by eos_constants": const_r.alpha, "the map's": ALPHA_R,
     "|difference|": abs(const_r.alpha - ALPHA_R), "allowed": bound},
    {"quantity": "β at θ*", "measured by eos_constants": const_r.beta, "the map's": real.beta,
     "|difference|": abs(const_r.beta - real.beta), "allowed": bound},
    {"quantity": "max relative |x_GD − x_map|", "measured by eos_constants": err_x,
     "the map's": 0.0, "|difference|": err_x, "allowed": 1e-9},
    {"quantity": "max relative |y_GD − y_map|", "measured by eos_constants": err_y,
     "the map's": 0.0, "|difference|": err_y, "allowed": 1e-9},
], formats={"measured by eos_constants": "{:.12g}", "the map's": "{:.12g}",
            "|difference|": "{:.2e}", "allowed": "{:.2e}"})

# %%
assert gd_r.success and map_r.success, (gd_r.message, map_r.message)
assert x_star < 1e-12  # θ* = (0, 0) to round-off
assert abs(const_r.alpha - ALPHA_R) < bound
assert abs(const_r.beta - real.beta) < bound
assert err_x < 1e-9 and err_y < 1e-9
conclude(
    f"GD crosses $2/\\eta$ at step {gd_r.crossing_step}, where $|x^*| = {x_star:.1e}$. "
    f"The constants measured there differ from the map's by "
    f"{abs(const_r.alpha - ALPHA_R):.1e} ($\\alpha$) and {abs(const_r.beta - real.beta):.1e} "
    f"($\\beta$), round-off inside {bound:.1e}, and exact GD follows the map "
    f"to {max(err_x, err_y):.1e} of the orbit's size over {STEPS_R} steps: on this loss GD "
    "*is* the four-phase map.")

# %% [markdown]
# The phases along the orbit: the quadrant sequence must be cyclic (I → II → III → IV → I),
# and over every whole cycle the mean of $x^2$ is $\delta^2$ *exactly* up to the boundary term
# of the window identity $\overline{x^2} = \delta^2 - 2(y_e - y_s)/(\eta\beta(e-s))$
# (docs/theory.md §1, *derived*): GD matches the map to 1e-9, for which the identity is exact,
# so GD's cycle means must satisfy it to 1e-8 δ². The discrete map is not conservative: $H(x,
# y)$ at the cycle boundaries grows (orbits spiral out, docs/theory.md §1), and started from
# $x_0 = 10^{-4}$ (a larger orbit) the same map leaves its validity domain ($1 + \eta y \le 0$)
# within the 3000 steps.

# %%
phase_gd = reduced_phase(x_gd_r, y_gd_r, ETA_R, ALPHA_R, real.beta)
steps_p = np.diff(phase_gd.astype(int))
bounds = map_r.cycles.boundary_step[: int(map_r.cycles.n_boundaries)]
h = map_r.cycles.boundary_H[: bounds.size]
cycle_rows = []
for k, (s, e) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
    mean_x2 = np.mean(x_gd_r[s:e] ** 2)
    identity = real.delta2 - 2 * (y_gd_r[e] - y_gd_r[s]) / (ETA_R * real.beta * (e - s))
    cycle_rows.append({"cycle": k + 1, "steps": f"{s}–{e}", "mean x² / δ²": mean_x2 / real.delta2,
                       "identity / δ²": identity / real.delta2,
                       "|mean x² − identity| / δ²": abs(mean_x2 - identity) / real.delta2,
                       "H at its start": h[k]})
larger_orbit = run_reduced(1e-4, y0_r, ETA_R, ALPHA_R, real.beta, STEPS_R)
table(cycle_rows, formats={"mean x² / δ²": "{:.6f}", "identity / δ²": "{:.6f}",
                           "|mean x² − identity| / δ²": "{:.1e}", "H at its start": "{:.4f}"})

# %%
assert np.all((steps_p == 0) | (steps_p == 1) | (steps_p == -3)), "phases out of cyclic order"
assert bounds.size >= 3
for row in cycle_rows:
    # floating point: the identity is exact for the map, GD matches the map to 1e-9
    assert row["|mean x² − identity| / δ²"] < 1e-8, row
assert np.all(np.diff(h) > 0)
assert not larger_orbit.success
worst = max(row["|mean x² − identity| / δ²"] for row in cycle_rows)
spread = max(abs(row["mean x² / δ²"] - 1) for row in cycle_rows)
conclude(
    f"GD visits the phases in cyclic order over {bounds.size - 1} whole cycles. Each cycle's "
    f"mean $x^2$ satisfies the window identity to {worst:.1e} $\\delta^2$, while it differs "
    f"from $\\delta^2$ itself by up to {spread:.1e}: all of that difference is the boundary "
    f"term, because $y$ differs between consecutive boundaries as $H$ grows from {h[0]:.4f} "
    f"to {h[-1]:.4f} (the orbit spirals out). From $x_0 = 10^{{-4}}$ the map ends with "
    f"status {larger_orbit.status.name} at step {larger_orbit.step[-1]}.")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
show = slice(0, min(STEPS_R, bounds[2] + 50))
for p, c in {1: "tab:blue", 2: "tab:orange", 3: "tab:red", 4: "tab:green"}.items():
    sel = phase_gd[show] == p
    axes[0].scatter(x_gd_r[show][sel], y_gd_r[show][sel], s=2, color=c,
                    label=["I", "II", "III", "IV"][p - 1])
axes[0].set_xlabel("x")
axes[0].set_ylabel("y")
axes[0].set_title("exact GD on the realisation, coloured by phase")
axes[0].legend(markerscale=4, fontsize="small")
axes[1].plot(map_r.step[show], map_r.x[show], "k", lw=0.7, label="map")
axes[1].plot(gd_r.step[show], x_gd_r[show], "r:", lw=1.2, label="GD")
axes[1].set_xlabel("step")
axes[1].set_title("x_t: GD on the realisation and the map coincide")
axes[1].legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## 2. A second-order regression model at the EoS
#
# $L_\eta = F/\eta + G$: the first residual of a random `QuadraticRegression` (d = 6, n = 3,
# seed 1, q_scale 0.5) is scaled so that $\theta_0 = 0$ has sharpness $0.9\cdot 2/\eta$ on
# the zero set of the fast residual; the slow residuals drive GD along it while the sharpness
# rises (progressive sharpening) — GD then stays at the EoS. The constants scale as
# $\delta^2 \propto \eta$.
#
# GD from $\theta_0 = 0$ reaches $2/\eta$ with an oscillation along $u$ of round-off size
# (the start has no component along $u$ and its contraction by $|1-\eta S| \approx 0.8$ per
# step kills any), so the first blow-up would start from $\sim 10^{-20}$ and its timing would
# measure the round-off, not the theory. We therefore kick GD at its crossing step by
# $10^{-3}\delta\, u^*$ and compare from there: the map starts from GD's own $(x, y)$.
#
# Because $\theta_t$ also drifts along the stable set and the drift has a small component
# along the fixed $u^*$, we compare the alternating part
# $\hat x_t = (2x_t - x_{t-1} - x_{t+1})/4$ of both series (exact for a pure period-2
# signal, zero for a linear drift).


# %%
def alternating(x):
    return (2 * x[1:-1] - x[:-2] - x[2:]) / 4


def first_cycle(eta, kick=1e-3):
    loss = QuadraticRegression.two_scale(eta)
    steps = int(round(6.0 / eta))
    run1 = run_gd(loss, np.zeros(loss.dim), eta, steps, record_trajectory=True)
    star = reference_point(loss, run1)
    const = eos_constants(loss, star, projected=True)  # ∇S⊥, the paper's code
    full = eos_constants(loss, star, projected=False)
    tc = run1.crossing_step
    gd = run_gd(loss, run1.trajectory[tc] + kick * const.delta * const.u, eta, steps,
                record_trajectory=True)
    off = gd.trajectory - star
    x, y = off @ const.u, off @ const.direction
    red = run_reduced(x[0], y[0], eta, const.alpha, const.beta, steps)
    end = int(red.cycles.boundary_step[0])  # the map's first return to phase I
    xg, xm = alternating(x[: end + 2]), alternating(red.x[: end + 2])
    yg, ym = y[1 : end + 1], red.y[1 : end + 1]
    # S(θ_t) ≈ 2/η + y_t + (u·∇S) x_t (docs/theory.md §2): remove the period-2 part to
    # compare with y
    u_ds = float(const.u @ const.grad_sharpness)
    sharp = gd.sharpness[1 : end + 1, 0] - 2.0 / eta - u_ds * x[1 : end + 1]
    blow_g = int(np.argmax(np.abs(xg) > const.delta))
    blow_m = int(np.argmax(np.abs(xm) > const.delta))
    return dict(
        eta=eta, loss=loss, const=const, full=full, tc=tc, end=end, xg=xg, xm=xm, yg=yg, ym=ym,
        sharp=sharp, status=(run1.status, gd.status, red.status),
        peak_x=(np.abs(xg).max(), np.abs(xm).max()), peak_y=(yg.max(), ym.max()),
        min_y=(yg.min(), ym.min()), blowup=(blow_g, blow_m),
        phases=reduced_phase(xg, yg, eta, const.alpha, const.beta),
        rms=np.sqrt(np.mean((xg - xm) ** 2)) / np.abs(xm).max())


ETAS = (0.02, 0.01) if SMALL else (0.02, 0.01, 0.005, 0.0025)
cycles = [first_cycle(eta) for eta in ETAS]
table([{"η": c["eta"], "α (∇S⊥)": c["const"].alpha, "β (∇S⊥)": c["const"].beta,
        "δ (∇S⊥)": c["const"].delta, "α (∇S)": c["full"].alpha, "β (∇S)": c["full"].beta,
        "peak |x̂| GD / map": "{:.4f} / {:.4f}".format(*c["peak_x"]),
        "peak y GD / map": "{:.2f} / {:.2f}".format(*c["peak_y"]),
        "blow-up step GD / map": "{} / {}".format(*c["blowup"]), "cycle length": c["end"],
        "RMS |x̂_GD − x̂_map| / peak": c["rms"]} for c in cycles],
      formats={"α (∇S⊥)": "{:.4g}", "β (∇S⊥)": "{:.4g}", "δ (∇S⊥)": "{:.4f}",
               "α (∇S)": "{:.4g}", "β (∇S)": "{:.4g}", "RMS |x̂_GD − x̂_map| / peak": "{:.3f}"})

# %% [markdown]
# What the theory predicts and what we assert, per step size:
#
# - GD's first cycle visits the phases in the cyclic order I → II → III → IV (by the
#   quadrant rule applied to GD's $(\hat x, y)$ with the measured $\delta$), starting in I or
#   in II (the crossing can fall in phase II).
# - Before the blow-up, $y_t = \nabla S^\perp\cdot(\theta_t-\theta^*)$ tracks
#   $S(\theta_t) - 2/\eta - (u\cdot\nabla S)x_t$ (a first-order Taylor expansion: relative
#   error $O(|\theta_t - \theta^*|)$, a few per cent here): 10%.
# - The map predicts the peak $|x|$, the peak of $y$ and the blow-up step to leading order
#   (20% on the peaks, 15% of the cycle on the blow-up step). The map holds $\alpha$ fixed at
#   its value at $\theta^*$, whereas along GD progressive sharpening keeps accelerating ($y$
#   rises faster than $\eta\alpha t$), so GD blows up first and overshoots more; these
#   relative errors are higher-order corrections that must shrink as η decreases: asserted
#   for the RMS error of $\hat x$ over the cycle and for the peak $|\hat x|$, from the
#   largest η to the smallest. (The blow-up step's offset is a few steps at every η, so it
#   shrinks only as a fraction of the cycle, whose length grows as $\eta^{-1/2}$.)

# %%
for c in cycles:
    assert all(s.success for s in c["status"]), c["status"]
    ph = c["phases"].astype(int)
    jumps = np.diff(ph)
    assert np.all((jumps == 0) | (jumps == 1) | (jumps == -3)), "GD's phases out of order"
    assert set(ph) == {1, 2, 3, 4} or set(ph) == {2, 3, 4}, set(ph)  # starts in I or II
    # y tracks S − 2/η − (u·∇S)x before the blow-up (first-order Taylor, |θ − θ*| small): 10%
    pre = slice(5, c["blowup"][0])
    rel = np.abs(c["yg"][pre] - c["sharp"][pre]) / np.abs(c["sharp"][pre]).max()
    c["taylor"] = rel.max()
    assert rel.max() < 0.1, rel.max()
    assert abs(c["peak_x"][0] / c["peak_x"][1] - 1) < 0.2
    assert abs(c["peak_y"][0] / c["peak_y"][1] - 1) < 0.2
    assert abs(c["blowup"][0] - c["blowup"][1]) < 0.15 * c["end"]
    assert c["blowup"][0] <= c["blowup"][1]  # GD blows up first (α grows along GD)
# the map's error shrinks as η decreases
errs = [c["rms"] for c in cycles]
peak_errs = [abs(c["peak_x"][0] / c["peak_x"][1] - 1) for c in cycles]
assert errs[-1] < errs[0] and peak_errs[-1] < peak_errs[0]
conclude(
    "On the regression model the map is a prediction, and it holds to leading order: "
    + "; ".join(f"at η = {c['eta']:g} the peak $|\\hat x|$ is off by {100 * p:.1f}%, the "
                f"blow-up {c['blowup'][1] - c['blowup'][0]} steps early in GD (cycle of "
                f"{c['end']} steps) and $y$ tracks the sharpness to {100 * c['taylor']:.1f}%"
                for c, p in zip(cycles, peak_errs, strict=True))
    + f". From η = {ETAS[0]:g} to {ETAS[-1]:g} the RMS error over the first cycle falls from "
    f"{errs[0]:.3f} to {errs[-1]:.3f} of the peak.")

# %%
c = cycles[-1]
t = np.arange(1, c["end"] + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(t, c["xm"], "k", lw=0.8, label="reduced map")
axes[0].plot(t, c["xg"], "r", lw=0.8, alpha=0.7, label="GD (alternating part)")
for v in (-c["const"].delta, c["const"].delta):
    axes[0].axhline(v, color="0.5", ls="--", lw=0.6)
axes[0].set_title(f"regression model, η = {c['eta']}: x_t over the first cycle")
axes[0].set_xlabel("steps after the crossing")
axes[0].legend(fontsize="small")
axes[1].plot(t, c["ym"], "k", lw=0.8, label="map y")
axes[1].plot(t, c["yg"], "r", lw=0.8, label="GD y")
axes[1].plot(t, c["sharp"], "b:", lw=1.0, label="GD S − 2/η − (u·∇S)x")
axes[1].set_xlabel("steps after the crossing")
axes[1].legend(fontsize="small")
fig.tight_layout()
