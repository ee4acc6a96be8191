"""Second-order regression model of Agarwala et al.

z(θ) = z₀ + Jθ + ½ Q[θ, θ] ∈ R^n for θ ∈ R^d, with Q_k symmetric (d × d), and
L(θ) = |z(θ)|²/(2n). Record :class:`RegressionParams`: z0 (n), J (n × d), Q (n × d × d) and
Q_norms (n), the Frobenius norms ‖Q_k‖_F.

With J(θ) = J + Qθ (rows J(θ)_k = J_k + Q_k θ):

- ∇L = J(θ)ᵀ z / n
- ∇²L = (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n
- ∇³L[u, v] = Σ_k [ J(θ)_k (uᵀQ_k v) + (J(θ)_k·u) Q_k v + (J(θ)_k·v) Q_k u ]/n

Every kernel sweeps each d × d block Q_k in memory order, once or twice while it is still in
cache (O(n d²) in all). value, hvp and d3 allocate nothing (they re-read Q_k instead of storing
Q_k θ); value_grad (and grad) keeps one row of J(θ) in a length-d scratch array, one pass over Q
for both (the generic value_grad would make two), and hessian_parts all of J(θ).
Loops are written out
in full and read rows of Q_k as views (no allocation): Numba does not vectorise a loop behind
a helper call.
No kernel tests for NaN, so all use the reassociation/contraction subset of fastmath.
"""

from typing import NamedTuple

import numpy as np

from ..._jit import jit
from ..._linalg import add_gram
from .._protocol import register_family


class RegressionParams(NamedTuple):
    """The residual z₀ at θ = 0, the linear part J, the symmetric quadratic part Q and the
    Frobenius norms ‖Q_k‖_F of its blocks, ``q_norms(Q)`` (:func:`q_norms`), which bound
    the 2-norm of the dense part of the Hessian in :func:`hessian_parts_within`: the
    engines trust them, as they trust Q to be symmetric (``QuadraticRegression`` computes
    the norms and checks the symmetry)."""

    z0: np.ndarray
    J: np.ndarray
    Q: np.ndarray
    Q_norms: np.ndarray


def q_norms(Q) -> np.ndarray:
    """‖Q_k‖_F for each block Q_k of ``Q`` (shape (n, d, d)): the record's ``Q_norms``."""
    return np.sqrt(np.einsum("kij,kij->k", Q, Q))


@jit(fastmath=True)
def value(theta, p):
    """|z(θ)|²/(2n) with z_k = z0_k + Σ_i θ_i (J_ki + ½ (Q_k θ)_i)."""
    n = p.z0.shape[0]
    d = theta.shape[0]
    total = 0.0
    for k in range(n):
        jr = p.J[k]
        qk = p.Q[k]
        zk = p.z0[k]
        for i in range(d):
            q = qk[i]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            zk += theta[i] * (jr[i] + 0.5 * row)
        total += zk * zk
    return 0.5 * total / n


@jit(fastmath=True)
def value_grad(theta, p, out):
    """L(θ) = |z|²/(2n) and out ← Σ_k z_k (J_k + Q_k θ)/n in one pass over Q (Q_k θ is kept in
    a length-d scratch array; z_k comes with it)."""
    n = p.z0.shape[0]
    d = theta.shape[0]
    qt = np.empty(d)
    out[:] = 0.0
    total = 0.0
    for k in range(n):
        jr = p.J[k]
        qk = p.Q[k]
        zk = p.z0[k]
        for i in range(d):
            q = qk[i]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            qt[i] = row
            zk += theta[i] * (jr[i] + 0.5 * row)
        total += zk * zk
        c = zk / n
        for i in range(d):
            out[i] += c * (jr[i] + qt[i])
    return 0.5 * total / n


@jit(fastmath=True)
def grad(theta, p, out):
    """out ← Σ_k z_k (J_k + Q_k θ)/n (:func:`value_grad` without the value)."""
    value_grad(theta, p, out)


@jit(fastmath=True)
def hvp(theta, p, v, out):
    """out ← Σ_k [s_k J_k + Q_k (s_k θ + z_k v)]/n with s_k = J(θ)_k·v."""
    n = p.z0.shape[0]
    d = theta.shape[0]
    out[:] = 0.0
    for k in range(n):
        jr = p.J[k]
        qk = p.Q[k]
        zk = p.z0[k]
        sk = 0.0
        for i in range(d):
            q = qk[i]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            zk += theta[i] * (jr[i] + 0.5 * row)
            sk += v[i] * (jr[i] + row)
        for i in range(d):
            q = qk[i]  # row i of Q_k
            acc = 0.0
            for j in range(d):
                acc += q[j] * (sk * theta[j] + zk * v[j])
            out[i] += (sk * jr[i] + acc) / n


