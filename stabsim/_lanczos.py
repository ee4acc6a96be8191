"""Compiled Lanczos iteration for the top eigenpair of a symmetric operator.

Used where the top eigenvalue is needed at every step (the GD engine). The operator is either
the Hessian of a loss applied by Hessian-vector products (:class:`HessianAt`: O(d) memory, the
default), a dense matrix plus a low-rank factor (:class:`DenseHessian`, for families whose
product costs as much as forming the matrix), or the diagonally preconditioned Hessian
D ∇²L D of the adaptive methods (:class:`ScaledHessianAt`). Warm-started from the previous
eigenvector, one or two products usually suffice per step.
"""

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import KERNEL_ONLY, inline, jit
from ._linalg import apply_sum, dot, scale_into
from ._pages import large_empty
from .losses._protocol import hessian_drift as loss_hessian_drift
from .losses._protocol import hessian_frobenius as loss_hessian_frobenius
from .losses._protocol import hessian_parts as loss_hessian_parts
from .losses._protocol import hvp_linearised as loss_hvp_linearised
from .losses._protocol import linearise as loss_linearise
from .losses._protocol import registers


class DenseHessian(NamedTuple):
    """The matrix H + FᵀF held as a dense part and a factor (F of r rows; r = 0: just H); H is
    symmetric and given by its upper triangle (the entries below the diagonal are not read,
    as the protocol's ``hessian_parts`` leaves them)."""

    H: np.ndarray
    F: np.ndarray


class HessianAt(NamedTuple):
    """∇²L(θ) of the loss family of ``p``, applied by its Hessian-vector product given
    ``state = linearise(θ, p)`` (:func:`hessian_at` makes one)."""

    theta: np.ndarray
    p: object
    state: np.ndarray


class ScaledHessianAt(NamedTuple):
    """D ∇²L(θ) D with D = diag(``scale``), applied by one Hessian-vector product.

    With ``scale`` = P^{-1/2} for a diagonal preconditioner P, its eigenvalues are those of
    P⁻¹∇²L (the generalised problem ∇²L u = λ P u, u = D v): the preconditioned sharpness
    of the adaptive methods. ``tmp`` is a work vector of length d.
    """

    theta: np.ndarray
    p: object
    state: np.ndarray
    scale: np.ndarray
    tmp: np.ndarray


class Deflated(NamedTuple):
    """P A P with A the operator ``op`` and P = I − Σ_k u_k u_kᵀ the projection onto the
    complement of the first ``count`` of the orthonormal vectors stored one after the other
    in ``locked`` (each of length d): its top eigenpair is A's next one below those vectors'
    eigenpairs (when they are A's top ones). ``scale`` is a lower bound on |A| (the largest
    |λ| of the locked pairs), from which :func:`top_eigenpair`'s tolerance is measured: P A
    P's own size can be round-off (a rank-2 Hessian deflated twice), and a tolerance
    relative to it unreachable."""

    op: object
    locked: np.ndarray  # (≥ count·d,)
    count: int
    scale: float


@inline
def project_out(locked, count, v):
    """v ← v − Σ_{k<count} (u_k·v) u_k, u_k = ``locked[k d:(k + 1) d]`` (Gram–Schmidt, each
    coefficient taken from the updated v)."""
    d = v.shape[0]
    for k in range(count):
        c = 0.0
        for r in range(d):
            c += locked[k * d + r] * v[r]
        for r in range(d):
            v[r] -= c * locked[k * d + r]


@jit(inline=True)
def hessian_at(theta, p):
    """:class:`HessianAt` for θ: the family's shared work for products at θ done once
    (spliced into each caller, so compiled with the caller for the caller's loss family)."""
    return HessianAt(theta, p, loss_linearise(theta, p))


@inline
def _apply_scaled(theta, p, state, scale, tmp, v, out):
    """out ← D H D v: tmp ← D v, out ← H tmp, out ← D out."""
    for i in range(v.shape[0]):
        tmp[i] = scale[i] * v[i]
    loss_hvp_linearised(theta, p, state, tmp, out)
    for i in range(v.shape[0]):
        out[i] *= scale[i]


def apply(op, v, out):
    """out ← A v for the symmetric operator ``op`` (kernels only)."""
    raise TypeError("apply is resolved inside compiled kernels")


@overload(apply, jit_options=KERNEL_ONLY, inline="always")
def _apply(op, v, out):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is DenseHessian:
        return lambda op, v, out: apply_sum(op.H, op.F, v, out)
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt:
        return lambda op, v, out: loss_hvp_linearised(op.theta, op.p, op.state, v, out)
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is ScaledHessianAt:
        return lambda op, v, out: _apply_scaled(op.theta, op.p, op.state, op.scale, op.tmp,
                                                v, out)
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is Deflated:
        def deflated(op, v, out):
            # v lies in P's range (to round-off: restrict took the start there, and each
            # basis vector is a combination of the start and of earlier products), so P A P v
            # is P A v
            apply(op.op, v, out)
            project_out(op.locked, op.count, out)

        return deflated


def restrict(op, v, square):
    """v ← P v for a :class:`Deflated` operator, and |P v|²; for the others v is left alone
    and ``square`` (its |v|²) returned (kernels only)."""
    raise TypeError("restrict is resolved inside compiled kernels")


@overload(restrict, jit_options=KERNEL_ONLY, inline="always")
def _restrict(op, v, square):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is Deflated:
        return lambda op, v, square: _start_in_range(op.locked, op.count, v, square)
    return lambda op, v, square: square


@inline
def _start_in_range(locked, count, v, square):
    """v ← P v, projected twice (the second pass takes off what round-off left of the first,
    so that the basis starts in P's range to round-off), and |P v|².

    Where only round-off of v is left (|P v| ≤ 1e-8 |v|: a start in the span of the locked
    vectors, as a warm start can be, or the mix vectors of later pairs were while they came
    from Knuth's hash), v is replaced by P r with r another :func:`pair_vector` (that of
    pair count + d), or, should that be spent too, by P e_k for the k
    with the largest |P e_k|² = 1 − Σ_i u_i[k]² (at least (d − count)/d). Without this, q_0
    was round-off along the locked vectors, and P A P, which is 0 there, gave λ = 0.08 for
    an eigenvalue 2 with status OK."""
    d = v.shape[0]
    for attempt in range(3):
        if attempt == 1:
            for k in range(d):
                v[k] = pair_vector(k, count + d)
            square = dot(v, v)
        elif attempt == 2:
            best, best_k = -1.0, 0
            for k in range(d):
                left = 1.0
                for i in range(count):
                    entry = locked[i * d + k]
                    left -= entry * entry
                if left > best:
                    best, best_k = left, k
            for k in range(d):
                v[k] = 0.0
            v[best_k] = 1.0
            square = 1.0
        project_out(locked, count, v)
        project_out(locked, count, v)
        kept = dot(v, v)
        if kept > 1e-16 * square:
            break
    return kept


def mix_pair(op):
    """Which :func:`pair_vector` is ``op``'s mix vector: ``count`` for a :class:`Deflated`
    operator (pair ``count`` of a step has a vector of its own), 0 (:func:`mix_vector`) for
    the others (kernels only)."""
    raise TypeError("mix_pair is resolved inside compiled kernels")


@overload(mix_pair, jit_options=KERNEL_ONLY, inline="always")
def _mix_pair(op):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is Deflated:
        return lambda op: op.count
    return lambda op: 0


def deflation(op):
    """The count of locked vectors and the size of A of a :class:`Deflated` operator, or
    (0, 0) for the others (kernels only)."""
    raise TypeError("deflation is resolved inside compiled kernels")


@overload(deflation, jit_options=KERNEL_ONLY, inline="always")
def _deflation(op):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is Deflated:
        return lambda op: (op.count, op.scale)
    return lambda op: (0, 0.0)


def keep_in_range(op, basis, beta, j):
    """:func:`_keep_in_range` for a :class:`Deflated` operator; nothing (False) for the
    others, which then compile none of it (kernels only)."""
    raise TypeError("keep_in_range is resolved inside compiled kernels")


@overload(keep_in_range, jit_options=KERNEL_ONLY, inline="always")
def _keep_in_range_impl(op, basis, beta, j):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is Deflated:
        return lambda op, basis, beta, j: _keep_in_range(basis, beta, j, op.locked, op.count)
    return lambda op, basis, beta, j: False


#: entries of a d-vector that the sweeps over the Lanczos basis take at a time: a tile of w
#: and of the basis vectors stays in the first-level cache (2 KiB a vector) while every basis
#: vector's part is taken, so each sweep reads w and each basis vector from memory once. The
#: sweeps count tiles from 0 and entries within a tile from 0 (``first + r``): with
#: ``range(first, last)`` the compiler did not vectorise them (5–8× slower at d = 10³)
TILE = 256


class LanczosWork(NamedTuple):
    """Workspace of :func:`top_eigenpair` for dimension d and restart length m."""

    basis: np.ndarray  # (m, d)
    alpha: np.ndarray  # (m,)
    beta: np.ndarray  # (m,)
    ritz: np.ndarray  # (m,)
    w: np.ndarray  # (d,)
    projections: np.ndarray  # (m, m): column j, the components of A q_j along q_0..q_j
    inverse_pivots: np.ndarray  # (m,): scratch of the tridiagonal eigenvector
    coefficients: np.ndarray  # (2, m): the components of w of a Gram–Schmidt pass and the next
    tile: np.ndarray  # (TILE,): scratch of the sweeps over the basis
    #: (2,): the bounds of :func:`_keep_top_two`; None where the restarts are thin
    kept_error: object


