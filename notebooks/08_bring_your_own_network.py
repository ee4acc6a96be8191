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
# # 08 · Bring your own network
#
# THEORY §6. The self-stabilisation theory is about networks: full-batch GD sharpens
# progressively until the sharpness S (top Hessian eigenvalue) reaches 2/η, then S hovers at
# 2/η while the loss keeps falling (Cohen et al. 2021, Fig. 1). This notebook
#
# 1. builds a network loss from your own data with the native family `Network`, whose
#    gradient, Hessian-vector products and ∇³L[u, v] are exact (hyper-dual backpropagation);
# 2. builds the same loss from a JAX function with `from_jax` (when JAX is installed:
#    `pip install 'stabsim[jax]'`), checks that the two agree and times a GD step of each;
# 3. runs GD at the edge of stability beside the theory's predictions (`stabsim.compare`)
#    and reads the result.

# %% tags=["remove-cell"]
import time

import numpy as np
from _study import SMALL, conclude, show, table

from stabsim import compare
from stabsim.losses import Network, check_derivatives, from_jax
from stabsim.maps import run_gd
from stabsim.plot import plot_comparison

# %% [markdown]
# ## 1. A network from your data
#
# Your data are two arrays: inputs X of shape (N, n_in) and targets Y of shape (N, n_out).
# Here: 32 points of [−1, 1] and the Chebyshev polynomial T₄(x) = 8x⁴ − 8x² + 1. The loss is
# L(θ) = (1/(2N)) Σ_n |f(x_n) − y_n|² for a tanh MLP 1-6-6-6-1 (d = 103 parameters, laid out
# layer by layer as W_l row-major then b_l: `net.unflatten(theta)` gives the layers).

# %%
X = np.linspace(-1.0, 1.0, 32)[:, None]
Y = 8 * X**4 - 8 * X**2 + 1
net = Network((6, 6, 6), activation="tanh", data=(X, Y))
theta0 = net.init(seed=1)  # W_l ~ N(0, 1/n_in), b_l = 0
conclude(f"`{net!r}`: d = {net.dim} parameters, L(θ₀) = {net.value(theta0):.4f}.")

# %% [markdown]
# Every derivative is exact; `check_derivatives` compares them with finite differences (it
# raises if one disagrees), and one hyper-dual pass returns the gradient, two
# Hessian-vector products and ∇³L[u, v] together.

# %%
check_derivatives(net)
rng = np.random.default_rng(0)
u, v = rng.normal(size=(2, net.dim))
loss0, g, hu, hv, t = net.derivatives(theta0, u, v)
for exact, together in ((net.grad(theta0), g), (net.hvp(theta0, u), hu),
                        (net.d3(theta0, u, v), t)):
    assert np.max(np.abs(exact - together)) <= 1e-12 * np.max(np.abs(exact))

# %% [markdown]
# ## 2. The same loss from JAX
#
# `from_jax(fn, dim, params=...)` takes any JAX-traceable `fn(theta, params)` returning a
# scalar. Its gradient is `jax.value_and_grad`, its HVP `jvp(grad)`, its ∇³L[u, v] a nested
# `jvp`; the engines call them through Numba's object mode, so every GD step crosses into
# Python a few times. The native family is the fast path; `from_jax` is the general one.

# %%
try:
    import jax.numpy as jnp
except ImportError:
    jnp = None
    conclude("JAX is not installed: `pip install 'stabsim[jax]'` to run this section.")

if jnp is not None:
    def mlp(theta, data):
        h, offset = data["X"], 0
        sizes = (1, 6, 6, 6, 1)
        for i in range(4):
            n_in, n_out = sizes[i], sizes[i + 1]
            W = theta[offset:offset + n_out * n_in].reshape(n_out, n_in)
            b = theta[offset + n_out * n_in:offset + n_out * (n_in + 1)]
            offset += n_out * (n_in + 1)
            h = h @ W.T + b
            if i < 3:
                h = jnp.tanh(h)
        return 0.5 * jnp.sum((h - data["Y"]) ** 2) / h.shape[0]

    jax_net = from_jax(mlp, net.dim, params={"X": X, "Y": Y})
    for ours, native in ((jax_net.grad(theta0), net.grad(theta0)),
                         (jax_net.hvp(theta0, v), net.hvp(theta0, v)),
                         (jax_net.d3(theta0, u, v), net.d3(theta0, u, v))):
        # two exact methods: round-off apart
        assert np.max(np.abs(ours - native)) <= 1e-10 * np.max(np.abs(native))
    per_step = {}
    for name, loss in (("native", net), ("from_jax", jax_net)):
        run_gd(loss, theta0, 0.05, 5)  # compile
        start = time.perf_counter()
        run_gd(loss, theta0, 0.05, 100)
        per_step[name] = (time.perf_counter() - start) / 100
    show(table([{"loss": name, "µs per GD step (with the sharpness)": 1e6 * seconds}
                   for name, seconds in per_step.items()],
                  formats={"µs per GD step (with the sharpness)": "{:.0f}"}))

