"""Compiled engine for exact gradient methods on any loss family.

:func:`gd_steps` advances a chunk of steps of one of five update rules and records loss,
gradient norm, top-k sharpness and (optionally) the iterates at a stride. It takes a few
grouped records (:class:`Method`, :class:`Eigen`, :class:`GDState`, :class:`Records`) and
reaches the loss only through the protocol of :mod:`stabsim.losses._protocol`, so it is
compiled once per loss family. :func:`gd_chunk` is its entry point from Python (the wrapper in
``stabsim.maps.gd`` calls it chunk by chunk, so Ctrl-C and progress bars work between chunks);
the sweep kernel calls :func:`gd_steps` directly. All state needed to continue a run lives in
the arrays of :class:`GDState`.

The sharpness comes from warm-started Lanczos (:mod:`stabsim._lanczos`), on Hessian-vector
products by default (O(d) memory; several eigenvalues one after another, each with those
above it deflated), or on the dense Hessian that the family's ``hessian_parts`` gives
(families that prefer it, or ``eigh``). The measurements are record types
(:class:`MatrixFree`, :class:`MatrixFreeDeflated`, :class:`DenseLanczos`,
:class:`TinyDense`, :class:`DenseEigh`) resolved at compile time, so a kernel compiles only
the measurement it runs.
"""

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from .._jit import KERNEL_ONLY, inline, jit
from .._lanczos import (
    START_MIX,
    DenseHessian,
    HessianAt,
    anchor_work,
    anchored_top_eigenpair,
    deflated_top_eigenpairs,
    hypot,
    lanczos_work,
    point_anchor_work,
    top_eigenpair,
    top_value_of_2x2,
)
from .._linalg import add_gram, dot, norm_of, scale_into
from .._pages import large_empty
from .._status import Status
from ..losses._protocol import hessian_parts_within as loss_hessian_parts_within
from ..losses._protocol import registers
from ..losses._protocol import value_grad as loss_value_grad
from ..losses._protocol import value_grad_linearise as loss_value_grad_linearise

GD = 0  #: θ' = θ − η∇L(θ)
HEAVY_BALL = 1  #: θ' = θ − η∇L(θ) + β(θ − θ_prev)
NESTEROV = 2  #: b' = βb + ∇L(θ);  θ' = θ − η(∇L(θ) + βb')   (PyTorch form)
NORMALISED = 3  #: θ' = θ − η∇L(θ)/|∇L(θ)|
SQRT_LOSS = 4  #: θ' = θ − η∇sqrt(L − L_min) = θ − η∇L/(2 sqrt(L − L_min))

_OK = int(Status.OK)
_DIVERGED = int(Status.DIVERGED)
_NONFINITE = int(Status.NONFINITE)
_ZERO_GRADIENT = int(Status.ZERO_GRADIENT)
_NOT_CONVERGED = int(Status.NOT_CONVERGED)


@inline
def rows_before(done, stride):
    """Rows of the records (steps 0, stride, 2·stride, …) of the steps before ``done``."""
    return (done - 1) // stride + 1 if done > 0 else 0


@inline
def rows_kept(status, done, stride):
    """Rows of the records kept by a run that stopped with ``status`` != OK after ``done``
    updates: those before step ``done``, and the one of step ``done`` itself where it was
    recorded before the stop, as ZERO_GRADIENT's is (the state was measured and recorded; it
    is the update from it that is undefined). Every other stop is a state that failed its
    checks, and is not recorded."""
    if status == _ZERO_GRADIENT and done % stride == 0:
        return done // stride + 1
    return rows_before(done, stride)


class Method(NamedTuple):
    """The update rule (one of the constants above) and its constants."""

    rule: int
    eta: float
    momentum: float
    loss_min: float


@inline
def effective_step(rule, eta, base, loss, gnorm, loss_min):
    """The step h_t of the rule, θ' = θ − h_t ∇L (momentum aside): ``base`` for GD and the
    momentum methods (2 / their stability threshold), η/|∇L| for normalised GD and
    η/(2 sqrt(L − L_min)) for GD on sqrt(L − L_min); NaN where undefined (|∇L| = 0, L ≤ L_min).

    The one place these are written: the engine's updates, the sweep's relative sharpness
    S h_t / 2 and the manifold comparison's e_t = h_t λ1 use it.
    """
    if rule == NORMALISED:
        return eta / gnorm if gnorm > 0.0 else np.nan
    if rule == SQRT_LOSS:
        gap = loss - loss_min
        return eta / (2.0 * np.sqrt(gap)) if gap > 0.0 else np.nan
    return base


