"""The loss protocol: user families are first-class (validated, cached, sweepable, matrix-free)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
import pytest
import user_families

from stabsim import run_adaptive, run_gd
from stabsim._status import Status
from stabsim.losses import (
    Loss,
    ManifoldFamily,
    Minimalist,
    Network,
    QuadraticRegression,
    ScalarNetwork,
    check_derivatives,
    register_family,
)
from stabsim.maps.gd import reference_point


def test_something_that_is_not_a_loss_is_a_type_error_saying_what_a_loss_is():
    with pytest.raises(TypeError, match="A loss is stabsim.losses.Loss"):
        Loss((1.0, 2.0), 2)
    with pytest.raises(TypeError, match="must be a stabsim.losses.Loss"):
        run_gd("quadratic", [1.0], 0.1, 10)

    class Plain(Loss):  # a subclass that never gives a family
        def __init__(self):
            pass

    with pytest.raises(TypeError, match="A loss is stabsim.losses.Loss"):
        run_gd(Plain(), [1.0], 0.1, 10)


def test_what_is_not_a_loss_is_told_what_would_make_one():
    # each had been "loss must be a stabsim.losses.Loss, got function" (or Rosenbrock, type)
    record = user_families.Rosenbrock(1.0, 5.0, 3.0)
    told = {
        lambda theta: theta @ theta: r"got a function: a Python function of θ is a loss "
                                     r"through stabsim\.from_jax\(f, dim\)",
        record: r"got a record of the registered family Rosenbrock: pass "
                r"stabsim\.losses\.Loss\(record, dim\)",
        user_families.Rosenbrock: r"got the record class Rosenbrock: pass "
                                  r"stabsim\.losses\.Loss\(Rosenbrock\(\.\.\.\), dim\)",
        user_families.rb_value: r"got a Numba-compiled function: give it to "
                                r"stabsim\.losses\.register_family",
    }
    for given, message in told.items():
        with pytest.raises(TypeError, match=rf"loss must be a stabsim\.losses\.Loss, {message}"
                           r".* A loss is stabsim\.losses\.Loss\(record, dim\): .*"
                           r"register_family.*stabsim\.from_jax\(f, dim\)"):
            run_gd(given, [1.0, 1.0, 1.0], 0.1, 10)


def test_a_sweep_loss_named_with_a_dot_is_told_the_module_factory_form():
    from stabsim.sweep.gd_cells import build_loss

    # the list of built-in families alone had been the answer
    with pytest.raises(ValueError, match=r"got 'my_losses\.valley'; a loss of your own is "
                       r"named 'module:factory', here perhaps name = 'my_losses:valley'"):
        build_loss("my_losses.valley", {})
    with pytest.raises(ValueError, match=r"unknown loss 'my_losses\.random'; .*'module:factory'"):
        build_loss("my_losses.random", {})
    with pytest.raises(ValueError, match=r"got 'my_losses'$"):  # no dot: the list alone
        build_loss("my_losses", {})


def test_registration_checks_its_arguments():
    class NotRecord:
        pass

    with pytest.raises(TypeError, match="NamedTuple"):
        register_family(NotRecord, value=user_families.rb_value, grad=user_families.rb_grad,
                        hvp=user_families.rb_hvp, d3=user_families.rb_d3)

    class Rec(NamedTuple):
        a: float

    with pytest.raises(TypeError, match=r"grad must be a Numba-compiled.*numba\.njit"):
        register_family(Rec, value=user_families.rb_value, grad=lambda t, p, o: None,
                        hvp=user_families.rb_hvp, d3=user_families.rb_d3)
    # factor_rows=2 had been accepted, and run_gd(eigensolver="eigh") then raised
    # "TypeError: 'int' object is not callable"
    for argument in ("factor_rows", "examples", "dim_of"):
        with pytest.raises(TypeError, match=rf"{argument} must be a function {argument}\(p\) "
                           r"-> int.*, got 2"):
            register_family(Rec, value=user_families.rb_value, grad=user_families.rb_grad,
                            hvp=user_families.rb_hvp, d3=user_families.rb_d3,
                            **{argument: 2}, **({"subset": user_families.rb_value}
                                                if argument == "examples" else {}))
    with pytest.raises(TypeError, match="registered already"):
        register_family(user_families.Rosenbrock, value=user_families.rb_value,
                        grad=user_families.rb_grad, hvp=user_families.rb_hvp,
                        d3=user_families.rb_d3)


class WrongHvp(NamedTuple):
    a: float
    b: float
    c: float


@numba.njit
def _wrong_hvp(theta, p, v, out):  # the chain's hvp without the −4c y coupling terms
    user_families.rb_hvp(theta, p, v, out)
    out[1] += 4.0 * p.c * theta[1] * v[2]


register_family(WrongHvp, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=_wrong_hvp, d3=user_families.rb_d3)


class ZeroD3(NamedTuple):
    a: float
    b: float
    c: float


register_family(ZeroD3, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=user_families.rb_hvp, d3=user_families.zero_d3)


def test_construction_names_the_derivative_that_disagrees():
    with pytest.raises(ValueError, match="hvp disagrees with finite differences of grad"):
        Loss(WrongHvp(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match="d3 disagrees with finite differences of hvp"):
        Loss(ZeroD3(1.0, 5.0, 3.0), 3)
    Loss(ZeroD3(1.0, 5.0, 3.0), 3, check=False)  # the check can be skipped


class GradOffAtMinimum(NamedTuple):
    a: float
    b: float
    c: float


@numba.njit
def _grad_off_by_1e7(theta, p, out):  # the chain's gradient with 1e-7 added to its first entry
    user_families.rb_grad(theta, p, out)
    out[0] += 1e-7


register_family(GradOffAtMinimum, value=user_families.rb_value, grad=_grad_off_by_1e7,
                hvp=user_families.rb_hvp, d3=user_families.rb_d3)


def test_the_check_says_why_it_cannot_resolve_a_gradient_at_a_minimiser():
    # at a minimiser ∇L·v = 0 while its central difference is truncation and the rounding of
    # L's terms (3.4e-14 on the Minimalist loss at (1, 1), against 3.4e-19 allowed relative
    # to L): no finite difference of L resolves the gradient there, and the refusal says so.
    # Two allowances that passed these were dropped: each also passed wrong gradients (below)
    minimisers = [(Minimalist(), [1.0, 1.0]), (ScalarNetwork(5), np.ones(5)),
                  (Loss(user_families.Rosenbrock(1.0, 5.0, 3.0), 3), [1.0, 1.0, 1.0])]
    for loss, theta in minimisers:
        with pytest.raises(ValueError, match="stationary along the direction checked"):
            check_derivatives(loss, points=[theta])
        check_derivatives(loss)  # at random points
    # a gradient 1e-7 off at the minimiser is refused too, without the hint: its mismatch
    # (1.6e-8 along v) is far beyond the truncation error at the smallest step (2e-12)
    loss = Loss(GradOffAtMinimum(1.0, 5.0, 3.0), 3, check=False)
    with pytest.raises(ValueError, match="grad disagrees with finite differences of value") \
            as refused:
        check_derivatives(loss, points=[[1.0, 1.0, 1.0]])
    assert "stationary" not in str(refused.value)


class ScaledRipple(NamedTuple):
    k: float  # the ripple's value times 1.3, its derivatives not: a gradient 23% off


@numba.njit
def _scaled_ripple_value(theta, p):
    return 1.3 * user_families.ripple_value(theta, p)


register_family(ScaledRipple, value=_scaled_ripple_value, grad=user_families.ripple_grad,
                hvp=user_families.ripple_hvp, d3=user_families.ripple_d3)


class SteepValley(NamedTuple):
    k: float  # L = ½ k θ₀² + ½ θ₁² + θ₁³/6


@numba.njit
def _valley_value(theta, p):
    return 0.5 * p.k * theta[0] ** 2 + 0.5 * theta[1] ** 2 + theta[1] ** 3 / 6.0


@numba.njit
def _valley_grad_off(theta, p, out):  # the θ₁ entry 1e-4 relative off
    out[0] = p.k * theta[0]
    out[1] = (theta[1] + 0.5 * theta[1] ** 2) * (1.0 + 1e-4)


@numba.njit
def _valley_hvp(theta, p, v, out):
    out[0] = p.k * v[0]
    out[1] = (1.0 + theta[1]) * v[1]


@numba.njit
def _valley_d3(theta, p, u, v, out):
    out[0] = 0.0
    out[1] = u[1] * v[1]


register_family(SteepValley, value=_valley_value, grad=_valley_grad_off, hvp=_valley_hvp,
                d3=_valley_d3)


def test_a_wrong_gradient_is_refused_beside_a_steep_direction_and_on_a_short_scale():
    # at (0, 1) the k-direction has zero gradient and curvature k: an allowance growing with
    # h|∇²L v| let this 1e-4 error through at k = 1e6, and an error of a factor 2 at
    # k = 1e10; one of 10 h²|∇³L[v, v, v]|/6 let a 23% error through on a ripple of length
    # scale 1/k = 1.25e-5
    for k in (1.0, 1e6, 1e10):
        loss = Loss(SteepValley(k), 2, check=False)
        with pytest.raises(ValueError, match="grad disagrees with finite differences") \
                as refused:
            check_derivatives(loss, points=[[0.0, 1.0]])
        # |∇L·v| is below h|∇²L v| at large k, but the mismatch is no truncation error: no
        # hint that the point cannot resolve the gradient
        assert "stationary" not in str(refused.value)
    for k in (1e4, 8e4):
        with pytest.raises(ValueError, match="grad disagrees with finite differences"):
            Loss(ScaledRipple(k), 3)


def test_a_loss_on_a_short_length_scale_passes_the_check_and_a_wrong_one_does_not():
    # cos(kθ)/k² with k = 3000: at the first step h ≈ 6e-6 the difference's truncation error
    # (kh)²/6 ≈ 5e-5 is above the 1e-5 allowed; at h/8 it is 64 times smaller
    for k in (1.0, 3000.0, 1e4):
        Loss(user_families.Ripple(k), 3)
        with pytest.raises(ValueError, match="d3 disagrees with finite differences of hvp"):
            Loss(user_families.RippleHalvedD3(k), 3)


class WrongLinearised(NamedTuple):
    a: float
    b: float
    c: float


@numba.njit
def _keep_theta(theta, p):
    return theta.copy()


@numba.njit
def _wrong_hvp_linearised(theta, p, state, v, out):  # an extra v_0 in the first entry
    user_families.rb_hvp(state, p, v, out)
    out[0] += v[0]


register_family(WrongLinearised, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=user_families.rb_hvp, d3=user_families.rb_d3, linearise=_keep_theta,
                hvp_linearised=_wrong_hvp_linearised)


@numba.njit
def _state_is_theta_hvp(theta, p, state, v, out):  # a state of _keep_theta: θ itself
    user_families.rb_hvp(state, p, v, out)


@numba.njit
def _rb_value_grad_linearise(theta, p, out):
    user_families.rb_grad(theta, p, out)
    return user_families.rb_value(theta, p), theta.copy()


@numba.njit
def _grad_off_linearise(theta, p, out):  # an extra 1 in the first entry of the gradient
    user_families.rb_grad(theta, p, out)
    out[0] += 1.0
    return user_families.rb_value(theta, p), theta.copy()


@numba.njit
def _state_off_linearise(theta, p, out):  # the state of another point
    user_families.rb_grad(theta, p, out)
    return user_families.rb_value(theta, p), theta + 1.0


@numba.njit
def _nan_linearise(theta, p):
    return np.full(theta.shape[0], np.nan)


class WrongGradLinearise(NamedTuple):
    a: float
    b: float
    c: float


class WrongStateLinearise(NamedTuple):
    a: float
    b: float
    c: float


class OnlyFromTheGradient(NamedTuple):  # its linearise gives NaN; value_grad_linearise is right
    a: float
    b: float
    c: float


for _record, _fused, _linearise in ((WrongGradLinearise, _grad_off_linearise, _keep_theta),
                                    (WrongStateLinearise, _state_off_linearise, _keep_theta),
                                    (OnlyFromTheGradient, _rb_value_grad_linearise,
                                     _nan_linearise)):
    register_family(_record, value=user_families.rb_value, grad=user_families.rb_grad,
                    hvp=user_families.rb_hvp, d3=user_families.rb_d3, linearise=_linearise,
                    hvp_linearised=_state_is_theta_hvp, value_grad_linearise=_fused)


def test_a_linearisation_is_registered_with_what_uses_it_and_checked():
    # linearise goes with hvp_linearised; value_grad_linearise returns linearise's state, so
    # it needs both. At construction hvp_linearised is checked against hvp, and
    # value_grad_linearise's value and gradient against value and grad and its state through
    # the product hvp_linearised makes from it.
    class Rec(NamedTuple):
        a: float

    rosenbrock = {"value": user_families.rb_value, "grad": user_families.rb_grad,
                  "hvp": user_families.rb_hvp, "d3": user_families.rb_d3}
    with pytest.raises(TypeError, match="linearise and hvp_linearised go together"):
        register_family(Rec, linearise=_keep_theta, **rosenbrock)
    with pytest.raises(TypeError, match="register linearise and hvp_linearised with it"):
        register_family(Rec, value_grad_linearise=_rb_value_grad_linearise, **rosenbrock)
    with pytest.raises(ValueError, match="hvp_linearised disagrees with hvp"):
        Loss(WrongLinearised(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match="value_grad_linearise disagrees with grad "):
        Loss(WrongGradLinearise(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match=r"value_grad_linearise disagrees with hvp \(through"):
        Loss(WrongStateLinearise(1.0, 5.0, 3.0), 3)


@numba.njit
def _column_state(theta, p):  # θ as a d × 1 matrix
    return theta.copy().reshape((theta.shape[0], 1))


@numba.njit
def _column_state_hvp(theta, p, state, v, out):
    user_families.rb_hvp(state[:, 0].copy(), p, v, out)


@numba.njit
def _strided_state(theta, p):  # θ as every other entry of a longer array
    return np.repeat(theta, 2)[::2]


@numba.njit
def _column_value_grad_linearise(theta, p, out):
    user_families.rb_grad(theta, p, out)
    return user_families.rb_value(theta, p), theta.copy().reshape((theta.shape[0], 1))


class ColumnState(NamedTuple):
    a: float
    b: float
    c: float


class StridedState(NamedTuple):
    a: float
    b: float
    c: float


class ColumnFusedState(NamedTuple):
    a: float
    b: float
    c: float


register_family(ColumnState, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=user_families.rb_hvp, d3=user_families.rb_d3, linearise=_column_state,
                hvp_linearised=_column_state_hvp)
register_family(StridedState, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=user_families.rb_hvp, d3=user_families.rb_d3, linearise=_strided_state,
                hvp_linearised=_state_is_theta_hvp)
register_family(ColumnFusedState, value=user_families.rb_value, grad=user_families.rb_grad,
                hvp=user_families.rb_hvp, d3=user_families.rb_d3, linearise=_keep_theta,
                hvp_linearised=_state_is_theta_hvp,
                value_grad_linearise=_column_value_grad_linearise)


def test_a_state_the_engines_cannot_keep_is_refused_at_construction():
    # the engines keep the state in a 1-D C-contiguous float64 array: a d × 1 state passed
    # the check and run_gd then failed to compile (a Numba TypingError)
    with pytest.raises(ValueError, match=r"ColumnState: linearise must return the state as a "
                       r"1-D C-contiguous float64 array, which the engines keep it in; got a "
                       r"2-D float64 array of shape \(3, 1\): flatten it"):
        Loss(ColumnState(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match=r"linearise must return .*; got a 1-D non-contiguous "
                       r"float64 array of shape \(3,\)"):
        Loss(StridedState(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match=r"value_grad_linearise must return the state as a 1-D "
                       r".*got a 2-D float64 array of shape \(3, 1\)"):
        Loss(ColumnFusedState(1.0, 5.0, 3.0), 3)


@numba.njit
def _value_slightly_off(theta, p, out):  # 5e-5 relative at the check points, or so
    user_families.rb_grad(theta, p, out)
    return user_families.rb_value(theta, p) * (1.0 + 5e-5)


@numba.njit
def _grad_slightly_off(theta, p, out):  # one entry 5e-6 relative off
    user_families.rb_grad(theta, p, out)
    out[0] *= 1.0 + 5e-6
    return user_families.rb_value(theta, p)


class ValueSlightlyOff(NamedTuple):
    a: float
    b: float
    c: float


class GradSlightlyOff(NamedTuple):
    a: float
    b: float
    c: float


for _record, _fused in ((ValueSlightlyOff, _value_slightly_off),
                        (GradSlightlyOff, _grad_slightly_off)):
    register_family(_record, value=user_families.rb_value, grad=user_families.rb_grad,
                    hvp=user_families.rb_hvp, d3=user_families.rb_d3, value_grad=_fused)


def test_an_optional_function_is_checked_to_round_off_each_quantity_on_its_own():
    # value_grad computes what value and grad do: it must agree to round-off (1e-9
    # relative), the value against the value and the gradient against the gradient. The
    # finite differences' 1e-5 on value and gradient joined had let a value 5e-5 off and a
    # gradient entry 5e-6 off through (GD then drifted 2e-4 from the right loss in 1000
    # steps)
    with pytest.raises(ValueError, match="value_grad disagrees with value at check point"):
        Loss(ValueSlightlyOff(1.0, 5.0, 3.0), 3)
    with pytest.raises(ValueError, match="value_grad disagrees with grad at check point"):
        Loss(GradSlightlyOff(1.0, 5.0, 3.0), 3)


class Elementwise(NamedTuple):  # its value returns the array 0.5 c θ², not its sum
    c: float


class ValueGradWithoutValue(NamedTuple):  # its value_grad returns nothing
    c: float


@numba.njit
def _elementwise_value(theta, p):
    return 0.5 * p.c * theta ** 2


@numba.njit
def _half_square_value(theta, p):
    return 0.5 * p.c * (theta @ theta)


@numba.njit
def _half_square_grad(theta, p, out):
    out[:] = p.c * theta


@numba.njit
def _half_square_hvp(theta, p, v, out):
    out[:] = p.c * v


@numba.njit
def _half_square_d3(theta, p, u, v, out):
    out[:] = 0.0


@numba.njit
def _grad_only(theta, p, out):
    out[:] = p.c * theta


_half_square = {"grad": _half_square_grad, "hvp": _half_square_hvp, "d3": _half_square_d3}
register_family(Elementwise, value=_elementwise_value, **_half_square)
register_family(ValueGradWithoutValue, value=_half_square_value, value_grad=_grad_only,
                **_half_square)


def test_a_function_that_must_return_the_loss_and_does_not_is_named_with_its_signature():
    # an array from value had reached float() raw: "only 0-dimensional arrays can be
    # converted to Python scalars", naming neither value nor the protocol
    with pytest.raises(ValueError, match=r"Elementwise: value must return the loss as one "
                       r"float, following value\(theta, p\) -> float; got an array of "
                       r"shape \(1,\)"):
        Loss(Elementwise(1.0), 1)
    with pytest.raises(ValueError, match=r"value_grad must return the loss as one float, "
                       r"following value_grad\(theta, p, out\) -> float; got NoneType"):
        Loss(ValueGradWithoutValue(1.0), 2)


class LeastSquares(NamedTuple):
    A: np.ndarray
    b: np.ndarray


@numba.njit
def _ls_value(theta, p):
    r = p.A @ theta - p.b
    return 0.5 * (r @ r)


@numba.njit
def _ls_grad(theta, p, out):
    out[:] = p.A.T @ (p.A @ theta - p.b)


@numba.njit
def _ls_hvp(theta, p, v, out):
    out[:] = p.A.T @ (p.A @ v)


@numba.njit
def _ls_d3(theta, p, u, v, out):
    out[:] = 0.0


@numba.njit
def _ls_value_grad(theta, p, out):  # the same sums, row by row
    out[:] = 0.0
    total = 0.0
    for k in range(p.A.shape[0]):
        r = -p.b[k]
        for i in range(theta.shape[0]):
            r += p.A[k, i] * theta[i]
        total += r * r
        for i in range(theta.shape[0]):
            out[i] += r * p.A[k, i]
    return 0.5 * total


register_family(LeastSquares, value=_ls_value, grad=_ls_grad, hvp=_ls_hvp, d3=_ls_d3,
                value_grad=_ls_value_grad, shapes={"A": ("n", "d"), "b": ("n",)})


def test_an_optional_function_is_accepted_at_a_stationary_point():
    # At the least-squares solution the gradient Aᵀr is ~1e-16 while its terms A_ki r_k are
    # O(1): the two programs' gradients differ by round-off of those terms (3.7e-17), which
    # a check relative to the gradient alone refused. Its floor is
    # that round-off, through the Hessian's scale; elsewhere the check stays at 1e-9
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((12, 4)), rng.standard_normal(12)
    solution = np.linalg.lstsq(A, b, rcond=None)[0]
    Loss(LeastSquares(A, b), 4, check_points=solution[None, :])
    Loss(LeastSquares(A, b), 4)


def test_the_engines_take_the_state_of_a_measured_step_from_the_gradient():
    # At a step whose sharpness they measure on products, GD and the adaptive engine get the
    # gradient and the products' state from one value_grad_linearise (one pass for a
    # network). This family's own linearise gives NaN (so its check fails, and it is built
    # with check=False): a run that called it would end NONFINITE. Its value_grad_linearise
    # returns θ as the state, the state the default linearise gives the plain Rosenbrock
    # family, so both runs do the same arithmetic and agree bit for bit.
    with pytest.raises(ValueError, match="hvp_linearised disagrees with hvp"):
        Loss(OnlyFromTheGradient(1.0, 5.0, 3.0), 3)
    fused = Loss(OnlyFromTheGradient(1.0, 5.0, 3.0), 3, check=False)
    plain = Loss(user_families.Rosenbrock(1.0, 5.0, 3.0), 3)
    theta0 = np.array([0.3, -0.2, 0.5])
    runs = [run_gd(loss, theta0, 0.01, 30) for loss in (fused, plain)]
    assert runs[0].status == Status.OK and runs[1].status == Status.OK
    assert np.array_equal(runs[0].sharpness, runs[1].sharpness)
    assert np.array_equal(runs[0].loss, runs[1].loss)
    runs = [run_adaptive(loss, theta0, 0.01, 30, method="adam") for loss in (fused, plain)]
    assert runs[0].status == Status.OK and runs[1].status == Status.OK
    assert np.array_equal(runs[0].sharpness, runs[1].sharpness)
    assert np.array_equal(runs[0].preconditioned_sharpness, runs[1].preconditioned_sharpness)


def test_parameter_shapes_are_checked_against_dim():
    with pytest.raises(ValueError, match=r"Diagonal.c must have shape \(4,\) for dim = 4"):
        Loss(user_families.Diagonal(np.ones(3)), 4)
    with pytest.raises(ValueError, match="Diagonal.c contains NaN"):
        Loss(user_families.Diagonal(np.array([1.0, np.nan])), 2)
    with pytest.raises(TypeError, match="Diagonal.c must be real"):
        Loss(user_families.Diagonal(np.ones(2) + 0j), 2)
    with pytest.raises(TypeError, match="Diagonal.c must be an array of real numbers"):
        Loss(user_families.Diagonal("abc"), 2)


def test_a_loss_keeps_its_own_copy_of_the_arrays_it_was_given():
    # the caller's arrays (and views of them) changed after construction leave the loss
    # as it was: its value, its gradient and the Python-side attributes alike
    rng = np.random.default_rng(0)
    theta = np.array([1.0, -0.7, 0.4, 1.3])  # |θ_0| ≥ 0.5: Diagonal is finite there
    c = np.arange(1.0, 9.0)[::2]  # a strided view: converted, yet the base is the caller's
    contiguous = np.arange(1.0, 5.0)
    J, Q, z0 = rng.normal(size=(3, 4)), np.tile(np.eye(4), (3, 1, 1)), rng.normal(size=3)
    K = np.zeros((2, 2, 2))
    losses = [Loss(user_families.Diagonal(c), 4, check=False),
              Loss(user_families.Diagonal(contiguous), 4, check=False),
              QuadraticRegression(J, Q, z0),
              ManifoldFamily(contiguous[:2], np.ones((2, 2)), K=K),
              Network((3,), data=(rng.normal(size=(5, 1)), rng.normal(size=(5, 1))))]
    points = [theta, theta, theta, theta, losses[-1].init(0)]
    before = [(loss.value(p), loss.grad(p)) for loss, p in zip(losses, points, strict=True)]
    data_x, data_y = losses[-1].params.X.copy(), losses[-1].params.Y.copy()
    for array in (c, contiguous, J, Q, z0, K):
        array += 1.0
    for loss, p, (value, grad) in zip(losses, points, before, strict=True):
        assert loss.value(p) == value
        np.testing.assert_array_equal(loss.grad(p), grad)
    np.testing.assert_array_equal(losses[2].J + 1.0, J)
    np.testing.assert_array_equal(losses[-1].params.X, data_x)
    np.testing.assert_array_equal(losses[-1].params.Y, data_y)


class Unshaped(NamedTuple):  # Diagonal's kernels, registered without a shape for c
    c: np.ndarray


register_family(Unshaped, value=user_families.diag_value, grad=user_families.diag_grad,
                hvp=user_families.diag_hvp, d3=user_families.zero_d3)


def test_a_number_field_given_as_a_0d_array_is_a_number():
    # np.array(1.0) had become an array of shape (1,) and been refused as an array field
    loss = Loss(user_families.Rosenbrock(np.array(1.0), np.float64(5.0), np.array(3)), 3)
    assert loss.params == (1.0, 5.0, 3.0)
    assert loss.value(np.array([1.0, 1.0, 1.0])) == 0.0


def test_an_array_field_without_a_shape_is_refused():
    # The kernels read c[i] for i < dim: with c shorter than dim they would read past its
    # end, and nothing but a declared shape lets Loss see that.
    with pytest.raises(ValueError, match=r"Unshaped.c is an array of shape \(3,\), and its "
                                         r"family gives no shape for it"):
        Loss(Unshaped(np.ones(3)), 4)
    with pytest.raises(ValueError, match="shapes=.'c'"):
        Loss(Unshaped(np.ones(3)), 3)


def test_named_axes_are_shared_between_fields():
    # the regression model's z0 (n), J (n × d) and Q (n × d × d): a J with another n than z0
    # would make the kernels read past z0's end
    params = QuadraticRegression.random(6, 3, seed=0).params  # d = 6, n = 3
    Loss(params, 6, check=False)  # consistent: accepted
    with pytest.raises(ValueError, match=r"RegressionParams.J must have shape \(2, 6\) for "
                                         r"dim = 6, n = 2 \(from z0\), got \(3, 6\)"):
        Loss(params._replace(z0=np.ones(2)), 6, check=False)
    with pytest.raises(ValueError, match=r"RegressionParams.Q must have shape \(3, 6, 6\)"):
        Loss(params._replace(Q=np.ones((3, 6, 5))), 6, check=False)
    with pytest.raises(ValueError, match=r"J must have shape \(3, 7\) for dim = 7"):
        Loss(params, 7, check=False)


def test_a_dimension_the_parameters_determine_is_checked():
    # A network's dimension is the number of its weights (dim_of), and its data must fit its
    # layer sizes; the manifold family's is m + k.
    network = Network((3, 2), n_samples=5)  # 1·3 + 3 + 3·2 + 2 + 2·1 + 1 = 17
    assert network.dim == 17
    with pytest.raises(ValueError, match="make a loss of dimension 17, got dim = 18"):
        Loss(network.params, 18, check=False)
    with pytest.raises(ValueError, match=r"need X of shape \(N, 1\)"):
        Loss(network.params._replace(X=np.ones((5, 2))), 17, check=False)
    with pytest.raises(ValueError, match=r"NetworkParams.Y must have shape \(5, any\)"):
        Loss(network.params._replace(Y=np.ones((4, 1))), 17, check=False)
    with pytest.raises(ValueError, match="positive integer layer sizes"):
        Loss(network.params._replace(sizes=np.array([1.0, 2.5, 2.0, 1.0])), 17, check=False)
    manifold = ManifoldFamily(np.ones(3), np.ones((3, 2)))  # k = 3, m = 2
    with pytest.raises(ValueError, match="make a loss of dimension 5, got dim = 4"):
        Loss(manifold.params, 4, check=False)


@pytest.mark.parametrize("shape", ["d", 3, ("d", -1), ("d", True), ("d", 1.5), ("d", "")])
def test_a_shape_that_is_not_one_is_refused_at_registration(shape):
    class Rec(NamedTuple):
        c: np.ndarray

    with pytest.raises(TypeError, match=r"shapes\['c'\] must be a tuple"):
        register_family(Rec, value=user_families.diag_value, grad=user_families.diag_grad,
                        hvp=user_families.diag_hvp, d3=user_families.zero_d3,
                        shapes={"c": shape})


def test_run_gd_on_a_user_family_matches_the_same_steps_in_python():
    loss = Loss(user_families.Rosenbrock(1.0, 5.0, 3.0), 3)
    start = np.array([0.3, -0.2, 0.5])
    result = run_gd(loss, start, 1e-3, 50, record_trajectory=True)
    expected = start.copy()
    for _ in range(50):  # the same operations in the same order: identical floats
        expected -= 1e-3 * loss.grad(expected)
    assert np.array_equal(result.theta, expected)
    # sharpness against a dense eigensolver of the family's own Hessian, along the run
    dense = [np.linalg.eigvalsh(loss.hessian(t))[-1] for t in result.trajectory]
    np.testing.assert_allclose(result.sharpness[:, 0], dense, rtol=1e-9)


def test_matrix_free_engine_runs_where_a_dense_hessian_cannot():
    # d = 2·10⁵: the dense Hessian would take 320 GB. At the balanced minimiser w = 1 the
    # Hessian is g gᵀ with g = 1 (r = 0), so the sharpness is exactly d.
    d = 200_000
    loss = ScalarNetwork(d)
    result = run_gd(loss, np.ones(d), 1e-7, 2)
    assert result.status is Status.OK
    # a Ritz value is within its residual of an eigenvalue: |λ − d| ≤ eig_tol·λ (1e-10)
    np.testing.assert_allclose(result.sharpness[:, 0], d, rtol=1e-10)
    with pytest.raises(ValueError, match=r"dim = 200000 takes 320,000,000,000 bytes"):
        run_gd(loss, np.ones(d), 1e-7, 2, eigensolver="eigh")


def test_the_dense_lanczos_memory_check_counts_the_anchor(monkeypatch):
    # Lanczos on a dense Hessian keeps a copy of the last matrix it measured with the start
    # mix: two d × d arrays, 2 · 100² · 8 = 160,000 bytes at d = 100. With 250,000 bytes
    # available (half of it usable) one array would fit and two do not.
    import stabsim.losses._base as base

    monkeypatch.setattr(base, "_available_memory", lambda: 250_000)
    loss = QuadraticRegression.random(100, 10, seed=0)
    with pytest.raises(ValueError, match=r"2 d × d arrays\) at dim = 100 takes 160,000 bytes"):
        run_gd(loss, np.zeros(100), 0.01, 2)


def test_a_crossing_on_a_chunk_boundary_keeps_the_previous_iterate():
    # the pair around the first crossing must be (θ_{t−1}, θ_t) whatever the chunking
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    start = np.zeros(loss.dim)
    whole = run_gd(loss, start, eta, 300, record_trajectory=True)
    t = whole.crossing_step
    assert t is not None and t > 1
    for chunk in (t, t // 2, 1):  # a chunk boundary exactly at the crossing step
        chunked = run_gd(loss, start, eta, 300, chunk_steps=chunk)
        assert chunked.crossing_step == t
        assert np.array_equal(chunked.crossing_pair[0], whole.trajectory[t - 1])  # same floats
        assert np.array_equal(chunked.crossing_pair[1], whole.trajectory[t])
        star = reference_point(loss, chunked)
        # bisection to 1e-12 along a segment of length O(η): S(θ*) − 2/η is round-off
        # (1e-14 relative of S ~ 200) plus the slope of S times the bisection width
        assert abs(np.linalg.eigvalsh(loss.hessian(star))[-1] - 2 / eta) < 1e-9


_USER_MODULE = """
from pathlib import Path
from typing import NamedTuple
import numba, numpy as np
from stabsim.losses import Loss, register_family

