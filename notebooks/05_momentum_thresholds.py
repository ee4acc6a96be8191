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
# rises to $(2+2\beta)/\eta$ and hovers there.

# %%
import os
import sys

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # headless (tests, scripts): never open a window
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stabsim.flows import gradient_flow  # noqa: E402
from stabsim.losses import Quadratic, QuadraticRegression  # noqa: E402
from stabsim.maps import run_gd, stability_threshold  # noqa: E402
from stabsim.spectral import sharpness  # noqa: E402

SIZE = os.environ.get("STABSIM_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
INTERACTIVE = "ipykernel" in sys.modules

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
        print(f"{method:10s} β = {beta:4.2f}: η_c S = {eta_c * S_Q:.6f}, formula "
              f"{formula:.6f}, relative difference {part1[-1]['rel']:+.2e}")

# %%
for row in part1:
    # resolution of the stability test: O(1/N) in η (see above)
    assert abs(row["rel"]) < 20.0 / N, row

# %% [markdown]
# ## Part 2: heavy-ball GD at the edge of stability
#
# The two-scale regression model of notebooks 01–02 (`QuadraticRegression.two_scale`), built
# so that $\theta = 0$ has sharpness $0.9\cdot 2/\eta_d$ ($\eta_d = 0.005$) and sharpens
# progressively (gradient flow takes it to $2.4\cdot 2/\eta_d$). For each method we choose the
# step so that its threshold equals $2/\eta_d$: $\eta = (2+2\beta)\eta_d/2$ (heavy ball),
# $\eta = (2+2\beta)\eta_d/(2(1+2\beta))$ (Nesterov). The sharpness should cross the threshold
# and hover at it; we measure the mean of $S/\text{threshold}$ from the crossing to the end.
# (The mean over the last quarter alone depends on the run length, so we do not use it.)

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
    late = rel[-(STEPS // 4):] if r.success else np.array([np.nan])
    part2[(method, beta)] = dict(run=r, rel=rel, eos_mean=float(np.mean(after)),
                                 late_mean=float(np.mean(late)))
    print(f"{method:10s} β = {beta}: η = {eta:.5f}, threshold {r.threshold:.2f}, status "
          f"{r.status.name}, crossing at step {r.crossing_step}, mean S/threshold after it "
          f"{np.mean(after):.3f} (last quarter {np.mean(late):.3f})")

# %% [markdown]
# Measured at η_d = 0.005 (1200, 2400 and 4800 steps): GD's sharpness averages 0.99–1.01 of
# 2/η after the crossing. Heavy ball (β = 0.3, 0.5) and Nesterov (β = 0.5) also rise to their
# thresholds and are then held there — far below the 2.4 × threshold that gradient flow
# reaches on this loss — but they hover **5–17% below** the quadratic threshold (means
# 0.83–0.97; perturbing θ₀ by 1e-12 moves them by about 0.01). So the claim "the sharpness
# of heavy-ball GD hovers at (2+2β)/η" holds only qualitatively here, and the means are
# printed, not asserted. What the claim does say, and what we assert for all four runs:
#
# - the sharpness reaches the method's threshold (it sharpens progressively, 0.9 → 2.4 along
#   gradient flow);
# - after the crossing it comes back below the threshold (self-stabilisation: the
#   oscillation it sets off flattens the loss, docs/theory.md §1) ...
# - ... and is held: it stays below the sharpness gradient flow reaches in the flow time
#   `STEPS`·η_d. Each method's slow drift is at least as fast as GD's at η_d (effective step
#   η/(1 − β) for both momentum forms, ≥ η_d here), and the sharpness rises monotonically
#   along gradient flow on this loss, so that is a lower bound for what the method would
#   reach without the instability.
#
# Heavy ball with β = 0.9 *diverges*: its step η = 1.9 η_d is large against the transients
# of the other directions, and momentum amplifies them before the sharpness governs
# anything. This is a measured outcome, not a prediction; unlike the case below it is not
# decided by round-off — every start within 1e-12 of θ₀ = 0 that we tried diverges, which
# is what we assert (three perturbed starts).

# %%
gf = gradient_flow(loss, np.zeros(loss.dim), ETA_D, float(STEPS),
                   t_eval=np.linspace(0.0, STEPS, 25))
gf_rel = np.array([sharpness(loss, w) for w in gf.states]) * ETA_D / 2
assert gf.success and np.all(np.diff(gf_rel) > 0)  # progressive sharpening, monotone
print(f"gradient flow over the same flow time: S·η_d/2 from {gf_rel[0]:.3f} to {gf_rel[-1]:.3f}")
for key in (("gd", 0.0), ("heavy_ball", 0.3), ("heavy_ball", 0.5), ("nesterov", 0.5)):
    p = part2[key]
    tc = p["run"].crossing_step
    assert p["run"].success and tc is not None, key
    after = p["rel"][tc:]
    assert after.min() < 1.0 and after.max() < gf_rel[-1], (key, after.min(), after.max())
eta_hb9 = stability_threshold(1.0, "heavy_ball", 0.9) / (2.0 / ETA_D)
for seed in range(3):
    start = 1e-12 * np.random.default_rng(seed).normal(size=loss.dim)
    r = run_gd(loss, start, eta_hb9, STEPS, method="heavy_ball", momentum=0.9)
    assert not r.success, (seed, r.status)
assert not part2[("heavy_ball", 0.9)]["run"].success

# %% [markdown]
# **At twice the step the outcome is decided by round-off.** At η_d = 0.01, heavy ball with
# β = 0.5 sits on the edge of divergence: starting from θ₀ = 0 plus a random perturbation of
# size 1e-12, 8 of the 20 seeds below diverge within 1,200 steps and 12 stay at the edge of
# stability (measured when this was written; with 2,400 steps and other seeds, 10 of 20
# diverged, all between steps 517 and 537), while Nesterov and β = 0.3 survived all 20. The
# same is true of sums evaluated in another order: a change in how the loss kernel accumulates
# the gradient (differences of 1e-16 relative) turned one such run from stable to divergent.
# So a single run at this step proves nothing either way; we check that both outcomes occur
# among 20 perturbed starts. Each start's outcome is decided by round-off, so the assertion
# is a statistical one: with a survival probability p near the measured 0.5–0.65 (10 to 13
# of 20 starts survived in our runs), all 20 starts agree with probability
# p²⁰ + (1 − p)²⁰ < 2e-4; a change that makes the assertion
# fail has moved the method off the edge of divergence, which is worth knowing.

# %%
loss_fragile = QuadraticRegression.two_scale(0.01)
eta_fragile = stability_threshold(1.0, "heavy_ball", 0.5) / (2.0 / 0.01)
outcomes = []
for seed in range(20):
    start = 1e-12 * np.random.default_rng(seed).normal(size=loss_fragile.dim)
    r = run_gd(loss_fragile, start, eta_fragile, 1200, method="heavy_ball", momentum=0.5)
    outcomes.append(r.success)
print(f"η_d = 0.01, heavy ball β = 0.5: {sum(outcomes)} of 20 perturbed starts stay bounded")
assert 0 < sum(outcomes) < 20, outcomes

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for method in ("heavy_ball", "nesterov"):
    rows = [r for r in part1 if r["method"] == method]
    axes[0].plot([r["beta"] for r in rows], [r["eta_c"] * S_Q for r in rows], "o",
                 label=f"{method}: bisection")
b = np.linspace(0, 0.95, 100)
axes[0].plot(b, 2 + 2 * b, "k-", lw=0.8, label="(2+2β)")
axes[0].plot(b, (2 + 2 * b) / (1 + 2 * b), "k--", lw=0.8, label="(2+2β)/(1+2β)")
axes[0].set_xlabel("momentum β")
axes[0].set_ylabel("critical η_c · S")
axes[0].legend(fontsize="small")
for (method, beta), p in part2.items():
    if p["run"].success:
        axes[1].plot(p["run"].steps, p["rel"], lw=0.6, label=f"{method} β={beta}")
axes[1].axhline(1.0, color="k", ls="--", lw=0.8)
axes[1].set_xlabel("step")
axes[1].set_ylabel("S / threshold")
axes[1].legend(fontsize="small")
fig.tight_layout()
if not INTERACTIVE:
    plt.close(fig)
