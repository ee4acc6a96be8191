"""Compiled engine for the adaptive methods (RMSProp, Adam, Scalar RMSProp) on any loss family.

:func:`adaptive_steps` advances a chunk of steps and records, at a stride, the loss, the
gradient norm, the raw sharpness λ_max(∇²L) and the preconditioned sharpness λ_max(P⁻¹∇²L)
(docs/theory.md §7). It reuses the GD engine's measurement records and helpers
(:mod:`stabsim.maps._gd_kernels`) and measures the preconditioned sharpness with the same
solver as the raw one: the eigenvalues of D ∇²L D, D = P^{-1/2}, by warm-started Lanczos on
its products (:class:`stabsim._lanczos.ScaledHessianAt`) or, for a dense measurement, from
D H D and the factor F D (:func:`_measure_scaled`).

The update of step t = 0, 1, … (the state ν, m holds ν_{t−1}, m_{t−1}; ν_{−1} = ``nu0``,
m_{−1} = ``m0`` for Adam; the RMSProps keep m at 0), with g_t = ∇L(w_t):

    ν_t = β₂ ν_{t−1} + (1 − β₂) g_t²        (elementwise; |g_t|² for Scalar RMSProp)
    m_t = β₁ m_{t−1} + (1 − β₁) g_t          (Adam; m_t = g_t for the RMSProps)
    ν̂_t = ν_t / (1 − β₂^{t₀+t+1}),  m̂_t = m_t / (1 − β₁^{t₀+t+1})   (with bias
                              correction, t₀ = ``first_step``; ν̂ = ν, m̂ = m without)
    w_{t+1} = w_t − η m̂_t / (√ν̂_t + ε).

So P_t = diag(√ν̂_t + ε) (the threshold on λ_max(P⁻¹∇²L) is 2/η, or (2 + 2β₁)/((1 − β₁)η)
with Adam's momentum) and the preconditioned sharpness recorded at step t is
λ_max(diag(√ν̂_t + ε)⁻¹ ∇²L(w_t)), with the preconditioner the update of step t uses. It is
measured on D' ∇²L D' with D' = D/2^e, 2^(e−1) ≤ max D < 2^e, and multiplied by 4^e
(:func:`_unit_scale`): the products with D ∇²L D are of size (max D)² |∇²L|, and Lanczos's
dot products square them, which overflowed for (max D)² |∇²L| past about 1e154 (ε ≲ 1e-154
on a coordinate whose ν is 0: a finite sharpness of about |∇²L|/ε reported as NONFINITE);
with D' ≤ 1 they are at most |∇²L|. Scaling by a power of two is exact, and every operation
of the measurement scales exactly with its operator, so the result is the unscaled one bit
for bit wherever that one neither overflows nor underflows, with one exception: the dense
Lanczos path skips the start mix when the operator is within its tolerance of the last one
measured with it (:func:`stabsim._lanczos.anchored_top_eigenpair`), and where e changed in
between (max D within that tolerance of a power of two) it takes the mixed run instead,
which agrees with the other to that tolerance. A
coordinate with √ν̂ + ε = 0 (ε = 0 and a gradient entry of 0 at this step, and at every step
before unless β₂ = 0 or the entries underflow) moves by 0/0 := 0 where its m is zero too (for
the RMSProps m = g); its preconditioned sharpness is infinite, reported as NONFINITE when
measured.
"""

import math
from typing import NamedTuple

import numpy as np
from numba.extending import overload

from .._jit import KERNEL_ONLY, inline, jit
from .._lanczos import START_MIX, ScaledHessianAt, top_eigenpair
from .._linalg import dot, norm_of, scale_into
from ..losses._protocol import value_grad as loss_value_grad
from ._gd_kernels import (
    _DIVERGED,
    _NONFINITE,
    _NOT_CONVERGED,
    _OK,
    MatrixFree,
    _holds_dense,
    _is,
    _measure,
    _workspace,
    evaluate_dense,
    evaluate_products,
)

RMSPROP = 0  #: diagonal ν, m = g
ADAM = 1  #: diagonal ν, m the EMA of g
SCALAR_RMSPROP = 2  #: scalar ν = EMA of |g|², m = g

