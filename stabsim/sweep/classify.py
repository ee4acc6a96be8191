"""The class of each sweep cell, from its status and summary statistics.

Two sets of classes, one per model; each result stores its codes in the data variable
``regime`` with CF attributes ``flag_values`` and ``flag_meanings``.

Gradient methods (model ``"gd"``)
---------------------------------
Let ``r_t = S(θ_t) / threshold_t`` be the *relative sharpness* at a recorded step (every
``stride`` steps), where the threshold is the method's stability threshold: ``2/η`` for GD
(so ``r = S η / 2``), ``(2 + 2β)/η`` for heavy ball, ``(2 + 2β)/((1 + 2β) η)`` for Nesterov,
and for the methods with a changing effective step ``h_t``, ``2/h_t`` with ``h_t = η/|∇L|``
(normalised GD) or ``η / (2 sqrt(L − L_min))`` (GD on sqrt L). The *late window* is the last
``ceil(window · n)`` of the ``n`` recorded states; the late-window mean of ``r`` is
arithmetic, except for normalised GD and GD on sqrt L, where it is harmonic (see
``stabsim.sweep.gd_cells``). With ``band`` b, in this order:

The classes describe behaviour. A run *at the edge of stability* oscillates along the top
eigenvector without settling, with the sharpness held at the threshold: it reaches the
threshold again and again in the late window (while S ≥ 2/η the oscillation along u cannot
decay), and its late-window mean of ``r`` stays near 1. A run that *converged* settled on a
minimiser with S < 2/η, possibly within a few per cent of 2/η (Zhu et al.'s minimalist
example): its late ``r`` stays below 1, and the oscillation along u has died out. The
records that decide this:

- ``late_max_rel``: the maximum of ``r`` over the late window. ``≥ 1`` means the sharpness
  is held at the threshold (*held*); ``< 1`` that it settled below it.
- ``|final_loss| ≤ ε · initial_loss`` with ``initial_loss > 0`` (ε the float64 machine
  epsilon): the loss fell by the whole floating-point range of its start, so any
  oscillation along u, which adds x²/η to the loss (docs/theory.md §2), is at round-off level: the
  run is not held, whatever ``r`` does.

Without ``late_max_rel`` (a caller that has not recorded it) *held* falls back to
"late-window mean of ``r`` at least ``1 − b`` and the loss not at round-off": this still
labels a run that converged to a minimiser with a nonzero loss within ``band`` below the
threshold as ``edge_of_stability``. With ``band`` b, in this order:

``diverged`` (3)
    the run stopped early (status DIVERGED or NONFINITE: |θ| passed ``divergence_norm`` or a
    value was not finite), or the final loss exceeds the initial loss, unless the run is at
    the edge of stability (below) with the loss's peak before the late window
    (``late_peak_loss < peak_loss``): a run that starts past the threshold is thrown off,
    then can self-stabilise there, held, with its loss above the start but below that
    peak; a loss that peaks in the late window is still rising (GD above 2/η on a
    quadratic is held at a constant r > 1 while it grows).
``converged`` (0)
    the sharpness never reached the threshold (``max r_t < 1``): GD stayed in its stable
    region, below 2/η; or it did reach it, is not held there at the end, and the loss never
    rose above its initial value; or the run stopped at an exact critical point (status
    ZERO_GRADIENT: ∇L = 0, where the step of normalised GD and GD on sqrt L is undefined and
    the method would stay), whatever its records (a start at a minimiser has no ``r``).
``catapult`` (2)
    the threshold was reached, the loss rose above its initial value at some recorded step
    (a spike), and the run is not held at the threshold at the end.
``edge_of_stability`` (1)
    the threshold was reached, the run is held there, and the late-window mean of ``r``
    lies in ``[1 − b, 1 + b]``.
``unresolved`` (4)
    held at the threshold, but with the late-window mean of ``r`` outside the band (e.g. a
    run too short to tell, or a loss that is flat far out).

An adaptive method's cell with ε = 0 whose ν reaches a zero entry at a recorded step (a
gradient entry 0 at the start, where ν starts at 0, or at any step with β₂ = 0) stops there
at a finite state: P = diag(√ν̂ + ε) is singular and r undefined, and nothing diverged.
At an exact critical point with no momentum left (∇L = 0 and β₁m = 0: sign descent can land
on the minimiser) the method stays where it is: the run's status is ZERO_GRADIENT, and the
cell converged; Adam's momentum there would move it on (dividing by √ν = 0). Otherwise the cell
gets no class: the sweep raises ``ValueError`` naming it and ``eps``
(``stabsim.sweep.adaptive_cells``).

The reduced map (model ``"reduced"``)
-------------------------------------
With ``H(x, y) = y² + (β/2) x² − α ln x²`` and its minimum ``H_min = α − α ln δ²`` at the
period-2 orbit ``(x, y) = (±δ, 0)`` (δ² = 2α/β), the *energy* is ``E = H − H_min ≥ 0``
(conserved by the ODE limit, grows by O(η) per cycle of the discrete map). In this order:

``diverged`` (3)
    status NONFINITE: x or y overflowed.
``left_domain`` (4)
    status LEFT_DOMAIN: a state had ``1 + η y ≤ 0``, outside the map's validity domain.
``underflow`` (5)
    status UNDERFLOW: |x| fell to the smallest normal double (2.2e-308) or below, where
    floating point can no longer follow the trajectory (orbits that spiral out pass ever
    closer to x = 0 in phase I).
``converging`` (0)
    all steps ran and ``E_T ≤ E_0`` with E_T finite: the trajectory sits at, or spirals in
    towards, the period-2 orbit (±δ, 0) — against the theory's prediction that orbits
    spiral out. (E is infinite on the line x = 0, which the map never leaves: a start
    there stays in progressive sharpening, y growing without bound.)
``cycling`` (1)
    all steps ran, E grew, and at least one full cycle I → II → III → IV → I was completed
    (two cycle boundaries): self-stabilisation at the edge of stability.
``transient`` (2)
    all steps ran, E grew, and no cycle was completed within the step budget (still in
    progressive sharpening or the first blow-up).

GD on the uv model (``stabsim.sweep.catapult``)
-----------------------------------------------
Lewkowycz et al.'s three phases of GD at step η from the NTK eigenvalue λ₀ (THEORY §6), with
L₀, L_peak and L_T the initial, highest and final loss over every step. In this order:

``diverged`` (2)
    the run stopped early (status DIVERGED or NONFINITE).
``unresolved`` (3)
    all steps ran but L_T ≥ L₀: neither converging nor diverged within the step budget.
``lazy`` (0)
    L_T < L₀ and the loss never rose above L₀ (L_peak = L₀): GD converged in the
    linearised regime (large width: ηλ₀ < 2).
``catapult`` (1)
    L_T < L₀ after the loss rose above L₀ (L_peak > L₀): the loss spiked while the curvature
    fell below 2/η, then converged (large width: 2 < ηλ₀ < 4).
"""

