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
# # 06 · The minimalist example and scalar networks
#
# docs/theory.md §5.
#
# - **Minimalist example** (Zhu et al., ICLR 2023): $\ell(x, y) = \tfrac14(x^2y^2-1)^2$. At a
#   minimiser ($xy = \pm1$) the sharpness is $2(x^2+y^2)$. Gradient flow conserves
#   $x^2 - y^2 = c$, so its solution (GFS) on $xy = 1$ has sharpness $2\sqrt{c^2+4}$. Claim:
#   when the GFS sharpness exceeds $2/\eta$, GD converges, non-monotonically, to a minimiser
#   whose sharpness is just below $2/\eta$; the global dynamics bifurcate with η.
# - **Scalar networks** (Kreisler et al., ICML 2023): $L(w) = \tfrac12(\prod_i w_i - 1)^2$. The
#   GFS sharpness is $\psi(w) = \sum_i 1/(w_i^2 + s)$ with $\prod_i(w_i^2+s) = 1$
#   (`ScalarNetwork.gfs_sharpness`). Claim: for depth ≥ 3 in the EoS regime
#   ($\psi(w_0) > 2/\eta$), GD decreases ψ monotonically and ends with sharpness ≈ $2/\eta$.
#   We test both halves.

# %% tags=["remove-cell"]
import matplotlib.pyplot as plt
import numpy as np
from _study import SMALL, conclude, table

from stabsim.losses import Minimalist, ScalarNetwork
from stabsim.maps import run_gd


def loss_increases(loss, floor=1e-20):
    """Steps where the loss rises, ignoring round-off once it is below ``floor``."""
    return int(np.sum((loss[1:] > loss[:-1] * (1 + 1e-9)) & (loss[:-1] > floor)))


# %% [markdown]
# ## Part 1: the minimalist example
#
# Starts $(x_0, 0.3/x_0)$ (off the minimisers, $x_0y_0 = 0.3$), over a range of $x_0$ and η;
# $r = $ GFS sharpness $\cdot\,\eta/2$ says which regime a start is in.

# %%
mini = Minimalist()
ETAS_M = (0.1, 0.2) if SMALL else (0.05, 0.1, 0.2, 0.3)
X0S = np.linspace(1.5, 6.0, 8 if SMALL else 19)
part1 = []
for eta in ETAS_M:
    for x0 in X0S:
        th0 = np.array([x0, 0.3 / x0])
        c = th0[0] ** 2 - th0[1] ** 2
        r_gfs = 2 * np.sqrt(c * c + 4) * eta / 2
        run = run_gd(mini, th0, eta, 20000)
        part1.append(dict(eta=eta, x0=x0, r_gfs=r_gfs, status=run.status.name,
                          ok=run.success and run.loss[-1] < 1e-12,
                          final=float(run.sharpness[-1, 0] * eta / 2),
                          rises=loss_increases(run.loss)))
table([{"η": row["eta"], "x0": row["x0"], "r = GFS·η/2": row["r_gfs"],
        "status": row["status"], "converged": row["ok"], "final S·η/2": row["final"],
        "steps where the loss rises": row["rises"]} for row in part1],
      formats={"x0": "{:.2f}", "r = GFS·η/2": "{:.2f}", "final S·η/2": "{:.4f}"})

# %% [markdown]
# Three regimes are expected, with the bifurcation in the middle:
#
# - $r < 1$: GD behaves like gradient flow — it converges to (nearly) the GFS, final
#   $S\eta/2$ within 3% of $r$, loss monotone.
# - $1 < r \lesssim 2$: the EoS regime — GD converges to a minimiser with sharpness in
#   $[0.95, 1]\cdot 2/\eta$, with the loss rising at some steps (non-monotone).
# - larger $r$: GD does **not** converge: it diverges (status DIVERGED / NONFINITE), so the
#   "range of initialisations" in the claim is bounded. The boundary is not a single value
#   of $r$: it depends on η and $x_0$ (the global dynamics bifurcate with η). We assert:
#   every run with $r < 1.9$ converges, every run with $r > 3$ diverges, and the largest
#   converging and the smallest diverging $r$ both lie in $(1.5, 3]$.

