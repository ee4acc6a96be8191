"""Conventions of every dataset stabsim exports, and the netCDF writer.

Every ``to_xarray`` and the sweep result go through :func:`finish`, which gives each data
variable and coordinate the CF attributes ``long_name`` and ``units`` from :data:`VARIABLES`
and the dataset the provenance attributes of :func:`provenance`. Coded variables (a run's
status, a sweep cell's regime, the phase of the reduced map) carry CF ``flag_values`` and
``flag_meanings``; a quantity that may not exist (a step that never happened, a cycle past
the last one) is NaN, never a sentinel such as −1.

Units: time axes count steps (``"steps"``). Every other quantity is ``"1"``
(dimensionless): the losses, sharpnesses, parameters and iterates of the models stabsim
simulates are abstract numbers with no physical unit.

Writing and reading back: :func:`write_netcdf` writes netCDF-4 when netCDF4 or h5netcdf is
installed, else netCDF-3 (SciPy's engine), whose only integers are int8, int16 and int32.
There an integer variable or attribute of another type (int64, unsigned) is stored as int32
when every value fits, else as float64, exact for magnitudes below 2⁵³ (a larger one is
refused with a ``ValueError``); its type is recorded, for a variable in its attribute
``stabsim_dtype``, for attributes in the attribute ``stabsim_attribute_dtypes`` of their
variable or dataset (a JSON object, name → type). :func:`read_netcdf` (which ``stabsim plot``
reads a sweep with) restores the recorded types; another reader gets the same numbers in
int32 or float64. With any engine, a whole-number variable that :func:`integer_on_disk`
stores as int32 is written as float64 (NaN where missing) if a value is outside int32.
"""

from __future__ import annotations

import datetime
import enum
import importlib.util
import json
import keyword

import numpy as np

STEPS = "steps"
DIMENSIONLESS = "1"

