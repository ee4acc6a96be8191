"""Quadratic loss L(θ) = ½ θᵀAθ with A symmetric: record :class:`QuadraticParams`."""

from typing import NamedTuple

import numpy as np

from ..._jit import jit
from ..._linalg import dot
from .._protocol import register_family


class QuadraticParams(NamedTuple):
    """The symmetric matrix A, shape (d, d)."""

    A: np.ndarray


@jit
def value(theta, p):
    """½ θᵀAθ."""
    total = 0.0
    for i in range(theta.shape[0]):
        total += theta[i] * dot(p.A[i], theta)
    return 0.5 * total


@jit
def hvp(theta, p, v, out):
    """out ← A v."""
    for i in range(theta.shape[0]):
        out[i] = dot(p.A[i], v)


@jit
def grad(theta, p, out):
    """out ← Aθ."""
    hvp(theta, p, theta, out)


@jit
def hess(theta, p, out):
    """out ← A."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = p.A[i, j]


@jit
def d3(theta, p, u, v, out):
    """out ← 0: the third derivative vanishes."""
    out[:] = 0.0


@jit
def hessian_drift(theta, p, anchor, limit):
    """0: the Hessian A is the same at every point (so GD's matrix-free Lanczos mixes its
    start once, at its first measurement)."""
    return 0.0


FAMILY = register_family(QuadraticParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess,
                         hessian_drift=hessian_drift, shapes={"A": ("d", "d")})
