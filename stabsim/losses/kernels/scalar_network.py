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
hess O(d²). :func:`hessian_drift` bounds how far ∇²L moves between two points, and
:func:`hessian_frobenius` bounds ‖∇²L‖_F, each in one O(d) pass without scratch.
"""

from typing import NamedTuple

import numpy as np

from ..._jit import ARITH_FASTMATH, jit
from ..._pages import large_empty
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
    suffix_dv = large_empty(d)
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


@jit(fastmath=ARITH_FASTMATH)
def hessian_drift(theta, p, anchor, limit):
    """An upper bound b on ‖∇²L(w) − ∇²L(w')‖₂ for w = ``theta``, w' = ``anchor``:

        b = ‖C‖_F (2 |w − w'| √(Σ_i ∏_{l≠i} c_l²) + |r| + |r'|),
        ‖C‖_F² = Σ_{i≠j} ∏_{l∉{i,j}} c_l²,  c_l = max(|w_l|, |w'_l|).

    From ∇²L = g gᵀ + r G: ‖g gᵀ − g'g'ᵀ‖₂ ≤ |g − g'| (|g| + |g'|) and ‖rG − r'G'‖₂ ≤ |r|
    ‖G‖_F + |r'| ‖G'‖_F. Every entry of G and G' is at most that of C in size, so ‖G‖_F,
    ‖G'‖_F ≤ ‖C‖_F and |g|, |g'| ≤ √(Σ_i ∏_{l≠i} c_l²); and g_i − g'_i = Σ_{k≠i}
    (∏_{l<k, l≠i} w_l)(w_k − w'_k)(∏_{l>k, l≠i} w'_l) (a telescoping sum), so |g_i − g'_i| ≤
    Σ_{k≠i} C_ik |w_k − w'_k| and |g − g'| ≤ ‖C‖₂ |w − w'| ≤ ‖C‖_F |w − w'|. The sums over
    all-but-one and all-but-two indices are the coefficients m₁, m₂ of the product of the
    polynomials (c_l² + z) (m_k ← m_k c² + m_{k−1} per entry: no division, zero weights
    exact), carried in two independent halves of w (two chains for the processor to run
    side by side) and multiplied together at the end. One pass; the terms are non-negative
    (reassociating them moves b by a relative O(d eps)). ``limit`` is not used: the pass is
    as cheap as any test of it."""
    d = theta.shape[0]
    half = d // 2
    # per half: the products of w and w', the coefficients m_0, m_1, m_2 and |w − w'|²
    w1 = w2 = a1 = a2 = 1.0
    x0 = y0 = 1.0
    x1 = x2 = y1 = y2 = 0.0
    s1 = s2 = 0.0
    for i in range(half):
        u, v = theta[i], theta[half + i]
        u_anchor, v_anchor = anchor[i], anchor[half + i]
        cx = max(u * u, u_anchor * u_anchor)
        cy = max(v * v, v_anchor * v_anchor)
        x2 = x2 * cx + x1
        x1 = x1 * cx + x0
        x0 *= cx
        y2 = y2 * cy + y1
        y1 = y1 * cy + y0
        y0 *= cy
        w1 *= u
        w2 *= v
        a1 *= u_anchor
        a2 *= v_anchor
        s1 += (u - u_anchor) * (u - u_anchor)
        s2 += (v - v_anchor) * (v - v_anchor)
    if d % 2 == 1:  # the last entry, in the first half's chains
        u, u_anchor = theta[d - 1], anchor[d - 1]
        cx = max(u * u, u_anchor * u_anchor)
        x2 = x2 * cx + x1
        x1 = x1 * cx + x0
        x0 *= cx
        w1 *= u
        a1 *= u_anchor
        s1 += (u - u_anchor) * (u - u_anchor)
    m1 = x1 * y0 + x0 * y1
    m2 = x2 * y0 + x1 * y1 + x0 * y2
    frobenius = np.sqrt(2.0 * m2)
    return frobenius * (2.0 * np.sqrt((s1 + s2) * m1) + abs(w1 * w2 - 1.0)
                        + abs(a1 * a2 - 1.0))


#: :func:`hessian_frobenius` gives its bound where every weight lies within a factor
#: WEIGHT_RANGE of 1 and so do the products of those below 1 and of those above (see there)
WEIGHT_RANGE = 2.0 ** 500


@jit(fastmath=ARITH_FASTMATH)
def hessian_frobenius(theta, p):
    """An upper bound F on ‖∇²L(w)‖_F, its rounding included, or +∞:

        ‖∇²L‖_F ≤ ‖g gᵀ‖_F + |r| ‖G‖_F ≤ S |P| (|P| + |r|),  S = Σ_l 1/w_l²,

    for weights that are all nonzero: then g_i = P/w_i and G_ij = P/(w_i w_j) (i ≠ j), so
    ‖g gᵀ‖_F = |g|² = P² S and ‖G‖_F² = P² (S² − Σ_l 1/w_l⁴) ≤ P² S².

    One pass of sums and products that may run in any order (vectorised: ``reassoc``).
    Rounding: S sums d positive terms of two roundings each, within γ_{d+2} ≈ (d + 2)·eps
    of its value; P multiplies d numbers, within γ_d; |r| = |P − 1| is within γ_d |P| + eps
    |r| of the computed one. F adds 2γ|P| to |P| + |r| and multiplies by 1 + 4γ, with γ =
    (d + 8)·eps: more than those errors and the last operations' (γ_n ≤ 1.01 n·eps while
    n·eps ≤ 0.01). Those bounds need every number formed to be normal, in whatever order
    the products run: each partial product lies between the products of the weights' sizes
    below 1 and of those above 1 (each made smaller, or larger, by every factor it takes,
    in any order), so F is +∞ unless both lie within :data:`WEIGHT_RANGE` = 2⁵⁰⁰ of 1
    (then each weight does, and its square and the square's inverse are normal too; a zero
    weight is out of range). An overflow of S makes F infinite, which certifies nothing.
    """
    d = theta.shape[0]
    inverse_squares = 0.0
    product = small = large = 1.0
    for i in range(d):
        w = theta[i]
        size = abs(w)
        inverse_squares += 1.0 / (w * w)
        product *= w
        small *= min(size, 1.0)
        large *= max(size, 1.0)
    if not (small >= 1.0 / WEIGHT_RANGE and large <= WEIGHT_RANGE):
        return np.inf
    gamma = (d + 8.0) * np.finfo(np.float64).eps
    size = abs(product)
    return inverse_squares * size * (size + abs(product - 1.0) + 2.0 * gamma * size) * (
        1.0 + 4.0 * gamma)


FAMILY = register_family(
    ScalarNetworkParams, value=value, grad=value_grad, hvp=hvp, d3=d3, hess=hess,
    value_grad=value_grad, hessian_drift=hessian_drift, hessian_frobenius=hessian_frobenius
)
