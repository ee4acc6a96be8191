"""Continuous-time dynamics, integrated with ``scipy.integrate.solve_ivp``."""

from ._sdcp import SDCPSolution, solve_sdcp
from ._solve import FlowResult, solve_flow
from .adaptive import AdaptiveFlowResult, rmsprop_flow, scalar_rmsprop_flow
from .central import CentralFlowResult, central_flow
from .gradient import gradient_flow
from .manifold import ManifoldFlowResult, manifold_flow
from .manifold_geometry import (
    LimitPoint,
    TangentSpace,
    limit_map,
    tangent_projection,
    tangent_space,
)
from .modified import modified_flow
from .reduced_ode import (
    ReducedODEResult,
    reduced_fixed_point,
    reduced_hamiltonian,
    small_orbit_period,
    solve_reduced_ode,
)

__all__ = [
    "AdaptiveFlowResult",
    "rmsprop_flow",
    "scalar_rmsprop_flow",
    "CentralFlowResult",
    "FlowResult",
    "central_flow",
    "LimitPoint",
    "SDCPSolution",
    "ManifoldFlowResult",
    "ReducedODEResult",
    "TangentSpace",
    "gradient_flow",
    "modified_flow",
    "limit_map",
    "manifold_flow",
    "reduced_fixed_point",
    "reduced_hamiltonian",
    "small_orbit_period",
    "solve_reduced_ode",
    "solve_sdcp",
    "solve_flow",
    "tangent_projection",
    "tangent_space",
]