class AdaptiveMethod(NamedTuple):
    """The update rule (one of the constants above) and its constants."""

    rule: int
    eta: float
    beta1: float
    beta2: float
    eps: float
    bias_correction: bool
    first_step: int  #: the step number of the start in the run it continues


class AdaptiveState(NamedTuple):
    """Everything a run needs to continue: updated in place."""

    theta: np.ndarray  #: w_t
    m: np.ndarray  #: m_{t−1} (d,), unused (zeros) for the RMSProps
    nu: np.ndarray  #: ν_{t−1}, shape (d,), or (1,) for Scalar RMSProp
    evec: np.ndarray  #: the last top eigenvector of ∇²L (warm start)
    pevec: np.ndarray  #: the last top eigenvector of D∇²LD (warm start)


class AdaptiveRecords(NamedTuple):
    """Per-record outputs; row t // stride holds step t."""

    loss: np.ndarray
    gnorm: np.ndarray
    sharp: np.ndarray  #: (n_rec, 1), λ_max(∇²L(w_t))
    psharp: np.ndarray  #: λ_max(P_t⁻¹∇²L(w_t)) with P_t = diag(√ν̂_t + ε)
    residual: np.ndarray  #: residual of the raw eigenpair
    presidual: np.ndarray  #: residual |D H D v − λ v| of the preconditioned eigenpair
    theta: np.ndarray  #: (n_rec, d) or (0, d)
    nu: np.ndarray  #: ν_t, (n_rec, len(nu)) or (0, len(nu))


@inline
def _denominators(method, nu_new, t, denom):
    """denom ← √ν̂_t + ε for every coordinate (a scalar ν fills every entry); ν̂_t = ν_t/(1 −
    β₂^{t₀+t+1}) under bias correction, t₀ = ``method.first_step``."""
    beta2, eps = method.beta2, method.eps
    c2 = 1.0 - beta2 ** (method.first_step + t + 1) if method.bias_correction else 1.0
    n = nu_new.shape[0]
    for i in range(denom.shape[0]):
        denom[i] = np.sqrt(nu_new[i if n > 1 else 0] / c2) + eps


@inline
def _unit_scale(scale):
    """scale ← scale / 2^e with 2^(e−1) ≤ max(scale) < 2^e, so that every entry lies in
    (0, 1); returns e (0, scale unchanged, when the largest entry is not finite). A power of
    two: exact, barring entries below 2^(e−1022), which become subnormal and lose digits
    (a spread of 1e307 between the entries)."""
    top = 0.0
    for i in range(scale.shape[0]):
        top = max(top, scale[i])
    if not (0.0 < top < np.inf):
        return 0
    e = math.frexp(top)[1]
    for i in range(scale.shape[0]):
        scale[i] = math.ldexp(scale[i], -e)
    return e


def _measure_scaled(eigen, theta, p, state, hess, factor, scale, tmp, lanczos, anchor,
                    prev_evec, top, evec):
    """The top eigenpair of one operator, as :func:`stabsim.maps._gd_kernels._measure` gives
    that of ∇²L(θ): for a matrix-free measurement D ∇²L(θ) D with D = diag(``scale``), by
    Lanczos on products (``tmp``: a work vector; ``state``: the family's ``linearise`` at θ,
    from :func:`stabsim.maps._gd_kernels.evaluate_products`, shared by both measurements);
    for a dense one ``hess + factorᵀ factor`` as the caller formed it (``scale`` and
    ``state`` unused) (kernels only).

    The engine measures both of its sharpnesses through this one overload, so Lanczos is
    compiled once per engine (a second operator type, or the same function reached from a
    second overload, compiles it again: 4–6 s of a cold first call).
    """
    raise TypeError("resolved inside compiled kernels")