@inline
def lanczos_work(d, restart, thick):
    """A :class:`LanczosWork` whose basis holds min(restart, d) vectors, and at least
    min(2, d): a basis of one vector makes its own Ritz vector, so a restart from it gets
    nowhere (a restart length of 1 never converged).

    ``thick``: True for restarts from the top two Ritz pairs (:func:`_keep_top_two`), None
    for restarts from the top Ritz vector alone. A type, not a value: with None the thick
    restart is not compiled at all. It is what separates two nearly equal top eigenvalues,
    and it cost every first call that measures by Lanczos 1.3 s of compiling (the first
    ``run_gd`` on the regression model: 9.08, 8.82 s without it, 10.22, 10.22 s with it),
    so the engines start thin and compile it only after a measurement stalls
    (:func:`stabsim.maps.gd.thick_after_stall`)."""
    m = max(min(2, d), min(restart, d))
    # every entry is written before it is read: np.empty alone (np.zeros cost the first
    # kernel 0.2 s of compiling)
    return LanczosWork(large_empty((m, d)), np.empty(m), np.empty(m), np.empty(m), large_empty(d),
                       np.empty((m, m)), np.empty(m), np.empty((2, m)), np.empty(TILE),
                       _kept_error_buffer(thick))


def _thin(kept_error):
    """Whether the Numba type of a workspace's ``kept_error``, or of the ``thick`` flag that
    makes it, is None: thin restarts."""
    return isinstance(kept_error, types.NoneType)


def _kept_error_buffer(thick):
    """The ``kept_error`` field of :func:`lanczos_work` (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


@overload(_kept_error_buffer, jit_options=KERNEL_ONLY, inline="always")
def _kept_error_buffer_impl(thick):
    if _thin(thick):
        return lambda thick: None
    return lambda thick: np.empty(2)


def _forget_kept(kept_error):
    """Set a thick restart's bounds to zero (nothing where the restarts are thin)."""
    raise TypeError("resolved inside compiled kernels")


@overload(_forget_kept, jit_options=KERNEL_ONLY, inline="always")
def _forget_kept_impl(kept_error):
    if _thin(kept_error):
        return lambda kept_error: None

    def forget(kept_error):
        kept_error[0] = 0.0
        kept_error[1] = 0.0

    return forget


def _restart_from_pair(work, j, kept_error, tol_scale):
    """Whether :func:`top_eigenpair` restarts from its top two Ritz pairs after step j, having
    done so (:func:`_keep_top_two`): in a thick workspace (``kept_error`` = its
    ``kept_error``) with m ≥ 3, while the bounds of what the kept relations leave out sum
    to at most ``tol_scale`` (a tenth of the tolerance); always False in a thin one
    (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


@overload(_restart_from_pair, jit_options=KERNEL_ONLY, inline="always")
def _restart_from_pair_impl(work, j, kept_error, tol_scale):
    if _thin(kept_error):
        return lambda work, j, kept_error, tol_scale: False

    def thick(work, j, kept_error, tol_scale):
        return (work.basis.shape[0] >= 3 and kept_error[0] + kept_error[1] <= tol_scale
                and _keep_top_two(work, j, kept_error))

    return thick


#: restart length of the engines' Lanczos: the basis holds this many vectors of length d
LANCZOS_RESTART = 20

#: weight of the fixed vector :func:`mix_vector` in every start (see :func:`top_eigenpair`)
START_MIX = 1e-3


@inline
def mix_vector(r):
    """Entry r of a fixed, deterministic vector with entries in [−1/2, 1/2) that no
    structure of a model aligns with: Knuth's multiplicative hash of r + 1, scaled."""
    return ((r + 1) * 2654435761 % 4294967296) / 4294967296.0 - 0.5


@inline
def pair_vector(r, pair):
    """Entry r of the mix vector of deflated pair ``pair``: :func:`mix_vector` for pair 0,
    and for the others SplitMix64's output function (Steele, Lea and Flood 2014) of r + 1
    and the pair, scaled to [−1/2, 1/2). Unlike Knuth's hash, which is affine in its
    argument modulo 1, so that the vectors of strided or shifted sequences span few
    directions (at d = 4, pair 2's lay in the span of pairs 0 and 1 and (1, …, 1), and a
    triple eigenvalue of a balanced scalar network came out double),
    it mixes the bits: the pairs' vectors are as independent as random ones."""
    if pair == 0:
        return mix_vector(r)
    z = (np.uint64(r + 1) * np.uint64(0x9E3779B97F4A7C15)
         + np.uint64(pair) * np.uint64(0xD1B54A32D192ED03))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) / 9007199254740992.0 - 0.5


