"""Spectral quantities of the Hessian: sharpness, its gradient, and the EoS constants.

- Sharpness ``S(θ) = λ_max(∇²L(θ))`` with unit eigenvector ``u``.
- ``∇S(θ) = ∇³L(θ)[u, u]`` (Hellmann–Feynman, valid when λ_max is simple).
- Damian et al.'s constants at a point (docs/theory.md §1): ``α = −∇L·∇S⊥``, ``β = |∇S⊥|²``,
  ``δ² = 2α/β`` with the projection ``∇S⊥ = ∇S − (u·∇S)u`` that the paper's code uses (the
  default, and the consistent convention: GD's cycle mean of x² is δ⊥²), or with the
  unprojected ∇S for comparison.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses

import numpy as np

from . import _validate as check
from ._lanczos import (
    dense_hessian_top_eigenpair,
    hessian_top_eigenpairs,
    mix_vector,
    scaled_hessian_top_eigenpairs,
)
from ._norm import norm as _norm
from ._status import FlatSharpnessError, NonFiniteError, UndefinedError
from .losses import Loss
from .losses._base import check_dense_memory, require_loss
from .losses._engines import engine_for

#: "auto" forms the dense Hessian up to this dimension (8 KB), or for families whose
#: Hessian-vector product costs as much as the matrix (``Family.prefers_dense``)
SMALL_DIM = 32


@dataclasses.dataclass(frozen=True)
class Eigenpairs:
    """Top eigenpairs of a Hessian, largest first.

    Attributes
    ----------
    values : ndarray, shape (k,)
    vectors : ndarray, shape (d, k)
        Unit columns; the first is signed to agree with the start vector when one was given.
    residuals : ndarray, shape (k,)
        ``|H v − λ v|`` for each pair, recomputed with Hessian-vector products.
    eigensolver : str
        ``"eigh"`` (``numpy.linalg.eigh``) or ``"lanczos"`` (ARPACK ``eigsh`` on HVPs).
    """

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    eigensolver: str

    @property
    def gap(self) -> float:
        """λ1 − λ2 (needs k ≥ 2)."""
        if self.values.shape[0] < 2:
            raise ValueError("the eigengap needs k >= 2 eigenpairs")
        return float(self.values[0] - self.values[1])


def align_sign(vector: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Return ``±vector`` with a non-negative inner product with ``reference``.

    Eigenvectors are defined up to sign; aligning each new one with the previous keeps the
    sign consistent along a trajectory (so that x_t = u·(θ_t − θ*) is well defined).
    """
    vector = check.real_array("vector", vector, ndim=1)
    if reference is not None:
        reference = check.real_array("reference", reference, shape=vector.shape)
    return _aligned(vector, reference)


