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
# # 07 · Phase diagrams with `stabsim.sweep`
#
# Two sweeps, each classified cell by cell (`stabsim.sweep.classify`) and drawn with
# `stabsim.plot.plot_phase_diagram`:
#
# 1. **The reduced map** (docs/theory.md §1) over step size η × initial $x_0$
#    (α = β = 1, $y_0 = 0$).
#    The discrete map is not conservative: $H = y^2 + (\beta/2)x^2 - \alpha\ln x^2$ grows by
#    $O(\eta)$ per cycle, so orbits spiral out until $1 + \eta y \le 0$, where the map leaves
#    its domain of validity. A smaller $x_0$ starts on a larger orbit (larger $H$). The theory
#    therefore predicts a *cycling* region at small η and large $x_0$, and a *left-domain*
#    region at large η and small $x_0$, separated by a boundary that is monotone in both.
# 2. **Exact GD on the minimalist example** $\tfrac14(x^2y^2-1)^2$ (docs/theory.md §5, notebook 06)
#    over η × initial scale, $\theta_0 = s\,(1, 0.075)$. Gradient flow conserves $x^2 - y^2$,
#    so the GFS sharpness is $2\sqrt{c^2+4}$ with $c = s^2(1 - 0.075^2)$; cells with
#    GFS sharpness below $2/\eta$ should converge without reaching the threshold, cells above
#    it should be at the EoS (sharpness settling just below $2/\eta$), and far above they
#    should diverge.

# %%
import os
import sys

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # headless (tests, scripts): never open a window
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stabsim.plot import plot_phase_diagram  # noqa: E402
from stabsim.sweep import GDClass, MapClass, SweepConfig, run_sweep  # noqa: E402

