"""Synthetic C³ losses with exact derivatives.

Every loss is a :class:`Loss`: value, gradient, Hessian-vector product, dense Hessian and
the third-derivative contraction ∇³L[u, v], evaluated by cached Numba kernels.
"""

from ._base import BUILTIN_KERNELS, Loss, LossKernels, specialise
from .quadratic import Quadratic

__all__ = ["BUILTIN_KERNELS", "Loss", "LossKernels", "Quadratic", "specialise"]
