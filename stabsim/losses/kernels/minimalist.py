"""Minimalist example ℓ(x, y) = ¼ (x²y² − 1)² of Zhu et al.
(record :class:`MinimalistParams`, empty).

With r = x²y² − 1:
∂ℓ/∂x = r x y², ∂ℓ/∂y = r x² y;
∂²ℓ/∂x² = 2x²y⁴ + r y², ∂²ℓ/∂x∂y = 2x³y³ + 2 r x y, ∂²ℓ/∂y² = 2x⁴y² + r x²;
∂³ℓ/∂x³ = 6 x y⁴, ∂³ℓ/∂x²∂y = 10 x²y³ + 2 r y, ∂³ℓ/∂x∂y² = 10 x³y² + 2 r x,
∂³ℓ/∂y³ = 6 x⁴ y.
"""

from typing import NamedTuple

from ..._jit import jit
from .._protocol import register_family


class MinimalistParams(NamedTuple):
    """No parameters."""


@jit
def value(theta, p):
    """ℓ(x, y)."""
    q = theta[0] * theta[1]
    r = q * q - 1.0
    return 0.25 * r * r


@jit
def grad(theta, p, out):
    """out ← (r x y², r x² y)."""
    x = theta[0]
    y = theta[1]
    q = x * y
    r = q * q - 1.0
    out[0] = r * q * y
    out[1] = r * q * x


@jit
def _hessian_entries(x, y):
    """(ℓ_xx, ℓ_xy, ℓ_yy)."""
    q = x * y
    r = q * q - 1.0
    return (
        2.0 * q * q * y * y + r * y * y,
        2.0 * q * q * q + 2.0 * r * q,
        2.0 * q * q * x * x + r * x * x,
    )


@jit
def hvp(theta, p, v, out):
    """out ← ∇²ℓ v."""
    hxx, hxy, hyy = _hessian_entries(theta[0], theta[1])
    out[0] = hxx * v[0] + hxy * v[1]
    out[1] = hxy * v[0] + hyy * v[1]


@jit
def hess(theta, p, out):
    """out ← ∇²ℓ."""
    hxx, hxy, hyy = _hessian_entries(theta[0], theta[1])
    out[0, 0] = hxx
    out[0, 1] = hxy
    out[1, 0] = hxy
    out[1, 1] = hyy


@jit
def d3(theta, p, u, v, out):
    """out_i ← Σ_jk ∂³ℓ/∂θ_i∂θ_j∂θ_k u_j v_k."""
    x = theta[0]
    y = theta[1]
    q = x * y
    r = q * q - 1.0
    txxx = 6.0 * q * y * y * y
    txxy = 10.0 * q * q * y + 2.0 * r * y
    txyy = 10.0 * q * q * x + 2.0 * r * x
    tyyy = 6.0 * q * x * x * x
    out[0] = txxx * u[0] * v[0] + txxy * (u[0] * v[1] + u[1] * v[0]) + txyy * u[1] * v[1]
    out[1] = txxy * u[0] * v[0] + txyy * (u[0] * v[1] + u[1] * v[0]) + tyyy * u[1] * v[1]


@jit
def hessian_parts(theta, p, grad_out, hess_out, factor_out):
    """ℓ, grad_out ← ∇ℓ and hess_out ← ∇²ℓ in one pass (the sweep's per-step call)."""
    x = theta[0]
    y = theta[1]
    q = x * y
    r = q * q - 1.0
    grad_out[0] = r * q * y
    grad_out[1] = r * q * x
    hxx, hxy, hyy = _hessian_entries(x, y)
    hess_out[0, 0] = hxx
    hess_out[0, 1] = hxy
    hess_out[1, 0] = hxy
    hess_out[1, 1] = hyy
    return 0.25 * r * r


FAMILY = register_family(
    MinimalistParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess,
    hessian_parts=hessian_parts,
)
