"""Exact realisation of the reduced (x, y) map (docs/theory.md §1).

L(x, w) = ½ (2/η + b w) x² − (α/b) w with θ = (x, w).
GD at step η on L is exactly the reduced map in (x, y = b w) with β = b².

Derivatives (all others vanish):
∂L/∂x = (2/η + b w) x, ∂L/∂w = ½ b x² − α/b;
∂²L/∂x² = 2/η + b w, ∂²L/∂x∂w = b x;  ∂³L/∂x²∂w = b.
"""

from typing import NamedTuple

from ..._jit import jit
from .._protocol import register_family


class RealisationParams(NamedTuple):
    """η, α and b of the realisation."""

    eta: float
    alpha: float
    b: float


@jit
def value(theta, p):
    """L(x, w)."""
    x = theta[0]
    w = theta[1]
    eta, alpha, b = p.eta, p.alpha, p.b
    return 0.5 * (2.0 / eta + b * w) * x * x - (alpha / b) * w


@jit
def grad(theta, p, out):
    """out ← ((2/η + b w) x, ½ b x² − α/b)."""
    x = theta[0]
    w = theta[1]
    eta, alpha, b = p.eta, p.alpha, p.b
    out[0] = (2.0 / eta + b * w) * x
    out[1] = 0.5 * b * x * x - alpha / b


@jit
def hvp(theta, p, v, out):
    """out ← [[2/η + b w, b x], [b x, 0]] v."""
    x = theta[0]
    w = theta[1]
    eta, b = p.eta, p.b
    out[0] = (2.0 / eta + b * w) * v[0] + b * x * v[1]
    out[1] = b * x * v[0]


@jit
def hess(theta, p, out):
    """out ← [[2/η + b w, b x], [b x, 0]]."""
    x = theta[0]
    w = theta[1]
    eta, b = p.eta, p.b
    out[0, 0] = 2.0 / eta + b * w
    out[0, 1] = b * x
    out[1, 0] = b * x
    out[1, 1] = 0.0


@jit
def d3(theta, p, u, v, out):
    """out ← (b (u_x v_w + u_w v_x), b u_x v_x), from ∂³L/∂x²∂w = b."""
    b = p.b
    out[0] = b * (u[0] * v[1] + u[1] * v[0])
    out[1] = b * u[0] * v[0]


FAMILY = register_family(
    RealisationParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess
)