#: name of an exported variable or coordinate → (long_name, units)
VARIABLES = {
    # time axes and indices
    "step": ("step", STEPS),
    "tau": ("slow time eta^2 t", STEPS),
    "trajectory": ("trajectory index", DIMENSIONLESS),
    "parity": ("parity of the step (0: t, 1: t + 1)", DIMENSIONLESS),
    # exact GD (GDResult)
    "loss": ("loss L(theta_t)", DIMENSIONLESS),
    "grad_norm": ("gradient norm |grad L(theta_t)|", DIMENSIONLESS),
    "sharpness": ("top Hessian eigenvalues of L at theta_t", DIMENSIONLESS),
    "eig_residual": ("eigenpair residual |Hu - lambda u|", DIMENSIONLESS),
    "theta": ("iterate theta_t", DIMENSIONLESS),
    "buf": ("momentum state (theta_t for heavy ball, b_t+1 for Nesterov)", DIMENSIONLESS),
    # flows (FlowResult and its subclasses), the limit map and the projection
    "lambda2": ("second Hessian eigenvalue", DIMENSIONLESS),
    "sigma2": ("central flow oscillation variance sigma^2 (tr Sigma)", DIMENSIONLESS),
    "grad_norm2": ("squared gradient norm |grad L|^2", DIMENSIONLESS),
    "at_eos": ("S held by the central flow (1): at 2/eta or, from a start above 2/eta, "
               "above it (where S stopped falling; from t = 0 with max_critical > 1); "
               "gradient flow (0)", DIMENSIONLESS),
    "n_critical": ("eigenvalues held by the central flow (at 2/eta, or above it from a "
                   "start above 2/eta)", DIMENSIONLESS),
    "entry_steps": ("step at which the flow began holding one more eigenvalue (at the "
                    "threshold, or above it from a start above it)", STEPS),
    "exit_steps": ("step at which the flow released a held eigenvalue", STEPS),
    "eigenvalues": ("top Hessian eigenvalues at w, descending (NaN beyond the dimension)",
                    DIMENSIONLESS),
    "sigma_eigenvalues": ("eigenvalues of the central flow oscillation covariance Sigma, "
                          "descending", DIMENSIONLESS),
    "rel_gap": ("relative eigengap (lambda1 - lambda2)/lambda1", DIMENSIONLESS),
    "x2": ("X = x^2 of the reduced ODE", DIMENSIONLESS),
    "log_x2": ("ln X = ln x^2 of the reduced ODE (the variable integrated)", DIMENSIONLESS),
    "flow_time": ("gradient-flow time s at the stop", DIMENSIONLESS),
    "sharpness_excess": ("sharpness excess (S - 2/eta)_+", DIMENSIONLESS),
    "orthogonality": ("|u . grad L|", DIMENSIONLESS),
    # the central flow's semidefinite complementarity problem (SDCPSolution)
    "S": ("SDCP solution S (Sigma in the basis of the critical eigenvectors)", DIMENSIONLESS),
    "residual": ("relative natural residual of the SDCP", DIMENSIONLESS),
    # the constrained trajectory (ConstrainedResult)
    "theta_dagger": ("constrained trajectory theta_dagger_t", DIMENSIONLESS),
    "v": ("predicted displacement v_t", DIMENSIONLESS),
    "u": ("unit top Hessian eigenvector u_t at theta_dagger_t, sign aligned along the run",
          DIMENSIONLESS),
    "dagger_lambda2": ("second Hessian eigenvalue at theta_dagger", DIMENSIONLESS),
    "pred_y": ("predicted y_t = grad S_perp . v_t", DIMENSIONLESS),
    "u_dot_grad_sharpness": ("u . grad S at theta_dagger", DIMENSIONLESS),
    "v_perp": ("off-axis displacement |v_perp|", DIMENSIONLESS),
    "projection_iterations": ("iterations of the projection onto M", DIMENSIONLESS),
    "projection_residual": ("residuals ((S - 2/eta)_+, |u . grad L|) of the projection",
                            DIMENSIONLESS),
    # adaptive methods (AdaptiveResult)
    "preconditioned_sharpness": ("preconditioned sharpness lambda_max(P^-1 H) at theta_t",
                                 DIMENSIONLESS),
    "preconditioned_residual": ("eigenpair residual |DHDv - lambda v|, D = P^-1/2",
                                DIMENSIONLESS),
    "nu": ("second-moment EMA nu_t of the adaptive method", DIMENSIONLESS),
    "beta2": ("second-moment EMA factor beta2", DIMENSIONLESS),
    "beta1": ("first-moment (momentum) EMA factor beta1", DIMENSIONLESS),
    "eps": ("epsilon added to sqrt(nu)", DIMENSIONLESS),
    # reduced (x, y) map (ReducedResult, ReducedEnsembleResult)
    "x": ("x_t, displacement along the top eigenvector", DIMENSIONLESS),
    "y": ("y_t, sharpness excess over the threshold", DIMENSIONLESS),
    "phase": ("phase of the reduced map (I-IV)", DIMENSIONLESS),
    "x0": ("initial x", DIMENSIONLESS),
    "y0": ("initial y", DIMENSIONLESS),
    "eta": ("step size eta", DIMENSIONLESS),
    "alpha": ("progressive sharpening alpha", DIMENSIONLESS),
    "beta": ("self-stabilisation strength beta", DIMENSIONLESS),
    "x_final": ("final x", DIMENSIONLESS),
    "y_final": ("final y", DIMENSIONLESS),
    "status": ("outcome of the run (stabsim.Status)", DIMENSIONLESS),
    "stop_step": ("step of the final state", STEPS),
    "n_boundaries": ("cycle boundaries crossed", DIMENSIONLESS),
    "boundary_step": ("step of the cycle boundary", STEPS),
    "boundary_H": ("H(x, y) at the cycle boundary", DIMENSIONLESS),
    "cycle_length": ("length of the cycle", STEPS),
    "cycle_mean_x2": ("mean of x^2 over the cycle", DIMENSIONLESS),
    "cycle_y_max": ("maximum of y over the cycle", DIMENSIONLESS),
    "cycle_y_min": ("minimum of y over the cycle", DIMENSIONLESS),
    "cycle_max_abs_x": ("maximum of |x| over the cycle", DIMENSIONLESS),
    "y_max": ("maximum of y over the run", DIMENSIONLESS),
    "y_min": ("minimum of y over the run", DIMENSIONLESS),
    "max_abs_x": ("maximum of |x| over the run", DIMENSIONLESS),
    "first_blowup": ("first step with x^2 reaching delta^2 while y > 0", STEPS),
    # GD against the theory (Comparison)
    "gd_loss": ("GD loss", DIMENSIONLESS),
    "gd_sharpness": ("GD sharpness", DIMENSIONLESS),
    "gd_lambda2": ("GD second Hessian eigenvalue", DIMENSIONLESS),
    "dagger_loss": ("loss of the constrained trajectory", DIMENSIONLESS),
    "dagger_sharpness": ("sharpness of the constrained trajectory", DIMENSIONLESS),
    "pred_loss": ("predicted loss L(theta_dagger) + x^2/eta", DIMENSIONLESS),
    "pred_sharpness": ("predicted sharpness S(theta_dagger) + y + (u.grad S) x",
                       DIMENSIONLESS),
    "dist_dagger": ("distance of GD to the constrained trajectory", DIMENSIONLESS),
    "dist_pred": ("distance of GD to the predicted theta_dagger + v", DIMENSIONLESS),
    "gf_loss": ("gradient flow loss", DIMENSIONLESS),
    "gf_sharpness": ("gradient flow sharpness", DIMENSIONLESS),
    "dist_gf": ("distance of GD to gradient flow", DIMENSIONLESS),
    "cf_loss": ("central flow loss L(w)", DIMENSIONLESS),
    "cf_sharpness": ("central flow sharpness", DIMENSIONLESS),
    "cf_sigma2": ("central flow oscillation variance sigma^2", DIMENSIONLESS),
    "cf_pred_loss": ("central flow predicted mean loss L(w) + sigma^2/eta", DIMENSIONLESS),
    "dist_cf": ("distance of GD to the central flow", DIMENSIONLESS),
    "gd_x": ("GD x_t = u.(theta_t - theta_dagger_t)", DIMENSIONLESS),
    "pred_x": ("predicted x_t = u.v_t", DIMENSIONLESS),
    "gd_x_star": ("GD x relative to theta_star", DIMENSIONLESS),
    "gd_y_star": ("GD y relative to theta_star", DIMENSIONLESS),
    "reduced_x": ("reduced map x", DIMENSIONLESS),
    "reduced_y": ("reduced map y", DIMENSIONLESS),
    "lambda2_margin": ("margin 2/eta - lambda2 at theta_dagger", DIMENSIONLESS),
    "vperp_over_delta": ("off-axis displacement |v_perp|/delta", DIMENSIONLESS),
    # normalised GD against its manifold flow (ManifoldComparison)
    "phi": ("gradient-flow limit Phi(theta_t)", DIMENSIONLESS),
    "flow": ("manifold flow X(tau)", DIMENSIONLESS),
    "error": ("tracking error |Phi(theta_t) - X(tau)|", DIMENSIONLESS),
    "lambda1": ("top Hessian eigenvalue at Phi(theta_t)", DIMENSIONLESS),
    "flow_lambda1": ("top Hessian eigenvalue at X(tau)", DIMENSIONLESS),
    "half_amplitude": ("oscillation half-amplitude |u.(theta_t+1 - theta_t)|/2",
                       DIMENSIONLESS),
    "predicted_half_amplitude": ("predicted oscillation half-amplitude", DIMENSIONLESS),
    "offset": ("centre of the oscillation relative to Phi(theta_t)", DIMENSIONLESS),
    "alignment": ("alignment of the step with the top eigenvector", DIMENSIONLESS),
    "eos_product": ("top eigenvalue times effective step", DIMENSIONLESS),
    "eos_harmonic": ("harmonic mean of the eigenvalue-step products", DIMENSIONLESS),
    # sweep results (stabsim.sweep)
    "regime": ("regime of the cell (stabsim.sweep.classify)", DIMENSIONLESS),
    "steps_run": ("steps taken", STEPS),
    "steps_to_threshold": ("first recorded step with relative sharpness >= 1", STEPS),
    "cycles": ("completed cycles", DIMENSIONLESS),
    "energy_growth": ("energy ratio E_T/E_0", DIMENSIONLESS),
    "initial_loss": ("initial loss", DIMENSIONLESS),
    "final_loss": ("final loss", DIMENSIONLESS),
    # the uv model's catapult sweep (stabsim.sweep.catapult)
    "width": ("width m of the uv model", DIMENSIONLESS),
    "eta_lambda": ("step size times the initial NTK eigenvalue, eta lambda0", DIMENSIONLESS),
    "lambda0": ("initial NTK eigenvalue lambda0", DIMENSIONLESS),
    "final_eta_lambda": ("step size times the final NTK eigenvalue", DIMENSIONLESS),
    "lazy_catapult": ("boundary of eta lambda0 between lazy and catapult runs", DIMENSIONLESS),
    "catapult_diverged": ("boundary of eta lambda0 between catapult and diverged runs",
                          DIMENSIONLESS),
    "peak_loss": ("maximum recorded loss", DIMENSIONLESS),
    "late_peak_loss": ("maximum recorded loss over the late window", DIMENSIONLESS),
    "final_rel_sharpness": ("final relative sharpness", DIMENSIONLESS),
    "mean_rel_sharpness": ("mean relative sharpness over the late window", DIMENSIONLESS),
    "max_rel_sharpness": ("maximum relative sharpness", DIMENSIONLESS),
    "late_max_rel_sharpness": ("maximum relative sharpness over the late window",
                               DIMENSIONLESS),
    "momentum": ("momentum beta", DIMENSIONLESS),
    "scale": ("norm of the start theta_0", DIMENSIONLESS),
    "seed": ("random seed of the start direction", DIMENSIONLESS),
    # mini-batch SGD (SGDResult)
    "batch_sharpness": ("batch sharpness E_B[g_B.H_B g_B]/E_B[|g_B|^2] at theta_t",
                        DIMENSIONLESS),
    "batch_sharpness_low": ("lower end of the confidence interval of the batch sharpness",
                            DIMENSIONLESS),
    "batch_sharpness_high": ("upper end of the confidence interval of the batch sharpness",
                             DIMENSIONLESS),
    # the SGD sweep (stabsim.sweep.sgd_cells)
    "batch_size": ("batch size b", DIMENSIONLESS),
    "batch_seed": ("random seed of the batches", DIMENSIONLESS),
    "bs_batches": ("batches drawn per sampled batch-sharpness estimate", DIMENSIONLESS),
    "mean_rel_batch_sharpness": ("late-window mean of the batch sharpness times eta/2",
                                 DIMENSIONLESS),
    "max_rel_batch_sharpness": ("maximum of the batch sharpness times eta/2", DIMENSIONLESS),
    "late_max_rel_batch_sharpness": ("late-window maximum of the batch sharpness times eta/2",
                                     DIMENSIONLESS),
}