SIZE = os.environ.get("STABSIM_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
INTERACTIVE = "ipykernel" in sys.modules
N = 24 if SMALL else 80

# %% [markdown]
# ## 1. The reduced map over (η, x₀)

# %%
map_config = SweepConfig(
    model="reduced", steps=5000,
    grid={"eta": {"start": 0.005, "stop": 0.2, "num": N, "spacing": "log"},
          "x0": {"start": 1e-8, "stop": 0.5, "num": N, "spacing": "log"}})
ds_map = run_sweep(map_config, progress=False)
cls = ds_map["class"].values  # dims (eta, x0)
names, counts = np.unique(cls, return_counts=True)
print({MapClass(int(k)).name: int(v) for k, v in zip(names, counts, strict=True)})
cycling = cls == MapClass.CYCLING
left = cls == MapClass.LEFT_DOMAIN

# %% [markdown]
# Asserts:
#
# - only the two predicted classes occur: every cell either keeps cycling for 5000 steps or
#   leaves the validity domain (no cell converges to the period-2 orbit: orbits spiral *out*);
# - the smallest η cycles at every $x_0$; the largest η leaves the domain at every $x_0$;
# - monotone in η: the cells that cycle at some η cycle at every smaller η — except for a
#   ragged band along the boundary. Measured: the boundary is not sharp (the steps at which a
#   spiralling orbit first has $1+\eta y \le 0$ depend on where in its cycle it is), so
#   "violations" of monotonicity occur in a band a few cells wide; we assert that at most 3%
#   of the (η, x₀) pairs violate it, and that the boundary band spans less than a factor 4
#   in η at every $x_0$.

# %%
assert set(np.unique(cls)) == {MapClass.CYCLING, MapClass.LEFT_DOMAIN}
assert cycling[0].all() and left[-1].all()
# violations of "cycling at η ⇒ cycling at every smaller η"
first_left = np.argmax(left, axis=0)  # per x0: the first η index that leaves the domain
last_cycle = N - 1 - np.argmax(cycling[::-1], axis=0)  # per x0: the last η index that cycles
violations = sum(int(np.sum(cycling[first_left[j]:, j])) for j in range(N))
etas = ds_map["eta"].values
band = etas[last_cycle] / etas[first_left]
print(f"monotonicity violations: {violations} of {cls.size} cells; boundary band width in η: "
      f"up to a factor {band.max():.2f}")
assert violations <= 0.03 * cls.size
assert band.max() < 4.0
# the boundary moves to smaller η as x0 shrinks (bigger initial orbit): compare the two ends
assert first_left[0] <= first_left[-1]

# %% [markdown]
# ## 2. Exact GD on the minimalist example over (η, scale)

# %%
gd_config = SweepConfig(
    model="gd", loss={"name": "minimalist"}, params={"theta0": [1.0, 0.075]}, steps=3000,
    grid={"eta": {"start": 0.05, "stop": 0.4, "num": N // 2},
          "scale": {"start": 1.5, "stop": 6.0, "num": N // 2}})
ds_gd = run_sweep(gd_config, progress=False)
cls_gd = ds_gd["class"].values  # dims (eta, scale)
names, counts = np.unique(cls_gd, return_counts=True)
print({GDClass(int(k)).name: int(v) for k, v in zip(names, counts, strict=True)})
eta_g, scale_g = np.meshgrid(ds_gd["eta"].values, ds_gd["scale"].values, indexing="ij")
c = scale_g**2 * (1 - 0.075**2)
r_gfs = 2 * np.sqrt(c**2 + 4) * eta_g / 2  # GFS sharpness · η/2
final = ds_gd["final_rel_sharpness"].values
for name in ("CONVERGED", "EDGE_OF_STABILITY", "CATAPULT", "DIVERGED"):
    sel = cls_gd == GDClass[name]
    if sel.any():
        print(f"{name:18s}: {sel.sum():3d} cells, GFS·η/2 in [{r_gfs[sel].min():.2f}, "
              f"{r_gfs[sel].max():.2f}]")

# %% [markdown]
# Asserts, against the GFS sharpness $r$ = GFS·η/2 of each cell (regimes of notebook 06):
#
# - cells with $r < 0.85$ are *converged* (GD ≈ gradient flow, the threshold is never
#   reached); every *edge_of_stability* cell has $r > 0.85$ and final sharpness in
#   $[0.9, 1.01]\cdot 2/\eta$. The classes go by behaviour (`stabsim.sweep.classify`): a cell
#   whose loss fell to round-off has settled on a minimiser and is *converged* even when its
#   sharpness ends within 10% of $2/\eta$; *edge_of_stability* cells are those still
#   oscillating around $2/\eta$ at step 3000 (so their final sharpness may sit up to 1%
#   above it). Measured at full size before that change: the boundary is not exactly at
#   $r = 1$ — a catapult at $r = 0.86$ (GD's sharpness during the transient overshoots the
#   GFS value), converged cells up to $r = 0.96$; hence 0.85.
# - cells with $r$ in $(1.05, 1.9)$ *and a start below the minimisers* ($x_0y_0 < 1$, as in
#   notebook 06) are not diverged: GD passes $2/\eta$ and ends with the sharpness in
#   $[0.9, 1.01]\cdot 2/\eta$ — settled on a minimiser just below the threshold (Zhu et al.),
#   after a catapult or not, or still at the EoS;
# - cells with $r > 3$ diverge.
#
# Measured: starts *beyond* the minimisers ($x_0y_0 = 0.075 s^2 > 1$, i.e. $s > 3.65$) at
# small η diverge although their $r$ is only 1.1–1.9: there the gradient at $\theta_0$ is
# large (∝ $x_0^2 y_0(x_0^2y_0^2-1)$) and the first step overshoots across the hyperbola into
# the region $xy < -1$ where GD blows up. The GFS sharpness does not describe these starts —
# the claim of docs/theory.md §5 ("from a range of initialisations") needs that range to be bounded.

# %%
assert np.all(cls_gd[r_gfs < 0.85] == GDClass.CONVERGED)
eos = cls_gd == GDClass.EDGE_OF_STABILITY
assert eos.any() and np.all(r_gfs[eos] > 0.85)
# ≤ 1.01: a few cells are still oscillating around 2/η at step 3000 (measured up to 1.004)
assert np.all((final[eos] >= 0.9) & (final[eos] <= 1.01))
below = 0.075 * scale_g**2 < 1.0  # x0 y0 < 1
mid = (r_gfs > 1.05) & (r_gfs < 1.9) & below
beyond = (r_gfs > 1.05) & (r_gfs < 1.9) & ~below
print(f"r in (1.05, 1.9): {mid.sum()} cells with x0 y0 < 1, classes "
      f"{sorted(set(GDClass(int(k)).name for k in cls_gd[mid]))}; {beyond.sum()} with "
      f"x0 y0 > 1, classes {sorted(set(GDClass(int(k)).name for k in cls_gd[beyond]))}")
assert np.all(np.isin(cls_gd[mid], [GDClass.EDGE_OF_STABILITY, GDClass.CATAPULT,
                                    GDClass.CONVERGED]))
assert np.all((final[mid] >= 0.9) & (final[mid] <= 1.01))
assert np.all(cls_gd[r_gfs > 3.0] == GDClass.DIVERGED)

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
plot_phase_diagram(ds_map, ax=axes[0], title="reduced map (α = β = 1), 5000 steps")
plot_phase_diagram(ds_gd, ax=axes[1], title="GD on the minimalist example, 3000 steps")
axes[1].contour(eta_g, scale_g, r_gfs, levels=[1.0, 3.0], colors="k", linewidths=0.8)
if not INTERACTIVE:
    plt.close(fig)
