"""Hypothesis strategies for stabsim's losses, step sizes and starting points.

Random matrices are drawn from a NumPy generator seeded by Hypothesis (so an example is
reproducible and shrinks towards seed 0); scalar parameters such as eigenvalues, scales and
step sizes are drawn by Hypothesis directly (so they shrink towards simple values).

Every strategy checks its arguments when it is built, before anything is drawn, and raises
``TypeError`` or ``ValueError`` naming the argument it refuses (a number out of range, or
not a number, or a size that is not an integer, is a ``ValueError``, as in stabsim's own
functions; a loss that is not one, or a flag that is not a bool, a ``TypeError``). A
parameter whose docstring allows a strategy (a dimension, a width, a number of samples) is
used as it is; the others (eigenvalue bounds, a gap, a scale, bounds of step sizes) take
plain values.
"""

from __future__ import annotations

import numbers

import numpy as np
from hypothesis import strategies as st

from .. import _validate as check
from ..losses import (
    Loss,
    ManifoldFamily,
    Minimalist,
    Network,
    Quadratic,
    QuadraticRegression,
    ReducedMapRealisation,
    ScalarNetwork,
    SelfRegulatingPotential,
    UVModel,
)
from ..losses._base import require_loss
from ..losses.network import DATASETS, PARAMETRISATIONS, _widths

__all__ = [
    "losses",
    "manifold_losses",
    "minimalist_losses",
    "networks",
    "quadratic_losses",
    "realisations",
    "regression_models",
    "scalar_networks",
    "self_regulating_potentials",
    "starts",
    "step_sizes",
    "unit_vectors",
    "uv_models",
]

_SEEDS = st.integers(0, 2**32 - 1)
#: the hidden-layer activations :func:`networks` draws (``"linear"`` is ``"identity"``)
_ACTIVATIONS = ("tanh", "softplus", "identity")


def _dims(name: str, dim, minimum: int = 1, maximum: int = 6):
    """``dim`` as a strategy: an integer (Python's or NumPy's) ≥ ``minimum`` is a fixed
    value, a strategy is used as it is, None draws from ``minimum`` to ``maximum``."""
    if dim is None:
        return st.integers(minimum, maximum)
    if isinstance(dim, st.SearchStrategy):
        return dim
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise ValueError(f"{name} must be an int, a strategy or None, got "
                         f"{type(dim).__name__} {dim!r}")
    return st.just(check.nonnegative_int(name, dim, minimum))


def _positive(name: str, value, default):
    """``value`` as a strategy of floats: a finite number > 0 is a fixed value, a strategy
    is used as it is, None is ``default``."""
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    return st.just(check.positive_float(name, value))


def _log_uniform(low: float, high: float):
    """Floats in [low, high] spread evenly in log scale, the bounds included (exp(log(x))
    is not x for every x: exp(log(1e-3)) = 0.0010000000000000002)."""
    log_low, log_high = np.log(low), np.log(high)

    def value(e):
        if e == log_low:
            return low
        if e == log_high:
            return high
        return float(np.clip(np.exp(e), low, high))

    return st.floats(log_low, log_high).map(value)


def quadratic_losses(dim=None, min_eigenvalue=-1.0, max_eigenvalue=10.0):
    """Draw a :class:`~stabsim.losses.Quadratic` ½ θᵀAθ with a known spectrum.

    Parameters
    ----------
    dim : int, strategy or None
        Dimension, ≥ 1 (default: 1 to 6).
    min_eigenvalue, max_eigenvalue : float
        Range of the eigenvalues of A (finite, ``min_eigenvalue <= max_eigenvalue``), drawn
        by Hypothesis; the eigenvectors are a random orthogonal matrix (QR of a seeded
        Gaussian matrix). A rotated diagonal is A's spectrum only to round-off, about
        d² ε max|λ| (the product's), so the eigenvalues are drawn that far inside the range,
        and every eigenvalue of A lies in it; a range narrower than twice that margin gets a
        diagonal A (no rotation), whose eigenvalues are the drawn ones exactly.

    Raises
    ------
    ValueError
        If an argument is not as described.
    """
    dims = _dims("dim", dim)
    low = check.finite_float("min_eigenvalue", min_eigenvalue)
    high = check.finite_float("max_eigenvalue", max_eigenvalue)
    if low > high:
        raise ValueError(f"need min_eigenvalue <= max_eigenvalue, got {low!r} > {high!r}")
    return _quadratic_losses(dims, low, high)


