"""A loss's derivatives compiled in a second process while an engine compiles
(stabsim.losses._compile_ahead): what the second process writes to the cache is what this
one then loads, it is started only where it may be, and never outlives its parent."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from stabsim import comparison
from stabsim.flows import adaptive, central
from stabsim.losses import Minimalist, Quadratic, QuadraticRegression, _compile_ahead
from stabsim.maps import constrained, projection
from stabsim.spectral import tracked_top_eigenpairs
from tests.nonfinite_families import ramp

# in a fresh interpreter on an empty cache: the second process compiles the loss's
# derivatives (and, for a family that prefers the dense Hessian, the Hessian and the tracked
# pair on its dense parts); this one, once it has finished, evaluates them without compiling
# (Numba's compile event fires only for a compilation, not for a load from the cache), and
# prints them for the test to compare with its own
_LOADS_WHAT_THE_SECOND_PROCESS_COMPILED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core import event
    from stabsim.losses import Minimalist, QuadraticRegression
    from stabsim.losses._compile_ahead import compile_derivatives_elsewhere
    from stabsim.spectral import tracked_top_eigenpairs

    loss = eval(sys.argv[1])
    process = compile_derivatives_elsewhere(loss)
    assert process is not None
    assert process.wait(timeout=300) == 0
    rng = np.random.default_rng(0)
    theta, u, v = rng.standard_normal((3, loss.dim))
    with event.install_recorder("numba:compile") as compiles:
        out = {"value": loss.value(theta), "grad": loss.grad(theta).tolist(),
               "hvp": loss.hvp(theta, v).tolist(), "d3": loss.d3(theta, u, v).tolist()}
        if loss.family.prefers_dense:
            out["hessian"] = loss.hessian(theta).tolist()
            out["pair"] = tracked_top_eigenpairs(loss, theta, 1)[1][:, 0].tolist()
    out["compiled"] = [e.data["dispatcher"].py_func.__qualname__
                       for _, e in compiles.buffer if e.is_start]
    print(json.dumps(out))
""")


# each loss as the script makes it, and as this process does
_LOSSES = {"Minimalist()": Minimalist,
           "QuadraticRegression.random(40, 5, seed=0)":
               lambda: QuadraticRegression.random(40, 5, seed=0)}


