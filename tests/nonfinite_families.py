"""Loss families whose derivatives turn NaN past a cut, for the non-finite tests.

``Ramp``: L(θ) = −a θ₀ + ½ Σ_{i≥1} θ_i², so gradient flow moves θ₀ up at rate a (in flow
time) while the rest decays; past ``θ₀ > cut`` one derivative is NaN:

- ``part="hessian"``: the Hessian-vector product puts NaN in row 0 for a v with v₁ ≠ 0, so
  the dense Hessian (columns H e_j) has H[0, 1] = NaN in its upper triangle only, which
  LAPACK's eigh (reading the lower one) would not see;
- ``part="d3"``: ∇³L (zero on this loss) is NaN;
- ``part="grad"``: ∇L is NaN (and so the flows' right-hand sides).

The value stays finite everywhere, so nothing but the named derivative is NaN.
"""

from typing import NamedTuple

import numba
import numpy as np

from stabsim.losses import Loss, register_family

PARTS = {"hessian": 1, "d3": 2, "grad": 3}


class Ramp(NamedTuple):
    a: float
    cut: float
    part: int


@numba.njit(cache=True)
def ramp_value(theta, p):
    total = -p.a * theta[0]
    for i in range(1, theta.shape[0]):
        total += 0.5 * theta[i] * theta[i]
    return total


@numba.njit(cache=True)
def ramp_grad(theta, p, out):
    out[0] = -p.a
    for i in range(1, theta.shape[0]):
        out[i] = theta[i]
    if p.part == 3 and theta[0] > p.cut:
        out[0] = np.nan


@numba.njit(cache=True)
def ramp_hvp(theta, p, v, out):
    out[0] = 0.0
    for i in range(1, theta.shape[0]):
        out[i] = v[i]
    if p.part == 1 and theta[0] > p.cut and v[1] != 0.0:
        out[0] = np.nan


@numba.njit(cache=True)
def ramp_d3(theta, p, u, v, out):
    out[:] = 0.0
    if p.part == 2 and theta[0] > p.cut:
        out[:] = np.nan


RAMP = register_family(Ramp, value=ramp_value, grad=ramp_grad, hvp=ramp_hvp, d3=ramp_d3)


def ramp(part, *, a=1.0, cut=1.0, dim=2):
    """A Ramp loss of dimension ``dim`` whose ``part`` is NaN past θ₀ > ``cut``."""
    return Loss(Ramp(a, cut, PARTS[part]), dim, check=False)
