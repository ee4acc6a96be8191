"""Fully connected networks with the mean-squared error, exact derivatives by hyper-dual
backpropagation (record :class:`NetworkParams`).

The network has layer sizes n_0 (inputs), n_1, ..., n_L (outputs) and, for l = 1..L,

    a_l = s_l W_l h_{l−1} + b_l,     h_l = φ(a_l) (l < L),     f = a_L,

with h_0 = x, W_l of shape n_l × n_{l−1}, multipliers s_l (1 for the standard
parametrisation, 1/√n_{l−1} for the NTK one) and biases b_l (absent without biases). On the
N examples (X, Y) the loss is

    L(θ) = (1/(2N)) Σ_n |f(x_n) − y_n|².

θ holds, layer by layer, W_l row-major and then b_l.

Backpropagation computes ∇L: δ_L = (f − Y)/N, ∂L/∂W_l = s_l δ_lᵀ h_{l−1},
∂L/∂b_l = Σ_n δ_l, δ_{l−1} = (s_l δ_l W_l) ⊙ φ'(a_{l−1}). Running that program on
hyper-dual numbers a + a_u ε₁ + a_v ε₂ + a_uv ε₁ε₂ (ε₁² = ε₂² = 0) at θ + ε₁u + ε₂v returns
(THEORY §6)

    ∇L + ε₁ ∇²L u + ε₂ ∇²L v + ε₁ε₂ ∇³L[u, v],

exact to round-off. A product of two hyper-duals a·b has the parts a b, a_u b + a b_u,
a_v b + a b_v and a_uv b + a_u b_v + a_v b_u + a b_uv; a function of a hyper-dual has the parts
φ(a), φ'(a) a_u, φ'(a) a_v and φ'(a) a_uv + φ''(a) a_u a_v, so the activations need
φ, φ', φ'' and φ''' (φ' itself is carried as a hyper-dual through the backward pass). With
one direction (u only: dual numbers) the same pass gives ∇L and ∇²L u.

Every activation and δ is stored as an array of shape (4, N, n) whose parts are ordered
(u, real, v, uv): the parts a pass uses are then contiguous (real alone; u and real; all
four), and each hyper-dual matrix product is one BLAS product over the stacked parts plus two
over pairs of parts. Per layer, in units of one N × n_{l−1} × n_l product: the gradient
costs 3 (forward, δ, ∂L/∂W), a Hessian-vector product 8 (3 + 3 + 2), ∇³L[u, v] 20 (8 + 8 + 4)
and all four results at once 25 (8 + 8 + 9). The real parts of an HVP's pass depend on θ
alone: :func:`linearise` saves them once at θ (2 units per layer), and each product from
them (:func:`hvp_linearised`) costs 6, with no activation function evaluated (measured on
the 16-64-64-64-1 tanh network, d = 9473, one BLAS thread: 0.53 ms a product against
0.69 ms). The first layer costs less: no δ_0 is formed, and the inputs h_0 = X carry no ε
parts, so the products with them are skipped (:func:`_input_dot`; a linearised product's
first layer costs 2 units instead of 4: measured, one BLAS thread, 183 → 152–172 µs a
product at d = 1201 and 950–1007 → 860–915 µs at d = 9473). Memory is O(d + N Σ n_l)
(θ-sized results, the activations and the state of :func:`linearise`), nothing of size
d × d. The kernels trust the record (no bounds checks): build it with
:class:`stabsim.losses.Network`.

Every quantity is a mean over the examples, so the pass also runs on blocks of examples in
parallel (record :class:`ChunkedNetworkParams`, :func:`chunked_pass`): each block's pass on
one of Numba's threads, the BLAS set to one thread around them (:mod:`stabsim._blas`), and
the blocks' means summed with weights n_c/N. Measured, GD with the sharpness every step on the
16-64-64-64-1 tanh network, 256 examples, two cores: 7.6 ms a step with two blocks against
14.4 ms serial on one BLAS thread and 21.6 ms serial with OpenBLAS's two threads.
"""

from typing import NamedTuple

import numpy as np
from numba import prange

from ..._blas import blas_threads_here
from ..._jit import jit
from .._protocol import register_family

IDENTITY = 0  #: φ(a) = a (deep linear networks)
TANH = 1  #: φ(a) = tanh a
SOFTPLUS = 2  #: φ(a) = log(1 + eᵃ)
ACTIVATIONS = {"identity": IDENTITY, "linear": IDENTITY, "tanh": TANH, "softplus": SOFTPLUS}