@inline
def top_eigenpair(op, v0, work, max_products, tol, vec_out, mix, given):
    """Largest eigenvalue λ and unit eigenvector of the symmetric operator ``op``.

    Lanczos with full reorthogonalisation, restarted every m = ``work.basis.shape[0]`` steps
    from its top Ritz vector or, in a workspace made for thick restarts
    (:func:`lanczos_work`), from its top two Ritz pairs (:func:`_keep_top_two`; from the
    top one alone where m < 3 or the pair's couplings vanish), started from ``v0`` (the
    previous eigenvector when tracking a trajectory), mixed with the fixed vector r of
    :func:`mix_vector` at weight ``mix`` (``START_MIX`` = 1e-3; 0 only where
    :func:`anchored_top_eigenpair` has shown that there is nothing for it to find). The
    mix is what finds a top eigenvalue the warm start cannot see: when the tracked
    eigenvector stays (to round-off) inside an invariant subspace of the new Hessian (a
    symmetry of the model, or a catapult that leaves it as a lower eigenvector), its Krylov
    space never leaves that subspace and Lanczos would return the old eigenvalue with a
    tiny residual. With the mix, an eigenvalue λ' above the returned λ contributes about
    ``START_MIX |r·u'| (λ' − λ) / |r|`` to the residual, so Lanczos cannot meet its
    tolerance without resolving it unless ``λ' − λ < tol · scale · |r| / (START_MIX
    |r·u'|)`` (about ``tol · scale · 10³ √d`` for a generic u').

    Each pair of a deflated measurement has a mix vector of its own (:func:`pair_vector`).
    With one vector for all, a repeated top eigenvalue was lost: the first pair's vector is
    the part of the start in that eigenspace E, so the next start, projected off it, kept
    nothing of E (diag(3, 3, 1) from zero warm starts gave λ₂ = 1 with a residual of 3e-16).
    The later pairs' vectors come from a hash that mixes its bits: Knuth's is affine in its
    argument modulo 1, so its shifted or strided sequences span few directions, and a
    projection orthogonal to (1, …, 1) or to a few coordinates removed what a later pair
    needed (the balanced start of a scalar network, whose top eigenspace is that
    complement, lost copies of its top eigenvalue).

    After j steps the Ritz pair (θ_j, y_j) of the tridiagonal matrix T_j has residual ``|A y_j
    − θ_j y_j| = β_j |s_j[j]|`` (s_j the top eigenvector of T_j); the iteration stops when that
    is at most ``tol · scale`` with ``scale = max(|θ_j|, max_i |α_i|)`` (a lower bound on the
    operator's norm: the backward-error criterion, meaningful also when λ is small beside
    negative eigenvalues; for a :class:`Deflated` operator, at least its ``scale``, the
    size of the operator it deflates), when the Krylov space is invariant or spans all of
    R^d (then the Ritz pair is exact to round-off), or after ``max_products`` products.
    Memory: the m × d basis, whatever the number of restarts. A non-finite operator gives
    NaN for λ and the residual.

    Lanczos squares the size of the products (|w|², β², the residual), so an operator of
    norm above about 1e154 overflowed and one below about 1e-154 lost the products' squares
    to underflow (at 1e-162·A, β was 0 and λ reported converged and 58% off). So the size of
    the first product, |A q_0|, sets the scale: outside [2⁻⁴⁶⁵, 2⁴⁶⁵] ≈ [1e-140, 1e140]
    (or where its square overflowed) the product is made again and every product is
    multiplied by a factor c (1/|A q_0|, or 2⁻⁶⁰⁰ above), and λ and the residual are divided
    by c at the end: a rounding more a product, and nothing else changes. An operator of
    ordinary size costs one comparison a product.

    The returned residual is measured, not estimated, and costs no further product: each
    product A q_i is, as computed, Σ_{k≤i} P_ki q_k + β_i q_{i+1}, where P_ki are the
    components the reorthogonalisation removed (α_i among them) and q_{i+1} the next basis
    vector. So for y = Q s/|Q s|, A y − λ y = Q_{j+1} r/|Q s| with
    r_k = β_{k−1} s_{k−1} + Σ_{i≥k} P_ki s_i − λ s_k (k ≤ j) and r_{j+1} = β_j s_j, and
    since the basis is orthonormal to round-off (it is reorthogonalised twice),
    |A y − λ y| = |r|/|Q s|: the residual of the products that were made, with the
    reorthogonalisation's corrections, in O(m²) work. After a restart from two Ritz pairs
    the first two vectors' relations are taken from the cycle before (no product is made
    again), and what they leave out (round-off) is bounded and added: the residual is then
    an upper bound, above the true one by that round-off (a few eps·|A|; it is kept below
    a tenth of the tolerance, and a restart from one Ritz vector clears it).

    Parameters
    ----------
    op : DenseHessian, HessianAt, ScaledHessianAt or Deflated
        For :class:`Deflated`, the start is projected onto P's range (the complement of
        the locked vectors) and the residual is that of P A P.
    v0 : ndarray, shape (d,)
        Start vector; a zero or non-finite start leaves the mix vector alone as the start.
    work : LanczosWork
    max_products : int
        Budget of products with the operator.
    tol : float
        Relative residual tolerance.
    vec_out : ndarray, shape (d,)
        Receives the unit Ritz vector, signed so that ``vec_out · v0 >= 0``. It may be
        ``v0`` itself (the engines' warm start, which saves a copy of it a step): every entry
        of v0 is read before that entry of vec_out is written, and after a restart the sign
        follows the restart's vector (itself signed against v0).
    mix : float
        Weight of the fixed vector in the start (no default: every caller passes it, as an
        argument left out would be typed apart and compile Lanczos once more).
    given : bool
        ``work.w`` holds A v0 already (:func:`warm_start_check`'s product, made by the
        caller): the first product is taken from it, scaled by 1/|v0| and by the start's
        normalisation, instead of made again (mix 0 only, where the start is v0/|v0|; an
        operator other than :class:`Deflated`, which :func:`restrict` leaves the start
        alone for). It counts among the products returned and ``max_products``. A(c v0) and
        c A v0 differ by round-off, eps·|A| against a tolerance of tol·|λ|.

    Returns
    -------
    lam : float
        The top Ritz value.
    residual : float
        ``|A y − λ y|`` for the returned vector, from the products made (see above; after a
        single step, y = v0/|v0| and λ its Rayleigh quotient, the first product gave it as
        β_0).
    products : int
        Products with the operator.
    converged : bool
        False only when the budget ran out before the tolerance was met (or λ is NaN).
    """
    basis, alpha, beta, ritz, w, projections, inverse_pivots, coefficients, _, _ = work
    m = basis.shape[0]
    count, floor = deflation(op)
    norm0 = np.sqrt(dot(v0, v0))
    square = restrict(op, basis[0], _start_vector(v0, norm0, basis[0], mix, mix_pair(op)))
    scale_into(basis[0], basis[0], 1.0 / np.sqrt(square))
    products = 0
    lam = np.nan
    scale = max(1e-300, floor)
    restarted = False
    factor = 1.0  # the products are those of factor · A (see above)
    first = 0  # the first basis vector of a cycle without its product yet
    kept_error = work.kept_error  # bounds on what a kept pair's relations leave out (below)
    _forget_kept(kept_error)
    while True:
        j = first
        done = False
        for j in range(first, m):
            if given and products == 0:
                scale_into(w, w, 1.0 / (norm0 * np.sqrt(square)))
            else:
                apply(op, basis[j], w)
                if factor != 1.0:
                    scale_into(w, w, factor)
            products += 1
            room = j + 1 < m and products < max_products
            lam, scale, done, finite = _take_product(
                basis, alpha, beta, ritz, w, projections, inverse_pivots, coefficients, j, lam,
                scale, restarted, tol, room, basis.shape[1] - count, kept_error)
            if room and not done and finite and keep_in_range(op, basis, beta, j):
                done = True
            if products == 1 and products < max_products:
                # about |A q_0| (√(α_0² + β_0²)); +inf where β_0's square overflowed
                size = max(abs(alpha[0]), beta[0])
                if size > LARGE_OPERATOR:  # then |w| < 2^1024 becomes < 2^424
                    factor = 2.0 ** -600
                elif 0.0 < size < 1.0 / LARGE_OPERATOR:
                    factor = min(1.0 / size, 2.0 ** 1000)
                if factor != 1.0:
                    break
            if not finite:
                scale_into(vec_out, basis[0], 1.0)
                return np.nan, np.nan, products, False
            if done or j + 1 == m or products >= max_products:
                break
        if products == 1 and factor != 1.0:  # q_0's product again, on factor · A
            lam, scale = np.nan, max(1e-300, floor * factor)
            continue
        if j == 0 and not restarted:  # w = A v0 − α_0 v0 already: its norm is the residual
            scale_into(vec_out, basis[0], -1.0 if dot(basis[0], v0) < 0.0 else 1.0)
            return lam / factor, beta[0] / factor, products, done
        length, along, square = _ritz_vector(work, j, vec_out, v0)
        # Q s/|s| is unit to round-off while the basis is orthonormal; where it is not (as
        # where the products' squares underflowed, before the first product set the scale:
        # |v| − 1 was 3e-6 at 1e-160·A), it is measured and normalised as Q s/|Q s|
        normalise = 1.0
        if not abs(square - 1.0) <= 1e-14:
            normalise = 1.0 / np.sqrt(square)
            length *= np.sqrt(square)
        if along < 0.0:
            normalise = -normalise
        if normalise != 1.0:
            scale_into(vec_out, vec_out, normalise)
        if done or products >= max_products:
            break
        restarted = True
        # a thick restart while what its relations leave out stays below a tenth of the
        # tolerance (each adds its round-off); else one from the Ritz vector, which clears it
        first = 2 if _restart_from_pair(work, j, kept_error, 0.1 * tol * scale) else 0
        if first == 2 and keep_in_range(op, basis, beta, 1):
            first = 0  # the kept pair spans what is left of P's range: restarted from one
        if first == 0:
            # from the Ritz vector, normalised again so that round-off in its length does
            # not add up over restarts
            scale_into(basis[0], vec_out, 1.0 / np.sqrt(dot(vec_out, vec_out)))
            _forget_kept(kept_error)
    left_out = _left_out(ritz, kept_error) if j >= 1 else 0.0
    return (lam / factor, (_residual_norm(work, j, lam) + left_out) / (length * factor),
            products, done)


@inline
def _keep_top_two(work, j, kept_error):
    """Restart :func:`top_eigenpair` from the top two Ritz pairs of T_{j+1} (a thick
    restart): the basis becomes z_1, z_2, q_{j+1}, with z_1, z_2 the rotation of the two
    Ritz vectors that leaves only z_2 coupled to q_{j+1}, so that T stays tridiagonal
    (α_0, β_0, α_1 of z_1, z_2 and β_1 = |b|, b the Ritz pairs' couplings β_j s_i[j]), and
    the next cycle goes on from q_{j+1}'s product. Returns False (nothing changed but the
    last Lanczos vector made) where the pair's couplings vanish: then a restart from the top
    Ritz vector alone follows.

    Restarted from its top Ritz vector alone, Lanczos separated two top eigenvalues much
    closer to each other than to the rest of the spectrum too slowly for any budget: on
    diag(0, 0.0101, …, 0.9899, 1 − g, 1) in d = 100, from (1, …, 1), its residual stayed
    at 8.8e-6 for g = 1e-6 and at 1e-7 for g = 1e-8 through 3,000 products (tolerance
    1e-10). Keeping the second Ritz vector keeps the pair's plane, which each cycle
    sharpens.

    The kept vectors' relations come from the cycle's own: A Q = Q M + β_j q_{j+1} e_jᵀ as
    computed (M: the components the products had along the basis, β below its diagonal),
    so for z = Q t, A z = Q M t + β_j t_j q_{j+1}. What of Q M t_a lies outside the kept
    plane (round-off of the rotation and of the tridiagonal eigenvectors) and z_1's
    coupling to q_{j+1} are left out of the new relations; their norms, with those carried
    from earlier restarts, go into ``kept_error``, which :func:`top_eigenpair` adds to the
    measured residual (an upper bound, by the triangle inequality).
    """
    basis, alpha, beta, ritz, w, projections, scratch, coefficients, _, _ = work
    k = j + 1
    # q_{j+1}: the second Gram–Schmidt sweep, which the last step of a cycle leaves undone
    _subtract(w, basis, k, coefficients, 1)
    s2 = coefficients[0]
    _second_ritz_vector(alpha, beta, k, ritz, s2, scratch)
    b1 = beta[j] * ritz[j]
    b2 = beta[j] * s2[j]
    coupling = np.hypot(b1, b2)
    if not (coupling > 0.0 and np.isfinite(coupling)):
        return False
    c = b2 / coupling
    s = b1 / coupling
    for i in range(k):  # t_1 = c s_1 − s s_2 into ritz, t_2 = s s_1 + c s_2 into s2
        a, b = ritz[i], s2[i]
        ritz[i] = c * a - s * b
        s2[i] = s * a + c * b
    m_t1, m_t2 = coefficients[1], scratch
    _times_cycle(projections, beta, k, ritz, m_t1)
    _times_cycle(projections, beta, k, s2, m_t2)
    a11, b0, p01, a22 = (dot(ritz[:k], m_t1[:k]), dot(s2[:k], m_t1[:k]),
                         dot(ritz[:k], m_t2[:k]), dot(s2[:k], m_t2[:k]))
    flip = -1.0 if b0 < 0.0 else 1.0  # z_2 → −z_2 makes β_0 ≥ 0
    b1_new = flip * beta[j] * s2[j]
    q_sign = -1.0 if b1_new < 0.0 else 1.0  # and q → −q makes β_1 ≥ 0
    # what the new relations leave out: Q M t_a beyond the plane, z_1's coupling to q
    out1 = out2 = 0.0
    for i in range(k):
        r1 = m_t1[i] - a11 * ritz[i] - b0 * s2[i]
        r2 = m_t2[i] - p01 * ritz[i] - a22 * s2[i]
        out1 += r1 * r1
        out2 += r2 * r2
    error1 = np.sqrt(out1) + abs(beta[j] * ritz[j]) + _left_out(ritz, kept_error)
    error2 = np.sqrt(out2) + _left_out(s2, kept_error)
    kept_error[0] = error1
    kept_error[1] = error2
    inverse = q_sign / beta[j]
    for r in range(basis.shape[1]):  # each entry's sums read before the entry is written
        z1 = z2 = 0.0
        for i in range(k):
            z1 += ritz[i] * basis[i, r]
            z2 += s2[i] * basis[i, r]
        basis[0, r] = z1
        basis[1, r] = flip * z2
        basis[2, r] = w[r] * inverse
    alpha[0], beta[0], alpha[1], beta[1] = a11, flip * b0, a22, q_sign * b1_new
    projections[0, 0], projections[0, 1], projections[1, 1] = a11, flip * p01, a22
    return True


