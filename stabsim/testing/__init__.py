"""Public Hypothesis strategies for property tests of stabsim and of users' own predictions.

Requires the test dependency ``hypothesis``; the main package never imports this module.
"""

from . import strategies
from .strategies import *  # noqa: F403  (the public strategies, listed once in strategies.__all__)

__all__ = strategies.__all__