from __future__ import annotations

import enum

import numpy as np

from .. import _validate as check
from .._export import flag_attrs as codes_flag_attrs
from .._status import Status
from ..maps._reduced_step import hamiltonian


def odd_stride(stride, model: str) -> int:
    """The record stride of a sweep of ``model`` on a loss, which must be an odd integer ≥ 1.

    At the edge of stability every method on a loss alternates on either side of the
    minimiser manifold (a period-2 orbit), and the sharpness with it; with an even stride
    every record falls on one side, and the late-window mean of ``r`` is that side's, not
    the orbit's, so the class depends on the stride (normalised GD on a depth-3 scalar
    network: mean 1.07 at stride 1, 4.84 at stride 2; RMSProp on a regression model,
    η = 0.02: 1.0007 at strides 1 and 11, 0.9994 at 2 and 10, edge of stability then
    converged). An odd stride alternates the sides; it pairs records ``stride`` steps
    apart, not consecutive ones, so its mean is the orbit's while the orbit changes little
    over ``stride`` steps (stride 1 is exact)."""
    stride = check.nonnegative_int("stride", stride, minimum=1)
    if stride % 2 == 0:
        raise ValueError(f"model {model!r} needs an odd stride, got stride = {stride}: at the "
                         "edge of stability the iterates alternate on either side of the "
                         "minimiser manifold (a period-2 orbit), and with an even stride "
                         "every record falls on the same side, so the late-window mean of "
                         "the relative sharpness (and the class) would be that side's, not "
                         "the orbit's")
    return stride


