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
from .kernels import (
    manifold,
    minimalist,
    potential,
    quadratic,
    realisation,
    regression,
    scalar_network,
)

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
    if kind == POTENTIAL_1D:
        return potential.value(theta, p)
    if kind == REALISATION:
        return realisation.value(theta, p)
    if kind == SCALAR_NETWORK:
        return scalar_network.value(theta, p)
    if kind == MINIMALIST:
        return minimalist.value(theta, p)
    if kind == REGRESSION:
        return regression.value(theta, p)
    if kind == MANIFOLD:
        return manifold.value(theta, p)
    return np.nan


@jit
def grad(kind, theta, p, out):
    """out ← ∇L(θ)."""
    if kind == QUADRATIC:
        quadratic.grad(theta, p, out)
    elif kind == POTENTIAL_1D:
        potential.grad(theta, p, out)
    elif kind == REALISATION:
        realisation.grad(theta, p, out)
    elif kind == SCALAR_NETWORK:
        scalar_network.grad(theta, p, out)
    elif kind == MINIMALIST:
        minimalist.grad(theta, p, out)
    elif kind == REGRESSION:
        regression.grad(theta, p, out)
    elif kind == MANIFOLD:
        manifold.grad(theta, p, out)
    else:
        out[:] = np.nan


@jit
def hvp(kind, theta, p, v, out):
    """out ← ∇²L(θ) v."""
    if kind == QUADRATIC:
        quadratic.hvp(theta, p, v, out)
    elif kind == POTENTIAL_1D:
        potential.hvp(theta, p, v, out)
    elif kind == REALISATION:
        realisation.hvp(theta, p, v, out)
    elif kind == SCALAR_NETWORK:
        scalar_network.hvp(theta, p, v, out)
    elif kind == MINIMALIST:
        minimalist.hvp(theta, p, v, out)
    elif kind == REGRESSION:
        regression.hvp(theta, p, v, out)
    elif kind == MANIFOLD:
        manifold.hvp(theta, p, v, out)
    else:
        out[:] = np.nan


@jit
def hess(kind, theta, p, out):
    """out ← ∇²L(θ)."""
    if kind == QUADRATIC:
        quadratic.hess(theta, p, out)
    elif kind == POTENTIAL_1D:
        potential.hess(theta, p, out)
    elif kind == REALISATION:
        realisation.hess(theta, p, out)
    elif kind == SCALAR_NETWORK:
        scalar_network.hess(theta, p, out)
    elif kind == MINIMALIST:
        minimalist.hess(theta, p, out)
    elif kind == REGRESSION:
        regression.hess(theta, p, out)
    elif kind == MANIFOLD:
        manifold.hess(theta, p, out)
    else:
        out[:] = np.nan


@jit
def d3(kind, theta, p, u, v, out):
    """out ← ∇³L(θ)[u, v] = Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k."""
    if kind == QUADRATIC:
        quadratic.d3(theta, p, u, v, out)
    elif kind == POTENTIAL_1D:
        potential.d3(theta, p, u, v, out)
    elif kind == REALISATION:
        realisation.d3(theta, p, u, v, out)
    elif kind == SCALAR_NETWORK:
        scalar_network.d3(theta, p, u, v, out)
    elif kind == MINIMALIST:
        minimalist.d3(theta, p, u, v, out)
    elif kind == REGRESSION:
        regression.d3(theta, p, u, v, out)
    elif kind == MANIFOLD:
        manifold.d3(theta, p, u, v, out)
    else:
        out[:] = np.nan


@jit
def value_grad_hess(kind, theta, p, grad_out, out, factor_out):
    """L(θ), grad_out ← ∇L(θ) and ∇²L(θ) = out + factor_outᵀ factor_out.

    ``factor_out`` has the family's ``factor_rows`` rows (0 for all but the regression
    model, whose Gauss–Newton factor J(θ)/√n goes there); families fuse the work they share.
    """
    if kind == REGRESSION:
        return regression.value_grad_hess(theta, p, grad_out, out, factor_out)
    hess(kind, theta, p, out)
    grad(kind, theta, p, grad_out)
    return value(kind, theta, p)
