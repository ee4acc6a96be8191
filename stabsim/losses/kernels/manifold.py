"""A loss whose minimisers form a known manifold Γ (for the flows of Arora et al.).

θ = (x, z) with x ∈ R^m, z ∈ R^k, and

    L(x, z) = ½ Σ_j h_j(x) w_j²,   w_j = z_j − g_j(x),
    h_j(x) = c_j + ½ Σ_i s_ji (x_i − μ_ji)²,   g_j(x) = ½ xᵀK_j x,

so Γ = {w = 0} = {z = g(x)} (flat when every K_j = 0). Packed as
``p = [m, k, c (k), s (k × m), μ (k × m), K (k × m × m, [j][i][l])]``.

Per j, with e_j = ∇h_j = s_j ∘ (x − μ_j), G_j = ∇g_j = K_j x, ∇w_j = (−G_j, e^z_j),
∇²h_j = diag(s_j, 0), ∇²w_j = −diag(K_j, 0), and D·[u] the derivative along u:

- ∇L = Σ_j [½ w_j² ∇h_j + h_j w_j ∇w_j]
- ∇²L v = Σ_j [½ w_j² ∇²h_j v + w_j Dw_j[v] ∇h_j + (Dh_j[v] w_j + h_j Dw_j[v]) ∇w_j
  + h_j w_j ∇²w_j v]
- ∇³L[u, v] = Σ_j [C1 ∇w_j + C2 ∇h_j + C3 ∇²w_j u + C4 ∇²w_j v
  + w_j Dw_j[v] ∇²h_j u + w_j Dw_j[u] ∇²h_j v] with
  C1 = D²h_j[u, v] w_j + Dh_j[u] Dw_j[v] + Dh_j[v] Dw_j[u] + h_j D²w_j[u, v],
  C2 = Dw_j[u] Dw_j[v] + w_j D²w_j[u, v], C3 = Dh_j[v] w_j + h_j Dw_j[v],
  C4 = Dh_j[u] w_j + h_j Dw_j[u]

(the third derivatives of h and g vanish). Cost O(k m²); only hess allocates (G_j, size m).
"""

import numpy as np

from ..._jit import jit


@jit
def _dot_x(p, base, x, m):
    """Σ_{i<m} p[base + i] x_i: one row of one K_j against the x-part of ``x``."""
    acc = 0.0
    for i in range(m):
        acc += p[base + i] * x[i]
    return acc


@jit
def _offsets(p):
    """(m, k, offset of s, offset of μ, offset of K)."""
    m = int(p[0])
    k = int(p[1])
    return m, k, 2 + k, 2 + k + k * m, 2 + k + 2 * k * m


@jit
def _h_w(theta, p, j):
    """(h_j(x), w_j(x, z))."""
    m, k, os, om, ok = _offsets(p)
    h = p[2 + j]
    xkx = 0.0
    for i in range(m):
        dx = theta[i] - p[om + j * m + i]
        h += 0.5 * p[os + j * m + i] * dx * dx
        xkx += theta[i] * _dot_x(p, ok + (j * m + i) * m, theta, m)
    return h, theta[m + j] - 0.5 * xkx


@jit
def value(theta, p):
    """½ Σ_j h_j w_j²."""
    k = int(p[1])
    total = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        total += h * w * w
    return 0.5 * total