class GDClass(enum.IntEnum):
    """Classes of gradient-method cells (see the module docstring)."""

    CONVERGED = 0
    EDGE_OF_STABILITY = 1
    CATAPULT = 2
    DIVERGED = 3
    UNRESOLVED = 4


class MapClass(enum.IntEnum):
    """Classes of reduced-map cells (see the module docstring)."""

    CONVERGING = 0
    CYCLING = 1
    TRANSIENT = 2
    DIVERGED = 3
    LEFT_DOMAIN = 4
    UNDERFLOW = 5


class CatapultClass(enum.IntEnum):
    """Classes of GD on the uv model (see the module docstring)."""

    LAZY = 0
    CATAPULT = 1
    DIVERGED = 2
    UNRESOLVED = 3


CLASSES = {"gd": GDClass, "reduced": MapClass, "catapult": CatapultClass,
           "adaptive": GDClass, "sgd": GDClass}


def flag_attrs(model: str) -> dict:
    """CF attributes describing the regime codes of ``model``."""
    return dict(codes_flag_attrs(CLASSES[model]),
                long_name="regime of the cell (see stabsim.sweep.classify)")


def status_attrs() -> dict:
    """CF attributes describing the ``status`` variable of a sweep (its cells' ``Status``)."""
    return dict(codes_flag_attrs(Status),
                long_name="outcome of the cell's run (stabsim.Status; its message says what "
                          "it means)")


def classify_gd(status, initial_loss, final_loss, peak_loss, max_rel, late_rel, band, *,
                late_max_rel=None, late_peak_loss=None):
    """Class codes of gradient-method cells (arrays of one shape; see the module docstring).

    Parameters
    ----------
    status : ndarray of int
        ``Status`` codes of the runs.
    initial_loss, final_loss, peak_loss : ndarray
        L at the first, last and highest recorded state.
    max_rel, late_rel : ndarray
        Maximum of r_t over the run, and its late-window mean.
    band : float
    late_max_rel : ndarray, optional
        Maximum of r_t over the late window. Without it, whether the run is held at the
        threshold is judged from the band (module docstring).
    late_peak_loss : ndarray, optional
        The highest loss of the late window: a run whose loss ended above its start
        and peaks there is still rising (diverged) even when held at the threshold.
        Without it, every run whose loss ended above its start is diverged.

    Returns
    -------
    ndarray of int8
    """
    stopped = (status == Status.DIVERGED) | (status == Status.NONFINITE)
    critical = status == Status.ZERO_GRADIENT  # an exact critical point: it stays there
    reached = max_rel >= 1.0
    in_band = np.abs(late_rel - 1.0) <= band
    spike = peak_loss > initial_loss
    # an oscillation along u adds x²/η to the loss: at round-off of the start it is gone
    # (only meaningful for a positive start: a loss that takes negative values has no scale)
    at_roundoff = (initial_loss > 0) & (np.abs(final_loss)
                                        <= np.finfo(np.float64).eps * initial_loss)
    if late_max_rel is None:
        held = (late_rel >= 1.0 - band) & ~at_roundoff
    else:
        held = (np.asarray(late_max_rel) >= 1.0) & ~at_roundoff
    at_edge = reached & held & in_band
    # a loss that ended above its start is divergence unless the run is held at the edge
    # with its loss no longer rising: one that starts past the threshold is thrown off and
    # self-stabilises there with its loss above the start, below the peak of the throw
    # (a run above 2/η on a quadratic is held at a constant r > 1 while its loss grows)
    rising = (np.ones(np.shape(status), bool) if late_peak_loss is None
              else ~(late_peak_loss < peak_loss))
    diverged = stopped | (~(final_loss <= initial_loss) & (~at_edge | rising))
    out = np.full(np.shape(status), GDClass.UNRESOLVED, np.int8)
    out[~reached | (~held & ~spike)] = GDClass.CONVERGED
    out[reached & ~held & spike] = GDClass.CATAPULT
    out[at_edge] = GDClass.EDGE_OF_STABILITY
    out[diverged] = GDClass.DIVERGED
    out[critical] = GDClass.CONVERGED
    return out