def _left_out(t, kept_error):
    """|t_0| e_0 + |t_1| e_1: a bound on what the relations of the two kept basis vectors
    leave out (``kept_error`` = (e_0, e_1), :func:`_keep_top_two`) in A Q t; 0 where the
    restarts are thin (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


@overload(_left_out, jit_options=KERNEL_ONLY, inline="always")
def _left_out_impl(t, kept_error):
    if _thin(kept_error):
        return lambda t, kept_error: 0.0
    return lambda t, kept_error: abs(t[0]) * kept_error[0] + abs(t[1]) * kept_error[1]


@inline
def _times_cycle(projections, beta, k, t, out):
    """out ← M t for the k × k matrix M of a Lanczos cycle's products (:func:`_keep_top_two`):
    (M t)_i = Σ_{l≥i} P_il t_l + β_{i−1} t_{i−1}."""
    for i in range(k):
        total = beta[i - 1] * t[i - 1] if i > 0 else 0.0
        for col in range(i, k):
            total += projections[i, col] * t[col]
        out[i] = total


@inline
def _second_ritz_vector(diag, offdiag, k, top_vector, out, scratch):
    """The unit eigenvector of the second largest eigenvalue of the k × k tridiagonal T_k
    into ``out[:k]``, orthogonal to ``top_vector`` (its top one): the eigenvalue by
    bisection on Sturm counts (:func:`_pivots`), the vector by :func:`tridiagonal_vector`
    and one Gram–Schmidt step against the top one (inverse iteration at the second of two
    close eigenvalues returns some of the first as well). k ≥ 3."""
    lo = hi = diag[0]
    for i in range(k):
        side = (abs(offdiag[i - 1]) if i > 0 else 0.0) + (abs(offdiag[i]) if i < k - 1 else 0.0)
        lo = min(lo, diag[i] - side)
        hi = max(hi, diag[i] + side)
    scale = max(abs(lo), abs(hi), 1e-300)
    for _ in range(200):  # [lo, hi] holds the second largest eigenvalue
        if not (hi - lo > 4e-16 * scale):
            break
        x = 0.5 * (lo + hi)
        below, _, _ = _pivots(diag, offdiag, k, x)
        if below >= k - 1:
            hi = x
        else:
            lo = x
    tridiagonal_vector(diag, offdiag, k, hi, out, scratch)
    along = dot(out[:k], top_vector[:k])
    for i in range(k):
        out[i] -= along * top_vector[i]
    scale_into(out[:k], out[:k], 1.0 / np.sqrt(dot(out[:k], out[:k])))


#: a first product larger than this in size (|A q_0|), or smaller than its inverse (≈ 1e-140),
#: sets the operator's scale (:func:`top_eigenpair`): its squares would come within 2⁻⁹²
#: ≈ 1e-28 of overflow, or of underflow
LARGE_OPERATOR = 2.0 ** 465


# The parts of top_eigenpair that never touch the operator: functions of their own, typed on
# the workspace's arrays alone, so that each is compiled once whatever the operators and loss
# families of the kernels in a process (the loop that applies the operator is compiled per
# operator type; before, all of Lanczos was, twice in a first `compare`). Those compiled with
# fastmath call no other helper: one also called without it would be compiled once more.


@inline(fastmath=True)
def _start_vector(v0, norm0, start, mix, pair):
    """start ← v0/|v0| + mix·r with r_i = :func:`pair_vector` (i, pair), given
    ``norm0`` = |v0| (a zero or non-finite v0 counts as 0); returns |start|², summed in the
    same sweep."""
    inverse = 1.0 / norm0 if norm0 > 0.0 and np.isfinite(norm0) else 0.0
    square = 0.0
    for r in range(v0.shape[0]):
        x = (v0[r] * inverse if inverse > 0.0 else 0.0) + mix * pair_vector(r, pair)
        start[r] = x
        square += x * x
    return square


@inline(fastmath=True)
def _rayleigh_residual(v, w):
    """(λ, r, |v|²) for w = A v: the Rayleigh quotient λ = v·w/|v|² and the residual
    r = |w − λ v|/|v| of the pair (λ, v/|v|), in two sweeps (the first takes v·w and |v|²
    together), without forming v/|v|."""
    along = square = 0.0
    for r in range(v.shape[0]):
        along += v[r] * w[r]
        square += v[r] * v[r]
    quotient = along / square
    gap_square = 0.0
    for r in range(v.shape[0]):
        gap = w[r] - quotient * v[r]
        gap_square += gap * gap
    return quotient, np.sqrt(gap_square / square), square


@inline
def _take_product(basis, alpha, beta, ritz, w, projections, inverse_pivots, coefficients, j,
                  lam, scale, restarted, tol, room, space, kept_error):
    """Step j of :func:`top_eigenpair` once ``w`` holds A q_j: α_j, w reorthogonalised twice
    against q_0..q_j (the components removed into column j of ``projections``), β_j = |w|,
    the top Ritz pair of T_{j+1} (λ, and its vector into ``ritz``) and, unless done or
    without ``room`` for another step, the next basis vector q_{j+1} = w/β_j. The arrays are
    those of the :class:`LanczosWork`, passed one by one: taken out of the workspace here,
    each took a reference of its own at every product (the caller takes them out once).
    ``space`` is the dimension of the operator's range (d, or d − count for a
    :class:`Deflated` one): a Krylov space of that dimension is invariant. ``kept_error``:
    the bounds of :func:`_keep_top_two` on what the first two basis vectors' relations
    leave out (zeros in a cycle that did not start from a thick restart), added to the
    residual estimate as to the returned residual.

    Returns
    -------
    lam, scale : float
        λ, and the running lower bound on the operator's norm.
    done : bool
        The residual estimate β_j |s_j[j]| met ``tol · scale``, or the Krylov space is
        invariant (β_j negligible, or j + 1 = ``space`` before any restart).
    finite : bool
        False if β_j is not finite (then nothing else is updated).
    """
    # full reorthogonalisation against q_0..q_j by classical Gram–Schmidt, twice ("twice is
    # enough" holds for it as for the modified one): the components c, then one sweep that
    # subtracts them and takes the components c' left, which are subtracted only when there
    # is a next basis vector to make
    for i in range(j + 1):
        coefficients[0, i] = dot(w, basis[i])
    alpha[j] = coefficients[0, j]
    square = _subtract(w, basis, j + 1, coefficients, 0)
    # β_j² = |w − Σ c'_i q_i|² = |w|² − Σ c'_i² for orthonormal q_i: the c'_i are round-off of
    # the first pass (|c'| ~ eps |A q_j|), so nothing cancels unless β_j is itself that small,
    # where the Krylov space is invariant to round-off and Lanczos stops
    for i in range(j + 1):
        projections[i, j] = coefficients[0, i] + coefficients[1, i]
        square -= coefficients[1, i] * coefficients[1, i]
    beta[j] = 0.0 if square < 0.0 else np.sqrt(square)
    if not np.isfinite(beta[j]):
        return lam, scale, False, False
    lam = top_ritz_pair(alpha, beta, j + 1, lam, ritz, inverse_pivots)
    scale = max(scale, abs(lam), abs(alpha[j]))
    estimate = beta[j] * abs(ritz[j])
    if j >= 1:
        estimate += _left_out(ritz, kept_error)
    invariant = beta[j] <= 1e-14 * scale or (j + 1 == space and not restarted)
    done = estimate <= tol * scale or invariant
    if room and not done:
        _subtract(w, basis, j + 1, coefficients, 1)
        scale_into(basis[j + 1], w, 1.0 / beta[j])
    return lam, scale, done, True


@inline
def _keep_in_range(basis, beta, j, locked, count):
    """Project the new basis vector q_{j+1} of a :class:`Deflated` operator off the locked
    vectors, normalise it again and scale β_j by the length it kept (P w = β_j P q_{j+1});
    returns True where it kept less than half its length: the Krylov space inside P's range
    is then invariant to round-off (what is left of w is round-off).

    Without it, the reorthogonalisation put components along the locked vectors back into
    w, of O(eps |A|) (those of the basis vectors, times α_j and β_{j−1}), which dominate w
    when β_j is itself that small, as when the Krylov space has used up P's range: the next
    basis vector was then nearly a locked vector u, on which P A P is 0, and λ = 0 came out
    above a negative next eigenvalue with a tiny residual (``run_gd(top_k=3)`` gave 35.6,
    −1.1e-11, −1.2e-11 for 35.6, −1.06, −1.06 on a scalar network of d = 10). Done here, in
    the operator's own code, so that the other operators' steps carry none of it."""
    q = basis[j + 1]
    project_out(locked, count, q)
    kept = np.sqrt(dot(q, q))
    beta[j] *= kept
    if not kept >= 0.5:
        return True
    scale_into(q, q, 1.0 / kept)
    return False


@inline(fastmath=True, link_late=True)
def _subtract(w, basis, count, coefficients, row):
    """w ← w − Σ_{i<count} c_i q_i with c = ``coefficients[row]``, in one sweep; after the
    first pass (``row`` 0) the same sweep takes the components c' that are left into
    ``coefficients[1]``. Returns |w|² of the new w."""
    d = w.shape[0]
    if row == 0:
        for i in range(count):
            coefficients[1, i] = 0.0
    square = 0.0
    for tile in range((d + TILE - 1) // TILE):
        first = tile * TILE
        size = TILE if first + TILE <= d else d - first
        for i in range(count):
            c = coefficients[row, i]
            for r in range(size):
                w[first + r] -= c * basis[i, first + r]
        if row == 0:
            for i in range(count):
                s = 0.0
                for r in range(size):
                    s += basis[i, first + r] * w[first + r]
                coefficients[1, i] += s
        for r in range(size):
            square += w[first + r] * w[first + r]
    return square


@inline(fastmath=True, link_late=True)
def _ritz_vector(work, j, vec_out, v0):
    """vec_out ← Q_{j+1} s/|s| (s = ``work.ritz[:j+1]``), in one sweep that also takes its
    product with v0 (each entry of v0 read before that of vec_out is written) and its squared
    length; returns |s|, that product and that length (the caller flips the vector in the
    rare case that the product is negative: s_0 ≥ 0 and q_0 is v0 nearly, so it is positive
    whenever the Ritz vector is near v0).

    |Q s| = |s| to round-off: the basis is orthonormal to O(eps) (reorthogonalised twice), so
    the vector is unit to round-off without a sweep that measures it."""
    basis, ritz, x = work.basis, work.ritz, work.tile
    d = basis.shape[1]
    square = 0.0
    for i in range(j + 1):
        square += ritz[i] * ritz[i]
    length = np.sqrt(square)
    inverse = 1.0 / length
    along = measured = 0.0
    for tile in range((d + TILE - 1) // TILE):  # formed in the scratch tile: v0 may be vec_out
        first = tile * TILE
        size = TILE if first + TILE <= d else d - first
        c = ritz[0] * inverse
        for r in range(size):
            x[r] = c * basis[0, first + r]
        for i in range(1, j + 1):
            c = ritz[i] * inverse
            for r in range(size):
                x[r] += c * basis[i, first + r]
        for r in range(size):
            along += x[r] * v0[first + r]
            measured += x[r] * x[r]
            vec_out[first + r] = x[r]
    return length, along, measured


@inline
def _residual_norm(work, j, lam):
    """|r| of :func:`top_eigenpair`'s measured residual, |A y − λ y| = |r|/|Q s|:
    r_k = β_{k−1} s_{k−1} + Σ_{i≥k} P_ki s_i − λ s_k (k ≤ j), r_{j+1} = β_j s_j."""
    beta = work.beta
    ritz = work.ritz
    projections = work.projections
    tail = beta[j] * ritz[j]
    square = tail * tail  # r_{j+1}
    for k in range(j + 1):
        rk = (beta[k - 1] * ritz[k - 1] if k > 0 else 0.0) - lam * ritz[k]
        for i in range(k, j + 1):
            rk += projections[k, i] * ritz[i]
        square += rk * rk
    return np.sqrt(square)


class Anchor(NamedTuple):
    """A copy of the last dense operator H + FᵀF whose top eigenvalue was measured with the
    start mix (:func:`anchored_top_eigenpair`): H's upper triangle and F."""

    H: np.ndarray  # (d, d)
    F: np.ndarray  # (r, d)
    top: np.ndarray  # (1,): that measurement's top Ritz value; NaN while there is none


