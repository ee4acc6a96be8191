"""stabsim: the self-stabilisation theory of gradient descent at the edge of stability.

The names below are the curated API; each is imported from its module on first use, so
``import stabsim`` stays light (SciPy's integrators load only when a flow is used).

- losses: :class:`Quadratic`, :class:`SelfRegulatingPotential`, :class:`ReducedMapRealisation`,
  :class:`ScalarNetwork`, :class:`Minimalist`, :class:`QuadraticRegression`,
  :class:`ManifoldFamily`, :class:`Network`, :class:`UVModel`, :func:`make_loss`; any loss,
  a user's included: :class:`Loss` of a record registered with :func:`register_family`, or
  a JAX function through :func:`from_jax`;
- exact methods and maps: :func:`run_gd`, :func:`step`, :func:`reference_point`,
  :func:`stability_threshold`, :func:`run_adaptive` (RMSProp, Adam, Scalar RMSProp),
  :func:`adaptive_threshold`, :func:`run_reduced`, :func:`run_reduced_ensemble`,
  :func:`proj_M`, :func:`constrained_trajectory`; mini-batch SGD on finite sums:
  :func:`run_sgd`, :func:`batch_sharpness`;
- flows: :func:`gradient_flow`, :func:`modified_flow`, :func:`central_flow`,
  :func:`manifold_flow`, :func:`limit_map`;
- spectra: :func:`top_eigenpairs`, :func:`sharpness`, :func:`eos_constants`;
- comparisons and sweeps: :func:`compare` (GD and the theory in lockstep),
  :func:`compare_manifold_flow`, :func:`run_sweep`;
- :class:`Status`, the outcome code every result carries; every result is a
  :class:`stabsim._result.Result` (status, message, success, counters, parameters,
  ``to_xarray()``).
"""

from ._lazy import lazy_names

__version__ = "0.1.0"

_API = {
    "stabsim.losses": ("Quadratic", "SelfRegulatingPotential", "ReducedMapRealisation",
                       "ScalarNetwork", "Minimalist", "QuadraticRegression", "ManifoldFamily",
                       "Network", "UVModel", "Loss", "register_family", "make_loss",
                       "from_jax"),
    "stabsim.maps": ("run_gd", "step", "reference_point", "stability_threshold", "run_reduced",
                     "run_reduced_ensemble", "proj_M", "constrained_trajectory", "run_sgd",
                     "batch_sharpness", "run_adaptive", "adaptive_threshold"),
    "stabsim.flows": ("gradient_flow", "modified_flow", "central_flow", "manifold_flow",
                      "limit_map"),
    "stabsim.spectral": ("top_eigenpairs", "sharpness", "eos_constants"),
    "stabsim.comparison": ("compare",),
    "stabsim.compare_manifold": ("compare_manifold_flow",),
    "stabsim.sweep": ("run_sweep",),
    "stabsim._status": ("Status",),
}
_HOME = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_HOME)
__getattr__, __dir__ = lazy_names(__name__, _HOME)
