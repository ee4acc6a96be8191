"""The network family: exact derivatives by hyper-dual backpropagation (THEORY §6).

Checked against finite differences, against JAX autodiff of an independent forward pass
(skipped without JAX), against the dense Hessian in the GD engine, and on closed forms of the
uv model.
"""

import pickle
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabsim._threads import in_threads
from stabsim.losses import Loss, Network, UVModel, make_loss
from stabsim.losses.kernels.network import (
    CHUNKED_FAMILY,
    FAMILY,
    REAL_PASS,
    TANGENT_PASS,
    ChunkedNetworkParams,
    _int64_view,
    _tanh_array,
    _view,
    chunked_pass_from_python,
)
from stabsim.maps import run_gd
from stabsim.sweep.gd_cells import cell_blocks

EPS = np.finfo(np.float64).eps


@st.composite
def networks(draw):
    """A small network (0–3 hidden layers of width 1–5), a point θ and two directions."""
    hidden = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)))
    net = Network(
        hidden,
        activation=draw(st.sampled_from(["tanh", "softplus", "identity"])),
        data="teacher",
        n_samples=draw(st.integers(1, 6)),
        input_dim=draw(st.integers(1, 3)),
        output_dim=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        parametrisation=draw(st.sampled_from(["standard", "ntk"])),
        seed=draw(st.integers(0, 100)),
    )
    seed = draw(st.integers(0, 2**16))
    theta = net.init(seed, scale=draw(st.floats(0.5, 1.5)))
    rng = np.random.default_rng(seed + 1)
    u, v = rng.normal(size=(2, net.dim))
    return net, theta, u, v


def _stencil(f, h):
    """(f(−2h) − 8f(−h) + 8f(h) − f(2h))/(12h) and its round-off bound 3 ε max|f|/h (the
    weights sum to 18/12 in absolute value, each value carries a relative error of about ε,
    and the factor 2 covers the error of evaluating f itself)."""
    values = [np.asarray(f(k * h)) for k in (-2, -1, 1, 2)]
    estimate = (values[0] - 8.0 * values[1] + 8.0 * values[2] - values[3]) / (12.0 * h)
    scale = max(float(np.max(np.abs(val))) for val in values)
    return estimate, 3.0 * EPS * scale / h


def _five_point(f, h):
    """f'(0) by the fourth-order central stencil at step h/2, with a bound on its error.

    The stencil's error is c h⁴ + O(h⁶), so D(h) − D(h/2) = (15/16) c h⁴ + O(h⁶) and the
    truncation error of D(h/2) is about |D(h) − D(h/2)|/15 (Richardson); the bound doubles
    that for the neglected O(h⁶) terms and adds the round-off bound of both estimates. A wrong
    derivative is off by O(1), far outside it: the two estimates agree with each other, not
    with it.
    """
    coarse, coarse_roundoff = _stencil(f, h)
    fine, fine_roundoff = _stencil(f, h / 2)
    truncation = float(np.max(np.abs(coarse - fine))) / 15.0
    return fine, 2.0 * truncation + coarse_roundoff + fine_roundoff


def _close(exact, estimate, atol, scale=None):
    """|exact − estimate|∞ ≤ 1e-10 scale + atol (atol: the stencil's round-off bound; scale:
    |exact|∞ unless given)."""
    err = np.max(np.abs(exact - estimate))
    scale = np.max(np.abs(exact)) if scale is None else scale
    assert err <= 1e-10 * scale + atol, (err, scale)


@settings(max_examples=30)
@given(networks())
def test_derivatives_against_finite_differences(case):
    # The fourth-order stencil's truncation error is h⁴/30 max|f⁽⁵⁾|: _five_point bounds it
    # by Richardson extrapolation (it is not below 1e-10 relative for every drawn network:
    # at θ entries of 1.6 along stretched directions, 6e-10 at h = 1e-3), and its round-off
    # is the atol above. The directional derivative g·u is compared on the scale Σ|g_i u_i|
    # of its terms (it may be small by cancellation).
    net, theta, u, v = case
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    h = 1e-3
    g = net.grad(theta)
    estimate, atol = _five_point(lambda s: net.value(theta + s * u), h)
    _close(np.array(g @ u), estimate, atol, scale=np.abs(g) @ np.abs(u))
    estimate, atol = _five_point(lambda s: net.grad(theta + s * v), h)
    _close(net.hvp(theta, v), estimate, atol)
    estimate, atol = _five_point(lambda s: net.hvp(theta + s * u, v), h)
    _close(net.d3(theta, u, v), estimate, atol)


