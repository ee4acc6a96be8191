"""Scalar network L(w) = ½ (∏_i w_i − 1)² of any depth d = len(w)
(record :class:`ScalarNetworkParams`, empty).

With P = ∏ w_i, r = P − 1, g_i = ∏_{j≠i} w_j and G_ij = ∏_{l∉{i,j}} w_l (i ≠ j; G_ii = 0):

- ∇L = r g
- ∇²L = g gᵀ + r G
- ∇³L[u, v]_i = g_i (uᵀGv) + (g·u)(Gv)_i + (Gu)_i (g·v) + r D²g_i[u, v]

No kernel divides by a weight, so zero weights are exact. Directional derivatives of the
products are carried as (hyper-)dual numbers: multiplying a running product by
(w_l + s u_l + t v_l) gives its value, its s- and t-derivatives and its mixed st-derivative
at s = t = 0 in O(1) per factor; prefix and suffix products give every
∏_{l≠i} at once, so hvp and d3 cost O(d) and hess O(d²).
"""

from typing import NamedTuple

import numpy as np

from ..._jit import jit
from .._protocol import register_family


class ScalarNetworkParams(NamedTuple):
    """No parameters: the depth is the dimension."""


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
def _prefix_suffix_duals(theta, u, v, pre, suf):
    """Hyper-dual prefix and suffix products of the factors (w_l + s u_l + t v_l).

    Row 0 of ``pre[:, i]`` is ∏_{l<i} w_l, rows 1 and 2 its s- and t-derivatives, row 3 its
    mixed st-derivative at s = t = 0; ``suf[:, i]`` the same for ∏_{l≥i}.
    """
    d = theta.shape[0]
    pre[0, 0] = 1.0
    pre[1:, 0] = 0.0
    for i in range(d):
        w = theta[i]
        pre[3, i + 1] = pre[3, i] * w + pre[1, i] * v[i] + pre[2, i] * u[i]
        pre[1, i + 1] = pre[1, i] * w + pre[0, i] * u[i]
        pre[2, i + 1] = pre[2, i] * w + pre[0, i] * v[i]
        pre[0, i + 1] = pre[0, i] * w
    suf[0, d] = 1.0
    suf[1:, d] = 0.0
    for i in range(d - 1, -1, -1):
        w = theta[i]
        suf[3, i] = suf[3, i + 1] * w + suf[1, i + 1] * v[i] + suf[2, i + 1] * u[i]
        suf[1, i] = suf[1, i + 1] * w + suf[0, i + 1] * u[i]
        suf[2, i] = suf[2, i + 1] * w + suf[0, i + 1] * v[i]
        suf[0, i] = suf[0, i + 1] * w


@jit
def hvp(theta, p, v, out):
    """out ← g (g·v) + r G v, with (Gv)_i the v-derivative of g_i, in O(d)."""
    d = theta.shape[0]
    pre = np.empty((4, d + 1))
    suf = np.empty((4, d + 1))
    _prefix_suffix_duals(theta, v, v, pre, suf)
    r = pre[0, d] - 1.0
    gv = pre[1, d]  # g·v, the v-derivative of P
    for i in range(d):
        a = pre[0, i] * suf[0, i + 1]  # g_i = ∏_{l≠i} w_l
        da = pre[1, i] * suf[0, i + 1] + pre[0, i] * suf[1, i + 1]  # (Gv)_i
        out[i] = a * gv + r * da


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
    """out ← g (uᵀGv) + (g·u) Gv + (g·v) Gu + r D²g[u, v], by hyper-dual products in O(d)."""
    d = theta.shape[0]
    pre = np.empty((4, d + 1))
    suf = np.empty((4, d + 1))
    _prefix_suffix_duals(theta, u, v, pre, suf)
    r = pre[0, d] - 1.0
    pu, pv, puv = pre[1, d], pre[2, d], pre[3, d]  # g·u, g·v, uᵀGv
    for i in range(d):
        a0, a1, a2, a3 = pre[0, i], pre[1, i], pre[2, i], pre[3, i]
        b0, b1, b2, b3 = suf[0, i + 1], suf[1, i + 1], suf[2, i + 1], suf[3, i + 1]
        a = a0 * b0
        au = a1 * b0 + a0 * b1
        av = a2 * b0 + a0 * b2
        auv = a3 * b0 + a1 * b2 + a2 * b1 + a0 * b3
        out[i] = a * puv + pu * av + pv * au + r * auv


FAMILY = register_family(
    ScalarNetworkParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess
)