@st.composite
def _quadratic_losses(draw, dims, low, high):
    d = draw(dims)
    # |fl(V D Vᵀ) − V D Vᵀ| ≤ γ_d |V||D||V|ᵀ entrywise, so a 2-norm of at most about
    # d ε · d max|λ| (|V| ≤ 1): Weyl's inequality moves no eigenvalue further (×2 margin)
    margin = 2.0 * d * d * np.finfo(float).eps * max(abs(low), abs(high))
    rotate = high - low > 2.0 * margin
    inner = (low + margin, high - margin) if rotate else (low, high)
    eig = np.array(draw(st.lists(st.floats(*inner), min_size=d, max_size=d)))
    if not rotate:
        return Quadratic(np.diag(eig))
    rng = np.random.default_rng(draw(_SEEDS))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = (V * eig) @ V.T
    return Quadratic(0.5 * (A + A.T))


def self_regulating_potentials():
    """The (parameter-free) :class:`~stabsim.losses.SelfRegulatingPotential`."""
    return st.just(SelfRegulatingPotential())


def minimalist_losses():
    """The (parameter-free) :class:`~stabsim.losses.Minimalist` loss."""
    return st.just(Minimalist())


def realisations(eta=None):
    """Draw a :class:`~stabsim.losses.ReducedMapRealisation`.

    Parameters
    ----------
    eta : float, strategy or None
        Step size the realisation is built for, finite and > 0 (default:
        :func:`step_sizes`). α is drawn in [1e-3, 1] and b in ±[0.1, 10] (log-uniform
        magnitudes).

    Raises
    ------
    ValueError
        If ``eta`` is a number that is not finite and > 0.
    """
    return _realisations(_positive("eta", eta, step_sizes()))


@st.composite
def _realisations(draw, etas):
    eta = draw(etas)
    alpha = draw(_log_uniform(1e-3, 1.0))
    b = draw(_log_uniform(0.1, 10.0)) * draw(st.sampled_from([1.0, -1.0]))
    return ReducedMapRealisation(eta, alpha, b)


def scalar_networks(depth=None):
    """Draw a :class:`~stabsim.losses.ScalarNetwork` of depth ``depth``.

    Parameters
    ----------
    depth : int, strategy or None
        Number of layers, ≥ 2 (default: 2 to 6).

    Raises
    ------
    ValueError
        If ``depth`` is not as described.
    """
    return _dims("depth", depth, minimum=2).map(ScalarNetwork)


def regression_models(d=None, n=None, j_scale=None, q_scale=None, z_scale=None):
    """Draw a :class:`~stabsim.losses.QuadraticRegression` from ``QuadraticRegression.random``.

    Parameters
    ----------
    d, n : int, strategy or None
        Numbers of parameters and residuals, ≥ 1 (default: 1 to 6 each).
    j_scale, q_scale, z_scale : float, strategy or None
        Scales of J, Q and z0, finite and > 0 (default: log-uniform in [0.1, 2]); the
        entries come from a generator seeded by Hypothesis.

    Raises
    ------
    ValueError
        If an argument is not as described.
    """
    dims = (_dims("d", d), _dims("n", n))
    scales = tuple(_positive(name, value, _log_uniform(0.1, 2.0)) for name, value in
                   (("j_scale", j_scale), ("q_scale", q_scale), ("z_scale", z_scale)))
    return _regression_models(dims, scales)


@st.composite
def _regression_models(draw, dims, scales):
    d, n = (draw(s) for s in dims)
    j_scale, q_scale, z_scale = (draw(s) for s in scales)
    return QuadraticRegression.random(d, n, seed=draw(_SEEDS), j_scale=j_scale,
                                      q_scale=q_scale, z_scale=z_scale)