@jit(fastmath=True, kernel_only=True)
def _jacobian(theta, p, jac):
    """jac[k] ← J(θ)_k = J_k + Q_k θ for every k.

    Four rows of Q_k are dotted with θ at a time, so each load of θ serves four of them.
    """
    n = p.z0.shape[0]
    d = theta.shape[0]
    for k in range(n):
        jr = p.J[k]
        qk = p.Q[k]
        jk = jac[k]
        i = 0
        while i + 4 <= d:
            q1 = qk[i]
            q2 = qk[i + 1]
            q3 = qk[i + 2]
            q4 = qk[i + 3]
            s1 = s2 = s3 = s4 = 0.0
            for j in range(d):
                t = theta[j]
                s1 += q1[j] * t
                s2 += q2[j] * t
                s3 += q3[j] * t
                s4 += q4[j] * t
            jk[i] = jr[i] + s1
            jk[i + 1] = jr[i + 1] + s2
            jk[i + 2] = jr[i + 2] + s3
            jk[i + 3] = jr[i + 3] + s4
            i += 4
        for rest in range(i, d):
            q = qk[rest]
            s = 0.0
            for j in range(d):
                s += q[j] * theta[j]
            jk[rest] = jr[rest] + s


@jit(fastmath=True, kernel_only=True)
def _weighted_q(p, w, out):
    """The upper triangle of out ← Σ_k w_k Q_k (Q_k is exactly symmetric:
    :func:`stabsim._validate.symmetric`), in passes over the rows that each add five blocks
    Q_k: half of Q is read, and the lower triangle is left as it was (the protocol's
    ``hessian_parts`` gives the dense part by its upper triangle; copying it down took
    1.2 µs at d = 100).

    The first pass stores, the others add; a last pass short of five blocks repeats the last
    block at weight 0, which adds exact zeros (Q is finite). A pass costs about as much as its
    loop over the rows, whatever it adds, so fewer passes are faster: at d = 100, n = 10 two
    passes took 6.6 µs where five (a pass of zeros, then four, four, one and one block) took
    9.3 µs, each with the copy to the lower triangle then made; from n = 1 to 16 it was faster
    except at n = 16 (four passes, 12.2 against 11.4 µs).
    """
    n = w.shape[0]
    d = out.shape[0]
    Q = p.Q
    last = n - 1
    for k in range(0, n, 5):
        k1, k2, k3, k4 = min(k + 1, last), min(k + 2, last), min(k + 3, last), min(k + 4, last)
        w0 = w[k]
        w1 = w[k1] if k + 1 <= last else 0.0
        w2 = w[k2] if k + 2 <= last else 0.0
        w3 = w[k3] if k + 3 <= last else 0.0
        w4 = w[k4] if k + 4 <= last else 0.0
        for i in range(d):
            acc = out[i, i:]
            q0, q1, q2 = Q[k, i, i:], Q[k1, i, i:], Q[k2, i, i:]
            q3, q4 = Q[k3, i, i:], Q[k4, i, i:]
            if k == 0:
                for j in range(acc.shape[0]):
                    acc[j] = w0 * q0[j] + w1 * q1[j] + w2 * q2[j] + w3 * q3[j] + w4 * q4[j]
            else:
                for j in range(acc.shape[0]):
                    acc[j] += w0 * q0[j] + w1 * q1[j] + w2 * q2[j] + w3 * q3[j] + w4 * q4[j]


@jit(fastmath=True)
def hessian_parts(theta, p, grad_out, out, factor_out):
    """L(θ), grad_out ← ∇L(θ), and ∇²L(θ) as ``out + factor_outᵀ factor_out``.

    out ← Σ_k z_k Q_k / n, its upper triangle only (the lower one is left as it was), and
    factor_out ← J(θ)/√n, the Gauss–Newton factor (shape (n, d)). Two passes over Q:
    J(θ) = J + Qθ (which gives z and ∇L = J(θ)ᵀz/n), then the z-weighted sum of the blocks'
    upper triangles. Leaving J(θ)ᵀJ(θ) as a factor saves a third O(n d²) pass: a
    Hessian-vector product needs only O(n d) more from it.
    """
    weights = np.empty(p.z0.shape[0])
    loss = _gauss_newton_part(theta, p, grad_out, factor_out, weights)
    _weighted_q(p, weights, out)
    return loss


