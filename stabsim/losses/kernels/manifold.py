"""A loss whose minimisers form a known manifold Γ (for the flows of Arora et al.).

θ = (x, z) with x ∈ R^m, z ∈ R^k, and

    L(x, z) = ½ Σ_j h_j(x) w_j²,   w_j = z_j − g_j(x),
    h_j(x) = c_j + ½ Σ_i s_ji (x_i − μ_ji)²,   g_j(x) = ½ xᵀK_j x,

so Γ = {w = 0} = {z = g(x)} (flat when every K_j = 0). Record :class:`ManifoldParams`:
c (k), s (k × m), μ (k × m), K (k × m × m).

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

from typing import NamedTuple

import numpy as np

from ..._jit import jit
from .._protocol import register_family


class ManifoldParams(NamedTuple):
    """Curvature offsets c_j, scales s_ji, centres μ_ji and the matrices K_j."""

    c: np.ndarray
    s: np.ndarray
    mu: np.ndarray
    K: np.ndarray


@jit
def _dot_x(row, x, m):
    """Σ_{i<m} row_i x_i: one row of one K_j against the x-part of ``x``."""
    acc = 0.0
    for i in range(m):
        acc += row[i] * x[i]
    return acc


@jit
def _sizes(p):
    """(m, k)."""
    return p.s.shape[1], p.c.shape[0]


@jit
def _h_w(theta, p, j):
    """(h_j(x), w_j(x, z))."""
    m, k = _sizes(p)
    h = p.c[j]
    xkx = 0.0
    for i in range(m):
        dx = theta[i] - p.mu[j, i]
        h += 0.5 * p.s[j, i] * dx * dx
        xkx += theta[i] * _dot_x(p.K[j, i], theta, m)
    return h, theta[m + j] - 0.5 * xkx


@jit
def value(theta, p):
    """½ Σ_j h_j w_j²."""
    k = p.c.shape[0]
    total = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        total += h * w * w
    return 0.5 * total


@jit
def grad(theta, p, out):
    """out ← Σ_j [½ w_j² ∇h_j + h_j w_j ∇w_j]."""
    m, k = _sizes(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        out[m + j] = h * w
        for i in range(m):
            e = p.s[j, i] * (theta[i] - p.mu[j, i])
            g = _dot_x(p.K[j, i], theta, m)
            out[i] += 0.5 * e * w * w - h * w * g


@jit
def hvp(theta, p, v, out):
    """out ← ∇²L v (formula in the module docstring)."""
    m, k = _sizes(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h = p.c[j]
        xkx = 0.0
        gv = 0.0  # G_j·v_x
        dhv = 0.0  # Dh_j[v] = e_j·v_x
        for i in range(m):
            dx = theta[i] - p.mu[j, i]
            s = p.s[j, i]
            g = _dot_x(p.K[j, i], theta, m)
            h += 0.5 * s * dx * dx
            xkx += theta[i] * g
            gv += v[i] * g
            dhv += s * dx * v[i]
        w = theta[m + j] - 0.5 * xkx
        dwv = v[m + j] - gv
        coef = dhv * w + h * dwv
        out[m + j] = coef
        for i in range(m):
            row = p.K[j, i]
            s = p.s[j, i]
            e = s * (theta[i] - p.mu[j, i])
            g = _dot_x(row, theta, m)
            kv = _dot_x(row, v, m)
            out[i] += 0.5 * w * w * s * v[i] + w * dwv * e - coef * g - h * w * kv


@jit
def hess(theta, p, out):
    """out ← ∇²L = Σ_j [½ w_j² ∇²h_j + w_j (∇h_j ∇w_jᵀ + ∇w_j ∇h_jᵀ) + h_j ∇w_j ∇w_jᵀ
    + h_j w_j ∇²w_j]."""
    m, k = _sizes(p)
    g = np.empty(m)
    out[:, :] = 0.0
    for j in range(k):
        h, w = _h_w(theta, p, j)
        for a in range(m):
            g[a] = _dot_x(p.K[j, a], theta, m)
        out[m + j, m + j] = h
        for a in range(m):
            sa = p.s[j, a]
            ea = sa * (theta[a] - p.mu[j, a])
            xz = ea * w - h * g[a]
            out[a, m + j] = xz
            out[m + j, a] = xz
            out[a, a] += 0.5 * sa * w * w
            row = p.K[j, a]
            for b in range(m):
                eb = p.s[j, b] * (theta[b] - p.mu[j, b])
                out[a, b] += h * (g[a] * g[b] - w * row[b]) - w * (ea * g[b] + eb * g[a])


@jit
def d3(theta, p, u, v, out):
    """out ← ∇³L[u, v] (formula in the module docstring)."""
    m, k = _sizes(p)
    for i in range(m):
        out[i] = 0.0
    for j in range(k):
        h = p.c[j]
        xkx = 0.0
        gu = 0.0
        gv = 0.0
        dhu = 0.0
        dhv = 0.0
        d2h = 0.0
        ukv = 0.0  # u_xᵀ K_j v_x = −D²w_j[u, v]
        for i in range(m):
            row = p.K[j, i]
            dx = theta[i] - p.mu[j, i]
            s = p.s[j, i]
            g = _dot_x(row, theta, m)
            h += 0.5 * s * dx * dx
            xkx += theta[i] * g
            gu += u[i] * g
            gv += v[i] * g
            dhu += s * dx * u[i]
            dhv += s * dx * v[i]
            d2h += s * u[i] * v[i]
            ukv += u[i] * _dot_x(row, v, m)
        w = theta[m + j] - 0.5 * xkx
        dwu = u[m + j] - gu
        dwv = v[m + j] - gv
        c1 = d2h * w + dhu * dwv + dhv * dwu - h * ukv
        c2 = dwu * dwv - w * ukv
        c3 = dhv * w + h * dwv
        c4 = dhu * w + h * dwu
        out[m + j] = c1
        for i in range(m):
            row = p.K[j, i]
            s = p.s[j, i]
            e = s * (theta[i] - p.mu[j, i])
            g = _dot_x(row, theta, m)
            ku = _dot_x(row, u, m)
            kv = _dot_x(row, v, m)
            out[i] += -c1 * g + c2 * e - c3 * ku - c4 * kv + w * s * (dwv * u[i] + dwu * v[i])


def dim_of(p) -> int:
    """m + k: θ = (x, z)."""
    return p.s.shape[1] + p.c.shape[0]


FAMILY = register_family(
    ManifoldParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess, dim_of=dim_of,
    shapes={"c": ("k",), "s": ("k", "m"), "mu": ("k", "m"), "K": ("k", "m", "m")},
)
