"""A loss whose derivatives come from JAX, reached from compiled kernels (record
:class:`JaxParams`).

The record holds an integer handle into :data:`FUNCTIONS`, a table of jitted JAX functions
(value, value and gradient, Hessian-vector product, ∇³L[u, v]) filled by
:func:`stabsim.losses.from_jax` and cleared of a loss's entry when the loss is collected.
Each protocol function leaves nopython mode through ``numba.objmode``, calls the table
entry on the arrays (no copy on the way in; JAX copies to its device buffer) and writes the
result into ``out``. The record class is stabsim's, so every engine compiled for it is
cached once in stabsim's own cache, whatever JAX function a handle points to.
"""

from typing import NamedTuple

import numba
import numpy as np

from ..._jit import JIT_FLAGS
from .._protocol import register_family

#: handle → the jitted JAX functions of one live loss (a ``stabsim.losses.from_jax.JaxFunctions``)
FUNCTIONS: dict = {}


#: stabsim's flags without ``nogil``: each function re-acquires the GIL to call JAX
jit = numba.njit(**{k: v for k, v in JIT_FLAGS.items() if k != "nogil"})


class JaxParams(NamedTuple):
    """The handle (a key of :data:`FUNCTIONS`, stored as a float like every field)."""

    handle: float


def _functions(handle):
    try:
        return FUNCTIONS[handle]
    except KeyError:
        raise RuntimeError(f"JaxParams(handle={handle}) belongs to a from_jax loss that no "
                           "longer exists: keep the loss made by from_jax alive while its "
                           "params are used") from None


def _value(handle, theta):
    return float(_functions(handle).value(theta))


def _value_grad(handle, theta, out):
    loss, grad = _functions(handle).value_grad(theta)
    out[:] = np.asarray(grad)
    return float(loss)


def _hvp(handle, theta, v, out):
    out[:] = np.asarray(_functions(handle).hvp(theta, v))


def _d3(handle, theta, u, v, out):
    out[:] = np.asarray(_functions(handle).d3(theta, u, v))


# The object-mode calls sit in functions of their own: the protocol compiles a built-in
# family's functions into each kernel as they are written, and a function compiled that way
# cannot hold an object-mode block.


@jit
def _call_value(handle, theta):
    with numba.objmode(result="float64"):
        result = _value(handle, theta)
    return result


@jit
def _call_value_grad(handle, theta, out):
    with numba.objmode(result="float64"):
        result = _value_grad(handle, theta, out)
    return result


@jit
def _call_hvp(handle, theta, v, out):
    with numba.objmode():
        _hvp(handle, theta, v, out)


@jit
def _call_d3(handle, theta, u, v, out):
    with numba.objmode():
        _d3(handle, theta, u, v, out)


@jit
def value(theta, p):
    """L(θ) from the JAX function."""
    return _call_value(int(p.handle), theta)


@jit
def value_grad(theta, p, out):
    """L(θ) and out ← ∇L(θ) (``jax.value_and_grad``: one call)."""
    return _call_value_grad(int(p.handle), theta, out)


@jit
def grad(theta, p, out):
    """out ← ∇L(θ)."""
    _call_value_grad(int(p.handle), theta, out)


@jit
def hvp(theta, p, v, out):
    """out ← ∇²L(θ) v (``jvp`` of ``grad``: forward over reverse)."""
    _call_hvp(int(p.handle), theta, v, out)


@jit
def d3(theta, p, u, v, out):
    """out ← ∇³L(θ)[u, v] (``jvp`` of the Hessian-vector product in v, along u)."""
    _call_d3(int(p.handle), theta, u, v, out)


FAMILY = register_family(JaxParams, value=value, grad=grad, hvp=hvp, d3=d3,
                         value_grad=value_grad)
