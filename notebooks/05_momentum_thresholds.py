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
# # 05 · Stability thresholds of momentum methods
#
# docs/theory.md §0: the linearised update of a gradient method on a quadratic with top curvature
# $S$ stops being stable when its spectral radius crosses 1, at
#
# - GD: $S = 2/\eta$;
# - Polyak heavy ball $\theta' = \theta - \eta\nabla L + \beta(\theta - \theta_{prev})$:
#   $S = (2+2\beta)/\eta$;
# - Nesterov (PyTorch form): $S = (2+2\beta)/((1+2\beta)\eta)$.
#
# Part 1 finds, for each method and several β, the critical step size $\eta_c$ by
# **bisection on η** of the measured stability of the exact engine (`run_gd`) on a quadratic
# with $S = 1$, and compares $\eta_c S$ with the formula. Part 2 checks the EoS version (Cohen
# et al., ICLR 2021): on a loss that sharpens progressively, the sharpness of heavy-ball GD
# rises to $(2+2\beta)/\eta$ and then oscillates across it, held far below where gradient
# flow would take it (what is asserted: it comes back below the threshold, and its largest
# value stays under gradient flow's).

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
from _study import SMALL, conclude, table

from stabsim.flows import gradient_flow
from stabsim.losses import Quadratic, QuadraticRegression
from stabsim.maps import run_gd, stability_threshold
from stabsim.spectral import sharpness

# %% [markdown]
# ## Part 1: bisection on η on a quadratic
#
# Stability test: from $\theta_0$ (with a component along the top eigenvector) run $N$ steps;
# the run is *stable* if $|\theta_N| < |\theta_0|$. At $\eta = \eta_c(1+\epsilon)$ the
# spectral radius is $1 + O(\epsilon)$, so $N$ steps resolve $\epsilon \gtrsim 1/N$ (times a
# constant of order one, larger for β near 1, where the eigenvalues of the linearised update
# are complex with modulus $\sqrt\beta$ below the threshold). We bisect to a relative width
# of $10^{-6}$ and assert $|\eta_c S\,/\,\text{formula} - 1| < 20/N$.

# %%
quad = Quadratic([1.0, 0.37, 0.05])  # sharpness S = 1
S_Q = quad.sharpness
N = 20000 if SMALL else 100000
theta0 = np.array([1.0, 1.0, 1.0])


def stable(eta, method, beta):
    r = run_gd(quad, theta0, eta, N, method=method, momentum=beta, stride=N,
               find_crossing=False, eigensolver="eigh")
    return r.success and np.linalg.norm(r.theta) < np.linalg.norm(theta0)


def critical_eta(method, beta, lo=1e-3, hi=20.0, rtol=1e-6):
    assert stable(lo, method, beta) and not stable(hi, method, beta)
    while hi - lo > rtol * lo:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid, method, beta) else (lo, mid)
    return 0.5 * (lo + hi)


BETAS = (0.0, 0.5, 0.9) if SMALL else (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95)
part1 = []
for method in ("gd", "heavy_ball", "nesterov"):
    for beta in ((0.0,) if method == "gd" else BETAS):
        eta_c = critical_eta(method, beta)
        formula = stability_threshold(1.0, method, beta)  # threshold × η
        part1.append(dict(method=method, beta=beta, eta_c=eta_c, formula=formula,
                          rel=eta_c * S_Q / formula - 1))
table([{"method": row["method"], "β": row["beta"], "η_c S by bisection": row["eta_c"] * S_Q,
        "formula": row["formula"], "relative difference": row["rel"]} for row in part1],
      formats={"η_c S by bisection": "{:.6f}", "formula": "{:.6f}",
               "relative difference": "{:+.2e}"})

# %%
for row in part1:
    # resolution of the stability test: O(1/N) in η (see above)
    assert abs(row["rel"]) < 20.0 / N, row
conclude(f"Over {len(part1)} (method, β) pairs the bisected threshold agrees with the formula "
         f"to {max(abs(row['rel']) for row in part1):.1e} relative, within the stability "
         f"test's resolution 20/N = {20 / N:.0e}.")

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for method in ("heavy_ball", "nesterov"):
    rows = [r for r in part1 if r["method"] == method]
    ax.plot([r["beta"] for r in rows], [r["eta_c"] * S_Q for r in rows], "o",
            label=f"{method}: bisection")
