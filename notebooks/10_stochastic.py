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
# # 10 · SGD at the edge of stochastic stability
#
# Mini-batch SGD on a finite sum $L = \frac1N\sum_i \ell_i$ steps with the gradient of a
# batch, $\theta_{t+1} = \theta_t - \eta\nabla L_{B_t}(\theta_t)$ with
# $L_B = \frac1b\sum_{i\in B}\ell_i$ (docs/stochastic.md). Andreyev & Beneventano (2024)
# claim that under SGD it is the **batch sharpness**
#
# $$\mathrm{BS}(\theta) = \frac{\mathbb E_B[g_B^\top H_B\, g_B]}{\mathbb E_B[|g_B|^2]},$$
#
# not the full-batch sharpness $\lambda_{\max}(\nabla^2 L)$, that rises to $2/\eta$ and hovers
# there, while $\lambda_{\max}$ stays below $2/\eta$, lower for smaller batches. With exact
# per-example derivatives, stabsim computes both expectations exactly (closed forms in
# per-example moments), so the claim can be checked without estimation noise.
#
# 1. A finite-sum loss: its examples, and the exact batch sharpness against a sampled estimate.
# 2. SGD on the headline tanh network at three batch sizes.
# 3. An (η, b) phase diagram.

# %%
import os
import sys

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # headless (tests, scripts): never open a window
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stabsim import Network, batch_sharpness, run_sgd  # noqa: E402
from stabsim.plot import plot_batch_sharpness, plot_phase_diagram  # noqa: E402
from stabsim.sweep import GDClass  # noqa: E402
from stabsim.sweep.sgd_cells import sgd_sweep  # noqa: E402

SIZE = os.environ.get("STABSIM_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
INTERACTIVE = "ipykernel" in sys.modules

# %% [markdown]
# ## 1. Examples and the batch sharpness
#
# The network family is a finite sum: `net.batch(indices)` is the same network on those
# examples. The mean over the 32 examples of the per-example gradients is the full gradient
# (to round-off). At a point, the exact batch sharpness at b = 4 is compared with the ratio
# estimate over 400 sampled batches and its 95% delta-method interval.

# %%
net = Network(hidden=(6, 6, 6), activation="tanh", data="chebyshev", degree=4, n_samples=32)
theta0 = net.init(1)
ETA = 0.2
per_example = np.array([net.batch([i]).grad(theta0) for i in range(net.n_examples)])
gap = np.abs(per_example.mean(axis=0) - net.grad(theta0)).max()
print(f"N = {net.n_examples}, d = {net.dim}; max |mean_i g_i − ∇L| = {gap:.2e}")
assert gap <= 1e-13 * np.abs(per_example).max()  # a sum of 32 terms: a few ulp each

exact = batch_sharpness(net, theta0, 4, method="exact")
sampled = batch_sharpness(net, theta0, 4, method="sampled", batches=400, seed=0)
print(f"exact BS = {exact.value:.4f}; sampled {sampled.value:.4f} "
      f"[{sampled.low:.4f}, {sampled.high:.4f}]")

# %% [markdown]
# ## 2. SGD at b = 4, 8 and 32 (= N: GD)
#
# η = 0.2 from the network's standard start, batches without replacement (shuffled epochs),
# the exact batch sharpness every 20 steps. Asserts, over the window from step 2000 (after
# BS first reaches $2/\eta$; the claims and their measured numbers are in
# `tests/test_sgd_claims.py`):
#
# - BS hovers at $2/\eta$: 1 lies within one standard deviation of the window's BS·η/2
#   (b = 4, 8); at b = N it is GD, whose sharpness sits at $2/\eta$ within the demo's 3%
#   band, and BS $= g^\top H g/|g|^2$ with it, as $g$ turns to the top eigenvector;
# - at b = 4 and 8, $\lambda_{\max} < 2/\eta$ over the whole window;
# - the window mean of $\lambda_{\max}$ rises with b.

# %%
STEPS = 4000 if SMALL else 8000
runs = [run_sgd(net, theta0, ETA, STEPS, batch_size=b, stride=20, batch_sharpness="exact")
        for b in (4, 8, 32)]
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
plot_batch_sharpness(runs, ax=ax)
if not INTERACTIVE:
    plt.close(fig)
lam_means = []
for run in runs:
    window = run.step >= 2000
    bs = run.batch_sharpness[window] * ETA / 2
    lam = run.sharpness[window] * ETA / 2
    lam_means.append(lam.mean())
    print(f"b = {run.batch_size:2d}: BS·η/2 = {bs.mean():.3f} ± {bs.std():.3f}, "
          f"λ_max·η/2 mean {lam.mean():.3f}, max {lam.max():.3f}")
    assert run.success
    if run.batch_size < net.n_examples:
        assert abs(bs.mean() - 1.0) <= bs.std()
        assert lam.max() < 1.0
    else:
        assert abs(bs.mean() - 1.0) <= 0.03 and abs(lam.mean() - 1.0) <= 0.03
assert lam_means[0] < lam_means[1] < lam_means[2]

# %% [markdown]
# ## 3. The (η, b) phase diagram
#
# Each cell is one SGD run, classified as the GD sweeps are (`stabsim.sweep.classify`) but
# with the relative *batch* sharpness BS·η/2. At η = 0.2 every batch size reaches the edge
# of stochastic stability; the smallest η has not sharpened to its far larger $2/\eta$ within
# the budget (converged); the largest diverges at small b, whose batch gradients are the
# noisiest.

# %%
etas = [0.02, 0.2, 1.0] if SMALL else [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
sizes = [4, 16, 32] if SMALL else [2, 4, 8, 16, 32]
ds = sgd_sweep(net, theta0, etas, sizes, steps=3000, stride=20).to_xarray()
fig, ax = plt.subplots(figsize=(6.5, 4.8), layout="constrained")
plot_phase_diagram(ds, x="eta", y="batch_size", ax=ax, title="SGD on the tanh network")
if not INTERACTIVE:
    plt.close(fig)
print(ds["regime"].values)
assert np.all(ds["regime"].sel(eta=0.2) == GDClass.EDGE_OF_STABILITY)
assert np.all(ds["regime"].sel(eta=0.02) == GDClass.CONVERGED)