@settings(max_examples=30)
@given(networks())
def test_hyperdual_pass_is_consistent(case):
    # One hyper-dual pass returns exactly what the separate passes (real; real then tangent
    # for a Hessian-vector product) return, up to the order of floating-point sums; H is
    # symmetric, ∇³L[u, v] symmetric in (u, v).
    # The loss is compared on the scale of the terms its residuals cancel: L = Σ r²/(2N) with
    # r = f − y, so a rounding δr of the residuals moves it by Σ r δr / N, and δr is relative
    # to |f| + |y|, not to |r| (a drawn network that fits its targets to 4e-5 has L ≈ 8e-10,
    # and two summation orders then differ by 3e-12 of L).
    net, theta, u, v = case
    loss, g, hu, hv, t = net.derivatives(theta, u, v)
    f, y = net.predict(theta), net.params.Y
    terms = np.sum(np.abs(f - y) * (np.abs(f) + np.abs(y))) / f.shape[0]
    assert loss == pytest.approx(net.value(theta), rel=1e-13, abs=1e-13 * terms + 1e-300)
    for exact, got in ((net.grad(theta), g), (net.hvp(theta, u), hu), (net.hvp(theta, v), hv),
                       (net.d3(theta, v, u), t)):
        assert np.max(np.abs(exact - got)) <= 1e-12 * max(np.max(np.abs(exact)), 1e-300)
    assert u @ hv == pytest.approx(v @ hu, rel=1e-11, abs=1e-14 * np.abs(u) @ np.abs(hv))



def test_the_vectorised_tanh_is_within_two_ulp_of_numpy():
    # _tanh_array (the networks' activation, no libm call) claims agreement with np.tanh to
    # 2 ulp: on both sides of its branch point 0.625, where e = exp(−2|x|) underflows to
    # zero and past the clamp of the exponent at −708, for signed zeros and subnormals.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=3.0, size=20000), rng.normal(scale=0.3, size=20000),
                        np.linspace(-25.0, 25.0, 4001),
                        [0.0, -0.0, 0.625, -0.625, np.nextafter(0.625, 0.0), 1e-8, 1e-300,
                         5e-324, -5e-324, 19.0, 400.0, -800.0, 1e308]])
    got = x.copy()
    _tanh_array(got, np.empty_like(got))
    exact = np.tanh(x)
    ulps = np.abs(got - exact) / np.spacing(np.abs(exact))
    assert np.max(ulps) <= 2.0
    assert np.array_equal(np.signbit(got), np.signbit(exact))


def test_the_int64_view_is_numpys_view_of_the_same_memory():
    # _tanh_array reads its floats' bits through _int64_view, which claims to be
    # values.view(np.int64): the same bits, and the same memory (a write shows in the floats)
    @numba.njit
    def bits_then_write(values):
        bits = _int64_view(values)
        copied = bits.copy()
        bits[0] = 0x3FF0000000000000  # the bits of 1.0
        return copied

    values = np.array([2.5, -0.0, np.inf, np.nan, 5e-324, -1.75])
    expected = values.view(np.int64).copy()
    assert np.array_equal(bits_then_write(values), expected)
    assert values[0] == 1.0 and np.array_equal(values[1:].view(np.int64), expected[1:])
    with pytest.raises(numba.TypingError):
        numba.njit(lambda a: _int64_view(a))(np.zeros(3, dtype=np.float32))


