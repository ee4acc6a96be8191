"""Compiled engine for mini-batch SGD on finite-sum losses, and the batch sharpness.

A finite-sum family (:mod:`stabsim.losses._protocol`) gives, through ``subset``, the loss
L_B = (1/b) Σ_{i∈B} ℓ_i of a batch B; SGD is θ_{t+1} = θ_t − η ∇L_{B_t}(θ_t)
(docs/stochastic.md). The batches are drawn by the Python wrapper (``stabsim.maps.sgd``)
and passed in, one row of example indices per step, so the kernel holds no random state.

At a recorded step the engine measures, at θ_t, the full loss and gradient norm, the
sharpness λ_max(∇²L) exactly as the GD engine does (it reuses that engine's measurement:
:mod:`stabsim.maps._gd_kernels`), and the batch sharpness

    BS = E_B[g_Bᵀ H_B g_B] / E_B[|g_B|²],     g_B = ∇L_B(θ),  H_B = ∇²L_B(θ),

over the batch distribution of the sampler (:func:`exact_batch_sharpness`, from per-example
moments, or :func:`sampled_batch_sharpness`, a ratio estimate over drawn batches).
"""

from typing import NamedTuple

import numpy as np
from numba.extending import overload

from .._jit import KERNEL_ONLY, inline, jit
from .._linalg import dot, norm_of, scale_into
from ..losses._protocol import grad as loss_grad
from ..losses._protocol import hvp as loss_hvp
from ..losses._protocol import subset as loss_subset
from ..losses._protocol import value_grad as loss_value_grad
from ._gd_kernels import (
    _DIVERGED,
    _NONFINITE,
    _NOT_CONVERGED,
    _OK,
    _holds_dense,
    _measure,
    _workspace,
    evaluate_dense,
    evaluate_products,
)


class SGDState(NamedTuple):
    """Everything a run needs to continue: updated in place."""

    theta: np.ndarray  #: θ_t
    evec: np.ndarray  #: the last top eigenvector of ∇²L (Lanczos warm start)


class SGDRecords(NamedTuple):
    """Per-record outputs; row t // stride holds step t."""

    loss: np.ndarray  #: L(θ_t), the full loss
    gnorm: np.ndarray  #: |∇L(θ_t)|
    sharp: np.ndarray  #: λ_max(∇²L(θ_t))
    residual: np.ndarray  #: |Hu − λu| of the eigenpair (0 for a dense solver)
    bs: np.ndarray  #: the batch sharpness (exact, or the estimate)
    bs_low: np.ndarray  #: lower end of its confidence interval (= bs when exact)
    bs_high: np.ndarray  #: upper end (= bs when exact)
    theta: np.ndarray  #: (n_rec, d), or (0, d) when the iterates are not recorded


class BatchLaw(NamedTuple):
    """The batch distribution: b examples of N, drawn with or without replacement."""

    n_examples: int
    batch_size: int
    replacement: bool


@inline
def batch_moments(a, c, e, s, q, r, law):
    """E_B[g_Bᵀ H_B g_B] and E_B[|g_B|²] from the centred per-example moments.

    Write g_i = ḡ + δ_i and H_i = H̄ + E_i (ḡ = ∇L, H̄ = ∇²L, so Σ_i δ_i = 0 and
    Σ_i E_i = 0). The batch means are g_B = ḡ + δ_B and H_B = H̄ + E_B with δ_B, E_B the
    means of δ and E over the b positions of the batch; the terms linear in δ_B or E_B have
    mean zero, so

        E[g_BᵀH_B g_B] = ḡᵀH̄ḡ + c₂ (⟨δᵀH̄δ⟩ + 2⟨ḡᵀEδ⟩) + c₃ ⟨δᵀEδ⟩,
        E|g_B|² = |ḡ|² + c₂ ⟨|δ|²⟩,

    with ⟨·⟩ the mean over the examples and c₂, c₃ the second and third central moments of
    a batch mean in units of the examples' (multilinear, so they hold for these joint
    moments): 1/b and 1/b² with replacement (independent positions), and
    (N − b)/(b(N − 1)) and (N − b)(N − 2b)/(b²(N − 1)(N − 2)) without (a uniform b-subset),
    both 1 at b = 1 and 0 at b = N. Arguments: a = ⟨δᵀH̄δ⟩, c = ⟨ḡᵀEδ⟩, e = ⟨δᵀEδ⟩,
    s = ⟨|δ|²⟩, q = ḡᵀH̄ḡ, r = |ḡ|².

    The centred form is what keeps the result exact to round-off near a minimum of a loss
    whose examples are not all fitted: there |ḡ|² ≪ ⟨|g_i|²⟩, and moments of g_i itself
    (the form used before, by inclusion–exclusion over the patterns of positions) gave
    E|g_B|² at b = N as a difference of terms of size ⟨|g_i|²⟩, lost to cancellation
    (a 6-example regression model: 0.970 for 1.014, then NaN, as GD converged).
    """
    n = float(law.n_examples)
    b = float(law.batch_size)
    if law.replacement:
        c2 = 1.0 / b
        c3 = 1.0 / (b * b)
    elif law.batch_size == law.n_examples:  # the one batch is every example
        c2 = c3 = 0.0
    elif law.batch_size == 1:
        c2 = c3 = 1.0
    else:  # 1 < b < N, so N ≥ 3
        c2 = (n - b) / (b * (n - 1.0))
        c3 = (n - b) * (n - 2.0 * b) / (b * b * (n - 1.0) * (n - 2.0))
    return q + c2 * (a + 2.0 * c) + c3 * e, r + c2 * s


