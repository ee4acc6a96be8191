"""The :class:`Loss` interface every loss in stabsim presents.

A loss is data, not code: an integer family ``kind``, a packed float64 parameter array
``params``, the dimension ``dim``, and a bundle of compiled kernels. Built-in families all
share :data:`BUILTIN_KERNELS` (integer dispatch, cached on disk); a user-defined loss
carries its own bundle, and :func:`specialise` recompiles a kernel for it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .._jit import rebind
from .._validate import finite_array
from . import _dispatch


class LossKernels(NamedTuple):
    """The compiled functions of a loss, each taking ``(kind, theta, p, ...)``.

    ``value_grad_hess(kind, theta, p, grad_out, hess_out, factor_out) -> value`` evaluates
    all three at once (families that share work between them fuse it; the others call the
    three), with the Hessian split as ``hess_out + factor_outᵀ factor_out``: ``factor_out``
    has :attr:`Loss.factor_rows` rows, and a low-rank part left as a factor costs
    Hessian-vector products O(rows · d) instead of a dense O(rows · d²) sum.
    """

    value: object
    grad: object
    hvp: object
    hess: object
    d3: object
    value_grad_hess: object


BUILTIN_KERNELS = LossKernels(
    _dispatch.value, _dispatch.grad, _dispatch.hvp, _dispatch.hess, _dispatch.d3,
    _dispatch.value_grad_hess,
)

#: the global names through which kernels call a loss (see :func:`specialise`)
KERNEL_NAMES = LossKernels("loss_value", "loss_grad", "loss_hvp", "loss_hess", "loss_d3",
                           "loss_value_grad_hess")


@functools.lru_cache(maxsize=256)
def _rebound(kernel, kernels: LossKernels):
    return rebind(
        kernel,
        **{
            name: fn
            for name, fn in zip(KERNEL_NAMES, kernels, strict=True)
            if name in kernel.py_func.__code__.co_names
        },
    )


def specialise(kernel, loss: Loss):
    """Return ``kernel`` compiled for ``loss``.

    Kernels reach a loss only through the globals ``loss_value``, ``loss_grad``,
    ``loss_hvp``, ``loss_hess`` and ``loss_d3`` (imported from ``losses._dispatch``), and
    never through a nested kernel that does. For a built-in loss the cached kernel is
    returned as is; for a user-defined loss those names are rebound to the loss's own
    functions and the copy is compiled once per (kernel, loss kernels) pair.
    """
    if loss.kernels is BUILTIN_KERNELS:
        return kernel
    return _rebound(kernel, loss.kernels)


class Loss:
    """A C³ loss L: R^d → R with exact derivatives.

    Parameters
    ----------
    kind : int
        Family code understood by ``kernels`` (see ``losses._dispatch``).
    params : array_like
        Packed family parameters (float64, 1-D).
    dim : int
        Dimension d of θ.
    kernels : LossKernels
        Compiled functions; the built-in dispatch by default.

    Attributes
    ----------
    min_value : float or None
        The infimum of L when it is known in closed form (used by GD on sqrt(L − min L)).
    factor_rows : int
        Rows of the factor F that ``kernels.value_grad_hess`` leaves out of the dense
        Hessian (∇²L = H_dense + FᵀF); 0 when it returns the whole Hessian densely.
    """

    name = "loss"
    min_value: float | None = None
    factor_rows: int = 0

    def __init__(self, kind: int, params, dim: int, kernels: LossKernels = BUILTIN_KERNELS):
        self.kind = int(kind)
        self.params = np.ascontiguousarray(params, dtype=np.float64).ravel()
        self.dim = int(dim)
        self.kernels = kernels

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def check_point(self, theta, name: str = "theta") -> np.ndarray:
        """Return ``theta`` as a finite float64 vector of length ``dim``, or raise."""
        return finite_array(name, theta, shape=(self.dim,))

    def value(self, theta) -> float:
        """L(θ)."""
        theta = self.check_point(theta)
        return float(self.kernels.value(self.kind, theta, self.params))

    def grad(self, theta) -> np.ndarray:
        """∇L(θ), shape (d,)."""
        theta = self.check_point(theta)
        out = np.empty(self.dim)
        self.kernels.grad(self.kind, theta, self.params, out)
        return out

    def hvp(self, theta, v) -> np.ndarray:
        """∇²L(θ) v, shape (d,)."""
        theta = self.check_point(theta)
        v = self.check_point(v, "v")
        out = np.empty(self.dim)
        self.kernels.hvp(self.kind, theta, self.params, v, out)
        return out

    def hessian(self, theta) -> np.ndarray:
        """∇²L(θ), shape (d, d)."""
        theta = self.check_point(theta)
        out = np.empty((self.dim, self.dim))
        self.kernels.hess(self.kind, theta, self.params, out)
        return out

    def d3(self, theta, u, v) -> np.ndarray:
        """∇³L(θ)[u, v], the vector with entries Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k."""
        theta = self.check_point(theta)
        u = self.check_point(u, "u")
        v = self.check_point(v, "v")
        out = np.empty(self.dim)
        self.kernels.d3(self.kind, theta, self.params, u, v, out)
        return out