# storage order of the parts of a hyper-dual array
_U, _R, _V, _UV = 0, 1, 2, 3


class NetworkParams(NamedTuple):
    """Data, architecture and parametrisation of a fully connected network with MSE.

    Whole numbers (sizes, codes) are stored as floats, like every field of a record.
    """

    X: np.ndarray  #: inputs, shape (N, n_0)
    Y: np.ndarray  #: targets, shape (N, n_L)
    sizes: np.ndarray  #: layer sizes n_0, ..., n_L
    scales: np.ndarray  #: multipliers s_1, ..., s_L
    activation: float  #: IDENTITY, TANH or SOFTPLUS
    bias: float  #: 1.0 with biases b_l, 0.0 without


class ChunkedNetworkParams(NamedTuple):
    """:class:`NetworkParams` whose passes run on blocks of examples in parallel
    (:func:`chunked_pass`): the same loss and derivatives, equal to round-off."""

    X: np.ndarray  #: inputs, shape (N, n_0)
    Y: np.ndarray  #: targets, shape (N, n_L)
    sizes: np.ndarray  #: layer sizes n_0, ..., n_L
    scales: np.ndarray  #: multipliers s_1, ..., s_L
    activation: float  #: IDENTITY, TANH or SOFTPLUS
    bias: float  #: 1.0 with biases b_l, 0.0 without
    chunks: float  #: the number of blocks of examples (at most N are used)


@jit
def _softplus(a):
    """φ(a) and φ'(a) = σ(a) of φ = softplus, φ = max(a, 0) + log1p(e^{−|a|}), without
    overflow."""
    e = np.exp(-abs(a))
    sig = 1.0 / (1.0 + e) if a >= 0.0 else e / (1.0 + e)
    return max(a, 0.0) + np.log1p(e), sig


@jit
def _higher_derivatives(code, h, f1):
    """φ''(a) and φ'''(a) from h = φ(a) and f1 = φ'(a), with no function evaluated.

    tanh (h = t): φ'' = −2t(1 − t²), φ''' = −2(1 − t²)(1 − 3t²); softplus (f1 = σ):
    φ'' = σ(1 − σ), φ''' = σ(1 − σ)(1 − 2σ).
    """
    if code == TANH:
        return -2.0 * h * f1, -2.0 * f1 * (1.0 - 3.0 * h * h)
    f2 = f1 * (1.0 - f1)
    return f2, f2 * (1.0 - 2.0 * f1)


@jit
def _span(parts):
    """Storage range [lo, hi) of the parts a pass with ``parts`` ∈ {1, 2, 4} uses."""
    return (_R, _U + 2) if parts == 1 else (_U, _U + 2 if parts == 2 else _UV + 1)


@jit
def _add_into(dst, src):
    """dst ← dst + src for 2-D arrays of one shape.

    The pass adds, scales and copies arrays in loops like this one rather than with NumPy's
    in-place operators: Numba compiles each ``a += b`` on arrays to a broadcasting loop
    with its own shape checks and error messages, and those made the pass about twice as
    long to compile (measured: 52 s → 25 s of CPU for ``hvp``, ``value_grad`` and
    ``all_derivatives`` from nothing).
    """
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] += src[i, j]


@jit
def _scale_parts(A, lo, hi, s):
    """A[lo:hi] ← s A[lo:hi] for the hyper-dual array A of shape (4, N, n)."""
    for c in range(lo, hi):
        for i in range(A.shape[1]):
            for j in range(A.shape[2]):
                A[c, i, j] *= s


