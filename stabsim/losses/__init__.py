"""Synthetic C³ losses with exact derivatives.

Every loss is a :class:`Loss`: value, gradient, Hessian-vector product, dense Hessian and
the third-derivative contraction ∇³L[u, v], evaluated by cached Numba kernels. Built-in
families can also be made by name with :func:`make_loss`; user-defined losses come in
through :class:`CustomLoss`.
"""

from ._base import BUILTIN_KERNELS, Loss, LossKernels, specialise
from ._registry import FAMILIES, make_loss
from .custom import CustomLoss
from .manifold import ManifoldFamily
from .minimalist import Minimalist
from .potential import SelfRegulatingPotential
from .quadratic import Quadratic
from .realisation import ReducedMapRealisation
from .regression import QuadraticRegression
from .scalar_network import ScalarNetwork

__all__ = [
    "BUILTIN_KERNELS",
    "FAMILIES",
    "CustomLoss",
    "Loss",
    "LossKernels",
    "ManifoldFamily",
    "Minimalist",
    "Quadratic",
    "QuadraticRegression",
    "ReducedMapRealisation",
    "ScalarNetwork",
    "SelfRegulatingPotential",
    "make_loss",
    "specialise",
]