class MatrixFree(NamedTuple):
    """Measure S by Lanczos on Hessian-vector products (O(d) memory)."""

    restart: int  #: Lanczos restart length (basis size)
    max_products: int  #: budget of Hessian-vector products per measurement
    tol: float  #: relative residual tolerance
    #: True: thick restarts; None: thin ones (a type: see :func:`stabsim._lanczos.lanczos_work`)
    thick: object = None


class MatrixFreeDeflated(NamedTuple):
    """Measure the top ``n_top`` eigenvalues by Lanczos on Hessian-vector products, each
    with the eigenvectors above it deflated (O(n_top · d) memory)."""

    restart: int
    max_products: int  #: budget of products per eigenpair
    tol: float
    n_top: int
    thick: object = None  #: as :attr:`MatrixFree.thick`


class DenseLanczos(NamedTuple):
    """Measure S by Lanczos on the dense Hessian (plus factor) of ``hessian_parts``."""

    restart: int
    max_products: int
    tol: float
    factor_rows: int  #: rows of the factor ``hessian_parts`` leaves out of the dense part
    thick: object = None  #: as :attr:`MatrixFree.thick`


class TinyDense(NamedTuple):
    """Measure S of a loss of dimension d ≤ 2 from its dense Hessian, in closed form."""

    factor_rows: int


class DenseEigh(NamedTuple):
    """Measure the top ``n_top`` eigenvalues by ``numpy.linalg.eigh`` of the dense Hessian."""

    n_top: int
    factor_rows: int


class GDState(NamedTuple):
    """Everything a run needs to continue: updated in place."""

    theta: np.ndarray  #: θ_t
    buf: np.ndarray  #: θ_{t−1} for heavy ball, the momentum buffer b for Nesterov
    #: θ_{t−1} (θ_0 at t = 0), for the crossing pair (may be empty where no crossing is
    #: searched for: it is read and written only while searching)
    prev_theta: np.ndarray
    evec: np.ndarray  #: the last top eigenvector (warm start, sign reference; TinyDense: unused)
    #: [t, θ_{t−1}, θ_t] at the first crossing; t = −1 before it (may be [−1] alone where no
    #: crossing is searched for)
    crossing: np.ndarray
    counts: np.ndarray  #: int64 [gradients, Lanczos products, dense Hessians] so far


class Records(NamedTuple):
    """Per-record outputs; row t // stride holds step t."""

    loss: np.ndarray
    gnorm: np.ndarray
    sharp: np.ndarray  #: (n_rec, n_top)
    theta: np.ndarray  #: (n_rec, d) or (0, d) when iterates are not recorded
    residual: np.ndarray


@inline(fastmath=True)
def _all_finite(a):
    """Whether every entry of the 2-D array ``a`` is finite (x − x is 0 only for finite x)."""
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += a[i, j] - a[i, j]
    return s == 0.0


@jit
def _dense_top(hess_buf, factor, evec, n_top, top_out):
    """Top ``n_top`` eigenvalues of ``hess_buf + factorᵀ factor`` by ``eigh``, descending,
    ``hess_buf`` given by its upper triangle (its lower one is overwritten with the mirror).

    ``evec`` receives the top eigenvector, signed to agree with its previous value. Returns 0
    (the residual of a direct solver), or NaN when the matrix has a non-finite entry (LAPACK
    would raise on it).
    """
    d = hess_buf.shape[0]
    for i in range(d):
        for j in range(i):
            hess_buf[i, j] = hess_buf[j, i]
    if not (_all_finite(hess_buf) and _all_finite(factor)):
        return np.nan
    add_gram(hess_buf, factor)
    values, vectors = np.linalg.eigh(hess_buf)
    for i in range(n_top):
        top_out[i] = values[d - 1 - i]
    sign = 1.0 if dot(vectors[:, d - 1], evec) >= 0.0 else -1.0
    for i in range(d):
        evec[i] = sign * vectors[i, d - 1]
    return 0.0