class PointAnchor(NamedTuple):
    """The point θ' whose Hessian ∇²L(θ') was last measured with the start mix, for a
    :class:`HessianAt` of a family that bounds ‖∇²L(θ) − ∇²L(θ')‖₂ (the protocol's
    ``hessian_drift``; :func:`anchored_top_eigenpair`), and the last point whose bound was
    taken, with that bound (a step at the same point again, as GD's at a fixed point to
    round-off, reuses it), and how long to mix without taking a bound after bounds far
    above their limits (:func:`drift`)."""

    theta: np.ndarray  # (d,)
    top: np.ndarray  # (1,): that measurement's top Ritz value; NaN while there is none
    last: np.ndarray  # (d,): the last point whose bound was taken
    moved: np.ndarray  # (1,): that bound
    #: (2,): measurements left to mix without taking the bound, and the current wait
    backoff: np.ndarray


@inline
def anchor_work(d, rows):
    """An :class:`Anchor` for a d × d operator with a factor of ``rows`` rows, not yet set."""
    return Anchor(large_empty((d, d)), large_empty((rows, d)), np.full(1, np.nan))


@inline
def point_anchor_work(d):
    """A :class:`PointAnchor` in d dimensions, not yet set."""
    return PointAnchor(large_empty(d), np.full(1, np.nan), large_empty(d), np.full(1, np.inf),
                       np.zeros(2, dtype=np.int64))


@inline(fastmath=True)
def dense_drift(op, anchor, limit):
    """An upper bound on ‖A − A'‖₂ for A = H + FᵀF of the :class:`DenseHessian` ``op`` and A'
    = H' + F'ᵀF' of ``anchor``, or a number above ``limit`` as soon as the bound exceeds it:

        ‖A − A'‖₂ ≤ ‖H − H'‖_F + ‖F − F'‖_F (‖F‖_F + ‖F'‖_F),

    from FᵀF − F'ᵀF' = (F − F')ᵀF + F'ᵀ(F − F') and ‖·‖₂ ≤ ‖·‖_F. H and H' are symmetric and
    given by their upper triangles, so ‖H − H'‖_F² = Σ_i E_ii² + 2 Σ_{i<j} E_ij² (E = H − H'),
    summed over the upper triangle a row at a time and left as soon as it passes ``limit``
    (one row, usually, at a step that moved the Hessian). The sums are reassociated
    (vectorised: 4.9 → 1.6 µs at d = 100 over the whole matrix), which moves them by a
    relative O(d² eps) at most, far inside the tolerance that ``limit`` is; a NaN still
    propagates."""
    H, F = op
    H_anchor, F_anchor, _ = anchor
    factor_diff = factor_norm = anchor_norm = 0.0
    for k in range(F.shape[0]):
        for j in range(F.shape[1]):
            change = F[k, j] - F_anchor[k, j]
            factor_diff += change * change
            factor_norm += F[k, j] * F[k, j]
            anchor_norm += F_anchor[k, j] * F_anchor[k, j]
    drift = np.sqrt(factor_diff) * (np.sqrt(factor_norm) + np.sqrt(anchor_norm))
    if not drift <= limit:
        return drift
    room = (limit - drift) * (limit - drift)
    square = 0.0
    d = H.shape[0]
    for i in range(d):
        above = 0.0
        for c in range(d - i - 1):  # counted from 0, as in apply_sum
            change = H[i, i + 1 + c] - H_anchor[i, i + 1 + c]
            above += change * change
        change = H[i, i] - H_anchor[i, i]
        square += change * change + 2.0 * above
        if not square <= room:
            break
    return drift + np.sqrt(square)


#: a matrix-free anchor's bound this many times the limit it is given (the check's reach,
#: ``CHECK_REACH`` tolerances) starts a wait (:func:`drift`)
MAX_MOVED = 16.0
#: the longest such wait, in measurements
MAX_WAIT = 15


def drift(op, anchor, limit):
    """An upper bound on ‖A − A'‖₂ for the operator ``op`` and the one ``anchor`` keeps, or a
    number above ``limit`` once the bound exceeds it (kernels only)."""
    raise TypeError("drift is resolved inside compiled kernels")


@overload(drift, jit_options=KERNEL_ONLY, inline="always")
def _drift(op, anchor, limit):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is DenseHessian:
        return lambda op, anchor, limit: dense_drift(op, anchor, limit)
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt:
        def at_point(op, anchor, limit):
            # the bound is a function of θ: at the point of the last one (GD at a fixed
            # point to round-off: every step at one θ; the anchor's own point, where it is
            # 0) it is taken once. Tested before the back-off below, as it costs nothing
            # where θ moves (it leaves at the first entry that differs): after it, GD that
            # came to rest while backing off mixed at each of up to 15 measurements of one
            # point (at d = 10⁶, 2 of a 20-step run's 28 products, 12 ms each)
            if _same_point(op.theta, anchor.last):
                return anchor.moved[0]
            # back at the anchor's own point (GD on a cycle at round-off, θ_t = θ_{t−2}): the
            # Hessian is the anchor's, whatever the family's bound says there (the scalar
            # network's is 2|r| ‖G‖_F at P − 1 = r ≠ 0)
            if _same_point(op.theta, anchor.theta):
                return 0.0
            backoff = anchor.backoff
            if backoff[0] > 0:  # see below: mixed without a bound
                backoff[0] -= 1
                return np.inf
            moved = loss_hessian_drift(op.theta, op.p, anchor.theta, limit)
            if moved <= limit:
                scale_into(anchor.last, op.theta, 1.0)
                anchor.moved[0] = moved
                backoff[1] = 0
            elif moved > MAX_MOVED * limit:
                # where the Hessian moves that far a step (as at the edge of stability) the
                # next steps' bounds are all but sure to miss too: the next 1, 3, 7, 15, 15, …
                # measurements after such bounds mix without taking one (a pass over θ each
                # saved; the mix is never wrong)
                backoff[1] = min(2 * backoff[1] + 1, MAX_WAIT)
                backoff[0] = backoff[1]
            return moved

        return at_point


@inline
def _same_point(theta, other):
    """Whether θ equals ``other`` entry for entry (left at the first entry that differs)."""
    for i in range(theta.shape[0]):
        if theta[i] != other[i]:
            return False
    return True