@jit
def _hd_dot(X, M0, Mu, Mv, parts, known, out, tmp):
    """out ← X (M0 + ε₁Mu + ε₂Mv) for the hyper-dual X of shape (4, N, k) (``tmp``: 2Nn floats).

    Parts: real X M0; u: X_u M0 + X Mu; v: X_v M0 + X Mv; uv: X_uv M0 + X_u Mv + X_v Mu.
    The X M0 terms of every part are one product over the stacked parts; the two pairs
    (X_u, X)·Mv and (X, X_v)·Mu are contiguous in the (u, real, v, uv) order. With ``known``
    the real part of ``out`` is left to the caller (it comes from :func:`linearise`).
    """
    lo, hi = _span(parts)
    n_rows, k = X.shape[1], X.shape[2]
    n = out.shape[2]
    if known:
        np.dot(X[_U], M0, out[_U])
        if parts == 4:
            np.dot(X[_V:].reshape((2 * n_rows, k)), M0, out[_V:].reshape((2 * n_rows, n)))
    else:
        rows = (hi - lo) * n_rows
        np.dot(X[lo:hi].reshape((rows, k)), M0, out[lo:hi].reshape((rows, n)))
    if parts == 1:
        return
    if parts == 2:
        half = tmp[:n_rows * n].reshape((n_rows, n))
        np.dot(X[_R], Mu, half)
        _add_into(out[_U], half)
        return
    both = tmp[:2 * n_rows * n].reshape((2 * n_rows, n))
    np.dot(X[_U:_R + 1].reshape((2 * n_rows, k)), Mv, both)
    _add_into(out[_UV], both[:n_rows])
    _add_into(out[_V], both[n_rows:])
    np.dot(X[_R:_V + 1].reshape((2 * n_rows, k)), Mu, both)
    _add_into(out[_U], both[:n_rows])
    _add_into(out[_UV], both[n_rows:])


@jit
def _input_dot(X, M0, Mu, Mv, parts, known, out):
    """out ← X (M0 + ε₁Mu + ε₂Mv) for the inputs X of shape (N, k), which have no ε parts.

    Parts: real X M0 (left to the caller with ``known``), u: X Mu, v: X Mv, uv: 0 (the
    products of :func:`_hd_dot` with the inputs' ε parts, which are zero, are not made).
    """
    if not known:
        np.dot(X, M0, out[_R])
    if parts == 1:
        return
    np.dot(X, Mu, out[_U])
    if parts == 4:
        np.dot(X, Mv, out[_V])
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                out[_UV, i, j] = 0.0


# exp(x) = e^r 2^k with x = k ln 2 + r, |r| ≤ ln2/2 (ln 2 split exactly in two parts), and
# e^r = 1 + 2r P(r²)/(Q(r²) − r P(r²)) (Cephes ``exp``, relative error about 2e-16)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1
_LN2_LO = 1.42860682030941723212e-6
_EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
          2.00000000000000000009e0)
# tanh x = x + x³ P(x²)/Q(x²) for |x| < 0.625 (Cephes ``tanh``, relative error about 2.5e-16)
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_ROUND = 6755399441055744.0  # 1.5 · 2⁵²: k + _ROUND holds the integer k in its low bits
_ROUND_BITS = 0x4338000000000000  # the bit pattern of _ROUND


@jit
def _exp_reduce(x):
    """k and r with x = k ln 2 + r (x ≤ 0, clamped at −708: e^x underflows past it)."""
    x = max(x, -708.0)
    k = np.floor(x * _LOG2E + 0.5)
    return k, x - k * _LN2_HI - k * _LN2_LO


@jit(fastmath=True)
def _tanh_array(a, scratch):
    """a ← tanh(a) elementwise (1-D), in loops the compiler vectorises (no libm calls).

    |a| < 0.625: the rational approximation above; otherwise sign(a)(1 − e)/(1 + e) with
    e = exp(−2|a|) = e^r 2^k from the Cephes exp, 2^k assembled from its exponent bits in
    ``scratch`` (a work array of a's length). Agrees with ``np.tanh`` to 2 ulp (measured:
    3.9e-16 relative at most over 5·10⁴ normal draws of scale 3 and the edge cases). No
    value is tested for NaN, so reassociation and contraction are safe here.
    """
    n = a.shape[0]
    for i in range(n):
        k, _ = _exp_reduce(-2.0 * abs(a[i]))
        scratch[i] = k + _ROUND
    bits = scratch.view(np.int64)
    for i in range(n):
        bits[i] = (bits[i] - _ROUND_BITS + 1023) << 52  # the bits of 2^k
    for i in range(n):
        x = abs(a[i])
        _, r = _exp_reduce(-2.0 * x)
        rr = r * r
        px = r * ((_EXP_P[0] * rr + _EXP_P[1]) * rr + _EXP_P[2])
        qx = ((_EXP_Q[0] * rr + _EXP_Q[1]) * rr + _EXP_Q[2]) * rr + _EXP_Q[3]
        e = (1.0 + 2.0 * px / (qx - px)) * scratch[i]
        z = x * x
        small = x + x * z * ((_TANH_P[0] * z + _TANH_P[1]) * z + _TANH_P[2]) / (
            ((z + _TANH_Q[0]) * z + _TANH_Q[1]) * z + _TANH_Q[2])
        t = small if x < 0.625 else (1.0 - e) / (1.0 + e)
        a[i] = np.copysign(t, a[i])