class _Work(NamedTuple):
    """Per-run buffers: the gradient, a dense Hessian and factor (empty unless dense), the
    Lanczos workspace, its anchor, the previous eigenvector (a dense measurement's warm
    start; empty for the matrix-free ones, which warm-start from the last eigenvector in
    place) and the measured eigenvalues."""

    g: np.ndarray
    hess: np.ndarray
    factor: np.ndarray
    lanczos: object
    #: the Lanczos anchor of a dense Lanczos measurement, or of a matrix-free one for a
    #: family with ``hessian_drift`` or ``hessian_frobenius`` (None otherwise)
    anchor: object
    prev_evec: np.ndarray
    top: np.ndarray


def _is(eigen, cls):
    return isinstance(eigen, types.BaseNamedTuple) and eigen.instance_class is cls


def _workspace(eigen, p, d):
    """The buffers a run with this measurement on the loss of record ``p`` needs; ``p`` None
    for an engine whose products keep no anchor (the adaptive methods measure D ∇²L D, whose
    drift no family bounds). Kernels only."""
    raise TypeError("resolved inside compiled kernels")


def _anchors_products(eigen, p):
    """Whether a measurement on products keeps a :class:`~stabsim._lanczos.PointAnchor`:
    a single top pair, of a family that bounds its Hessian's drift or its Frobenius norm
    (Numba types)."""
    return _is(eigen, MatrixFree) and (registers(p, "hessian_drift")
                                       or registers(p, "hessian_frobenius"))


@overload(_workspace, jit_options=KERNEL_ONLY)
def _workspace_impl(eigen, p, d):
    # the matrix-free measurements without an anchor warm-start in place: no copy of the
    # last eigenvectors
    if _anchors_products(eigen, p):
        return lambda eigen, p, d: _Work(large_empty(d), np.empty((0, 0)), np.empty((0, d)),
                                         lanczos_work(d, eigen.restart, eigen.thick),
                                         point_anchor_work(d), np.empty(0), np.empty(1))
    if _is(eigen, MatrixFree):
        return lambda eigen, p, d: _Work(large_empty(d), np.empty((0, 0)), np.empty((0, d)),
                                         lanczos_work(d, eigen.restart, eigen.thick), None,
                                         np.empty(0), np.empty(1))
    if _is(eigen, MatrixFreeDeflated):
        return lambda eigen, p, d: _Work(large_empty(d), np.empty((0, 0)), np.empty((0, d)),
                                         lanczos_work(d, eigen.restart, eigen.thick), None,
                                         np.empty(0), np.empty(eigen.n_top))
    if _is(eigen, DenseLanczos):
        return lambda eigen, p, d: _Work(large_empty(d), large_empty((d, d)),
                                         np.empty((eigen.factor_rows, d)),
                                         lanczos_work(d, eigen.restart, eigen.thick),
                                         anchor_work(d, eigen.factor_rows), large_empty(d),
                                         np.empty(1))
    if _is(eigen, DenseEigh):
        return lambda eigen, p, d: _Work(large_empty(d), large_empty((d, d)),
                                         np.empty((eigen.factor_rows, d)), lanczos_work(1, 1, None),
                                         None, large_empty(d), np.empty(eigen.n_top))
    if _is(eigen, TinyDense):
        return lambda eigen, p, d: _Work(large_empty(d), large_empty((d, d)),
                                         np.empty((eigen.factor_rows, d)), lanczos_work(1, 1, None),
                                         None, large_empty(d), np.empty(1))


def _holds_dense(eigen):
    """Whether the measurement works on the dense Hessian parts: a constant of the record's
    type (kernels only)."""
    raise TypeError("resolved inside compiled kernels")


def _on_products(eigen):
    """Whether the measurement record ``eigen`` (a Numba type) works on products."""
    return _is(eigen, MatrixFree) or _is(eigen, MatrixFreeDeflated)


@overload(_holds_dense, jit_options=KERNEL_ONLY, inline="always")
def _holds_dense_impl(eigen):
    dense = not _on_products(eigen)
    return lambda eigen: dense