# %%
for row in part1:
    if row["r_gfs"] < 0.98:
        assert row["ok"] and abs(row["final"] / row["r_gfs"] - 1) < 0.03, row
        assert row["rises"] == 0, row
    elif 1.02 < row["r_gfs"] < 1.6:
        assert row["ok"] and 0.95 <= row["final"] <= 1.0, row
        assert row["rises"] > 0, row
converging = [row["r_gfs"] for row in part1 if row["ok"] and row["r_gfs"] > 1]
diverging = [row["r_gfs"] for row in part1 if not row["ok"]]
assert all(not row["ok"] for row in part1 if row["r_gfs"] > 3.0)
assert all(row["ok"] for row in part1 if row["r_gfs"] < 1.9)
assert 1.5 < max(converging) <= 3.0 and 1.5 < min(diverging) <= 3.0
assert all(0.95 <= row["final"] <= 1.0 for row in part1 if row["ok"] and row["r_gfs"] > 1.02)
eos_finals = [row["final"] for row in part1 if row["ok"] and row["r_gfs"] > 1.02]
conclude(f"Runs with $r > 1$ that converge end with $S\\eta/2$ in [{min(eos_finals):.3f}, "
         f"{max(eos_finals):.3f}], just below the threshold; the largest converging $r$ is "
         f"{max(converging):.2f} and the smallest diverging one {min(diverging):.2f}, so the "
         "EoS regime is bounded above.")

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for eta in ETAS_M:
    rows = [row for row in part1 if row["eta"] == eta]
    ok = [row for row in rows if row["ok"]]
    ax.plot([row["r_gfs"] for row in ok], [row["final"] for row in ok], "o-", ms=3,
            label=f"η = {eta}")
    bad = [row["r_gfs"] for row in rows if not row["ok"]]
    ax.plot(bad, np.zeros(len(bad)), "x", color=ax.lines[-1].get_color())
rr = np.linspace(0, 3, 50)
ax.plot(rr, np.minimum(rr, 1), "k:", lw=0.8, label="min(GFS, 2/η)")
ax.set_xlabel("GFS sharpness · η/2")
ax.set_ylabel("final sharpness · η/2 (× = diverged)")
ax.set_title("minimalist example")
ax.legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Part 2: scalar networks of depth 3, 4 and 5
#
# Starts $w_0 = \exp(\mathcal N(0, 0.5^2))$ per layer (seeded), step sizes
# $\eta = 2f/\psi(w_0)$ with $f \in \{1.1, 1.3, 1.6, 2\}$ (so $\psi(w_0) = f\cdot 2/\eta$: EoS
# regime), keeping only $2/\eta > 1.02\cdot$depth (the balanced minimiser's sharpness is the
# smallest possible, depth, so below that GD cannot converge at all). ψ is evaluated at every
# iterate with $\prod_i w_i > 0$ (it is undefined where GD's product changes sign).

# %%
DEPTHS = (3, 4) if SMALL else (3, 4, 5)
N_STARTS = 3 if SMALL else 8
part2 = []
for depth in DEPTHS:
    net = ScalarNetwork(depth)
    rng = np.random.default_rng(1)
    for trial in range(N_STARTS):
        w0 = np.exp(rng.normal(0.0, 0.5, depth))
        psi0 = net.gfs_sharpness(w0)
        for f in (1.1, 1.3, 1.6, 2.0):
            eta = 2 * f / psi0
            if 2 / eta < 1.02 * depth:
                continue
            run = run_gd(net, w0, eta, 8000, record_trajectory=True)
            pos = np.prod(run.trajectory, axis=1) > 0
            psi = np.array([net.gfs_sharpness(w) for w in run.trajectory[pos]])
            part2.append(dict(
                depth=depth, trial=trial, f=f, eta=eta, ok=run.success and run.loss[-1] < 1e-8,
                sign_flip=not pos.all(), psi=psi, steps=run.step[pos], loss=float(run.loss[-1]),
                max_rel_increase=float(np.max(np.diff(psi) / psi[:-1])),
                final=float(run.sharpness[-1, 0] * eta / 2)))
