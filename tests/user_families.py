"""Loss families defined the way a user defines them: a record, njit functions, a registration.

Imported by the tests (each family is registered once per process).
"""

from typing import NamedTuple

import numba
import numpy as np

from stabsim.losses import register_family
from stabsim.losses.kernels import regression, scalar_network


class Rosenbrock(NamedTuple):
    """L(x, y, z) = (a − x)² + b (y − x²)² + c (z − y²)² (a Rosenbrock chain).

    Third derivatives: L_xxx = 24 b x, L_xxy = −4 b, L_yyy = 24 c y, L_yyz = −4 c.
    """

    a: float
    b: float
    c: float


@numba.njit(cache=True)
def rb_value(theta, p):
    x, y, z = theta[0], theta[1], theta[2]
    return (p.a - x) ** 2 + p.b * (y - x * x) ** 2 + p.c * (z - y * y) ** 2


@numba.njit(cache=True)
def rb_grad(theta, p, out):
    x, y, z = theta[0], theta[1], theta[2]
    out[0] = -2.0 * (p.a - x) - 4.0 * p.b * x * (y - x * x)
    out[1] = 2.0 * p.b * (y - x * x) - 4.0 * p.c * y * (z - y * y)
    out[2] = 2.0 * p.c * (z - y * y)


@numba.njit(cache=True)
def rb_hess(theta, p, out):
    x, y, z = theta[0], theta[1], theta[2]
    out[:, :] = 0.0
    out[0, 0] = 2.0 - 4.0 * p.b * (y - 3.0 * x * x)
    out[0, 1] = out[1, 0] = -4.0 * p.b * x
    out[1, 1] = 2.0 * p.b - 4.0 * p.c * (z - 3.0 * y * y)
    out[1, 2] = out[2, 1] = -4.0 * p.c * y
    out[2, 2] = 2.0 * p.c


@numba.njit(cache=True)
def rb_hvp(theta, p, v, out):
    x, y, z = theta[0], theta[1], theta[2]
    hxx = 2.0 - 4.0 * p.b * (y - 3.0 * x * x)
    hyy = 2.0 * p.b - 4.0 * p.c * (z - 3.0 * y * y)
    out[0] = hxx * v[0] - 4.0 * p.b * x * v[1]
    out[1] = -4.0 * p.b * x * v[0] + hyy * v[1] - 4.0 * p.c * y * v[2]
    out[2] = -4.0 * p.c * y * v[1] + 2.0 * p.c * v[2]


@numba.njit(cache=True)
def rb_d3(theta, p, u, v, out):
    x, y, b, c = theta[0], theta[1], p.b, p.c
    out[0] = 24.0 * b * x * u[0] * v[0] - 4.0 * b * (u[0] * v[1] + u[1] * v[0])
    out[1] = -4.0 * b * u[0] * v[0] + 24.0 * c * y * u[1] * v[1]
    out[1] -= 4.0 * c * (u[1] * v[2] + u[2] * v[1])
    out[2] = -4.0 * c * u[1] * v[1]


ROSENBROCK = register_family(Rosenbrock, value=rb_value, grad=rb_grad, hvp=rb_hvp, d3=rb_d3,
                             hess=rb_hess)


class RosenbrockNoHess(NamedTuple):
    """The same chain without a dense ``hess``: the generic one (d products) is used."""

    a: float
    b: float
    c: float


register_family(RosenbrockNoHess, value=rb_value, grad=rb_grad, hvp=rb_hvp, d3=rb_d3)


class Diagonal(NamedTuple):
    """L = ½ Σ c_i θ_i², whose (0, 0) curvature turns NaN once |θ_0| < 0.5."""

    c: np.ndarray


@numba.njit(cache=True)
def diag_value(theta, p):
    return 0.5 * np.sum(p.c * theta**2)


@numba.njit(cache=True)
def diag_grad(theta, p, out):
    out[:] = p.c * theta


@numba.njit(cache=True)
def diag_hvp(theta, p, v, out):
    out[:] = p.c * v
    out[0] = (np.nan if abs(theta[0]) < 0.5 else p.c[0]) * v[0]


@numba.njit(cache=True)
def diag_hess(theta, p, out):
    out[:, :] = np.diag(p.c)
    if abs(theta[0]) < 0.5:
        out[0, 0] = np.nan


@numba.njit(cache=True)
def zero_d3(theta, p, u, v, out):
    out[:] = 0.0


register_family(Diagonal, value=diag_value, grad=diag_grad, hvp=diag_hvp, d3=zero_d3,
                hess=diag_hess, shapes={"c": ("d",)})


class Bowl(NamedTuple):
    """L(x, z) = ½ (1 + 2x²) z², the same loss as ManifoldFamily(c=[1], s=[[4]])."""


@numba.njit(cache=True)
def bowl_value(theta, p):
    return 0.5 * (1.0 + 2.0 * theta[0] ** 2) * theta[1] ** 2


@numba.njit(cache=True)
def bowl_grad(theta, p, out):
    x, z = theta[0], theta[1]
    out[0] = 2.0 * x * z * z
    out[1] = (1.0 + 2.0 * x * x) * z