def keep_anchor(op, anchor, top):
    """Make ``op``, with its top eigenvalue ``top`` (NaN: none), the operator ``anchor``
    keeps: copy into it what :func:`drift` compares later operators with (kernels only)."""
    raise TypeError("keep_anchor is resolved inside compiled kernels")


@overload(keep_anchor, jit_options=KERNEL_ONLY, inline="always")
def _keep_anchor(op, anchor, top):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is DenseHessian:
        def dense(op, anchor, top):
            anchor.top[0] = top
            H, F = op
            H_anchor, F_anchor, _ = anchor
            d = H.shape[0]
            for i in range(d):  # the upper triangle: all of H there is
                for c in range(d - i):
                    H_anchor[i, i + c] = H[i, i + c]
            for k in range(F.shape[0]):
                for j in range(F.shape[1]):
                    F_anchor[k, j] = F[k, j]

        return dense
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt:
        def point(op, anchor, top):
            anchor.top[0] = top
            theta, kept, last = op.theta, anchor.theta, anchor.last
            for i in range(theta.shape[0]):  # one sweep for both copies
                kept[i] = last[i] = theta[i]
            anchor.moved[0] = 0.0  # the bound at the anchor's own point

        return point


@inline
def anchored_top_eigenpair(op, anchor, v0, work, max_products, tol, vec_out):
    """:func:`top_eigenpair` of ``op``, without the start mix when the operator has not moved
    far enough from ``anchor`` for the mix to find anything.

    Weyl's inequality bounds the top eigenvalue of the operator A by that of the anchor A'
    (the last operator measured with the mix, its top λ' as that measurement gave it) and
    an upper bound δ on ‖A − A'‖₂ (:func:`drift`: for a :class:`DenseHessian` H + FᵀF,
    :func:`dense_drift` against the copy of H and F in an :class:`Anchor`; for a
    :class:`HessianAt` ∇²L(θ), the family's ``hessian_drift`` against the point θ' of a
    :class:`PointAnchor`): λ_max(A) ≤ λ' + δ. Every Ritz value is at most λ_max(A). So when
    a run from ``v0`` without the mix converges to a Ritz value λ ≥ λ' + δ − tol·|λ'|, then
    λ_max(A) − λ ≤ tol·|λ'|: there is no top eigenvalue left for the mix to find, and λ is
    returned. That holds for any δ, but for δ above tol·|λ'| it asks λ to have risen from
    λ' by at least δ − tol·|λ'|, as it does where the Hessian moves along its top
    eigenvector (GD on a period-2 cycle, from the cycle's lower phase to its higher one).
    So the warm start's first product alone (:func:`warm_start_check`, which cuts the run
    short: at a minimum, where the Hessian stops changing, one product against the two to
    ten or so that clearing the mix takes) is tried for δ up to ``CHECK_REACH``·tol·|λ'|
    (:func:`check_reach`), a Lanczos run without the mix only for δ ≤ tol·|λ'|.

    A family that bounds its Hessian's Frobenius norm (``hessian_frobenius``: F ≥
    ‖∇²L(θ)‖_F) needs no anchor for it: a pair (λ, ρ) that meets the tolerance with F <
    √2 (λ − ρ) belongs to the top eigenvalue (:func:`dominant_top`), however far the
    Hessian moved. For such a family the warm start's first product is tried at every
    measurement, before the anchor's bound is taken, and where it falls short a Lanczos
    run without the mix follows (from that product: :func:`top_eigenpair`'s ``given``),
    settled by either argument. GD on the scalar network at η = 1.9/d and 2.05/d (the Hessian
    moving by far more than the tolerance at every step) then makes the products a
    hand-written power iteration makes, 1.01 a step at d = 10⁶ against 1.90 and 2.00 by
    Weyl's argument alone.

    Otherwise (no anchor yet, a larger δ, a smaller λ, or that run out of products) the
    mixed run follows from ``v0``, with the products that remain, and becomes the anchor:
    its result is then exactly that of :func:`top_eigenpair` alone (where ``v0`` is not
    ``vec_out``; a caller that warm-starts in place, as GD's matrix-free measurement does,
    starts the mixed run from the unmixed run's vector, a start as good). Memory: the
    anchor's copy (of the dense operator, or of θ and the last point whose δ was taken).

    The argument takes λ' for λ_max(A'). The mixed run gives it to its tolerance unless a
    top eigenvalue the warm start cannot see lies within about tol·scale·10³√d of it (the
    mix's own reach, :func:`top_eigenpair`); such a miss at the anchor carries over to the
    unmixed runs, which keep it, where mixed runs at every step resolve it slowly. Measured
    on a diagonal Hessian whose hidden eigenvalue rises slowly through the tracked one
    (tol = 1e-10): errors up to 4.1e-9 relative, over up to 18,542 of 100,000 records,
    against 1.5e-10 over 395 when every start is mixed.

    Returns what :func:`top_eigenpair` returns, the products of both runs counted.

    It is two calls: the check of the warm start (:func:`_anchored_check`) and, only where
    that fails, the Lanczos runs (:func:`_anchored_runs`), so that the check, made at every
    step, does not read Lanczos's workspace. It is a function of its own, not spliced into
    its callers: a splice binds its 19 arrays to new variables, a reference each, where a
    call takes none (its arguments are the caller's: ``stabsim._jit._arguments_borrowed``).
    GD at rest on the scalar network at d = 10², atomic updates of reference counts a step:
    75 spliced, 43 as a function (86 spliced before arguments were borrowed).
    """
    done, lam, residual, products, moved = _anchored_check(op, anchor, v0, work.w, tol,
                                                           vec_out)
    if done:
        return lam, residual, products, True
    return _anchored_runs(op, anchor, v0, work, max_products, tol, vec_out, moved, products)


@inline
def _anchored_check(op, anchor, v0, w, tol, vec_out):
    """The check of :func:`anchored_top_eigenpair`: (done, λ, residual, products, δ). The
    warm start v0 alone (one product, into ``w``) is tried first where the family bounds
    its Hessian's Frobenius norm (:func:`bounds_frobenius`), then, should that not settle
    it, where the operator moved at most :func:`check_reach` times ``tol``·|λ'| from the
    anchor (δ, :func:`drift`); it is done where its residual meets the tolerance and either
    that bound shows λ's eigenvalue to be the top one (:func:`dominant_top`) or λ ≥ λ' +
    δ − tol·|λ'| (Weyl); then vec_out ← v0/|v0|."""
    lam = residual = square = np.nan
    products = 0
    if bounds_frobenius(op):
        lam, residual, products, square = warm_start_check(op, v0, w)
        if residual <= tol * abs(lam) and dominant_top(op, lam, residual):
            _unit_into(vec_out, v0, square)
            return True, lam, residual, products, np.nan
    anchor_top = anchor.top[0]
    reach = check_reach(op) * tol * abs(anchor_top)
    moved = drift(op, anchor, reach) if reach > 0.0 else np.inf  # NaN (no anchor), 0: none
    if moved <= reach:
        if products == 0:
            # the warm start (the last eigenvector) usually meets the tolerance at once, and
            # then its first product is the answer, without Lanczos's bookkeeping (about
            # 0.2 µs of a 1.2 µs GD step on the scalar network at d = 100)
            lam, residual, products, square = warm_start_check(op, v0, w)
        if residual <= tol * abs(lam) and lam >= anchor_top + moved - tol * abs(anchor_top):
            _unit_into(vec_out, v0, square)
            return True, lam, residual, products, moved
    return False, lam, residual, products, moved


#: :func:`dominant_top` certifies λ where the Frobenius bound F < DOMINANCE (λ − ρ):
#: √2 = 1.41421… rounded down by 1.5e-4 relative, far more than the rounding of λ − ρ and of
#: the product (a few eps, and the residual's own, about d·eps relative: 2e-10 at d = 10⁶)
DOMINANCE = 1.414


def bounds_frobenius(op):
    """Whether ``op`` is a :class:`HessianAt` of a family that registered
    ``hessian_frobenius`` (a constant, kernels only)."""
    raise TypeError("bounds_frobenius is resolved inside compiled kernels")


def _frobenius_known(op):
    return (isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt
            and registers(op.types[op.fields.index("p")], "hessian_frobenius"))


@overload(bounds_frobenius, jit_options=KERNEL_ONLY, inline="always")
def _bounds_frobenius(op):
    return (lambda op: True) if _frobenius_known(op) else (lambda op: False)


def dominant_top(op, lam, residual):
    """Whether the Frobenius bound F ≥ ‖A‖_F of the family (``hessian_frobenius``) shows
    that a Ritz pair (λ, y) of residual ρ = |Ay − λy| belongs to A's top eigenvalue λ₁:
    F < √2 (λ − ρ) with λ − ρ > 0 (with :data:`DOMINANCE` for √2); False for an operator
    without such a bound (kernels only).

    Some eigenvalue μ of the symmetric A lies within ρ of λ, so μ ≥ λ − ρ > 0; every other
    eigenvalue ν has ν² ≤ ‖A‖_F² − μ² ≤ F² − (λ − ρ)² < (λ − ρ)², so |ν| < μ: μ is λ₁,
    a simple eigenvalue, and |λ₁ − λ| ≤ ρ. No eigenvalue is left for the start mix to find,
    wherever the Hessian moved."""
    raise TypeError("dominant_top is resolved inside compiled kernels")