def _aligned(vector: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """:func:`align_sign` of arrays of the same length (unchecked)."""
    if reference is not None and float(np.dot(vector, reference)) < 0.0:
        return -vector
    return vector


def hessian_spectrum(loss: Loss, theta) -> tuple[np.ndarray, np.ndarray]:
    """Every eigenvalue (descending) of ∇²L(θ) and its unit eigenvector (columns), by eigh.

    All NaN when the Hessian has a NaN or inf entry anywhere: LAPACK reads one triangle
    only, so a NaN in the other would otherwise give finite eigenvalues. Callers with a
    status report NONFINITE; :func:`top_eigenpairs` raises :class:`NonFiniteError`. θ is
    not checked here: its callers hold a checked one.
    """
    hessian = loss._hessian(theta)
    if not np.isfinite(hessian).all():
        return np.full(loss.dim, np.nan), np.full((loss.dim, loss.dim), np.nan)
    values, vectors = np.linalg.eigh(hessian)
    return values[::-1], vectors[:, ::-1]


def _hessian_operator(loss: Loss, theta, start: np.ndarray):
    """c·∇²L(θ) as a SciPy ``LinearOperator`` of Hessian-vector products (O(d) memory), and
    the factor c: a power of two that brings |∇²L(θ) q| to about 1 for q the unit ``start``
    (1 where that product is 0 or not finite). A non-finite product raises
    :class:`NonFiniteError`.

    ARPACK stops at a residual of ``tol``·max(ε^{2/3}, |λ|): below |λ| ≈ 4e-11 an absolute
    4e-21 or so, so a Hessian of size 1e-20 came out 1e-3 off at d = 100 (the engines' own
    Lanczos scales the same way). A power of two scales every product exactly (unless it
    underflows), and the eigenvalues are divided by it exactly.
    """
    from scipy.sparse.linalg import LinearOperator

    hvp = loss._hvp_at(theta)
    size = _norm(hvp(start / _norm(start)))
    # 2^±1000 at most: 2^1024 overflows (a Hessian below 1e-308 is brought to 1e-7 or so)
    factor = (float(np.ldexp(1.0, int(np.clip(-np.round(np.log2(size)), -1000, 1000))))
              if 0.0 < size < np.inf else 1.0)

    def product(v):
        out = hvp(v)
        if not np.isfinite(out).all():
            raise NonFiniteError("a Hessian-vector product at theta is NaN or inf "
                                 "(status NONFINITE): its eigenpairs are undefined")
        return out * factor

    return LinearOperator((loss.dim, loss.dim), dtype=np.float64, matvec=product), factor


def _all_products_zero(error) -> bool:
    """Whether SciPy's ``ArpackError`` is ARPACK's error -9, "Starting vector is zero": every
    product it made, from its start and from its own random restarts, was 0, as on a zero
    Hessian (a linear network at θ = 0). The dense ``eigh`` takes over there, exact
    (``loss.hessian`` refuses a d it cannot hold). SciPy keeps the code in the message only."""
    return str(error).startswith("ARPACK error -9:")


def _arpack_start(dim: int) -> np.ndarray:
    """ARPACK's start when the caller gives none: the engines' fixed vector
    (:func:`stabsim._lanczos.mix_vector`), not ARPACK's own random one, with which the same
    call gave eigenvalues differing in the last digits from call to call (``sharpness`` of a
    d = 1201 network: 2.2166996099179106 and …115 in one process)."""
    return mix_vector(np.arange(dim, dtype=np.int64))


def _lowest_eigenpair(loss: Loss, theta, *, tol: float,
                      v0: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """λ_min(∇²L(θ)) and a unit eigenvector, by ARPACK's Lanczos (smallest algebraic) on
    Hessian-vector products at relative accuracy ``tol``, started from ``v0`` (a nearby
    point's eigenvector; none: the fixed start of :func:`_arpack_start`); d ≥ 3 (ARPACK's
    k < d − 1), θ already checked."""
    from scipy.sparse.linalg import ArpackError, eigsh

    start = _arpack_start(loss.dim) if v0 is None else v0
    operator, factor = _hessian_operator(loss, theta, start)
    try:
        values, vectors = eigsh(operator, k=1, which="SA", tol=tol, v0=start)
        value, vector = values[0] / factor, vectors[:, 0]
    except ArpackError as error:
        if not _all_products_zero(error):
            raise
        values, vectors = hessian_spectrum(loss, theta)
        value, vector = values[-1], vectors[:, -1]
    if not np.isfinite(value):
        raise NonFiniteError("the lowest eigenvalue of the Hessian at theta is NaN or inf")
    return float(value), vector


def _direction(v0: np.ndarray) -> np.ndarray | None:
    """A checked start vector ``v0`` scaled to ``max |v0_i| = 1``; None for the zero vector,
    which has no direction (no start, as for :func:`stabsim._lanczos.top_eigenpair`).

    ARPACK takes a start as it is: a zero one fails ("Starting vector is zero"), and so did
    5e-324·e_1, while 1e-320·(1, …, 1) gave λ1 of a d = 10 regression model wrong in the
    fifth digit, where the scaled vectors give it to ``tol``.
    """
    scale = float(np.abs(v0).max())
    return v0 / scale if scale > 0.0 else None


def top_eigenpairs(loss: Loss, theta, k: int = 1, *, eigensolver: str = "auto", v0=None,
                   tol: float = 1e-10) -> Eigenpairs:
    """The ``k`` largest eigenpairs of ∇²L(θ).

    Parameters
    ----------
    eigensolver : {"auto", "eigh", "lanczos"}
        ``"eigh"`` forms the Hessian and calls ``numpy.linalg.eigh``; ``"lanczos"`` runs
        ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``, largest
        algebraic) on Hessian-vector products, warm-started from ``v0`` (O(d) memory);
        ``"auto"`` is dense up to d = 32, for families that prefer the dense Hessian, and
        for k ≥ d − 1 (ARPACK's Krylov space would span R^d), and Lanczos otherwise, on
        the products scaled by a power of two to about 1 (ARPACK's tolerance has an
        absolute floor of about 4e-21), its eigenvalues scaled back exactly.
    v0 : array_like, optional
        Start vector (the previous eigenvector along a trajectory), also the sign reference.
        Only its direction counts: it is scaled to ``max |v0_i| = 1`` (a subnormal one
        starts Lanczos as well as any), and the zero vector, which has none, counts as no
        ``v0``. Without it, Lanczos starts from a fixed vector: the same call gives the same
        result.
    tol : float
        Relative accuracy asked of ARPACK (ignored by ``"eigh"``).

    Raises
    ------
    NonFiniteError
        When the Hessian (or a Hessian-vector product) at θ has a NaN or inf entry.
    """
    require_loss(loss)
    theta = loss.check_point(theta)
    k = check.nonnegative_int("k", k, minimum=1)
    if k > loss.dim:
        raise ValueError(f"k must be <= the dimension {loss.dim}, got {k}")
    check.choice("eigensolver", eigensolver, {"auto", "eigh", "lanczos"})
    tol = check.positive_float("tol", tol)
    v0 = None if v0 is None else loss.check_point(v0, "v0")
    return _unchecked_top_eigenpairs(loss, theta, k, eigensolver=eigensolver, v0=v0, tol=tol)


def _unchecked_top_eigenpairs(loss: Loss, theta: np.ndarray, k: int = 1, *,
                             eigensolver: str = "auto", v0: np.ndarray | None = None,
                             tol: float = 1e-10) -> Eigenpairs:
    """:func:`top_eigenpairs` without the checks of its arguments, for the inner loops of
    stabsim's flows and projections, whose points were checked at their public entry: θ
    and v0 finite float64 vectors of length d, 1 ≤ k ≤ d, ``eigensolver`` one of the three
    and ``tol`` positive are the caller's promise."""
    reference = None if v0 is None else _direction(v0)
    if eigensolver == "auto":
        dense = loss.dim <= SMALL_DIM or loss.family.prefers_dense or k >= loss.dim - 1
        eigensolver = "eigh" if dense else "lanczos"
    if eigensolver == "lanczos" and k >= loss.dim:  # ARPACK's k < d
        raise ValueError(f"eigensolver='lanczos' needs k < d = {loss.dim}; use 'eigh'")

    if eigensolver == "eigh":
        values, vectors = hessian_spectrum(loss, theta)
        values, vectors = values[:k], vectors[:, :k]
    else:
        from scipy.sparse.linalg import ArpackError, eigsh

        start = _arpack_start(loss.dim) if reference is None else reference
        operator, factor = _hessian_operator(loss, theta, start)
        try:
            values, vectors = eigsh(operator, k=k, which="LA", v0=start, tol=tol)
            order = np.argsort(values)[::-1]
            values, vectors = values[order] / factor, vectors[:, order]
        except ArpackError as error:
            if not _all_products_zero(error):
                raise
            values, vectors = hessian_spectrum(loss, theta)
            values, vectors, eigensolver = values[:k], vectors[:, :k], "eigh"
    if not (np.isfinite(values).all() and np.isfinite(vectors).all()):
        raise NonFiniteError("the Hessian at theta has NaN or inf entries (status NONFINITE): "
                             "its eigenpairs are undefined")
    vectors = np.array(vectors)
    vectors[:, 0] = _aligned(vectors[:, 0], reference)
    residuals = np.array([  # without the overflow of squaring entries past 1e154
        _norm(loss._hvp(theta, vectors[:, i]) - values[i] * vectors[:, i]) for i in range(k)
    ])
    return Eigenpairs(np.asarray(values, dtype=float), vectors, residuals, eigensolver)


#: Hessian-vector products :func:`tracked_top_eigenpairs` allows one Lanczos call for each pair
TRACKED_MAX_PRODUCTS = 1000


def tracked_top_eigenpair(loss: Loss, theta: np.ndarray, v0: np.ndarray | None = None, *,
                          tol: float = 1e-13) -> tuple[float, np.ndarray]:
    """S(θ) and the unit top eigenvector u(θ) at a point of a trajectory (flows' inner loop),
    warm-started from ``v0`` (the previous u, also the sign reference): the first pair of
    :func:`tracked_top_eigenpairs`. No input checks: for callers that hold a checked θ.

    Raises
    ------
    NonFiniteError
        When the Hessian at θ has a NaN or inf entry.
    """
    starts = None if v0 is None else np.reshape(v0, (-1, 1))
    values, vectors = tracked_top_eigenpairs(loss, theta, 1, starts, tol=tol)
    return float(values[0]), vectors[:, 0]


def tracked_top_eigenpairs(loss: Loss, theta: np.ndarray, k: int = 1,
                           starts: np.ndarray | None = None, *,
                           tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """The top k eigenvalues of ∇²L(θ) (descending) and their unit eigenvectors (the columns
    of a d × k array) at a point of a trajectory (flows' inner loop).

    Warm-started, restarted Lanczos on Hessian-vector products, compiled
    (:func:`stabsim._lanczos.hessian_top_eigenpairs`, GD's measurement of its top
    eigenvalues, with its start mix that finds a top eigenvalue the previous vectors cannot
    see; inside :func:`pairs_measured_by`, GD's engine itself). Pair i is the top pair of
    P_i ∇²L P_i, P_i projecting out the pairs above it, stopped at a residual r_i ≤
    ``tol``·s on that operator, s ≥ |λ₁| the size of ∇²L as the products have shown it; on
    ∇²L itself pair i's residual is at most r_0 + … + r_i (the part of ∇²L u_i along a pair
    above it is that pair's residual's part along u_i). Pair i starts from column i of
    ``starts`` (the previous pairs, each also the sign reference of its pair; a pair without
    a column, or with a zero one, starts from its mix vector alone). The top pair takes
    10–11 products a call along the central flow of the 1-6-6-6-1 network (the start mix has
    to be cleared whatever the warm start), where ARPACK's ``eigsh`` fills its 20-vector
    basis at every call and is called from Python product by product.

    Families that prefer the dense Hessian run the same Lanczos on the dense parts of their
    ``hessian_parts`` for k = 1 (:func:`stabsim._lanczos.dense_hessian_top_eigenpair`, the
    GD engine's measurement of them; a full ``eigh`` took two thirds of a θ† step of the
    d = 100 regression model), and take :func:`top_eigenpairs` (``eigh``) for k > 1.
    d ≤ ``SMALL_DIM`` takes :func:`top_eigenpairs` (``eigh``, exact to round-off: a symmetry
    of a small model that keeps u in a subspace keeps it there exactly). A Lanczos run that
    uses a fifth of ``TRACKED_MAX_PRODUCTS`` products on a pair without meeting ``tol`` is
    continued, from the vectors it reached, with thick restarts (compiled on that first
    need: :func:`stabsim._lanczos.lanczos_work`) and the whole budget, and one that stalls
    again gives way to :func:`top_eigenpairs` (ARPACK, or ``eigh`` for the dense families).
    No input checks: for callers that hold a checked θ, 1 ≤ k ≤ d, and ``starts`` of shape
    (d, j), j ≤ k.

    Raises
    ------
    NonFiniteError
        When the Hessian at θ has a NaN or inf entry.
    """
    d = loss.dim
    if d <= SMALL_DIM or (k > 1 and loss.family.prefers_dense):
        v0 = None if starts is None else starts[:, 0]
        pairs = _unchecked_top_eigenpairs(loss, theta, k, v0=v0, tol=tol)
        return pairs.values, pairs.vectors
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if loss.family.prefers_dense:
        check_dense_memory(d)
        measure = _dense_lanczos_pairs
    else:
        measure = _PAIRS_MEASURED_BY.get() or _lanczos_pairs

    def arpack(v0):  # or eigh, for the dense families
        pairs = _unchecked_top_eigenpairs(loss, theta, k, v0=v0, tol=tol)
        return pairs.values, pairs.vectors

    return _tracked_pairs(loss, theta, k, starts, tol, measure, arpack)


def tracked_scaled_top_eigenpairs(loss: Loss, theta: np.ndarray, scale: np.ndarray, k: int,
                                  starts: np.ndarray | None = None, *,
                                  tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tracked_top_eigenpairs` of D ∇²L(θ) D, D = diag(``scale``), on Hessian-vector
    products at any d (:func:`stabsim._lanczos.scaled_hessian_top_eigenpairs`): with
    ``scale`` = P^{-1/2} the generalised eigenpairs of a diagonal preconditioner P (the
    RMSProp flow's). Where thick restarts stall too, the dense D ∇²L D and ``eigh`` (a
    ``ValueError`` where it would not fit in memory). No input checks: a checked θ, a
    finite positive ``scale`` of length d, 1 ≤ k ≤ d.

    Raises
    ------
    NonFiniteError
        When a product at θ is NaN or inf.
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)

    def measure(loss, theta, vectors, tops, max_products, tol, thick):
        kernel = engine_for(scaled_hessian_top_eigenpairs, loss.family)
        residual, _, converged = kernel(loss.params, theta, scale, vectors, max_products, tol,
                                        tops, thick)
        return residual, converged

    def dense(v0):
        check_dense_memory(loss.dim, "the dense preconditioned Hessian (Lanczos stalled)")
        with np.errstate(over="ignore", invalid="ignore"):
            values, vectors = np.linalg.eigh(scale[:, None] * loss._hessian(theta)
                                             * scale[None, :])
        return values[::-1][:k], vectors[:, ::-1][:, :k]

    return _tracked_pairs(loss, theta, k, starts, tol, measure, dense)


def _tracked_pairs(loss: Loss, theta: np.ndarray, k: int, starts, tol: float, measure,
                   fallback) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of :func:`tracked_top_eigenpairs` by ``measure`` (the arguments and results
    of :func:`_lanczos_pairs`), thin restarts then thick ones, and ``fallback(v0)`` ->
    (values, vectors) where both stall."""
    d = loss.dim
    # pair i in vectors[i d:(i + 1) d], the warm start overwritten by the result
    vectors = np.zeros(k * d)
    if starts is not None:
        vectors[:starts.size] = np.ravel(starts.T)
    tops = np.empty(k)
    # thick restarts compiled only after thin ones stall, which get a fifth of the budget:
    # a warm-started call takes about 10 products (above), and where thin restarts stall (a
    # nearly repeated eigenvalue) every call would spend its whole budget before the thick
    # ones
    for thick, budget in ((None, TRACKED_MAX_PRODUCTS // 5), (True, TRACKED_MAX_PRODUCTS)):
        residual, converged = measure(loss, theta, vectors, tops, budget, tol, thick)
        if converged or np.isnan(residual):  # NaN: a non-finite Hessian
            break
    if np.isnan(residual):
        raise NonFiniteError("the Hessian at theta has NaN or inf entries (status NONFINITE): "
                             "its eigenpairs are undefined")
    if not converged:
        return fallback(vectors[:d])
    return tops, vectors.reshape(k, d).T


def _lanczos_pairs(loss: Loss, theta: np.ndarray, vectors: np.ndarray, tops: np.ndarray,
                   max_products: int, tol: float, thick) -> tuple[float, bool]:
    """The measurement of :func:`tracked_top_eigenpairs` on Hessian-vector products, its
    pairs warm-started in place from ``vectors`` and their values into ``tops``
    (:func:`stabsim._lanczos.hessian_top_eigenpairs`); returns the residual (NaN: a
    non-finite Hessian) and whether every pair met ``tol``."""
    kernel = engine_for(hessian_top_eigenpairs, loss.family)
    residual, _, converged = kernel(loss.params, theta, vectors, max_products, tol, tops,
                                    thick)
    return residual, converged


def _dense_lanczos_pairs(loss: Loss, theta: np.ndarray, vectors: np.ndarray, tops: np.ndarray,
                         max_products: int, tol: float, thick) -> tuple[float, bool]:
    """:func:`_lanczos_pairs` on the dense parts of the family's ``hessian_parts``, one pair
    (:func:`stabsim._lanczos.dense_hessian_top_eigenpair`)."""
    d = loss.dim
    kernel = engine_for(dense_hessian_top_eigenpair, loss.family)
    residual, _, converged = kernel(loss.params, theta, vectors, max_products, tol, tops,
                                    thick, np.empty((d, d)), np.empty((loss.factor_rows, d)))
    return residual, converged


#: a measurement that stands in for :func:`_lanczos_pairs` (same arguments, same results),
#: set by :func:`pairs_measured_by`
_PAIRS_MEASURED_BY = contextvars.ContextVar("pairs_measured_by", default=None)


@contextlib.contextmanager
def pairs_measured_by(measure):
    """Within the block, :func:`tracked_top_eigenpairs` measures pairs on Hessian-vector
    products with ``measure`` rather than with its own compiled entry point.

    ``measure(loss, theta, vectors, tops, max_products, tol, thick)`` must return what
    :func:`_lanczos_pairs` returns, and leave ``vectors`` and ``tops`` as it does: the same
    compiled Lanczos reached through another entry point
    (:func:`stabsim.maps.gd.measured_top_pairs`, GD's engine run for no step). A job that
    has compiled that engine already (:func:`stabsim.compare`) spares the entry point's
    compilation: a cold first ``compare`` on the 1-6-6-6-1 network compiled for 0.6–0.7 s
    less.
    """
    token = _PAIRS_MEASURED_BY.set(measure)
    try:
        yield
    finally:
        _PAIRS_MEASURED_BY.reset(token)


def sharpness(loss: Loss, theta, **kwargs) -> float:
    """S(θ) = λ_max(∇²L(θ)); keyword arguments go to :func:`top_eigenpairs`."""
    return float(top_eigenpairs(loss, theta, 1, **kwargs).values[0])


def sharpness_gradient(loss: Loss, theta, u=None) -> np.ndarray:
    """∇S(θ) = ∇³L(θ)[u, u] with u the unit top eigenvector (computed when not given)."""
    require_loss(loss)
    theta = loss.check_point(theta)
    if u is None:
        u = top_eigenpairs(loss, theta).vectors[:, 0]
    else:
        u = loss.check_point(u, "u")
    return loss.d3(theta, u, u)


@dataclasses.dataclass(frozen=True)
class EoSConstants:
    """Damian et al.'s constants at a point θ (docs/theory.md §1).

    Attributes
    ----------
    sharpness : float
        S(θ).
    u : ndarray
        Unit top eigenvector.
    grad_sharpness : ndarray
        ∇S(θ) = ∇³L[u, u].
    direction : ndarray
        The vector used in α, β and y: ∇S, or ∇S⊥ = ∇S − (u·∇S)u when ``projected``.
    alpha : float
        −∇L(θ)·direction, the progressive-sharpening rate.
    beta : float
        |direction|².
    projected : bool
        Which convention was used.
    """

    sharpness: float
    u: np.ndarray
    grad_sharpness: np.ndarray
    direction: np.ndarray
    alpha: float
    beta: float
    projected: bool

    @property
    def delta2(self) -> float:
        """δ² = 2α/β (negative when the sharpness is decreasing: α < 0)."""
        return 2.0 * self.alpha / self.beta

    @property
    def delta(self) -> float:
        """δ = sqrt(2α/β); raises when α ≤ 0, where the theory assumes progressive sharpening."""
        if not self.alpha > 0.0:
            raise ValueError(f"alpha = {self.alpha:.3g} <= 0: there is no progressive "
                             "sharpening at this point, so delta is undefined")
        return float(np.sqrt(self.delta2))


def perpendicular_part(u: np.ndarray, grad_s: np.ndarray) -> tuple[np.ndarray, bool]:
    """∇S⊥ = ∇S − (u·∇S) u for the unit vector u, and whether it is zero to round-off.

    Computed from u and ∇S it is within (d + 2) ε |∇S| of its exact value for that u (the
    dot product's rounding bound γ_d, and the subtraction's): no smaller one is told from 0.
    """
    perp = grad_s - np.dot(u, grad_s) * u
    floor = (grad_s.shape[0] + 2) * np.finfo(float).eps * np.linalg.norm(grad_s)
    return perp, bool(np.linalg.norm(perp) <= floor)


def _require_simple_top(pairs: Eigenpairs) -> None:
    """Raise ``UndefinedError`` (a ValueError) unless the top eigenvalue is told apart from
    the next: each computed λ_i is within its residual r_i of an eigenvalue (Bauer–Fike, H
    symmetric), and the residuals are themselves computed in floating point, to about
    (d + 1)·eps·|λ| (the rounding of a length-d product, with |H v| about |λ|), so
    λ1 − λ2 > r1 + r2 + 2 (d + 1) eps max|λ_i| puts two distinct eigenvalues there.
    Otherwise the top may be repeated (a rotated diag(1, 2, 2): eigh's two top values 4 ulps
    apart, residuals 4e-16 and 2e-16), and S is then not differentiable: ∇³L[u, u] depends
    on which unit u of the top eigenspace is taken."""
    if pairs.values.shape[0] < 2:
        return
    gap, (r1, r2) = pairs.gap, pairs.residuals
    d = pairs.vectors.shape[0]
    rounding = 2 * (d + 1) * np.finfo(float).eps * np.max(np.abs(pairs.values))
    if not gap > r1 + r2 + rounding:
        raise UndefinedError(
            f"the top Hessian eigenvalue at theta is not told apart from the next "
            f"(λ1 − λ2 = {gap:.3g}, within their residuals {r1:.2g} + {r2:.2g} and their "
            f"rounding {rounding:.2g}): where it is repeated, S = λ_max is not "
            "differentiable and grad S = ∇³L[u, u] depends on which top eigenvector u is "
            "taken, so the EoS constants are undefined")


def eos_constants(loss: Loss, theta, *, projected: bool = True, v0=None) -> EoSConstants:
    """α, β, δ of Damian et al. at θ (usually the reference point θ*).

    With ``projected=True`` (the default)::

        α = −∇L(θ)·∇S⊥,   β = |∇S⊥|²,   δ² = 2α/β,   ∇S⊥ = ∇S − (u·∇S) u,

    ∇S = ∇³L[u, u]; with ``projected=False`` ∇S⊥ is replaced by ∇S. The projected form is the
    consistent one (docs/theory.md §1): GD's 2-cycle sits offset along u by x̄ ≈ −(η/4)(u·∇S)x²,
    which cancels the u-component of ∇S in the sharpness balance, so GD's cycle mean of x²
    is δ⊥² = 2α/|∇S⊥|² (and the central flow's σ² equals δ⊥² along θ†). The two conventions
    agree where u·∇S = 0.

    Parameters
    ----------
    loss : Loss
    theta : array_like, shape (d,)
    projected : bool
        Use ∇S⊥ (default) or the unprojected ∇S.
    v0 : array_like, optional
        Start vector and sign reference of u (see :func:`top_eigenpairs`).

    Raises
    ------
    UndefinedError (a ValueError)
        Where the top eigenvalue is not told apart from the second (λ1 − λ2 at most the sum
        of their residuals and their rounding): ∇S needs a simple top eigenvalue. Where it
        is told apart, u is within an angle of about r1/(λ1 − λ2) of the top eigenvector
        (Davis–Kahan), and α and β carry that error.
    FlatSharpnessError
        Where the direction the constants use vanishes (β = 0).
    """
    require_loss(loss)
    theta = loss.check_point(theta)
    projected = check.boolean("projected", projected)
    pairs = top_eigenpairs(loss, theta, min(2, loss.dim), v0=v0)
    _require_simple_top(pairs)
    u = pairs.vectors[:, 0]
    grad_s = loss.d3(theta, u, u)
    grad = loss.grad(theta)
    if not (np.isfinite(grad_s).all() and np.isfinite(grad).all()):
        raise NonFiniteError("∇L or ∇S = ∇³L[u, u] at theta has NaN or inf entries (status "
                             "NONFINITE): the EoS constants are undefined")
    perp, perp_is_zero = perpendicular_part(u, grad_s)
    direction = perp if projected else grad_s
    beta = float(np.dot(direction, direction))
    if beta == 0.0 or (projected and perp_is_zero):
        which = "grad S perp (the part of grad S orthogonal to u)" if projected else "grad S"
        raise FlatSharpnessError(
            f"{which} vanishes at theta (beta = 0, to round-off): the sharpness does not "
            "change along any direction the constants use, so the EoS constants are "
            "undefined here" + ("; projected=False gives the unprojected ones" if projected
                                else ""))
    alpha = -float(np.dot(grad, direction))
    return EoSConstants(float(pairs.values[0]), u, grad_s, direction, alpha, beta, projected)
