"""Finite-sum losses: the examples of the regression and network families (docs/stochastic.md).

The mean over all examples of the per-example value, gradient and Hessian-vector product must
equal the full loss's to floating point; each per-example value is checked against a NumPy
formula the kernels did not compute.
"""

from typing import NamedTuple

import numba
import numpy as np
import pytest

from stabsim import Loss, Network, QuadraticRegression, register_family
from stabsim.losses.kernels import quadratic as quadratic_kernels

EPS = np.finfo(float).eps


def _losses():
    regression = QuadraticRegression.random(6, 9, seed=3)
    network = Network((5,), activation="tanh", data="teacher", input_dim=2, n_samples=7,
                      seed=2)
    return [(regression, np.random.default_rng(0).normal(size=6)),
            (network, network.init(1))]


def _mean_matches(terms, full, inner):
    """|mean_i t_i − full| within the rounding of two length-N sums of the terms and of the
    terms' own computation: each per-example term and the full value carry a relative
    error of a few (inner + N) ulp of the magnitudes summed (Higham, Accuracy and Stability,
    §4.2: |fl(Σ x) − Σ x| ≤ γ_N Σ |x|), so 8 (inner + N) ε · mean |t_i| bounds the gap."""
    terms = np.asarray(terms)
    n = terms.shape[0]
    scale = np.abs(terms).mean(axis=0) + np.abs(full)
    assert np.all(np.abs(terms.mean(axis=0) - full) <= 8 * (inner + n) * EPS * scale + 1e-300)


@pytest.mark.parametrize("index", [0, 1])
def test_mean_of_examples_is_the_loss(index):
    loss, theta = _losses()[index]
    n = loss.n_examples
    assert loss.finite_sum
    v = np.random.default_rng(5).normal(size=loss.dim)
    singles = [loss.batch([i]) for i in range(n)]
    inner = loss.dim * 8  # operations per term: a few passes over θ per layer / row of Q_k
    _mean_matches([s.value(theta) for s in singles], loss.value(theta), inner)
    _mean_matches([s.grad(theta) for s in singles], loss.grad(theta), inner)
    _mean_matches([s.hvp(theta, v) for s in singles], loss.hvp(theta, v), inner)
    # every example, in order: the same numbers in the same order, hence the same arithmetic
    whole = loss.batch(np.arange(n))
    assert whole.value(theta) == loss.value(theta)
    assert np.array_equal(whole.grad(theta), loss.grad(theta))
    assert np.array_equal(whole.hvp(theta, v), loss.hvp(theta, v))


def test_per_example_losses_against_numpy():
    """ℓ_k = z_k(θ)²/2 for the regression model and |f(x_n) − y_n|²/2 for the network,
    from their NumPy methods ``residual`` and ``predict``."""
    (regression, theta_r), (network, theta_n) = _losses()
    z = regression.residual(theta_r)
    for k in range(regression.n):
        assert regression.batch([k]).value(theta_r) == pytest.approx(0.5 * z[k] ** 2,
                                                                     rel=1e-12)
    f = network.predict(theta_n)
    for i in range(network.n_samples):
        want = 0.5 * np.sum((f[i] - network.Y[i]) ** 2)
        assert network.batch([i]).value(theta_n) == pytest.approx(want, rel=1e-12)


def test_repeated_index_counts_twice():
    """L_B for B = (0, 0, 3) is (2 ℓ_0 + ℓ_3)/3 (a multiset, as drawn with replacement)."""
    for loss, theta in _losses():
        want = (2 * loss.batch([0]).value(theta) + loss.batch([3]).value(theta)) / 3
        assert loss.batch([0, 0, 3]).value(theta) == pytest.approx(want, rel=1e-13)


def test_bad_indices_and_non_sums():
    loss, _ = _losses()[0]
    for bad in ([], [9], [-1], [[0, 1]], [0.5]):
        with pytest.raises(ValueError, match="indices"):
            loss.batch(bad)
    quadratic = Loss(quadratic_kernels.QuadraticParams(np.diag([1.0, 2.0])), 2)
    assert not quadratic.finite_sum and quadratic.n_examples is None
    with pytest.raises(TypeError, match="not a finite sum"):
        quadratic.batch([0])


def test_subset_needs_examples():
    class Lonely(NamedTuple):
        a: float

    k = quadratic_kernels
    with pytest.raises(TypeError, match="subset and examples go together"):
        register_family(Lonely, value=k.value, grad=k.grad, hvp=k.hvp, d3=k.d3,
                        examples=lambda p: 1)


class Wells(NamedTuple):
    """ℓ_i(θ) = ½ |θ − c_i|² for the rows c_i of C: L = ½ mean_i |θ − c_i|² (a user family)."""

    C: np.ndarray