@numba.njit(cache=True)
def bowl_hvp(theta, p, v, out):
    x, z = theta[0], theta[1]
    out[0] = 2.0 * z * z * v[0] + 4.0 * x * z * v[1]
    out[1] = 4.0 * x * z * v[0] + (1.0 + 2.0 * x * x) * v[1]


@numba.njit(cache=True)
def bowl_d3(theta, p, u, v, out):
    # nonzero third derivatives: L_xzz = 4x, L_xxz = 4z
    x, z = theta[0], theta[1]
    out[0] = 4.0 * x * u[1] * v[1] + 4.0 * z * (u[0] * v[1] + u[1] * v[0])
    out[1] = 4.0 * x * (u[0] * v[1] + u[1] * v[0]) + 4.0 * z * u[0] * v[0]


register_family(Bowl, value=bowl_value, grad=bowl_grad, hvp=bowl_hvp, d3=bowl_d3)


class ObjectModeDiagonal(NamedTuple):
    """L = ½ Σ c_i θ_i², its Hessian-vector product computed by NumPy in object mode (a user's
    function the engines must call as compiled, not splice into their own code)."""

    c: np.ndarray


def _scaled(c, v, out):
    np.multiply(c, v, out=out)


@numba.njit(cache=True)
def objmode_hvp(theta, p, v, out):
    with numba.objmode():
        _scaled(p.c, v, out)


register_family(ObjectModeDiagonal, value=diag_value, grad=diag_grad, hvp=objmode_hvp,
                d3=zero_d3, shapes={"c": ("d",)})


class Ripple(NamedTuple):
    """L = Σ_i cos(k θ_i)/k², a loss on the short length scale 1/k: ∂_i L = −sin(k θ_i)/k,
    ∂_ii L = −cos(k θ_i), ∂_iii L = k sin(k θ_i) (no mixed derivatives)."""

    k: float


@numba.njit(cache=True)
def ripple_value(theta, p):
    return np.sum(np.cos(p.k * theta)) / p.k**2


@numba.njit(cache=True)
def ripple_grad(theta, p, out):
    for i in range(theta.shape[0]):
        out[i] = -np.sin(p.k * theta[i]) / p.k


@numba.njit(cache=True)
def ripple_hvp(theta, p, v, out):
    for i in range(theta.shape[0]):
        out[i] = -np.cos(p.k * theta[i]) * v[i]


@numba.njit(cache=True)
def ripple_d3(theta, p, u, v, out):
    for i in range(theta.shape[0]):
        out[i] = p.k * np.sin(p.k * theta[i]) * u[i] * v[i]


@numba.njit(cache=True)
def ripple_d3_halved(theta, p, u, v, out):  # wrong by a factor ½
    ripple_d3(theta, p, u, v, out)
    for i in range(theta.shape[0]):
        out[i] *= 0.5


register_family(Ripple, value=ripple_value, grad=ripple_grad, hvp=ripple_hvp, d3=ripple_d3)


class RippleHalvedD3(NamedTuple):
    k: float


register_family(RippleHalvedD3, value=ripple_value, grad=ripple_grad, hvp=ripple_hvp,
                d3=ripple_d3_halved)


class UpperOnlyRegression(NamedTuple):
    """The second-order regression model's record (and kernels), with a ``hessian_parts`` that
    leaves NaN below the diagonal of the dense part: what the protocol allows, since the
    engines read only its upper triangle."""

    z0: np.ndarray
    J: np.ndarray
    Q: np.ndarray


@numba.njit(cache=True)
def upper_only_hessian_parts(theta, p, grad_out, hess_out, factor_out):
    value = regression.hessian_parts(theta, p, grad_out, hess_out, factor_out)
    for i in range(hess_out.shape[0]):
        for j in range(i):
            hess_out[i, j] = np.nan
    return value


@numba.njit(cache=True)
def upper_only_subset(p, indices):
    return UpperOnlyRegression(p.z0[indices], p.J[indices], p.Q[indices])


register_family(UpperOnlyRegression, value=regression.value, grad=regression.grad,
                hvp=regression.hvp, d3=regression.d3, hess=regression.hess,
                value_grad=regression.value_grad,
                hessian_parts=upper_only_hessian_parts, factor_rows=regression.factor_rows,
                prefers_dense=True, subset=upper_only_subset, examples=regression.examples,
                shapes={"z0": ("n",), "J": ("n", "d"), "Q": ("n", "d", "d")})


class LeftOutIdentity(NamedTuple):
    """L(θ) = ½ a θ₀² + ½ c |θ|²: the factor √a e₀ᵀ and the dense part c I, which
    ``hessian_parts_within`` leaves out below its allowance, giving ``claimed`` as the bound
    on its 2-norm c (a true bound only where claimed ≥ c). ``fault`` 1 makes it write 3a on
    the diagonal of hess_out where it leaves the part out, 2 the factor 2√a e₀ᵀ there (faults
    the construction check must find); 0 neither."""

    a: float
    c: float
    claimed: float
    fault: float


