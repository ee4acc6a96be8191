"""Second-order regression model of Agarwala et al.

z(θ) = z₀ + Jθ + ½ Q[θ, θ] ∈ R^n for θ ∈ R^d, with Q_k symmetric (d × d), and
L(θ) = |z(θ)|²/(2n). Packed as ``p = [n, z0 (n), J (n × d, row-major), Q (n × d × d, [k][i][j])]``.

With J(θ) = J + Qθ (rows J(θ)_k = J_k + Q_k θ):

- ∇L = J(θ)ᵀ z / n
- ∇²L = (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n
- ∇³L[u, v] = Σ_k [ J(θ)_k (uᵀQ_k v) + (J(θ)_k·u) Q_k v + (J(θ)_k·v) Q_k u ]/n

Every kernel sweeps Q once or twice in memory order (O(n d²)). value, grad, hvp and d3
allocate nothing (they re-read each d × d block Q_k while it is still in cache instead of
storing Q_k θ); hess keeps J(θ) and z in scratch arrays. No kernel tests for NaN, so all use
the reassociation/contraction subset of fastmath.
"""

import numpy as np

from ..._jit import jit


@jit(fastmath=True)
def _row_dot(p, base, x):
    """Σ_j p[base + j] x_j (one row of one Q_k against x)."""
    acc = 0.0
    for j in range(x.shape[0]):
        acc += p[base + j] * x[j]
    return acc


@jit(fastmath=True)
def _residual(theta, p, k):
    """z_k(θ) = z0_k + Σ_i θ_i (J_ki + ½ (Q_k θ)_i)."""
    n = int(p[0])
    d = theta.shape[0]
    oj = 1 + n + k * d
    oq = 1 + n + n * d + k * d * d
    zk = p[1 + k]
    for i in range(d):
        zk += theta[i] * (p[oj + i] + 0.5 * _row_dot(p, oq + i * d, theta))
    return zk


@jit(fastmath=True)
def value(theta, p):
    """|z(θ)|²/(2n)."""
    n = int(p[0])
    total = 0.0
    for k in range(n):
        zk = _residual(theta, p, k)
        total += zk * zk
    return 0.5 * total / n


@jit(fastmath=True)
def grad(theta, p, out):
    """out ← Σ_k z_k (J_k + Q_k θ)/n."""
    n = int(p[0])
    d = theta.shape[0]
    out[:] = 0.0
    for k in range(n):
        c = _residual(theta, p, k) / n
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        for i in range(d):
            out[i] += c * (p[oj + i] + _row_dot(p, oq + i * d, theta))


@jit(fastmath=True)
def hvp(theta, p, v, out):
    """out ← Σ_k [s_k J_k + Q_k (s_k θ + z_k v)]/n with s_k = J(θ)_k·v."""
    n = int(p[0])
    d = theta.shape[0]
    out[:] = 0.0
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        zk = p[1 + k]
        sk = 0.0
        for i in range(d):
            row = _row_dot(p, oq + i * d, theta)
            zk += theta[i] * (p[oj + i] + 0.5 * row)
            sk += v[i] * (p[oj + i] + row)
        for i in range(d):
            base = oq + i * d
            acc = 0.0
            for j in range(d):
                acc += p[base + j] * (sk * theta[j] + zk * v[j])
            out[i] += (sk * p[oj + i] + acc) / n


@jit(fastmath=True)
def hess(theta, p, out):
    """out ← (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n, upper triangle accumulated then mirrored."""
    n = int(p[0])
    d = theta.shape[0]
    jt = np.empty(n * d)  # J(θ), row-major
    z = np.empty(n)
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        zk = p[1 + k]
        for i in range(d):
            row = _row_dot(p, oq + i * d, theta)
            jt[k * d + i] = p[oj + i] + row
            zk += theta[i] * (p[oj + i] + 0.5 * row)
        z[k] = zk
    out[:, :] = 0.0
    for k in range(n):
        zk = z[k]
        oq = 1 + n + n * d + k * d * d
        for i in range(d):
            a = jt[k * d + i]
            base = oq + i * d
            for j in range(i, d):
                out[i, j] += zk * p[base + j] + a * jt[k * d + j]
    for i in range(d):
        for j in range(i, d):
            h = out[i, j] / n
            out[i, j] = h
            out[j, i] = h


@jit(fastmath=True)
def d3(theta, p, u, v, out):
    """out ← Σ_k [J(θ)_k (uᵀQ_k v) + Q_k ((J(θ)_k·u) v + (J(θ)_k·v) u)]/n."""
    n = int(p[0])
    d = theta.shape[0]
    out[:] = 0.0
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        ju = 0.0
        jv = 0.0
        quv = 0.0
        for i in range(d):
            base = oq + i * d
            jti = p[oj + i] + _row_dot(p, base, theta)
            ju += u[i] * jti
            jv += v[i] * jti
            quv += u[i] * _row_dot(p, base, v)
        for i in range(d):
            base = oq + i * d
            acc = 0.0
            for j in range(d):
                acc += p[base + j] * (ju * v[j] + jv * u[j])
            jti = p[oj + i] + _row_dot(p, base, theta)
            out[i] += (jti * quv + acc) / n