b = np.linspace(0, 0.95, 100)
ax.plot(b, 2 + 2 * b, "k-", lw=0.8, label="(2+2β)")
ax.plot(b, (2 + 2 * b) / (1 + 2 * b), "k--", lw=0.8, label="(2+2β)/(1+2β)")
ax.set_xlabel("momentum β")
ax.set_ylabel("critical η_c · S")
ax.set_title("stability thresholds: bisection against the formulas")
ax.legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Part 2: heavy-ball GD at the edge of stability
#
# The two-scale regression model of notebooks 01–02 (`QuadraticRegression.two_scale`), built
# so that $\theta = 0$ has sharpness $0.9\cdot 2/\eta_d$ ($\eta_d = 0.005$) and sharpens
# progressively. For each method we choose the step so that its threshold equals $2/\eta_d$:
# $\eta = (2+2\beta)\eta_d/2$ (heavy ball), $\eta = (2+2\beta)\eta_d/(2(1+2\beta))$
# (Nesterov). The sharpness should cross the threshold and hover at it; we measure the mean
# of $S/\text{threshold}$ from the crossing to the end. (The mean over the last quarter alone
# depends on the run length, so we do not use it.)

# %%
ETA_D = 0.005
loss = QuadraticRegression.two_scale(ETA_D)
STEPS = 1200 if SMALL else 2400
CASES = (("gd", 0.0), ("heavy_ball", 0.3), ("heavy_ball", 0.5), ("nesterov", 0.5),
         ("heavy_ball", 0.9))
part2 = {}
for method, beta in CASES:
    eta = stability_threshold(1.0, method, beta) / (2.0 / ETA_D)
    r = run_gd(loss, np.zeros(loss.dim), eta, STEPS, method=method, momentum=beta)
    rel = r.sharpness[:, 0] / r.threshold
    tc = r.crossing_step
    after = rel[tc:] if r.success and tc is not None else np.array([np.nan])
    part2[(method, beta)] = dict(run=r, rel=rel, eta=eta, eos_mean=float(np.mean(after)),
                                 after=after)
gf = gradient_flow(loss, np.zeros(loss.dim), ETA_D, float(STEPS),
                   stride=STEPS / 24)
gf_rel = np.array([sharpness(loss, w) for w in gf.trajectory]) * ETA_D / 2
table([{"method": method, "β": beta, "η": p["eta"], "threshold": p["run"].threshold,
        "status": p["run"].status.name, "crossing step": p["run"].crossing_step,
        "mean S/threshold after it": p["eos_mean"],
        "range after it": f"{np.min(p['after']):.3f} … {np.max(p['after']):.3f}"}
       for (method, beta), p in part2.items()],
      formats={"η": "{:.5f}", "threshold": "{:.2f}", "mean S/threshold after it": "{:.3f}"})

# %% [markdown]
# What the claim says, and what we assert for GD, heavy ball (β = 0.3, 0.5) and Nesterov
# (β = 0.5):
#
# - the sharpness reaches the method's threshold (it sharpens progressively along gradient
#   flow);
# - after the crossing it comes back below the threshold (self-stabilisation: the
#   oscillation it sets off flattens the loss, docs/theory.md §1) ...
# - ... and is held: it stays below the sharpness gradient flow reaches in the flow time
#   `STEPS`·η_d. Each method's slow drift is at least as fast as GD's at η_d (effective step
#   η/(1 − β) for both momentum forms, ≥ η_d here), and the sharpness rises monotonically
#   along gradient flow on this loss, so that is a lower bound for what the method would
#   reach without the instability.
#
# The claim "the sharpness of heavy-ball GD hovers *at* (2+2β)/η" is quantitative, and the
# means in the table are where to read whether it holds: how far below 1 the momentum
# methods hover is measured here, not asserted. Heavy ball with β = 0.9 *diverges*: its
# step η = 1.9 η_d is large against the transients of the other directions, and momentum
# amplifies them before the sharpness governs anything. This is a measured outcome, not a
# prediction; unlike the case below it is not decided by round-off, which we check by
# asserting divergence from three starts perturbed by 1e-12.