@overload(dominant_top, jit_options=KERNEL_ONLY, inline="always")
def _dominant_top(op, lam, residual):
    if not _frobenius_known(op):
        return lambda op, lam, residual: False

    def bounded(op, lam, residual):
        lower = lam - residual
        return lower > 0.0 and loss_hessian_frobenius(op.theta, op.p) < DOMINANCE * lower

    return bounded


@inline
def _anchored_runs(op, anchor, v0, work, max_products, tol, vec_out, moved, products):
    """The Lanczos runs of :func:`anchored_top_eigenpair` after its check of the warm start
    (``products`` made by it: then ``work.w`` holds A v0, which the next run takes as its
    first product) failed or was not made (``moved`` above the limit): without the mix
    where ``moved`` is within the limit or the family bounds its Hessian's Frobenius norm
    (that run settled by Weyl's inequality or by :func:`dominant_top`), then with the mix
    unless that run settled it."""
    anchor_top = anchor.top[0]
    limit = tol * abs(anchor_top)
    if moved <= limit or bounds_frobenius(op):
        lam, residual, made, converged = top_eigenpair(op, v0, work, max_products, tol,
                                                       vec_out, 0.0, products > 0)
        products = made
        if converged and (lam >= anchor_top + moved - limit
                          or dominant_top(op, lam, residual)):
            return lam, residual, products, converged
    lam, residual, more, converged = top_eigenpair(op, v0, work, max_products - products,
                                                   tol, vec_out, START_MIX, False)
    products += more
    keep_anchor(op, anchor, lam if converged else np.nan)
    return lam, residual, products, converged


#: how far, in tolerances tol·|λ'|, the operator may have moved from the anchor for the
#: warm start's first product to be checked (:func:`anchored_top_eigenpair`); a check that
#: fails costs that product. GD at η = 1.9/d on the scalar network of d = 10⁶ ends on a
#: period-2 cycle at round-off whose Hessian moves by 25 tolerances a step, its top
#: eigenvalue by as much (the bound within 4e-6 of the rise, against a tolerance of 1e-4)
CHECK_REACH = 64.0


def check_reach(op):
    """``CHECK_REACH`` for a :class:`HessianAt`, whose warm start is checked on a product;
    1 for a :class:`DenseHessian`, which :func:`warm_start_check` does not check (so its
    bound is left as soon as it passes the tolerance) (kernels only)."""
    raise TypeError("check_reach is resolved inside compiled kernels")


@overload(check_reach, jit_options=KERNEL_ONLY, inline="always")
def _check_reach(op):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt:
        return lambda op: CHECK_REACH
    return lambda op: 1.0


def warm_start_check(op, v0, w):
    """(λ, r, products, |v0|²): the Rayleigh quotient λ of v0 and the residual r = |Aq −
    λq| of q = v0/|v0| (``w`` ← A v0), the pair :func:`top_eigenpair` would return after its
    first product without the mix, for a :class:`HessianAt`; λ = r = NaN for a zero or
    non-finite v0, or an operator whose products' squares leave the range where
    :func:`top_eigenpair` takes them unscaled. The product is taken of v0 itself, not of
    v0/|v0| (a sweep that writes d numbers, saved at every step: 0.6 ms of a 12 ms step at
    d = 10⁶); A(v0/|v0|) and (A v0)/|v0| differ by round-off, eps·|A| against a tolerance
    of tol·|λ|. A :class:`DenseHessian` makes no product here (NaN, NaN, 0, NaN): its
    product costs far more than the bookkeeping saved, and a second copy of it compiled
    into the engine cost 0.6–0.8 s of a cold first call (kernels only)."""
    raise TypeError("warm_start_check is resolved inside compiled kernels")


@overload(warm_start_check, jit_options=KERNEL_ONLY, inline="always")
def _warm_start_check(op, v0, w):
    if isinstance(op, types.BaseNamedTuple) and op.instance_class is HessianAt:
        def on_products(op, v0, w):
            apply(op, v0, w)
            lam, residual, square = _rayleigh_residual(v0, w)
            size = max(abs(lam), residual)  # NaN (so out of range) for a zero v0
            if not (0.0 < square < np.inf and 1.0 / LARGE_OPERATOR < size < LARGE_OPERATOR):
                return np.nan, np.nan, 1, square
            return lam, residual, 1, square

        return on_products
    return lambda op, v0, w: (np.nan, np.nan, 0, np.nan)


@inline
def _unit_into(out, v, square):
    """out ← v/|v| given ``square`` = |v|²; nothing is written where ``out`` is ``v`` and
    |v|² is 1 to round-off (within 1e-14, as :func:`top_eigenpair` leaves its vectors), as
    for the engines' warm start at every step whose check meets the tolerance."""
    if abs(square - 1.0) <= 1e-14 and out.ctypes.data == v.ctypes.data:
        return
    scale_into(out, v, 1.0 / np.sqrt(square))


@inline
def top_of_2x2(a, b, c):
    """Top eigenpair of [[a, b], [b, c]]: λ = m + r with m = (a + c)/2, r = hypot((a − c)/2, b).

    The eigenvector (b, λ − a) (or (λ − c, b)) is formed from whichever of λ − a = r − h and
    λ − c = r + h (h = (a − c)/2) is the sum of non-negative terms, so nothing cancels.
    Returns (λ, x, y) with (x, y) the unit eigenvector, x ≥ 0. Scalars in and out: spliced
    into a step, a helper that takes an array binds it to a variable, two atomic
    reference-count updates in the step's hot loop.
    """
    h = 0.5 * (a - c)
    r = hypot(h, b)
    if r == 0.0:  # a multiple of the identity: any vector
        return top_value_of_2x2(a, c, r), 1.0, 0.0
    if h >= 0.0:  # λ − c = r + h ≥ r: the eigenvector (λ − c, b)
        x, y = r + h, b
    else:  # λ − a = r − h ≥ r: the eigenvector (b, λ − a)
        x, y = b, r - h
    n = hypot(x, y) if x >= 0.0 else -hypot(x, y)
    return top_value_of_2x2(a, c, r), x / n, y / n


@inline
def top_value_of_2x2(a, c, r):
    """λ of [[a, b], [b, c]] given r = hypot((a − c)/2, b): m + r with m = (a + c)/2, or a when
    r = 0 (then a = c, except when (a − c)/2 underflows). :func:`top_of_2x2` without the
    eigenvector, for the callers that need only λ: normalising the vector takes a second
    square root and two divisions, which made a GD step on a 2-parameter loss 60% longer."""
    if r == 0.0:
        return a
    return 0.5 * (a + c) + r


@inline
def hypot(a, b):
    """sqrt(a² + b²) without overflow or underflow: the square root of the sum (within about
    one unit in the last place) unless a square leaves [1e-290, 1e290], then ``np.hypot``,
    a libm call that cost more than the rest of a 2 × 2 GD step together."""
    s = a * a + b * b
    if 1e-290 < s < 1e290:
        return np.sqrt(s)
    return np.hypot(a, b)


@inline(always=True)
def top_ritz_pair(diag, offdiag, k, below, vec_out, scratch):
    """Largest eigenvalue of the k × k symmetric tridiagonal matrix T_k of Lanczos and its unit
    eigenvector into ``vec_out[:k]`` (first entry ≥ 0), given ``below``, the largest
    eigenvalue of T_{k−1}; ``scratch`` holds k numbers. k = 1 and k = 2, the usual case of a
    warm start, in closed form (λ = a; :func:`top_of_2x2`) within the caller; otherwise
    :func:`tridiagonal_top` and :func:`tridiagonal_vector`.
    """
    if k == 1:
        vec_out[0] = 1.0
        return diag[0]
    if k == 2:
        lam, vec_out[0], vec_out[1] = top_of_2x2(diag[0], offdiag[0], diag[1])
        return lam
    lam = tridiagonal_top(diag, offdiag, k, below)
    tridiagonal_vector(diag, offdiag, k, lam, vec_out, scratch)
    return lam


@inline
def tridiagonal_top(diag, offdiag, k, below):
    """Largest eigenvalue λ of the k × k symmetric tridiagonal matrix T_k (``diag[:k]`` on
    the diagonal, ``offdiag[:k-1]`` beside it), given ``below`` = the largest eigenvalue μ
    of T_{k−1} (as Lanczos has it from its previous step); k ≥ 3.

    λ is the root above μ of the last pivot of the LDLᵀ factorisation of T_k − xI,
    d_k(x) = a_k − x − b² e_{k−1}ᵀ(T_{k−1} − xI)⁻¹e_{k−1} = a_k − x + Σ_i c_i/(x − μ_i)
    (b = ``offdiag[k-2]``, c_i ≥ 0, μ_i the eigenvalues of T_{k−1}, the largest μ). It lies
    in max(μ, a_k) ≤ λ ≤ max(μ, a_k) + |b| (Cauchy interlacing below, Weyl's inequality for
    the coupling b above; the lower end less 4 eps·scale, the width of the bracket that gave
    μ). Each point x narrows that bracket by its Sturm count (the number
    of negative pivots is the number of eigenvalues below x) and proposes the next point
    from the model a − x + c/(x − μ) with the one pole at μ, a and c fitted to d_k(x) and
    d_k'(x): the root μ + y of y² − (a − μ)y − c = 0. The first point is max(μ, a_k): once
    Lanczos has converged λ is within round-off of μ, every eigenvalue lies below that
    point, and it is returned after one pass. A proposal outside the bracket is replaced by
    bisection and one within 2 eps·scale by a probe 3 eps·scale to the other side; the
    iteration ends when the bracket is at most 4 eps·scale wide and returns its upper end,
    as bisection alone would after about 50 passes over T (6.8 on average on random
    20 × 20 matrices, 16 at most). :func:`top_ritz_pair` has the closed forms of k ≤ 2.
    """
    top = max(below, diag[k - 1])
    hi = top + abs(offdiag[k - 2])
    scale = max(abs(top), abs(hi), 1e-300)
    # μ is itself the upper end of a bracket 4 eps·scale wide: the lower end allows for it
    # (taking μ as exact let the error grow by up to 4 eps·scale with every Lanczos step)
    lo = top - 4e-16 * scale
    x = top
    for _ in range(200):
        count, pivot, slope = _pivots(diag, offdiag, k, x)
        if count == k:  # every eigenvalue lies below x
            if x == top:  # then within [lo, top]: converged to round-off
                return top
            hi = x
        else:
            lo = x
        if not (hi - lo > 4e-16 * scale):  # also ends on NaN
            break
        y = x - below
        if y > 0.0:
            c = (-slope - 1.0) * y * y
            a = pivot + y - c / y  # a − μ of the model
            root = np.sqrt(a * a + 4.0 * c)
            step = below + (0.5 * (a + root) if a >= 0.0 else 2.0 * c / (root - a)) - x
        else:  # at μ, where the model has its pole: just above it
            step = 3e-16 * scale
        if abs(step) <= 2e-16 * scale:  # converged from one side: probe the other
            step = -3e-16 * scale if count == k else 3e-16 * scale
        x += step
        if not (lo < x < hi):
            x = 0.5 * (lo + hi)
    return hi


