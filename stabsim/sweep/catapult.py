"""The catapult phase diagram: GD on the uv model over (ηλ₀, width) (THEORY §6).

Lewkowycz et al. (2020): on f(x) = vᵀu x/√m with one example, GD from a random start with
NTK eigenvalue λ₀ is lazy for ηλ₀ < 2, catapults for 2 < ηλ₀ < 4 and diverges for ηλ₀ > 4,
in the large-width limit. :func:`catapult_sweep` runs exact GD (``run_gd``) on a grid of
ηλ₀ and widths m — the step is set per cell from the λ₀ of that cell's start — and
classifies each run (``stabsim.sweep.classify.classify_catapult``);
:func:`catapult_boundaries` locates the finite-width boundaries by bisection on ηλ₀.

Finite width, y = 0 (*derived*; the tests check it against the bisection). One GD step
maps f and λ = (|u|² + |v|²) x²/m exactly to

    f' = f (1 − ηλ + η² f² x²/m),     λ' = λ + (η f² x²/m)(ηλ − 4).

So λ falls at every step while ηλ < 4 and rises for ever once ηλ ≥ 4: the
catapult/diverged boundary is ηλ₀ = 4 at every width. The loss rises at the first step iff
|1 − c + c²a| > 1 with c = ηλ₀ and a = f₀² x²/(λ₀² m); for 1 < c < 3 that is
a c² − c + 2 < 0, and (λ falling, |f| shrinking) a first step without a rise is followed by
none. The lazy/catapult boundary is therefore

    c₁ = (1 − sqrt(1 − 8a)) / (2a) = 2 + 4a + O(a²),

above 2 by about f₀²/(x² m) (λ₀ ≈ 2x²): it tends to 2 as 1/m, with a seed-dependent
constant.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as check
from .._export import finish
from ..losses import UVModel
from ..maps.gd import run_gd
from .classify import CatapultClass, classify_catapult, flag_attrs, status_attrs
from .result import SweepResult

#: the large-width boundaries of ηλ₀: lazy | catapult | diverged
LARGE_WIDTH_BOUNDARIES = (2.0, 4.0)


def _distinct(name: str, values: list) -> list:
    """``values``, unless one is repeated (a grid's coordinates must be distinct)."""
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}")
    return values


def _run(model: UVModel, theta0, lam0: float, eta_lambda: float, steps: int,
         divergence_norm: float):
    """One GD run at η = eta_lambda/λ₀: (status, L₀, L_peak, L_T, λ_T, steps run)."""
    result = run_gd(model, theta0, eta_lambda / lam0, steps, find_crossing=False,
                    divergence_norm=divergence_norm)
    loss = result.loss
    if loss.size == 0:  # stopped before its first record (a NaN at the start, say)
        return int(result.status), np.nan, np.nan, np.nan, np.nan, result.counters["steps"]
    with np.errstate(over="ignore"):  # |θ_T|² past the largest float: λ_T = inf
        lam_t = model.ntk_eigenvalue(result.theta)
    return (int(result.status), loss[0], loss.max(), loss[-1], lam_t,
            result.counters["steps"])


def catapult_sweep(widths, eta_lambda, *, seed=0, steps=1000, x=1.0, y=0.0,
                   divergence_norm=1e6) -> SweepResult:
    """GD on the uv model over a grid of ηλ₀ and widths, classified lazy/catapult/diverged.

    Parameters
    ----------
    widths : sequence of int
        Widths m.
    eta_lambda : sequence of float
        Values of ηλ₀ (> 0); each cell uses η = ηλ₀ / λ₀ with λ₀ = (|u₀|² + |v₀|²) x²/m
        of its start.
    seed : int
        Seed of the start (u₀, v₀ with N(0, 1) entries; ``UVModel.init``).
    steps : int
        GD steps per cell (the loss is recorded at every step, so the peak is exact).
    x, y : float
        The example.
    divergence_norm : float
        |θ| past which a run counts as diverged (|θ₀| ≈ √(2m)).

    Returns
    -------
    SweepResult
        Its dataset has dimensions ``width`` and ``eta_lambda``; variables ``regime`` (codes of
        :class:`~stabsim.sweep.classify.CatapultClass`, with CF flag attributes),
        ``initial_loss``, ``peak_loss``, ``final_loss``, ``final_eta_lambda`` (ηλ_T: below 2
        after a catapult; NaN where it is not finite), ``lambda0``, ``steps_run`` and
        ``status``.

    Raises
    ------
    ValueError
        If a width or an ηλ₀ is repeated or out of range, ``x`` is 0 (λ₀ = 0), or a start
        lies at or past ``divergence_norm``.
    """
    import xarray as xr

    widths = _distinct("widths", [check.nonnegative_int("widths", m, minimum=1)
                                  for m in np.atleast_1d(widths)])
    grid = np.array(_distinct("eta_lambda", [check.positive_float("eta_lambda", c)
                                             for c in np.atleast_1d(eta_lambda)]))
    check.nonempty_axes(widths=widths, eta_lambda=grid)
    seed = check.nonnegative_int("seed", seed)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    UVModel(1, x=x, y=y)  # x and y checked before any run
    shape = (len(widths), grid.size)
    status = np.zeros(shape, np.int8)
    steps_run = np.zeros(shape, np.int64)
    stats = {k: np.zeros(shape) for k in ("initial_loss", "peak_loss", "final_loss",
                                           "final_eta_lambda")}
    lambda0 = np.zeros(len(widths))
    models = [UVModel(m, x=x, y=y) for m in widths]
    starts = [_start(model, seed, divergence_norm) for model in models]  # before any run
    for i, (model, theta0) in enumerate(zip(models, starts, strict=True)):
        lambda0[i] = model.ntk_eigenvalue(theta0)
        for j, c in enumerate(grid):
            st, l0, peak, final, lam_t, n = _run(model, theta0, lambda0[i], c, steps,
                                                 divergence_norm)
            status[i, j], steps_run[i, j] = st, n
            stats["initial_loss"][i, j] = l0
            stats["peak_loss"][i, j] = peak
            stats["final_loss"][i, j] = final
            with np.errstate(over="ignore"):  # a diverged run's λ_T: inf, kept as NaN
                stats["final_eta_lambda"][i, j] = c * lam_t / lambda0[i]
    for value in stats.values():  # missing values are NaN, never inf (stabsim._export)
        value[~np.isfinite(value)] = np.nan
    classes = classify_catapult(status, stats["initial_loss"], stats["final_loss"],
                                stats["peak_loss"])
    dims = ("width", "eta_lambda")
    data = {"regime": (dims, classes, flag_attrs("catapult")),
            "status": (dims, status, status_attrs()), "steps_run": (dims, steps_run),
            "lambda0": ("width", lambda0)}
    data.update({k: (dims, v) for k, v in stats.items()})
    ds = xr.Dataset(data, coords={"width": widths, "eta_lambda": grid},
                    attrs={"model": "uv model"})
    parameters = {"widths": widths, "eta_lambda": grid.tolist(), "seed": seed,
                  "steps": steps, "x": x, "y": y, "divergence_norm": divergence_norm}
    return SweepResult.of(finish(ds, parameters), "uv model", parameters, knob=None)