@jit
def grad(theta, p, out):
    """out ← Σ_j [½ w_j² ∇h_j + h_j w_j ∇w_j]."""
    m, k, os, om, ok = _offsets(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        out[m + j] = h * w
        for i in range(m):
            e = p[os + j * m + i] * (theta[i] - p[om + j * m + i])
            g = _dot_x(p, ok + (j * m + i) * m, theta, m)
            out[i] += 0.5 * e * w * w - h * w * g


@jit
def hvp(theta, p, v, out):
    """out ← ∇²L v (formula in the module docstring)."""
    m, k, os, om, ok = _offsets(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h = p[2 + j]
        xkx = 0.0
        gv = 0.0  # G_j·v_x
        dhv = 0.0  # Dh_j[v] = e_j·v_x
        for i in range(m):
            dx = theta[i] - p[om + j * m + i]
            s = p[os + j * m + i]
            g = _dot_x(p, ok + (j * m + i) * m, theta, m)
            h += 0.5 * s * dx * dx
            xkx += theta[i] * g
            gv += v[i] * g
            dhv += s * dx * v[i]
        w = theta[m + j] - 0.5 * xkx
        dwv = v[m + j] - gv
        coef = dhv * w + h * dwv
        out[m + j] = coef
        for i in range(m):
            base = ok + (j * m + i) * m
            s = p[os + j * m + i]
            e = s * (theta[i] - p[om + j * m + i])
            g = _dot_x(p, base, theta, m)
            kv = _dot_x(p, base, v, m)
            out[i] += 0.5 * w * w * s * v[i] + w * dwv * e - coef * g - h * w * kv


@jit
def hess(theta, p, out):
    """out ← ∇²L = Σ_j [½ w_j² ∇²h_j + w_j (∇h_j ∇w_jᵀ + ∇w_j ∇h_jᵀ) + h_j ∇w_j ∇w_jᵀ
    + h_j w_j ∇²w_j]."""
    m, k, os, om, ok = _offsets(p)
    g = np.empty(m)
    out[:, :] = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        for a in range(m):
            g[a] = _dot_x(p, ok + (j * m + a) * m, theta, m)
        out[m + j, m + j] = h
        for a in range(m):
            sa = p[os + j * m + a]
            ea = sa * (theta[a] - p[om + j * m + a])
            xz = ea * w - h * g[a]
            out[a, m + j] = xz
            out[m + j, a] = xz
            out[a, a] += 0.5 * sa * w * w
            base = ok + (j * m + a) * m
            for b in range(m):
                eb = p[os + j * m + b] * (theta[b] - p[om + j * m + b])
                out[a, b] += h * (g[a] * g[b] - w * p[base + b]) - w * (ea * g[b] + eb * g[a])


@jit
def d3(theta, p, u, v, out):
    """out ← ∇³L[u, v] (formula in the module docstring)."""
    m, k, os, om, ok = _offsets(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h = p[2 + j]
        xkx = 0.0
        gu = 0.0
        gv = 0.0
        dhu = 0.0
        dhv = 0.0
        d2h = 0.0
        ukv = 0.0  # u_xᵀ K_j v_x = −D²w_j[u, v]
        for i in range(m):
            base = ok + (j * m + i) * m
            dx = theta[i] - p[om + j * m + i]
            s = p[os + j * m + i]
            g = _dot_x(p, base, theta, m)
            h += 0.5 * s * dx * dx
            xkx += theta[i] * g
            gu += u[i] * g
            gv += v[i] * g
            dhu += s * dx * u[i]
            dhv += s * dx * v[i]
            d2h += s * u[i] * v[i]
            ukv += u[i] * _dot_x(p, base, v, m)
        w = theta[m + j] - 0.5 * xkx
        dwu = u[m + j] - gu
        dwv = v[m + j] - gv
        c1 = d2h * w + dhu * dwv + dhv * dwu - h * ukv
        c2 = dwu * dwv - w * ukv
        c3 = dhv * w + h * dwv
        c4 = dhu * w + h * dwu
        out[m + j] = c1
        for i in range(m):
            base = ok + (j * m + i) * m
            s = p[os + j * m + i]
            e = s * (theta[i] - p[om + j * m + i])
            g = _dot_x(p, base, theta, m)
            ku = _dot_x(p, base, u, m)
            kv = _dot_x(p, base, v, m)
            out[i] += -c1 * g + c2 * e - c3 * ku - c4 * kv + w * s * (dwv * u[i] + dwu * v[i])
