"""Self-regulating potential f(x) = x²/sqrt(1 + x²) in one dimension
(record :class:`PotentialParams`, empty).

With ``r = hypot(1, x) = sqrt(1 + x²)`` every derivative is a product of bounded ratios, so
nothing overflows for large |x|:

- f(x)    = |x| (|x|/r)
- f'(x)   = x(2 + x²)/r³        = (x/r)(1 + 1/r²)
- f''(x)  = (2 − x²)/r⁵         = (3/r² − 1)/r³
- f'''(x) = 3x(x² − 4)/r⁷       = 3 (x/r)(1 − 5/r²)/r⁴
"""

import math
from typing import NamedTuple

from ..._jit import jit
from .._protocol import register_family


class PotentialParams(NamedTuple):
    """No parameters."""


@jit
def value(theta, p):
    """f(x)."""
    x = abs(theta[0])
    return x * (x / math.hypot(1.0, x))


@jit
def grad(theta, p, out):
    """out ← f'(x) = x(2 + x²)/(1 + x²)^{3/2}."""
    x = theta[0]
    r = math.hypot(1.0, x)
    out[0] = (x / r) * (1.0 + 1.0 / (r * r))


@jit
def _second(x):
    """f''(x) = (2 − x²)/(1 + x²)^{5/2}."""
    r = math.hypot(1.0, x)
    return (3.0 / (r * r) - 1.0) / (r * r * r)


@jit
def hvp(theta, p, v, out):
    """out ← f''(x) v."""
    out[0] = _second(theta[0]) * v[0]


@jit
def hess(theta, p, out):
    """out ← [[f''(x)]]."""
    out[0, 0] = _second(theta[0])


@jit
def d3(theta, p, u, v, out):
    """out ← f'''(x) u v with f'''(x) = 3x(x² − 4)/(1 + x²)^{7/2}."""
    x = theta[0]
    r = math.hypot(1.0, x)
    r2 = r * r
    out[0] = 3.0 * (x / r) * (1.0 - 5.0 / r2) / (r2 * r2) * u[0] * v[0]


FAMILY = register_family(
    PotentialParams, value=value, grad=grad, hvp=hvp, d3=d3, hess=hess
)
