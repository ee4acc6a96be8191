"""Scalar network L(w) = ½ (∏_i w_i − 1)² of any depth d = len(w) (no parameters, ``p`` empty).

With P = ∏ w_i, r = P − 1, g_i = ∏_{j≠i} w_j and G_ij = ∏_{l∉{i,j}} w_l (i ≠ j; G_ii = 0):

- ∇L = r g
- ∇²L = g gᵀ + r G
- ∇³L[u, v]_i = g_i (uᵀGv) + (g·u)(Gv)_i + (Gu)_i (g·v) + r D²g_i[u, v]

No kernel divides by a weight, so zero weights are exact. Directional derivatives of the
products are carried as (hyper-)dual numbers: multiplying a running product by
(w_l + s u_l + t v_l) gives its value, its s- and t-derivatives and its mixed st-derivative
at s = t = 0 in O(1) per factor. hvp and d3 cost O(d²), hess O(d²).
"""

import numpy as np

from ..._jit import jit


@jit
def value(theta, p):
    """½ (∏ w_i − 1)²."""
    prod = 1.0
    for i in range(theta.shape[0]):
        prod *= theta[i]
    r = prod - 1.0
    return 0.5 * r * r


@jit
def grad(theta, p, out):
    """out ← r g: prefix products of w are stored in ``out``, then scaled by suffix products."""
    d = theta.shape[0]
    acc = 1.0
    for i in range(d):
        out[i] = acc
        acc *= theta[i]
    acc -= 1.0  # r = P − 1 seeds the suffix product
    for i in range(d - 1, -1, -1):
        out[i] *= acc
        acc *= theta[i]


@jit
def hvp(theta, p, v, out):
    """out ← g (g·v) + r G v, with (Gv)_i the v-derivative of g_i."""
    d = theta.shape[0]
    prod = 1.0
    dprod = 0.0  # g·v, the v-derivative of P
    for k in range(d):
        dprod = dprod * theta[k] + prod * v[k]
        prod *= theta[k]
    r = prod - 1.0
    for i in range(d):
        a = 1.0
        da = 0.0
        for k in range(d):
            if k != i:
                da = da * theta[k] + a * v[k]
                a *= theta[k]
        out[i] = a * dprod + r * da


@jit
def hess(theta, p, out):
    """out ← g gᵀ + r G, with G_ij = pre_i · (∏_{i<l<j} w_l) · suf_{j+1} for i < j."""
    d = theta.shape[0]
    pre = np.empty(d + 1)  # pre[i] = ∏_{l<i} w_l
    suf = np.empty(d + 1)  # suf[i] = ∏_{l≥i} w_l
    pre[0] = 1.0
    for i in range(d):
        pre[i + 1] = pre[i] * theta[i]
    suf[d] = 1.0
    for i in range(d - 1, -1, -1):
        suf[i] = suf[i + 1] * theta[i]
    r = pre[d] - 1.0
    for i in range(d):
        gi = pre[i] * suf[i + 1]
        out[i, i] = gi * gi
        mid = 1.0
        for j in range(i + 1, d):
            h = gi * pre[j] * suf[j + 1] + r * pre[i] * mid * suf[j + 1]
            out[i, j] = h
            out[j, i] = h
            mid *= theta[j]


@jit
def d3(theta, p, u, v, out):
    """out ← g (uᵀGv) + (g·u) Gv + (g·v) Gu + r D²g[u, v], by hyper-dual products."""
    d = theta.shape[0]
    prod = 1.0
    pu = 0.0  # g·u
    pv = 0.0  # g·v
    puv = 0.0  # uᵀGv
    for k in range(d):
        w = theta[k]
        puv = puv * w + pu * v[k] + pv * u[k]
        pu = pu * w + prod * u[k]
        pv = pv * w + prod * v[k]
        prod *= w
    r = prod - 1.0
    for i in range(d):
        a = 1.0
        au = 0.0
        av = 0.0
        auv = 0.0
        for k in range(d):
            if k != i:
                w = theta[k]
                auv = auv * w + au * v[k] + av * u[k]
                au = au * w + a * u[k]
                av = av * w + a * v[k]
                a *= w
        out[i] = a * puv + pu * av + pv * au + r * auv