@jit(fastmath=True)
def hessian_parts_within(theta, p, grad_out, out, factor_out, allowance):
    """:func:`hessian_parts`, leaving the dense part W = Σ_k z_k Q_k / n out (``out``
    untouched) where its bound

        ‖W‖₂ ≤ ‖W‖_F ≤ b = Σ_k |z_k| ‖Q_k‖_F / n

    is below ``allowance``; returns (L(θ), b) then, and (L(θ), −1) where it formed W. At a
    zero-loss minimiser of an over-parameterised model z = 0, so W vanishes and a step near
    one makes the first pass over Q only (one of the two)."""
    n = p.z0.shape[0]
    weights = np.empty(n)
    loss = _gauss_newton_part(theta, p, grad_out, factor_out, weights)
    bound = 0.0
    for k in range(n):
        bound += abs(weights[k]) * p.Q_norms[k]
    if bound < allowance:
        return loss, bound
    _weighted_q(p, weights, out)
    return loss, -1.0


@jit(fastmath=True, kernel_only=True)
def _gauss_newton_part(theta, p, grad_out, factor_out, weights):
    """L(θ), grad_out ← ∇L(θ), factor_out ← J(θ)/√n and weights ← z/n: the pass of
    :func:`hessian_parts` over Q for J(θ) = J + Qθ, and what follows from it in O(n d)."""
    n = p.z0.shape[0]
    d = theta.shape[0]
    _jacobian(theta, p, factor_out)
    total = 0.0
    for k in range(n):
        jr = p.J[k]
        jk = factor_out[k]
        zk = p.z0[k]
        for i in range(d):  # z_k = z0_k + θ·(J_k + J(θ)_k)/2
            zk += 0.5 * theta[i] * (jr[i] + jk[i])
        total += zk * zk
        weights[k] = zk / n
    grad_out[:] = 0.0
    scale = 1.0 / np.sqrt(n)
    for k in range(n):
        wk = weights[k]
        jk = factor_out[k]
        for i in range(d):
            grad_out[i] += wk * jk[i]
            jk[i] *= scale  # the factor J(θ)/√n, in the pass that reads J(θ) for ∇L
    return 0.5 * total / n


@jit(fastmath=True)
def hess(theta, p, out):
    """out ← (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n, exactly symmetric (:func:`hessian_parts`' upper
    triangle plus the factor's Gram matrix, then copied below the diagonal)."""
    d = theta.shape[0]
    factor = np.empty((p.z0.shape[0], d))
    hessian_parts(theta, p, np.empty(d), out, factor)
    add_gram(out, factor)
    for i in range(d):
        for j in range(i + 1, d):
            out[j, i] = out[i, j]


@jit(fastmath=True)
def d3(theta, p, u, v, out):
    """out ← Σ_k [J(θ)_k (uᵀQ_k v) + Q_k ((J(θ)_k·u) v + (J(θ)_k·v) u)]/n."""
    n = p.z0.shape[0]
    d = theta.shape[0]
    out[:] = 0.0
    for k in range(n):
        jr = p.J[k]
        qk = p.Q[k]
        ju = 0.0
        jv = 0.0
        quv = 0.0
        for i in range(d):
            q = qk[i]  # row i of Q_k
            row = 0.0
            rowv = 0.0
            for j in range(d):
                row += q[j] * theta[j]
                rowv += q[j] * v[j]
            ju += u[i] * (jr[i] + row)
            jv += v[i] * (jr[i] + row)
            quv += u[i] * rowv
        for i in range(d):
            q = qk[i]  # row i of Q_k
            row = 0.0
            acc = 0.0
            for j in range(d):
                row += q[j] * theta[j]
                acc += q[j] * (ju * v[j] + jv * u[j])
            out[i] += ((jr[i] + row) * quv + acc) / n


@jit
def subset(p, indices):
    """The model on the residuals ``indices``: z0, J and Q restricted to those rows.

    Its loss is |z_B(θ)|²/(2|B|) = (1/|B|) Σ_{k∈B} ℓ_k with ℓ_k = z_k(θ)²/2, so L is the
    mean of the N = n per-residual losses ℓ_k (docs/stochastic.md).
    """
    return RegressionParams(p.z0[indices], p.J[indices], p.Q[indices], p.Q_norms[indices])


def examples(p) -> int:
    """N = n: the loss is the mean of the n per-residual losses z_k²/2."""
    return p.z0.shape[0]


def factor_rows(p) -> int:
    """n: ``hessian_parts`` leaves the Gauss–Newton factor J(θ)/√n out of the dense part."""
    return p.z0.shape[0]


# One Hessian-vector product costs a pass over Q, as much as forming Σ_k z_k Q_k: engines form
# the dense part once per step and run Lanczos on it (2.5-4.7x faster at d = 100-1000).
FAMILY = register_family(
    RegressionParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess, value_grad=value_grad,
    hessian_parts=hessian_parts, hessian_parts_within=hessian_parts_within,
    factor_rows=factor_rows, prefers_dense=True, subset=subset, examples=examples,
    shapes={"z0": ("n",), "J": ("n", "d"), "Q": ("n", "d", "d"), "Q_norms": ("n",)},
)
