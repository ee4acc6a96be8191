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
∏_{l≠i} at once, so hvp and d3 cost O(d) time (and one or three d-vectors of scratch) and
hess O(d²).
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
def value_grad(theta, p, out):
    """½ r² and out ← r g: prefix products of w are stored in ``out``, then scaled by suffix
    products; the forward sweep's last product is P = ∏ w_i, in :func:`value`'s order."""
    d = theta.shape[0]
    acc = 1.0
    for i in range(d):
        out[i] = acc
        acc *= theta[i]
    acc -= 1.0  # r = P − 1 seeds the suffix product
    r = acc
    for i in range(d - 1, -1, -1):
        out[i] *= acc
        acc *= theta[i]
    return 0.5 * r * r


@jit
def hvp(theta, p, v, out):
    """out ← g (g·v) + r G v, with (Gv)_i the v-derivative of g_i, in O(d).

    A backward sweep leaves in ``out[i]`` the suffix product ∏_{l>i} w_l (and its
    v-derivative in a scratch array); the forward sweep carries the prefix product and its
    v-derivative and overwrites ``out[i]`` once it has read it: one d-vector of scratch.
    """
    d = theta.shape[0]
    suffix_dv = np.empty(d)
    acc, dacc = 1.0, 0.0
    for i in range(d - 1, -1, -1):
        out[i] = acc
        suffix_dv[i] = dacc
        dacc = dacc * theta[i] + acc * v[i]
        acc *= theta[i]
    r = acc - 1.0  # acc = P, dacc = g·v
    gv = dacc
    pre, dpre = 1.0, 0.0
    for i in range(d):
        a = pre * out[i]  # g_i = ∏_{l≠i} w_l
        da = dpre * out[i] + pre * suffix_dv[i]  # (Gv)_i
        dpre = dpre * theta[i] + pre * v[i]
        pre *= theta[i]
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
    """out ← g (uᵀGv) + (g·u) Gv + (g·v) Gu + r D²g[u, v], by hyper-dual products in O(d).

    As :func:`hvp`: suffix products (value in ``out``, the u-, v- and uv-derivatives in a
    3 × d scratch array) from a backward sweep, prefix products carried forward.
    """
    d = theta.shape[0]
    suf = np.empty((3, d))
    s0, su, sv, suv = 1.0, 0.0, 0.0, 0.0
    for i in range(d - 1, -1, -1):
        out[i] = s0
        suf[0, i] = su
        suf[1, i] = sv
        suf[2, i] = suv
        w = theta[i]
        suv = suv * w + su * v[i] + sv * u[i]
        su = su * w + s0 * u[i]
        sv = sv * w + s0 * v[i]
        s0 *= w
    r = s0 - 1.0
    pu, pv, puv = su, sv, suv  # g·u, g·v, uᵀGv
    a0, a1, a2, a3 = 1.0, 0.0, 0.0, 0.0
    for i in range(d):
        b0, b1, b2, b3 = out[i], suf[0, i], suf[1, i], suf[2, i]
        a = a0 * b0
        au = a1 * b0 + a0 * b1
        av = a2 * b0 + a0 * b2
        auv = a3 * b0 + a1 * b2 + a2 * b1 + a0 * b3
        w = theta[i]
        a3 = a3 * w + a1 * v[i] + a2 * u[i]
        a1 = a1 * w + a0 * u[i]
        a2 = a2 * w + a0 * v[i]
        a0 *= w
        out[i] = a * puv + pu * av + pv * au + r * auv


FAMILY = register_family(
    ScalarNetworkParams, value=value, grad=value_grad, hvp=hvp, d3=d3, hess=hess,
    value_grad=value_grad
)