#: prefix of the sweep coordinates that are parameters of the loss family
_LOSS_PARAMETER = "loss."


def describe(name: str) -> tuple[str, str]:
    """``(long_name, units)`` of an exported variable or coordinate.

    Parameters
    ----------
    name : str
        A key of :data:`VARIABLES`, or ``"loss.<p>"`` for parameter ``p`` of a swept loss
        family (dimensionless, like every loss parameter).

    Raises
    ------
    ValueError
        If ``name`` has no entry.
    """
    if name in VARIABLES:
        return VARIABLES[name]
    if name.startswith(_LOSS_PARAMETER):
        return f"loss parameter {name[len(_LOSS_PARAMETER):]}", DIMENSIONLESS
    raise ValueError(f"variable {name!r} has no long_name and units in "
                     f"stabsim._export.VARIABLES")


def flag_attrs(codes: type[enum.IntEnum]) -> dict:
    """CF ``flag_values`` and ``flag_meanings`` of an integer enumeration.

    ``flag_values[i]`` is the code of member i and the i-th word of ``flag_meanings`` its
    lower-case name.
    """
    return {"flag_values": np.array([c.value for c in codes], np.int8),
            "flag_meanings": " ".join(c.name.lower() for c in codes)}


def missing_as_nan(values, missing) -> np.ndarray:
    """``values`` as float64 with NaN where the boolean mask ``missing`` is true.

    Store the result with :func:`integer_on_disk` when the values are counts or steps.
    """
    return np.where(missing, np.nan, np.asarray(values, dtype=np.float64))