@numba.njit(cache=True)
def _wells_value(theta, p):
    total = 0.0
    for i in range(p.C.shape[0]):
        for j in range(theta.shape[0]):
            total += 0.5 * (theta[j] - p.C[i, j]) ** 2
    return total / p.C.shape[0]


@numba.njit(cache=True)
def _wells_grad(theta, p, out):
    for j in range(theta.shape[0]):
        out[j] = theta[j] - p.C[:, j].mean()


@numba.njit(cache=True)
def _wells_hvp(theta, p, v, out):
    out[:] = v


@numba.njit(cache=True)
def _wells_d3(theta, p, u, v, out):
    out[:] = 0.0


@numba.njit(cache=True)
def _wells_subset(p, indices):
    return Wells(p.C[indices])


register_family(Wells, value=_wells_value, grad=_wells_grad, hvp=_wells_hvp, d3=_wells_d3,
                subset=_wells_subset, examples=lambda p: p.C.shape[0],
                shapes={"C": (None, "d")})


def test_a_user_family_is_a_finite_sum():
    """A family defined outside stabsim registers subset and examples like a built-in one;
    the batch on B = {i, j} is ½ mean over B of |θ − c_k|², by NumPy."""
    C = np.arange(12.0).reshape(4, 3)
    loss = Loss(Wells(C), 3)
    theta = np.array([0.5, -1.0, 2.0])
    assert loss.finite_sum and loss.n_examples == 4
    want = 0.5 * np.mean(np.sum((theta - C[[1, 3]]) ** 2, axis=1))
    assert loss.batch([1, 3]).value(theta) == pytest.approx(want, rel=1e-15)
    assert np.allclose(loss.batch([1, 3]).grad(theta), theta - C[[1, 3]].mean(axis=0),
                       rtol=1e-15, atol=0)


class WeightedWells(NamedTuple):
    """L = Σ_i w_i ½ |θ − c_i|² with w_i = 1/N: a mean over the rows c_i of C as a weighted sum."""

    C: np.ndarray
    w: np.ndarray


@numba.njit(cache=True)
def _weighted_value(theta, p):
    total = 0.0
    for i in range(p.C.shape[0]):
        for j in range(theta.shape[0]):
            total += p.w[i] * 0.5 * (theta[j] - p.C[i, j]) ** 2
    return total


@numba.njit(cache=True)
def _weighted_grad(theta, p, out):
    out[:] = 0.0
    for i in range(p.C.shape[0]):
        out += p.w[i] * (theta - p.C[i])


@numba.njit(cache=True)
def _weighted_hvp(theta, p, v, out):
    out[:] = p.w.sum() * v


@numba.njit(cache=True)
def _weighted_subset(p, indices):  # the batch's own weights 1/|B|
    return WeightedWells(p.C[indices], np.full(indices.shape[0], 1.0 / indices.shape[0]))


class StaleWells(NamedTuple):  # the same loss, whose subset keeps the weights 1/N
    C: np.ndarray
    w: np.ndarray


@numba.njit(cache=True)
def _stale_subset(p, indices):
    return StaleWells(p.C[indices], p.w[indices])


class SizeWells(NamedTuple):  # Wells whose examples counts the entries of C, not its rows
    C: np.ndarray


@numba.njit(cache=True)
def _size_subset(p, indices):
    return SizeWells(p.C[indices])


class UniqueWells(NamedTuple):  # Wells whose subset drops repeated rows but counts them
    C: np.ndarray
    n: float  # the number of examples


@numba.njit(cache=True)
def _unique_subset(p, indices):
    return UniqueWells(p.C[np.unique(indices)], float(indices.shape[0]))


@numba.njit(cache=True)
def _unique_subset_once(p, indices):
    return UniqueWells(p.C[np.unique(indices)], float(np.unique(indices).shape[0]))


class OtherClassWells(NamedTuple):  # Wells whose subset returns a record of another class
    C: np.ndarray


@numba.njit(cache=True)
def _other_class_subset(p, indices):
    return Wells(p.C[indices])


class CountedWells(NamedTuple):  # WeightedWells whose batches keep every row, weighted
    C: np.ndarray
    w: np.ndarray


@numba.njit(cache=True)
def _counted_subset(p, indices):  # weight (times i appears)/|B| on every row of the data
    w = np.zeros(p.C.shape[0])
    for i in indices:
        w[i] += 1.0 / indices.shape[0]
    return CountedWells(p.C, w)


_WEIGHTED = dict(value=_weighted_value, grad=_weighted_grad, hvp=_weighted_hvp,
                 d3=_wells_d3, examples=lambda p: p.C.shape[0],
                 shapes={"C": ("n", "d"), "w": ("n",)})