@inline
def _evaluate_measured(eigen, theta, p, g, hess, factor):
    """(L(θ), state) and g ← ∇L(θ), with the dense Hessian parts when the measurement takes
    them, else with the family's ``linearise`` at θ as the state (one pass for a network;
    empty for a dense measurement).

    A function of its own: with the family's ``value_grad`` spliced into the step's
    recording branch, Numba's inliner lost track of one of its variables
    (``NumbaIRAssumptionWarning``). The GD and adaptive engines call ``value_grad`` in the
    step itself, which they do at every unmeasured step too (once compiled for both).
    """
    if _holds_dense(eigen):
        return evaluate_dense(eigen, theta, p, g, hess, factor, 0.0)[0], np.empty(0)
    return evaluate_products(eigen, theta, p, g)


@inline
def _curvature(theta, p, u, v, hv):
    """uᵀ ∇²L(θ) v, with hv ← ∇²L(θ) v (one function for the three products of
    :func:`exact_batch_sharpness`: the family's product is compiled into it once, not three
    times)."""
    loss_hvp(theta, p, v, hv)
    return dot(u, hv)


@inline
def exact_batch_sharpness(theta, p, g_full, law):
    """BS at θ exactly, from the centred per-example moments of :func:`batch_moments`.

    ``g_full`` is ∇L(θ) (= ḡ). For each example, δ_i = g_i − ḡ, the full product H̄δ_i and
    the example's own H_i δ_i give δᵀH̄δ, ḡᵀE_iδ_i = ḡ·(H_iδ_i − H̄δ_i) and
    δᵀE_iδ = δ·(H_iδ_i − H̄δ_i). Cost: N per-example gradients and products, N + 1 full
    products. Returns NaN when E|g_B|² = 0 (ḡ = 0 and, unless b = N, every δ_i = 0: 0/0).
    """
    d = theta.shape[0]
    n = law.n_examples
    delta = np.empty(d)
    full = np.empty(d)
    own = np.empty(d)
    one = np.empty(1, np.int64)
    a = c = e = s = 0.0
    for i in range(n):
        one[0] = i
        pi = loss_subset(p, one)
        loss_grad(theta, pi, delta)
        for k in range(d):
            delta[k] -= g_full[k]
        curved = _curvature(theta, p, delta, delta, full)
        a += curved
        e += _curvature(theta, pi, delta, delta, own) - curved
        for k in range(d):
            own[k] -= full[k]  # E_i δ_i
        c += dot(g_full, own)
        s += dot(delta, delta)
    q = _curvature(theta, p, g_full, g_full, full)
    num, den = batch_moments(a / n, c / n, e / n, s / n, q, dot(g_full, g_full), law)
    return num / den if den > 0.0 else np.nan


@inline
def sampled_batch_sharpness(theta, p, probes, z):
    """The ratio estimate of BS over the K batches ``probes`` (K × b indices) and its
    delta-method confidence interval.

    With X_k = g_Bkᵀ H_Bk g_Bk and Y_k = |g_Bk|² on K independent batches, R = ΣX/ΣY, and
    the first-order (delta-method) variance of a ratio of means
    Var R ≈ Σ_k (X_k − R Y_k)² / (K (K − 1) Ȳ²); the interval is R ± z √Var R (z the
    normal quantile of the confidence level). Returns (R, low, high); NaN when every
    Y_k = 0.
    """
    d = theta.shape[0]
    k_total = probes.shape[0]
    gb = np.empty(d)
    hv = np.empty(d)
    xs = np.empty(k_total)
    ys = np.empty(k_total)
    for k in range(k_total):
        pb = loss_subset(p, probes[k])
        loss_grad(theta, pb, gb)
        loss_hvp(theta, pb, gb, hv)
        xs[k] = dot(gb, hv)
        ys[k] = dot(gb, gb)
    sx = xs.sum()
    sy = ys.sum()
    if not sy > 0.0:
        return np.nan, np.nan, np.nan
    ratio = sx / sy
    spread = 0.0
    for k in range(k_total):
        e = xs[k] - ratio * ys[k]
        spread += e * e
    mean_y = sy / k_total
    half = z * np.sqrt(spread / (k_total * (k_total - 1.0))) / mean_y
    return ratio, ratio - half, ratio + half


