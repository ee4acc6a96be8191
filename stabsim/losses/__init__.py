"""Losses with exact derivatives, and the protocol that makes any loss one.

A loss is :class:`Loss` ``(record, dim)``: ``record`` is an instance of a parameter record
class registered with :func:`register_family` beside the family's Numba-compiled functions
(value, gradient, Hessian-vector product, ∇³L[u, v]; a dense Hessian optionally). stabsim's
own families are registered the same way (``losses/kernels/<family>.py``) and wrapped in
classes that build their record: :class:`Quadratic`, :class:`QuadraticRegression`, ... Built-in
families can also be made by name with :func:`make_loss`.
"""

from ._base import Loss, check_dense_memory
from ._check import check_derivatives
from ._protocol import Family, family_of, register_family
from ._registry import FAMILIES, make_loss
from .from_jax import from_jax
from .manifold import ManifoldFamily
from .minimalist import Minimalist
from .network import Network, UVModel
from .potential import SelfRegulatingPotential
from .quadratic import Quadratic
from .realisation import ReducedMapRealisation
from .regression import QuadraticRegression
from .scalar_network import ScalarNetwork

__all__ = [
    "FAMILIES",
    "Family",
    "Loss",
    "ManifoldFamily",
    "Minimalist",
    "Network",
    "Quadratic",
    "QuadraticRegression",
    "ReducedMapRealisation",
    "ScalarNetwork",
    "SelfRegulatingPotential",
    "UVModel",
    "check_dense_memory",
    "check_derivatives",
    "family_of",
    "from_jax",
    "make_loss",
    "register_family",
]