def integer_on_disk(variable) -> None:
    """Write a whole-number variable holding NaN as int32 with ``_FillValue`` −1.

    NaN (in memory) means "does not exist"; a reader that decodes CF attributes (xarray's
    default) gets NaN back. If a value is outside int32, :func:`write_netcdf` writes the
    variable as float64 instead, NaN where missing.
    """
    variable.encoding.update(dtype="int32", _FillValue=np.int32(-1))


def _json_default(value):
    """JSON form of the NumPy scalars and arrays and the enums in a call's parameters."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"parameter value {value!r} of type {type(value).__name__} is not "
                    f"JSON-serialisable")


def provenance(parameters: dict) -> dict:
    """Dataset attributes saying what made an export.

    Returns
    -------
    dict
        ``stabsim_version``, ``numpy_version``, ``numba_version``, ``scipy_version``,
        ``created`` (ISO 8601, UTC) and ``parameters`` (the call's parameters as a JSON
        object; None becomes null).
    """
    import numba
    import scipy

    from . import __version__

    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict, not {type(parameters).__name__}")
    return {
        "stabsim_version": __version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "scipy_version": scipy.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parameters": json.dumps(parameters, sort_keys=True, default=_json_default),
    }


def finish(ds, parameters: dict):
    """A deep copy of ``ds`` with the conventions of the module docstring.

    Every data variable and coordinate gets ``long_name`` and ``units`` from
    :func:`describe` (a ``long_name`` already set is kept); the dataset gets
    :func:`provenance` of ``parameters``. A boolean dataset attribute becomes the integer
    0 or 1: netCDF has no boolean type (netCDF-3 writers store int8, netCDF-4 ones refuse).
    The copy shares no array with ``ds``, so that editing the export of a result (every
    ``to_xarray`` returns through here) leaves the result's arrays as they were.

    Raises
    ------
    ValueError
        If a variable is named with a Python keyword (``ds.<name>`` cannot reach it) or has
        no entry in :data:`VARIABLES`.
    """
    ds = ds.copy(deep=True)
    for name, variable in ds.variables.items():
        if keyword.iskeyword(name):
            raise ValueError(f"variable {name!r} is a Python keyword; rename it")
        long_name, units = describe(name)
        variable.attrs.setdefault("long_name", long_name)
        variable.attrs["units"] = units
    for name, value in ds.attrs.items():
        if isinstance(value, bool | np.bool_):
            ds.attrs[name] = np.int8(value)
    ds.attrs.update(provenance(parameters))
    return ds


#: xarray engines that write netCDF-4, in order of preference, with the modules each needs
#: (h5netcdf installs without h5py, and cannot write without it)
_NETCDF4_ENGINES = (("netcdf4", ("netCDF4",)), ("h5netcdf", ("h5netcdf", "h5py")))


def netcdf_engine() -> str:
    """The xarray engine for writing netCDF: ``"netcdf4"`` (netCDF-4 format) when the
    netCDF4 package is installed, else ``"h5netcdf"`` (netCDF-4) when it and h5py are,
    else ``"scipy"`` (netCDF-3, always available)."""
    for engine, modules in _NETCDF4_ENGINES:
        if all(importlib.util.find_spec(module) is not None for module in modules):
            return engine
    return "scipy"


#: attribute of a variable written to netCDF-3 in another type: its type in memory
DTYPE_ATTRIBUTE = "stabsim_dtype"
#: attribute of a variable or dataset some of whose attributes were written to netCDF-3 in
#: another type: their types in memory, a JSON object (name → type)
ATTRIBUTE_DTYPES = "stabsim_attribute_dtypes"
#: the integer types of netCDF-3
_NETCDF3_INTEGERS = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))
#: float64 holds every integer of smaller magnitude exactly
_FLOAT64_EXACT = 2.0**53


def _fits(values: np.ndarray, dtype) -> bool:
    """True when every value of ``values`` but NaN is within the range of integer type
    ``dtype``."""
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    info = np.iinfo(dtype)
    return values.size == 0 or bool(info.min <= values.min() and values.max() <= info.max)


def _netcdf3_integers(values: np.ndarray, what: str) -> np.ndarray:
    """Integers of a type netCDF-3 lacks as int32 if they fit, else as exact float64.

    Raises
    ------
    ValueError
        If a value has magnitude 2⁵³ or more (float64 would round it).
    """
    if _fits(values, np.int32):
        return values.astype(np.int32)
    floats = values.astype(np.float64)
    if (np.abs(floats) >= _FLOAT64_EXACT).any():
        raise ValueError(f"{what} holds an integer of magnitude 2**53 or more, which "
                         f"netCDF-3 (xarray's scipy engine) cannot store exactly; install "
                         f"netCDF4 or h5netcdf to write netCDF-4, which has int64")
    return floats


def _not_netcdf3(dtype) -> bool:
    """True for an integer type netCDF-3 lacks."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" and dtype not in _NETCDF3_INTEGERS