def map_energy(x, y, alpha, beta):
    """E(x, y) = H(x, y) − H_min ≥ 0 of the reduced map (inf at x = 0, NaN if not finite)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        h = hamiltonian(x, np.asarray(y, dtype=np.float64), alpha, beta)
        # H_min = α − α ln δ², as H at (δ, 0) in H's own arithmetic: a start on the orbit,
        # x0 = δ = sqrt(2α/β), has E_0 = 0 exactly (the closed form differs by an ulp)
        h_min = hamiltonian(np.sqrt(2.0 * alpha / beta), 0.0, alpha, beta)
    return h - h_min


def classify_map(status, n_boundaries, energy_start, energy_end):
    """Class codes of reduced-map cells (arrays of one shape; see the module docstring)."""
    ok = status == Status.OK
    out = np.full(np.shape(status), MapClass.TRANSIENT, np.int8)
    out[ok & (n_boundaries >= 2)] = MapClass.CYCLING
    # E is inf on the line x = 0, which the map never leaves: y grows there without a cycle,
    # and inf ≤ inf would call that converging
    out[ok & np.isfinite(energy_end) & (energy_end <= energy_start)] = MapClass.CONVERGING
    out[status == Status.NONFINITE] = MapClass.DIVERGED
    out[status == Status.LEFT_DOMAIN] = MapClass.LEFT_DOMAIN
    out[status == Status.UNDERFLOW] = MapClass.UNDERFLOW
    return out


def classify_catapult(status, initial_loss, final_loss, peak_loss):
    """Class codes of GD runs on the uv model (arrays of one shape; see the module docstring)."""
    out = np.full(np.shape(status), CatapultClass.UNRESOLVED, np.int8)
    fell = final_loss < initial_loss
    out[fell & ~(peak_loss > initial_loss)] = CatapultClass.LAZY
    out[fell & (peak_loss > initial_loss)] = CatapultClass.CATAPULT
    out[(status == Status.DIVERGED) | (status == Status.NONFINITE)] = CatapultClass.DIVERGED
    return out


def classify_statistics(stats: dict, status, band: float, ratio: str = "rel_sharpness"):
    """:func:`classify_gd` on a sweep's statistics: ``initial_loss``, ``final_loss``,
    ``peak_loss``, ``late_peak_loss`` and, for the ratio r_t named ``ratio`` (S η/2, or the
    batch sharpness's BS η/2), its maximum ``max_<ratio>``, late mean ``mean_<ratio>`` and
    late maximum ``late_max_<ratio>``."""
    return classify_gd(status, stats["initial_loss"], stats["final_loss"], stats["peak_loss"],
                       stats[f"max_{ratio}"], stats[f"mean_{ratio}"], band,
                       late_max_rel=stats[f"late_max_{ratio}"],
                       late_peak_loss=stats["late_peak_loss"])