# %%
assert gf.success and np.all(np.diff(gf_rel) > 0)  # progressive sharpening, monotone
held = [("gd", 0.0), ("heavy_ball", 0.3), ("heavy_ball", 0.5), ("nesterov", 0.5)]
for key in held:
    p = part2[key]
    tc = p["run"].crossing_step
    assert p["run"].success and tc is not None, key
    after = p["rel"][tc:]
    assert after.min() < 1.0 and after.max() < gf_rel[-1], (key, after.min(), after.max())
eta_hb9 = stability_threshold(1.0, "heavy_ball", 0.9) / (2.0 / ETA_D)
perturbed_hb9 = []
for seed in range(3):
    start = 1e-12 * np.random.default_rng(seed).normal(size=loss.dim)
    r = run_gd(loss, start, eta_hb9, STEPS, method="heavy_ball", momentum=0.9)
    perturbed_hb9.append(r.status.name)
    assert not r.success, (seed, r.status)
assert not part2[("heavy_ball", 0.9)]["run"].success
means = {f"{m} β = {b}": part2[(m, b)]["eos_mean"] for m, b in held}
conclude(
    f"Gradient flow sharpens monotonically from {gf_rel[0]:.3f} to {gf_rel[-1]:.3f} · 2/η_d "
    f"over the same flow time; every method's sharpness stays below "
    f"{max(np.max(part2[k]['after']) for k in held):.3f} of its threshold after the crossing, "
    "averaging " + ", ".join(f"{v:.3f} ({k})" for k, v in means.items())
    + f": GD's mean is within {100 * abs(means['gd β = 0.0'] - 1):.1f}% of its threshold, the "
    "momentum methods hover "
    f"{100 * (1 - max(v for k, v in means.items() if 'gd' not in k)):.0f}–"
    f"{100 * (1 - min(v for k, v in means.items() if 'gd' not in k)):.0f}% below theirs. Heavy "
    f"ball with β = 0.9 ends {part2[('heavy_ball', 0.9)]['run'].status.name}, and so do the "
    f"three perturbed starts ({', '.join(perturbed_hb9)}).")

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
for (method, beta), p in part2.items():
    if p["run"].success:
        ax.plot(p["run"].step, p["rel"], lw=0.6, label=f"{method} β={beta}")
ax.axhline(1.0, color="k", ls="--", lw=0.8)
ax.set_xlabel("step")
ax.set_ylabel("S / threshold")
ax.set_title(f"two-scale model, thresholds 2/η_d = {2 / ETA_D:g}")
ax.legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# **At twice the step the outcome is decided by round-off.** At η_d = 0.01, heavy ball with
# β = 0.5 sits on the edge of divergence: from θ₀ = 0 plus a random perturbation of size
# 1e-12, some starts diverge and others stay at the edge of stability, and so can sums
# evaluated in another order (a change of 1e-16 relative in how the loss kernel accumulates
# the gradient once turned such a run from stable to divergent). So a single run at this
# step proves nothing either way; we check that both outcomes occur among 20 perturbed
# starts. Each start's outcome is decided by round-off, so the assertion is a statistical
# one: with a survival probability p near the 13 of 20 starts that stay bounded below
# (p = 0.65), all 20 starts agree with probability p²⁰ + (1 − p)²⁰ < 2e-4; a change that
# makes the assertion fail has moved the method off the edge of divergence, which is worth
# knowing.

# %%
loss_fragile = QuadraticRegression.two_scale(0.01)
eta_fragile = stability_threshold(1.0, "heavy_ball", 0.5) / (2.0 / 0.01)
outcomes = []
for seed in range(20):
    start = 1e-12 * np.random.default_rng(seed).normal(size=loss_fragile.dim)
    r = run_gd(loss_fragile, start, eta_fragile, 1200, method="heavy_ball", momentum=0.5)
    outcomes.append(r.success)
assert 0 < sum(outcomes) < 20, outcomes
conclude(f"At η_d = 0.01, heavy ball with β = 0.5 stays bounded from {sum(outcomes)} of the "
         f"20 perturbed starts and diverges from {20 - sum(outcomes)}.")
