"""Losses written in JAX: :func:`from_jax` (needs the optional extra ``stabsim[jax]``).

The value, gradient, Hessian-vector product and ∇³L[u, v] come from JAX autodiff:
``jax.value_and_grad``, ``jvp`` of ``grad`` (forward over reverse) and a second ``jvp`` of
that product, each ``jax.jit``-compiled once. Compiled engines reach them through
``numba.objmode`` (:mod:`stabsim.losses.kernels.jax_bridge`): each call leaves nopython
mode, so it costs a fixed few microseconds on top of JAX's own dispatch.

Cost per GD step with the sharpness every step (one thread, CPU time, warm-started Lanczos at
relative residual 1e-10; ``benchmarks/bench_networks.py``):

- a two-parameter loss (the minimalist example): 30 µs through ``from_jax`` against 0.34 µs
  for the native family — the fixed cost, about 8 µs per call and 3–4 calls per step;
- a tanh MLP on 256 examples, d = 1201: 2.5 ms through ``from_jax``, 2.2 ms native, 1.3 ms
  for the same GD in JAX ``jit`` + ``lax.scan``; d = 9473: 15.9 ms, 24.5 ms and 10.7 ms.
  At these sizes JAX's own HVP dominates and the bridge adds little.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
import weakref
from collections.abc import Callable

import numpy as np
from numba.core.errors import NumbaWarning

from .._validate import nonnegative_int
from ._base import Loss
from .kernels import jax_bridge
from .kernels.jax_bridge import JaxParams

_HANDLES = itertools.count()  # never reused: a stale handle finds no loss, not another's
# Engines are compiled with nogil; the bridge's object-mode blocks take the GIL back, which
# Numba reports once per engine. That is the intended behaviour here, not a problem to show.
warnings.filterwarnings("ignore", message="Code running in object mode won't allow parallel",
                        category=NumbaWarning)
_MISSING = ("from_jax needs JAX, which is not installed; install the extra with "
            "pip install 'stabsim[jax]' (or pip install 'jax[cpu]')")


@dataclasses.dataclass(frozen=True)
class JaxFunctions:
    """The jitted JAX functions of one loss, with NumPy arrays in and JAX arrays out."""

    value: Callable
    value_grad: Callable
    hvp: Callable
    d3: Callable


def _import_jax():
    try:
        import jax
    except ImportError as error:
        raise ImportError(_MISSING) from error
    # stabsim works in float64: JAX must too (a process-wide JAX setting)
    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_functions(jax, loss_fn):
    grad = jax.grad(loss_fn)

    def hvp(theta, v):
        return jax.jvp(grad, (theta,), (v,))[1]

    def d3(theta, u, v):
        return jax.jvp(lambda x: hvp(x, v), (theta,), (u,))[1]

    return JaxFunctions(jax.jit(loss_fn), jax.jit(jax.value_and_grad(loss_fn)), jax.jit(hvp),
                        jax.jit(d3))


class JaxLoss(Loss):
    """A loss given by a JAX function (made by :func:`from_jax`)."""

    name = "jax"

    def __init__(self, fn, dim, params, functions, *, min_value, check):
        handle = next(_HANDLES)
        jax_bridge.FUNCTIONS[handle] = functions
        # the jitted functions (and the data they close over) go with the loss
        weakref.finalize(self, jax_bridge.FUNCTIONS.pop, handle, None)
        self.fn = fn
        self.fn_params = params
        super().__init__(JaxParams(float(handle)), dim, min_value=min_value, check=check)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"from_jax({name}, dim={self.dim})"

    def _provenance_parts(self):
        # the record holds a process-local handle: the function's name and code, and its
        # fixed data, say which loss this is
        code = getattr(self.fn, "__code__", None)
        name = f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', '')}"
        yield name.encode()
        yield b"" if code is None else code.co_code + repr(code.co_consts).encode()
        yield repr(self.fn_params).encode()

    def __reduce__(self):
        # the jitted functions live in this process's table under a handle that means
        # nothing elsewhere: a pickle (a worker process's copy) carries the function and
        # makes the loss again there; a lambda or a local function cannot be pickled
        return _rebuild, (self.fn, self.dim, self.fn_params, self.min_value)

    def __copy__(self):
        # the loss itself: a copy would hold its handle, whose functions go when the
        # original is collected (the loss is immutable, as a function is)
        return self

    def __deepcopy__(self, memo):
        return self


def _rebuild(fn, dim, params, min_value) -> JaxLoss:
    """A JaxLoss made again from what :meth:`JaxLoss.__reduce__` pickled (unchecked: the
    original was checked as its maker asked)."""
    return from_jax(fn, dim, params, min_value=min_value, check=False)


def from_jax(fn, dim, params=None, *, min_value=None, check=False) -> JaxLoss:
    """A loss whose derivatives come from JAX autodiff, usable by every engine.

    Parameters
    ----------
    fn : callable
        ``fn(theta)`` or, with ``params``, ``fn(theta, params)``: a JAX-traceable function
        of a float64 vector of length ``dim`` returning a scalar. It should be C³ (∇³L is
        used by the constrained trajectory and the reduced map's constants).
    dim : int
        d.
    params : pytree of arrays, optional
        Fixed data of the loss (weights of a teacher, a data set, ...), passed as the second
        argument and closed over (converted to float64 JAX arrays once).
    min_value : float, optional
        inf L, when known (GD on sqrt L needs it).
    check : bool
        Check the derivatives against finite differences at three points (JAX's are exact;
        this catches a function that is not smooth where it is evaluated).

    Returns
    -------
    JaxLoss
        Value ``fn``; gradient ``jax.value_and_grad``; Hessian-vector product
        ``jvp(grad, (θ,), (v,))``; ∇³L[u, v] the ``jvp`` of that product along u. JAX is
        switched to float64 (``jax_enable_x64``).

    Raises
    ------
    ImportError
        Without JAX (the message names the extra ``stabsim[jax]``).
    TypeError
        If ``fn`` is not callable.
    ValueError
        If ``fn`` does not map a vector of length ``dim`` to a real floating-point scalar.

    Examples
    --------
    >>> loss = from_jax(lambda x: 0.25 * (x[0] ** 2 * x[1] ** 2 - 1.0) ** 2, 2)
    >>> float(loss.value([1.0, 2.0]))
    2.25
    """
    jax = _import_jax()
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(theta) returning a scalar, got "
                        f"{type(fn).__name__}")
    dim = nonnegative_int("dim", dim, minimum=1)
    if params is None:
        loss_fn = fn
    else:
        fixed = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a, dtype=np.float64),
                                       params)

        def loss_fn(theta):
            return fn(theta, fixed)

    probe = jax.ShapeDtypeStruct((dim,), np.float64)
    try:
        out = jax.eval_shape(loss_fn, probe)
    except Exception as error:  # noqa: BLE001 - any tracing failure is a bad fn for this dim
        raise ValueError(f"fn could not be evaluated on a vector of length dim = {dim}: "
                         f"{type(error).__name__}: {error}") from error
    if getattr(out, "shape", None) != ():
        raise ValueError(f"fn must return a scalar, got shape {getattr(out, 'shape', out)}")
    if not np.issubdtype(out.dtype, np.floating):  # JAX differentiates real floats only
        raise ValueError(f"fn must return a real floating-point scalar, got dtype {out.dtype}; "
                         "an integer or boolean result has no gradient (cast it with "
                         "jnp.asarray(..., float)), and a complex one is not a loss")
    return JaxLoss(fn, dim, params, _jax_functions(jax, loss_fn), min_value=min_value,
                   check=check)
