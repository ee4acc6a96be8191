"""Continuous-time dynamics, integrated with ``scipy.integrate.solve_ivp``."""

from ._solve import FlowResult, solve_flow
from .gradient import gradient_flow

__all__ = ["FlowResult", "gradient_flow", "solve_flow"]