@numba.njit(cache=True)
def left_out_value(theta, p):
    return 0.5 * p.a * theta[0] ** 2 + 0.5 * p.c * (theta @ theta)


@numba.njit(cache=True)
def left_out_grad(theta, p, out):
    out[:] = p.c * theta
    out[0] += p.a * theta[0]


@numba.njit(cache=True)
def left_out_hvp(theta, p, v, out):
    out[:] = p.c * v
    out[0] += p.a * v[0]


@numba.njit(cache=True)
def left_out_d3(theta, p, u, v, out):
    out[:] = 0.0


@numba.njit(cache=True)
def left_out_factor(theta, p, grad_out, factor_out):
    left_out_grad(theta, p, grad_out)
    factor_out[0, :] = 0.0
    factor_out[0, 0] = np.sqrt(p.a)
    return left_out_value(theta, p)


@numba.njit(cache=True)
def left_out_parts(theta, p, grad_out, hess_out, factor_out):
    hess_out[:, :] = 0.0
    for i in range(hess_out.shape[0]):
        hess_out[i, i] = p.c
    return left_out_factor(theta, p, grad_out, factor_out)


@numba.njit(cache=True)
def left_out_parts_within(theta, p, grad_out, hess_out, factor_out, allowance):
    if p.claimed < allowance:
        value = left_out_factor(theta, p, grad_out, factor_out)
        if p.fault == 1.0:
            for i in range(hess_out.shape[0]):
                hess_out[i, i] = 3.0 * p.a
        elif p.fault == 2.0:
            factor_out[0, 0] = 2.0 * np.sqrt(p.a)
        return value, p.claimed
    return left_out_parts(theta, p, grad_out, hess_out, factor_out), -1.0


register_family(LeftOutIdentity, value=left_out_value, grad=left_out_grad, hvp=left_out_hvp,
                d3=left_out_d3, hessian_parts=left_out_parts,
                hessian_parts_within=left_out_parts_within, factor_rows=lambda p: 1,
                prefers_dense=True)


class CosineValley(NamedTuple):
    """L(θ) = ½ a θ₀² + (1 − cos θ₁) + ½ c θ₂²: the Hessian diag(a, cos θ₁, c) moves only in
    its entry (1, 1), by |cos θ₁ − cos θ₁'| ≤ |θ₁ − θ₁'|. ``hessian_drift`` returns
    ``factor`` |θ₁ − θ₁'| (a bound for factor ≥ 1; factor 0 claims a Hessian that never
    moves); with ``early`` 1 it returns 0 wherever that exceeds the limit (a number at most
    the limit: a false claim that the Hessian moved that little)."""

    a: float
    c: float
    factor: float
    early: float


@numba.njit(cache=True)
def valley_value(theta, p):
    return 0.5 * p.a * theta[0] ** 2 + 1.0 - np.cos(theta[1]) + 0.5 * p.c * theta[2] ** 2


@numba.njit(cache=True)
def valley_grad(theta, p, out):
    out[0] = p.a * theta[0]
    out[1] = np.sin(theta[1])
    out[2] = p.c * theta[2]


@numba.njit(cache=True)
def valley_hvp(theta, p, v, out):
    out[0] = p.a * v[0]
    out[1] = np.cos(theta[1]) * v[1]
    out[2] = p.c * v[2]


@numba.njit(cache=True)
def valley_d3(theta, p, u, v, out):
    out[0] = 0.0
    out[1] = -np.sin(theta[1]) * u[1] * v[1]
    out[2] = 0.0


@numba.njit(cache=True)
def valley_drift(theta, p, anchor, limit):
    bound = p.factor * abs(theta[1] - anchor[1])
    if p.early == 1.0 and bound > limit:
        return 0.0
    return bound


register_family(CosineValley, value=valley_value, grad=valley_grad, hvp=valley_hvp,
                d3=valley_d3, hessian_drift=valley_drift)


class FrobeniusValley(NamedTuple):
    """The loss of :class:`CosineValley`, registered with ``hessian_frobenius`` instead of
    ``hessian_drift``: ‖diag(a, cos θ₁, c)‖_F = √(a² + cos² θ₁ + c²), times ``factor`` (a
    bound for factor ≥ 1 + 1e-14, which covers its seven roundings; factor 0.5 a false
    one)."""

    a: float
    c: float
    factor: float


@numba.njit(cache=True)
def valley_frobenius(theta, p):
    return p.factor * np.sqrt(p.a * p.a + np.cos(theta[1]) ** 2 + p.c * p.c)


register_family(FrobeniusValley, value=valley_value, grad=valley_grad, hvp=valley_hvp,
                d3=valley_d3, hessian_frobenius=valley_frobenius)


class DriftOnlyScalarNetwork(NamedTuple):
    """The scalar network's own kernels, registered with ``hessian_drift`` and without
    ``hessian_frobenius``: GD's measurement by Weyl's inequality alone."""


register_family(DriftOnlyScalarNetwork, value=scalar_network.value,
                grad=scalar_network.value_grad, hvp=scalar_network.hvp, d3=scalar_network.d3,
                value_grad=scalar_network.value_grad,
                hessian_drift=scalar_network.hessian_drift)