class ExactBatchSharpness(NamedTuple):
    """Passed in place of the probe batches: the batch sharpness in closed form
    (:func:`exact_batch_sharpness`). A type, resolved when a kernel is compiled, so that the
    kernel holds one estimator only (each is about 0.5 s of a cold compile)."""


def measure_batch_sharpness(theta, p, g_full, law, probes, record, z):
    """BS at θ as (BS, low, high): exact for :class:`ExactBatchSharpness`, else the sampled
    estimate over the batches ``probes[record]`` (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


@overload(measure_batch_sharpness, jit_options=KERNEL_ONLY)
def _measure_batch_sharpness(theta, p, g_full, law, probes, record, z):
    if getattr(probes, "instance_class", None) is ExactBatchSharpness:
        def exact(theta, p, g_full, law, probes, record, z):
            value = exact_batch_sharpness(theta, p, g_full, law)
            return value, value, value

        return exact

    def sampled(theta, p, g_full, law, probes, record, z):
        return sampled_batch_sharpness(theta, p, probes[record], z)

    return sampled


@jit
def batch_sharpness_at(p, theta, law, probes, z):
    """BS at one point (entry point of :func:`stabsim.maps.sgd.batch_sharpness`):
    ``probes`` is :class:`ExactBatchSharpness` or one record's batches, shape (1, K, b)."""
    g_full = np.empty(theta.shape[0])
    loss_value_grad(theta, p, g_full)
    return measure_batch_sharpness(theta, p, g_full, law, probes, 0, z)


@inline
def sgd_steps(p, eta, eigen, law, state, rec, start, n_steps, finish, stride, batches,
              probes, z, divergence_norm):
    """Advance ``n_steps`` SGD steps from step ``start``; record every ``stride``-th step.

    Step t uses the batch ``batches[t − start]`` (sorted example indices):
    θ_{t+1} = θ_t − η ∇L_B(θ_t), the gradient from the family's ``value_grad`` on
    ``subset(p, B)``. The state at step t is recorded (row t // stride) before its update,
    so row 0 is the start; with ``finish`` the state after the last update is recorded too.
    ``probes`` holds K batches per record of the chunk, in order (shape (records, K, b)),
    or is :class:`ExactBatchSharpness` for the exact batch sharpness.

    Returns
    -------
    status : int
        OK, DIVERGED, NONFINITE, or NOT_CONVERGED when Lanczos used its budget.
    steps_done : int
        Updates applied in this chunk (a failing state is neither recorded nor updated).
    """
    theta, evec = state
    d = theta.shape[0]
    g, hess, factor, lanczos, anchor, prev_evec, top = _workspace(eigen, p, d)
    gb = np.empty(d)
    record_trajectory = rec.theta.shape[0] > 0
    n_probe = 0
    for k in range(n_steps + 1 if finish else n_steps):
        t = start + k
        if t % stride == 0:
            loss, linearised = _evaluate_measured(eigen, theta, p, g, hess, factor)
            gnorm = norm_of(g, dot(g, g))
            if not (np.isfinite(loss) and np.isfinite(gnorm)):
                return _NONFINITE, k
            if np.sqrt(dot(theta, theta)) > divergence_norm:
                return _DIVERGED, k
            residual, converged, _ = _measure(eigen, theta, p, linearised, hess, factor, lanczos,
                                              anchor, prev_evec, top, evec, -1.0)
            if not np.isfinite(residual):
                return _NONFINITE, k
            if not converged:
                return _NOT_CONVERGED, k
            bs, low, high = measure_batch_sharpness(theta, p, g, law, probes, n_probe, z)
            n_probe += 1
            row = t // stride
            rec.loss[row] = loss
            rec.gnorm[row] = gnorm
            rec.sharp[row] = top[0]
            rec.residual[row] = residual
            rec.bs[row] = bs
            rec.bs_low[row] = low
            rec.bs_high[row] = high
            # a copy by loop: an array assignment would compile Numba's
            # shape-mismatch error (its string formatting: about 2 s of a cold first call)
            if record_trajectory:
                scale_into(rec.theta[row], theta, 1.0)
        if k == n_steps:
            break
        batch_loss = loss_value_grad(theta, loss_subset(p, batches[k]), gb)
        if not (np.isfinite(batch_loss) and np.isfinite(norm_of(gb, dot(gb, gb)))):
            return _NONFINITE, k
        if np.sqrt(dot(theta, theta)) > divergence_norm:
            return _DIVERGED, k
        for i in range(d):  # a loop: an array expression would allocate every step
            theta[i] -= eta * gb[i]
    return _OK, n_steps


sgd_chunk = jit(sgd_steps)
""":func:`sgd_steps` as a compiled entry point (one specialisation per loss family): the
function itself, not a wrapper that calls it, which would be one more compilation of the
whole engine (see :mod:`stabsim._jit`)."""
