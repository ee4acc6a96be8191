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
# # 04 · Progressive sharpening to 2/η, and the learning-rate drop
#
# Agarwala, Pedregosa & Pennington (2022; docs/theory.md §5) show that second-order regression
# models $z(\theta) = z_0 + J\theta + \tfrac12 Q[\theta,\theta]$, $L = |z|^2/(2n)$, can sharpen
# progressively until the sharpness reaches $2/\eta$, where GD enters the edge of stability
# (Cohen et al., ICLR 2021). A classic consequence: **lowering η at the EoS lets the sharpness
# climb again**, to the new threshold $2/\eta_2$ — the sharpness was held at $2/\eta_1$ by the
# instability, not by the loss landscape.
#
# Part 1 uses the default demo model (`QuadraticRegression.random(d=100, n=10, seed=2,
# z_scale=3)`, started at 0). Its progressive sharpening is modest: along gradient flow
# (GD with a tiny step) the sharpness grows from $S_0$ to $S_{GF} \approx 1.61\,S_0$ at the
# gradient-flow solution. We sweep $2/\eta = f S_0$: for $2/\eta < S_{GF}$ GD reaches the
# threshold and converges non-monotonically to a minimiser whose sharpness is *just below*
# $2/\eta$; for $2/\eta > S_{GF}$ it never reaches the threshold.
#
# Part 2, the learning-rate drop, needs more sharpening headroom than this model has: at
# $\eta_1$ GD converges to a minimiser with sharpness just below $2/\eta_1$, where halving η
# can no longer raise it (the gradient vanishes). The brief's other candidate ($d = 30$,
# $n = 40$, seed 0) also converges to an isolated minimum. **Choice:** the two-scale model
# of notebooks 01–02 ($L_\eta = F/\eta + G$ built from `QuadraticRegression.random(6, 3,
# seed=1, q_scale=0.5)` for $\eta = 0.01$, $S_0 = 0.9\cdot 2/\eta$), whose slow residuals keep
# GD moving along the fast residual's zero set with sustained sharpening: its gradient-flow
# sharpness reaches $2.4\cdot 2/\eta$. We run $\eta_1 = 0.01$ for 700 steps — one EoS cycle
# after the crossing at step 210: the sharpness rises past $2/\eta_1$, blows up near step 400
# and self-stabilises back below $2/\eta_1$ (at step 400 GD is still in its first blow-up,
# at $1.18\cdot 2/\eta_1$, and a drop there would not test the claim) — then
# $\eta_2 = \eta_1/2$ from the last iterate. Among
# the seeds that sharpen smoothly (1, 2, 6) and q_scale 0.5 or 1, seed 1 with q_scale 0.5
# and seed 1 with q_scale 1 climb back to the new threshold; seeds 2 and 6 stall below it
# (checked while choosing; not asserted here).

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
from _study import SMALL, conclude, table

from stabsim.losses import QuadraticRegression
from stabsim.maps import run_gd

# %% [markdown]
# ## Part 1: progressive sharpening to 2/η on the demo model

# %%
demo = QuadraticRegression.random(100, 10, seed=2, z_scale=3.0)
theta0 = np.zeros(demo.dim)
S0 = float(np.linalg.eigvalsh(demo.hessian(theta0))[-1])
# gradient flow ≈ GD with a step 40× below the stability threshold
gf = run_gd(demo, theta0, 0.05 / S0, 20000 if not SMALL else 10000, stride=100)
S_GF = float(gf.sharpness[-1, 0])


def loss_increases(loss, floor=1e-20):
    """Steps where the loss rises, ignoring round-off once it is below ``floor``."""
    rises = (loss[1:] > loss[:-1] * (1 + 1e-9)) & (loss[:-1] > floor)
    return int(np.sum(rises))


FACTORS = (1.2, 1.5, 1.7) if SMALL else (1.1, 1.2, 1.3, 1.4, 1.5, 1.55, 1.6, 1.65, 1.7, 1.8)
part1 = []
for f in FACTORS:
    eta = 2.0 / (f * S0)
    r = run_gd(demo, theta0, eta, 1500)
    s = r.sharpness[:, 0] * eta / 2
    part1.append(dict(f=f, eta=eta, run=r, crossing=r.crossing_step, s_final=float(s[-1]),
                      s_max=float(s.max()), loss=float(r.loss[-1]),
                      non_monotone=loss_increases(r.loss)))