def evaluate_dense(eigen, theta, p, g, hess, factor, allowance):
    """(L(θ), b) and g ← ∇L(θ) with the dense Hessian parts into hess and factor (the
    buffers of :func:`_workspace`), at a step whose sharpness a dense measurement takes
    next; callers reach it only where :func:`_holds_dense` is true and call the family's
    ``value_grad`` themselves otherwise (kernels only). The family's
    ``hessian_parts_within``: where it bounds the dense part's 2-norm by b < ``allowance``
    it leaves hess as it was, else b = −1 (always at ``allowance`` 0).

    For a matrix-free measurement it does nothing and returns (NaN, −1): the family's
    ``hessian_parts`` is never even compiled, so neither is the dense Hessian of a large
    model. Nor is ``value_grad`` compiled here: the engines call it at their other steps,
    and a function reached both from an engine and from inside this overload is compiled
    once for each (measured on the 1-6-6-6-1 network: two compilations of its
    ``value_grad``, each linking in the backpropagation pass).
    """
    raise TypeError("resolved inside compiled kernels")


@overload(evaluate_dense, jit_options=KERNEL_ONLY)
def _evaluate_dense_impl(eigen, theta, p, g, hess, factor, allowance):
    if _on_products(eigen):
        return lambda eigen, theta, p, g, hess, factor, allowance: (np.nan, -1.0)
    return lambda eigen, theta, p, g, hess, factor, allowance: loss_hessian_parts_within(
        theta, p, g, hess, factor, allowance)


def left_out_allowance(eigen, anchor):
    """How large a dense part of the Hessian GD's measurement may do without: half the
    Lanczos tolerance relative to the top eigenvalue of the last anchor (the last
    measurement with the start mix) for :class:`DenseLanczos`, 0 (none) for the others and
    before any anchor (kernels only). See :func:`_measure`."""
    raise TypeError("resolved inside compiled kernels")


@overload(left_out_allowance, jit_options=KERNEL_ONLY, inline="always")
def _left_out_allowance_impl(eigen, anchor):
    if _is(eigen, DenseLanczos):
        def allowance(eigen, anchor):
            room = 0.5 * eigen.tol * abs(anchor.top[0])
            return room if room > 0.0 else 0.0  # NaN before the first anchor

        return allowance
    return lambda eigen, anchor: 0.0


def evaluate_products(eigen, theta, p, g):
    """(L(θ), state) and g ← ∇L(θ), the state that of the family's ``linearise`` at θ for
    the products of a matrix-free measurement, from the family's ``value_grad_linearise``
    (one pass for a network), at a step whose sharpness is measured on products; callers
    reach it only where :func:`_holds_dense` is false (kernels only).

    For a dense measurement it does nothing and returns NaN and an empty state, so that
    neither the family's ``value_grad_linearise`` nor its ``linearise`` is compiled for it.
    """
    raise TypeError("resolved inside compiled kernels")


@overload(evaluate_products, jit_options=KERNEL_ONLY)
def _evaluate_products_impl(eigen, theta, p, g):
    if _on_products(eigen):
        return lambda eigen, theta, p, g: loss_value_grad_linearise(theta, p, g)
    return lambda eigen, theta, p, g: (np.nan, np.empty(0))


def _measure(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top, evec,
             left_out):
    """The top eigenvalue(s) into top and evec ← the top eigenvector (not by
    :class:`TinyDense`, which has no use for it), with the buffers of
    :func:`_workspace` (taken out of their record once per chunk: a field read inside the
    step loop is an atomic reference-count increment and decrement per array, 16 for the
    Lanczos workspace alone), ``state`` the family's ``linearise`` at θ for a matrix-free
    measurement (:func:`evaluate_products`; ignored by the others); returns the residual
    (0 for eigh; NaN for a non-finite Hessian), whether it met the tolerance (False only
    when Lanczos ran out of products) and the Lanczos products used (0 for the direct
    solvers) (kernels only).

    ``left_out`` ≥ 0 (:class:`DenseLanczos` only): the family left out a dense part h of
    2-norm at most ``left_out`` (:func:`evaluate_dense`; ``hess`` holds zeros), so the
    operator measured is A − h for the Hessian A. Lanczos then runs to half the tolerance,
    τ/2, and the residual returned is |(A − h)v − λv| + ``left_out`` ≥ |Av − λv|; it
    counts as converged only where ``left_out`` ≤ τ|λ|/2 as well, so that the residual is
    within τ max(|λ|, …) as Lanczos's own criterion asks (and λ within ``left_out`` of the
    eigenvalue of A, by Weyl's inequality). Otherwise the caller forms h and measures
    again."""
    raise TypeError("resolved inside compiled kernels")