def _netcdf3_attrs(attrs: dict, owner: str) -> dict:
    """``attrs`` with every integer of a type netCDF-3 lacks stored as int32 or float64,
    their types under :data:`ATTRIBUTE_DTYPES`."""
    stored, dtypes = dict(attrs), {}
    for name, value in attrs.items():
        array = np.asarray(value)
        if _not_netcdf3(array.dtype):
            dtypes[name] = array.dtype.name
            stored[name] = _netcdf3_integers(array, f"attribute {name!r} of {owner}")
    if dtypes:
        stored[ATTRIBUTE_DTYPES] = json.dumps(dtypes, sort_keys=True)
    return stored


def _storable(ds, engine: str):
    """``ds`` as :func:`write_netcdf` writes it with ``engine`` (a shallow copy where it
    changes): whole numbers that overflow their int32 encoding as float64, and for netCDF-3
    (``"scipy"``) the integers of the module docstring."""
    import xarray as xr

    variables = {}
    for name, variable in ds.variables.items():
        variable = variable.copy(deep=False)
        encoded = variable.encoding.get("dtype")
        if (encoded is not None and np.dtype(encoded).kind in "iu"
                and not _fits(variable.values, encoded)):
            for key in ("dtype", "_FillValue"):
                variable.encoding.pop(key, None)
        if engine == "scipy":
            variable.attrs = _netcdf3_attrs(variable.attrs, f"variable {name!r}")
            # an encoding of a netCDF-3 type (an int32 that holds the values) is kept
            if (_not_netcdf3(variable.dtype)
                    and _not_netcdf3(variable.encoding.get("dtype", variable.dtype))):
                variable.encoding.pop("dtype", None)
                variable.attrs[DTYPE_ATTRIBUTE] = variable.dtype.name
                variable = variable.copy(
                    data=_netcdf3_integers(variable.values, f"variable {name!r}"))
        variables[name] = variable
    attrs = _netcdf3_attrs(ds.attrs, "the dataset") if engine == "scipy" else ds.attrs
    return xr.Dataset({name: variables[name] for name in ds.data_vars},
                      coords={name: variables[name] for name in ds.coords}, attrs=attrs)


