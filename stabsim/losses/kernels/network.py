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

exact to round-off relative to the size of each vector. (The entries of a saturated unit's
own weights, tiny beside the rest, lose relative accuracy where φ' = 1 − t² cancels: for one
tanh unit with its input weight at 17 about 4e-3 relative, 1 at 25, where the exact entry
2e-22 comes out 0; a softplus unit's ∇³L entry 6e-2 at 35. JAX's autodiff of the same
functions loses as much or more. The sharpness and the trajectories do not notice.)
A product of two hyper-duals a·b has the parts a b, a_u b + a b_u,
a_v b + a b_v and a_uv b + a_u b_v + a_v b_u + a b_uv; a function of a hyper-dual has the parts
φ(a), φ'(a) a_u, φ'(a) a_v and φ'(a) a_uv + φ''(a) a_u a_v, so the activations need
φ, φ', φ'' and φ''' (φ' itself is carried as a hyper-dual through the backward pass). With
one direction (u only: dual numbers) the same program gives ∇L and ∇²L u.

Three passes, each compiled only where a kernel needs it. In units of one N × n_{l−1} × n_l
product per layer:

- :func:`_real_pass`, backpropagation in real numbers: L, ∇L (3 units: forward, δ, ∂L/∂W)
  and the state of :func:`linearise` (2 units without ∂L/∂W): h_l, φ'(a_l) and δ_l, the
  real parts that every Hessian-vector product at θ shares.
- :func:`_tangent_pass`: ∇²L v from that state, the ε parts of the dual pass alone, reading
  every real part from the state: 6 units per layer, 2 for the first (the inputs h_0 = X
  carry no ε parts, and no δ_0 is formed), three loops over each layer's activations, no
  activation function evaluated and no real part copied. A product from scratch
  (:func:`hvp`) is the state then the tangent pass, 2 + 6 units, as many as the dual pass.
  Measured, one BLAS thread, on the 16-20-20-20-1 tanh network (d = 1201): a linearised
  product 141 µs when it ran the dual pass with the real parts copied in from the state,
  97 µs as the tangent pass (BLAS about 60% of it).
- :func:`network_pass`, the hyper-dual pass, for ∇³L[u, v] (20 units: 8 + 8 + 4) or all
  four results at once (25: 8 + 8 + 9). Every activation and δ is stored as an array of
  shape (4, N, n) whose parts are ordered (u, real, v, uv), so that each hyper-dual matrix
  product is one BLAS product over the stacked parts plus two over pairs of parts that are
  contiguous.

Until the three were split, one pass chose its arithmetic (real, dual or hyper-dual) at run
time, and every kernel that needed a gradient compiled all of it. Measured cold, CPU time of
the process, alternating with that pass, two runs each on the 1-6-6-6-1 network: the first
``run_gd`` 12.8 → 10.0–10.3 s, ``run_adaptive`` (Adam) 13.8 → 11.3–11.5 s, ``run_sgd`` 14.9 →
11.7 s, ``central_flow`` 15.1 → 10.6 s, ``compare`` 18.4 → 14.5–15.0 s. The value, the
gradient and ∇³L are the same bit for bit; a Hessian-vector product from scratch differs
from the dual pass's by round-off (2.6e-16 relative at most on 24 small networks).

Memory is O(d + N Σ n_l) (θ-sized results, the activations and the state of
:func:`linearise`), nothing of size d × d. The kernels trust the record (no bounds checks):
build it with :class:`stabsim.losses.Network`.

Every quantity is a mean over the examples, so the pass also runs on blocks of examples in
parallel (record :class:`ChunkedNetworkParams`, :func:`chunked_pass`): each block's pass on
one of Numba's threads, the BLAS set to one thread around them (:mod:`stabsim._blas`), and
the blocks' means summed with weights n_c/N. Measured, GD with the sharpness every step on the
16-64-64-64-1 tanh network, 256 examples, two cores: 7.6 ms a step with two blocks against
14.4 ms serial on one BLAS thread and 21.6 ms serial with OpenBLAS's two threads.

The passes' helpers are :func:`~stabsim._jit.inline` functions, compiled into the pass that
calls them; only the passes themselves and the vectorised tanh (which needs ``fastmath``)
are dispatchers. As dispatchers of their own, each helper was a unit that Numba compiled,
linked and cached on its own: the first ``run_gd`` on the 1-6-6-6-1 network took 14.3–14.7 s
of CPU cold instead of 13.2–13.6 s.
"""

import math
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array

from ..._blas import blas_threads_here
from ..._jit import KERNEL_ONLY, entry_for, inline, jit
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


@inline
def _softplus(a):
    """φ(a) and φ'(a) = σ(a) of φ = softplus, φ = max(a, 0) + log1p(e^{−|a|}), without
    overflow."""
    e = np.exp(-abs(a))
    sig = 1.0 / (1.0 + e) if a >= 0.0 else e / (1.0 + e)
    return max(a, 0.0) + np.log1p(e), sig


@inline
def _higher_derivatives(code, h, f1):
    """φ''(a) and φ'''(a) from h = φ(a) and f1 = φ'(a), with no function evaluated.

    tanh (h = t): φ'' = −2t(1 − t²), φ''' = −2(1 − t²)(1 − 3t²); softplus (f1 = σ):
    φ'' = σ(1 − σ), φ''' = σ(1 − σ)(1 − 2σ).
    """
    if code == TANH:
        return -2.0 * h * f1, -2.0 * f1 * (1.0 - 3.0 * h * h)
    f2 = f1 * (1.0 - f1)
    return f2, f2 * (1.0 - 2.0 * f1)


@inline
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


@inline
def _add_row(M, row):
    """M[i, j] ← M[i, j] + row[j] (a bias added to every example)."""
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            M[i, j] += row[j]


@inline
def _column_sums(M, out):
    """out[j] ← Σ_i M[i, j], summed in the order of i (a bias's derivative: the sum over
    the examples). A view of its own rather than indices offset into a longer array: the
    compiler then drops the check for negative indices and vectorises over j (measured, a
    Hessian-vector product at d = 1201: 103 → 97 µs)."""
    for j in range(M.shape[1]):
        out[j] = 0.0
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            out[j] += M[i, j]


@inline
def _scale(M, s):
    """M ← s M for a 2-D array (a hyper-dual array of shape (4, N, n) reshaped to (4N, n))."""
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            M[i, j] *= s


@inline
def _hd_dot(X, M0, Mu, Mv, out, tmp):
    """out ← X (M0 + ε₁Mu + ε₂Mv) for the hyper-dual X of shape (4, N, k) (``tmp``: 2Nn floats).

    Parts: real X M0; u: X_u M0 + X Mu; v: X_v M0 + X Mv; uv: X_uv M0 + X_u Mv + X_v Mu.
    The X M0 terms of every part are one product over the stacked parts; the two pairs
    (X_u, X)·Mv and (X, X_v)·Mu are contiguous in the (u, real, v, uv) order.
    """
    n_rows, k = X.shape[1], X.shape[2]
    n = out.shape[2]
    np.dot(_view(X, 0, (4 * n_rows, k)), M0, _view(out, 0, (4 * n_rows, n)))
    both = _view(tmp, 0, (2 * n_rows, n))
    np.dot(_view(X[_U:_R + 1], 0, (2 * n_rows, k)), Mv, both)
    _add_into(out[_UV], _view(both, 0, (n_rows, n)))
    _add_into(out[_V], _view(both, n_rows * n, (n_rows, n)))
    np.dot(_view(X[_R:_V + 1], 0, (2 * n_rows, k)), Mu, both)
    _add_into(out[_U], _view(both, 0, (n_rows, n)))
    _add_into(out[_UV], _view(both, n_rows * n, (n_rows, n)))


@inline
def _input_dot(X, M0, Mu, Mv, out):
    """out ← X (M0 + ε₁Mu + ε₂Mv) for the inputs X of shape (N, k), which have no ε parts.

    Parts: real X M0, u: X Mu, v: X Mv, uv: 0 (the products of :func:`_hd_dot` with the
    inputs' ε parts, which are zero, are not made).
    """
    np.dot(X, M0, out[_R])
    np.dot(X, Mu, out[_U])
    np.dot(X, Mv, out[_V])
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[_UV, i, j] = 0.0


# exp(x) = e^r 2^k with x = k ln 2 + r, |r| ≤ ln2/2 (ln 2 split exactly in two parts), and
# e^r = Σ_{j ≤ 13} r^j/j!: the first term left out, r¹⁴/14!, is below 5e-18 for |r| ≤ ln2/2
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1
_LN2_LO = 1.42860682030941723212e-6
_EXP_TAYLOR = tuple(1.0 / math.factorial(j) for j in range(14))
# tanh x = x + x³ P(x²)/Q(x²) for |x| < 0.625 (Cephes ``tanh``, relative error about 2.5e-16)
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_ROUND = 6755399441055744.0  # 1.5 · 2⁵²: k + _ROUND holds the integer k in its low bits
_ROUND_BITS = 0x4338000000000000  # the bit pattern of _ROUND


@inline
def _exp_reduce(x):
    """k and r with x = k ln 2 + r (x ≤ 0, clamped at −708: e^x underflows past it)."""
    x = max(x, -708.0)
    k = np.floor(x * _LOG2E + 0.5)
    return k, x - k * _LN2_HI - k * _LN2_LO


@inline
def _exp_taylor(r):
    """e^r for |r| ≤ ln2/2: Σ_{j ≤ 13} r^j/j! by Horner's rule, written out so that the
    loop calling it vectorises."""
    c = _EXP_TAYLOR
    return c[0] + r * (c[1] + r * (c[2] + r * (c[3] + r * (c[4] + r * (c[5] + r * (
        c[6] + r * (c[7] + r * (c[8] + r * (c[9] + r * (c[10] + r * (c[11] + r * (
            c[12] + r * c[13]))))))))))))


@intrinsic
def _int64_view(typingctx, values):
    """``values.view(np.int64)`` of a float64 array: the same memory read as int64.

    Numba's ``view`` compiles a check of the new item size and a second function for any
    pair of dtypes, 0.3 s of a kernel's first compilation; with items of the same size only
    the data pointer's type changes.
    """
    if not (isinstance(values, types.Array) and values.dtype == types.float64):
        return None
    view_type = values.copy(dtype=types.int64)

    def codegen(context, builder, signature, args):
        source = context.make_array(values)(context, builder, args[0])
        view = context.make_array(view_type)(context, builder)
        for field in ("meminfo", "parent", "nitems", "itemsize", "shape", "strides"):
            setattr(view, field, getattr(source, field))
        view.data = builder.bitcast(source.data, view.data.type)
        return impl_ret_borrowed(context, builder, view_type, view._getvalue())

    return view_type(values), codegen


@intrinsic
def _view(typingctx, source, first, shape):
    """The entries [first, first + size) of a C-contiguous array, in C order, seen in the
    shape ``shape`` (an integer or a tuple of integers; size its product), C-contiguous: the
    same memory, as ``source.ravel()[first:first + size].reshape(shape)`` in NumPy. A
    ``ValueError`` when the entries run past the end or a length or ``first`` is negative.

    Numba's slicing clips its bounds and wraps negative ones, and its ``reshape`` serves
    arrays of any layout: at each call it builds the shape as an array in memory and calls a
    compiled function that checks and completes it (and, for other layouts, a C function
    that finds the strides). The passes slice and reshape their work arrays block by block,
    where a C-contiguous array only needs a data pointer, the new shape and its C strides.
    Measured with Numba's own settings, twenty slices reshaped in one function: 27 ms of
    compilation each, against 6.6 ms with this. Cold, alternating, CPU time: a first
    ``run_gd`` on the 1-6-6-6-1 network 8.09, 8.31, 8.30 → 7.53, 8.01, 7.82 s and
    ``constrained_trajectory`` (all three passes) 9.80, 10.12, 10.12 → 9.35, 9.21, 9.16 s
    with the reshapes replaced; the slices too, 58,550 → 52,582 lines of LLVM IR in that
    ``run_gd``.
    """
    if not (isinstance(source, types.Array) and source.layout == "C"
            and isinstance(first, types.Integer)):
        return None
    if isinstance(shape, types.Integer):
        ndim = 1
    elif (isinstance(shape, types.BaseTuple) and len(shape) > 0
          and all(isinstance(length, types.Integer) for length in shape)):
        ndim = len(shape)
    else:
        return None
    view_type = source.copy(ndim=ndim, layout="C")

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        if isinstance(shape, types.Integer):
            lengths = [context.cast(builder, args[2], shape, types.intp)]
        else:
            lengths = [context.cast(builder, length, kind, types.intp)
                       for length, kind in zip(cgutils.unpack_tuple(builder, args[2]), shape,
                                               strict=True)]
        offset = context.cast(builder, args[1], first, types.intp)
        array = context.make_array(source)(context, builder, args[0])
        size = ir.Constant(intp, 1)
        negative = cgutils.is_neg_int(builder, offset)
        for length in lengths:
            size = builder.mul(size, length)
            negative = builder.or_(negative, cgutils.is_neg_int(builder, length))
        end = builder.add(offset, size)
        past_end = builder.icmp_signed(">", end, array.nitems)
        with cgutils.if_unlikely(builder, builder.or_(negative, past_end)):
            context.call_conv.return_user_exc(
                builder, ValueError, ("cannot view: the entries run past the array's end",))
        strides = [array.itemsize]
        for length in reversed(lengths[1:]):
            strides.insert(0, builder.mul(strides[0], length))
        view = context.make_array(view_type)(context, builder)
        populate_array(view, data=builder.gep(array.data, [offset]), shape=lengths,
                       strides=strides, itemsize=array.itemsize, meminfo=array.meminfo,
                       parent=array.parent)
        return impl_ret_borrowed(context, builder, view_type, view._getvalue())

    return view_type(source, first, shape), codegen


@jit(fastmath=True)
def _tanh_array(a, scratch):
    """a ← tanh(a) elementwise (1-D), in loops the compiler vectorises (no libm calls).

    |a| < 0.625: the rational approximation above; otherwise sign(a)(1 − e)/(1 + e) with
    e = exp(−2|a|) = e^r 2^k, e^r by its Taylor polynomial and 2^k assembled from its
    exponent bits in ``scratch`` (a work array of a's length). Each entry makes one
    division, the branches' numerators and denominators being chosen before it (measured,
    5120 entries: 8.5 µs, against 10.0 µs with three divisions, one in each branch and one
    in the exponential). Agrees with ``np.tanh`` to 2 ulp (``tests/test_network.py``). No
    value is tested for NaN, so reassociation and contraction are safe here.
    """
    n = a.shape[0]
    for i in range(n):
        k, _ = _exp_reduce(-2.0 * abs(a[i]))
        scratch[i] = k + _ROUND
    bits = _int64_view(scratch)
    for i in range(n):
        bits[i] = (bits[i] - _ROUND_BITS + 1023) << 52  # the bits of 2^k
    for i in range(n):
        x = abs(a[i])
        _, r = _exp_reduce(-2.0 * x)
        e = _exp_taylor(r) * scratch[i]
        z = x * x
        small = x < 0.625
        num = x * z * ((_TANH_P[0] * z + _TANH_P[1]) * z + _TANH_P[2]) if small else 1.0 - e
        den = ((z + _TANH_Q[0]) * z + _TANH_Q[1]) * z + _TANH_Q[2] if small else 1.0 + e
        a[i] = np.copysign((x if small else 0.0) + num / den, a[i])


@inline
def _activate_real(code, A, D):
    """A ← φ(A) and D ← φ'(A) for the real pre-activations A (shape (N, n)).

    The identity leaves A as it is and D unused (φ' = 1: the passes skip the product with
    it). tanh by :func:`_tanh_array` and φ' = 1 − t² from t = tanh a.
    """
    if code == IDENTITY:
        return
    n_rows, n = A.shape
    if code == TANH:
        _tanh_array(_view(A, 0, n_rows * n), _view(D, 0, n_rows * n))
    for i in range(n_rows):
        for j in range(n):
            if code == TANH:
                t = A[i, j]
                D[i, j] = 1.0 - t * t
            else:
                A[i, j], D[i, j] = _softplus(A[i, j])


@inline
def _activate(code, A, D):
    """A ← φ(A) and D ← φ'(A), in hyper-dual arithmetic, for the pre-activations A whose real
    parts :func:`_activate_real` has done: the ε parts, with φ'' and φ''' from
    :func:`_higher_derivatives` (the identity: nothing, as there).

    The pass calls the two itself: called from here, :func:`_activate_real` would be
    compiled once more than from the real pass (:mod:`stabsim._jit`).
    """
    if code == IDENTITY:
        return
    n_rows, n = A.shape[1], A.shape[2]
    for i in range(n_rows):
        for j in range(n):
            f1 = D[_R, i, j]
            f2, f3 = _higher_derivatives(code, A[_R, i, j], f1)
            au = A[_U, i, j]
            av = A[_V, i, j]
            auv = A[_UV, i, j]
            A[_U, i, j] = f1 * au
            D[_U, i, j] = f2 * au
            A[_V, i, j] = f1 * av
            D[_V, i, j] = f2 * av
            A[_UV, i, j] = f1 * auv + f2 * au * av
            D[_UV, i, j] = f2 * auv + f3 * au * av


@inline
def _times(P, D):
    """P ← P ⊙ D in hyper-dual arithmetic (elementwise)."""
    for i in range(P.shape[1]):
        for j in range(P.shape[2]):
            p0 = P[_R, i, j]
            d0 = D[_R, i, j]
            pu = P[_U, i, j]
            pv = P[_V, i, j]
            P[_R, i, j] = p0 * d0
            P[_U, i, j] = pu * d0 + p0 * D[_U, i, j]
            P[_V, i, j] = pv * d0 + p0 * D[_V, i, j]
            P[_UV, i, j] = (P[_UV, i, j] * d0 + pu * D[_V, i, j] + pv * D[_U, i, j]
                            + p0 * D[_UV, i, j])


@inline
def _times_real(P, D):
    """P ← P ⊙ D for real arrays of one 2-D shape."""
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            P[i, j] *= D[i, j]


@inline
def _slot(mask):
    """Storage index of the part with ε-mask ``mask`` (0 real, 1 ε₁, 2 ε₂, 3 ε₁ε₂)."""
    return _R if mask == 0 else (_U if mask == 1 else mask)


@inline
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


@inline
def _weights(x, sizes, offsets, k):
    """The block W_k of a θ-sized vector x as an n_k × n_{k−1} matrix (a view)."""
    first = offsets[k - 1]
    return _view(x, first, (sizes[k], sizes[k - 1]))


@inline
def _copy_into(dst, src):
    """dst ← src for 2-D arrays of one shape."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@inline
def _state_starts(p, sizes):
    """Offsets of the layers' blocks in a state of :func:`linearise` (entry L: its length).

    Entry 0 holds L(θ); then, for each hidden layer l, three N × n_l blocks: h_l = φ(a_l),
    φ'(a_l) and δ_l; for the output layer one block, δ_L = (f − Y)/N.
    """
    n_layers = sizes.shape[0] - 1
    n_rows = p.X.shape[0]
    starts = np.empty(n_layers + 1, np.int64)
    starts[0] = 1
    for k in range(1, n_layers + 1):
        starts[k] = starts[k - 1] + (3 if k < n_layers else 1) * n_rows * sizes[k]
    return starts


@inline
def _layer_starts(sizes, n_rows, parts, first):
    """Offsets in a pass's buffer of the layers ``first``..L, each held as ``parts`` blocks
    of N × n_l (layer ``first + i`` from entry i on; the last entry: the length), and the
    widest layer of all."""
    n_layers = sizes.shape[0] - 1
    start = np.empty(n_layers + 2 - first, np.int64)
    start[0] = 0
    widest = 0
    for k in range(n_layers + 1):
        widest = max(widest, sizes[k])
        if k >= first:
            start[k - first + 1] = start[k - first] + parts * n_rows * sizes[k]
    return start, widest


@inline
def _block(state, starts, k, which, n_rows, n):
    """Block ``which`` (0: h, 1: φ', 2: δ) of layer k of a state, shape (N, n)."""
    first = starts[k - 1] + which * n_rows * n
    return _view(state, first, (n_rows, n))


@inline
def _transpose_into(M, out):
    """out ← Mᵀ as a C-contiguous array of shape (M.shape[1], M.shape[0]) taken from the
    front of ``out`` (1-D).

    The forward products h Wᵀ are made with this copy: OpenBLAS multiplies by a C-ordered
    matrix faster than by the transposed view of one (measured, one thread, 256 × 20 by
    20 × 20: 4.0 µs against 6.8 µs, and a linearised Hessian-vector product at d = 1201
    116 → 101 µs; no difference at 64 × 64).
    """
    n_rows, n = M.shape
    T = _view(out, 0, (n, n_rows))
    for i in range(n_rows):
        for j in range(n):
            T[j, i] = M[i, j]
    return T


@inline
def _tangent_sum(out, other, s, c):
    """out ← s (out + other) + c, with c added to every row (``other`` may have 0 rows:
    out ← s out + c)."""
    n_rows, n = out.shape
    for i in range(n_rows):
        if other.shape[0] > 0:
            for j in range(n):
                out[i, j] = s * (out[i, j] + other[i, j]) + c[j]
        else:
            for j in range(n):
                out[i, j] = s * out[i, j] + c[j]


@inline
def _tangent_activate(code, a_dot, h, f1, q):
    """ḣ = φ'(a) ȧ written over ȧ = ``a_dot``, and q ← r ȧ with r = φ''(a)/φ'(a) (tanh: −2h;
    softplus: 1 − σ(a) = 1 − φ'(a)), from h = φ(a) and φ'(a) of a state.

    This and :func:`_tangent_delta` run over the layer's entries as one 1-D array: over a
    row of n_l = 20 entries the compiler's vector loop never ran (it needs 24 or more;
    measured, a Hessian-vector product at d = 1201: 96.5 → 94.1 µs).
    """
    a_flat = _view(a_dot, 0, a_dot.size)
    h_flat = _view(h, 0, h.size)
    f1_flat = _view(f1, 0, f1.size)
    q_flat = _view(q, 0, q.size)
    if code == TANH:
        for i in range(a_flat.shape[0]):
            a = a_flat[i]
            a_flat[i] = f1_flat[i] * a
            q_flat[i] = -2.0 * h_flat[i] * a
    else:
        for i in range(a_flat.shape[0]):
            a = a_flat[i]
            a_flat[i] = f1_flat[i] * a
            q_flat[i] = (1.0 - f1_flat[i]) * a


@inline
def _tangent_delta(code, d_dot, other, s, f1, delta, q):
    """δ̇ ← s (d_dot + other) φ'(a) + δ q, written over ``d_dot`` (the identity: φ' = 1 and
    q = 0); over the entries as one 1-D array (:func:`_tangent_activate`)."""
    d_flat = _view(d_dot, 0, d_dot.size)
    o_flat = _view(other, 0, other.size)
    if code == IDENTITY:
        for i in range(d_flat.shape[0]):
            d_flat[i] = s * (d_flat[i] + o_flat[i])
        return
    f1_flat = _view(f1, 0, f1.size)
    delta_flat = _view(delta, 0, delta.size)
    q_flat = _view(q, 0, q.size)
    for i in range(d_flat.shape[0]):
        d_flat[i] = s * (d_flat[i] + o_flat[i]) * f1_flat[i] + delta_flat[i] * q_flat[i]


@jit(kernel_only=True)
def _tangent_pass(theta, p, v, state, out):
    """out ← ∇²L(θ) v from ``state = linearise(θ, p)`` (:func:`_real_pass`); returns L(θ)
    (entry 0 of the state). ``out`` is contiguous.

    The ε parts alone of the dual pass at θ + εv; every real part is read from the state.
    With V_l, c_l the parts of v in W_l and b_l, forward (ḣ_0 = 0: the inputs carry no ε)

        ȧ_l = s_l (ḣ_{l−1} W_lᵀ + h_{l−1} V_lᵀ) + c_l,    ḣ_l = φ'(a_l) ȧ_l,

    and backward from δ̇_L = ȧ_L/N

        (∇²L v)_{W_l} = s_l (δ̇_lᵀ h_{l−1} + δ_lᵀ ḣ_{l−1}),    (∇²L v)_{b_l} = Σ_n δ̇_l,
        δ̇_{l−1} = s_l (δ̇_l W_l + δ_l V_l) φ'(a_{l−1}) + δ_{l−1} r_{l−1} ȧ_{l−1},

    where r = φ''/φ' (−2h for tanh, 1 − σ for softplus, 0 for the identity): the term
    s_l (δ_l W_l) φ''(a_{l−1}) ȧ_{l−1} of the dual product, written with the state's
    δ_{l−1} = s_l (δ_l W_l) φ'(a_{l−1}). Per layer 6 units of N × n_{l−1} × n_l products
    (2 for the first) and three loops over the layer's N × n_l entries (the sum and the
    activation's derivative forward, δ̇ backward; the bias's sums besides): no activation is
    evaluated and no real part copied.
    """
    theta = np.ascontiguousarray(theta)
    v = np.ascontiguousarray(v)
    sizes, offsets = _layout(p)
    starts = _state_starts(p, sizes)
    n_layers = sizes.shape[0] - 1
    n_rows = p.X.shape[0]
    has_bias = p.bias != 0.0
    code = int(p.activation)
    # ȧ_l (then ḣ_l, then δ̇_l written over it) and r_l ȧ_l, each N × n_l, for l = 1..L
    start, widest = _layer_starts(sizes, n_rows, 1, 1)
    size = start[n_layers]
    square = widest * widest
    work = np.empty(2 * size + n_rows * widest + 3 * square + widest)
    dots = _view(work, 0, size)
    qs = _view(work, size, size)
    other = _view(work, 2 * size, n_rows * widest)
    g_other = _view(work, 2 * size + n_rows * widest, square)
    transposed = _view(work, 2 * size + n_rows * widest + square, 2 * square)
    zeros = _view(work, 2 * size + n_rows * widest + 3 * square, widest)
    zeros[:] = 0.0
    no_rows = _view(other, 0, (0, 1))

    for k in range(1, n_layers + 1):
        n_in, n_out = sizes[k - 1], sizes[k]
        w_end = offsets[k - 1] + n_out * n_in
        c = _view(v, w_end, n_out) if has_bias else _view(zeros, 0, n_out)
        a_dot = _view(dots, start[k - 1], (n_rows, n_out))
        V_t = _transpose_into(_weights(v, sizes, offsets, k), _view(transposed, square, square))
        second = no_rows
        if k == 1:
            np.dot(p.X, V_t, a_dot)
        else:
            h_dot = _view(dots, start[k - 2], (n_rows, n_in))
            second = _view(other, 0, (n_rows, n_out))
            W_t = _transpose_into(_weights(theta, sizes, offsets, k), transposed)
            np.dot(h_dot, W_t, a_dot)
            np.dot(_block(state, starts, k - 1, 0, n_rows, n_in), V_t, second)
        _tangent_sum(a_dot, second, p.scales[k - 1], c)
        if k < n_layers and code != IDENTITY:
            _tangent_activate(code, a_dot, _block(state, starts, k, 0, n_rows, n_out),
                              _block(state, starts, k, 1, n_rows, n_out),
                              _view(qs, start[k - 1], (n_rows, n_out)))
    _tangent_sum(_view(dots, start[n_layers - 1], (n_rows, sizes[n_layers])), no_rows,
                 1.0 / n_rows, zeros)  # δ̇_L = ȧ_L/N

    for k in range(n_layers, 0, -1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        s = p.scales[k - 1]
        d_dot = _view(dots, start[k - 1], (n_rows, n_out))
        delta = _block(state, starts, k, 2 if k < n_layers else 0, n_rows, n_out)
        G = _weights(out, sizes, offsets, k)
        if k == 1:
            np.dot(d_dot.T, p.X, G)
            _tangent_sum(G, no_rows, s, zeros)
        else:
            h_dot = _view(dots, start[k - 2], (n_rows, n_in))
            G_other = _view(g_other, 0, (n_out, n_in))
            np.dot(d_dot.T, _block(state, starts, k - 1, 0, n_rows, n_in), G)
            np.dot(delta.T, h_dot, G_other)
            _tangent_sum(G, G_other, s, zeros)
        if has_bias:
            _column_sums(d_dot, _view(out, w_end, n_out))
        if k == 1:
            break
        W = _weights(theta, sizes, offsets, k)
        V = _weights(v, sizes, offsets, k)
        # δ̇_{k−1} over ḣ_{k−1}, which the product above was the last to read
        second = _view(other, 0, (n_rows, n_in))
        np.dot(d_dot, W, h_dot)
        np.dot(delta, V, second)
        _tangent_delta(code, h_dot, second, s, _block(state, starts, k - 1, 1, n_rows, n_in),
                       _block(state, starts, k - 1, 2, n_rows, n_in),
                       _view(qs, start[k - 2], (n_rows, n_in)))
    return state[0]


@entry_for(_tangent_pass)
def _tangent_pass_from_python(theta, p, v, state, out):
    """:func:`_tangent_pass` called from Python (:meth:`Network._fn`)."""
    return _tangent_pass(theta, p, v, state, out)


@jit(kernel_only=True)
def _real_pass(theta, p, g_out, save):
    """Backpropagation in real numbers: returns L(θ), with g_out ← ∇L(θ) and ``save`` ← the
    state of :func:`linearise` when they have length > 0 (the forward pass alone when both
    are empty).

    Forward a_l = s_l h_{l−1} W_lᵀ + b_l, h_l = φ(a_l); backward from δ_L = (f − Y)/N,
    ∂L/∂W_l = s_l δ_lᵀ h_{l−1}, ∂L/∂b_l = Σ_n δ_l, δ_{l−1} = s_l (δ_l W_l) ⊙ φ'(a_{l−1}).
    Per layer 3 units of N × n_{l−1} × n_l products with the gradient, 2 for the state
    alone. GD, Adam and SGD need this pass and :func:`_tangent_pass`, not the hyper-dual
    :func:`network_pass` (see the module's notes). The hyper-dual pass's real parts agree
    with this pass's results to round-off, not bit for bit: its matrix products run over
    the stacked parts.
    """
    theta = np.ascontiguousarray(theta)
    sizes, offsets = _layout(p)
    starts = _state_starts(p, sizes)
    saving = save.shape[0] > 0
    n_layers = sizes.shape[0] - 1
    n_rows = p.X.shape[0]
    has_bias = p.bias != 0.0
    code = int(p.activation)
    # h_0..h_L (h_l overwritten by δ_l on the way back) and φ'(a_l), each of shape (N, n_l);
    # one allocation (see network_pass)
    start, widest = _layer_starts(sizes, n_rows, 1, 0)
    size = start[n_layers + 1]
    work = np.empty(2 * size + widest * widest)
    hbuf = _view(work, 0, size)
    dbuf = _view(work, size, size)
    transposed = _view(work, 2 * size, widest * widest)

    for k in range(1, n_layers + 1):
        n_in, n_out = sizes[k - 1], sizes[k]
        w_end = offsets[k - 1] + n_out * n_in
        W_t = _transpose_into(_weights(theta, sizes, offsets, k), transposed)
        A = _view(hbuf, start[k], (n_rows, n_out))
        if k == 1:
            np.dot(p.X, W_t, A)
        else:
            np.dot(_view(hbuf, start[k - 1], (n_rows, n_in)), W_t, A)
        s = p.scales[k - 1]
        if s != 1.0:
            _scale(A, s)
        if has_bias:
            _add_row(A, _view(theta, w_end, n_out))
        if k < n_layers:
            D = _view(dbuf, start[k], (n_rows, n_out))
            _activate_real(code, A, D)
            if saving:
                _copy_into(_block(save, starts, k, 0, n_rows, n_out), A)
                f1 = _block(save, starts, k, 1, n_rows, n_out)
                if code == IDENTITY:  # φ' = 1, which D does not hold (:func:`_activate_real`)
                    f1[:] = 1.0
                else:
                    _copy_into(f1, D)

    n_outputs = sizes[n_layers]
    out_layer = _view(hbuf, start[n_layers], (n_rows, n_outputs))
    loss = _output_error(out_layer, p.Y)
    if g_out.shape[0] == 0 and not saving:
        return loss
    if saving:
        save[0] = loss
        _copy_into(_block(save, starts, n_layers, 0, n_rows, n_outputs), out_layer)

    for k in range(n_layers, 0, -1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        s = p.scales[k - 1]
        delta = _view(hbuf, start[k], (n_rows, n_out))
        H = p.X if k == 1 else _view(hbuf, start[k - 1], (n_rows, n_in))
        if g_out.shape[0] > 0:
            np.dot(delta.T, H, _weights(g_out, sizes, offsets, k))
            if s != 1.0:
                for i in range(off, w_end):
                    g_out[i] *= s
            if has_bias:
                _column_sums(delta, _view(g_out, w_end, n_out))
        if k == 1:
            break
        # δ_{k−1} = s (δ_k W_k) ⊙ φ'(a_{k−1}), written over h_{k−1} (no longer needed)
        np.dot(delta, _weights(theta, sizes, offsets, k), H)
        if s != 1.0:
            _scale(H, s)
        if code != IDENTITY:  # else φ' = 1
            _times_real(H, _view(dbuf, start[k - 1], (n_rows, n_in)))
        if saving:
            _copy_into(_block(save, starts, k - 1, 2, n_rows, n_in), H)
    return loss


@entry_for(_real_pass)
def _real_pass_from_python(theta, p, g_out, save):
    """:func:`_real_pass` called from Python (:meth:`Network._fn`)."""
    return _real_pass(theta, p, g_out, save)


@inline
def _output_error(out_layer, Y):
    """out_layer ← δ_L = (f − Y)/N from the outputs f in ``out_layer`` (shape (N, n_L));
    returns L = |f − Y|²/(2N)."""
    n_rows = out_layer.shape[0]
    total = 0.0
    for i in range(n_rows):
        for j in range(out_layer.shape[1]):
            e = out_layer[i, j] - Y[i, j]
            out_layer[i, j] = e
            total += e * e
    _scale(out_layer, 1.0 / n_rows)
    return 0.5 * total / n_rows


@jit(kernel_only=True)
def network_pass(theta, p, u, v, outs):
    """The hyper-dual backpropagation pass at θ + ε₁u + ε₂v; returns L(θ).

    ``outs`` (4 arrays) receive the ε₁ part (∇²L u), the real part (∇L), the ε₂ part (∇²L v)
    and the ε₁ε₂ part (∇³L[u, v]); an array of length 0 is not written (all four empty: the
    forward pass alone). Per layer 25 units of N × n_{l−1} × n_l products when all four are
    asked for. The value, the gradient and the Hessian-vector products have passes of
    their own (:func:`_real_pass`, :func:`_tangent_pass`): this one is for ∇³L.
    """
    theta = np.ascontiguousarray(theta)
    u = np.ascontiguousarray(u)
    v = np.ascontiguousarray(v)
    sizes, offsets = _layout(p)
    hu_out, g_out, hv_out, t_out = outs
    backward = hu_out.shape[0] + g_out.shape[0] + hv_out.shape[0] + t_out.shape[0] > 0
    n_layers = sizes.shape[0] - 1
    n_rows = p.X.shape[0]
    has_bias = p.bias != 0.0
    code = int(p.activation)
    # activations h_0..h_L (h_L: the output, then δ_L; h_l is overwritten by δ_l on the way
    # back) and φ'(a_l) for the hidden layers, each of shape (4, N, n_l)
    start, widest = _layer_starts(sizes, n_rows, 4, 0)
    # one allocation for every buffer of the pass: with glibc, separate blocks of about half
    # the pass's memory each leave more free memory at the top of the heap than its trim
    # threshold (twice the largest block freed), so it was returned to the system after
    # every pass and page-faulted in again by the next (half the time of a Hessian-vector
    # product at d = 9473: 1.8 ms against 0.87 ms, one BLAS thread)
    size = start[n_layers + 1]
    square = widest * widest
    work = np.empty(2 * size + 2 * n_rows * widest + 4 * square)
    hbuf = _view(work, 0, size)
    dbuf = _view(work, size, size)
    tmp = _view(work, 2 * size, 2 * n_rows * widest)
    g_tmp = _view(work, 2 * size + 2 * n_rows * widest, square)
    transposed = _view(work, 2 * size + 2 * n_rows * widest + square, 3 * square)

    for k in range(1, n_layers + 1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        A = _view(hbuf, start[k], (4, n_rows, n_out))
        W0_t = _transpose_into(_weights(theta, sizes, offsets, k), transposed)
        Wu_t = _transpose_into(_weights(u, sizes, offsets, k), _view(transposed, square, square))
        Wv_t = _transpose_into(_weights(v, sizes, offsets, k),
                               _view(transposed, 2 * square, square))
        if k == 1:
            _input_dot(p.X, W0_t, Wu_t, Wv_t, A)
        else:
            H = _view(hbuf, start[k - 1], (4, n_rows, n_in))
            _hd_dot(H, W0_t, Wu_t, Wv_t, A, tmp)
        s = p.scales[k - 1]
        if s != 1.0:
            _scale(_view(A, 0, (4 * n_rows, n_out)), s)
        if has_bias:
            _add_row(A[_R], _view(theta, w_end, n_out))
            _add_row(A[_U], _view(u, w_end, n_out))
            _add_row(A[_V], _view(v, w_end, n_out))
        if k < n_layers:
            D = _view(dbuf, start[k], (4, n_rows, n_out))
            _activate_real(code, A[_R], D[_R])
            _activate(code, A, D)

    n_outputs = sizes[n_layers]
    out_layer = _view(hbuf, start[n_layers], (4, n_rows, n_outputs))
    loss = _output_error(out_layer[_R], p.Y)
    if not backward:
        return loss
    for c in (_U, _V, _UV):  # the ε parts of δ_L = (f − Y)/N
        _scale(out_layer[c], 1.0 / n_rows)

    for k in range(n_layers, 0, -1):
        n_in, n_out = sizes[k - 1], sizes[k]
        off = offsets[k - 1]
        w_end = off + n_out * n_in
        s = p.scales[k - 1]
        delta = _view(hbuf, start[k], (4, n_rows, n_out))
        H = _view(hbuf, start[k - 1], (4, n_rows, n_in))
        G_tmp = _view(g_tmp, 0, (n_out, n_in))
        for c in range(4):
            slot = _slot(c)
            out = outs[slot]
            if out.shape[0] == 0:
                continue
            # part c of s δᵀh: Σ over ε-masks a ⊆ c of δ_a ᵀ h_(c∖a); the inputs h_0 = X
            # have no ε parts, so for the first layer only a = c remains
            G = _weights(out, sizes, offsets, k)
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
                _column_sums(delta[slot], _view(out, w_end, n_out))
        if k == 1:
            break
        W0 = _weights(theta, sizes, offsets, k)
        Wu = _weights(u, sizes, offsets, k)
        Wv = _weights(v, sizes, offsets, k)
        # δ_{k−1} = (s δ_k W_k) ⊙ φ'(a_{k−1}), written over h_{k−1} (no longer needed)
        _hd_dot(delta, W0, Wu, Wv, H, tmp)
        if s != 1.0:
            _scale(_view(H, 0, (4 * n_rows, n_in)), s)
        if code != IDENTITY:  # else φ' = 1
            _times(H, _view(dbuf, start[k - 1], (4, n_rows, n_in)))
    return loss


@entry_for(network_pass)
def network_pass_from_python(theta, p, u, v, outs):
    """:func:`network_pass` called from Python (:meth:`Network._fn`)."""
    return network_pass(theta, p, u, v, outs)


@inline
def _hvp(theta, p, v, out):
    """out ← ∇²L(θ) v (``out`` contiguous): :func:`_real_pass` saving the state, then
    :func:`_tangent_pass` from it, 2 + 6 units per layer, as many as the dual pass would
    take; returns L(θ)."""
    state = _empty_state(p, 1)
    _real_pass(theta, p, np.empty(0), state)
    return _tangent_pass(theta, p, v, state, out)


class LinearisedPass(NamedTuple):
    """Which pass :func:`chunked_pass` runs on each block, as a type (resolved when it is
    compiled): :func:`_real_pass` (L, ∇L into ``outs[1]``, the state into ``save``) or,
    ``tangent`` true, :func:`_tangent_pass` from the state ``saved`` (∇²L v into
    ``outs[0]``). The choice between these two is made at run time: every engine that
    measures the sharpness needs both, and one parallel loop holding the two compiles
    faster than two loops holding one each (see :func:`chunked_pass`)."""

    tangent: bool


#: :func:`chunked_pass`'s kind for :func:`_real_pass` and for :func:`_tangent_pass`
REAL_PASS, TANGENT_PASS = LinearisedPass(False), LinearisedPass(True)


class ProductPass(NamedTuple):
    """A Hessian-vector product from scratch, :func:`_hvp` (∇²L v into ``outs[0]``)."""


class HyperDualPass(NamedTuple):
    """The hyper-dual :func:`network_pass` (all four ``outs``)."""


def _block_pass(kind, theta, p, u, v, outs, save, saved):
    """L(θ) from the pass ``kind`` on the examples of ``p`` (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


@overload(_block_pass, jit_options=KERNEL_ONLY)
def _block_pass_for_kind(kind, theta, p, u, v, outs, save, saved):
    kind = getattr(kind, "instance_class", None)
    if kind is LinearisedPass:
        def linearised(kind, theta, p, u, v, outs, save, saved):
            if kind.tangent:
                return _tangent_pass(theta, p, v, saved, outs[0])
            return _real_pass(theta, p, outs[1], save)

        return linearised
    if kind is ProductPass:
        return lambda kind, theta, p, u, v, outs, save, saved: _hvp(theta, p, v, outs[0])
    if kind is HyperDualPass:
        return lambda kind, theta, p, u, v, outs, save, saved: network_pass(theta, p, u, v,
                                                                             outs)


def _into(result, out):
    """out ← result (the passes write contiguous arrays; ``out`` may be any 1-D view): a
    loop in kernels, NumPy's copy when a :class:`stabsim.losses.Network`'s methods run the
    family's functions as Python."""
    out[:] = result


@overload(_into, jit_options=KERNEL_ONLY)
def _into_in_kernels(result, out):
    def loop(result, out):
        for i in range(out.shape[0]):
            out[i] = result[i]

    return loop


@jit(parallel=True, kernel_only=True)
def chunked_pass(kind, theta, p, u, v, outs, save, saved):
    """The pass ``kind`` (:class:`LinearisedPass`, :class:`ProductPass` or
    :class:`HyperDualPass`) of the network on k = min(chunks, N) blocks of consecutive
    examples, in parallel.

    ``outs`` (∇²L u, ∇L, ∇²L v, ∇³L[u, v]; length 0: not asked for), ``save`` and
    ``saved`` (states) are those of the serial passes. One function whatever the pass,
    specialised by the type of ``kind``: choosing among all the passes at run time compiled
    all of them into every kernel. Measured cold, CPU time, the first ``run_gd`` on a
    1-6-6-6-1 network in two blocks, when that was chosen: 16.4–16.6 s, against 21.2 s with
    the choice at run time and 17.9–18.1 s with the single pass of before the split. The
    real and the tangent pass share a type and are chosen between at run time: engines that
    measure the sharpness need both, and each parallel loop costs Numba its parfor passes
    and the compilation of its outlined body. One loop for the two rather than one for each:
    the same first call 10.36, 10.22, 9.93 → 9.33, 9.39, 9.48 s, alternating.

    Block c holds the examples [⌊cN/k⌋, ⌊(c+1)N/k⌋), n_c of them. L and every part of the
    pass (∇L, ∇²L u, ∇²L v, ∇³L[u, v]) are means over the examples, so each is the
    weighted sum over the blocks of the block's own mean,

        L = Σ_c (n_c/N) L_c,

    summed in the order of the blocks, whatever the threads (the result depends on
    ``chunks``, not on how many threads run). The blocks run on Numba's threads (``prange``;
    ``numba.set_num_threads`` bounds them). A state (``save``, ``saved``) is the blocks'
    states of :func:`_real_pass` one after another, block c's from c + ⌊cN/k⌋·r on
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
        losses[c] = _block_pass(kind, theta, block, u, v, mine, save[first:last],
                                saved[first:last])
    blas_threads_here(blas_threads)
    weights = np.empty(k)  # n_c/N
    for c in range(k):
        weights[c] = ((c + 1) * n_rows // k - c * n_rows // k) / n_rows
    loss = 0.0
    for c in range(k):
        loss += weights[c] * losses[c]
    for j in range(4):  # the blocks in order for each entry, the loop over entries inside
        out = outs[j]
        for i in range(out.shape[0]):
            out[i] = 0.0
        for c in range(k):
            part = parts[c, lengths[j]:lengths[j + 1]]
            for i in range(out.shape[0]):
                out[i] += weights[c] * part[i]
    return loss


@entry_for(chunked_pass)
def chunked_pass_from_python(kind, theta, p, u, v, outs, save, saved):
    """:func:`chunked_pass` called from Python (:meth:`Network._fn`)."""
    return chunked_pass(kind, theta, p, u, v, outs, save, saved)


@inline
def _row_length(sizes):
    """Per-example length of a state of :func:`_real_pass`: 3 n_l for each hidden layer
    (h_l, φ'(a_l), δ_l) and n_L for the output layer (:func:`_state_starts`)."""
    n_layers = sizes.shape[0] - 1
    length = int(sizes[n_layers])
    for k in range(1, n_layers):
        length += 3 * int(sizes[k])
    return length


@inline
def _empty_state(p, blocks):
    """An uninitialised state of :func:`linearise` for the examples of ``p`` in ``blocks``
    blocks (:func:`chunked_pass`; 1: the serial pass)."""
    return np.empty(blocks + p.X.shape[0] * _row_length(p.sizes))


def _family_functions(chunked):
    """The protocol's functions of :class:`NetworkParams` (``chunked`` false: each pass is
    the serial passes) or of :class:`ChunkedNetworkParams` (:func:`chunked_pass`).

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
            return chunked_pass(REAL_PASS, theta, p, theta, theta, (none, none, none, none),
                                none, none)
        return _real_pass(theta, p, none, none)

    @jit(inline=True)
    def value_grad(theta, p, out):
        """L(θ) and out ← ∇L(θ): one forward and one backward pass (also the family's
        ``grad``, whose callers ignore the value)."""
        none = np.empty(0)
        g = np.empty(theta.shape[0])
        if chunked:
            loss = chunked_pass(REAL_PASS, theta, p, theta, theta, (none, g, none, none),
                                none, none)
        else:
            loss = _real_pass(theta, p, g, none)
        _into(g, out)
        return loss

    @jit(inline=True)
    def hvp(theta, p, v, out):
        """out ← ∇²L(θ) v, the ε part of backpropagation on dual numbers θ + εv: the state
        of :func:`linearise`, then the tangent pass (:func:`_hvp`)."""
        hv = np.empty(theta.shape[0])
        if chunked:
            none = np.empty(0)
            chunked_pass(ProductPass(), theta, p, v, v, (hv, none, none, none), none, none)
        else:
            _hvp(theta, p, v, hv)
        _into(hv, out)

    @jit(inline=True)
    def linearise(theta, p):
        """The real parts of the pass at θ that every Hessian-vector product at θ shares.

        One forward and backward pass in real numbers (a gradient without ∂L/∂W) that
        saves, layer by layer, h_l, φ'(a_l) and δ_l (see :func:`_state_starts`).
        :func:`hvp_linearised` then computes only the ε parts (:func:`_tangent_pass`): per
        layer 6 instead of 8 units of N × n_{l−1} × n_l products, and no activation
        evaluated.
        """
        none = np.empty(0)
        state = _empty_state(p, min(int(p.chunks), p.X.shape[0]) if chunked else 1)
        if chunked:
            chunked_pass(REAL_PASS, theta, p, theta, theta, (none, none, none, none), state,
                         none)
        else:
            _real_pass(theta, p, none, state)
        return state

    @jit(inline=True)
    def value_grad_linearise(theta, p, out):
        """L(θ), out ← ∇L(θ) and the state of :func:`linearise`, from one pass in real
        numbers (the gradient's, saving the state on its way)."""
        none = np.empty(0)
        g = np.empty(theta.shape[0])
        state = _empty_state(p, min(int(p.chunks), p.X.shape[0]) if chunked else 1)
        if chunked:
            loss = chunked_pass(REAL_PASS, theta, p, theta, theta, (none, g, none, none),
                                state, none)
        else:
            loss = _real_pass(theta, p, g, state)
        _into(g, out)
        return loss, state

    @jit(inline=True)
    def hvp_linearised(theta, p, state, v, out):
        """out ← ∇²L(θ) v, the real parts of the pass read from ``state = linearise(θ, p)``."""
        hv = np.empty(theta.shape[0])
        if chunked:
            none = np.empty(0)
            chunked_pass(TANGENT_PASS, theta, p, v, v, (hv, none, none, none), none, state)
        else:
            _tangent_pass(theta, p, v, state, hv)
        _into(hv, out)

    @jit(inline=True)
    def d3(theta, p, u, v, out):
        """out ← ∇³L(θ)[u, v]: the ε₁ε₂ part of backpropagation on θ + ε₁u + ε₂v."""
        none = np.empty(0)
        t = np.empty(theta.shape[0])
        if chunked:
            chunked_pass(HyperDualPass(), theta, p, u, v, (none, none, none, t), none, none)
        else:
            network_pass(theta, p, u, v, (none, none, none, t))
        _into(t, out)

    @jit(inline=True)
    def all_derivatives(theta, p, u, v):
        """L(θ), ∇L, ∇²L u, ∇²L v and ∇³L[u, v], from one hyper-dual pass."""
        d = theta.shape[0]
        g, hu, hv, t = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
        none = np.empty(0)
        if chunked:
            loss = chunked_pass(HyperDualPass(), theta, p, u, v, (hu, g, hv, t), none, none)
        else:
            loss = network_pass(theta, p, u, v, (hu, g, hv, t))
        return loss, g, hu, hv, t

    return {"value": value, "value_grad": value_grad, "grad": value_grad, "hvp": hvp,
            "linearise": linearise, "hvp_linearised": hvp_linearised,
            "value_grad_linearise": value_grad_linearise, "d3": d3,
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


def dim_of(p) -> int:
    """The number of weights (and biases) of the layers that ``p.sizes`` gives.

    Raises
    ------
    ValueError
        If the sizes are not positive integers, the inputs, targets or multipliers disagree
        with them, or the activation code, the bias flag or (a chunked record's) number of
        blocks is not one the passes know: a number of blocks below 1 had run no block (L = 0
        and ∇L = 0, checks and all), and an unknown activation code one of the others.
    """
    codes = sorted(set(ACTIVATIONS.values()))
    if p.activation not in codes:
        raise ValueError(f"activation must be one of the codes {codes} (identity, tanh, "
                         f"softplus), got {p.activation}")
    if p.bias not in (0.0, 1.0):
        raise ValueError(f"bias must be 1.0 (with biases) or 0.0 (without), got {p.bias}")
    chunks = getattr(p, "chunks", 1.0)
    if not (chunks >= 1.0 and chunks == round(chunks)):
        raise ValueError(f"chunks must be a whole number ≥ 1 of blocks of examples, got "
                         f"{chunks}")
    sizes = p.sizes
    if sizes.shape[0] < 2 or not np.all((sizes >= 1) & (sizes == np.round(sizes))):
        raise ValueError(f"sizes must hold at least two positive integer layer sizes, got "
                         f"{sizes}")
    n = sizes.astype(np.int64)
    if p.X.shape[1] != n[0] or p.Y.shape[1] != n[-1] or p.scales.shape[0] != n.size - 1:
        raise ValueError(f"layer sizes {tuple(n.tolist())} need X of shape (N, {n[0]}), Y of "
                         f"shape (N, {n[-1]}) and scales of shape ({n.size - 1},), got X "
                         f"{p.X.shape}, Y {p.Y.shape}, scales {p.scales.shape}")
    per_layer = n[1:] * n[:-1] + (n[1:] if p.bias != 0.0 else 0)
    return int(per_layer.sum())


_SHAPES = {"X": ("N", None), "Y": ("N", None), "sizes": (None,), "scales": (None,)}
SERIAL = _family_functions(chunked=False)
CHUNKED = _family_functions(chunked=True)
FAMILY = register_family(NetworkParams, subset=subset, examples=examples, shapes=_SHAPES,
                         dim_of=dim_of,
                         **{name: f for name, f in SERIAL.items() if name != "all_derivatives"})
CHUNKED_FAMILY = register_family(
    ChunkedNetworkParams, subset=chunked_subset, examples=examples, shapes=_SHAPES,
    dim_of=dim_of, threaded=True,
    **{name: f for name, f in CHUNKED.items() if name != "all_derivatives"})