class Quartic(NamedTuple):
    c: np.ndarray

@numba.njit(cache=True)
def value(theta, p):
    return SCALE * np.sum(p.c * theta**4) / 4.0

@numba.njit(cache=True)
def grad(theta, p, out):
    out[:] = SCALE * p.c * theta**3

@numba.njit(cache=True)
def hvp(theta, p, v, out):
    out[:] = SCALE * 3.0 * p.c * theta**2 * v

@numba.njit(cache=True)
def d3(theta, p, u, v, out):
    out[:] = SCALE * 6.0 * p.c * theta * u * v

register_family(Quartic, value=value, grad=grad, hvp=hvp, d3=d3, shapes={"c": ("d",)})

def make(d=3):
    return Loss(Quartic(np.arange(1.0, d + 1)), d, min_value=0.0)
"""

_RUN = """
import numpy as np, user_quartic
from stabsim.losses._engines import engine_for
from stabsim.maps import _gd_kernels
from stabsim import run_adaptive, run_gd
loss = user_quartic.make()
result = run_gd(loss, np.ones(3), 0.01, 20)
kernel = engine_for(_gd_kernels.gd_chunk, loss.family)
print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()),
      repr(float(result.sharpness[0, 0])))
"""


def _run_in_new_process(directory):
    # the default cache location (beside the module) is the one under test
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", _RUN], cwd=directory, capture_output=True,
                         text=True, check=True, env={**env, "PYTHONPATH": str(directory)})
    hits, misses, sharpness = out.stdout.split()
    return int(hits), int(misses), float(sharpness)


@pytest.mark.slow
def test_a_user_family_is_cached_on_disk_and_recompiled_when_edited(tmp_path):
    module = tmp_path / "user_quartic.py"
    module.write_text(textwrap.dedent(_USER_MODULE).replace("SCALE", "1.0"))
    # first process compiles; the second loads the engine from the cache beside the module
    assert _run_in_new_process(tmp_path)[:2] == (0, 1)
    hits, misses, sharpness = _run_in_new_process(tmp_path)
    assert (hits, misses) == (1, 0)
    assert sharpness == pytest.approx(9.0, rel=1e-10)  # ∇²L(1) = diag(3c), c = (1, 2, 3)
    assert list((tmp_path / "__pycache__").glob("stabsim-user_quartic.Quartic/*.nbi"))
    # an edit of the family's module makes the cached engine stale: compiled afresh
    module.write_text(textwrap.dedent(_USER_MODULE).replace("SCALE", "2.0"))
    hits, misses, sharpness = _run_in_new_process(tmp_path)
    assert (hits, misses) == (0, 1)
    assert sharpness == pytest.approx(18.0, rel=1e-10)  # the edit doubled the loss


def test_two_projects_with_the_same_module_and_class_cache_apart(tmp_path, monkeypatch):
    # two git worktrees each with a my_losses.Valley had one directory under
    # NUMBA_CACHE_DIR, stabsim-my_losses.Valley, and each process recompiled (3-4.5 s)
    import importlib.util

    import numba

    from stabsim.losses._engines import _cache_directory
    from stabsim.losses._protocol import Family

    directories = []
    for project in ("a", "b"):
        (tmp_path / project).mkdir()
        source = tmp_path / project / "my_losses.py"
        source.write_text("from typing import NamedTuple\n\n\n"
                          "class Valley(NamedTuple):\n    c: float\n")
        spec = importlib.util.spec_from_file_location("my_losses", source)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "my_losses", module)  # inspect finds its file
        spec.loader.exec_module(module)
        family = Family(module.Valley, {}, {}, lambda p: 0, False, False)
        monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "cache"))
        shared = _cache_directory(family)
        monkeypatch.setattr(numba.config, "CACHE_DIR", "")
        beside = _cache_directory(family)
        assert shared.parent == tmp_path / "cache"
        assert shared.name.startswith("stabsim-my_losses.Valley-")
        assert beside == tmp_path / project / "__pycache__" / "stabsim-my_losses.Valley"
        directories.append(shared)
    assert directories[0] != directories[1]


_MAIN_SCRIPT = """
import warnings
from typing import NamedTuple
import numba, numpy as np
from stabsim import run_gd
from stabsim.losses import Loss, register_family
from stabsim.losses._engines import engine_for
from stabsim.spectral import hessian_top_eigenpairs