conclude(f"$S_0$ = {S0:.4f}; along gradient flow the sharpness grows to $S_{{GF}}$ = "
         f"{S_GF:.4f} = {S_GF / S0:.3f} $S_0$ (loss {gf.loss[-1]:.1e}).")
table([{"2/η": f"{row['f']} S0", "2/η vs S_GF": "below" if row["f"] * S0 < S_GF else "above",
        "crossing step": row["crossing"], "max S·η/2": row["s_max"],
        "final S·η/2": row["s_final"], "final loss": row["loss"],
        "steps where the loss rises": row["non_monotone"]} for row in part1],
      formats={"max S·η/2": "{:.3f}", "final S·η/2": "{:.4f}", "final loss": "{:.1e}"})

# %% [markdown]
# Asserts: GD converges (loss below $10^{-12}$). Where $2/\eta < S_{GF}$ it reaches the
# threshold and its final sharpness is at most $2/\eta$: a minimiser with sharpness above
# $2/\eta$ repels GD along its top eigenvector (the one-dimensional quadratic of
# docs/theory.md §0), so a limit of GD has $S \le 2/\eta$. How far below, the theory does
# not say ("just below"): it is tabulated, not asserted. Where $2/\eta > S_{GF}$ GD never
# crosses and ends below $2/\eta$, and below $S_{GF}$ too: the early large steps steer it to a
# flatter minimiser than gradient flow's.
#
# Non-monotone convergence (the loss rising at some steps, the EoS signature) is asserted
# where the sharpness goes clearly past the threshold (max $S\eta/2 > 1.05$). When $2/\eta$
# is within a few per cent of $S_{GF}$ the sharpness only grazes the threshold, the loss can
# decrease monotonically, and the theory's "non-monotonically" is not asserted there.

# %%
assert gf.success and gf.loss[-1] < 1e-12
for row in part1:
    assert row["run"].success and row["loss"] < 1e-12, row
    if row["f"] * S0 < S_GF * 0.99:
        assert row["crossing"] is not None
        assert row["s_final"] <= 1.0, row
        if row["s_max"] > 1.05:
            assert row["non_monotone"] > 0, row
    elif row["f"] * S0 > S_GF * 1.01:
        assert row["crossing"] is None
        assert row["non_monotone"] == 0, row  # stable GD: monotone above round-off
        assert row["s_final"] < 1.0 and row["s_final"] * row["f"] * S0 <= S_GF * (1 + 1e-6)
reached = [row for row in part1 if row["crossing"] is not None]
conclude(
    f"{len(reached)} of the {len(part1)} step sizes reach $2/\\eta$; they converge to minimisers "
    f"with $S\\eta/2$ between {min(r['s_final'] for r in reached):.3f} and "
    f"{max(r['s_final'] for r in reached):.3f}, just below the threshold, with the loss rising at "
    f"up to {max(r['non_monotone'] for r in reached)} steps on the way."
    if reached else "No step size reached $2/\\eta$.")

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
for row in part1:
    r = row["run"]
    ax.plot(r.step[:60], r.sharpness[:60, 0] / S0, lw=0.8, label=f"2/η = {row['f']} S0")
ax.axhline(S_GF / S0, color="k", ls=":", lw=0.8, label="gradient-flow solution")
ax.set_xlabel("step")
ax.set_ylabel("S / S0")
ax.set_title("demo model: sharpness of GD (first 60 steps)")
ax.legend(fontsize="x-small")
fig.tight_layout()

# %% [markdown]
# ## Part 2: the learning-rate drop on the two-scale model