@overload(_measure_scaled, jit_options=KERNEL_ONLY)
def _measure_scaled_impl(eigen, theta, p, state, hess, factor, scale, tmp, lanczos, anchor,
                         prev_evec, top, evec):
    if _is(eigen, MatrixFree):
        def matrix_free(eigen, theta, p, state, hess, factor, scale, tmp, lanczos, anchor,
                        prev_evec, top, evec):
            # warm-started from evec in place, as GD's (_gd_kernels._measure)
            lam, residual, products, converged = top_eigenpair(
                ScaledHessianAt(theta, p, state, scale, tmp), evec, lanczos,
                eigen.max_products, eigen.tol, evec, START_MIX, False)
            top[0] = lam
            return residual, converged, products

        return matrix_free
    return lambda eigen, theta, p, state, hess, factor, scale, tmp, lanczos, anchor, prev_evec, \
        top, evec: _measure(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec,
                            top, evec, -1.0)


@inline
def _scale_dense(hess, factor, scale, hess_out, factor_out):
    """hess_out ← D hess D and factor_out ← factor D, D = diag(``scale``): then
    hess_out + factor_outᵀ factor_out = D (hess + factorᵀ factor) D. The dense parts are
    given by their upper triangles (``hessian_parts``), which is all that is scaled. Empty
    (matrix-free) buffers: nothing to do."""
    d = hess.shape[0]
    for i in range(d):
        for c in range(d - i):
            hess_out[i, i + c] = scale[i] * hess[i, i + c] * scale[i + c]
    for k in range(factor.shape[0]):
        for j in range(factor.shape[1]):
            factor_out[k, j] = factor[k, j] * scale[j]


