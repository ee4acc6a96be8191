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
# # 09 · Adaptive methods at the edge of stability
#
# docs/theory.md §7 and docs/adaptive.md. RMSProp, Adam and Scalar RMSProp divide the
# gradient by $\sqrt{\hat\nu} + \epsilon$; with $P = \mathrm{diag}(\sqrt{\hat\nu} + \epsilon)$
# the claim is that the *preconditioned sharpness* $\lambda_{\max}(P^{-1}H)$ hovers at
# $(2 + 2\beta_1)/((1-\beta_1)\eta)$ ($2/\eta$ for RMSProp, $38/\eta$ for Adam at
# $\beta_1 = 0.9$), and that Scalar RMSProp's effective step $\eta/\sqrt\nu$ follows $2/S$.
#
# Part 1 recovers the threshold by bisection on frozen-preconditioner quadratics; part 2
# runs the three methods on a small network and measures where $\lambda_{\max}(P^{-1}H)$
# sits; part 3 puts the Scalar RMSProp central flow beside the optimiser.

# %%
import os
import sys

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # headless (tests, scripts): never open a window
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stabsim.flows.adaptive import scalar_rmsprop_flow  # noqa: E402
from stabsim.losses import Network, Quadratic  # noqa: E402
from stabsim.maps.adaptive import frozen_threshold, run_adaptive  # noqa: E402

SIZE = os.environ.get("STABSIM_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
INTERACTIVE = "ipykernel" in sys.modules

# %% [markdown]
# ## Part 1: bisection on frozen-preconditioner quadratics
#
# With $\beta_2 = 1$ the engine keeps $\nu = \nu_0$, so the update on $\tfrac12 w^\top Aw$ is
# linear. `frozen_threshold` bisects on $\eta$ for the largest stable step; the closed form
# says $\eta_c\lambda_{\max}(P^{-1}A) = (2+2\beta_1)/(1-\beta_1)$. Over $n$ steps a relative
# distance $\epsilon$ from $\eta_c$ changes the loss by $e^{\pm 2c\epsilon n}$
# ($c = (2+2\beta_1)/(1-\beta_1)$), so even $n = 2\cdot10^4$ resolves $\epsilon = 10^{-7}$:
# we bisect to $10^{-7}$ and ask for $10^{-6}$.

# %%
A = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.5], [0.2, 0.5, 1.0]])
NU0 = np.array([0.5, 2.0, 9.0])
scale = 1.0 / np.sqrt(np.sqrt(NU0))
lam = np.linalg.eigvalsh(scale[:, None] * A * scale[None, :])[-1]
part1 = []
for beta1 in (0.0, 0.5, 0.9):
    eta_c = frozen_threshold(Quadratic(A), NU0, beta1, steps=20_000 if SMALL else 200_000)
    formula = (2 + 2 * beta1) / (1 - beta1)
    part1.append((beta1, eta_c * lam, formula))
    print(f"β₁ = {beta1}: η_c λ_max(P⁻¹A) = {eta_c * lam:.8f}, formula {formula:.8f}")
    assert abs(eta_c * lam / formula - 1) < 1e-6

# %% [markdown]
# ## Part 2: sustained runs on a network
#
# A tanh network with two hidden layers (widths 4 and 3, $d = 27$), sine data,
# $\beta_2 = 0.99$, $\epsilon = 0$. The plot shows $\lambda_{\max}(P^{-1}H)$ over its
# threshold, and the raw sharpness $S$ over the same threshold.

# %%
net = Network((4, 3), data="sine", n_samples=10)
w0 = net.init(seed=0)
ETA = 0.005
STEPS = 3000 if SMALL else 20_000
runs = {}
for method, beta1 in (("rmsprop", 0.0), ("adam", 0.9), ("scalar_rmsprop", 0.0)):
    r = run_adaptive(net, w0, ETA, STEPS, method=method, beta1=beta1, beta2=0.99, stride=5)
    assert r.success, r.message
    late = r.step >= STEPS // 2
    runs[method] = r
    print(f"{method:>15}: median λ_max(P⁻¹H)/threshold over the late half "
          f"{np.median(r.effective_sharpness[late]):.4f}, raw S/threshold "
          f"{np.median(r.sharpness[late] / r.threshold):.4f}")