class Bowl(NamedTuple):
    c: float

@numba.njit
def value(theta, p):
    return 0.5 * p.c * np.sum(theta**2)

@numba.njit
def grad(theta, p, out):
    out[:] = p.c * theta

@numba.njit
def hvp(theta, p, v, out):
    out[:] = p.c * v

@numba.njit
def d3(theta, p, u, v, out):
    out[:] = 0.0

register_family(Bowl, value=value, grad=grad, hvp=hvp, d3=d3)
loss = Loss(Bowl(2.0), 2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run_gd(loss, np.ones(2), 0.1, 5)
    print(run_gd(loss, np.ones(2), 0.2, 5).sharpness[0, 0])
    engine_for(hessian_top_eigenpairs, loss.family)  # another kernel's copy (compiled lazily)
print(sum("defined in the script run as __main__" in str(w.message) for w in caught))
"""


@pytest.mark.slow
def test_a_family_of_a_script_run_as_main_is_not_cached_and_says_so(tmp_path):
    # Numba pickles a class of __main__ by value into the index: no later process found its
    # entry, so each compiled again (4.4 s) and added an entry of 240 kB to
    # __pycache__/stabsim-__main__.Bowl
    import stabsim

    (tmp_path / "script.py").write_text(_MAIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    path = os.pathsep.join([str(tmp_path), str(Path(stabsim.__file__).parents[1])])
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**env, "PYTHONPATH": path})
    sharpness, warned = out.stdout.split()
    assert float(sharpness) == pytest.approx(2.0, rel=1e-12)
    assert warned == "1"  # once, for two runs and two kernels
    assert not list(tmp_path.rglob("stabsim-*"))


def test_an_index_naming_a_class_that_no_longer_exists_is_a_cache_miss(tmp_path):
    # an index written by an older version names a record class that is gone: Numba's own
    # loader raises while unpickling it; stabsim's treats it as empty (and recompiles)
    import pickle

    import numba

    from stabsim._jit import _TolerantIndex

    index = _TolerantIndex(str(tmp_path), "kernel-1.py311", ("a",))
    (tmp_path / "kernel-1.py311.nbi").write_bytes(
        pickle.dumps(numba.__version__) + pickle.dumps(("a", {user_families.Rosenbrock: 1})
                                                       ).replace(b"user_families", b"gone_mod"))
    assert index._load_index() == {}
    (tmp_path / "kernel-1.py311.nbi").write_bytes(pickle.dumps(numba.__version__) + b"garbage")
    assert index._load_index() == {}


_SWEEP_TOML = """
[sweep]
model = "gd"
method = "gd"
steps = 30

[loss]
name = "user_quartic:make"
d = 3

[params]
theta0 = [1.0, -0.5, 0.25]

[grid]
eta = [0.05, 0.1]
scale = [0.5, 1.0]
"""


@pytest.mark.slow
def test_a_user_family_is_swept_through_run_sweep_and_the_cli(tmp_path, monkeypatch):
    from stabsim.sweep import run_sweep

    (tmp_path / "user_quartic.py").write_text(textwrap.dedent(_USER_MODULE).replace("SCALE",
                                                                                    "1.0"))
    config = tmp_path / "quartic.toml"
    config.write_text(_SWEEP_TOML)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_quartic

    ds = run_sweep(config).to_xarray()
    # each cell against run_gd on the same loss: the same engine, the same floats
    loss = user_quartic.make()
    for eta in (0.05, 0.1):
        for scale in (0.5, 1.0):
            start = scale * np.array([1.0, -0.5, 0.25])
            gd = run_gd(loss, start, eta, 30)
            cell = ds.sel(eta=eta, scale=scale)
            assert float(cell["final_loss"]) == gd.loss[-1]
            assert float(cell["max_rel_sharpness"]) == np.max(gd.sharpness[:, 0]) * eta / 2
    out = tmp_path / "quartic.nc"
    done = subprocess.run([sys.executable, "-m", "stabsim.cli", "sweep", str(config), "-o",
                           str(out), "--no-progress"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert out.exists()


def test_an_edit_of_any_file_with_compiled_code_makes_every_kernel_cache_stale(tmp_path):
    # Numba alone would keep an engine compiled against an old loss kernel in another file
    import shutil

    import stabsim

    package = tmp_path / "stabsim"
    shutil.copytree(Path(stabsim.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))

    def stamp():
        code = "from stabsim._jit import compiled_sources_stamp; print(compiled_sources_stamp())"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(tmp_path)}
                              ).stdout.strip()

    before = stamp()
    with open(package / "plot" / "gd.py", "a") as handle:  # no compiled code in it
        handle.write("\n# an edit\n")
    assert stamp() == before
    with open(package / "losses" / "kernels" / "quadratic.py", "a") as handle:
        handle.write("\n# an edit\n")
    assert stamp() != before


def test_a_user_function_with_an_object_mode_block_runs_in_the_engines():
    # The protocol calls a user's function through its own dispatcher: one that leaves
    # nopython mode cannot be compiled into a kernel's code. Lanczos (d > SMALL_DIM, so not
    # eigh) on ∇²L = diag(c) must find max c and its unit vector.
    from stabsim.spectral import SMALL_DIM, tracked_top_eigenpair

    d = SMALL_DIM + 8
    c = np.linspace(0.5, 3.0, d)
    loss = Loss(user_families.ObjectModeDiagonal(c), d)
    lam, u = tracked_top_eigenpair(loss, np.full(d, 0.7))
    assert lam == pytest.approx(3.0, rel=1e-10)  # Lanczos tolerance: 1e-10 relative residual
    assert abs(u[-1]) == pytest.approx(1.0, rel=1e-9)


def test_the_engines_run_a_fastmath_family_function_as_its_dispatcher_compiles_it():
    # A spliced function is compiled with its caller's options: the engines (no fastmath)
    # summed the regression model's gradient in strict order, not in the vectorised order of
    # its own compilation. Through the dispatcher, a step of the engine is θ − η∇L with ∇L
    # exactly as value_grad computes it when called alone.
    from stabsim.losses.kernels.regression import value_grad
    from stabsim.maps import step

    loss = QuadraticRegression.random(40, 3, seed=2)
    theta = np.random.default_rng(3).normal(size=40)
    grad = np.empty(40)
    value_grad(theta, loss.params, grad)
    assert np.array_equal(step(loss, theta, 0.25).theta, theta - 0.25 * grad)


def test_a_nonfinite_check_result_of_a_family_names_dim():
    # a family's functions read a record sized by dim: a wrong dim gives non-finite results
    # as often as disagreeing ones, and the message says to check it (a built-in's layout
    # is its own: no such hint)
    from stabsim.losses import Minimalist
    from stabsim.losses._check import _finite

    family = Loss(user_families.Rosenbrock(1.0, 100.0, 0.0), 3)
    with pytest.raises(ValueError, match=r"check point 0 .*; check that dim = 3 matches the "
                                         r"parameters, or pass check_points="):
        _finite(family, "grad", np.array([np.nan]), 0)
    with pytest.raises(ValueError, match=r"out\?\); pass check_points="):
        _finite(Minimalist(), "grad", np.array([np.nan]), 0)


def test_stabsim_families_pickle_as_their_registration_and_a_users_by_value():
    import pickle

    network = Network((3,), degree=2, n_samples=4)
    again = pickle.loads(pickle.dumps(network))
    # the module's own functions (which the on-disk cache serves), not copies
    assert again.family is network.family
    theta = network.init(0)
    assert again.value(theta) == network.value(theta)
    user = Loss(user_families.Rosenbrock(1.0, 100.0, 0.5), 3, check=False)
    copy = pickle.loads(pickle.dumps(user))
    # by value: the process it goes to may not import the family's module
    assert copy.family is not user.family and copy.family.record is user.family.record
    point = np.array([0.3, -0.2, 0.9])
    assert copy.d3(point, point, point).tolist() == user.d3(point, point, point).tolist()
