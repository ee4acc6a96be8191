"""User-defined losses through one protocol of Numba-compiled functions."""

from __future__ import annotations

import numba
import numpy as np
from numba.core.dispatcher import Dispatcher

from .._jit import JIT_FLAGS
from .._validate import finite_array, nonnegative_int
from ._base import Loss, LossKernels

#: kind code of every user-defined loss (their adapters ignore it)
CUSTOM = -1

# Adapters close over the user's functions, so Numba cannot cache them (nor any kernel
# specialised for a custom loss): they are compiled once per process.
_ADAPTER_FLAGS = {key: val for key, val in JIT_FLAGS.items() if key != "cache"}

_PROTOCOL = {
    "value": "value(theta, p) -> float",
    "grad": "grad(theta, p, out)",
    "hvp": "hvp(theta, p, v, out)",
    "hess": "hess(theta, p, out)",
    "d3": "d3(theta, p, u, v, out)",
}


def _require_dispatcher(name, fn):
    if not isinstance(fn, Dispatcher):
        raise ValueError(
            f"{name} must be a Numba-compiled function with signature {_PROTOCOL[name]}, got "
            f"{type(fn).__name__}; decorate it with @numba.njit (e.g. `{name} = "
            f"numba.njit({getattr(fn, '__name__', name)})`)"
        )


def _hvp_from_hess(hess):
    """An hvp(theta, p, v, out) that forms the dense Hessian (allocates d × d per call)."""

    @numba.njit(**_ADAPTER_FLAGS)  # closes over `hess`: not cacheable
    def hvp(theta, p, v, out):
        d = theta.shape[0]
        h = np.empty((d, d))
        hess(theta, p, h)
        for i in range(d):
            acc = 0.0
            for j in range(d):
                acc += h[i, j] * v[j]
            out[i] = acc

    return hvp


def _adapters(value, grad, hvp, hess, d3) -> LossKernels:
    """The user's functions wrapped in the built-in ``(kind, theta, p, ...)`` signatures."""

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def value_k(kind, theta, p):
        return value(theta, p)

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def grad_k(kind, theta, p, out):
        grad(theta, p, out)

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def hvp_k(kind, theta, p, v, out):
        hvp(theta, p, v, out)

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def hess_k(kind, theta, p, out):
        hess(theta, p, out)

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def d3_k(kind, theta, p, u, v, out):
        d3(theta, p, u, v, out)

    @numba.njit(**_ADAPTER_FLAGS)  # closes over user functions: compiled per process
    def value_grad_hess_k(kind, theta, p, grad_out, out, factor_out):  # factor_rows = 0
        hess(theta, p, out)
        grad(theta, p, grad_out)
        return value(theta, p)

    return LossKernels(value_k, grad_k, hvp_k, hess_k, d3_k, value_grad_hess_k)


