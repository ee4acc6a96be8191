"""Hypothesis strategies for stabsim's losses, step sizes and starting points.

Random matrices are drawn from a NumPy generator seeded by Hypothesis (so an example is
reproducible and shrinks towards seed 0); scalar parameters such as eigenvalues, scales and
step sizes are drawn by Hypothesis directly (so they shrink towards simple values).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..losses import (
    Loss,
    ManifoldFamily,
    Minimalist,
    Quadratic,
    QuadraticRegression,
    ReducedMapRealisation,
    ScalarNetwork,
    SelfRegulatingPotential,
)

__all__ = [
    "losses",
    "manifold_losses",
    "minimalist_losses",
    "quadratic_losses",
    "realisations",
    "regression_models",
    "scalar_networks",
    "self_regulating_potentials",
    "starts",
    "step_sizes",
    "unit_vectors",
]

_SEEDS = st.integers(0, 2**32 - 1)


def _dims(dim, minimum=1):
    """``dim`` as a strategy: an int is a fixed value, None a small range."""
    if dim is None:
        return st.integers(minimum, 6)
    if isinstance(dim, int):
        return st.just(dim)
    return dim


def _log_uniform(low: float, high: float):
    """Floats in [low, high] spread evenly in log scale."""
    return st.floats(np.log(low), np.log(high)).map(lambda e: float(np.clip(np.exp(e), low, high)))


@st.composite
def quadratic_losses(draw, dim=None, min_eigenvalue=-1.0, max_eigenvalue=10.0):
    """Draw a :class:`~stabsim.losses.Quadratic` ½ θᵀAθ with a known spectrum.

    Parameters
    ----------
    dim : int, strategy or None
        Dimension (default: 1 to 6).
    min_eigenvalue, max_eigenvalue : float
        Range of the eigenvalues of A, drawn by Hypothesis; the eigenvectors are a random
        orthogonal matrix (QR of a seeded Gaussian matrix).
    """
    d = draw(_dims(dim))
    eig = np.array(
        draw(st.lists(st.floats(min_eigenvalue, max_eigenvalue), min_size=d, max_size=d))
    )
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


@st.composite
def realisations(draw, eta=None):
    """Draw a :class:`~stabsim.losses.ReducedMapRealisation`.

    Parameters
    ----------
    eta : float, strategy or None
        Step size the realisation is built for (default: :func:`step_sizes`).
        α is drawn in [1e-3, 1] and b in ±[0.1, 10] (log-uniform magnitudes).
    """
    eta = draw(step_sizes() if eta is None else (st.just(eta) if np.isscalar(eta) else eta))
    alpha = draw(_log_uniform(1e-3, 1.0))
    b = draw(_log_uniform(0.1, 10.0)) * draw(st.sampled_from([1.0, -1.0]))
    return ReducedMapRealisation(eta, alpha, b)


def scalar_networks(depth=None):
    """Draw a :class:`~stabsim.losses.ScalarNetwork` of depth ``depth`` (default: 2 to 6)."""
    return _dims(depth, minimum=2).map(ScalarNetwork)


@st.composite
def regression_models(draw, d=None, n=None, j_scale=None, q_scale=None, z_scale=None):
    """Draw a :class:`~stabsim.losses.QuadraticRegression` from ``QuadraticRegression.random``.

    Parameters
    ----------
    d, n : int, strategy or None
        Numbers of parameters and residuals (default: 1 to 6 each).
    j_scale, q_scale, z_scale : float, strategy or None
        Scales of J, Q and z0 (default: log-uniform in [0.1, 2]); the entries come from a
        generator seeded by Hypothesis.
    """
    d = draw(_dims(d))
    n = draw(_dims(n))
    scales = [
        draw(_log_uniform(0.1, 2.0) if s is None else (st.just(s) if np.isscalar(s) else s))
        for s in (j_scale, q_scale, z_scale)
    ]
    return QuadraticRegression.random(
        d, n, seed=draw(_SEEDS), j_scale=scales[0], q_scale=scales[1], z_scale=scales[2]
    )


@st.composite
def manifold_losses(draw, curved=None, m=None, k=None, gap=2.0):
    """Draw a :class:`~stabsim.losses.ManifoldFamily` with a simple top eigenvalue near 0.

    c_1 = ``gap`` × (the largest other c_j), the other c_j in [0.5, 2] (so c_1 − c_j ≥
    (gap − 1)/2); s_ji in [0, 0.5], centres in [−1, 1] and, when curved, K_j symmetric with
    entries in [−0.5, 0.5]. λ1 is then simple near x = 0, but not everywhere: check with
    ``loss.normal_eigenvalues(x)`` far from 0.

    Parameters
    ----------
    curved : bool or None
        Curved Γ (random K), flat Γ (K = 0), or either (None).
    m, k : int, strategy or None
        Dimensions of x and z (default: 1 to 3 each).
    gap : float
        Ratio c_1 / max_{j>1} c_j (> 1).
    """
    m = draw(_dims(m) if m is not None else st.integers(1, 3))
    k = draw(_dims(k) if k is not None else st.integers(1, 3))
    curved = draw(st.booleans()) if curved is None else curved
    rng = np.random.default_rng(draw(_SEEDS))
    rest = draw(st.lists(st.floats(0.5, 2.0), min_size=k - 1, max_size=k - 1))
    c = np.array([gap * max(rest, default=1.0), *rest])
    s = rng.uniform(0.0, 0.5, size=(k, m))
    centres = rng.uniform(-1.0, 1.0, size=(k, m))
    K = None
    if curved:
        B = rng.uniform(-0.5, 0.5, size=(k, m, m))
        K = 0.5 * (B + B.transpose(0, 2, 1))
    return ManifoldFamily(c, s, centres, K)


def losses(**kwargs):
    """Draw a loss of any built-in family (keyword arguments go to :func:`quadratic_losses`)."""
    return st.one_of(
        quadratic_losses(**kwargs),
        self_regulating_potentials(),
        realisations(),
        scalar_networks(),
        minimalist_losses(),
        regression_models(),
        manifold_losses(),
    )


def step_sizes(min_value=1e-3, max_value=1.0):
    """Draw a step size η, log-uniform in [``min_value``, ``max_value``]."""
    if not 0.0 < min_value <= max_value:
        raise ValueError("need 0 < min_value <= max_value")
    return _log_uniform(min_value, max_value)


def starts(loss: Loss, scale=1.0, centre=None):
    """Draw a starting point θ₀ ∈ R^d for ``loss``: ``centre`` + a box of half-width ``scale``.

    Parameters
    ----------
    loss : Loss
        Gives the dimension d.
    scale : float
        Half-width of the box (> 0).
    centre : array_like, optional
        Centre of the box (zeros by default).

    Returns
    -------
    strategy of numpy.ndarray
        C-contiguous float64 vectors of shape (d,).
    """
    if not scale > 0.0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    centre = np.zeros(loss.dim) if centre is None else np.asarray(centre, dtype=float)
    coords = st.lists(st.floats(-scale, scale), min_size=loss.dim, max_size=loss.dim)
    return coords.map(lambda xs: np.ascontiguousarray(centre + np.array(xs, dtype=float)))


def unit_vectors(dim: int):
    """Draw a unit vector in R^dim (a normalised vector of entries in [−1, 1])."""
    coords = st.lists(st.floats(-1.0, 1.0), min_size=dim, max_size=dim)
    nonzero = coords.filter(lambda xs: np.linalg.norm(xs) > 1e-3)
    return nonzero.map(lambda xs: np.ascontiguousarray(np.array(xs) / np.linalg.norm(xs)))