@numba.njit
def _view_then_write(values, first, shape):
    """_view(values, first, shape), a copy of it, and its flags, after writing 7.0 through
    its first entry."""
    view = _view(values, first, shape)
    copied = view.copy()
    if view.size:
        view.ravel()[0] = 7.0
    return copied, view.flags.c_contiguous


@pytest.mark.parametrize("first", [0, 2])
@pytest.mark.parametrize("shape", [6, (6,), (2, 3), (3, 2), (1, 6), (3, 1, 2), (0, 4)])
def test_a_view_is_numpys_slice_and_reshape_of_the_same_memory(shape, first):
    # the passes take their blocks of work arrays with _view, which claims to be
    # values.ravel()[first:first + size].reshape(shape) of the same memory: the same entries
    # in the same C order, and a write shows in the source
    size = int(np.prod(shape))
    values = np.arange(1.0, 9.0)
    expected = values[first:first + size].reshape(shape).copy()
    got, contiguous = _view_then_write(values, first, shape)
    assert got.shape == expected.shape and np.array_equal(got, expected) and contiguous
    assert values[first] == (7.0 if size else first + 1.0)
    # of an array of more dimensions, in C order, as the passes flatten blocks
    square = np.arange(12.0).reshape(3, 4)
    expected = square.ravel()[first:first + 6].reshape(2, 3).copy()
    assert np.array_equal(_view_then_write(square, first, (2, 3))[0], expected)
    assert square.ravel()[first] == 7.0


def test_a_view_refuses_entries_past_the_end_and_arrays_not_c_contiguous():
    values = np.arange(6.0)
    for first, shape in [(0, (4, 2)), (1, 6), (6, 1), (-1, 2), (0, (-2, -3)), (2, (2, -1))]:
        with pytest.raises(ValueError, match="past the array's end"):
            _view_then_write(values, first, shape)
    assert _view_then_write(values, 6, (0, 3))[0].shape == (0, 3)  # nothing past the end
    with pytest.raises(numba.TypingError):  # a strided view is not C-contiguous
        _view_then_write(values[::2], 0, (3, 1))


@settings(max_examples=30)
@given(networks())
def test_products_from_a_linearisation_are_the_products(case):
    # linearise saves the real parts of the pass at θ and the product reads them instead of
    # recomputing them: the same arithmetic, so it agrees with hvp up to the order of
    # floating-point sums (BLAS may group a product differently). One state serves two
    # directions: a product must not change it.
    net, theta, u, v = case
    functions = net.family.functions
    state = functions["linearise"](theta, net.params)
    solver_product = net._hvp_at(theta)  # the flows' solvers: linearised once, copied θ
    out = np.empty(net.dim)
    for w in (u, v):
        functions["hvp_linearised"](theta, net.params, state, w, out)
        exact = net.hvp(theta, w)
        for got in (out, solver_product(w)):
            assert np.max(np.abs(exact - got)) <= 1e-12 * max(np.max(np.abs(exact)), 1e-300)
    assert state[0] == pytest.approx(net.value(theta), rel=1e-13, abs=1e-300)
    # the engines' measured steps: value, gradient and the same state from the gradient's
    # pass, which does the same arithmetic (bit for bit)
    g = np.empty(net.dim)
    loss, fused_state = functions["value_grad_linearise"](theta, net.params, out)
    assert loss == functions["value_grad"](theta, net.params, g)
    assert np.array_equal(out, g)
    assert np.array_equal(fused_state, state)

def _jax_loss(net):
    """An independent forward pass in jax.numpy, from the documented θ layout."""
    jnp = pytest.importorskip("jax.numpy")
    acts = {"tanh": jnp.tanh, "softplus": lambda a: jnp.logaddexp(0.0, a),
            "identity": lambda a: a}
    act = acts[net.activation]
    sizes = net.sizes
    scales = (np.ones(len(sizes) - 1) if net.parametrisation == "standard"
              else 1.0 / np.sqrt(np.array(sizes[:-1], float)))
    X, Y = jnp.asarray(net.X), jnp.asarray(net.Y)

    def loss(theta):
        h, offset = X, 0
        for i in range(len(sizes) - 1):
            W = theta[offset:offset + sizes[i + 1] * sizes[i]].reshape(sizes[i + 1], sizes[i])
            offset += sizes[i + 1] * sizes[i]
            h = scales[i] * h @ W.T
            if net.bias:
                h = h + theta[offset:offset + sizes[i + 1]]
                offset += sizes[i + 1]
            if i < len(sizes) - 2:
                h = act(h)
        return 0.5 * jnp.sum((h - Y) ** 2) / X.shape[0]

    return loss