def _start(model: UVModel, seed: int, divergence_norm: float) -> np.ndarray:
    """θ₀ of ``seed``, refused (``ValueError``) at or past ``divergence_norm``, where every
    run would stop before its first record."""
    theta0 = model.init(seed)
    if not np.linalg.norm(theta0) < divergence_norm:
        raise ValueError(f"divergence_norm = {divergence_norm:g} is not above |θ₀| = "
                         f"{np.linalg.norm(theta0):.4g} of width {model.width}, seed {seed} "
                         "(|θ₀| ≈ √(2m)): every run would stop at its start")
    return theta0


def _class(model, theta0, lam0, c, steps, divergence_norm) -> int:
    st, l0, peak, final, _, _ = _run(model, theta0, lam0, c, steps, divergence_norm)
    return int(classify_catapult(np.array(st), np.array(l0), np.array(final),
                                 np.array(peak)))


def _bisect(is_upper, lo: float, hi: float, tol: float) -> float:
    """The transition point of a predicate false at lo and true at hi, to within tol."""
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if is_upper(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def catapult_boundaries(widths, *, seeds=(0,), steps=1000, x=1.0, y=0.0, tol=1e-3,
                        divergence_norm=1e6):
    """The finite-width boundaries of ηλ₀ between lazy and catapult, and catapult and diverged.

    For each width and seed, bisection on ηλ₀: the lazy/catapult boundary between ηλ₀ = 1
    (lazy) and 3 (catapult), the point past which the run is a catapult; the
    catapult/diverged boundary between 3 and 8, the point past which it diverges within
    ``steps`` steps. A bracket whose ends are not of the expected classes gives NaN.

    Returns
    -------
    xarray.Dataset
        ``lazy_catapult`` and ``catapult_diverged`` over dimensions ``width`` and ``seed``
        (large-width values: 2 and 4), each variable with ``long_name`` and ``units``, the
        parameters in the provenance attributes (``stabsim._export.finish``).

    Raises
    ------
    ValueError
        If a width or seed is repeated or out of range, ``x`` is 0 (λ₀ = 0), or a start
        lies at or past ``divergence_norm``.
    """
    import xarray as xr

    widths = _distinct("widths", [check.nonnegative_int("widths", m, minimum=1)
                                  for m in np.atleast_1d(widths)])
    seeds = _distinct("seeds", [check.nonnegative_int("seeds", s) for s in np.atleast_1d(seeds)])
    check.nonempty_axes(widths=widths, seeds=seeds)
    steps = check.nonnegative_int("steps", steps, minimum=1)
    tol = check.positive_float("tol", tol)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    UVModel(1, x=x, y=y)  # x and y checked before any run
    lower = np.full((len(widths), len(seeds)), np.nan)
    upper = np.full_like(lower, np.nan)
    models = [UVModel(m, x=x, y=y) for m in widths]
    starts = [[_start(model, s, divergence_norm) for s in seeds] for model in models]
    for i, model in enumerate(models):
        for k in range(len(seeds)):
            theta0 = starts[i][k]
            lam0 = model.ntk_eigenvalue(theta0)

            def cls(c, model=model, theta0=theta0, lam0=lam0):
                return _class(model, theta0, lam0, c, steps, divergence_norm)

            if cls(1.0) == CatapultClass.LAZY and cls(3.0) == CatapultClass.CATAPULT:
                lower[i, k] = _bisect(lambda c: cls(c) != CatapultClass.LAZY, 1.0, 3.0, tol)
            if cls(3.0) != CatapultClass.DIVERGED and cls(8.0) == CatapultClass.DIVERGED:
                upper[i, k] = _bisect(lambda c: cls(c) == CatapultClass.DIVERGED, 3.0, 8.0,
                                      tol)
    dims = ("width", "seed")
    ds = xr.Dataset({"lazy_catapult": (dims, lower), "catapult_diverged": (dims, upper)},
                    coords={"width": widths, "seed": seeds})
    parameters = {"widths": widths, "seeds": seeds, "steps": steps, "x": x, "y": y,
                  "tol": tol, "divergence_norm": divergence_norm}
    return finish(ds, parameters)


__all__ = ["LARGE_WIDTH_BOUNDARIES", "catapult_boundaries", "catapult_sweep"]