@inline
def adaptive_steps(p, method, eigen, state, rec, start, n_steps, finish, stride,
                   divergence_norm):
    """Advance ``n_steps`` steps from step ``start``; record every ``stride``-th step.

    The contract of :func:`stabsim.maps._gd_kernels.gd_steps`: the state at step t (w_t and
    the preconditioner ν̂_t its update uses) is recorded into row t // stride before the
    update; with ``finish`` the state after the last update is evaluated and recorded too,
    into the last row when its step is not a multiple of the stride (its ν_T is computed for
    the record and not stored, so a run continued from the state goes on exactly).
    Empty records measure nothing. ``eigen`` is one of the GD engine's measurement records
    (for the raw sharpness and, on D ∇²L D, the preconditioned one).

    Returns
    -------
    status : int
        OK, DIVERGED, NONFINITE, or NOT_CONVERGED when a Lanczos measurement used its
        budget of products without meeting its tolerance.
    steps_done : int
        Updates applied in this chunk.
    """
    theta, m, nu, evec, pevec = state
    rule, eta, beta1, beta2, eps, bias_correction, _ = method
    d = theta.shape[0]
    n_nu = nu.shape[0]
    g, hess, factor, lanczos, anchor, prev_evec, top = _workspace(eigen, None, d)
    # the preconditioned measurement's own: D H D and F D (empty when matrix-free), a
    # Lanczos workspace and anchor, the previous eigenvector and the eigenvalue
    _, phess, pfactor, pwork, panchor, prev_pevec, ptop = _workspace(eigen, None, d)
    ones = np.ones(d)  # D = I: the raw sharpness of a matrix-free measurement
    nu_new = np.empty(n_nu)
    m_new = np.empty(d)
    denom = np.empty(d)
    scale = np.empty(d)
    tmp = np.empty(d)
    linearised = np.empty(0)  # the family's linearise at θ, at recorded steps on products
    record_trajectory = rec.theta.shape[0] > 0
    record_nu = rec.nu.shape[0] > 0
    for k in range(n_steps + 1 if finish else n_steps):
        t = start + k
        last = finish and k == n_steps
        recording = rec.loss.shape[0] > 0 and (t % stride == 0 or last)
        if recording and _holds_dense(eigen):
            loss = evaluate_dense(eigen, theta, p, g, hess, factor, 0.0)[0]
        elif recording:  # one pass for the gradient and what both measurements' products share
            loss, linearised = evaluate_products(eigen, theta, p, g)
        else:
            loss = loss_value_grad(theta, p, g)
        g2 = dot(g, g)
        gnorm = norm_of(g, g2)
        # the state ν is made of the squares g_i² (Σ g_i² for scalar RMSProp): once they
        # overflow, ν and the denominators are inf and the step is 0, so a finite |g| is not
        # enough to go on
        if not (np.isfinite(loss) and np.isfinite(g2)):
            return _NONFINITE, k
        if np.sqrt(dot(theta, theta)) > divergence_norm:
            return _DIVERGED, k
        # the optimiser state of step t, into scratch (stored only when the update is taken)
        if rule == SCALAR_RMSPROP:
            nu_new[0] = beta2 * nu[0] + (1.0 - beta2) * g2
        else:
            for i in range(d):
                nu_new[i] = beta2 * nu[i] + (1.0 - beta2) * g[i] * g[i]
        for i in range(d):
            m_new[i] = beta1 * m[i] + (1.0 - beta1) * g[i] if rule == ADAM else g[i]
        _denominators(method, nu_new, t, denom)
        if recording:
            e = 0  # D = 2^e D': the operator measured is D' H D' = D H D / 4^e
            if rule != SCALAR_RMSPROP:
                for i in range(d):
                    scale[i] = 1.0 / np.sqrt(denom[i])
                e = _unit_scale(scale)
                _scale_dense(hess, factor, scale, phess, pfactor)  # before eigh adds FᵀF to H
            residual, converged, _ = _measure_scaled(eigen, theta, p, linearised, hess, factor,
                                                     ones, tmp, lanczos, anchor, prev_evec,
                                                     top, evec)
            if not np.isfinite(residual):
                return _NONFINITE, k
            if not converged:
                return _NOT_CONVERGED, k
            raw = top[0]
            if rule == SCALAR_RMSPROP:  # P = (√ν̂ + ε) I: λ_max(P⁻¹H) = S/(√ν̂ + ε) exactly
                psharp = raw / denom[0]
                presidual = residual / denom[0]
                pconverged = True
            else:
                presidual, pconverged, _ = _measure_scaled(eigen, theta, p, linearised, phess,
                                                           pfactor, scale, tmp, pwork,
                                                           panchor, prev_pevec, ptop, pevec)
                psharp = math.ldexp(ptop[0], 2 * e)  # inf where 4^e λ' is past the float range
                presidual = math.ldexp(presidual, 2 * e)
            # a singular P (ν̂ = 0 somewhere, ε = 0) has no preconditioned sharpness
            if not (np.isfinite(psharp) and np.isfinite(presidual)):
                return _NONFINITE, k
            if not pconverged:
                return _NOT_CONVERGED, k
            row = t // stride if t % stride == 0 else rec.loss.shape[0] - 1
            rec.loss[row] = loss
            rec.gnorm[row] = gnorm
            rec.sharp[row, 0] = raw
            rec.psharp[row] = psharp
            rec.residual[row] = residual
            rec.presidual[row] = presidual
            # a copy by loop: an array assignment would compile Numba's
            # shape-mismatch error (its string formatting: about 2 s of a cold first call)
            if record_trajectory:
                scale_into(rec.theta[row], theta, 1.0)
            if record_nu:
                scale_into(rec.nu[row], nu_new, 1.0)
        if k == n_steps:
            break
        c1 = (1.0 - beta1 ** (method.first_step + t + 1) if (bias_correction and rule == ADAM)
              else 1.0)
        if method.eps == 0.0:
            # a zero entry of √ν̂ under a moving coordinate: the update would divide by it.
            # Stopped here, at the finite state, at a recorded step or not (the wrapper says
            # why), as the measurement of a recorded step stops on the singular P
            for i in range(d):
                if m_new[i] != 0.0 and denom[i] == 0.0:
                    return _NONFINITE, k
        for i in range(n_nu):
            nu[i] = nu_new[i]
        for i in range(d):
            if rule == ADAM:  # the RMSProps' m_t is g_t itself: no state to keep
                m[i] = m_new[i]
            if m_new[i] != 0.0:  # 0/0 := 0 on a coordinate with no preconditioner yet
                theta[i] -= eta * (m_new[i] / c1) / denom[i]
    return _OK, n_steps


adaptive_chunk = jit(adaptive_steps)
""":func:`adaptive_steps` as a compiled entry point (one specialisation per loss family): the
function itself, not a wrapper that calls it, which would be one more compilation of the
whole engine (see :mod:`stabsim._jit`)."""