@settings(max_examples=15)
@given(networks())
def test_derivatives_against_jax(case):
    # Two exact methods: they differ by round-off only (1e-10 relative is ~10⁶ ε). The three
    # JAX derivatives are one jitted function: traced op by op, they took ~3 s an example.
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    net, theta, u, v = case
    f = _jax_loss(net)
    grad = jax.grad(f)

    def hvp(x, w):
        return jax.jvp(grad, (x,), (w,))[1]

    def derivatives(x, a, b):
        return grad(x), hvp(x, b), jax.jvp(lambda y: hvp(y, b), (x,), (a,))[1]

    exact = jax.jit(derivatives)(theta, u, v)
    for want, ours in zip(exact, (net.grad(theta), net.hvp(theta, v), net.d3(theta, u, v)),
                          strict=True):
        want = np.asarray(want)
        _close(want, ours, 1e-14 * max(np.max(np.abs(want)), 1.0))
    assert net.value(theta) == pytest.approx(float(f(theta)), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_gd_sharpness_matches_dense_hessian(activation):
    # Lanczos stops at relative residual 1e-10; for a symmetric matrix the Ritz value is then
    # within |r| = 1e-10 |λ| of an eigenvalue (Bauer–Fike), so the sharpness is within
    # 1e-9 |λ| of eigvalsh's top eigenvalue (the rest: round-off of the d products).
    # η = 0.05: S < 2/η = 40 all along, so the top eigenvalue stays the tracked one.
    net = Network((6, 5), activation=activation, data="sine", n_samples=12)
    theta0 = net.init(3)
    result = run_gd(net, theta0, 0.05, 60, stride=10, record_trajectory=True)
    assert result.status.name == "OK"
    for theta, sharp in zip(result.trajectory, result.sharpness[:, 0], strict=True):
        top = np.linalg.eigvalsh(net.hessian(theta))[-1]
        assert sharp == pytest.approx(top, rel=1e-9)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_gd_top_eigenvalues_by_deflated_lanczos_match_the_dense_hessian(activation):
    # top_k = 3 on products: pair i is Lanczos on P H P, P projecting out this step's pairs
    # above it, stopped at residual ≤ tol·scale (tol = 1e-10, scale ≤ |H|₂). Bauer–Fike puts
    # each value within its residual of an eigenvalue of P H P, whose eigenvalues differ from
    # H's next ones by at most the residuals of the pairs projected out (each ≤ tol·|H|₂), so
    # pair i is within (i + 1)·tol·|H|₂ of eigvalsh's; the network's (6, 5) tanh Hessian has
    # distinct top eigenvalues. The recorded residual is the largest of the three.
    net = Network((6, 5), activation=activation, data="sine", n_samples=12)
    result = run_gd(net, net.init(3), 0.05, 40, stride=10, top_k=3, record_trajectory=True)
    assert result.status.name == "OK"
    for theta, values, residual in zip(result.trajectory, result.sharpness, result.eig_residual,
                                       strict=True):
        exact = np.linalg.eigvalsh(net.hessian(theta))
        norm = max(abs(exact[0]), abs(exact[-1]))
        errors = np.abs(values - exact[::-1][:3])
        assert np.all(errors <= np.array([1, 2, 3]) * 1e-10 * norm)
        assert 0 < residual <= 1e-10 * norm


def test_dense_hessians_match_the_hyperdual_pass():
    # Loss.hessian and the engines' dense measurement (the protocol's generic hess: one
    # linearise, then d linearised products of the tangent pass) against a Hessian built
    # column by column from the hyper-dual pass's ε₁ part, a different program. Round-off
    # bounds: each entry is a sum of O(N n) products of O(1) terms, so 1e-12 of the largest
    # entry; the eigenvalues then differ by at most |ΔH|₂ ≤ d max|ΔH| (Weyl) plus eigh's
    # own O(d eps |H|).
    net = Network((4, 3), activation="tanh", data="sine", n_samples=9)
    theta = net.init(5)
    d = net.dim
    eye = np.eye(d)
    columns = np.column_stack([net.derivatives(theta, eye[j], eye[j])[2] for j in range(d)])
    scale = np.max(np.abs(columns))
    assert np.max(np.abs(net.hessian(theta) - columns)) <= 1e-12 * scale
    result = run_gd(net, theta, 1e-3, 1, top_k=d, eigensolver="eigh")
    np.testing.assert_allclose(result.sharpness[0], np.linalg.eigvalsh(columns)[::-1], rtol=0,
                               atol=2e-12 * d * scale)


def test_gd_sharpness_after_a_catapult():
    # S drops from 18.7 to 1.8 in 10 steps at 2/η = 6.7; the eigenvector measured at step 0
    # is, at step 10, (to round-off) the eigenvector of the second eigenvalue 1.44, so the
    # warm start alone would return 1.44: the mix vector of the Lanczos start finds the top
    net = Network((6, 5), activation="identity", data="sine", n_samples=12)
    result = run_gd(net, net.init(3), 0.3, 10, stride=10, record_trajectory=True)
    top = np.linalg.eigvalsh(net.hessian(result.trajectory[-1]))[-1]
    assert result.sharpness[-1, 0] == pytest.approx(top, rel=1e-9)


def test_predict_and_layout():
    net = Network((4, 3), activation="softplus", data="teacher", input_dim=2, output_dim=2,
                  n_samples=5)
    theta = net.init(0)
    assert np.array_equal(net.flatten(net.unflatten(theta)), theta)
    r = net.predict(theta) - net.Y
    # L = (1/(2N)) Σ |f − y|², the definition
    assert net.value(theta) == pytest.approx(0.5 * np.sum(r * r) / 5, rel=1e-13)
    assert net.dim == 2 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2


def test_data_sets():
    # Chebyshev target T_3(x) = 4x³ − 3x and the sine target on evenly spaced points of [−1, 1]
    cheb = Network((2,), data="chebyshev", degree=3, n_samples=9)
    x = np.linspace(-1, 1, 9)
    assert np.allclose(cheb.Y[:, 0], 4 * x**3 - 3 * x, rtol=0, atol=1e-14)
    sine = Network((2,), data="sine", frequency=2.0, n_samples=9)
    assert np.allclose(sine.Y[:, 0], np.sin(2 * np.pi * x), rtol=0, atol=1e-14)
    X, Y = np.arange(6.0).reshape(3, 2), np.ones(3)
    given_data = Network((), data=(X, Y), bias=False)
    assert given_data.dim == 2 and given_data.sizes == (2, 1)
    # a linear model is a quadratic: L(θ) = |Xθ − Y|²/(2N), Hessian XᵀX/N, zero ∇³L
    assert np.allclose(given_data.hessian(np.zeros(2)), X.T @ X / 3, rtol=1e-14, atol=0)
    assert np.all(given_data.d3(np.ones(2), np.ones(2), np.ones(2)) == 0.0)
    assert isinstance(make_loss("network", hidden=(3,), activation="identity"), Network)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_samples": 3}, r"n_samples = 3 does not match data=a pair \(X, Y\), whose N is 5"),
    ({"input_dim": 5}, r"input_dim = 5 does not match data=a pair \(X, Y\), whose n_0 is 2"),
    ({"output_dim": 2}, "output_dim = 2 does not match .* whose n_L is 1"),
    ({"data": "sine", "input_dim": 3}, "input_dim = 3 does not match data='sine', whose n_0"),
])
def test_a_size_the_data_fix_may_only_be_restated(kwargs, match):
    # n_samples and input_dim had been ignored beside data (X, Y)
    data = {"data": (np.ones((5, 2)), np.ones(5))}
    with pytest.raises(ValueError, match=match):
        Network((3,), **{**data, **kwargs})
    restated = Network((3,), **data, n_samples=5, input_dim=2, output_dim=1)
    assert restated.sizes == (2, 3, 1) and restated.n_samples == 5
    assert Network((3,), data="sine", input_dim=1, output_dim=1).n_samples == 32


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": 0}, "seed sets the draw of data='teacher' and nothing else; got it with "
                  "data='chebyshev'"),
    ({"data": "sine", "degree": 2}, "degree sets the target of data='chebyshev'"),
    ({"frequency": 2.0}, "frequency sets the target of data='sine'"),
    ({"data": "teacher", "frequency": 2.0}, "frequency .* got it with data='teacher'"),
    ({"data": (np.ones((3, 1)), np.ones(3)), "degree": 3}, "with data=a pair"),
    ({"data": "sine", "teacher_hidden": (2,)}, "teacher_hidden sets the teacher"),
])
def test_an_argument_of_another_data_set_is_refused(kwargs, match):
    # degree, frequency and seed had been ignored beside data they do not apply to: a seed
    # given with the Chebyshev target drew nothing, silently
    with pytest.raises(ValueError, match=match):
        Network((2,), n_samples=3, **kwargs)
    # each with its own data set, and the defaults it stands for when left out
    assert np.array_equal(Network((2,), data="chebyshev", degree=3).Y, Network((2,)).Y)
    assert np.array_equal(Network((2,), data="sine", frequency=1.0).Y,
                          Network((2,), data="sine").Y)
    assert np.array_equal(Network((2,), data="teacher", seed=0).Y,
                          Network((2,), data="teacher").Y)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"activation": "relu"}, "activation"),
    ({"hidden": (3, 0)}, r"hidden\[1\]"),
    ({"hidden": "wide"}, "hidden"),
    ({"data": "mnist"}, "data"),
    ({"data": (np.ones((3, 2)), np.ones(4))}, "data"),
    ({"parametrisation": "mup"}, "parametrisation"),
    ({"bias": 1}, "bias"),
    ({"n_samples": 0}, "n_samples"),
    ({"chunks": 0}, "chunks"),
    ({"chunks": 1.5}, "chunks"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Network(**kwargs)


def test_uv_model_closed_forms():
    m = 40
    uv = UVModel(m, x=0.7, y=0.5)
    theta = uv.init(1)
    u, v = theta[:m], theta[m:]
    # f = vᵀu x/√m, L = ½ (f − y)², λ = (|u|² + |v|²) x²/m
    f = v @ u * 0.7 / np.sqrt(m)
    assert uv.value(theta) == pytest.approx(0.5 * (f - 0.5) ** 2, rel=1e-13)
    assert uv.ntk_eigenvalue(theta) == pytest.approx(theta @ theta * 0.49 / m, rel=1e-15)
    # On the zero set f = y the Hessian is ∇f∇fᵀ: its top eigenvalue is λ exactly.
    scale = np.sqrt(0.5 / f) if f > 0 else None
    assert scale is not None  # seed 1 gives f > 0
    on_target = theta * scale  # f is quadratic in θ
    top = np.linalg.eigvalsh(uv.hessian(on_target))[-1]
    assert top == pytest.approx(uv.ntk_eigenvalue(on_target), rel=1e-12)
    with pytest.raises(ValueError, match="width"):
        UVModel(0)


def _chunked_twin(net, chunks):
    """The same network with its passes on ``chunks`` blocks of examples, made through the
    public Loss constructor, which checks its derivatives against finite differences."""
    return Loss(ChunkedNetworkParams(*net.params, float(chunks)), net.dim)


@settings(max_examples=20)
@given(networks(), st.sampled_from([2, 3, 8]))
def test_chunked_passes_are_the_passes(case, chunks):
    # Blocks of examples (uneven when chunks does not divide N, fewer than chunks when N is
    # smaller) each return their own mean; the weighted sum Σ_c (n_c/N)·(block mean) is the
    # same sum over examples in another order, so it agrees up to the order of floating-point
    # sums (the bounds of test_hyperdual_pass_is_consistent).
    net, theta, u, v = case
    twin = _chunked_twin(net, chunks)
    assert twin.family is CHUNKED_FAMILY and twin.family.threaded and not net.family.threaded
    f, y = net.predict(theta), net.params.Y
    terms = np.sum(np.abs(f - y) * (np.abs(f) + np.abs(y))) / f.shape[0]
    assert twin.value(theta) == pytest.approx(net.value(theta), rel=1e-13,
                                              abs=1e-13 * terms + 1e-300)
    pairs = [(net.grad(theta), twin.grad(theta)), (net.hvp(theta, u), twin.hvp(theta, u)),
             (net.d3(theta, u, v), twin.d3(theta, u, v))]
    state = CHUNKED_FAMILY.functions["linearise"](theta, twin.params)
    out = np.empty(net.dim)
    CHUNKED_FAMILY.functions["hvp_linearised"](theta, twin.params, state, v, out)
    pairs.append((net.hvp(theta, v), out))
    for exact, got in pairs:
        assert np.max(np.abs(exact - got)) <= 1e-12 * max(np.max(np.abs(exact)), 1e-300)


def test_the_real_and_tangent_passes_in_blocks_are_one_compiled_loop():
    # the gradient's pass and the Hessian-vector product's pass from its state differ in a
    # value, not a type, so a kernel that needs both compiles one parallel loop
    assert numba.typeof(REAL_PASS) == numba.typeof(TANGENT_PASS)
    net = Network((3,), n_samples=5, chunks=2)
    theta, v = net.init(1), np.ones(net.dim)
    net.grad(theta)
    net.hvp(theta, v)
    state = CHUNKED_FAMILY.functions["linearise"](theta, net.params)
    CHUNKED_FAMILY.functions["hvp_linearised"](theta, net.params, state, v, np.empty(net.dim))
    kinds = {sig[0] for sig in chunked_pass_from_python.signatures}
    assert numba.typeof(REAL_PASS) in kinds
    assert numba.typeof(REAL_PASS).instance_class not in {k.instance_class for k in kinds
                                                          if k != numba.typeof(REAL_PASS)}


def test_chunked_network_matches_and_ignores_the_threads():
    # Network(chunks=k) builds the chunked record; its numbers depend on k, not on how many
    # threads run the blocks (the blocks are summed in order after they finish): bitwise.
    net = Network((5, 4), data="teacher", input_dim=3, n_samples=11, seed=2)
    twin = Network((5, 4), data="teacher", input_dim=3, n_samples=11, seed=2, chunks=3)
    assert isinstance(twin.params, ChunkedNetworkParams) and net.family is FAMILY
    assert repr(twin).endswith("chunks=3)") and "chunks" not in repr(net)
    theta = net.init(4)
    u, v = np.random.default_rng(5).normal(size=(2, net.dim))
    threads = numba.get_num_threads()
    everywhere = twin.derivatives(theta, u, v)
    numba.set_num_threads(1)
    try:
        one_thread = twin.derivatives(theta, u, v)
    finally:
        numba.set_num_threads(threads)
    assert everywhere[0] == one_thread[0]
    for a, b in zip(everywhere[1:], one_thread[1:], strict=True):
        assert np.array_equal(a, b)
    for exact, got in zip(net.derivatives(theta, u, v)[1:], everywhere[1:], strict=True):
        assert np.max(np.abs(exact - got)) <= 1e-12 * np.max(np.abs(exact))
    # a batch of the chunked network is a chunked network on those examples
    batch = np.array([3, 0, 3], np.int64)
    sub = CHUNKED_FAMILY.functions["subset"](twin.params, batch)
    assert isinstance(sub, ChunkedNetworkParams) and sub.chunks == 3.0
    serial = FAMILY.functions["subset"](net.params, batch)
    assert np.array_equal(sub.X, serial.X) and np.array_equal(sub.Y, serial.Y)


def test_a_sweep_runs_a_threaded_loss_on_one_thread():
    # cells of a loss whose functions start threads of their own are run one at a time, in
    # the calling thread (the functions' threads are not nested in the sweep's)
    import threading

    seen = []
    in_threads(lambda block: seen.append((threading.get_ident(), len(block))),
               *cell_blocks(8, True))
    assert {ident for ident, _ in seen} == {threading.get_ident()}
    assert sum(size for _, size in seen) == 8


def test_the_uv_model_declares_its_minimum():
    # inf L = 0 (f = vᵀu x/√m reaches any y for x ≠ 0): GD on √L needs it, and it had asked
    # for loss_min. u = v = (√(y√m/x), 0, …) interpolates: L = 0 there to round-off
    from stabsim.maps import run_gd

    loss = UVModel(4, x=0.5, y=2.0)
    assert loss.min_value == 0.0
    a = np.sqrt(2.0 * np.sqrt(4) / 0.5)
    theta = np.zeros(8)
    theta[0] = theta[4] = a
    assert loss.value(theta) <= 1e-28
    assert run_gd(loss, np.full(8, 0.3), 0.05, 20, method="sqrt").success


_UNPICKLE_AND_EVALUATE = """
import pickle
import sys

import numpy as np

loss, theta, v = pickle.loads(sys.stdin.buffer.read())
sys.stdout.buffer.write(pickle.dumps((loss.value(theta), loss.grad(theta), loss.hvp(theta, v),
                                      loss.d3(theta, v, v))))
"""


@pytest.mark.parametrize("chunks", [1, 2])
def test_a_pickled_network_computes_in_another_process(chunks):
    # the passes have no Python entry of their own: unpickled elsewhere (a Dask worker), a
    # network must still reach them, through their entry points (bit for bit: the same code)
    net = Network((3,), n_samples=5, chunks=chunks)
    theta = net.init(0)
    v = np.random.default_rng(0).normal(size=net.dim)
    done = subprocess.run([sys.executable, "-c", _UNPICKLE_AND_EVALUATE],
                          input=pickle.dumps((net, theta, v)), capture_output=True, check=True)
    value, grad, hvp, d3 = pickle.loads(done.stdout)
    assert value == net.value(theta)
    for got, here in ((grad, net.grad(theta)), (hvp, net.hvp(theta, v)),
                      (d3, net.d3(theta, v, v))):
        np.testing.assert_array_equal(got, here)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("chunks", 0.5, "chunks must be a whole number ≥ 1"),
    ("chunks", 0.0, "chunks must be a whole number ≥ 1"),
    ("chunks", 2.5, "chunks must be a whole number ≥ 1"),
    ("chunks", -1.0, "chunks must be a whole number ≥ 1"),
    ("activation", 7.0, "activation must be one of the codes"),
    ("activation", 1.5, "activation must be one of the codes"),
    ("bias", 0.5, "bias must be 1.0"),
])
def test_a_record_built_directly_with_codes_the_passes_do_not_know_is_refused(field, value,
                                                                              match):
    # chunks below 1 had run no block of examples (L = 0, ∇L = 0 with status OK, through the
    # derivative check), 2.5 had run 2 and −1 failed in NumPy; an unknown activation code had
    # run one of the others, and a bias of 0.5 meant "with biases"
    net = Network((3,), n_samples=5)
    record = ChunkedNetworkParams(*net.params, 2.0)._replace(**{field: value})
    with pytest.raises(ValueError, match=match):
        Loss(record, net.dim)


def test_predict_takes_a_1d_input_where_the_constructor_does():
    # one input unit: a 1-D X is a column of inputs, as Network(data=(X, Y)) takes it
    net = Network(3, data=(np.arange(4.0), np.arange(4.0)))
    theta = net.init(0)
    np.testing.assert_array_equal(net.predict(theta, np.arange(4.0)),
                                  net.predict(theta, np.arange(4.0)[:, None]))
    with pytest.raises(ValueError, match="X must be 2-dimensional"):
        net.predict(theta, np.ones((2, 1, 1)))