# %%
ETA1 = 0.01
ETA2 = ETA1 / 2
N1, N2 = 700, 1200 if SMALL else 2400
ts = QuadraticRegression.two_scale(ETA1)
run1 = run_gd(ts, np.zeros(ts.dim), ETA1, N1)
run2 = run_gd(ts, run1.theta, ETA2, N2)
control = run_gd(ts, run1.theta, ETA1, N2)
s1 = run1.sharpness[:, 0]
s2 = run2.sharpness[:, 0]
eos1 = s1[run1.crossing_step:] * ETA1 / 2
late2 = s2[-300:] * ETA2 / 2
control_rel = control.sharpness[:, 0] * ETA1 / 2
table([
    {"run": f"η1 = {ETA1} from θ = 0", "crossing step": run1.crossing_step,
     "S·η/2 after the crossing": f"{eos1.min():.3f} … {eos1.max():.3f}",
     "last 300 steps, S·η/2": "", "max S / (2/η2)": s1.max() * ETA2 / 2},
    {"run": f"η2 = {ETA2} after step {N1}", "crossing step": run2.crossing_step,
     "S·η/2 after the crossing": f"{s2[0] * ETA2 / 2:.3f} at the drop",
     "last 300 steps, S·η/2": f"{late2.min():.3f} … {late2.max():.3f} (mean "
                              f"{late2.mean():.3f})", "max S / (2/η2)": s2.max() * ETA2 / 2},
    {"run": f"control: η1 after step {N1}", "crossing step": control.crossing_step,
     "S·η/2 after the crossing": "",
     "last 300 steps, S·η/2": f"{control_rel[-300:].min():.3f} … "
                              f"{control_rel[-300:].max():.3f}",
     "max S / (2/η2)": control.sharpness[:, 0].max() * ETA2 / 2},
], formats={"max S / (2/η2)": "{:.3f}"})

# %% [markdown]
# Asserts. The claim is qualitative — the sharpness is held at the threshold by the
# instability, so it follows the threshold when η changes — and so are the checks; the
# size of the excursions around $2/\eta$ is an order-in-η statement tested in
# `tests/test_compare.py`, and the means are tabulated, not asserted.
#
# - at $\eta_1$ the sharpness reaches $2/\eta_1$ and self-stabilises: it comes back below;
# - after the drop it starts below $2/\eta_2$ (the same iterate, whose sharpness is held near
#   $2/\eta_1 = \tfrac12\cdot 2/\eta_2$), climbs through $2/\eta_2$, and over the last 300 steps
#   oscillates across it (values on both sides);
# - control: continuing at $\eta_1$ the sharpness oscillates across $2/\eta_1$ over the same
#   last 300 steps and never reaches $2/\eta_2$, the level the drop lets it climb to — so the
#   climb is caused by the drop.

# %%
assert run1.success and run2.success and control.success
assert run1.crossing_step is not None and eos1.min() < 1.0
assert s2[0] * ETA2 / 2 < 1.0
assert run2.crossing_step is not None
assert late2.min() < 1.0 < late2.max()
assert control_rel[-300:].min() < 1.0 < control_rel[-300:].max()
assert control_rel.max() < ETA1 / ETA2  # below 2/η2 = (η1/η2)·2/η1 throughout
conclude(
    f"After the drop the sharpness climbs from {s2[0] * ETA2 / 2:.3f} · 2/η2 through 2/η2 "
    f"at step {run2.crossing_step} and then oscillates across it (mean {late2.mean():.3f} "
    f"· 2/η2 over the last 300 steps); without the drop it stays at 2/η1 = ½ · 2/η2, never "
    f"above {control.sharpness[:, 0].max() * ETA2 / 2:.3f} · 2/η2.")

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
steps = np.concatenate([run1.step, N1 + run2.step])
ax.plot(steps, np.concatenate([s1, s2]), lw=0.6, label="GD, η1 then η2 = η1/2")
ax.plot(N1 + control.step, control.sharpness[:, 0], lw=0.6, alpha=0.6,
        label="control: η1 throughout")
ax.axhline(2 / ETA1, color="k", ls="--", lw=0.8, label="2/η1")
ax.axhline(2 / ETA2, color="r", ls="--", lw=0.8, label="2/η2")
ax.axvline(N1, color="0.5", lw=0.8)
ax.set_xlabel("step")
ax.set_ylabel("sharpness")
ax.set_title("learning-rate drop on the two-scale model")
ax.legend(fontsize="x-small")
fig.tight_layout()