# %% [markdown]
# ## 3. GD at the edge of stability, beside the theory
#
# At η = 0.2 the start is well below the threshold (S(θ₀) ≈ 0.23 · 2/η). `compare` runs GD
# and, from the same start, gradient flow, the central flow (Cohen et al. 2025) and the
# constrained trajectory θ† (Damian et al. 2023), and records their losses, sharpnesses and
# distances to GD.

# %%
eta = 0.2
steps = 2000
compare_steps = 650 if SMALL else steps  # the central flow costs ~1 ms a right-hand side here
gd = run_gd(net, theta0, eta, steps)  # exact GD, the sharpness every step (matrix-free)
result = compare(net, theta0, eta, compare_steps, warn=False)
plot_comparison(result)

# %% [markdown]
# Reading the result:
#
# - `gd.crossing_step`: where S first reaches 2/η; before it, GD follows gradient flow
#   (progressive sharpening).
# - After a settling period (the first blow-up and self-stabilisation) the sharpness averaged
#   over two steps, ½(S_t + S_{t+1}), sits at 2/η: the period-2 part of the oscillation
#   cancels in that average.
# - The loss keeps falling, but not monotonically.
# - `result.cycle_averages()`: over whole EoS cycles, GD's excess loss over the central flow
#   against its prediction σ²/η, and the RMS distances of GD to θ†, the central flow and
#   gradient flow; `result.warnings` lists the theory's assumptions that failed on the way.

# %%
rel = gd.sharpness[:, 0] * eta / 2
crossing = gd.crossing_step
assert result.crossing_step == crossing  # compare runs the same GD
window = slice(crossing + 300, steps + 1)
pairs = 0.5 * (rel[window][1:] + rel[window][:-1])
losses = gd.loss[window]
try:
    averages = result.cycle_averages()
except ValueError as error:  # the small comparison stops before a whole cycle
    averages = {"whole cycles": str(error)}
table([{"quantity": "S(θ₀)·η/2", "value": f"{rel[0]:.3f}"},
       {"quantity": "first step with S ≥ 2/η", "value": str(crossing)},
       {"quantity": f"½(S_t + S_t+1)·η/2 over the {pairs.size + 1} steps from "
                    f"{crossing + 300}", "value": f"{pairs.min():.4f} … {pairs.max():.4f}"},
       {"quantity": "loss over that window", "value": f"{losses[0]:.3e} → {losses[-1]:.3e}"},
       {"quantity": "steps of the window where the loss rises",
        "value": str(int(np.sum(np.diff(losses) > 0)))}]
      + [{"quantity": f"comparison over whole cycles: {k}",
          "value": v if isinstance(v, str) else f"{v:.3g}"} for k, v in averages.items()]
      + [{"quantity": "warnings of the comparison", "value": "; ".join(result.warnings) or "none"}])

# %%
# progressive sharpening from well below 2/η, over hundreds of steps
assert rel[0] < 0.5 and crossing >= 300
# the edge of stability: within a few percent of 2/η (3%) for 1000 steps once settled
assert pairs.size + 1 >= 1000 and np.max(np.abs(pairs - 1.0)) <= 0.03
# the loss keeps falling over the window, non-monotonically
assert losses[-100:].mean() < losses[:100].mean() and np.any(np.diff(losses) > 0)
conclude(
    f"GD sharpens from {rel[0]:.2f} · 2/η to the threshold at step {crossing}; from step "
    f"{crossing + 300} its two-step-averaged sharpness stays within "
    f"{100 * np.max(np.abs(pairs - 1.0)):.2f}% of 2/η for {pairs.size + 1} steps, while the "
    f"loss falls from {losses[:100].mean():.3g} to {losses[-100:].mean():.3g} (means of the "
    f"first and last 100 steps), rising at {int(np.sum(np.diff(losses) > 0))} of them.")