@jit
def _activate(code, A, D, parts, known):
    """A ← φ(A) and D ← φ'(A), in hyper-dual arithmetic, for the pre-activations A.

    The identity leaves A as it is and D unused (φ' = 1: see where :func:`_times` is called).
    The real parts first: tanh by :func:`_tanh_array` and φ' = 1 − t² from t = tanh a, or,
    with ``known``, as the caller left them (φ(a) in A, φ'(a) in D); then the other parts,
    with φ'' and φ''' from :func:`_higher_derivatives`.
    """
    if code == IDENTITY:
        return
    n_rows, n = A.shape[1], A.shape[2]
    if not known:
        if code == TANH:
            _tanh_array(A[_R].reshape(n_rows * n), D[_R].reshape(n_rows * n))
        for i in range(n_rows):
            for j in range(n):
                if code == TANH:
                    t = A[_R, i, j]
                    D[_R, i, j] = 1.0 - t * t
                else:
                    A[_R, i, j], D[_R, i, j] = _softplus(A[_R, i, j])
    if parts == 1:
        return
    for i in range(n_rows):
        for j in range(n):
            f1 = D[_R, i, j]
            f2, f3 = _higher_derivatives(code, A[_R, i, j], f1)
            au = A[_U, i, j]
            A[_U, i, j] = f1 * au
            D[_U, i, j] = f2 * au
            if parts == 4:
                av = A[_V, i, j]
                auv = A[_UV, i, j]
                A[_V, i, j] = f1 * av
                D[_V, i, j] = f2 * av
                A[_UV, i, j] = f1 * auv + f2 * au * av
                D[_UV, i, j] = f2 * auv + f3 * au * av


@jit
def _times(P, D, parts):
    """P ← P ⊙ D in hyper-dual arithmetic (elementwise)."""
    for i in range(P.shape[1]):
        for j in range(P.shape[2]):
            p0 = P[_R, i, j]
            d0 = D[_R, i, j]
            P[_R, i, j] = p0 * d0
            if parts == 1:
                continue
            pu = P[_U, i, j]
            P[_U, i, j] = pu * d0 + p0 * D[_U, i, j]
            if parts == 4:
                pv = P[_V, i, j]
                P[_V, i, j] = pv * d0 + p0 * D[_V, i, j]
                P[_UV, i, j] = (P[_UV, i, j] * d0 + pu * D[_V, i, j] + pv * D[_U, i, j]
                                + p0 * D[_UV, i, j])


@jit
def _slot(mask):
    """Storage index of the part with ε-mask ``mask`` (0 real, 1 ε₁, 2 ε₂, 3 ε₁ε₂)."""
    return _R if mask == 0 else (_U if mask == 1 else mask)


@jit
def _layout(p):
    """Layer sizes (ints) and the offset of each layer's W_l in θ (entry L: the length)."""
    n_layers = p.sizes.shape[0] - 1
    sizes = np.empty(n_layers + 1, np.int64)
    for k in range(n_layers + 1):
        sizes[k] = int(p.sizes[k])
    offsets = np.empty(n_layers + 1, np.int64)
    offsets[0] = 0
    for k in range(n_layers):
        per = sizes[k + 1] * sizes[k] + (sizes[k + 1] if p.bias != 0.0 else 0)
        offsets[k + 1] = offsets[k] + per
    return sizes, offsets