@pytest.mark.parametrize("made", list(_LOSSES))
def test_this_process_loads_what_the_second_one_compiled(tmp_path, made):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2",
               STABSIM_COMPILE_AHEAD="1")
    result = subprocess.run(
        [sys.executable, "-c", _LOADS_WHAT_THE_SECOND_PROCESS_COMPILED, made], env=env,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["compiled"] == []
    loss = _LOSSES[made]()
    theta, u, v = np.random.default_rng(0).standard_normal((3, loss.dim))
    # the same kernels on the same machine: the same bits
    assert out["value"] == loss.value(theta)
    assert out["grad"] == loss.grad(theta).tolist()
    assert out["hvp"] == loss.hvp(theta, v).tolist()
    assert out["d3"] == loss.d3(theta, u, v).tolist()
    if loss.family.prefers_dense:
        assert out["hessian"] == loss.hessian(theta).tolist()
        assert out["pair"] == tracked_top_eigenpairs(loss, theta, 1)[1][:, 0].tolist()


@pytest.fixture
def allowed(monkeypatch):
    """Every condition for a second process met, and the start of one recorded instead of
    made."""
    started = []
    monkeypatch.setenv(_compile_ahead.SWITCH, "1")
    monkeypatch.setattr(_compile_ahead, "_started", set())
    monkeypatch.setattr(_compile_ahead, "_running", [])
    monkeypatch.setattr(_compile_ahead.numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(_compile_ahead.subprocess, "Popen",
                        lambda *args, **kwargs: started.append(args) or _Finished())
    return started


class _Finished:
    """A stand-in for a second process that has read its loss and ended."""

    returncode = 0

    def communicate(self, payload):
        pass

    def wait(self):
        return 0


class _Running:
    """A stand-in for a second process that runs until the test releases it (or a minute
    has passed): reading its loss and being waited for both last until then."""

    returncode = None

    def __init__(self):
        self.release = threading.Event()
        self.finished = False

    def communicate(self, payload):
        self.wait()

    def wait(self):
        self.release.wait(timeout=60)
        self.finished = True
        return 0


def test_an_engine_does_not_wait_for_the_second_process(allowed, monkeypatch):
    # had `compare` waited for the second process, it would have returned only once the
    # stand-in finished (a minute later)
    running = _Running()
    monkeypatch.setattr(_compile_ahead.subprocess, "Popen", lambda *args, **kwargs: running)
    result = comparison.compare(Minimalist(), [0.5, 2.5], 0.1, 2, warn=False)
    finished_first = running.finished
    running.release.set()
    assert np.isfinite(result.gd_loss).all() and not finished_first


def test_started_once_a_family(allowed):
    assert _compile_ahead.compile_derivatives_elsewhere(Minimalist()) is not None
    assert _compile_ahead.compile_derivatives_elsewhere(Minimalist()) is None
    assert len(allowed) == 1


@pytest.mark.parametrize("how", ["switched off", "one thread", "a user's family",
                                 "large parameters", "no interpreter", "a loss from JAX"])
def test_not_started(allowed, monkeypatch, how):
    loss = Minimalist()
    if how == "switched off":
        monkeypatch.setenv(_compile_ahead.SWITCH, "0")
    elif how == "one thread":
        monkeypatch.setattr(_compile_ahead.numba, "get_num_threads", lambda: 1)
    elif how == "a user's family":  # its module would be imported by the second process
        loss = ramp("d3")
    elif how == "large parameters":
        loss = Quadratic(np.eye(3))
        monkeypatch.setattr(_compile_ahead, "PAYLOAD_LIMIT", loss.params.A.nbytes - 1)
    elif how == "no interpreter":  # Python embedded in a program of its own
        monkeypatch.setattr(_compile_ahead.sys, "executable", "")
    else:  # its derivatives are JAX's, traced in the process that calls them
        jnp = pytest.importorskip("jax.numpy")
        from stabsim.losses import from_jax

        loss = from_jax(lambda theta: jnp.sum(theta ** 4), 2, check=False)
    assert _compile_ahead.compile_derivatives_elsewhere(loss) is None
    assert allowed == []


def test_no_process_where_one_cannot_be_started(allowed, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no more processes")

    monkeypatch.setattr(_compile_ahead.subprocess, "Popen", refuse)
    assert _compile_ahead.compile_derivatives_elsewhere(Minimalist()) is None


@pytest.mark.parametrize("engine, call", [
    (comparison, lambda loss: comparison.compare(loss, [0.5, 2.5], 0.1, 2, warn=False)),
    (central, lambda loss: central.central_flow(loss, [0.5, 2.5], 0.1, 2)),
    (constrained, lambda loss: constrained.constrained_trajectory(loss, [0.5, 2.5], 0.1, 2)),
    (adaptive, lambda loss: adaptive.rmsprop_flow(loss, [0.5, 2.5], [1.0, 1.0], 0.1, 0.9,
                                                  2.0)),
    (adaptive, lambda loss: adaptive.scalar_rmsprop_flow(loss, [0.5, 2.5], 1.0, 0.1, 0.9,
                                                         2.0)),
    (projection, lambda loss: projection.proj_M(loss, [0.5, 2.5], 0.1)),
    (projection, lambda loss: projection.stable_geometry(loss, [0.5, 2.5])),
])
def test_engines_start_it(monkeypatch, engine, call):
    asked = []
    monkeypatch.setattr(engine, "compile_derivatives_elsewhere", asked.append)
    loss = Minimalist()
    call(loss)
    assert asked == [loss]


def test_stopped_at_exit_and_reaped_when_it_ends_early(monkeypatch):
    monkeypatch.setattr(_compile_ahead, "_running", [])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _compile_ahead._running.append(sleeper)
    _compile_ahead._stop_running()
    assert sleeper.returncode is not None
    # a process that ends without reading its loss (larger than a pipe holds) is reaped
    quitter = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    _compile_ahead._running.append(quitter)
    _compile_ahead._feed_and_reap(quitter, b"x" * (1 << 22))
    assert quitter.returncode == 0 and quitter not in _compile_ahead._running


def test_parameters_up_to_the_limit_are_sent(allowed, monkeypatch):
    loss = Quadratic(np.eye(3))
    monkeypatch.setattr(_compile_ahead, "PAYLOAD_LIMIT", loss.params.A.nbytes)
    assert _compile_ahead.compile_derivatives_elsewhere(loss) is not None
    assert len(allowed) == 1