@overload(_measure, jit_options=KERNEL_ONLY, inline="always")
def _measure_direct(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top,
                    evec, left_out):
    """The direct solvers, spliced into the step (chosen when a call still took a reference
    of every array passed to it, which cost more than the 2 × 2 solve)."""
    if _is(eigen, DenseEigh):
        return lambda eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top, \
            evec, left_out: (_dense_top(hess, factor, evec, eigen.n_top, top), True, 0)
    if _is(eigen, TinyDense):
        def tiny(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top, evec,
                 left_out):
            # straight-line array code, the branches on scalars only: see _tiny_entries
            a, b, c = _tiny_entries(hess, factor)
            residual, lam = _tiny_top(a, b, c, hess.shape[0] == 2)
            top[0] = lam
            return residual, True, 0

        return tiny


@overload(_measure, jit_options=KERNEL_ONLY)
def _measure_lanczos(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top,
                     evec, left_out):
    """Lanczos, a function of its own. Spliced into the step instead, it compiled twice
    (once alone, with everything it calls) until stabsim stopped Numba from compiling
    spliced functions alone (:mod:`stabsim._jit`); since then splicing it saves nothing
    measurable (the first ``run_gd`` on a 1-6-6-6-1 network: 26.0 s spliced, 25.3 s not)."""
    if _anchors_products(eigen, p):
        def anchored(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top,
                     evec, left_out):
            lam, residual, products, converged = anchored_top_eigenpair(
                HessianAt(theta, p, state), anchor, evec, lanczos, eigen.max_products,
                eigen.tol, evec)
            top[0] = lam
            return residual, converged, products

        return anchored
    if _is(eigen, MatrixFree):
        def matrix_free(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top,
                        evec, left_out):
            # warm-started from evec in place (top_eigenpair reads each entry before writing it)
            lam, residual, products, converged = top_eigenpair(
                HessianAt(theta, p, state), evec, lanczos, eigen.max_products, eigen.tol,
                evec, START_MIX, False)
            top[0] = lam
            return residual, converged, products

        return matrix_free
    if _is(eigen, MatrixFreeDeflated):
        def deflated(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec, top,
                     evec, left_out):
            residual, products, converged = deflated_top_eigenpairs(
                HessianAt(theta, p, state), evec, lanczos, eigen.max_products, eigen.tol, top)
            return residual, converged, products

        return deflated
    if _is(eigen, DenseLanczos):
        def dense_lanczos(eigen, theta, p, state, hess, factor, lanczos, anchor, prev_evec,
                          top, evec, left_out):
            scale_into(prev_evec, evec, 1.0)
            whole = left_out < 0.0
            lam, residual, products, converged = anchored_top_eigenpair(
                DenseHessian(hess, factor), anchor, prev_evec, lanczos, eigen.max_products,
                eigen.tol if whole else 0.5 * eigen.tol, evec)
            top[0] = lam
            if whole:
                return residual, converged, products
            return (residual + left_out, converged and left_out <= 0.5 * eigen.tol * abs(lam),
                    products)

        return dense_lanczos


@inline(always=True)
def _tiny_entries(hess_buf, factor):
    """(a, b, c) of the matrix [[a, b], [b, c]] = ``hess_buf + factorᵀ factor`` (2 × 2), or
    a of the 1 × 1 one (then b = c = a).

    Straight-line array code: the compiler removes the atomic reference-count updates of
    the arrays an inlined helper takes only when no branch or call separates them, and they
    cost more than the whole 2 × 2 solve. Only the sum's entries need checking for
    finiteness: a NaN or ±inf entry F_ki of the factor makes the diagonal entry (i, i) of FᵀF
    NaN or +inf, and a non-finite entry of ``hess_buf`` stays non-finite whatever is added.
    """
    last = hess_buf.shape[0] - 1
    a = hess_buf[0, 0]
    b = hess_buf[0, last]  # the upper triangle: the protocol's hessian_parts leaves the lower
    c = hess_buf[last, last]
    for k in range(factor.shape[0]):
        f0 = factor[k, 0]
        f1 = factor[k, last]
        a += f0 * f0
        b += f0 * f1
        c += f1 * f1
    return a, b, c