@jit
def _copy_into(dst, src):
    """dst ← src for 2-D arrays of one shape."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@jit
def _state_starts(p, sizes):
    """Offsets of the layers' blocks in a state of :func:`linearise` (entry L: its length).

    Entry 0 holds L(θ); then, for each hidden layer l, three N × n_l blocks: h_l = φ(a_l),
    φ'(a_l), and the real part of s_{l+1} δ_{l+1} W_{l+1} (δ_l before the product with
    φ'(a_l)); for the output layer one block, δ_L = (f − Y)/N.
    """
    n_layers = sizes.shape[0] - 1
    n_rows = p.X.shape[0]
    starts = np.empty(n_layers + 1, np.int64)
    starts[0] = 1
    for k in range(1, n_layers + 1):
        starts[k] = starts[k - 1] + (3 if k < n_layers else 1) * n_rows * sizes[k]
    return starts


@jit
def _block(state, starts, k, which, n_rows, n):
    """Block ``which`` (0: h, 1: φ', 2: δ before φ') of layer k of a state, shape (N, n)."""
    first = starts[k - 1] + which * n_rows * n
    return state[first:first + n_rows * n].reshape((n_rows, n))


@jit
def network_pass(theta, p, u, v, outs, save, saved):
    """The (hyper-)dual backpropagation pass; returns L(θ).

    Parameters
    ----------
    theta, u, v : ndarray, shape (d,)
        The point and the two directions.
    outs : tuple of 4 arrays
        Receive the ε₁ part (∇²L u), the real part (∇L), the ε₂ part (∇²L v) and the ε₁ε₂
        part (∇³L[u, v]); an array of length 0 is not written. They decide the arithmetic:
        real numbers when only ∇L (or nothing: the forward pass alone) is asked for, dual
        numbers in u for ∇²L u, hyper-dual numbers in u and v for ∇²L v or ∇³L[u, v].

    save, saved : ndarray
        Either may have length 0. ``save`` (of length ``_state_starts(p, sizes)[L]``)
        receives the real parts that every product at θ shares (see :func:`linearise`); with
        ``saved``, a state made at this θ, the pass reads them instead of computing them.

    The arithmetic is chosen here, at run time, rather than by a constant argument: Numba
    compiles a separate copy of a kernel for each constant passed to it, and the copies for
    the value, the gradient, the HVP and ∇³L each took 6–7 s of CPU to compile.
    """
    hu_out, g_out, hv_out, t_out = outs
    saving = save.shape[0] > 0
    known = saved.shape[0] > 0
    backward = (hu_out.shape[0] + g_out.shape[0] + hv_out.shape[0] + t_out.shape[0] > 0
                or saving)
    parts = 4 if hv_out.shape[0] + t_out.shape[0] > 0 else (2 if hu_out.shape[0] > 0 else 1)
    theta = np.ascontiguousarray(theta)
    u = np.ascontiguousarray(u)
    v = np.ascontiguousarray(v)
    sizes, offsets = _layout(p)
    n_layers = sizes.shape[0] - 1
    starts = _state_starts(p, sizes)
    n_rows = p.X.shape[0]
    has_bias = p.bias != 0.0
    lo, hi = _span(parts)
    code = int(p.activation)
    # activations h_0..h_L (h_L: the output, then δ_L; h_l is overwritten by δ_l on the way
    # back) and φ'(a_l) for the hidden layers, each of shape (4, N, n_l)
    start = np.empty(n_layers + 2, np.int64)
    start[0] = 0
    widest = 0
    for k in range(n_layers + 1):
        start[k + 1] = start[k] + 4 * n_rows * sizes[k]
        widest = max(widest, sizes[k])
    # one allocation for every buffer of the pass: with glibc, separate blocks of about half
    # the pass's memory each leave more free memory at the top of the heap than its trim
    # threshold (twice the largest block freed), so it was returned to the system after
    # every pass and page-faulted in again by the next (half the time of a Hessian-vector
    # product at d = 9473: 1.8 ms against 0.87 ms, one BLAS thread)
    size = start[n_layers + 1]
    work = np.empty(2 * size + 2 * n_rows * widest + widest * widest)
    hbuf = work[:size]
    dbuf = work[size:2 * size]
    tmp = work[2 * size:2 * size + 2 * n_rows * widest]
    g_tmp = work[2 * size + 2 * n_rows * widest:]

    for k in range(1, n_layers + 1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        W0 = theta[off:w_end].reshape((n_out, n_in))
        Wu = u[off:w_end].reshape((n_out, n_in))
        Wv = v[off:w_end].reshape((n_out, n_in))
        A = hbuf[start[k]:start[k + 1]].reshape((4, n_rows, n_out))
        if k == 1:
            _input_dot(p.X, W0.T, Wu.T, Wv.T, parts, known, A)
        else:
            H = hbuf[start[k - 1]:start[k]].reshape((4, n_rows, n_in))
            _hd_dot(H, W0.T, Wu.T, Wv.T, parts, known, A, tmp)
        s = p.scales[k - 1]
        if s != 1.0:
            _scale_parts(A, lo, hi, s)
        if has_bias:
            for i in range(n_rows):
                for j in range(n_out):
                    A[_R, i, j] += theta[w_end + j]
                    if parts >= 2:
                        A[_U, i, j] += u[w_end + j]
                    if parts == 4:
                        A[_V, i, j] += v[w_end + j]
        if k < n_layers:
            D = dbuf[start[k]:start[k + 1]].reshape((4, n_rows, n_out))
            if known:
                _copy_into(A[_R], _block(saved, starts, k, 0, n_rows, n_out))
                _copy_into(D[_R], _block(saved, starts, k, 1, n_rows, n_out))
            _activate(code, A, D, parts, known)
            if saving:
                _copy_into(_block(save, starts, k, 0, n_rows, n_out), A[_R])
                _copy_into(_block(save, starts, k, 1, n_rows, n_out), D[_R])

    n_outputs = sizes[n_layers]
    out_layer = hbuf[start[n_layers]:start[n_layers + 1]].reshape((4, n_rows, n_outputs))
    if known:
        loss = saved[0]
    else:
        total = 0.0
        for i in range(n_rows):
            for j in range(n_outputs):
                e = out_layer[_R, i, j] - p.Y[i, j]
                out_layer[_R, i, j] = e
                total += e * e
        loss = 0.5 * total / n_rows
    if not backward:
        return loss
    _scale_parts(out_layer, lo, hi, 1.0 / n_rows)  # δ_L = (f − Y)/N
    if known:
        _copy_into(out_layer[_R], _block(saved, starts, n_layers, 0, n_rows, n_outputs))
    if saving:
        save[0] = loss
        _copy_into(_block(save, starts, n_layers, 0, n_rows, n_outputs), out_layer[_R])

    for k in range(n_layers, 0, -1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        s = p.scales[k - 1]
        delta = hbuf[start[k]:start[k + 1]].reshape((4, n_rows, n_out))
        H = hbuf[start[k - 1]:start[k]].reshape((4, n_rows, n_in))
        G_tmp = g_tmp[:n_out * n_in].reshape((n_out, n_in))
        for c in range(4):
            slot = _slot(c)
            out = outs[slot]
            if out.shape[0] == 0:
                continue
            # part c of s δᵀh: Σ over ε-masks a ⊆ c of δ_a ᵀ h_(c∖a); the inputs h_0 = X
            # have no ε parts, so for the first layer only a = c remains
            G = out[off:w_end].reshape((n_out, n_in))
            if k == 1:
                np.dot(delta[slot].T, p.X, G)
            else:
                first = True
                for a in range(4):
                    if (a & c) != a:
                        continue
                    if first:
                        np.dot(delta[_slot(a)].T, H[_slot(c ^ a)], G)
                        first = False
                    else:
                        np.dot(delta[_slot(a)].T, H[_slot(c ^ a)], G_tmp)
                        _add_into(G, G_tmp)
            if s != 1.0:
                for i in range(off, w_end):
                    out[i] *= s
            if has_bias:  # ∂L/∂b_l = Σ_n δ_l, part by part
                for j in range(n_out):
                    out[w_end + j] = 0.0
                for i in range(n_rows):
                    for j in range(n_out):
                        out[w_end + j] += delta[slot, i, j]
        if k == 1:
            break
        W0 = theta[off:w_end].reshape((n_out, n_in))
        Wu = u[off:w_end].reshape((n_out, n_in))
        Wv = v[off:w_end].reshape((n_out, n_in))
        # δ_{k−1} = (s δ_k W_k) ⊙ φ'(a_{k−1}), written over h_{k−1} (no longer needed)
        _hd_dot(delta, W0, Wu, Wv, parts, known, H, tmp)
        if s != 1.0:
            _scale_parts(H, lo, hi, s)
        if known:
            _copy_into(H[_R], _block(saved, starts, k - 1, 2, n_rows, n_in))
        if saving:
            _copy_into(_block(save, starts, k - 1, 2, n_rows, n_in), H[_R])
        if code != IDENTITY:  # else φ' = 1
            _times(H, dbuf[start[k - 1]:start[k]].reshape((4, n_rows, n_in)), parts)
    return loss


@jit
def _into(result, out):
    """out ← result (the pass writes contiguous arrays; ``out`` may be any 1-D view)."""
    for i in range(out.shape[0]):
        out[i] = result[i]


@jit(parallel=True)
def chunked_pass(theta, p, u, v, outs, save, saved):
    """:func:`network_pass` on k = min(chunks, N) blocks of consecutive examples, in parallel.

    Block c holds the examples [⌊cN/k⌋, ⌊(c+1)N/k⌋), n_c of them. L and every part of the
    pass (∇L, ∇²L u, ∇²L v, ∇³L[u, v]) are means over the examples, so each is the
    weighted sum over the blocks of the block's own mean,

        L = Σ_c (n_c/N) L_c,

    summed in the order of the blocks, whatever the threads (the result depends on
    ``chunks``, not on how many threads run). The blocks run on Numba's threads (``prange``;
    ``numba.set_num_threads`` bounds them). A state (``save``, ``saved``) is the blocks'
    states of :func:`network_pass` one after another, block c's from c + ⌊cN/k⌋·r on
    (r: the per-example length of a state, :func:`_row_length`).
    """
    n_rows = p.X.shape[0]
    k = min(int(p.chunks), n_rows)
    row = _row_length(p.sizes)
    lengths = np.empty(5, np.int64)
    lengths[0] = 0
    for j in range(4):
        lengths[j + 1] = lengths[j] + outs[j].shape[0]
    parts = np.empty((k, lengths[4]))
    losses = np.empty(k)
    blas_threads = blas_threads_here(1)  # once, around the blocks: the setting is not per thread
    for c in prange(k):
        lo = c * n_rows // k
        hi = (c + 1) * n_rows // k
        block = NetworkParams(p.X[lo:hi], p.Y[lo:hi], p.sizes, p.scales, p.activation,
                              p.bias)
        first = c + lo * row
        last = first + 1 + (hi - lo) * row
        mine = (parts[c, lengths[0]:lengths[1]], parts[c, lengths[1]:lengths[2]],
                parts[c, lengths[2]:lengths[3]], parts[c, lengths[3]:lengths[4]])
        losses[c] = network_pass(theta, block, u, v, mine, save[first:last],
                                 saved[first:last])
    blas_threads_here(blas_threads)
    weights = np.empty(k)  # n_c/N
    for c in range(k):
        weights[c] = ((c + 1) * n_rows // k - c * n_rows // k) / n_rows
    loss = 0.0
    for c in range(k):
        loss += weights[c] * losses[c]
    for j in range(4):
        out = outs[j]
        for i in range(out.shape[0]):
            total = 0.0
            for c in range(k):
                total += weights[c] * parts[c, lengths[j] + i]
            out[i] = total
    return loss


@jit
def _row_length(sizes):
    """Per-example length of a state of :func:`network_pass`: 3 n_l for each hidden layer
    (h_l, φ'(a_l), δ_l) and n_L for the output layer (:func:`_state_starts`)."""
    n_layers = sizes.shape[0] - 1
    length = int(sizes[n_layers])
    for k in range(1, n_layers):
        length += 3 * int(sizes[k])
    return length


def _family_functions(chunked):
    """The protocol's functions of :class:`NetworkParams` (``chunked`` false: each pass is
    :func:`network_pass`) or of :class:`ChunkedNetworkParams` (:func:`chunked_pass`).

    ``chunked`` is a constant of the functions' code, so each is compiled with one pass
    only (the other branch is removed before typing). The branch is written out in each
    function rather than in a shared helper: a function that closes over a compiled function
    is never found in Numba's disk cache (the closure's key holds the helper's per-process
    identity), and these are called from Python as well as from kernels.
    """

    @jit(inline=True)
    def value(theta, p):
        """L(θ) = (1/(2N)) Σ_n |f(x_n) − y_n|² (forward pass only)."""
        none = np.empty(0)
        if chunked:
            return chunked_pass(theta, p, theta, theta, (none, none, none, none), none, none)
        return network_pass(theta, p, theta, theta, (none, none, none, none), none, none)

    @jit(inline=True)
    def value_grad(theta, p, out):
        """L(θ) and out ← ∇L(θ): one forward and one backward pass (also the family's
        ``grad``, whose callers ignore the value)."""
        none = np.empty(0)
        g = np.empty(theta.shape[0])
        if chunked:
            loss = chunked_pass(theta, p, theta, theta, (none, g, none, none), none, none)
        else:
            loss = network_pass(theta, p, theta, theta, (none, g, none, none), none, none)
        _into(g, out)
        return loss

    @jit(inline=True)
    def hvp(theta, p, v, out):
        """out ← ∇²L(θ) v: the ε part of backpropagation on dual numbers θ + εv."""
        none = np.empty(0)
        hv = np.empty(theta.shape[0])
        if chunked:
            chunked_pass(theta, p, v, v, (hv, none, none, none), none, none)
        else:
            network_pass(theta, p, v, v, (hv, none, none, none), none, none)
        _into(hv, out)

    @jit(inline=True)
    def linearise(theta, p):
        """The real parts of the pass at θ that every Hessian-vector product at θ shares.

        One forward and backward pass in real numbers (a gradient without ∂L/∂W) that
        saves, layer by layer, h_l, φ'(a_l) and δ_l before the product with φ'(a_l) (see
        :func:`_state_starts`). :func:`hvp_linearised` then computes only the ε parts: per
        layer 6 instead of 8 units of N × n_{l−1} × n_l products, and no activation
        evaluated.
        """
        none = np.empty(0)
        n_rows = p.X.shape[0]
        blocks = min(int(p.chunks), n_rows) if chunked else 1
        state = np.empty(blocks + n_rows * _row_length(p.sizes))
        if chunked:
            chunked_pass(theta, p, theta, theta, (none, none, none, none), state, none)
        else:
            network_pass(theta, p, theta, theta, (none, none, none, none), state, none)
        return state

    @jit(inline=True)
    def hvp_linearised(theta, p, state, v, out):
        """out ← ∇²L(θ) v, the real parts of the pass read from ``state = linearise(θ, p)``."""
        none = np.empty(0)
        hv = np.empty(theta.shape[0])
        if chunked:
            chunked_pass(theta, p, v, v, (hv, none, none, none), none, state)
        else:
            network_pass(theta, p, v, v, (hv, none, none, none), none, state)
        _into(hv, out)

    @jit(inline=True)
    def d3(theta, p, u, v, out):
        """out ← ∇³L(θ)[u, v]: the ε₁ε₂ part of backpropagation on θ + ε₁u + ε₂v."""
        none = np.empty(0)
        t = np.empty(theta.shape[0])
        if chunked:
            chunked_pass(theta, p, u, v, (none, none, none, t), none, none)
        else:
            network_pass(theta, p, u, v, (none, none, none, t), none, none)
        _into(t, out)

    @jit(inline=True)
    def all_derivatives(theta, p, u, v):
        """L(θ), ∇L, ∇²L u, ∇²L v and ∇³L[u, v], from one hyper-dual pass."""
        d = theta.shape[0]
        g, hu, hv, t = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
        none = np.empty(0)
        if chunked:
            loss = chunked_pass(theta, p, u, v, (hu, g, hv, t), none, none)
        else:
            loss = network_pass(theta, p, u, v, (hu, g, hv, t), none, none)
        return loss, g, hu, hv, t

    return {"value": value, "value_grad": value_grad, "grad": value_grad, "hvp": hvp,
            "linearise": linearise, "hvp_linearised": hvp_linearised, "d3": d3,
            "all_derivatives": all_derivatives}


@jit
def subset(p, indices):
    """The network on the examples ``indices``: the rows of X and Y, the same architecture.

    Its loss is (1/(2|B|)) Σ_{n∈B} |f(x_n) − y_n|², the mean of the per-example losses
    ℓ_n = |f(x_n) − y_n|²/2 over B (docs/stochastic.md).
    """
    return NetworkParams(p.X[indices], p.Y[indices], p.sizes, p.scales, p.activation, p.bias)


@jit
def chunked_subset(p, indices):
    """:func:`subset` of a :class:`ChunkedNetworkParams` (the same ``chunks``)."""
    return ChunkedNetworkParams(p.X[indices], p.Y[indices], p.sizes, p.scales, p.activation,
                                p.bias, p.chunks)


def examples(p) -> int:
    """N: the loss is the mean of the per-example losses |f(x_n) − y_n|²/2."""
    return p.X.shape[0]


_SHAPES = {"X": (None, None), "Y": (None, None), "sizes": (None,), "scales": (None,)}
SERIAL = _family_functions(chunked=False)
CHUNKED = _family_functions(chunked=True)
FAMILY = register_family(NetworkParams, subset=subset, examples=examples, shapes=_SHAPES,
                         **{name: f for name, f in SERIAL.items() if name != "all_derivatives"})
CHUNKED_FAMILY = register_family(
    ChunkedNetworkParams, subset=chunked_subset, examples=examples, shapes=_SHAPES,
    threaded=True, **{name: f for name, f in CHUNKED.items() if name != "all_derivatives"})