# %%
fig, ax = plt.subplots(figsize=(9, 4))
for method, r in runs.items():
    ax.plot(r.step, r.effective_sharpness, lw=0.6, label=f"{method}: λ_max(P⁻¹H)/threshold")
    ax.plot(r.step, r.sharpness / r.threshold, lw=0.6, ls=":", label=f"{method}: S/threshold")
ax.axhline(1.0, color="k", ls="--", lw=0.8)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.legend(fontsize="small")
fig.tight_layout()
if not INTERACTIVE:
    plt.close(fig)

# %% [markdown]
# ## Part 3: the Scalar RMSProp central flow
#
# From the optimiser's state shortly before it reaches $S_{\rm eff} = 2$, the central flow
# (state $(w, \nu)$; $\sigma^2$ keeps $S_{\rm eff} = \eta S/\sqrt\nu$ at 2) against the optimiser
# averaged over whole period-2 cycles (windows of 10 steps). Before the entry the two
# agree to O(η) (the stable flow is the update's continuous limit). At the entry they part:
# the flow's σ² switches on at once and its ν rises, while the optimiser's oscillation takes
# tens of steps to grow from round-off (the blow-up phase of docs/theory.md §1), its ν keeps
# falling, then overshoots. The errors printed below are that failure, measured, not a
# tolerance.

# %%
ETA3, BETA2 = 0.02, 0.99
g0 = net.grad(w0)
START = 400
warm = run_adaptive(net, w0, ETA3, START, method="scalar_rmsprop", beta2=BETA2,
                    nu0=float(g0 @ g0))
w_s, nu_s = warm.theta, float(warm.nu[0])
HORIZON = 200 if SMALL else 1000
disc = run_adaptive(net, w_s, ETA3, HORIZON, method="scalar_rmsprop", beta2=BETA2, nu0=nu_s,
                    record_trajectory=True)
flow = scalar_rmsprop_flow(net, w_s, nu_s, ETA3, BETA2, HORIZON,
                           stride=10.0, rtol=1e-8, atol=1e-11)
assert flow.success, flow.message
on = flow.n_critical > 0
print(f"flow enters the edge at t = {flow.entry_steps}")
# the flow's own claim, exact on its boundary branch (to the integrator's tolerance):
# η/√ν = 2/S(w)
assert on.any()
np.testing.assert_allclose(flow.effective_step[on] * flow.sharpness[on] / 2, 1.0, atol=1e-6)
k = flow.step[on].astype(int)
k = k[(k >= 5) & (k + 5 <= HORIZON)]
mean_nu = np.array([disc.nu_trajectory[t - 5:t + 5, 0].mean() for t in k])
mean_w = np.array([disc.trajectory[t - 5:t + 5].mean(0) for t in k])
rows = np.searchsorted(flow.step, k)
print("relative error of ν over whole cycles:",
      np.abs(mean_nu / flow.nu[rows] - 1).max())
print("distance of the cycle-mean weights to w(t):",
      np.linalg.norm(mean_w - flow.trajectory[rows], axis=1).max())

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(disc.step, ETA3 * disc.preconditioned_sharpness, lw=0.5, label="optimiser")
axes[0].plot(flow.step, ETA3 * flow.preconditioned_sharpness, "k.-", label="central flow")
axes[0].set_ylabel("S_eff = ηS/√ν")
axes[1].plot(disc.step, disc.nu_trajectory[:, 0], lw=0.5, label="optimiser")
axes[1].plot(flow.step, flow.nu, "k.-", label="central flow")
axes[1].set_ylabel("ν")
for ax in axes:
    ax.set_xlabel("step")
    ax.legend(fontsize="small")
fig.tight_layout()
if not INTERACTIVE:
    plt.close(fig)
