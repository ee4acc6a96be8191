"""Compiled engine for exact gradient methods on any loss.

One kernel advances a chunk of steps of one of five update rules and records loss,
gradient norm, top-k sharpness and (optionally) the iterates at a stride. The wrapper in
``stabsim.maps.gd`` calls it chunk by chunk, so Ctrl-C and progress bars work between
chunks; all state needed to continue lives in the arrays passed in.
"""

import numpy as np

from .._jit import jit
from .._lanczos import top_eigenpair
from .._linalg import add_gram, dot
from .._status import Status
from ..losses._dispatch import grad as loss_grad
from ..losses._dispatch import value as loss_value
from ..losses._dispatch import value_grad_hess as loss_value_grad_hess

GD = 0  #: θ' = θ − η∇L(θ)
HEAVY_BALL = 1  #: θ' = θ − η∇L(θ) + β(θ − θ_prev)
NESTEROV = 2  #: b' = βb + ∇L(θ);  θ' = θ − η(∇L(θ) + βb')   (PyTorch form)
NORMALISED = 3  #: θ' = θ − η∇L(θ)/|∇L(θ)|
SQRT_LOSS = 4  #: θ' = θ − η∇sqrt(L − L_min) = θ − η∇L/(2 sqrt(L − L_min))

_OK = int(Status.OK)
_DIVERGED = int(Status.DIVERGED)
_NONFINITE = int(Status.NONFINITE)
_ZERO_GRADIENT = int(Status.ZERO_GRADIENT)


@jit(fastmath=True)
def _all_finite(a):
    """Whether every entry of the 2-D array ``a`` is finite (x − x is 0 only for finite x)."""
    s = 0.0
    for i in range(a.shape[0]):
        row = a[i]
        for j in range(row.shape[0]):
            s += row[j] - row[j]
    return s == 0.0


@jit
def _measure(hess_buf, factor, evec, n_top, lanczos_dim, lanczos_tol, top_out):
    """Top ``n_top`` eigenvalues of the Hessian ``hess_buf + factorᵀ factor``, descending.

    The caller forms the Hessian: a nested kernel must not call the loss, or
    :func:`stabsim.losses.specialise` could not swap in a user-defined loss.

    One eigenvalue with ``lanczos_dim > 0``: warm-started Lanczos, with the factor applied
    as thin products (``evec`` is both the start and the result, so the sign stays
    consistent along a trajectory). Otherwise: ``numpy.linalg.eigh`` of the dense sum.
    The eigenvalues go to ``top_out``; returns the Lanczos residual (0 for eigh), or NaN when
    the Hessian has a non-finite entry (Lanczos reports it; LAPACK would raise on it).
    """
    if n_top == 1 and lanczos_dim > 0:
        prev = evec.copy()
        lam, residual, _ = top_eigenpair(hess_buf, factor, prev, lanczos_dim, lanczos_tol, evec)
        top_out[0] = lam
        return residual
    if not (_all_finite(hess_buf) and _all_finite(factor)):
        return np.nan
    add_gram(hess_buf, factor)
    values, vectors = np.linalg.eigh(hess_buf)
    d = values.shape[0]
    for i in range(n_top):
        top_out[i] = values[d - 1 - i]
    sign = 1.0 if dot(vectors[:, d - 1], evec) >= 0.0 else -1.0
    evec[:] = sign * vectors[:, d - 1]
    return 0.0


@jit
def gd_chunk(
    kind, p, rule, eta, momentum, loss_min,
    theta, buf, evec, start, n_steps, finish, stride,
    n_top, lanczos_dim, lanczos_tol, factor_rows, divergence_norm, crossing_threshold,
    crossing, rec_loss, rec_gnorm, rec_sharp, rec_theta, rec_residual,
):
    """Advance ``n_steps`` steps from step ``start``; record every ``stride``-th step.

    The state at step t is recorded (into row t // stride) before the update of step t,
    so row 0 is the start. With ``finish`` the state after the last update is evaluated
    and recorded too (the last chunk of a run). ``theta`` and ``buf`` (the previous step
    for heavy ball, the momentum buffer b for Nesterov) are updated in place.
    ``factor_rows`` is the loss's :attr:`~stabsim.losses.Loss.factor_rows`: the Hessian
    arrives as a dense part plus FᵀF with F of that many rows.

    Crossing search: while ``crossing[0] < 0`` and ``crossing_threshold > 0`` the top
    eigenvalue is computed every step; at the first t with S(θ_t) ≥ threshold,
    ``crossing[0] = t`` and ``crossing[1:]`` holds θ_{t−1} then θ_t (θ_{t-1} = θ_t at t = 0).

    Returns
    -------
    status : int
        ``Status`` code (OK, DIVERGED, NONFINITE or ZERO_GRADIENT).
    steps_done : int
        Updates applied in this chunk (a failing state is neither recorded nor updated).
    """
    d = theta.shape[0]
    g = np.empty(d)
    hess_buf = np.empty((d, d))
    factor = np.empty((factor_rows, d))  # the Hessian is hess_buf + factorᵀ factor
    top = np.empty(max(n_top, 1))
    prev_theta = theta.copy()
    record_iterates = rec_theta.shape[0] > 0
    for k in range(n_steps + 1 if finish else n_steps):
        t = start + k
        searching = crossing[0] < 0 and crossing_threshold > 0.0
        recording = t % stride == 0
        measuring = recording or searching
        if measuring:
            loss = loss_value_grad_hess(kind, theta, p, g, hess_buf, factor)
        else:
            loss = loss_value(kind, theta, p)
            loss_grad(kind, theta, p, g)
        gnorm = np.sqrt(dot(g, g))
        if not (np.isfinite(loss) and np.isfinite(gnorm)):
            return _NONFINITE, k
        if np.sqrt(dot(theta, theta)) > divergence_norm:
            return _DIVERGED, k
        if measuring:
            residual = _measure(hess_buf, factor, evec, n_top, lanczos_dim, lanczos_tol, top)
            if not np.isfinite(residual):
                return _NONFINITE, k
            if searching and top[0] >= crossing_threshold:
                crossing[0] = t
                crossing[1:d + 1] = prev_theta if t > 0 else theta
                crossing[d + 1:] = theta
            if recording:
                row = t // stride
                rec_loss[row] = loss
                rec_gnorm[row] = gnorm
                rec_residual[row] = residual
                for i in range(n_top):
                    rec_sharp[row, i] = top[i]
                if record_iterates:
                    rec_theta[row] = theta
        if k == n_steps:
            break
        prev_theta[:] = theta
        if rule == GD:
            theta -= eta * g
        elif rule == HEAVY_BALL:
            step = momentum * (theta - buf) - eta * g
            buf[:] = theta
            theta += step
        elif rule == NESTEROV:
            buf[:] = momentum * buf + g
            theta -= eta * (g + momentum * buf)
        elif rule == NORMALISED:
            if gnorm == 0.0:
                return _ZERO_GRADIENT, k
            theta -= (eta / gnorm) * g
        else:
            gap = loss - loss_min
            if gap <= 0.0 or gnorm == 0.0:
                return _ZERO_GRADIENT, k
            theta -= (eta / (2.0 * np.sqrt(gap))) * g
    return _OK, n_steps
