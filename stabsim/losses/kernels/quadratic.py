"""Quadratic loss L(θ) = ½ θᵀAθ with A symmetric, packed as ``p = A.ravel()``."""

from ..._jit import jit


@jit
def value(theta, p):
    d = theta.shape[0]
    total = 0.0
    for i in range(d):
        row = 0.0
        for j in range(d):
            row += p[i * d + j] * theta[j]
        total += theta[i] * row
    return 0.5 * total


@jit
def hvp(theta, p, v, out):
    d = theta.shape[0]
    for i in range(d):
        acc = 0.0
        for j in range(d):
            acc += p[i * d + j] * v[j]
        out[i] = acc


@jit
def grad(theta, p, out):
    hvp(theta, p, theta, out)


@jit
def hess(theta, p, out):
    d = theta.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = p[i * d + j]


@jit
def d3(theta, p, u, v, out):
    out[:] = 0.0
