"""Integer dispatch over the built-in loss families.

Kernels that run a loss (GD engines, spectral tools) call these five functions with the
family's integer ``kind``. Because the kind is data rather than a function argument, those
kernels compile once for all built-in families and are cached on disk; a user-defined loss
swaps these names for its own functions with :func:`stabsim._jit.rebind`.

To add a family: write ``kernels/<family>.py`` with the five kernels, give it a constant
below, and add one branch to each function.
"""

import numpy as np

from .._jit import jit
from .kernels import quadratic

QUADRATIC = 0
POTENTIAL_1D = 1
REALISATION = 2
SCALAR_NETWORK = 3
MINIMALIST = 4
REGRESSION = 5
MANIFOLD = 6


@jit
def value(kind, theta, p):
    """L(θ) for family ``kind``; NaN for an unknown kind."""
    if kind == QUADRATIC:
        return quadratic.value(theta, p)
    return np.nan


@jit
def grad(kind, theta, p, out):
    """out ← ∇L(θ)."""
    if kind == QUADRATIC:
        quadratic.grad(theta, p, out)
    else:
        out[:] = np.nan


@jit
def hvp(kind, theta, p, v, out):
    """out ← ∇²L(θ) v."""
    if kind == QUADRATIC:
        quadratic.hvp(theta, p, v, out)
    else:
        out[:] = np.nan


@jit
def hess(kind, theta, p, out):
    """out ← ∇²L(θ)."""
    if kind == QUADRATIC:
        quadratic.hess(theta, p, out)
    else:
        out[:] = np.nan


@jit
def d3(kind, theta, p, u, v, out):
    """out ← ∇³L(θ)[u, v] = Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k."""
    if kind == QUADRATIC:
        quadratic.d3(theta, p, u, v, out)
    else:
        out[:] = np.nan