register_family(WeightedWells, subset=_weighted_subset, **_WEIGHTED)
register_family(StaleWells, subset=_stale_subset, **_WEIGHTED)
register_family(CountedWells, subset=_counted_subset, **_WEIGHTED)
_PLAIN = dict(value=_wells_value, grad=_wells_grad, hvp=_wells_hvp, d3=_wells_d3,
              shapes={"C": (None, "d")})
register_family(SizeWells, subset=_size_subset, examples=lambda p: p.C.size, **_PLAIN)
register_family(UniqueWells, subset=_unique_subset, examples=lambda p: int(p.n), **_PLAIN)
register_family(OtherClassWells, subset=_other_class_subset, examples=lambda p: p.C.shape[0],
                **_PLAIN)


def _centres(n, d=3):
    return np.random.default_rng(n).normal(size=(n, d))


@pytest.mark.parametrize("n", [6, 100])  # every example checked; a sample of 32 and the rest
def test_the_construction_check_takes_a_right_finite_sum(n):
    C = _centres(n)
    loss = Loss(WeightedWells(C, np.full(n, 1.0 / n)), 3)
    theta = np.array([0.3, -0.2, 0.1])
    assert loss.batch([0, n - 1]).value(theta) == pytest.approx(
        0.25 * np.sum((theta - C[[0, n - 1]]) ** 2), rel=1e-13)


@pytest.mark.parametrize("n", [6, 100])
def test_a_subset_that_keeps_the_whole_data_sets_weights_is_refused(n):
    # its L_B is (|B|/N) times the batch loss: mean_i L_{[i]} = L/N (one such family: 0.193
    # for L = 1.158, and SGD ran on it with status OK); at N = 100 the 32 sampled examples
    # and the other 68 as one batch give (32 L/N + 68 · 68 L/N)/N
    C = _centres(n)
    with pytest.raises(ValueError, match=r"StaleWells: .*examples i of L on subset\(p, \[i\]\)"
                       r".* disagrees with value .*batch loss L_B = \(1/\|B\|\)"):
        Loss(StaleWells(C, np.full(n, 1.0 / n)), 3)


def test_examples_that_count_the_wrong_axis_are_refused_before_any_batch_reads_past_the_data():
    # examples = p.C.size gives 18 for 6 rows of 3: SGD then drew indices up to 17, read past
    # the end of C (nondeterministic runs, status OK); refused from batches of index 0 alone
    with pytest.raises(ValueError, match=r"SizeWells: examples\(p\) gives 3 for the record of "
                       r"subset\(p, \[0\]\), a batch of 1 \(and N = 18 for p\)"):
        Loss(SizeWells(_centres(6)), 3)


def test_a_subset_that_counts_a_repeated_index_once_is_refused(monkeypatch):
    # every example in order and each alone agree with L, and the count is right: only the
    # values on a repeat tell (2ℓ₅ + ℓ₀)/3 from (ℓ₅ + ℓ₀)/2
    with pytest.raises(ValueError, match=r"value on subset\(p, \[5, 5, 0\]\) disagrees with "
                       r"\(2ℓ_5 \+ ℓ_0\)/3 \(a repeated index counts twice\)"):
        Loss(UniqueWells(_centres(6), 6.0), 3)
    # counted once as well: examples(p) of the batch (0, 0) is 1
    from stabsim.losses._protocol import _FAMILIES

    monkeypatch.setitem(_FAMILIES[UniqueWells].functions, "subset", _unique_subset_once)
    with pytest.raises(ValueError, match=r"examples\(p\) gives 1 for the record of subset\(p, "
                       r"\[0, 0\]\), a batch of 2"):
        Loss(UniqueWells(_centres(6), 6.0), 3)


def test_a_subset_of_another_class_is_refused():
    with pytest.raises(ValueError, match=r"subset\(p, \[0\]\) must return a OtherClassWells "
                       r"record \(the class of p\), got Wells"):
        Loss(OtherClassWells(_centres(6)), 3)


def test_a_batch_kept_as_weights_over_the_whole_data_set_is_taken():
    # subset(p, B) keeps all N rows with weights (count in B)/|B|: a right finite sum whose
    # batch records hold N rows, so examples of a batch of one is N, not 1 (the check, which
    # had asked for 1, refused it)
    n = 6
    C = _centres(n)
    loss = Loss(CountedWells(C, np.full(n, 1.0 / n)), 3)
    theta = np.random.default_rng(1).normal(size=3)
    ell = 0.5 * np.sum((theta - C) ** 2, axis=1)  # the per-example losses, by NumPy
    np.testing.assert_allclose(loss.batch([1, 1, 3]).value(theta), (2 * ell[1] + ell[3]) / 3,
                               rtol=1e-14)
