"""Second-order regression model of Agarwala et al.

z(θ) = z₀ + Jθ + ½ Q[θ, θ] ∈ R^n for θ ∈ R^d, with Q_k symmetric (d × d), and
L(θ) = |z(θ)|²/(2n). Packed as ``p = [n, z0 (n), J (n × d, row-major), Q (n × d × d, [k][i][j])]``.

With J(θ) = J + Qθ (rows J(θ)_k = J_k + Q_k θ):

- ∇L = J(θ)ᵀ z / n
- ∇²L = (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n
- ∇³L[u, v] = Σ_k [ J(θ)_k (uᵀQ_k v) + (J(θ)_k·u) Q_k v + (J(θ)_k·v) Q_k u ]/n

Every kernel sweeps each d × d block Q_k in memory order, once or twice while it is still in
cache (O(n d²) in all). value, hvp and d3 allocate nothing (they re-read Q_k instead of storing
Q_k θ); grad and hess keep one row of J(θ) in a length-d scratch array. Loops are written out
in full and read rows of Q_k through slices (a view: no allocation): Numba vectorises neither a
loop behind a helper call nor one indexing ``p[offset + j]``, whose offset it cannot prove ≥ 0.
No kernel tests for NaN, so all use the reassociation/contraction subset of fastmath.
"""

import numpy as np

from ..._jit import jit


@jit(fastmath=True)
def value(theta, p):
    """|z(θ)|²/(2n) with z_k = z0_k + Σ_i θ_i (J_ki + ½ (Q_k θ)_i)."""
    n = int(p[0])
    d = theta.shape[0]
    total = 0.0
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        zk = p[1 + k]
        for i in range(d):
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            zk += theta[i] * (p[oj + i] + 0.5 * row)
        total += zk * zk
    return 0.5 * total / n


@jit(fastmath=True)
def grad(theta, p, out):
    """out ← Σ_k z_k (J_k + Q_k θ)/n (Q_k θ is kept in a length-d scratch array)."""
    n = int(p[0])
    d = theta.shape[0]
    qt = np.empty(d)
    out[:] = 0.0
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        zk = p[1 + k]
        for i in range(d):
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            qt[i] = row
            zk += theta[i] * (p[oj + i] + 0.5 * row)
        c = zk / n
        for i in range(d):
            out[i] += c * (p[oj + i] + qt[i])


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
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            zk += theta[i] * (p[oj + i] + 0.5 * row)
            sk += v[i] * (p[oj + i] + row)
        for i in range(d):
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            acc = 0.0
            for j in range(d):
                acc += q[j] * (sk * theta[j] + zk * v[j])
            out[i] += (sk * p[oj + i] + acc) / n


@jit(fastmath=True)
def value_grad_hess(theta, p, grad_out, out):
    """L(θ), grad_out ← ∇L and out ← (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n in one pass over Q.

    z_k, the row J(θ)_k and the block Q_k are all that residual k contributes, so each Q_k
    is read once while it is in cache. Every Hessian entry is accumulated (full rows vectorise
    better than triangles), then the upper triangle is scaled and mirrored so the result is
    exactly symmetric.
    """
    n = int(p[0])
    d = theta.shape[0]
    jt = np.empty(d)  # row k of J(θ)
    out[:, :] = 0.0
    grad_out[:] = 0.0
    total = 0.0
    for k in range(n):
        oj = 1 + n + k * d
        oq = 1 + n + n * d + k * d * d
        zk = p[1 + k]
        for i in range(d):
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            for j in range(d):
                row += q[j] * theta[j]
            jt[i] = p[oj + i] + row
            zk += theta[i] * (p[oj + i] + 0.5 * row)
        total += zk * zk
        for i in range(d):  # Q_k is still in cache from the pass above
            a = jt[i]
            grad_out[i] += zk * a
            q = p[oq + i * d : oq + (i + 1) * d]
            o = out[i]
            for j in range(d):
                o[j] += zk * q[j] + a * jt[j]
    for i in range(d):
        grad_out[i] /= n
        for j in range(i, d):
            h = out[i, j] / n
            out[i, j] = h
            out[j, i] = h
    return 0.5 * total / n


@jit(fastmath=True)
def hess(theta, p, out):
    """out ← (J(θ)ᵀJ(θ) + Σ_k z_k Q_k)/n (through :func:`value_grad_hess`)."""
    value_grad_hess(theta, p, np.empty(theta.shape[0]), out)


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
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            rowv = 0.0
            for j in range(d):
                row += q[j] * theta[j]
                rowv += q[j] * v[j]
            ju += u[i] * (p[oj + i] + row)
            jv += v[i] * (p[oj + i] + row)
            quv += u[i] * rowv
        for i in range(d):
            q = p[oq + i * d : oq + (i + 1) * d]  # row i of Q_k
            row = 0.0
            acc = 0.0
            for j in range(d):
                row += q[j] * theta[j]
                acc += q[j] * (ju * v[j] + jv * u[j])
            out[i] += ((p[oj + i] + row) * quv + acc) / n