def manifold_losses(curved=None, m=None, k=None, gap=2.0):
    """Draw a :class:`~stabsim.losses.ManifoldFamily` whose top eigenvalue at x = 0 is
    ``gap`` times the next one or more.

    The c_j for j > 1 in [0.5, 2], s_ji in [0, 0.5], centres in [−1, 1] and, when curved, K_j
    symmetric with entries in [−0.5, 0.5]; then c_1 = ``gap`` × max_{j>1} h_j(0) (``gap``
    when k = 1). At x = 0 the nonzero eigenvalues of ∇²L are the h_j(0) (∇g(0) = 0), so
    λ1 = h_1(0) ≥ c_1 ≥ ``gap`` λ2 there. Away from 0 the h_j change, and λ1 may meet λ2:
    check with ``loss.normal_eigenvalues(x)``.

    Parameters
    ----------
    curved : bool or None
        Curved Γ (random K), flat Γ (K = 0), or either (None).
    m, k : int, strategy or None
        Dimensions of x and z, ≥ 1 (default: 1 to 3 each).
    gap : float
        The least ratio λ1/λ2 at x = 0, finite and > 1.

    Raises
    ------
    TypeError
        If ``curved`` is not a bool or None.
    ValueError
        If another argument is not as described.
    """
    curves = st.booleans() if curved is None else st.just(check.boolean("curved", curved))
    gap = check.finite_float("gap", gap)
    if not gap > 1.0:
        raise ValueError(f"gap must be > 1 (c_1 the largest c_j), got {gap!r}")
    return _manifold_losses(curves, _dims("m", m, maximum=3), _dims("k", k, maximum=3), gap)


@st.composite
def _manifold_losses(draw, curves, ms, ks, gap):
    m, k = draw(ms), draw(ks)
    curved = draw(curves)
    rng = np.random.default_rng(draw(_SEEDS))
    rest = draw(st.lists(st.floats(0.5, 2.0), min_size=k - 1, max_size=k - 1))
    s = rng.uniform(0.0, 0.5, size=(k, m))
    centres = rng.uniform(-1.0, 1.0, size=(k, m))
    rest_at_origin = np.array(rest) + 0.5 * np.sum(s[1:] * centres[1:] ** 2, axis=1)  # h_j(0)
    c = np.array([gap * max(rest_at_origin, default=1.0), *rest])
    K = None
    if curved:
        B = rng.uniform(-0.5, 0.5, size=(k, m, m))
        K = 0.5 * (B + B.transpose(0, 2, 1))
    return ManifoldFamily(c, s, centres, K)


def networks(hidden=None, n_samples=None):
    """Draw a small :class:`~stabsim.losses.Network`.

    The activation (tanh, softplus or identity), the data set (any of
    ``stabsim.losses.network.DATASETS``; a teacher's with 1 or 2 inputs and outputs), the
    parametrisation, the biases and the seed are drawn by Hypothesis.

    Parameters
    ----------
    hidden : int, sequence of int, strategy or None
        Widths of the hidden layers, each ≥ 1, as :class:`~stabsim.losses.Network` takes
        them (default: 0 to 2 layers of 1 to 3 units).
    n_samples : int, strategy or None
        Number of examples, ≥ 1 (default: 1 to 6).

    Raises
    ------
    ValueError
        If an argument is not as described.
    """
    if hidden is None:
        hidden = st.lists(st.integers(1, 3), max_size=2)
    elif not isinstance(hidden, st.SearchStrategy):
        hidden = st.just(_widths(hidden))
    return _networks(hidden, _dims("n_samples", n_samples))


@st.composite
def _networks(draw, widths, samples):
    data = draw(st.sampled_from(DATASETS))
    teacher = data == "teacher"
    dims = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if teacher else (1, 1)
    return Network(
        _widths(draw(widths)), activation=draw(st.sampled_from(_ACTIVATIONS)), data=data,
        n_samples=draw(samples), input_dim=dims[0], output_dim=dims[1],
        bias=draw(st.booleans()), parametrisation=draw(st.sampled_from(PARAMETRISATIONS)),
        seed=draw(_SEEDS) if teacher else None)  # the draw of the teacher data set alone