class CustomLoss(Loss):
    """A user-defined C³ loss given by Numba-compiled functions.

    The protocol is that of the built-in kernels without their ``kind`` argument; ``theta``,
    ``p``, ``u``, ``v`` are C-contiguous float64 arrays and each function writes its result
    into ``out`` (it must not allocate ``out`` itself):

    - ``value(theta, p) -> float``          L(θ)
    - ``grad(theta, p, out)``               out ← ∇L(θ), shape (d,)
    - ``hess(theta, p, out)``               out ← ∇²L(θ), shape (d, d)
    - ``d3(theta, p, u, v, out)``           out_i ← Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k
    - ``hvp(theta, p, v, out)`` (optional)  out ← ∇²L(θ) v; by default it is built from
      ``hess``, which costs a d × d allocation and O(d²) per call: supply it when d is large.

    Every engine and spectral tool accepts the loss: :func:`stabsim.losses.specialise`
    recompiles their kernels with these functions swapped in. Those kernels are compiled
    once per process (Numba cannot cache a kernel built from user functions), so the first
    call in each process pays the compilation.

    At construction every function is run once at ``test_point`` and must return finite
    values of the right shape.

    Parameters
    ----------
    value, grad, hess, d3, hvp : numba dispatchers
        The functions above, made with ``numba.njit``.
    params : array_like, optional
        Parameters passed to every function as ``p`` (float64, flattened; empty by default).
    dim : int
        Dimension d of θ.
    test_point : array_like, optional
        Where the functions are tried at construction (default ``linspace(-0.5, 0.7, d)``).
    min_value : float, optional
        The infimum of L, if known.

    Examples
    --------
    The Rosenbrock function L(x, y) = (a − x)² + b (y − x²)² with ``p = [a, b]``:

    >>> import numba
    >>> @numba.njit
    ... def value(theta, p):
    ...     x, y = theta[0], theta[1]
    ...     return (p[0] - x) ** 2 + p[1] * (y - x * x) ** 2
    >>> @numba.njit
    ... def grad(theta, p, out):
    ...     x, y = theta[0], theta[1]
    ...     out[0] = -2.0 * (p[0] - x) - 4.0 * p[1] * x * (y - x * x)
    ...     out[1] = 2.0 * p[1] * (y - x * x)
    >>> @numba.njit
    ... def hess(theta, p, out):
    ...     x, y = theta[0], theta[1]
    ...     out[0, 0] = 2.0 - 4.0 * p[1] * (y - 3.0 * x * x)
    ...     out[0, 1] = out[1, 0] = -4.0 * p[1] * x
    ...     out[1, 1] = 2.0 * p[1]
    >>> @numba.njit
    ... def d3(theta, p, u, v, out):
    ...     # nonzero third derivatives: L_xxx = 24 b x, L_xxy = −4 b
    ...     x, b = theta[0], p[1]
    ...     out[0] = 24.0 * b * x * u[0] * v[0] - 4.0 * b * (u[0] * v[1] + u[1] * v[0])
    ...     out[1] = -4.0 * b * u[0] * v[0]
    >>> loss = CustomLoss(value, grad, hess, d3, params=[1.0, 100.0], dim=2, min_value=0.0)
    >>> float(loss.value([1.0, 1.0]))
    0.0
    """

    name = "custom"

    def __init__(
        self, value, grad, hess, d3, hvp=None, *, params=(), dim, test_point=None, min_value=None
    ):
        for name, fn in (("value", value), ("grad", grad), ("hess", hess), ("d3", d3)):
            _require_dispatcher(name, fn)
        if hvp is None:
            hvp = _hvp_from_hess(hess)
        else:
            _require_dispatcher("hvp", hvp)
        dim = nonnegative_int("dim", dim, minimum=1)
        params = finite_array("params", params).ravel()
        super().__init__(CUSTOM, params, dim, _adapters(value, grad, hvp, hess, d3))
        self.min_value = None if min_value is None else float(min_value)
        if test_point is None:
            test_point = np.linspace(-0.5, 0.7, dim)
        self._try(self.check_point(test_point, "test_point"))

    def _try(self, theta):
        """Run every function at ``theta``; raise ValueError naming the one that fails.

        Outputs are pre-filled with NaN, so an entry the function did not write is caught.
        """
        d, p, kind = self.dim, self.params, self.kind
        u = np.linspace(1.0, 2.0, d)
        v = np.linspace(-1.0, 0.5, d)
        k = self.kernels
        calls = {
            "value": lambda: k.value(kind, theta, p),
            "grad": lambda: _filled(k.grad, np.full(d, np.nan), kind, theta, p),
            "hvp": lambda: _filled(k.hvp, np.full(d, np.nan), kind, theta, p, v),
            "hess": lambda: _filled(k.hess, np.full((d, d), np.nan), kind, theta, p),
            "d3": lambda: _filled(k.d3, np.full(d, np.nan), kind, theta, p, u, v),
        }
        for name, call in calls.items():
            try:
                result = call()
            except Exception as exc:  # compilation or runtime failure inside the user code
                raise ValueError(
                    f"{name} failed at the test point; it must follow {_PROTOCOL[name]} "
                    f"with float64 arrays: {type(exc).__name__}: {exc}"
                ) from exc
            if name == "value" and np.ndim(result) != 0:
                raise ValueError(f"value must return a float, got {type(result).__name__}")
            if not np.all(np.isfinite(result)):
                raise ValueError(
                    f"{name} gave a non-finite result at the test point {theta} (does it write "
                    "every entry of out?); pass test_point= where the loss is finite"
                )

    def __repr__(self) -> str:
        return f"CustomLoss(dim={self.dim})"


def _filled(kernel, out, *args):
    """Call ``kernel(*args, out)`` and return ``out``."""
    kernel(*args, out)
    return out