clean = [row for row in part2 if not row["sign_flip"]]
flipped = [row for row in part2 if row["sign_flip"]]
table([{"depth": row["depth"], "start": row["trial"], "ψ0·η/2": row["f"],
        "∏w changed sign": row["sign_flip"], "converged": row["ok"],
        "max relative increase of ψ": row["max_rel_increase"], "final S·η/2": row["final"],
        "depth·η/2": row["depth"] * row["eta"] / 2} for row in part2],
      formats={"max relative increase of ψ": "{:.1e}", "final S·η/2": "{:.4f}",
               "depth·η/2": "{:.4f}"})

# %% [markdown]
# What is derived, and asserted:
#
# - where $\prod_i w_i$ stays positive — the setting of the GFS picture — ψ decreases
#   monotonically along GD, to round-off: relative increases ≤ 1e-12;
# - those runs converge to a minimiser whose sharpness is at most $2/\eta$ (a minimiser
#   sharper than that repels GD, docs/theory.md §0) and at least the depth, the sharpness of
#   the balanced minimiser, which no minimiser is flatter than (docs/theory.md §5). Where in
#   between it lands, and how many runs end within 5% of $2/\eta$ ("ends with sharpness ≈
#   2/η"), the theory does not derive: both are measured below, not asserted;
# - where the early steps flip the sign of the product (GD jumps across $\prod w_i = 0$, where
#   ψ is undefined) the claim does not apply; we assert only that the converged ones end
#   below $2/\eta$.
#
# Kreisler et al.'s theorem is the monotone decrease of ψ; "ends with sharpness ≈ 2/η" is an
# empirical tendency.

# %%
for row in clean:
    assert row["ok"], row
    assert row["max_rel_increase"] <= 1e-12, row
    # depth·η/2 ≤ S·η/2 ≤ 1 at the limit w*; the last iterate's sharpness differs from
    # S(w*) by O(|w − w*|) = O(sqrt(L)), below 1e-9 once L < 1e-18 — which GD, converging
    # linearly once stable, reaches well within the 8000 steps (asserted)
    assert row["loss"] < 1e-18, row
    assert row["depth"] * row["eta"] / 2 <= row["final"] <= 1.0 + 1e-9, row
for row in flipped:
    if row["ok"]:
        assert row["final"] <= 1.0 + 1e-9, row
finals = np.array([row["final"] for row in clean])
flipped_ok = [row["final"] for row in flipped if row["ok"]]
conclude(
    f"{len(clean)} of {len(part2)} runs keep $\\prod w_i > 0$: in them ψ never rises by more "
    f"than {max(row['max_rel_increase'] for row in clean):.1e} relative per step, and GD ends "
    f"with $S\\eta/2$ in [{finals.min():.3f}, {finals.max():.3f}], "
    f"{np.mean(finals > 0.95):.0%} of them within 5% of $2/\\eta$. In the {len(flipped)} runs "
    f"whose product changed sign, {len(flipped_ok)} converged"
    + (f", to $S\\eta/2$ in [{min(flipped_ok):.3f}, {max(flipped_ok):.3f}]."
       if flipped_ok else "."))

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for row in part2[:12]:
    ax.plot(row["steps"][:200], row["psi"][:200] * row["eta"] / 2, lw=0.7)
ax.axhline(1.0, color="k", ls="--", lw=0.8)
ax.set_xlabel("step")
ax.set_ylabel("ψ(w_t) · η/2")
ax.set_title("scalar networks: GFS sharpness along GD")
fig.tight_layout()