def uv_models(width=None):
    """Draw a :class:`~stabsim.losses.UVModel` of width ``width``.

    The example (x, y) is drawn by Hypothesis: x in ±[0.1, 2] (log-uniform magnitude), y in
    [−1, 1].

    Parameters
    ----------
    width : int, strategy or None
        m, ≥ 1 (default: 1 to 6).

    Raises
    ------
    ValueError
        If ``width`` is not as described.
    """
    return _uv_models(_dims("width", width))


@st.composite
def _uv_models(draw, widths):
    x = draw(_log_uniform(0.1, 2.0)) * draw(st.sampled_from([1.0, -1.0]))
    return UVModel(draw(widths), x=x, y=draw(st.floats(-1.0, 1.0)))


def losses(**kwargs):
    """Draw a loss of any built-in family (every one of ``stabsim.losses.FAMILIES``).

    Each family is drawn by its strategy here at its default sizes: :func:`quadratic_losses`
    (which takes the keyword arguments), :func:`self_regulating_potentials`,
    :func:`realisations`, :func:`scalar_networks`, :func:`minimalist_losses`,
    :func:`regression_models`, :func:`manifold_losses`, :func:`networks` and
    :func:`uv_models`. Hypothesis shrinks a failing example towards a draw of fewer
    choices, not towards the first of these: a property that fails for every loss is
    reported on ``SelfRegulatingPotential()``, whose strategy draws nothing; one that fails
    on some families only, on a loss of those at small sizes.
    """
    return st.one_of(
        quadratic_losses(**kwargs),
        self_regulating_potentials(),
        realisations(),
        scalar_networks(),
        minimalist_losses(),
        regression_models(),
        manifold_losses(),
        networks(),
        uv_models(),
    )


def step_sizes(min_value=1e-3, max_value=1.0):
    """Draw a step size η, log-uniform in [``min_value``, ``max_value``].

    Parameters
    ----------
    min_value, max_value : float
        The bounds, finite with ``0 < min_value <= max_value``.

    Raises
    ------
    ValueError
        If the bounds are not as described.
    """
    low = check.positive_float("min_value", min_value)
    high = check.positive_float("max_value", max_value)
    if low > high:
        raise ValueError(f"need 0 < min_value <= max_value, got {low!r} > {high!r}")
    return _log_uniform(low, high)


def starts(loss: Loss, scale=1.0, centre=None):
    """Draw a starting point θ₀ ∈ R^d for ``loss``: ``centre`` + a box of half-width ``scale``.

    Parameters
    ----------
    loss : Loss
        Gives the dimension d.
    scale : float
        Half-width of the box, finite and > 0.
    centre : array_like, shape (d,), optional
        Centre of the box, finite (zeros by default).

    Returns
    -------
    strategy of numpy.ndarray
        C-contiguous float64 vectors of shape (d,), finite.

    Raises
    ------
    TypeError, ValueError
        If an argument is not as described, or the box reaches past the largest float.
    """
    require_loss(loss)
    scale = check.positive_float("scale", scale)
    centre = (np.zeros(loss.dim) if centre is None
              else check.finite_array("centre", centre, shape=(loss.dim,)))
    with np.errstate(over="ignore"):  # an overflow is what this looks for
        reach = np.abs(centre) + scale
    if not np.all(np.isfinite(reach)):
        raise ValueError(f"the box centre ± scale (scale = {scale!r}) reaches past the "
                         "largest float")
    coords = st.lists(st.floats(-scale, scale), min_size=loss.dim, max_size=loss.dim)
    return coords.map(lambda xs: np.ascontiguousarray(centre + np.array(xs, dtype=float)))


def unit_vectors(dim: int):
    """Draw a unit vector in R^dim (a normalised vector of entries in [−1, 1]).

    Parameters
    ----------
    dim : int
        The dimension, ≥ 1.

    Raises
    ------
    ValueError
        If ``dim`` is not an integer ≥ 1.
    """
    dim = check.nonnegative_int("dim", dim, minimum=1)
    coords = st.lists(st.floats(-1.0, 1.0), min_size=dim, max_size=dim)
    nonzero = coords.filter(lambda xs: np.linalg.norm(xs) > 1e-3)
    return nonzero.map(lambda xs: np.ascontiguousarray(np.array(xs) / np.linalg.norm(xs)))