@inline(always=True)
def _tiny_top(a, b, c, two):
    """Top eigenvalue of [[a, b], [b, c]] (``two``) or of [[a]] in closed form
    (:func:`stabsim._lanczos.top_value_of_2x2`). Returns (0, λ), or NaN for both for a
    non-finite matrix (b is NaN if a or c is).

    No eigenvector: this measurement has no warm start to give, and a chain of a second
    square root and two divisions per step is what normalising one would cost."""
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        return np.nan, np.nan
    if not two:
        return 0.0, a
    return 0.0, top_value_of_2x2(a, c, hypot(0.5 * (a - c), b))


@inline
def _stand_in_zeros(left_out, hess, cleared):
    """Where the family left the dense part out (``left_out`` ≥ 0), zeros stand in for it
    in the upper triangle of ``hess`` (written once, while ``cleared`` says they are there
    already); returns whether they are there now."""
    if left_out < 0.0:
        return False
    if not cleared:
        for i in range(hess.shape[0]):
            for j in range(i, hess.shape[0]):
                hess[i, j] = 0.0
    return True


@inline
def gd_steps(p, method, eigen, state, rec, start, n_steps, finish, stride, divergence_norm,
             crossing_threshold):
    """Advance ``n_steps`` steps from step ``start``; record every ``stride``-th step.

    The state at step t is recorded (into row t // stride) before the update of step t, so
    row 0 is the start. With ``finish`` the state after the last update is evaluated and
    recorded too (the last chunk of a run). Empty records (length 0) record and measure
    nothing: the plain update, as :func:`stabsim.maps.gd.step` uses it. ``eigen`` is a
    :class:`MatrixFree`, :class:`MatrixFreeDeflated`, :class:`DenseLanczos`,
    :class:`TinyDense` or :class:`DenseEigh` record.

    Crossing search: while ``state.crossing[0] < 0`` and ``crossing_threshold > 0`` the top
    eigenvalue is computed every step; at the first t with S(θ_t) ≥ threshold,
    ``crossing = [t, θ_{t−1}, θ_t]`` (θ_{t−1} = θ_t at t = 0; θ_{t−1} is kept in the state,
    so a crossing on a chunk boundary gets the right pair).

    Returns
    -------
    status : int
        ``Status`` code: OK, DIVERGED, NONFINITE, ZERO_GRADIENT, or NOT_CONVERGED when
        Lanczos used its budget of products without meeting its tolerance.
    steps_done : int
        Updates applied in this chunk (a failing state is neither recorded nor updated; a
        critical one, ZERO_GRADIENT, is recorded and not updated).
    """
    theta, buf, prev_theta, evec, crossing, counts = state
    rule, eta, momentum, loss_min = method
    d = theta.shape[0]
    g, hess, factor, lanczos, anchor, prev_evec, top = _workspace(eigen, p, d)
    # the arrays taken out of their records once: each access of a record's field inside the
    # loop would be a reference-count increment and decrement (atomic operations)
    rec_loss, rec_gnorm, rec_sharp, rec_theta, rec_residual = rec
    record_trajectory = rec_theta.shape[0] > 0
    n_records = rec_loss.shape[0]
    n_top = rec_sharp.shape[1]
    # steps to the next record, counted down: an integer division per step is a tenth of
    # a 2-parameter step
    until_record = -start % stride
    row = (start + until_record) // stride
    linearised = np.empty(0)  # the family's linearise at θ, at steps measured on products
    left_out = -1.0  # a bound on the dense part of the Hessian the family left out, or −1
    hess_cleared = False  # the zeros a left-out dense part stands as are in hess already
    # below the last bound rejected: a bound that stays between τ|λ|/2 and the allowance
    # would otherwise cost an attempt and a measurement again at every step
    ceiling = np.inf
    for k in range(n_steps + 1 if finish else n_steps):
        t = start + k
        searching = crossing[0] < 0 and crossing_threshold > 0.0
        recording = n_records > 0 and until_record == 0
        until_record = stride - 1 if until_record == 0 else until_record - 1
        measuring = recording or searching
        # the unmeasured step calls the loss directly: behind one overloaded helper with the
        # dense branch, it cost 30 to 700 ns a step on a 2-parameter loss (11 ns so, measured)
        dense = measuring and _holds_dense(eigen)
        if dense:
            loss, left_out = evaluate_dense(eigen, theta, p, g, hess, factor,
                                            min(left_out_allowance(eigen, anchor), ceiling))
            hess_cleared = _stand_in_zeros(left_out, hess, hess_cleared)
            if left_out < 0.0:  # formed
                counts[2] += 1
        elif measuring:  # one pass for the gradient and what the products share
            loss, linearised = evaluate_products(eigen, theta, p, g)
        else:
            loss = loss_value_grad(theta, p, g)
        counts[0] += 1
        gnorm = norm_of(g, dot(g, g))
        if not (np.isfinite(loss) and np.isfinite(gnorm)):
            return _NONFINITE, k
        if np.sqrt(dot(theta, theta)) > divergence_norm:
            return _DIVERGED, k
        if measuring:
            residual, converged, products = _measure(eigen, theta, p, linearised, hess, factor,
                                                     lanczos, anchor, prev_evec, top, evec,
                                                     left_out)
            counts[1] += products
            if not converged and left_out >= 0.0:
                # the part left out is not small beside λ after all (or Lanczos ran out at
                # the tighter tolerance): measure again on the whole Hessian
                ceiling = left_out
                loss, left_out = evaluate_dense(eigen, theta, p, g, hess, factor, 0.0)
                hess_cleared = False
                counts[2] += 1
                residual, converged, products = _measure(eigen, theta, p, linearised, hess,
                                                         factor, lanczos, anchor, prev_evec,
                                                         top, evec, left_out)
                counts[1] += products
            if not np.isfinite(residual):
                return _NONFINITE, k
            if not converged:
                return _NOT_CONVERGED, k
            if searching and top[0] >= crossing_threshold:
                crossing[0] = t
                for i in range(d):
                    crossing[1 + i] = prev_theta[i]
                    crossing[1 + d + i] = theta[i]
            if recording:
                rec_loss[row] = loss
                rec_gnorm[row] = gnorm
                rec_residual[row] = residual
                for i in range(n_top):
                    rec_sharp[row, i] = top[i]
                if record_trajectory:
                    for i in range(d):
                        rec_theta[row, i] = theta[i]
                row += 1
        if k == n_steps:
            break
        # the updates as loops: array expressions would allocate a temporary every step
        if rule == NORMALISED or rule == SQRT_LOSS:
            if rule == SQRT_LOSS and loss < loss_min:  # sqrt of a negative gap
                return _NONFINITE, k
            h = effective_step(rule, eta, eta, loss, gnorm, loss_min)
            if gnorm == 0.0 or not np.isfinite(h):
                return _ZERO_GRADIENT, k
        else:
            h = eta
        if searching:  # θ_{t−1} of the next step's crossing test (read only while searching)
            for i in range(d):
                prev_theta[i] = theta[i]
        # one loop per rule: with the rule tested inside, the compiler vectorised all three
        # branches under masks, and AVX-512 masked loads and stores made the plain update
        # take most of a matrix-free step at d = 10⁶ (measured with perf)
        if rule == HEAVY_BALL:  # θ' = θ − η∇L + β(θ − θ_prev)
            for i in range(d):
                s = momentum * (theta[i] - buf[i]) - eta * g[i]
                buf[i] = theta[i]
                theta[i] += s
        elif rule == NESTEROV:  # b' = βb + ∇L; θ' = θ − η(∇L + βb')
            for i in range(d):
                buf[i] = momentum * buf[i] + g[i]
                theta[i] -= eta * (g[i] + momentum * buf[i])
        else:  # θ' = θ − h∇L
            for i in range(d):
                theta[i] -= h * g[i]
    return _OK, n_steps


gd_chunk = jit(gd_steps)
""":func:`gd_steps` as a compiled entry point (one specialisation per loss family): the
function itself, not a wrapper that calls it, which would be one more compilation of the
whole engine (see :mod:`stabsim._jit`)."""
