"""Losses from JAX: derivatives, engines and sweeps agree with the native families."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from stabsim.losses import Minimalist, Network, from_jax
from stabsim.maps import run_gd


def test_missing_jax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    with pytest.raises(ImportError, match=r"stabsim\[jax\]"):
        from_jax(lambda x: x @ x, 2)


def _network_in_jax(net):
    """The loss of ``net`` written in jax.numpy from its documented θ layout."""
    jnp = pytest.importorskip("jax.numpy")
    sizes = net.sizes

    def loss(theta, data):
        h, offset = data["X"], 0
        for i in range(len(sizes) - 1):
            W = theta[offset:offset + sizes[i + 1] * sizes[i]].reshape(sizes[i + 1], sizes[i])
            offset += sizes[i + 1] * sizes[i]
            h = h @ W.T + theta[offset:offset + sizes[i + 1]]
            offset += sizes[i + 1]
            if i < len(sizes) - 2:
                h = jnp.tanh(h)
        return 0.5 * jnp.sum((h - data["Y"]) ** 2) / h.shape[0]

    return loss


def test_derivatives_match_the_native_network():
    # JAX autodiff and hyper-dual backpropagation are both exact: round-off apart only
    # (1e-10 relative is ~10⁶ ε).
    pytest.importorskip("jax")
    net = Network((5, 4), data="teacher", input_dim=2, n_samples=6)
    loss = from_jax(_network_in_jax(net), net.dim, params={"X": net.X, "Y": net.Y})
    rng = np.random.default_rng(0)
    theta = net.init(1)
    u, v = rng.normal(size=(2, net.dim))
    assert loss.value(theta) == pytest.approx(net.value(theta), rel=1e-12)
    for ours, native in ((loss.grad(theta), net.grad(theta)),
                         (loss.hvp(theta, v), net.hvp(theta, v)),
                         (loss.d3(theta, u, v), net.d3(theta, u, v))):
        assert np.max(np.abs(ours - native)) <= 1e-10 * np.max(np.abs(native))


def test_gd_matches_the_native_family():
    # Same iteration, same derivatives up to round-off: the runs agree to round-off growth
    # over 300 steps (the EoS oscillation amplifies differences; 1e-8 leaves 10⁷ ε).
    pytest.importorskip("jax")
    loss = from_jax(lambda w: 0.25 * (w[0] ** 2 * w[1] ** 2 - 1.0) ** 2, 2)
    native = Minimalist()
    theta0 = np.array([0.5, 1.8])
    ours = run_gd(loss, theta0, 0.3, 300)
    ref = run_gd(native, theta0, 0.3, 300)
    assert ours.status == ref.status
    np.testing.assert_allclose(ours.loss, ref.loss, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(ours.sharpness, ref.sharpness, rtol=1e-8)


def test_sweep_of_a_jax_loss():
    # A sweep imports the factory in tests/jax_losses.py; its cells equal the native ones.
    pytest.importorskip("jax")
    from stabsim.sweep import run_sweep

    tables = {"sweep": {"model": "gd", "steps": 200}, "grid": {"eta": [0.1, 0.3, 0.5]},
              "params": {"theta0": [0.5, 1.8]}}
    ours = run_sweep({**tables, "loss": {"name": "jax_losses:minimalist"}}).to_xarray()
    ref = run_sweep({**tables, "loss": {"name": "minimalist"}}).to_xarray()
    assert np.array_equal(ours["regime"].values, ref["regime"].values)
    np.testing.assert_allclose(ours["final_loss"].values, ref["final_loss"].values,
                               rtol=1e-8, atol=1e-14)


def test_bad_functions():
    pytest.importorskip("jax")
    with pytest.raises(TypeError, match="fn must be a callable"):
        from_jax(3.0, 2)
    with pytest.raises(ValueError, match="scalar"):
        from_jax(lambda x: x * 2.0, 2)
    with pytest.raises(ValueError, match="dim = 3"):
        from_jax(lambda x: x[0] * x[1] @ np.ones(2), 3)
    with pytest.raises(ValueError, match="dim"):
        from_jax(lambda x: x @ x, 0)


def test_a_dim_too_small_for_the_indices_of_fn_is_refused():
    # JAX clamps an index out of range: at dim = 2, θ[2] read θ[1] and the loss at (1, 2)
    # was 1 + 4 + 4 = 9, not an error
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with pytest.raises(ValueError, match=r"fn indexes out of bounds at theta = zeros\(dim\), "
                       r"dim = 2: .*index 2 is out of bounds for axis 0 with size 2"):
        from_jax(lambda t: t[0] ** 2 + t[1] ** 2 + t[2] ** 2, 2)
    # an index computed in a loop, with params
    def looped(t, c):
        return jax.lax.fori_loop(0, 3, lambda i, a: a + c[i] * t[i] ** 2, 0.0)

    with pytest.raises(ValueError, match=r"dim = 2: .*index 2 is out of bounds"):
        from_jax(looped, 2, np.ones(3))
    assert from_jax(looped, 3, np.ones(3)).value([1.0, 2.0, 3.0]) == pytest.approx(14.0,
                                                                               rel=1e-15)
    # an index out of range on purpose is refused unless the check is skipped
    def clipped(t):
        return jnp.take(t, jnp.array([0, 3]), mode="clip").sum() ** 2

    with pytest.raises(ValueError, match="check_indices=False"):
        from_jax(clipped, 2)
    assert from_jax(clipped, 2, check_indices=False).value([1.0, 2.0]) == pytest.approx(9.0)


def test_params_that_are_not_arrays_of_numbers_are_named_by_their_path():
    # a string leaf had raised a bare "could not convert string to float: 'abc'", an object
    # a bare TypeError from float()
    jnp = pytest.importorskip("jax.numpy")

    def fn(x, p):
        return 0.5 * jnp.sum(p["a"] * x ** 2)

    with pytest.raises(TypeError, match=r"params\['name'\] must be a real number or an array "
                       r"of them \(params is a pytree .*\), got str 'abc'"):
        from_jax(fn, 3, {"a": np.ones(3), "name": "abc"})
    with pytest.raises(TypeError, match=r"params must be a real number .*, got object"):
        from_jax(fn, 3, object())
    with pytest.raises(TypeError, match=r"params\['a'\]\[1\] must .*, got complex"):
        from_jax(fn, 3, {"a": [1.0, 2.0j]})


def test_a_list_of_numbers_in_params_is_a_pytree_container_and_a_failure_says_so():
    # JAX's meaning: fn gets a list of 0-d arrays. Where fn needs an array, the failure had
    # pointed at dim alone; it now says what params['a'] reached fn as
    jnp = pytest.importorskip("jax.numpy")
    loss = from_jax(lambda x, p: 0.5 * (p[0] * x[0] ** 2 + p[1] * x[1] ** 2), 2, [1, 3])
    assert float(loss.value([1.0, 1.0])) == 2.0
    with pytest.raises(ValueError, match=r"dim = 3 and params: TypeError: .*; note: "
                       r"params\['a'\] is a list or tuple of numbers, .* not as an array: "
                       r"pass np.asarray of it"):
        from_jax(lambda x, p: 0.5 * jnp.sum(p["a"] * x ** 2), 3, {"a": [1, 2, 3]})
    loss = from_jax(lambda x, p: 0.5 * jnp.sum(p["a"] * x ** 2), 3, {"a": np.arange(1, 4)})
    assert float(loss.value([1.0, 1.0, 1.0])) == 3.0  # integers as float64


def test_an_integer_array_in_params_reaches_fn_as_float64_and_a_failure_says_so():
    pytest.importorskip("jax")
    with pytest.raises(ValueError, match=r"dim = 3 and params: .*; note: "
                       r"params\['idx'\] holds integers, which fn gets as float64"):
        from_jax(lambda x, p: x[p["idx"]] @ x[p["idx"]], 3, {"idx": np.array([0, 2])})


@pytest.mark.parametrize("make", [lambda jnp: lambda x: 1,
                                  lambda jnp: lambda x: jnp.sum(x * x).astype(jnp.int32),
                                  lambda jnp: lambda x: x[0] > 0.0,
                                  lambda jnp: lambda x: jnp.sum(x * x) * (1.0 + 1.0j)])
def test_a_result_without_a_real_gradient_is_refused_at_construction(make):
    # JAX differentiates real floating-point outputs only: these were accepted, and the
    # first gradient (the first step of any engine) raised JAX's TypeError
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(ValueError, match="real floating-point scalar, got dtype"):
        from_jax(make(jnp), 2)


def test_a_collected_loss_releases_its_jax_functions():
    # Every from_jax loss had kept its jitted functions (and the data they close over) in a
    # process-wide table for the life of the process
    pytest.importorskip("jax")
    import gc
    import weakref

    from stabsim.losses.kernels import jax_bridge

    loss = from_jax(lambda x: 0.5 * (x @ x), 2)
    handle = int(loss.params.handle)
    functions = weakref.ref(jax_bridge.FUNCTIONS[handle])
    assert run_gd(loss, np.array([0.5, 0.1]), 0.3, 5).success
    params = loss.params
    del loss
    gc.collect()
    assert handle not in jax_bridge.FUNCTIONS and functions() is None
    # its record alone finds no loss (handles are never reused), and says so
    with pytest.raises(RuntimeError, match="no longer exists"):
        jax_bridge._value(int(params.handle), np.zeros(2))


def test_a_copy_outlives_the_original_and_a_check_names_the_loss():
    pytest.importorskip("jax")
    import copy
    import gc

    jnp = pytest.importorskip("jax.numpy")
    loss = from_jax(lambda x: 0.5 * (x[0] ** 2 + 3.0 * x[1] ** 2), 2)
    copies = copy.copy(loss), copy.deepcopy(loss), copy.deepcopy([loss])[0]
    del loss
    gc.collect()
    for kept in copies:  # a copy had kept the handle only, freed with the original
        assert kept.value(np.array([1.0, 1.0])) == 2.0
    with pytest.raises(ValueError, match=r"^from_jax\(<lambda>, dim=1\): value gave a "
                                         r"non-finite result at check point \d; pass"):
        from_jax(lambda x: jnp.sqrt(x[0]), 1, check=True)


def test_a_pickled_loss_carries_its_function_to_another_process(tmp_path):
    # A pickle had carried only the process-local handle: unpickled in a fresh process it
    # named no function (or, where that process had from_jax losses of its own, another one)
    pytest.importorskip("jax")
    import gc
    import pickle
    import subprocess

    import jax_losses

    loss = from_jax(jax_losses.quartic_value, 2, params=2.0, min_value=0.0)
    theta = np.array([0.5, 1.2])
    # (2/4)(0.36 − 1)² + 0.1 (0.25 + 1.44), by hand
    expected = 0.5 * (0.25 * 1.44 - 1.0) ** 2 + 0.1 * 1.69
    assert loss.value(theta) == pytest.approx(expected, rel=1e-15)
    path = tmp_path / "loss.pkl"
    path.write_bytes(pickle.dumps(loss))
    copy = pickle.loads(path.read_bytes())
    del loss
    gc.collect()
    assert copy.value(theta) == pytest.approx(expected, rel=1e-15) and copy.min_value == 0.0
    script = ("import pickle, sys, numpy as np\n"
              "from stabsim.losses import from_jax\n"
              "other = from_jax(lambda w: 0.5 * (w @ w), 2)  # a loss of the worker's own\n"
              f"loss = pickle.loads(open({str(path)!r}, 'rb').read())\n"
              "print(repr(float(loss.value(np.array([0.5, 1.2])))))\n")
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert float(out) == pytest.approx(expected, rel=1e-15)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(from_jax(lambda w: w @ w, 2))  # a lambda cannot travel


def test_provenance_tells_apart_what_the_function_reads_to_the_last_bit(tmp_path):
    # provenance had hashed the function's bytecode and repr(params) only: data a repr
    # rounds (1.0 against 1.0000000001), a global the function reads, and a variable it
    # closes over left it unchanged (a sweep resumed after an edit reused stale chunks)
    pytest.importorskip("jax")
    import functools
    import subprocess
    import types

    def quadratic(w, p):
        return p[0] * w[0] ** 2 + p[1] * w[1] ** 2 + sum(x for x in w)

    base = from_jax(quadratic, 2, np.array([1.0, 3.0])).provenance
    assert from_jax(quadratic, 2, np.array([1.0, 3.0])).provenance == base
    assert from_jax(quadratic, 2, np.array([1.0, 3.0 + 1e-10])).provenance != base

    def closing_over(scale):
        return lambda w: scale * (w @ w)

    assert (from_jax(closing_over(1.0), 2).provenance
            != from_jax(closing_over(1.0 + 2.0 ** -52), 2).provenance)

    module = types.ModuleType("provenance_globals")  # no file: a notebook's functions
    exec("SCALE = 1.0\ndef f(w):\n    return SCALE * (w @ w)\n", module.__dict__)
    first = from_jax(module.f, 2).provenance
    module.SCALE = 2.0
    assert from_jax(module.f, 2).provenance != first
    module.SCALE = 1.0
    assert from_jax(module.f, 2).provenance == first

    # a partial's fixed arguments, a bound method's object, a global object's attributes
    # (each had been known by its type only)
    def scaled(w, s):
        return s * (w @ w)

    assert (from_jax(functools.partial(scaled, s=1.0), 2).provenance
            != from_jax(functools.partial(scaled, s=2.0), 2).provenance)

    class Model:
        def __init__(self, s):
            self.s = s

        def loss(self, w):
            return self.s * (w @ w)

    assert from_jax(Model(1.0).loss, 2).provenance != from_jax(Model(2.0).loss, 2).provenance
    exec("import types\nCONFIG = types.SimpleNamespace(s=1.0)\n"
         "def g(w):\n    return CONFIG.s * (w @ w)\n", module.__dict__)
    first = from_jax(module.g, 2).provenance
    module.CONFIG.s = 2.0
    assert from_jax(module.g, 2).provenance != first

    # default arguments, a parameter tree six levels deep, a string __slots__ (each had been
    # left out)
    assert (from_jax(lambda w, s=2.0: s * (w @ w), 2).provenance
            != from_jax(lambda w, s=3.0: s * (w @ w), 2).provenance)

    def tree(value):
        return {"enc": {"layer": {"attn": {"query": {"kernel": {"w": np.array([value])}}}}}}

    def deep(w, p):
        return p["enc"]["layer"]["attn"]["query"]["kernel"]["w"][0] * (w @ w)

    assert from_jax(deep, 2, tree(1.0)).provenance != from_jax(deep, 2, tree(2.0)).provenance
    exec("class Slot:\n    __slots__ = 'scale'\n\n    def __init__(self, s):\n"
         "        self.scale = s\nSLOT = Slot(1.0)\n"
         "def h(w):\n    return SLOT.scale * (w @ w)\n", module.__dict__)
    first = from_jax(module.h, 2).provenance
    module.SLOT.scale = 2.0
    assert from_jax(module.h, 2).provenance != first

    # the same in fresh processes of different hash seeds, a generator expression (nested
    # code, whose repr holds an address), a set constant (whose repr follows the seed) and
    # a dict keyed by functions included: the name a result's parameters carry does not
    # change
    script = ("import numpy as np\nimport jax\nfrom stabsim.losses import from_jax\n"
              "WEIGHTS = {jax.nn.relu: 1.0, jax.nn.tanh: 2.0}  # keys whose repr is an address\n"
              "def quadratic(w, p):\n"
              "    keep = 1.0 if 'x' in {'a', 'b', 'c', 'x'} else sum(WEIGHTS.values())\n"
              "    return keep * (p[0] * w[0] ** 2 + p[1] * w[1] ** 2) + sum(x for x in w)\n"
              "print(from_jax(quadratic, 2, np.array([1.0, 3.0])).provenance)\n")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2, 3)}
    assert len(runs) == 1 and runs.pop().startswith("from_jax(quadratic, dim=2) sha256:")


def test_a_sweep_of_a_jax_loss_gets_another_key_when_its_module_is_edited(tmp_path,
                                                                          monkeypatch):
    # an edit of a constant the JAX function reads had left the work directory's key, and
    # so its chunks, as they were: a resumed sweep returned the old loss's results
    pytest.importorskip("jax")
    import importlib

    from stabsim.sweep import SweepConfig

    name = "from_jax_edited"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within a second
    source = ("from stabsim.losses import from_jax\nSCALE = {scale}\n\n"
              "def f(w):\n    return 0.5 * SCALE * (w[0] ** 2 + 3.0 * w[1] ** 2)\n\n"
              "def make():\n    return from_jax(f, 2)\n")

    def key(scale):
        (tmp_path / f"{name}.py").write_text(source.format(scale=scale))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return SweepConfig(model="gd", loss={"name": f"{name}:make"}, steps=5,
                           params={"theta0": [0.1, 0.8]}, grid={"eta": [0.1, 0.2]}).key

    first = key(1.0)
    assert key(2.0) != first
    assert key(1.0) == first  # the same loss again: the same key
    sys.modules.pop(name, None)