def write_netcdf(ds, path) -> None:
    """Write ``ds`` to the netCDF file ``path`` with :func:`netcdf_engine`, whatever the
    size of its integers (see the module docstring; ``ds`` is left as it is).

    Raises
    ------
    ValueError
        For netCDF-3, if an integer has magnitude 2⁵³ or more.
    """
    engine = netcdf_engine()
    _storable(ds, engine).to_netcdf(path, engine=engine)


def _restore_attrs(attrs: dict) -> None:
    """Give the attributes listed under :data:`ATTRIBUTE_DTYPES` their types, in place."""
    for name, dtype in json.loads(attrs.pop(ATTRIBUTE_DTYPES, "{}")).items():
        value = np.asarray(attrs[name]).astype(dtype)
        attrs[name] = value[()] if value.ndim == 0 else value


def read_netcdf(path):
    """The dataset of the netCDF file ``path``, loaded into memory, with the integer types
    :func:`write_netcdf` recorded for netCDF-3 restored (see the module docstring)."""
    import xarray as xr

    ds = xr.load_dataset(path)
    variables = {}
    for name, variable in ds.variables.items():
        _restore_attrs(variable.attrs)
        dtype = variable.attrs.pop(DTYPE_ATTRIBUTE, None)
        if dtype is not None:
            variable = variable.copy(data=variable.values.astype(dtype))
            variable.encoding.pop("dtype", None)  # written again, it is of type dtype
        variables[name] = variable
    _restore_attrs(ds.attrs)
    return xr.Dataset({name: variables[name] for name in ds.data_vars},
                      coords={name: variables[name] for name in ds.coords}, attrs=ds.attrs)