@inline
def _pivots(diag, offdiag, k, x):
    """The LDLᵀ factorisation of T_k − xI: the number of negative pivots, the last pivot
    d_k(x) and its derivative, from d_1 = a_1 − x, d_i = a_i − x − b_{i−1}²/d_{i−1} and
    d_i' = −1 + b_{i−1}² d_{i−1}'/d_{i−1}². A zero pivot counts as −1e-300 (x just above an
    eigenvalue)."""
    pivot = diag[0] - x
    slope = -1.0
    if pivot == 0.0:
        pivot = -1e-300
    count = 1 if pivot < 0.0 else 0
    for i in range(1, k):
        ratio = offdiag[i - 1] * offdiag[i - 1] / pivot
        slope = -1.0 + ratio * slope / pivot
        pivot = diag[i] - x - ratio
        if pivot == 0.0:
            pivot = -1e-300
        if pivot < 0.0:
            count += 1
    return count, pivot, slope


@inline
def tridiagonal_vector(diag, offdiag, k, lam, vec_out, inverse_pivots):
    """The unit eigenvector of the k × k symmetric tridiagonal matrix T_k of
    :func:`tridiagonal_top` for its largest eigenvalue ``lam``, into ``vec_out[:k]`` (first
    entry ≥ 0; ``inverse_pivots``: k entries of scratch).

    Two steps of inverse iteration with T_k − (λ + 2 eps·scale)I, scale = max(|λ|, max row
    sum), factored once by Gaussian elimination without pivoting (the Thomas algorithm:
    pivots p_1 = a_1 − σ, p_i = a_i − σ − b_{i−1}²/p_{i−1}), each right-hand side multiplied
    by scale so that the solution stays near 1/eps in size whatever the size of T. A pivot
    smaller than eps·scale counts as eps·scale with its sign: the pivot of the eigenvector's
    own direction is often that small once T has converged or decoupled (σ lies 2 eps·scale
    from λ), and it is zero where σ falls on an eigenvalue of a leading block, as when λ lies
    an ulp below a diagonal entry of a decoupled T. A floor fixed in absolute terms (1e-300)
    made the solution overflow for |T| above about 1.8e8. For k ≥ 3.
    """
    scale = abs(lam)
    for i in range(k):
        scale = max(scale, abs(diag[i]) + (abs(offdiag[i - 1]) if i > 0 else 0.0)
                    + (abs(offdiag[i]) if i < k - 1 else 0.0))
    shift = lam + 2e-16 * scale
    floor = max(2.0**-52 * scale, 1e-300)
    pivot = diag[0] - shift
    for i in range(k):
        if i > 0:
            pivot = diag[i] - shift - offdiag[i - 1] * offdiag[i - 1] * inverse_pivots[i - 1]
        if abs(pivot) < floor:
            pivot = -floor if pivot < 0.0 else floor
        inverse_pivots[i] = 1.0 / pivot
    vec = vec_out[:k]
    for i in range(k):
        vec[i] = 1.0
    for _ in range(2):
        # forward y_i = (scale·s_i − b_{i−1} y_{i−1})/p_i, backward s_i = y_i − b_i s_{i+1}/p_i
        vec[0] = scale * vec[0] * inverse_pivots[0]
        for i in range(1, k):
            vec[i] = (scale * vec[i] - offdiag[i - 1] * vec[i - 1]) * inverse_pivots[i]
        for i in range(k - 2, -1, -1):
            vec[i] -= offdiag[i] * inverse_pivots[i] * vec[i + 1]
        top = 0.0
        for i in range(k):
            top = max(top, abs(vec[i]))
        scale_into(vec, vec, 1.0 / top)  # then the norm cannot overflow
        scale_into(vec, vec, 1.0 / np.sqrt(dot(vec, vec)))
    if vec[0] < 0.0:
        scale_into(vec, vec, -1.0)


@inline
def deflated_top_eigenpairs(op, vectors, work, max_products, tol, tops):
    """The top n = ``tops.shape[0]`` eigenpairs of the symmetric operator ``op``, pair by
    pair: pair i is :func:`top_eigenpair` of :class:`Deflated` (``op``, ``vectors``, i,
    |λ₁|), P_i A P_i with P_i projecting out the pairs 0..i−1 found before it (pair 0 has
    nothing locked: A itself), warm-started in place from ``vectors[i d:(i + 1) d]`` (the
    pairs of the last measurement) with its own mix vector (:func:`pair_vector`); λ_i goes
    into ``tops[i]``. The later pairs' tolerance is relative to |λ₁| ≤ |A|: P_i A P_i is
    round-off where A has rank i (a linear network at its minimum), and a tolerance
    relative to it was out of reach. Stops at the first pair that fails (its ``tops`` entry
    written, the later ones left alone). Memory: the n vectors and one Lanczos workspace.

    Returns (the largest residual of the pairs measured (NaN where one is), the products,
    whether every pair converged).
    """
    d = work.w.shape[0]
    residual = 0.0
    total = 0
    for i in range(tops.shape[0]):
        pair = vectors[i * d:(i + 1) * d]
        lam, pair_residual, products, converged = top_eigenpair(
            Deflated(op, vectors, i, abs(tops[0]) if i > 0 else 0.0), pair, work,
            max_products, tol, pair, START_MIX, False)
        tops[i] = lam
        total += products
        if not pair_residual <= residual:  # the largest, or NaN
            residual = pair_residual
        if not (converged and np.isfinite(pair_residual)):
            return residual, total, converged
    return residual, total, True


@jit
def hessian_top_eigenpairs(p, theta, vectors, max_products, tol, tops, thick):
    """:func:`deflated_top_eigenpairs` of ∇²L(θ) on Hessian-vector products of the loss of
    record ``p`` (a budget of ``max_products`` products for each pair; a basis of
    ``LANCZOS_RESTART`` vectors, thick restarts where ``thick`` is True, thin ones where it
    is None: see :func:`lanczos_work`): GD's measurement of its top eigenvalues as an entry
    point from Python, compiled once per loss family and kind of restart (through
    ``stabsim.losses._engines.engine_for``). One pair has the operator GD's measurement of
    two has, so a process that runs both compiles :func:`top_eigenpair` once."""
    work = lanczos_work(theta.shape[0], LANCZOS_RESTART, thick)
    return deflated_top_eigenpairs(hessian_at(theta, p), vectors, work, max_products, tol, tops)


@jit
def scaled_hessian_top_eigenpairs(p, theta, scale, vectors, max_products, tol, tops, thick):
    """:func:`hessian_top_eigenpairs` of D ∇²L(θ) D, D = diag(``scale``)
    (:class:`ScaledHessianAt`): with ``scale`` = P^{-1/2} the generalised eigenpairs of a
    diagonal preconditioner P (∇²L u = λ P u, u = D v), as an entry point from Python for
    the adaptive flows (compiled once per loss family and kind of restart)."""
    work = lanczos_work(theta.shape[0], LANCZOS_RESTART, thick)
    op = ScaledHessianAt(theta, p, loss_linearise(theta, p), scale, np.empty(theta.shape[0]))
    return deflated_top_eigenpairs(op, vectors, work, max_products, tol, tops)


@jit
def dense_hessian_top_eigenpair(p, theta, vectors, max_products, tol, tops, thick, hess, factor):
    """:func:`top_eigenpair` of ∇²L(θ) = ``hess`` + ``factor``ᵀ``factor``, the dense parts that
    the family's ``hessian_parts`` writes into these buffers (d × d, and the family's factor
    rows × d), warm-started in place from ``vectors`` (length d), λ into ``tops[0]``: the GD
    engine's measurement of families that prefer the dense Hessian, as an entry point from
    Python (compiled once per family and kind of restart, ``thick`` as for
    :func:`hessian_top_eigenpairs`, whose results it returns for one pair)."""
    grad = np.empty(theta.shape[0])
    loss_hessian_parts(theta, p, grad, hess, factor)
    work = lanczos_work(theta.shape[0], LANCZOS_RESTART, thick)
    tops[0], residual, products, converged = top_eigenpair(DenseHessian(hess, factor), vectors,
                                                           work, max_products, tol, vectors,
                                                           START_MIX, False)
    return residual, products, converged
